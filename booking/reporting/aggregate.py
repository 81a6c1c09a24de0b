"""The incremental aggregation behind docs/metrics.md: summary rows per clinic × ISO week.

Each run (Celery beat, ``booking.tasks.reporting_aggregate``) looks only at what changed since the
previous run: the outbox events written since the watermark (every change to a slot or an appointment
writes one, invariant 5) name the clinic-weeks to recompute; searches without result recorded since
the demand watermark name the demand weeks. A touched clinic-week is recomputed whole from the raw
rows, so a run is idempotent and a late or repeated run only redoes work. The region rollups of the
touched region-weeks are then summed again from their clinic rows.

Accepted race: an event whose transaction commits more than ``OVERLAP`` after its ``created_at`` is
missed by the incremental run; booking transactions last milliseconds (lock timeouts), and the
nightly full run (``full=True``) recomputes everything.
"""

import logging
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Max, Min
from django.db.models.functions import TruncWeek
from django.utils import timezone

from clinics.models import Clinic

from ..models import OCCUPYING_STATUSES, REASON_BITS, Appointment, OutboxEvent, SearchMiss, Slot
from . import hooks
from .figures import empty_hist, hist_add, lead_bin, merge_counts, timing_bucket
from .models import ClinicActivity, DemandWeek, ReportingWatermark, WeekStat

logger = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=10)
# Slots that were offered: published and not taken back (blocked or withdrawn slots were not).
OFFERED_STATUSES = (Slot.Status.FREE, Slot.Status.BOOKED)
CANCELLED_STATUSES = (Appointment.Status.CANCELLED_BY_CITIZEN, Appointment.Status.CANCELLED_BY_CLINIC)
ATTENDED_STATUSES = (Appointment.Status.ARRIVED, Appointment.Status.FULFILLED)
# Searches without result are counted by week in Quebec time (most of the province).
DEMAND_TZ = zoneinfo.ZoneInfo("America/Toronto")

Key = tuple[int, date]  # (clinic id, Monday of the week)


def week_of(moment: datetime, tz: zoneinfo.ZoneInfo) -> date:
    local = moment.astimezone(tz).date()
    return local - timedelta(days=local.weekday())


def week_bounds(week: date, tz: zoneinfo.ZoneInfo) -> tuple[datetime, datetime]:
    """UTC instants of Monday 00:00 and the next Monday 00:00, local time (DST-safe)."""
    return (
        datetime.combine(week, time.min, tzinfo=tz).astimezone(UTC),
        datetime.combine(week + timedelta(days=7), time.min, tzinfo=tz).astimezone(UTC),
    )


@dataclass
class _Acc:
    slots_offered: int = 0
    slots_booked: int = 0
    slots_emr: int = 0
    appointments: int = 0
    attended: int = 0
    noshow: int = 0
    cancelled: int = 0
    offered_by_audience: dict[str, int] = field(default_factory=dict)
    offered_by_reason: dict[str, int] = field(default_factory=dict)
    offered_by_modality: dict[str, int] = field(default_factory=dict)
    booked_by_channel: dict[str, int] = field(default_factory=dict)
    cancelled_by_reason: dict[str, int] = field(default_factory=dict)
    cancelled_by_timing: dict[str, int] = field(default_factory=dict)
    cancelled_by_actor: dict[str, int] = field(default_factory=dict)
    lead_hist: list[int] = field(default_factory=empty_hist)


