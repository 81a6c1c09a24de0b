"""Daylight-saving transitions (invariant 6): times are stored in UTC and shown in clinic local time.

Most of Quebec follows America/Toronto; the Îles-de-la-Madeleine follow America/Halifax (one hour
ahead); Basse-Côte-Nord follows America/Blanc-Sablon (Atlantic time all year, no DST). Changes:
2026-11-01 and 2027-11-07 (clocks back at 02:00), 2027-03-14 (clocks forward at 02:00).
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from booking import errors
from booking.models import Appointment, Slot
from booking.selectors import SlotQuery, slot_search
from booking.services import appointment_book
from tests.factories import CitizenFactory, ClinicFactory, FsaFactory, RegionFactory, RoleFactory, SlotFactory

TORONTO = ZoneInfo("America/Toronto")
HALIFAX = ZoneInfo("America/Halifax")
BLANC_SABLON = ZoneInfo("America/Blanc-Sablon")

BEFORE_MARCH = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
BEFORE_NOVEMBER_2026 = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
BEFORE_NOVEMBER_2027 = datetime(2027, 10, 25, 12, 0, tzinfo=UTC)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def slot_from(role, start: datetime, minutes: int = 15) -> Slot:
    return SlotFactory(role=role, start=start, end=start + timedelta(minutes=minutes))


def hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M")


@pytest.fixture
def montreal(db):
    """A clinic on Montreal time (America/Toronto), at the H2X centroid."""
    FsaFactory(code="H2X", latitude=45.5145, longitude=-73.5733)
    return RoleFactory(clinic=ClinicFactory(time_zone="America/Toronto"))


@pytest.fixture
def iles_de_la_madeleine(db):
    """A clinic in Cap-aux-Meules on Atlantic time (America/Halifax)."""
    region = RegionFactory(code="11", name_fr="Gaspésie–Îles-de-la-Madeleine")
    FsaFactory(code="G4T", latitude=47.38, longitude=-61.86, place_name="Îles-de-la-Madeleine", region=region)
    clinic = ClinicFactory(
        time_zone="America/Halifax",
        latitude=47.38,
        longitude=-61.86,
        postal_code="G4T 1A1",
        city="Les Îles-de-la-Madeleine",
        region=region,
        gmf=None,
    )
    return RoleFactory(clinic=clinic)


@pytest.fixture
def blanc_sablon(db):
    """A clinic in Blanc-Sablon: Atlantic Standard Time all year."""
    region = RegionFactory(code="09", name_fr="Côte-Nord")
    FsaFactory(code="G0G", latitude=51.43, longitude=-57.13, place_name="Blanc-Sablon", region=region)
    clinic = ClinicFactory(
        time_zone="America/Blanc-Sablon",
        latitude=51.43,
        longitude=-57.13,
        postal_code="G0G 1W0",
        city="Blanc-Sablon",
        region=region,
        gmf=None,
    )
    return RoleFactory(clinic=clinic)


FSA_OF = {"montreal": "H2X", "iles_de_la_madeleine": "G4T", "blanc_sablon": "G0G"}


def found(fsa: str, now: datetime, **query) -> list[int]:
    result = slot_search(citizen=None, query=SlotQuery(path="near", fsa=fsa, **query), now=now)
    return [item.slot.pk for item in result.items]


# --- what the clinic's clock shows ---------------------------------------------------------------


def test_in_march_toronto_jumps_from_0159_to_0300_so_0330_exists_and_0230_does_not(montreal):
    starts = [utc(2027, 3, 14, 6, 0) + timedelta(minutes=15 * i) for i in range(8)]  # 06:00 → 07:45 UTC
    slots = [slot_from(montreal, s) for s in starts]
    shown = [hhmm(s.local_start()) for s in slots]
    assert shown == ["01:00", "01:15", "01:30", "01:45", "03:00", "03:15", "03:30", "03:45"]
    assert not any(t.startswith("02:") for t in shown)
    offsets = {hhmm(s.local_start()): s.local_start().utcoffset() for s in slots}
    assert offsets["01:45"] == timedelta(hours=-5)
    assert offsets["03:30"] == timedelta(hours=-4)
    # 02:30 names no instant: read as a wall time it comes back as 03:30 once through UTC.
    phantom = datetime(2027, 3, 14, 2, 30, tzinfo=TORONTO)
    assert hhmm(phantom.astimezone(UTC).astimezone(TORONTO)) == "03:30"


@pytest.mark.parametrize(("day", "first_0130_utc"), [(date(2026, 11, 1), 5), (date(2027, 11, 7), 5)])
def test_in_november_toronto_shows_0130_twice_with_two_offsets(montreal, day, first_0130_utc):
    summer = slot_from(montreal, utc(day.year, day.month, day.day, first_0130_utc, 30))
    winter = slot_from(montreal, utc(day.year, day.month, day.day, first_0130_utc + 1, 30))
    assert hhmm(summer.local_start()) == hhmm(winter.local_start()) == "01:30"
    assert summer.local_start().utcoffset() == timedelta(hours=-4)
    assert winter.local_start().utcoffset() == timedelta(hours=-5)
    assert winter.start - summer.start == timedelta(hours=1)


def test_in_march_halifax_jumps_an_hour_before_toronto(iles_de_la_madeleine):
    before = slot_from(iles_de_la_madeleine, utc(2027, 3, 14, 5, 30))
    after = slot_from(iles_de_la_madeleine, utc(2027, 3, 14, 6, 30))
    assert (hhmm(before.local_start()), hhmm(after.local_start())) == ("01:30", "03:30")
    assert before.local_start().utcoffset() == timedelta(hours=-4)
    assert after.local_start().utcoffset() == timedelta(hours=-3)


@pytest.mark.parametrize(
    "instant",
    [
        utc(2026, 10, 31, 16, 0),  # both on summer time
        utc(2026, 11, 2, 16, 0),  # both on standard time
        utc(2027, 3, 13, 16, 0),
        utc(2027, 3, 15, 16, 0),
        utc(2027, 7, 1, 16, 0),
        utc(2027, 11, 8, 16, 0),
    ],
)
def test_halifax_is_one_hour_ahead_of_toronto_on_both_sides_of_each_change(
    montreal, iles_de_la_madeleine, instant
):
    in_toronto = slot_from(montreal, instant).local_start()
    in_halifax = slot_from(iles_de_la_madeleine, instant).local_start()
    assert in_halifax.hour == in_toronto.hour + 1
    assert in_halifax.utcoffset() - in_toronto.utcoffset() == timedelta(hours=1)


def test_blanc_sablon_keeps_atlantic_standard_time_all_year(blanc_sablon):
    winter = slot_from(blanc_sablon, utc(2027, 3, 13, 15, 30))
    summer = slot_from(blanc_sablon, utc(2027, 3, 15, 15, 30))
    assert hhmm(winter.local_start()) == hhmm(summer.local_start()) == "11:30"


# --- booking across the change -------------------------------------------------------------------


def test_a_slot_just_after_the_march_change_can_be_booked_and_shows_0330(montreal):
    slot = slot_from(montreal, utc(2027, 3, 14, 7, 30))
    appointment = appointment_book(
        slot_id=slot.pk,
        citizen=CitizenFactory(),
        reason="follow_up",
        channel=Appointment.Channel.PORTAL,
        now=BEFORE_MARCH,
    )
    assert appointment.start == utc(2027, 3, 14, 7, 30)
    assert appointment.end == utc(2027, 3, 14, 7, 45)
    assert hhmm(appointment.local_start()) == "03:30"


@pytest.mark.parametrize(
    ("day", "now"), [(date(2026, 11, 1), BEFORE_NOVEMBER_2026), (date(2027, 11, 7), BEFORE_NOVEMBER_2027)]
)
def test_both_0130_slots_of_a_november_night_can_be_booked_by_two_people(montreal, day, now):
    summer = slot_from(montreal, utc(day.year, day.month, day.day, 5, 30))
    winter = slot_from(montreal, utc(day.year, day.month, day.day, 6, 30))
    first = appointment_book(
        slot_id=summer.pk,
        citizen=CitizenFactory(),
        reason="follow_up",
        channel=Appointment.Channel.PORTAL,
        now=now,
    )
    second = appointment_book(
        slot_id=winter.pk,
        citizen=CitizenFactory(),
        reason="follow_up",
        channel=Appointment.Channel.PORTAL,
        now=now,
    )
    assert first.slot_id != second.slot_id
    assert hhmm(first.local_start()) == hhmm(second.local_start()) == "01:30"


def test_one_patient_cannot_book_both_0130_slots_if_they_overlap_in_real_time(montreal):
    # A 90-minute slot from 01:00 EDT ends at 01:30 EST: it overlaps the second 01:30.
    patient = CitizenFactory()
    long_one = slot_from(montreal, utc(2026, 11, 1, 5, 0), minutes=90)
    other_role = RoleFactory(clinic=montreal.clinic)
    second_0130 = slot_from(other_role, utc(2026, 11, 1, 6, 30))
    first_0130_other = slot_from(other_role, utc(2026, 11, 1, 5, 30))
    appointment_book(
        slot_id=long_one.pk,
        citizen=patient,
        reason="follow_up",
        channel=Appointment.Channel.CLINIC_AGENDA,
        now=BEFORE_NOVEMBER_2026,
    )
    with pytest.raises(errors.PatientOverlap):
        appointment_book(
            slot_id=first_0130_other.pk,
            citizen=patient,
            reason="follow_up",
            channel=Appointment.Channel.CLINIC_AGENDA,
            now=BEFORE_NOVEMBER_2026,
        )
    assert appointment_book(
        slot_id=second_0130.pk,
        citizen=patient,
        reason="follow_up",
        channel=Appointment.Channel.CLINIC_AGENDA,
        now=BEFORE_NOVEMBER_2026,
    ).pk


def test_a_halifax_slot_just_after_the_march_change_can_be_booked(iles_de_la_madeleine):
    slot = slot_from(iles_de_la_madeleine, utc(2027, 3, 14, 6, 30))
    appointment = appointment_book(
        slot_id=slot.pk,
        citizen=CitizenFactory(),
        reason="follow_up",
        channel=Appointment.Channel.PORTAL,
        now=BEFORE_MARCH,
    )
    assert hhmm(appointment.local_start()) == "03:30"


# --- the time-of-day filter on both sides of each change -----------------------------------------

# (clinic, the day before, the day after, UTC time, local time before, local time after)
TIME_OF_DAY_CASES = [
    ("montreal", date(2027, 3, 13), date(2027, 3, 15), (16, 30), BEFORE_MARCH, "morning", "afternoon"),
    (
        "montreal",
        date(2026, 10, 31),
        date(2026, 11, 2),
        (16, 30),
        BEFORE_NOVEMBER_2026,
        "afternoon",
        "morning",
    ),
    (
        "montreal",
        date(2027, 11, 6),
        date(2027, 11, 8),
        (16, 30),
        BEFORE_NOVEMBER_2027,
        "afternoon",
        "morning",
    ),
    (
        "iles_de_la_madeleine",
        date(2027, 3, 13),
        date(2027, 3, 15),
        (15, 30),
        BEFORE_MARCH,
        "morning",
        "afternoon",
    ),
    (
        "iles_de_la_madeleine",
        date(2026, 10, 31),
        date(2026, 11, 2),
        (15, 30),
        BEFORE_NOVEMBER_2026,
        "afternoon",
        "morning",
    ),
    ("montreal", date(2027, 3, 13), date(2027, 3, 15), (21, 30), BEFORE_MARCH, "afternoon", "evening"),
    ("blanc_sablon", date(2027, 3, 13), date(2027, 3, 15), (15, 30), BEFORE_MARCH, "morning", "morning"),
]


@pytest.mark.parametrize(
    ("where", "day_before", "day_after", "at", "now", "before", "after"), TIME_OF_DAY_CASES
)
def test_the_time_of_day_filter_uses_the_clinics_local_hour_on_both_sides_of_the_change(
    request, where, day_before, day_after, at, now, before, after
):
    role = request.getfixturevalue(where)
    earlier = slot_from(role, utc(day_before.year, day_before.month, day_before.day, *at))
    later = slot_from(role, utc(day_after.year, day_after.month, day_after.day, *at))
    expected: dict[str, list[int]] = {"morning": [], "afternoon": [], "evening": []}
    expected[before].append(earlier.pk)
    expected[after].append(later.pk)
    for time_of_day, pks in expected.items():
        assert found(FSA_OF[where], now, time_of_day=time_of_day) == pks, time_of_day


def test_on_the_same_instant_toronto_may_be_morning_while_halifax_is_afternoon(
    montreal, iles_de_la_madeleine
):
    instant = utc(2027, 3, 15, 15, 30)  # 11:30 in Montreal, 12:30 in Cap-aux-Meules
    toronto_slot = slot_from(montreal, instant)
    halifax_slot = slot_from(iles_de_la_madeleine, instant)
    assert found("H2X", BEFORE_MARCH, time_of_day="morning") == [toronto_slot.pk]
    assert found("G4T", BEFORE_MARCH, time_of_day="morning") == []
    assert found("G4T", BEFORE_MARCH, time_of_day="afternoon") == [halifax_slot.pk]


# --- the date filter is in the clinic's local days -----------------------------------------------


def test_a_halifax_slot_just_after_local_midnight_belongs_to_that_local_day(iles_de_la_madeleine):
    # 00:30 in Cap-aux-Meules on 10 February is still 9 February in Montreal (23:30).
    slot = slot_from(iles_de_la_madeleine, utc(2027, 2, 10, 4, 30))
    assert slot.local_start().date() == date(2027, 2, 10)
    day = date(2027, 2, 10)
    assert found("G4T", utc(2027, 2, 1, 12, 0), date_from=day, date_to=day) == [slot.pk]


def test_a_halifax_slot_just_after_local_midnight_is_not_in_the_day_before(iles_de_la_madeleine):
    # 00:30 in Cap-aux-Meules on 11 February is 23:30 on 10 February in Montreal.
    slot = slot_from(iles_de_la_madeleine, utc(2027, 2, 11, 4, 30))
    assert slot.local_start().date() == date(2027, 2, 11)
    day = date(2027, 2, 10)
    assert found("G4T", utc(2027, 2, 1, 12, 0), date_from=day, date_to=day) == []


def test_a_toronto_slot_late_in_the_evening_belongs_to_that_local_day(montreal):
    slot = slot_from(montreal, utc(2027, 3, 15, 3, 30))  # 23:30 EDT on 14 March, after the change
    assert found("H2X", BEFORE_MARCH, date_from=date(2027, 3, 14), date_to=date(2027, 3, 14)) == [slot.pk]
    assert found("H2X", BEFORE_MARCH, date_from=date(2027, 3, 15), date_to=date(2027, 3, 15)) == []
