"""Patient lookup by NAM: POST Patient/_search with the NAM in the form body, scoped, minimal, audited,
and never a NAM in a URL or a log."""

import logging
from urllib.parse import urlencode

import pytest
from django.test import Client

from booking.models import Reason
from booking.services import appointment_book, appointment_cancel
from sync.models import AuditEvent
from tests.factories import CitizenFactory, SlotFactory

from .conftest import FHIR, EmrPersona, create_client, get_token

NAM_SYSTEM = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-qc-patient-healthcare-id"


@pytest.fixture(autouse=True)
def _generous_rate(settings):
    settings.SYNC_API_RATE = "100000/m"


@pytest.fixture
def patient_a(persona_a):
    """A citizen with an appointment at clinic A."""
    citizen = CitizenFactory(first_name="Ariane", last_name="Lebel")
    appointment_book(
        slot_id=SlotFactory(role=persona_a.role).pk,
        citizen=citizen,
        reason=Reason.FOLLOW_UP,
        channel="portal",
    )
    return citizen


FORM = "application/x-www-form-urlencoded"


def form_post(client, path, data):
    return client.post(path, urlencode(data, doseq=True), content_type=FORM)


def lookup(client, nam):
    return form_post(client, f"{FHIR}Patient/_search", {"identifier": f"{NAM_SYSTEM}|{nam}"})


def bearer(client, persona):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {get_token(client, persona)}"
    return client


def test_a_patient_of_the_clinic_is_found_by_nam_with_a_minimal_resource(fhir_a, patient_a):
    response = lookup(fhir_a, patient_a.nam)
    assert response.status_code == 200, response.json()
    assert response["Content-Type"].startswith("application/fhir+json")
    bundle = response.json()
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "searchset", 1)
    (entry,) = bundle["entry"]
    patient = entry["resource"]
    assert patient == {
        "resourceType": "Patient",
        "id": str(patient_a.pk),
        "identifier": [
            {
                "use": "official",
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "JHN"}]
                },
                "system": NAM_SYSTEM,
                "value": patient_a.nam,
            }
        ],
        "name": [{"use": "official", "family": "Lebel", "given": ["Ariane"]}],
        "birthDate": patient_a.birth_date.isoformat(),
    }
    # No link repeats the search: the NAM is nowhere in a URL of the answer.
    assert patient_a.nam not in str(bundle["link"]) and patient_a.nam not in entry["fullUrl"]
    # The Appointment resources reference the same Patient id.
    appointments = fhir_a.get(f"{FHIR}Appointment").json()["entry"]
    assert {"reference": f"Patient/{patient_a.pk}"} in [
        p["actor"] for p in appointments[0]["resource"]["participant"]
    ]


def test_each_patient_sent_is_audited_and_a_miss_sends_nothing(fhir_a, patient_a):
    AuditEvent.objects.all().delete()
    lookup(fhir_a, patient_a.nam)
    lookup(fhir_a, patient_a.nam)
    rows = list(AuditEvent.objects.values_list("action", "resource_type", "resource_id"))
    assert rows == [("search", "Patient", patient_a.pk)] * 2
    stranger = CitizenFactory(first_name="Nadia", last_name="Roy")
    assert lookup(fhir_a, stranger.nam).json()["total"] == 0
    assert AuditEvent.objects.count() == 2


def test_a_client_finds_only_patients_of_its_own_clinics(client, persona_a, persona_b, patient_a):
    # Client B's clinic never saw this citizen: nothing, exactly as for a NAM that does not exist.
    fhir_b = bearer(client, persona_b)
    found = lookup(fhir_b, patient_a.nam)
    assert found.status_code == 200 and found.json()["total"] == 0 and found.json()["entry"] == []
    assert not AuditEvent.objects.filter(resource_type="Patient").exists()
    # Once the citizen books at clinic B too, client B finds them.
    appointment_book(
        slot_id=SlotFactory(role=persona_b.role).pk,
        citizen=patient_a,
        reason=Reason.FOLLOW_UP,
        channel="portal",
    )
    assert lookup(fhir_b, patient_a.nam).json()["total"] == 1


def test_a_cancelled_booking_still_counts_and_another_product_does_not(client, persona_a, patient_a):
    appointment = patient_a.appointments.get()
    appointment_cancel(appointment=appointment, reason="other", by_clinic=True)
    fhir = bearer(client, persona_a)
    assert lookup(fhir, patient_a.nam).json()["total"] == 1
    # The clinic changes EMR product: the old product's client loses it at once.
    persona_a.clinic.emr_product = "Autre"
    persona_a.clinic.save(update_fields=["emr_product"])
    assert lookup(fhir, patient_a.nam).json()["total"] == 0


