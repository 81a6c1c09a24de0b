"""Transaction and batch Bundles of Slot writes on POST /fhir/r4/: all or nothing, FHIR's order,
per-entry answers, scope and clinic scoping."""

import json

import pytest

from booking.models import OutboxEvent, Reason, Slot
from booking.services import appointment_book
from tests.factories import CitizenFactory, SlotFactory

from .conftest import FHIR, get_token
from .test_slot_writes import slot_body


@pytest.fixture(autouse=True)
def _generous_rate(settings):
    settings.SYNC_API_RATE = "100000/m"


def bundle(kind, *entries):
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def create(persona, identifier, hours):
    return {
        "resource": slot_body(persona, identifier=identifier, hours=hours),
        "request": {"method": "POST", "url": "Slot"},
    }


def upsert(persona, identifier, hours):
    system = f"https://rdv-sante.quebec/fhir/sid/clinic/{persona.clinic.pk}/slot"
    return {
        "resource": slot_body(persona, identifier=identifier, hours=hours),
        "request": {"method": "PUT", "url": f"Slot?identifier={system}|{identifier}"},
    }


def delete(slot, if_match=None):
    request = {"method": "DELETE", "url": f"Slot/{slot.pk}"}
    if if_match:
        request["ifMatch"] = if_match
    return {"request": request}


def post(client, body):
    return client.post(FHIR, json.dumps(body), content_type="application/fhir+json")


def emr_slots(persona):
    return set(
        Slot.objects.filter(role=persona.role)
        .exclude(status=Slot.Status.CANCELLED)
        .values_list("external_id", flat=True)
    )


