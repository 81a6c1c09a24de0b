"""The CapabilityStatement lists exactly what the API serves; no token is needed to read it."""

import pytest

from .conftest import FHIR

RESOURCES = {
    "Location",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Schedule",
    "Slot",
    "Appointment",
    "Patient",
    "Subscription",
    "Task",
    "CodeSystem",
    "ValueSet",
}
WRITES = {
    "Slot": ["create", "update", "delete"],
    "Appointment": ["create", "update", "history-type"],
    "Subscription": ["create", "update", "delete"],
}


def test_metadata_is_a_capability_statement_for_fhir_4_0_1_without_authentication(client, db):
    response = client.get(f"{FHIR}metadata")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    assert body["kind"] == "instance"
    assert "json" in body["format"]
    (rest,) = body["rest"]
    assert rest["mode"] == "server"
    token_url = rest["security"]["extension"][0]["extension"][0]["valueUri"]
    assert token_url == "http://testserver/oauth/token/"
    assert rest["security"]["service"][0]["coding"][0]["code"] == "OAuth"
    assert {r["type"] for r in rest["resource"]} == RESOURCES
    for resource in rest["resource"]:
        if resource["type"] == "Patient":  # a lookup by NAM only: POST Patient/_search
            assert [i["code"] for i in resource["interaction"]] == ["search-type"]
            assert [p["name"] for p in resource["searchParam"]] == ["identifier"]
            continue
        expected = ["read", "search-type", *WRITES.get(resource["type"], [])]
        assert [i["code"] for i in resource["interaction"]] == expected
    slot = next(r for r in rest["resource"] if r["type"] == "Slot")
    assert slot["versioning"] == "versioned-update"
    assert slot["conditionalUpdate"] is True
    assert slot["searchInclude"] == ["Slot:schedule"]
    assert {p["name"] for p in slot["searchParam"]} == {
        "_id",
        "schedule",
        "start",
        "status",
        "identifier",
        "_lastUpdated",
        "_count",
    }
    appointment = next(r for r in rest["resource"] if r["type"] == "Appointment")
    assert {p["name"] for p in appointment["searchParam"]} == {
        "_id",
        "slot",
        "date",
        "status",
        "identifier",
        "_lastUpdated",
        "_count",
    }


EXAMPLE_VALUES = {
    "_id": "1",
    "identifier": "x",
    "practitioner": "Practitioner/1",
    "location": "Location/1",
    "actor": "Location/1",
    "schedule": "Schedule/1",
    "start": "ge2026-01-01",
    "status": "free",
    "_lastUpdated": "gt2026-01-01T00:00:00Z",
    "_count": "5",
    "slot": "Slot/1",
    "date": "ge2026-01-01",
    "code": "booked_slot_removed",
    "focus": "Appointment/1",
    "url": "https://rdv-sante.quebec/fhir/CodeSystem/reason",
}
STATUS_EXAMPLES = {"Appointment": "booked", "Subscription": "active", "Task": "requested"}


def test_every_declared_search_parameter_is_accepted_and_no_other(client, fhir_a):
    statement = client.get(f"{FHIR}metadata").json()
    for resource in statement["rest"][0]["resource"]:
        if resource["type"] == "Patient":
            continue  # POST only, the NAM in the body: tests/sync/test_patient_search.py
        for param in resource["searchParam"]:
            value = EXAMPLE_VALUES[param["name"]]
            if param["name"] == "status":
                value = STATUS_EXAMPLES.get(resource["type"], value)
            response = fhir_a.get(f"{FHIR}{resource['type']}", {param["name"]: value})
            assert response.status_code == 200, (resource["type"], param["name"], response.json())
        refused = fhir_a.get(f"{FHIR}{resource['type']}", {"service-type": "urgent"})
        assert refused.status_code == 400
        assert refused.json()["issue"][0]["code"] == "not-supported"


@pytest.mark.parametrize("accept", ["application/json", "application/fhir+json"])
def test_metadata_answers_in_the_json_type_asked_for(client, db, accept):
    response = client.get(f"{FHIR}metadata", HTTP_ACCEPT=accept)
    assert response["Content-Type"].startswith(accept)


def test_smart_configuration_points_at_the_token_endpoint(client, db):
    body = client.get(f"{FHIR}.well-known/smart-configuration").json()
    assert body["token_endpoint"] == "http://testserver/oauth/token/"
    assert body["grant_types_supported"] == ["client_credentials"]
    assert "system/Slot.read" in body["scopes_supported"]