def test_the_scope_system_patient_read_is_required(client, persona_a, patient_a):
    fhir = client
    fhir.defaults["HTTP_AUTHORIZATION"] = f"Bearer {get_token(client, persona_a, scope='system/Slot.read')}"
    response = lookup(fhir, patient_a.nam)
    assert response.status_code == 403
    assert "system/Patient.read" in response.json()["issue"][0]["diagnostics"]
    assert not AuditEvent.objects.filter(resource_type="Patient").exists()


def test_a_client_not_allowed_the_scope_cannot_ask_for_it(client, persona_a):
    client_id, secret = create_client("Vendeur A|ClinIQ", persona_a.clinic, scopes=["system/Slot.read"])
    persona = EmrPersona(client_id, secret, persona_a.clinic, persona_a.role)
    response = client.post(
        "/oauth/token/",
        {"grant_type": "client_credentials", "scope": "system/Patient.read"},
        HTTP_AUTHORIZATION=persona.basic(),
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


def test_no_token_is_401(client, patient_a):
    assert lookup(client, patient_a.nam).status_code == 401


@pytest.mark.parametrize(
    "path",
    ["Patient?identifier={system}|{nam}", "Patient/_search?identifier={system}|{nam}", "Patient?name=x"],
)
def test_a_get_is_refused_with_an_outcome_saying_to_post_and_never_repeats_the_nam(fhir_a, patient_a, path):
    response = fhir_a.get(f"{FHIR}{path.format(system=NAM_SYSTEM, nam=patient_a.nam)}")
    assert response.status_code in (400, 405)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "POST Patient/_search" in outcome["issue"][0]["diagnostics"]
    assert patient_a.nam not in response.content.decode()
    assert not AuditEvent.objects.filter(resource_type="Patient").exists()


def test_parameters_in_the_url_of_a_post_are_refused(fhir_a, patient_a):
    response = form_post(
        fhir_a,
        f"{FHIR}Patient/_search?identifier={NAM_SYSTEM}|{patient_a.nam}",
        {"identifier": f"{NAM_SYSTEM}|{patient_a.nam}"},
    )
    assert response.status_code == 400
    assert patient_a.nam not in response.content.decode()


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"identifier": "ABCD12345678"},  # no system
        {"identifier": "https://other.example/nam|GAGJ85531412"},
        {"identifier": f"{NAM_SYSTEM}|GAGJ8553141"},  # 11 characters
        {"identifier": [f"{NAM_SYSTEM}|GAGJ85531412", f"{NAM_SYSTEM}|ROYN85531412"]},
        {"identifier": f"{NAM_SYSTEM}|GAGJ85531412", "name": "Gagnon"},
    ],
)
def test_a_malformed_search_is_a_400_outcome_that_echoes_nothing(fhir_a, data):
    response = form_post(fhir_a, f"{FHIR}Patient/_search", data)
    assert response.status_code == 400
    body = response.content.decode()
    assert "GAGJ" not in body and "ROYN" not in body and "ABCD" not in body


def test_the_nam_appears_in_no_log_line(fhir_a, patient_a, caplog):
    caplog.set_level(logging.DEBUG)
    nam = patient_a.nam
    lookup(fhir_a, nam)  # found
    lookup(fhir_a, "ZZZZ" + nam[4:])  # not found
    fhir_a.get(f"{FHIR}Patient", {"identifier": f"{NAM_SYSTEM}|{nam}"})  # refused GET (400)
    fhir_a.get(f"{FHIR}Patient/_search", {"identifier": f"{NAM_SYSTEM}|{nam}"})  # refused GET (405)
    form_post(fhir_a, f"{FHIR}Patient/_search", {"identifier": f"{NAM_SYSTEM}|{nam}X"})  # malformed (400)
    lookup(Client(), nam)  # no token (401)
    assert caplog.records, "the requests above log their 4xx: the check below must see them"
    logged = "\n".join(
        f"{r.getMessage()} {r.args!r} {getattr(r, 'request', '')!r} {r.__dict__!r}" for r in caplog.records
    )
    assert nam not in logged
    assert nam[:4] + " " not in logged
