"""Holding a slot while the citizen confirms (booking contract: "Hold"; invariant 4).

A hold lives on the slot row; one compare-and-set decides who gets it. Only a *live* hold by
someone else blocks: an expired one is ignored by every query, with no job needed to clear it.
The clock is moved by passing ``now``.
"""

from datetime import timedelta

import pytest

from booking import errors
from booking.models import Appointment, Audience, OutboxEvent, Slot
from booking.services import appointment_book, slot_hold
from tests.factories import NOW, CitizenFactory, EnrolmentFactory, slot_at

HOLD = timedelta(seconds=300)


@pytest.fixture(autouse=True)
def _hold_settings(settings):
    settings.BOOKING_HOLD_SECONDS = 300
    settings.BOOKING_MAX_ACTIVE_ONLINE = 2


@pytest.fixture
def free_slot(role):
    return slot_at(role)


@pytest.fixture
def other_citizen(db):
    return CitizenFactory(first_name="Marc", last_name="Bouchard", sex="M")


# --- can ---------------------------------------------------------------------------------------


def test_a_citizen_can_hold_a_free_slot(free_slot, citizen):
    hold = slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW)

    assert hold.slot_id == free_slot.pk
    assert hold.expires == NOW + HOLD
    assert len(hold.token) == 32
    free_slot.refresh_from_db()
    assert free_slot.holder_id == citizen.pk
    assert free_slot.hold_expires == NOW + HOLD
    assert free_slot.hold_token == hold.token
    assert free_slot.status == Slot.Status.FREE


def test_a_hold_is_not_a_published_change_so_it_neither_bumps_the_version_nor_writes_an_event(
    free_slot, citizen
):
    slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW)
    free_slot.refresh_from_db()
    assert free_slot.version == 1
    assert not OutboxEvent.objects.exists()


def test_the_hold_lasts_the_configured_number_of_seconds(free_slot, citizen, settings):
    settings.BOOKING_HOLD_SECONDS = 120
    hold = slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW)
    assert hold.expires == NOW + timedelta(seconds=120)


# --- cannot: the slot's own state ----------------------------------------------------------------


@pytest.mark.parametrize("status", [Slot.Status.BOOKED, Slot.Status.BLOCKED, Slot.Status.CANCELLED])
def test_a_slot_that_is_not_free_cannot_be_held(role, citizen, status):
    slot = slot_at(role, status=status)
    with pytest.raises(errors.SlotUnavailable):
        slot_hold(slot_id=slot.pk, citizen=citizen, now=NOW)
    slot.refresh_from_db()
    assert slot.holder_id is None


def test_a_slot_taken_by_a_booking_cannot_be_held(free_slot, citizen, other_citizen):
    appointment_book(
        slot_id=free_slot.pk,
        citizen=other_citizen,
        reason="follow_up",
        channel=Appointment.Channel.PORTAL,
        now=NOW,
    )
    with pytest.raises(errors.SlotUnavailable):
        slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW)


@pytest.mark.parametrize("slot_id", [987654321, "not-a-number", None])
def test_a_slot_that_does_not_exist_cannot_be_held(db, citizen, slot_id):
    with pytest.raises(errors.SlotNotFound):
        slot_hold(slot_id=slot_id, citizen=citizen, now=NOW)


# --- other people's holds ------------------------------------------------------------------------


def test_another_citizens_live_hold_blocks_a_hold(free_slot, citizen, other_citizen):
    first = slot_hold(slot_id=free_slot.pk, citizen=other_citizen, now=NOW)
    with pytest.raises(errors.SlotUnavailable):
        slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW + HOLD - timedelta(seconds=1))
    free_slot.refresh_from_db()
    assert free_slot.holder_id == other_citizen.pk
    assert free_slot.hold_token == first.token


def test_an_expired_hold_never_blocks_another_citizens_hold(free_slot, citizen, other_citizen):
    slot_hold(slot_id=free_slot.pk, citizen=other_citizen, now=NOW)
    later = NOW + HOLD  # the hold is live while hold_expires > now: at the expiry second it is gone
    hold = slot_hold(slot_id=free_slot.pk, citizen=citizen, now=later)
    free_slot.refresh_from_db()
    assert free_slot.holder_id == citizen.pk
    assert free_slot.hold_token == hold.token


def test_an_expired_hold_never_blocks_another_citizens_booking(free_slot, citizen, other_citizen):
    slot_hold(slot_id=free_slot.pk, citizen=other_citizen, now=NOW)
    appointment = appointment_book(
        slot_id=free_slot.pk,
        citizen=citizen,
        reason="follow_up",
        channel=Appointment.Channel.PORTAL,
        now=NOW + timedelta(minutes=6),
    )
    assert appointment.citizen_id == citizen.pk