def test_a_transaction_applies_every_entry_and_answers_in_the_order_sent(fhir_a, persona_a):
    old = SlotFactory(role=persona_a.role, external_id="OLD", source=Slot.Source.EMR)
    body = bundle(
        "transaction",
        create(persona_a, "N1", 72),
        upsert(persona_a, "N2", 73),
        delete(old, if_match=f'W/"{old.version}"'),
    )
    response = post(fhir_a, body)
    assert response.status_code == 200, response.json()
    answer = response.json()
    assert answer["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in answer["entry"]]
    assert statuses == ["201 Created", "201 Created", "204 No Content"]
    n1 = Slot.objects.get(external_id="N1")
    first = answer["entry"][0]
    assert first["response"]["location"] == f"Slot/{n1.pk}/_history/1"
    assert first["response"]["etag"] == 'W/"1"' and first["resource"]["id"] == str(n1.pk)
    assert emr_slots(persona_a) == {"N1", "N2"}
    # The same upsert again, alone: 200, nothing changes (the EMR's retry).
    again = post(fhir_a, bundle("transaction", upsert(persona_a, "N2", 73))).json()
    assert again["entry"][0]["response"]["status"] == "200 OK"
    assert again["entry"][0]["response"]["etag"] == 'W/"1"'


def test_a_transaction_with_one_refused_entry_changes_nothing(fhir_a, persona_a):
    booked = SlotFactory(role=persona_a.role, external_id="BOOKED", source=Slot.Source.EMR)
    appointment_book(slot_id=booked.pk, citizen=CitizenFactory(), reason=Reason.FOLLOW_UP, channel="portal")
    events = OutboxEvent.objects.count()
    response = post(
        fhir_a,
        bundle("transaction", create(persona_a, "N1", 72), create(persona_a, "N2", 73), delete(booked)),
    )
    assert response.status_code == 409
    issue = response.json()["issue"][0]
    assert issue["diagnostics"].startswith("entry[2]:")
    assert "Nothing in this transaction was applied" in issue["diagnostics"]
    assert emr_slots(persona_a) == {"BOOKED"}
    assert OutboxEvent.objects.count() == events
    assert Slot.objects.get(pk=booked.pk).status == Slot.Status.BOOKED


def test_deletes_run_first_so_a_new_slot_may_take_the_time_of_a_withdrawn_one(fhir_a, persona_a):
    assert post(fhir_a, bundle("transaction", create(persona_a, "A", 72))).status_code == 200
    a = Slot.objects.get(external_id="A")
    # The new slot B, at A's time, comes first in the Bundle: FHIR's order withdraws A before.
    response = post(fhir_a, bundle("transaction", create(persona_a, "B", 72), delete(a)))
    assert response.status_code == 200, response.json()
    assert emr_slots(persona_a) == {"B"}
    # Without A's withdrawal, the same create overlaps B: refused, nothing applied.
    refused = post(fhir_a, bundle("transaction", create(persona_a, "C", 72)))
    assert refused.status_code in (409, 422) and emr_slots(persona_a) == {"B"}


def test_two_entries_about_one_slot_are_refused(fhir_a, persona_a):
    slot = SlotFactory(role=persona_a.role, external_id="X", source=Slot.Source.EMR)
    response = post(fhir_a, bundle("transaction", delete(slot), delete(slot)))
    assert response.status_code == 400
    assert "entry[1] and entry[0]" in response.json()["issue"][0]["diagnostics"]
    assert Slot.objects.get(pk=slot.pk).status == Slot.Status.FREE


def test_a_batch_applies_each_entry_alone_and_answers_200_with_each_status(fhir_a, persona_a):
    other_clinic_slot = SlotFactory(external_id="THEIRS")
    stale = SlotFactory(role=persona_a.role, external_id="STALE", source=Slot.Source.EMR)
    response = post(
        fhir_a,
        bundle(
            "batch",
            create(persona_a, "N1", 72),
            delete(other_clinic_slot),  # another clinic's: 404
            delete(stale, if_match='W/"99"'),  # a stale version: 412
            {"request": {"method": "GET", "url": "Slot"}},  # not a write: refused
            create(persona_a, "N2", 73),
        ),
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["type"] == "batch-response"
    assert [e["response"]["status"] for e in answer["entry"]] == [
        "201 Created",
        "404",
        "412",
        "422",
        "201 Created",
    ]
    outcome = answer["entry"][1]["response"]["outcome"]
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["diagnostics"].startswith(
        "entry[1]"
    )
    assert emr_slots(persona_a) == {"N1", "N2", "STALE"}
    assert Slot.objects.get(pk=other_clinic_slot.pk).status == Slot.Status.FREE


def test_another_clinics_slot_in_a_transaction_is_404_and_nothing_applied(fhir_a, persona_a, persona_b):
    theirs = SlotFactory(role=persona_b.role, external_id="B-1", source=Slot.Source.EMR)
    response = post(fhir_a, bundle("transaction", create(persona_a, "N1", 72), delete(theirs)))
    assert response.status_code == 404
    assert emr_slots(persona_a) == set()
    assert Slot.objects.get(pk=theirs.pk).status == Slot.Status.FREE


def test_the_scope_slot_write_is_required(client, persona_a):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {get_token(client, persona_a, scope='system/Slot.read')}"
    response = post(client, bundle("transaction", create(persona_a, "N1", 72)))
    assert response.status_code == 403
    assert "system/Slot.write" in response.json()["issue"][0]["diagnostics"]
    assert emr_slots(persona_a) == set()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"resourceType": "Parameters"}, 400),
        ({"resourceType": "Bundle", "type": "collection", "entry": []}, 400),
        ({"resourceType": "Bundle", "type": "transaction", "entry": {}}, 400),
        ({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {}}]}, 400),
        (
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"request": {"method": "PATCH", "url": "Slot/1"}}],
            },
            422,
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"request": {"method": "POST", "url": "Appointment"}}],
            },
            422,
        ),
        (
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"request": {"method": "POST", "url": "Slot"}}],
            },
            400,
        ),
    ],
)
def test_malformed_bundles_are_an_outcome_never_a_500(fhir_a, body, status):
    response = post(fhir_a, body)
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"


def test_too_many_entries_is_413(fhir_a, persona_a):
    entries = [{"request": {"method": "DELETE", "url": f"Slot/{n}"}} for n in range(501)]
    assert post(fhir_a, bundle("transaction", *entries)).status_code == 413


def test_the_capability_statement_declares_transaction_and_batch(client, db):
    rest = client.get(f"{FHIR}metadata").json()["rest"][0]
    assert [i["code"] for i in rest["interaction"]] == ["transaction", "batch"]
