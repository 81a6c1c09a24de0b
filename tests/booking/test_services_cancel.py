"""Cancelling an appointment: until the clinic's cut-off online, always by the clinic.

The slot goes back to ``free`` in the same transaction (unless the clinic blocked or withdrew it),
so the next citizen can book it at once; versions bump and an outbox event is written (invariant 5).
"""

from datetime import timedelta

import pytest
from django.core import mail

from booking import errors
from booking.models import Appointment, OutboxEvent, Slot
from booking.services import appointment_book, appointment_cancel, slot_hold
from tests.factories import NOW, CitizenFactory, slot_at

PORTAL = Appointment.Channel.PORTAL


def book(slot, citizen, *, channel=PORTAL, now=NOW) -> Appointment:
    return appointment_book(slot_id=slot.pk, citizen=citizen, reason="follow_up", channel=channel, now=now)


@pytest.fixture(autouse=True)
def _booking_settings(settings):
    settings.BOOKING_MAX_ACTIVE_ONLINE = 2


@pytest.fixture
def booked(role, citizen):
    """An appointment three hours from NOW at a clinic whose online cut-off is two hours."""
    assert role.clinic.cancel_cutoff_hours == 2
    return book(slot_at(role, hours=3), citizen)


# --- the citizen's cut-off -----------------------------------------------------------------------


def test_a_citizen_can_cancel_before_the_cut_off(booked):
    cancelled = appointment_cancel(appointment=booked, reason="better_time", now=NOW)
    assert cancelled.status == Appointment.Status.CANCELLED_BY_CITIZEN
    assert cancelled.cancel_reason == "better_time"
    assert cancelled.cancelled_at == NOW


def test_a_citizen_can_cancel_exactly_at_the_cut_off(booked):
    at_cut_off = booked.start - timedelta(hours=2)
    assert appointment_cancel(appointment=booked, reason="better_time", now=at_cut_off).status == (
        Appointment.Status.CANCELLED_BY_CITIZEN
    )


def test_a_citizen_cannot_cancel_after_the_cut_off(booked):
    too_late = booked.start - timedelta(hours=2) + timedelta(seconds=1)
    with pytest.raises(errors.CancelTooLate):
        appointment_cancel(appointment=booked, reason="better_time", now=too_late)
    booked.refresh_from_db()
    assert booked.status == Appointment.Status.BOOKED
    assert Slot.objects.get(pk=booked.slot_id).status == Slot.Status.BOOKED


def test_the_cut_off_is_each_clinics_own(role, citizen):
    role.clinic.cancel_cutoff_hours = 24
    role.clinic.save()
    appointment = book(slot_at(role, hours=23), citizen)
    with pytest.raises(errors.CancelTooLate):
        appointment_cancel(appointment=appointment, reason="better_time", now=NOW)


def test_the_clinic_can_cancel_after_the_citizens_cut_off(booked):
    too_late_online = booked.start - timedelta(minutes=30)
    cancelled = appointment_cancel(appointment=booked, reason="other", by_clinic=True, now=too_late_online)
    assert cancelled.status == Appointment.Status.CANCELLED_BY_CLINIC


def test_a_cancellation_needs_a_known_reason(booked):
    with pytest.raises(errors.ApplicationError):
        appointment_cancel(appointment=booked, reason="bored", now=NOW)
    booked.refresh_from_db()
    assert booked.status == Appointment.Status.BOOKED


# --- the slot is free again at once --------------------------------------------------------------


def test_cancelling_frees_the_slot_at_once_for_another_citizen(booked):
    appointment_cancel(appointment=booked, reason="better_time", now=NOW)
    slot = Slot.objects.get(pk=booked.slot_id)
    assert slot.status == Slot.Status.FREE

    someone_else = CitizenFactory()
    hold = slot_hold(slot_id=slot.pk, citizen=someone_else, now=NOW + timedelta(seconds=1))
    again = appointment_book(
        slot_id=slot.pk,
        citizen=someone_else,
        reason="follow_up",
        channel=PORTAL,
        hold_token=hold.token,
        now=NOW + timedelta(seconds=2),
    )
    assert again.pk != booked.pk
    assert Appointment.objects.filter(slot_id=slot.pk).count() == 2


def test_before_cancelling_nobody_else_can_book_the_slot(booked):
    with pytest.raises(errors.SlotUnavailable):
        book(Slot.objects.get(pk=booked.slot_id), CitizenFactory())


