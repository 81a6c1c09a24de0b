"""Desk bookings an EMR sends on reconnection (taken while it could not reach us).

The first committed booking wins: a desk booking on a slot booked on the portal meanwhile gets 409
with an OperationOutcome that says what to do, and the conflict is recorded once (a Task for the
EMR, a row on the clinic's EMR page); the portal booking is never dropped. Desk bookings on slots
still free are simply made; a retry of one already made returns it.
"""

import json

from booking.models import Appointment, Reason, Slot
from booking.services import appointment_book
from sync.models import SyncConflict
from tests.factories import CitizenFactory, SlotFactory

from .conftest import FHIR
from .test_appointments import _issue, _post, booking_body


def test_reconnection_books_the_free_ones_and_records_a_conflict_for_the_one_taken(
    fhir_a, persona_a, django_capture_on_commit_callbacks
):
    free, taken = SlotFactory(role=persona_a.role), SlotFactory(role=persona_a.role)
    desk_a, desk_b, portal = CitizenFactory(), CitizenFactory(), CitizenFactory()
    # While the EMR was offline, a citizen booked ``taken`` on the portal.
    web = appointment_book(slot_id=taken.pk, citizen=portal, reason=Reason.FOLLOW_UP, channel="portal")
    # Back online, the EMR sends what its desk booked meanwhile.
    made = _post(fhir_a, booking_body(persona_a, free, desk_a.nam, identifier="DESK-10"))
    assert made.status_code == 201, made.json()
    refused = _post(fhir_a, booking_body(persona_a, taken, desk_b.nam, identifier="DESK-11"))
    assert refused.status_code == 409
    issue = _issue(refused)
    assert issue["severity"] == "error" and issue["code"] == "conflict"
    conflict = SyncConflict.objects.get()
    diagnostics = issue["diagnostics"]
    assert f"Appointment/{web.pk}" in diagnostics and f"Task/{conflict.pk}" in diagnostics
    assert "another free slot" in diagnostics and desk_b.nam not in diagnostics
    assert (conflict.kind, conflict.slot_id, conflict.appointment_id, conflict.snapshot_id) == (
        "desk_booking_refused",
        taken.pk,
        web.pk,
        None,
    )
    assert conflict.detail["emr_identifier"] == "DESK-11"
    # The portal booking stands, untouched; no desk appointment was made on that slot.
    web.refresh_from_db()
    assert web.status == Appointment.Status.BOOKED
    assert list(Appointment.objects.filter(slot=taken).values_list("pk", flat=True)) == [web.pk]
    # A retry of the refused booking: the same answer, the same conflict, nothing new.
    again = _post(fhir_a, booking_body(persona_a, taken, desk_b.nam, identifier="DESK-11"))
    assert again.status_code == 409 and f"Task/{conflict.pk}" in _issue(again)["diagnostics"]
    assert SyncConflict.objects.count() == 1
    # A retry of the one made: the first result, never a 409 on its own booking.
    assert _post(fhir_a, booking_body(persona_a, free, desk_a.nam, identifier="DESK-10")).status_code == 200
    # The EMR sees it as an open Task with its identifier.
    task = fhir_a.get(f"{FHIR}Task/{conflict.pk}").json()
    assert task["status"] == "requested" and task["code"]["coding"][0]["code"] == "desk_booking_refused"
    inputs = {i["type"]["coding"][0]["code"]: i for i in task["input"]}
    assert inputs["emr-identifier"]["valueString"] == "DESK-11"
    assert task["focus"] == {"reference": f"Appointment/{web.pk}"}


def test_cancelling_the_portal_booking_frees_the_slot_for_the_desk_booking(
    fhir_a, persona_a, django_capture_on_commit_callbacks
):
    taken = SlotFactory(role=persona_a.role)
    web = appointment_book(
        slot_id=taken.pk, citizen=CitizenFactory(), reason=Reason.FOLLOW_UP, channel="portal"
    )
    desk = CitizenFactory()
    assert _post(fhir_a, booking_body(persona_a, taken, desk.nam, identifier="DESK-20")).status_code == 409
    conflict = SyncConflict.objects.get()
    body = {"resourceType": "Parameters", "parameter": [{"name": "resolution", "valueCode": "cancel"}]}
    with django_capture_on_commit_callbacks(execute=True):
        resolved = fhir_a.post(
            f"{FHIR}Task/{conflict.pk}/$resolve", json.dumps(body), content_type="application/fhir+json"
        )
    assert resolved.status_code == 200, resolved.json()
    web.refresh_from_db()
    assert web.status == Appointment.Status.CANCELLED_BY_CLINIC
    # The slot stays free (not withdrawn by a snapshot's view): the desk booking goes through now.
    assert Slot.objects.get(pk=taken.pk).status == Slot.Status.FREE
    made = _post(fhir_a, booking_body(persona_a, taken, desk.nam, identifier="DESK-20"))
    assert made.status_code == 201, made.json()


def test_a_slot_held_but_not_booked_is_a_plain_409_without_a_conflict(fhir_a, persona_a):
    from booking.services import slot_hold

    slot = SlotFactory(role=persona_a.role)
    slot_hold(slot_id=slot.pk, citizen=CitizenFactory())
    response = _post(fhir_a, booking_body(persona_a, slot, CitizenFactory().nam, identifier="DESK-30"))
    assert response.status_code == 409
    assert not SyncConflict.objects.exists()
