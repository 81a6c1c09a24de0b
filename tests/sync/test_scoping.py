"""An EMR client sees only the clinics that chose its product: can / cannot, per resource."""

import pytest
from django.utils import timezone

from sync.models import EmrClient, EmrClinicGrant
from sync.selectors import clinic_ids_for_emr_client
from tests.factories import ClinicFactory

from .conftest import FHIR, create_client


def _client_a(persona_a) -> EmrClient:
    return EmrClient.objects.get(application__client_id=persona_a.client_id)


def test_client_a_acts_for_clinic_a_only(persona_a, persona_b):
    assert clinic_ids_for_emr_client(_client_a(persona_a)) == {persona_a.clinic.pk}


def test_a_revoked_grant_takes_the_clinic_out_of_scope(persona_a):
    EmrClinicGrant.objects.update(revoked_at=timezone.now())
    assert clinic_ids_for_emr_client(_client_a(persona_a)) == set()


def test_a_clinic_that_changed_product_is_out_of_scope_even_before_its_grant_is_revoked(persona_a):
    persona_a.clinic.emr_product = "Santexa"
    persona_a.clinic.save()
    assert clinic_ids_for_emr_client(_client_a(persona_a)) == set()


def test_an_inactive_client_has_no_clinic(persona_a):
    client = _client_a(persona_a)
    client.is_active = False
    assert clinic_ids_for_emr_client(client) == set()


def test_every_client_of_a_product_shares_its_clinics(persona_a, db):
    other = ClinicFactory(emr_product="ClinIQ")
    create_client("Vendeur A|ClinIQ", other)
    assert clinic_ids_for_emr_client(_client_a(persona_a)) == {persona_a.clinic.pk, other.pk}


def _ids(persona, resource_type):
    role = persona.role
    return {
        "Location": persona.clinic.pk,
        "Organization": persona.clinic.gmf_id,
        "Practitioner": role.practitioner_id,
        "PractitionerRole": role.pk,
        "Schedule": role.pk,
    }[resource_type]


RESOURCE_TYPES = ["Location", "Organization", "Practitioner", "PractitionerRole", "Schedule", "Slot"]


@pytest.mark.parametrize("resource_type", RESOURCE_TYPES)
def test_client_a_reads_its_clinic_and_gets_404_for_clinic_b(
    fhir_a, persona_a, persona_b, slot_a, slot_b, resource_type
):
    own = slot_a.pk if resource_type == "Slot" else _ids(persona_a, resource_type)
    other = slot_b.pk if resource_type == "Slot" else _ids(persona_b, resource_type)

    response = fhir_a.get(f"{FHIR}{resource_type}/{own}")
    assert response.status_code == 200
    assert response.json()["resourceType"] == resource_type
    assert response.json()["id"] == str(own)

    response = fhir_a.get(f"{FHIR}{resource_type}/{other}")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.json()["issue"][0]["code"] == "not-found"


@pytest.mark.parametrize("resource_type", RESOURCE_TYPES)
def test_client_a_searches_find_only_clinic_a(fhir_a, persona_a, persona_b, slot_a, slot_b, resource_type):
    bundle = fhir_a.get(f"{FHIR}{resource_type}").json()
    own = slot_a.pk if resource_type == "Slot" else _ids(persona_a, resource_type)
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    assert bundle["total"] == 1
    assert [e["resource"]["id"] for e in bundle["entry"]] == [str(own)]
    assert bundle["entry"][0]["fullUrl"] == f"http://testserver{FHIR}{resource_type}/{own}"
    assert bundle["entry"][0]["search"] == {"mode": "match"}


def test_searching_for_clinic_b_by_id_finds_nothing(fhir_a, persona_b, slot_b):
    bundle = fhir_a.get(f"{FHIR}Slot", {"_id": slot_b.pk, "schedule": f"Schedule/{persona_b.role.pk}"}).json()
    assert bundle["total"] == 0
    assert bundle["entry"] == []


def test_location_and_practitioner_carry_their_identifiers(fhir_a, persona_a):
    location = fhir_a.get(f"{FHIR}Location/{persona_a.clinic.pk}").json()
    assert location["identifier"] == [
        {"system": "https://rdv-sante.quebec/fhir/sid/clinic", "value": str(persona_a.clinic.pk)}
    ]
    assert location["position"] == {
        "latitude": persona_a.clinic.latitude,
        "longitude": persona_a.clinic.longitude,
    }
    assert location["telecom"][0]["value"] == persona_a.clinic.phone
    assert location["managingOrganization"] == {"reference": f"Organization/{persona_a.clinic.gmf_id}"}

    practitioner = persona_a.role.practitioner
    body = fhir_a.get(f"{FHIR}Practitioner/{practitioner.pk}").json()
    assert body["identifier"] == [
        {"system": "https://ramq.gouv.qc.ca/fhir/sid/practitioner", "value": practitioner.ramq_number}
    ]
    assert [c["coding"][0]["code"] for c in body["communication"]] == ["fr", "en"]
    assert body["name"][0]["family"] == practitioner.last_name

    found = fhir_a.get(
        f"{FHIR}Practitioner",
        {"identifier": f"https://ramq.gouv.qc.ca/fhir/sid/practitioner|{practitioner.ramq_number}"},
    ).json()
    assert found["total"] == 1


def test_schedule_actors_are_the_role_the_practitioner_and_the_location(fhir_a, persona_a):
    role = persona_a.role
    body = fhir_a.get(f"{FHIR}Schedule/{role.pk}").json()
    assert body["actor"] == [
        {"reference": f"PractitionerRole/{role.pk}"},
        {"reference": f"Practitioner/{role.practitioner_id}"},
        {"reference": f"Location/{role.clinic_id}"},
    ]
    role_body = fhir_a.get(f"{FHIR}PractitionerRole", {"location": f"Location/{role.clinic_id}"}).json()
    assert [e["resource"]["id"] for e in role_body["entry"]] == [str(role.pk)]
    assert fhir_a.get(f"{FHIR}Schedule", {"actor": "Location/999999"}).json()["total"] == 0
