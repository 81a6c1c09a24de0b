"""Concurrent holds and bookings on PostgreSQL, with real threads: exactly one wins.

First the race itself is shown to exist: a naive read-check-write lets several threads believe
they won; only the database (the partial unique index) or a compare-and-set stops them. Then the
services are fired at one slot from many citizens at once, on every channel.
"""

import time
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from booking.models import Appointment, Slot
from booking.services import Hold, appointment_book, appointment_cancel, slot_hold
from tests.factories import NOW, CitizenFactory, RoleFactory, slot_at

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 24
ONLINE = [Appointment.Channel.PORTAL, Appointment.Channel.CITIZEN_API, Appointment.Channel.WAITLIST]
EVERY_CHANNEL = [*ONLINE, Appointment.Channel.CLINIC_AGENDA, Appointment.Channel.EMR]


@pytest.fixture(autouse=True)
def _booking_settings(settings):
    settings.BOOKING_HOLD_SECONDS = 300
    settings.BOOKING_MAX_ACTIVE_ONLINE = 2


@pytest.fixture
def free_slot(role):
    return slot_at(role)


@pytest.fixture
def citizens(db):
    return [CitizenFactory(email=f"c{i}@example.org") for i in range(THREADS)]


# --- the race exists -----------------------------------------------------------------------------


def naive_book(slot_id: int, citizen) -> str:
    """Read the status, decide, then write: no compare-and-set, no lock."""
    slot = Slot.objects.get(pk=slot_id)
    if slot.status != Slot.Status.FREE:
        return "saw it taken"
    time.sleep(0.05)  # the time a real request spends between its read and its write
    with transaction.atomic():
        Slot.objects.filter(pk=slot_id).update(status=Slot.Status.BOOKED)
        Appointment.objects.create(
            slot=slot,
            citizen=citizen,
            clinic_id=slot.clinic_id,
            start=slot.start,
            end=slot.end,
            reason="follow_up",
            channel=Appointment.Channel.PORTAL,
        )
    return "won"


def naive_status_only(slot_id: int, citizen) -> str:
    """The same decision with no row the database could refuse: the status and holder only."""
    slot = Slot.objects.get(pk=slot_id)
    if slot.status != Slot.Status.FREE:
        return "saw it taken"
    time.sleep(0.05)
    Slot.objects.filter(pk=slot_id).update(status=Slot.Status.BOOKED, holder=citizen)
    return "won"


def test_a_naive_read_check_write_lets_several_threads_pass_the_check_and_only_the_index_stops_them(
    free_slot, citizens, concurrently
):
    outcomes = concurrently([lambda c=c: naive_book(free_slot.pk, c) for c in citizens[:8]])

    passed_the_check = [o for o in outcomes if o.value == "won" or isinstance(o.error, IntegrityError)]
    assert len(passed_the_check) > 1, "the race did not show: every thread saw the slot taken"
    # The partial unique index (one occupying appointment per slot) is what saved us.
    assert Appointment.objects.filter(slot=free_slot).count() == 1
    assert len(outcomes.winners) == 1
    assert outcomes.errors_by_type() == {"IntegrityError": len(passed_the_check) - 1}


def test_without_a_row_the_database_can_refuse_a_naive_write_tells_several_citizens_they_won(
    free_slot, citizens, concurrently
):
    outcomes = concurrently([lambda c=c: naive_status_only(free_slot.pk, c) for c in citizens[:8]])

    told_they_won = [o for o in outcomes if o.value == "won"]
    assert len(told_they_won) > 1  # double writes: last writer wins, the others were lied to
    free_slot.refresh_from_db()
    assert free_slot.status == Slot.Status.BOOKED
    assert free_slot.holder_id is not None