@pytest.mark.parametrize("status", [Slot.Status.BLOCKED, Slot.Status.CANCELLED])
def test_cancelling_leaves_a_slot_the_clinic_blocked_or_withdrew_as_it_is(booked, status):
    Slot.objects.filter(pk=booked.slot_id).update(status=status)
    appointment_cancel(appointment=booked, reason="better_time", now=NOW)
    assert Slot.objects.get(pk=booked.slot_id).status == status
    assert OutboxEvent.objects.get(kind="appointment.cancelled").payload["slot_freed"] is False


# --- only once -----------------------------------------------------------------------------------


def test_cancelling_twice_is_refused(booked):
    cancelled = appointment_cancel(appointment=booked, reason="better_time", now=NOW)
    with pytest.raises(errors.NotCancellable):
        appointment_cancel(appointment=cancelled, reason="better_time", now=NOW)


def test_cancelling_twice_is_refused_even_from_a_stale_copy(booked):
    stale = Appointment.objects.get(pk=booked.pk)
    appointment_cancel(appointment=booked, reason="better_time", now=NOW)
    assert stale.status == Appointment.Status.BOOKED  # the copy does not know
    with pytest.raises(errors.NotCancellable):
        appointment_cancel(appointment=stale, reason="feeling_better", now=NOW)
    assert OutboxEvent.objects.filter(kind="appointment.cancelled").count() == 1
    booked.refresh_from_db()
    assert booked.cancel_reason == "better_time"


@pytest.mark.parametrize("status", ["fulfilled", "noshow", "entered_in_error"])
def test_an_appointment_that_is_over_or_void_cannot_be_cancelled(booked, status):
    Appointment.objects.filter(pk=booked.pk).update(status=status)
    booked.refresh_from_db()
    with pytest.raises(errors.NotCancellable):
        appointment_cancel(appointment=booked, reason="better_time", now=NOW)


def test_the_clinic_can_cancel_an_appointment_once_the_patient_has_arrived(booked):
    # The contract: booked/arrived -> cancelled_by_citizen/cancelled_by_clinic.
    Appointment.objects.filter(pk=booked.pk).update(status=Appointment.Status.ARRIVED)
    booked.refresh_from_db()
    cancelled = appointment_cancel(appointment=booked, reason="other", by_clinic=True, now=booked.start)
    assert cancelled.status == Appointment.Status.CANCELLED_BY_CLINIC
    assert OutboxEvent.objects.filter(kind="appointment.cancelled", appointment=booked).count() == 1


# --- invariant 5 ---------------------------------------------------------------------------------


def test_cancelling_bumps_both_versions_and_writes_one_outbox_event(booked):
    slot_version = Slot.objects.get(pk=booked.slot_id).version
    cancelled = appointment_cancel(appointment=booked, reason="cannot_attend", now=NOW)

    assert cancelled.version == booked.version == 2
    assert Slot.objects.get(pk=booked.slot_id).version == slot_version + 1
    event = OutboxEvent.objects.get(kind="appointment.cancelled")
    assert (event.appointment_id, event.slot_id, event.clinic_id) == (
        booked.pk,
        booked.slot_id,
        booked.clinic_id,
    )
    assert event.channel == "citizen"
    assert event.payload == {
        "reason": "cannot_attend",
        "slot_freed": True,
        "slot_version": slot_version + 1,
        "appointment_version": 2,
    }
    assert event.notify_state == OutboxEvent.NotifyState.PENDING


def test_a_refused_cancellation_bumps_nothing_and_writes_no_event(booked):
    with pytest.raises(errors.CancelTooLate):
        appointment_cancel(appointment=booked, reason="better_time", now=booked.start)
    booked.refresh_from_db()
    assert booked.version == 1
    assert Slot.objects.get(pk=booked.slot_id).version == 2
    assert not OutboxEvent.objects.filter(kind="appointment.cancelled").exists()


def test_a_clinic_cancellation_is_marked_as_such_in_the_event(booked):
    appointment_cancel(appointment=booked, reason="other", by_clinic=True, now=NOW)
    assert OutboxEvent.objects.get(kind="appointment.cancelled").channel == "clinic"


def test_the_cancellation_email_is_sent_after_commit(booked, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        appointment_cancel(appointment=booked, reason="better_time", now=NOW)
        assert mail.outbox == []
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [booked.citizen.email]
    assert mail.outbox[0].attachments == []
