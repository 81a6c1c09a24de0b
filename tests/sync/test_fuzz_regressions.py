"""Bodies that once answered 500: found while describing the FHIR operations in the OpenAPI document
(issue 3) and fuzzing them. Each must be a 4xx OperationOutcome (or, in a batch, an entry's own)."""

import json

import pytest

from booking.models import Appointment
from booking.services import appointment_book
from sync import webhooks
from sync.models import EmrClient, SyncConflict
from tests.factories import CitizenFactory, SlotFactory

from .conftest import FHIR

FHIR_JSON = "application/fhir+json"


def post(client, path, body, method="post"):
    return getattr(client, method)(f"{FHIR}{path}", json.dumps(body), content_type=FHIR_JSON)


def outcome(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]


@pytest.mark.parametrize("method", [["POST"], {"POST": 1}, 7, None])
def test_a_bundle_entry_whose_method_is_not_a_string_is_refused(fhir_a, method):
    entry = {"request": {"method": method, "url": "Slot"}, "resource": {"resourceType": "Slot"}}
    transaction = post(fhir_a, "", {"resourceType": "Bundle", "type": "transaction", "entry": [entry]})
    assert "entry[0]: request.method" in outcome(transaction, 400)["diagnostics"]
    batch = post(fhir_a, "", {"resourceType": "Bundle", "type": "batch", "entry": [entry]})
    assert batch.status_code == 200
    assert batch.json()["entry"][0]["response"]["status"] == "400"


def test_a_bundle_entry_with_a_non_ascii_digit_id_is_not_found(fhir_a):
    entry = {"request": {"method": "DELETE", "url": "Slot/²"}}  # str.isdigit, but not int()
    response = post(fhir_a, "", {"resourceType": "Bundle", "type": "transaction", "entry": [entry]})
    assert outcome(response, 404)["code"] == "not-found"


@pytest.fixture
def conflict(persona_a):
    slot = SlotFactory(role=persona_a.role, external_id="A-9")
    appointment = appointment_book(
        slot_id=slot.pk, citizen=CitizenFactory(), reason="urgent", channel=Appointment.Channel.PORTAL
    )
    return SyncConflict.objects.create(
        clinic=persona_a.clinic,
        slot=slot,
        appointment=appointment,
        kind=SyncConflict.Kind.BOOKED_SLOT_REMOVED,
    )


@pytest.mark.parametrize("reference", ["Slot/1", ["Slot/1"], 1, {"reference": "Slot/²"}])
def test_resolve_with_a_slot_that_is_not_a_reference_is_refused(fhir_a, conflict, reference):
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resolution", "valueCode": "move"},
            {"name": "slot", "valueReference": reference},
        ],
    }
    issue = outcome(post(fhir_a, f"Task/{conflict.pk}/$resolve", body), 400)
    assert "valueReference to Slot/{id}" in issue["diagnostics"]
    conflict.refresh_from_db()
    assert conflict.resolution == ""


def test_an_instant_before_the_first_representable_one_is_refused(fhir_a, persona_a):
    start, end = "0001-01-01T00:00:00+05:00", "0001-01-01T10:00:00+05:00"  # before 0001-01-01 in UTC
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "start", "valueInstant": start},
            {"name": "end", "valueInstant": end},
            {"name": "generation", "valueInteger": 1},
        ],
    }
    issue = outcome(post(fhir_a, f"Schedule/{persona_a.role.pk}/$snapshot", body), 400)
    assert "out of range" in issue["diagnostics"]
    slot = {
        "resourceType": "Slot",
        "schedule": {"reference": f"Schedule/{persona_a.role.pk}"},
        "status": "free",
        "start": start,
        "end": end,
    }
    assert "out of range" in outcome(post(fhir_a, "Slot", slot), 400)["diagnostics"]


def test_a_subscription_endpoint_that_is_not_a_url_is_refused(fhir_a, persona_a):
    body = {
        "resourceType": "Subscription",
        "criteria": "Appointment",
        "channel": {"type": "rest-hook", "payload": FHIR_JSON, "endpoint": "https://[::1"},
    }
    assert "not a valid URL" in outcome(post(fhir_a, "Subscription", body), 422)["diagnostics"]
    client = EmrClient.objects.get(application__client_id=persona_a.client_id)
    sub, _secret = webhooks.subscription_create(
        emr_client=client, endpoint="https://emr-a.example.ca/hook", criteria="Appointment"
    )
    assert (
        "not a valid URL" in outcome(post(fhir_a, f"Subscription/{sub.pk}", body, "put"), 422)["diagnostics"]
    )