def test_a_compare_and_set_lets_exactly_one_thread_change_the_slot(free_slot, citizens, concurrently):
    def compare_and_set(citizen) -> int:
        return Slot.objects.filter(pk=free_slot.pk, status=Slot.Status.FREE).update(
            status=Slot.Status.BOOKED, holder=citizen
        )

    outcomes = concurrently([lambda c=c: compare_and_set(c) for c in citizens])
    assert sorted(o.value for o in outcomes) == [0] * (THREADS - 1) + [1]


# --- holds ---------------------------------------------------------------------------------------


def test_many_citizens_holding_one_slot_at_once_exactly_one_gets_it(free_slot, citizens, concurrently):
    outcomes = concurrently(
        [lambda c=c: slot_hold(slot_id=free_slot.pk, citizen=c, now=NOW) for c in citizens]
    )

    (winner,) = outcomes.winners
    assert isinstance(winner.value, Hold)
    assert outcomes.errors_by_type() == {"SlotUnavailable": THREADS - 1}
    free_slot.refresh_from_db()
    assert free_slot.hold_token == winner.value.token
    assert free_slot.holder_id == citizens[outcomes.index(winner)].pk


# --- bookings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", EVERY_CHANNEL)
def test_many_citizens_booking_one_slot_at_once_without_a_hold_exactly_one_gets_it(
    free_slot, citizens, concurrently, channel
):
    outcomes = concurrently(
        [
            lambda c=c: appointment_book(
                slot_id=free_slot.pk, citizen=c, reason="follow_up", channel=channel, now=NOW
            )
            for c in citizens
        ]
    )

    (winner,) = outcomes.winners
    assert outcomes.errors_by_type() == {"SlotUnavailable": THREADS - 1}
    appointment = Appointment.objects.get(slot=free_slot)
    assert appointment.pk == winner.value.pk
    free_slot.refresh_from_db()
    assert (free_slot.status, free_slot.version) == (Slot.Status.BOOKED, 2)


def test_many_citizens_booking_one_slot_on_mixed_channels_exactly_one_gets_it(
    free_slot, citizens, concurrently
):
    outcomes = concurrently(
        [
            lambda c=c, i=i: appointment_book(
                slot_id=free_slot.pk,
                citizen=c,
                reason="follow_up",
                channel=EVERY_CHANNEL[i % len(EVERY_CHANNEL)],
                now=NOW,
            )
            for i, c in enumerate(citizens)
        ]
    )
    assert len(outcomes.winners) == 1
    assert Appointment.objects.filter(slot=free_slot).count() == 1


def test_the_holder_books_while_everyone_else_tries_without_a_hold_and_only_the_holder_gets_it(
    free_slot, citizens, concurrently
):
    holder, *others = citizens
    hold = slot_hold(slot_id=free_slot.pk, citizen=holder, now=NOW)
    at = NOW + timedelta(minutes=1)

    def holder_books():
        return appointment_book(
            slot_id=free_slot.pk,
            citizen=holder,
            reason="follow_up",
            channel=Appointment.Channel.PORTAL,
            hold_token=hold.token,
            now=at,
        )

    def other_books(citizen):
        return appointment_book(
            slot_id=free_slot.pk,
            citizen=citizen,
            reason="follow_up",
            channel=Appointment.Channel.PORTAL,
            now=at,
        )

    outcomes = concurrently([holder_books, *[lambda c=c: other_books(c) for c in others]])

    assert outcomes[0].ok, outcomes[0].error
    assert outcomes.winners == [outcomes[0]]
    assert outcomes.errors_by_type() == {"SlotUnavailable": THREADS - 1}
    assert Appointment.objects.get(slot=free_slot).citizen_id == holder.pk


def test_a_double_click_on_confirm_books_once_and_both_clicks_get_the_same_appointment(
    free_slot, citizens, concurrently
):
    citizen = citizens[0]
    hold = slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW)

    def confirm():
        return appointment_book(
            slot_id=free_slot.pk,
            citizen=citizen,
            reason="follow_up",
            channel=Appointment.Channel.PORTAL,
            hold_token=hold.token,
            now=NOW + timedelta(seconds=20),
        )

    outcomes = concurrently([confirm for _ in range(4)])
    assert all(o.ok for o in outcomes), outcomes.errors_by_type()
    assert len({o.value.pk for o in outcomes}) == 1
    assert Appointment.objects.count() == 1