def test_a_live_hold_blocks_another_citizens_booking_without_a_hold(free_slot, citizen, other_citizen):
    slot_hold(slot_id=free_slot.pk, citizen=other_citizen, now=NOW)
    with pytest.raises(errors.SlotUnavailable):
        appointment_book(
            slot_id=free_slot.pk,
            citizen=citizen,
            reason="follow_up",
            channel=Appointment.Channel.PORTAL,
            now=NOW + timedelta(minutes=4),
        )
    assert not Appointment.objects.exists()


# --- one hold per citizen ------------------------------------------------------------------------


def test_a_new_hold_releases_the_previous_one(role, citizen, other_citizen):
    first, second = slot_at(role, hours=48), slot_at(role, hours=49)
    slot_hold(slot_id=first.pk, citizen=citizen, now=NOW)
    slot_hold(slot_id=second.pk, citizen=citizen, now=NOW + timedelta(seconds=30))

    first.refresh_from_db()
    assert (first.holder_id, first.hold_expires, first.hold_token) == (None, None, "")
    assert Slot.objects.filter(holder=citizen).count() == 1
    # The released slot is at once available to someone else.
    slot_hold(slot_id=first.pk, citizen=other_citizen, now=NOW + timedelta(seconds=31))


def test_holding_the_same_slot_again_keeps_the_token_and_does_not_extend_the_hold(free_slot, citizen):
    # Re-holding over and over must not keep a slot out of everyone else's reach.
    first = slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW)
    again = slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW + timedelta(minutes=4))
    assert again.token == first.token
    assert again.expires == first.expires == NOW + HOLD
    free_slot.refresh_from_db()
    assert free_slot.hold_expires == first.expires


def test_holding_again_after_ones_own_hold_expired_gives_a_new_token(free_slot, citizen):
    first = slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW)
    again = slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW + HOLD + timedelta(seconds=1))
    assert again.token != first.token


# --- holding applies the online rules ------------------------------------------------------------


def test_a_slot_for_the_doctors_own_patients_can_be_held_by_one_of_them(role, enrolled_citizen):
    slot = slot_at(role, audience=Audience.OWN_PATIENTS)
    assert slot_hold(slot_id=slot.pk, citizen=enrolled_citizen, now=NOW).slot_id == slot.pk


def test_a_slot_for_the_doctors_own_patients_cannot_be_held_by_anyone_else(role, citizen):
    slot = slot_at(role, audience=Audience.OWN_PATIENTS)
    with pytest.raises(errors.NotEligible):
        slot_hold(slot_id=slot.pk, citizen=citizen, now=NOW)
    slot.refresh_from_db()
    assert slot.holder_id is None


def test_a_slot_not_offered_online_cannot_be_held_even_by_the_doctors_patient(role, enrolled_citizen):
    slot = slot_at(role, audience=Audience.NOT_ONLINE)
    with pytest.raises(errors.NotEligible):
        slot_hold(slot_id=slot.pk, citizen=enrolled_citizen, now=NOW)


def test_a_slot_starting_exactly_at_the_minimum_notice_can_be_held(role, citizen):
    slot = slot_at(role, hours=1)  # the clinic's minimum notice is one hour
    assert slot_hold(slot_id=slot.pk, citizen=citizen, now=NOW).slot_id == slot.pk


def test_a_slot_starting_within_the_minimum_notice_cannot_be_held(role, citizen):
    slot = slot_at(role, hours=1)
    with pytest.raises(errors.TooSoon):
        slot_hold(slot_id=slot.pk, citizen=citizen, now=NOW + timedelta(minutes=1))


def test_a_citizen_at_the_online_limit_cannot_hold_another_slot(role, citizen):
    for hours in (48, 49):
        appointment_book(
            slot_id=slot_at(role, hours=hours).pk,
            citizen=citizen,
            reason="follow_up",
            channel=Appointment.Channel.PORTAL,
            now=NOW,
        )
    with pytest.raises(errors.LimitReached):
        slot_hold(slot_id=slot_at(role, hours=50).pk, citizen=citizen, now=NOW)


def test_a_gmf_slot_can_be_held_by_a_patient_of_another_doctor_of_the_gmf_but_not_of_another_gmf(role):
    slot = slot_at(role, audience=Audience.GMF_PATIENTS)
    colleague_patient = EnrolmentFactory(gmf=role.clinic.gmf).citizen
    stranger = EnrolmentFactory(gmf=None).citizen
    with pytest.raises(errors.NotEligible):
        slot_hold(slot_id=slot.pk, citizen=stranger, now=NOW)
    assert slot_hold(slot_id=slot.pk, citizen=colleague_patient, now=NOW).slot_id == slot.pk