def _bump(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


def _accumulate(
    accs: dict[Key, _Acc],
    *,
    tz: zoneinfo.ZoneInfo,
    clinic_ids: list[int] | None,
    start: datetime,
    end: datetime,
) -> None:
    """Add the slots and appointments of clinics in ``tz`` (``clinic_ids`` or all) that start in
    ``[start, end)`` to ``accs``, keyed by clinic and local week."""
    # Partner-sandbox clinics are never in provincial figures (docs/vendors.md).
    slots = Slot.objects.filter(
        clinic__time_zone=str(tz),
        clinic__is_sandbox=False,
        start__gte=start,
        start__lt=end,
        status__in=OFFERED_STATUSES,
    )
    appointments = Appointment.objects.filter(
        clinic__time_zone=str(tz), clinic__is_sandbox=False, start__gte=start, start__lt=end
    )
    if clinic_ids is not None:
        slots = slots.filter(clinic_id__in=clinic_ids)
        appointments = appointments.filter(clinic_id__in=clinic_ids)
    grouped = (
        slots.annotate(wk=TruncWeek("start", tzinfo=tz))
        .values_list("clinic_id", "wk", "status", "audience", "modality", "source", "reasons")
        .annotate(n=Count("id"))
        .order_by()
    )
    for clinic_id, wk, status, audience, modality, source, reasons, n in grouped:
        acc = accs.setdefault((clinic_id, wk.astimezone(tz).date()), _Acc())
        acc.slots_offered += n
        if status == Slot.Status.BOOKED:
            acc.slots_booked += n
        if source == Slot.Source.EMR:
            acc.slots_emr += n
        _bump(acc.offered_by_audience, audience, n)
        _bump(acc.offered_by_modality, modality, n)
        for code, bit in REASON_BITS.items():
            if reasons & bit:
                _bump(acc.offered_by_reason, code, n)
    rows = appointments.values_list(
        "clinic_id", "start", "created_at", "status", "channel", "cancel_reason", "cancelled_at"
    ).order_by()
    for clinic_id, a_start, created_at, status, channel, cancel_reason, cancelled_at in rows.iterator(
        chunk_size=5000
    ):
        acc = accs.setdefault((clinic_id, week_of(a_start, tz)), _Acc())
        if status in OCCUPYING_STATUSES:
            acc.appointments += 1
            _bump(acc.booked_by_channel, channel)
            acc.lead_hist[lead_bin((a_start - created_at).total_seconds() / 3600)] += 1
            if status in ATTENDED_STATUSES:
                acc.attended += 1
            elif status == Appointment.Status.NOSHOW:
                acc.noshow += 1
        elif status in CANCELLED_STATUSES:
            acc.cancelled += 1
            _bump(acc.cancelled_by_reason, cancel_reason or "unspecified")
            _bump(
                acc.cancelled_by_actor,
                "citizen" if status == Appointment.Status.CANCELLED_BY_CITIZEN else "clinic",
            )
            before = None if cancelled_at is None else (a_start - cancelled_at).total_seconds() / 3600
            _bump(acc.cancelled_by_timing, timing_bucket(before))


def _write(accs: dict[Key, _Acc], keys: Iterable[Key], now: datetime) -> set[tuple[str, date]]:
    """Replace the clinic rows of ``keys`` with ``accs``; return the region-weeks to roll up again."""
    keys = set(keys)
    clinics = {
        c.pk: c
        for c in Clinic.objects.filter(pk__in={k[0] for k in keys}, is_sandbox=False).only(
            "pk", "region_id", "gmf_id"
        )
    }
    touched: set[tuple[str, date]] = set()
    rows = []
    for clinic_id, week in keys:
        clinic = clinics.get(clinic_id)
        if clinic is None:
            continue
        touched.add((clinic.region_id, week))
        acc = accs.get((clinic_id, week))
        if acc is None:
            continue  # nothing left that week (every slot withdrawn): the old row is deleted below
        rows.append(
            WeekStat(
                clinic_id=clinic_id,
                week=week,
                region_id=clinic.region_id,
                gmf_id=clinic.gmf_id,
                computed_at=now,
                **acc.__dict__,
            )
        )
    by_week: dict[date, list[int]] = defaultdict(list)
    for clinic_id, week in keys:
        by_week[week].append(clinic_id)
    with transaction.atomic():
        for week, ids in by_week.items():
            WeekStat.objects.filter(week=week, clinic_id__in=ids).delete()
        WeekStat.objects.bulk_create(rows, batch_size=1000)
    return touched


SUMMED = ("slots_offered", "slots_booked", "slots_emr", "appointments", "attended", "noshow", "cancelled")
MAPS = (
    "offered_by_audience",
    "offered_by_reason",
    "offered_by_modality",
    "booked_by_channel",
    "cancelled_by_reason",
    "cancelled_by_timing",
    "cancelled_by_actor",
)


def rollup(region_weeks: Iterable[tuple[str, date]], now: datetime) -> int:
    """Sum the clinic rows of each region-week into its rollup row (clinic empty)."""
    by_week: dict[date, set[str]] = defaultdict(set)
    for region, week in region_weeks:
        by_week[week].add(region)
    written = 0
    for week, regions in by_week.items():
        rows = WeekStat.objects.filter(week=week, region_id__in=regions, clinic__isnull=False)
        groups: dict[str, list[WeekStat]] = defaultdict(list)
        for row in rows:
            groups[row.region_id].append(row)
        rollups = []
        for region, members in groups.items():
            fields: dict[str, Any] = {name: sum(getattr(r, name) for r in members) for name in SUMMED}
            for name in MAPS:
                fields[name] = merge_counts(getattr(r, name) for r in members)
            hist = empty_hist()
            for r in members:
                hist_add(hist, r.lead_hist)
            rollups.append(
                WeekStat(
                    week=week,
                    region_id=region,
                    clinic=None,
                    gmf=None,
                    clinics=len(members),
                    lead_hist=hist,
                    computed_at=now,
                    **fields,
                )
            )
        with transaction.atomic():
            WeekStat.objects.filter(week=week, region_id__in=regions, clinic__isnull=True).delete()
            WeekStat.objects.bulk_create(rollups)
        written += len(rollups)
    return written


def _watermark(source: str) -> datetime | None:
    row = ReportingWatermark.objects.filter(source=source).first()
    return row.until if row else None


def _set_watermark(source: str, until: datetime) -> None:
    ReportingWatermark.objects.update_or_create(source=source, defaults={"until": until})


def _tz_of(clinic_ids: Iterable[int]) -> dict[int, zoneinfo.ZoneInfo]:
    return {
        pk: zoneinfo.ZoneInfo(tz)
        for pk, tz in Clinic.objects.filter(pk__in=set(clinic_ids), is_sandbox=False).values_list(
            "pk", "time_zone"
        )
    }


def dirty_clinic_weeks(since: datetime) -> set[Key]:
    """The clinic-weeks that an outbox event written since ``since`` touched (the week of the slot
    or appointment start, in the clinic's time zone)."""
    events = OutboxEvent.objects.filter(created_at__gte=since).values_list(
        "clinic_id", "appointment__start", "slot__start"
    )
    starts = [(clinic_id, a_start or s_start) for clinic_id, a_start, s_start in events if a_start or s_start]
    zones = _tz_of(c for c, _ in starts)
    return {
        (clinic_id, week_of(start, zones[clinic_id])) for clinic_id, start in starts if clinic_id in zones
    }


def recompute_clinic_weeks(keys: set[Key], now: datetime) -> int:
    zones = _tz_of(k[0] for k in keys)
    groups: dict[tuple[zoneinfo.ZoneInfo, date], list[int]] = defaultdict(list)
    for clinic_id, week in keys:
        if clinic_id in zones:
            groups[(zones[clinic_id], week)].append(clinic_id)
    accs: dict[Key, _Acc] = {}
    for (tz, week), ids in groups.items():
        start, end = week_bounds(week, tz)
        _accumulate(accs, tz=tz, clinic_ids=ids, start=start, end=end)
    touched = _write(accs, keys, now)
    rollup(touched, now)
    return len(keys)


def _record_emr_activity(since: datetime) -> None:
    latest = (
        OutboxEvent.objects.filter(created_at__gte=since, channel=Slot.Source.EMR)
        .values("clinic_id")
        .annotate(at=Max("created_at"))
        .order_by()
    )
    for row in latest:
        ClinicActivity.objects.filter(clinic_id=row["clinic_id"], last_emr_change_at__lt=row["at"]).update(
            last_emr_change_at=row["at"]
        )
        ClinicActivity.objects.get_or_create(
            clinic_id=row["clinic_id"], defaults={"last_emr_change_at": row["at"]}
        )


def rebuild_all(now: datetime) -> int:
    """Every clinic-week from the raw rows (first run, nightly check, or after a clinic moved region)."""
    bounds = Slot.objects.aggregate(first=Min("start"), last=Max("start"))
    a_bounds = Appointment.objects.aggregate(first=Min("start"), last=Max("start"))
    firsts = [b for b in (bounds["first"], a_bounds["first"]) if b]
    lasts = [b for b in (bounds["last"], a_bounds["last"]) if b]
    accs: dict[Key, _Acc] = {}
    if firsts:
        start, end = min(firsts) - timedelta(days=1), max(lasts) + timedelta(days=1)
        for tz_name in Clinic.objects.values_list("time_zone", flat=True).distinct().order_by():
            _accumulate(accs, tz=zoneinfo.ZoneInfo(tz_name), clinic_ids=None, start=start, end=end)
    existing = set(WeekStat.objects.filter(clinic__isnull=False).values_list("clinic_id", "week"))
    touched = _write(accs, set(accs) | existing, now)
    touched |= set(WeekStat.objects.filter(clinic__isnull=True).values_list("region_id", "week"))
    rollup(touched, now)
    last_emr = (
        OutboxEvent.objects.filter(channel=Slot.Source.EMR)
        .values("clinic_id")
        .annotate(at=Max("created_at"))
        .order_by()
    )
    ClinicActivity.objects.all().delete()
    ClinicActivity.objects.bulk_create(
        [ClinicActivity(clinic_id=row["clinic_id"], last_emr_change_at=row["at"]) for row in last_emr]
    )
    return len(accs)


def demand_recompute(weeks: Iterable[date], now: datetime) -> int:
    """Replace the unmet-demand rows of ``weeks`` with counts of the searches without result."""
    written = 0
    for week in set(weeks):
        start, end = week_bounds(week, DEMAND_TZ)
        counts = (
            SearchMiss.objects.filter(created_at__gte=start, created_at__lt=end)
            .values_list("region_id", "fsa", "reason")
            .annotate(n=Count("id"))
            .order_by()
        )
        rows = [
            DemandWeek(week=week, region_id=region, fsa=fsa, reason=reason, misses=n, computed_at=now)
            for region, fsa, reason, n in counts
        ]
        waitlists = hooks.waitlist_length_by_region(week=week)
        if waitlists is not None:
            for region, length in waitlists.items():
                rows.append(
                    DemandWeek(
                        week=week,
                        region_id=region,
                        fsa="",
                        reason="",
                        misses=0,
                        waitlist_length=length,
                        computed_at=now,
                    )
                )
        with transaction.atomic():
            DemandWeek.objects.filter(week=week).delete()
            DemandWeek.objects.bulk_create(rows, batch_size=1000)
        written += len(rows)
    return written


def _demand_weeks_since(since: datetime | None) -> set[date]:
    misses = SearchMiss.objects.all() if since is None else SearchMiss.objects.filter(created_at__gte=since)
    weeks = (
        misses.annotate(wk=TruncWeek("created_at", tzinfo=DEMAND_TZ)).values_list("wk", flat=True).distinct()
    )
    found = {wk.astimezone(DEMAND_TZ).date() for wk in weeks.order_by()}
    if since is None:
        found |= set(DemandWeek.objects.values_list("week", flat=True))
    return found


# Session advisory lock key: one aggregation at a time (a slow full run and the next beat tick would
# otherwise both replace the same rows).
LOCK_KEY = 0x5245504F  # "REPO"


@contextmanager
def _only_one_run() -> Iterator[bool]:
    if connection.vendor != "postgresql":
        yield True  # the SQLite demo runs tasks inline, one at a time
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        got = bool(cursor.fetchone()[0])
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


def reporting_aggregate(*, now: datetime | None = None, full: bool = False) -> dict[str, int]:
    """One run: recompute what changed since the last run (everything on the first or a full run).
    A run that finds another one in progress does nothing (the next tick catches up)."""
    with _only_one_run() as alone:
        if not alone:
            logger.info("reporting aggregation already running; skipped")
            return {"clinic_weeks": 0, "demand_weeks": 0, "demand_rows": 0, "skipped": 1}
        return _aggregate(now=now or timezone.now(), full=full)


def _aggregate(*, now: datetime, full: bool) -> dict[str, int]:
    since = None if full else _watermark("outbox")
    if since is None:
        clinic_weeks = rebuild_all(now)
    else:
        dirty = dirty_clinic_weeks(since - OVERLAP)
        clinic_weeks = recompute_clinic_weeks(dirty, now) if dirty else 0
        _record_emr_activity(since - OVERLAP)
    _set_watermark("outbox", now)
    demand_since = None if full else _watermark("searchmiss")
    weeks = _demand_weeks_since(None if demand_since is None else demand_since - OVERLAP)
    if hooks.waitlist_length_by_region(week=week_of(now, DEMAND_TZ)) is not None:
        weeks.add(week_of(now, DEMAND_TZ))
    demand_rows = demand_recompute(weeks, now)
    _set_watermark("searchmiss", now)
    result = {"clinic_weeks": clinic_weeks, "demand_weeks": len(weeks), "demand_rows": demand_rows}
    logger.info("reporting aggregated", extra=result)
    return result