# --- one citizen, several tabs -------------------------------------------------------------------


def test_one_citizen_booking_five_slots_at_once_gets_no_more_than_the_online_limit(
    role, citizens, concurrently
):
    citizen = citizens[0]
    slots = [slot_at(role, hours=48 + i) for i in range(5)]
    outcomes = concurrently(
        [
            lambda s=s: appointment_book(
                slot_id=s.pk, citizen=citizen, reason="follow_up", channel=Appointment.Channel.PORTAL, now=NOW
            )
            for s in slots
        ]
    )
    assert len(outcomes.winners) == 2
    assert outcomes.errors_by_type() == {"LimitReached": 3}
    assert Appointment.objects.filter(citizen=citizen, status=Appointment.Status.BOOKED).count() == 2
    assert Slot.objects.filter(status=Slot.Status.BOOKED).count() == 2


@pytest.mark.parametrize(
    ("channel", "tabs"), [(Appointment.Channel.PORTAL, 2), (Appointment.Channel.CLINIC_AGENDA, 6)]
)
def test_one_citizen_booking_overlapping_slots_of_different_doctors_at_once_gets_one(
    clinic, citizens, concurrently, channel, tabs
):
    citizen = citizens[0]
    # Same start, different doctors: nothing about the slots conflicts, only the patient's time.
    slots = [slot_at(RoleFactory(clinic=clinic), hours=48 + i / 60) for i in range(tabs)]
    outcomes = concurrently(
        [
            lambda s=s: appointment_book(
                slot_id=s.pk, citizen=citizen, reason="follow_up", channel=channel, now=NOW
            )
            for s in slots
        ]
    )
    assert len(outcomes.winners) == 1
    assert outcomes.errors_by_type() == {"PatientOverlap": tabs - 1}
    assert Appointment.objects.filter(citizen=citizen).count() == 1


# --- cancelling ----------------------------------------------------------------------------------


def test_two_cancellations_of_one_appointment_at_once_cancel_it_once(free_slot, citizens, concurrently):
    appointment = appointment_book(
        slot_id=free_slot.pk,
        citizen=citizens[0],
        reason="follow_up",
        channel=Appointment.Channel.PORTAL,
        now=NOW,
    )
    copies = [Appointment.objects.select_related("clinic").get(pk=appointment.pk) for _ in range(4)]
    outcomes = concurrently(
        [lambda a=a: appointment_cancel(appointment=a, reason="better_time", now=NOW) for a in copies]
    )
    assert len(outcomes.winners) == 1
    assert outcomes.errors_by_type() == {"NotCancellable": 3}
    free_slot.refresh_from_db()
    assert (free_slot.status, free_slot.version) == (Slot.Status.FREE, 3)


def test_a_slot_freed_by_a_cancellation_goes_to_exactly_one_of_many_citizens(
    free_slot, citizens, concurrently
):
    appointment = appointment_book(
        slot_id=free_slot.pk,
        citizen=citizens[0],
        reason="follow_up",
        channel=Appointment.Channel.PORTAL,
        now=NOW,
    )
    appointment_cancel(appointment=appointment, reason="better_time", now=NOW)
    outcomes = concurrently(
        [
            lambda c=c: appointment_book(
                slot_id=free_slot.pk,
                citizen=c,
                reason="follow_up",
                channel=Appointment.Channel.PORTAL,
                now=NOW,
            )
            for c in citizens[1:]
        ]
    )
    assert len(outcomes.winners) == 1
    assert outcomes.errors_by_type() == {"SlotUnavailable": THREADS - 2}
    assert Appointment.objects.filter(slot=free_slot, status=Appointment.Status.BOOKED).count() == 1
