"""Publishing a slot at a clinic's local time: daylight-saving gaps and overlaps refused."""

import threading
from datetime import UTC, datetime

import pytest
from django.db import connection

from booking import errors
from booking.models import OutboxEvent, Slot
from booking.services import local_to_utc, slot_create
from tests.factories import ClinicFactory, RoleFactory

pytestmark = pytest.mark.django_db


def _create(role, local, minutes=15):
    return slot_create(role=role, local_start=local, minutes=minutes, reasons=["follow_up"])


def test_a_slot_is_stored_in_utc_from_the_clinics_local_time():
    role = RoleFactory(clinic=ClinicFactory(time_zone="America/Halifax"))
    slot = _create(role, datetime(2027, 1, 12, 9, 0))
    assert slot.start == datetime(2027, 1, 12, 13, 0, tzinfo=UTC)
    assert slot.local_start().hour == 9


def test_slot_creation_appends_an_outbox_event_in_the_same_transaction():
    role = RoleFactory()
    slot = _create(role, datetime(2027, 1, 12, 9, 0))
    event = OutboxEvent.objects.get(slot=slot)
    assert event.kind == "slot.created"
    assert event.clinic_id == role.clinic_id


@pytest.mark.parametrize("tz", ["America/Toronto", "America/Halifax"])
def test_a_time_in_the_spring_forward_gap_is_refused_with_a_clear_error(tz):
    role = RoleFactory(clinic=ClinicFactory(time_zone=tz))
    with pytest.raises(errors.NonexistentLocalTime):
        _create(role, datetime(2027, 3, 14, 2, 30))
    assert not Slot.objects.exists()


@pytest.mark.parametrize("tz", ["America/Toronto", "America/Halifax"])
def test_a_time_in_the_repeated_fall_back_hour_is_refused(tz):
    role = RoleFactory(clinic=ClinicFactory(time_zone=tz))
    with pytest.raises(errors.AmbiguousLocalTime):
        _create(role, datetime(2026, 11, 1, 1, 30))


def test_times_on_either_side_of_the_change_are_accepted():
    role = RoleFactory()
    before = _create(role, datetime(2027, 3, 14, 1, 30))
    after = _create(role, datetime(2027, 3, 14, 3, 0))
    # 01:30 EST is 06:30 UTC; 03:00 EDT is 07:00 UTC: half an hour apart in real time.
    assert (after.start - before.start).total_seconds() == 30 * 60


def test_blanc_sablon_has_no_daylight_saving_so_no_gap():
    assert local_to_utc(
        local=datetime(2027, 3, 14, 2, 30), tz=ClinicFactory.build(time_zone="America/Blanc-Sablon").tz
    ) == datetime(2027, 3, 14, 6, 30, tzinfo=UTC)


def test_a_practitioner_cannot_have_overlapping_slots_even_in_two_clinics():
    first = RoleFactory()
    second = RoleFactory(practitioner=first.practitioner)
    _create(first, datetime(2027, 1, 12, 9, 0), minutes=30)
    with pytest.raises(errors.PractitionerOverlap):
        _create(second, datetime(2027, 1, 12, 9, 15))
    # Back to back is fine.
    assert _create(second, datetime(2027, 1, 12, 9, 30)).pk


def test_a_withdrawn_slot_frees_the_time():
    role = RoleFactory()
    slot = _create(role, datetime(2027, 1, 12, 9, 0))
    Slot.objects.filter(pk=slot.pk).update(status=Slot.Status.CANCELLED)
    assert _create(role, datetime(2027, 1, 12, 9, 0)).pk != slot.pk


@pytest.mark.parametrize(
    "minutes,reasons", [(0, ["follow_up"]), (300, ["follow_up"]), (15, []), (15, ["nope"])]
)
def test_invalid_length_or_reasons_are_refused(minutes, reasons):
    with pytest.raises(errors.InvalidSlot):
        slot_create(
            role=RoleFactory(), local_start=datetime(2027, 1, 12, 9, 0), minutes=minutes, reasons=reasons
        )


@pytest.mark.django_db(transaction=True)
def test_concurrent_overlapping_slots_for_one_practitioner_one_wins():
    first = RoleFactory()
    second = RoleFactory(practitioner=first.practitioner)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def attempt(i):
        role = first if i % 2 else second
        try:
            barrier.wait()
            _create(role, datetime(2027, 1, 12, 9, i), minutes=30)
            outcomes.append("created")
        except errors.PractitionerOverlap:
            outcomes.append("overlap")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("created") == 1
    assert outcomes.count("overlap") == 7
    assert Slot.objects.filter(practitioner=first.practitioner).count() == 1
