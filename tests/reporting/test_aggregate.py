"""The summary rows: every figure of the hand-computed week, and incremental runs equal a rebuild."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from booking.models import Appointment, OutboxEvent, Reason, ReportingWatermark, Slot, WeekStat
from booking.reporting.aggregate import DEMAND_TZ, reporting_aggregate, week_of
from booking.reporting.figures import LEAD_BINS, percentile_hours
from booking.services import appointment_book, appointment_cancel, slot_withdraw
from clinics.models import Region
from tests.factories import CitizenFactory, ClinicFactory, RegionFactory, RoleFactory, SlotFactory

from .conftest import WEEK, build_fixture_week

pytestmark = pytest.mark.django_db


def test_each_figure_of_the_hand_computed_week(fixture_week):
    reporting_aggregate()
    row = WeekStat.objects.get(clinic=fixture_week.clinic, week=WEEK)
    assert row.region_id == fixture_week.clinic.region_id
    assert row.gmf_id == fixture_week.clinic.gmf_id
    assert (row.slots_offered, row.slots_booked, row.slots_emr) == (11, 5, 4)
    assert row.offered_by_audience == {"public": 7, "gmf_patients": 2, "own_patients": 1, "not_online": 1}
    assert row.offered_by_modality == {"in_person": 9, "phone": 2}
    assert row.offered_by_reason == {
        "urgent": 11,
        "semi_urgent": 10,
        "follow_up": 10,
        "periodic": 10,
        "pregnancy": 10,
        "child_0_5": 10,
    }
    assert row.booked_by_channel == {"emr": 2, "agenda": 3}
    assert (row.appointments, row.attended, row.noshow, row.cancelled) == (5, 2, 1, 2)
    assert row.cancelled_by_reason == {"other": 1, "feeling_better": 1}
    assert row.cancelled_by_actor == {"clinic": 1, "citizen": 1}
    assert row.cancelled_by_timing == {"under_24h": 1, "1_to_7_days": 1}
    assert sum(row.lead_hist) == 5
    assert percentile_hours(row.lead_hist, 0.5) == 30
    assert percentile_hours(row.lead_hist, 0.9) == 240
    # The slot at 23:30 on Sunday, Montréal time, is 04:30 on Monday UTC: still this week.
    assert not WeekStat.objects.filter(clinic=fixture_week.clinic).exclude(week=WEEK).exists()


def test_the_region_rollup_sums_its_clinics(fixture_week):
    other = build_fixture_week(ClinicFactory(region=fixture_week.clinic.region, gmf=None))
    reporting_aggregate()
    rollup = WeekStat.objects.get(clinic__isnull=True, region=fixture_week.clinic.region, week=WEEK)
    assert rollup.clinics == 2
    assert (rollup.slots_offered, rollup.slots_booked, rollup.noshow) == (22, 10, 2)
    assert rollup.booked_by_channel == {"emr": 4, "agenda": 6}
    assert percentile_hours(rollup.lead_hist, 0.5) == 30
    assert other.clinic.pk != fixture_week.clinic.pk


def test_a_run_recomputes_only_the_weeks_touched_since_the_last_run(fixture_week):
    role = fixture_week.slots[0].role
    later = SlotFactory(role=role, start=datetime(2027, 3, 2, 15, 0, tzinfo=UTC))
    reporting_aggregate()
    first = {r.week: r.computed_at for r in WeekStat.objects.filter(clinic=fixture_week.clinic)}
    assert set(first) == {WEEK, week_of(later.start, fixture_week.clinic.tz)}
    # An hour passes: the fixture's events fall out of the overlap that the next run reads again.
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(hours=1))
    ReportingWatermark.objects.update(until=timezone.now() - timedelta(minutes=1))
    slot_withdraw(slot_id=later.pk, channel="clinic")
    reporting_aggregate()
    rows = {r.week: r for r in WeekStat.objects.filter(clinic=fixture_week.clinic)}
    assert rows[WEEK].computed_at == first[WEEK]  # untouched week: not recomputed
    assert week_of(later.start, fixture_week.clinic.tz) not in rows  # its only slot is withdrawn


def test_the_clinic_activity_records_the_last_emr_change(fixture_week):
    reporting_aggregate()
    from booking.models import ClinicActivity

    slot = SlotFactory(role=fixture_week.slots[0].role, start=datetime(2027, 3, 3, 15, 0, tzinfo=UTC))
    before = timezone.now()
    slot_withdraw(slot_id=slot.pk, channel="emr")
    reporting_aggregate()
    assert ClinicActivity.objects.get(clinic=fixture_week.clinic).last_emr_change_at >= before


# --- incremental runs against the raw data -----------------------------------------------------


def _naive(clinic_ids):
    """The headline figures straight from the raw rows, one slot and one appointment at a time."""
    out: dict = {}
    for slot in Slot.objects.filter(clinic_id__in=clinic_ids).select_related("clinic"):
        if slot.status not in ("free", "booked"):
            continue
        entry = out.setdefault((slot.clinic_id, week_of(slot.start, slot.clinic.tz)), [0, 0, 0, 0, []])
        entry[0] += 1
        entry[1] += slot.status == "booked"
    for a in Appointment.objects.filter(clinic_id__in=clinic_ids).select_related("clinic"):
        entry = out.setdefault((a.clinic_id, week_of(a.start, a.clinic.tz)), [0, 0, 0, 0, []])
        if a.status in ("cancelled_by_citizen", "cancelled_by_clinic"):
            entry[2] += 1
        if a.status == "noshow":
            entry[3] += 1
        if a.is_occupying:
            entry[4].append(max(0, int((a.start - a.created_at).total_seconds() // 3600)))
    return out


def _stored(clinic_ids):
    return {
        (r.clinic_id, r.week): (r.slots_offered, r.slots_booked, r.cancelled, r.noshow, r.lead_hist)
        for r in WeekStat.objects.filter(clinic_id__in=clinic_ids)
    }


def _binned_median(hours):
    hist = [0] * len(LEAD_BINS)
    from booking.reporting.figures import lead_bin

    for h in hours:
        hist[lead_bin(h)] += 1
    return percentile_hours(hist, 0.5)


def test_incremental_runs_agree_with_a_recomputation_from_the_raw_rows():
    rng = random.Random(6)
    halifax = RegionFactory(code="11", name_fr="Gaspésie–Îles-de-la-Madeleine")
    clinics = [ClinicFactory(), ClinicFactory(), ClinicFactory(region=halifax, time_zone="America/Halifax")]
    roles = [RoleFactory(clinic=c) for c in clinics]
    base = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    slots = [
        SlotFactory(role=rng.choice(roles), start=base + timedelta(minutes=15 * i, days=rng.randrange(0, 21)))
        for i in range(60)
    ]
    reporting_aggregate()
    # Changes after the first run, through the booking services (each writes its outbox event).
    booked = []
    for slot in rng.sample(slots, 25):
        booked.append(
            appointment_book(
                slot_id=slot.pk, citizen=CitizenFactory(), reason=Reason.FOLLOW_UP, channel="agenda"
            )
        )
    reporting_aggregate()
    for appointment in booked[:6]:
        appointment_cancel(appointment=appointment, reason="other", by_clinic=True)
    for slot in Slot.objects.filter(pk__in=[s.pk for s in slots], status="free")[:5]:
        slot_withdraw(slot_id=slot.pk, channel="clinic")
    reporting_aggregate()
    ids = [c.pk for c in clinics]
    naive = _naive(ids)
    stored = _stored(ids)
    assert set(stored) == set(naive)
    for key, (offered, booked_n, cancelled, noshow, hours) in naive.items():
        s = stored[key]
        assert s[:4] == (offered, booked_n, cancelled, noshow), key
        assert sum(s[4]) == len(hours)
        assert percentile_hours(s[4], 0.5) == _binned_median(hours)
    incremental = _stored(ids)
    reporting_aggregate(full=True)
    assert _stored(ids) == incremental
    assert Region.objects.filter(code="11").exists()


def test_unmet_demand_counts_searches_without_result_by_week_region_fsa_and_reason(fixture_week):
    from booking.models import DemandWeek

    from .conftest import add_misses

    region = fixture_week.clinic.region
    at = datetime(2027, 2, 10, 15, 0, tzinfo=UTC)
    add_misses(region=region, fsa="H2X", reason="urgent", count=7, at=at)
    add_misses(region=region, fsa="H2X", reason="follow_up", count=2, at=at)
    add_misses(region=None, fsa="", reason="urgent", count=1, at=at + timedelta(days=7))
    reporting_aggregate()
    rows = {(d.week, d.region_id, d.fsa, d.reason): d.misses for d in DemandWeek.objects.all()}
    assert rows == {
        (WEEK, region.pk, "H2X", "urgent"): 7,
        (WEEK, region.pk, "H2X", "follow_up"): 2,
        (WEEK + timedelta(days=7), None, "", "urgent"): 1,
    }
    assert all(d.waitlist_length is None for d in DemandWeek.objects.all())


def test_a_run_that_finds_another_in_progress_does_nothing(fixture_week):
    import psycopg
    from django.db import connection

    from booking.reporting.aggregate import LOCK_KEY

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        assert reporting_aggregate().get("skipped") == 1
        assert not WeekStat.objects.exists()
        other.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
    assert "skipped" not in reporting_aggregate()
    assert WeekStat.objects.filter(clinic=fixture_week.clinic).exists()


def test_the_waitlist_length_counts_the_people_waiting_per_region():
    from booking.models import DemandWeek
    from booking.waitlist.services import waitlist_request_create, waitlist_request_withdraw
    from tests.factories import FsaFactory

    fsa = FsaFactory()
    today = timezone.localdate()
    waiting = CitizenFactory(first_name="Anne")
    gave_up = CitizenFactory(first_name="Paul", birth_date=datetime(1970, 5, 5).date())
    for citizen in (waiting, gave_up):
        waitlist_request_create(
            citizen=citizen, path="near", reason=Reason.FOLLOW_UP, date_from=today, date_to=today, fsa="H2X"
        )
    withdrawn = gave_up.waitlist_requests.get()
    waitlist_request_withdraw(citizen=gave_up, request_id=withdrawn.pk)
    reporting_aggregate()
    rows = DemandWeek.objects.filter(week=week_of(timezone.now(), DEMAND_TZ), waitlist_length__isnull=False)
    assert {(d.region_id, d.waitlist_length) for d in rows} == {(fsa.region_id, 1)}
