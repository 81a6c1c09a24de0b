"""Reads of the summary tables for the dashboard, the exports, the analysts' API and the clinic view.

Only ``WeekStat``, ``DemandWeek`` and ``ClinicActivity`` are read here: never the raw slots. Without a
GMF or clinic filter the region rollups are read (18 rows a week for the province); with one, the
clinic rows of that GMF or clinic. Every figure leaves here already suppressed (cells under 5 shown
as "<5"), so that no page, export or API can forget it.
"""

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from clinics.models import Clinic, Region

from ..models import Reason
from .aggregate import DEMAND_TZ, MAPS, SUMMED, week_of
from .figures import (
    empty_hist,
    hist_add,
    is_small,
    percentile_hours,
    rate,
    suppress_count,
    suppress_percentile,
    suppress_rate,
)
from .models import ClinicActivity, DemandWeek, WeekStat

DEFAULT_WEEKS_BACK = 4
DEFAULT_WEEKS_AHEAD = 8
# The clinic view compares with the region only where no peer can be singled out.
MIN_PEERS = 5


@dataclass(frozen=True)
class Filters:
    week_from: date
    week_to: date
    region: str = ""
    gmf_id: int | None = None
    clinic_id: int | None = None

    @property
    def by_clinic(self) -> bool:
        return self.gmf_id is not None or self.clinic_id is not None

    def as_dict(self) -> dict[str, Any]:
        """Codes and ids only: safe for the access log and the exports' header."""
        return {
            "week_from": self.week_from.isoformat(),
            "week_to": self.week_to.isoformat(),
            "region": self.region or None,
            "gmf": self.gmf_id,
            "clinic": self.clinic_id,
        }


def default_weeks(now: datetime | None = None) -> tuple[date, date]:
    this_week = week_of(now or timezone.now(), DEMAND_TZ)
    return (
        this_week - timedelta(weeks=DEFAULT_WEEKS_BACK),
        this_week + timedelta(weeks=DEFAULT_WEEKS_AHEAD - 1),
    )


# --- totals and figures ----------------------------------------------------------------------------


@dataclass
class Totals:
    slots_offered: int = 0
    slots_booked: int = 0
    slots_emr: int = 0
    appointments: int = 0
    attended: int = 0
    noshow: int = 0
    cancelled: int = 0
    clinics: int = 0
    maps: dict[str, dict[str, int]] = field(default_factory=lambda: {name: {} for name in MAPS})
    lead_hist: list[int] = field(default_factory=empty_hist)

    def add(self, row: WeekStat) -> None:
        for name in SUMMED:
            setattr(self, name, getattr(self, name) + getattr(row, name))
        for name in MAPS:
            counts = self.maps[name]
            for key, n in getattr(row, name).items():
                counts[key] = counts.get(key, 0) + n
        hist_add(self.lead_hist, row.lead_hist)


def totals_of(rows: Iterable[WeekStat]) -> Totals:
    totals = Totals()
    for row in rows:
        totals.add(row)
    return totals


def figures(t: Totals) -> dict[str, Any]:
    """The headline figures of docs/metrics.md, suppressed. Keys are the stable names used by the
    exports and the API; the pages label them with the same words as docs/metrics.md."""
    outcomes = t.attended + t.noshow
    median = percentile_hours(t.lead_hist, 0.5)
    p90 = percentile_hours(t.lead_hist, 0.9)
    return {
        "slots_offered": suppress_count(t.slots_offered),
        "slots_booked": suppress_count(t.slots_booked),
        "fill_rate": suppress_rate(rate(t.slots_booked, t.slots_offered), t.slots_booked, t.slots_offered),
        "lead_time_median_hours": suppress_percentile(median, t.appointments),
        "lead_time_p90_hours": suppress_percentile(p90, t.appointments),
        "appointments": suppress_count(t.appointments),
        "cancellations": suppress_count(t.cancelled),
        "noshow_rate": suppress_rate(rate(t.noshow, outcomes), t.noshow, outcomes),
        "emr_share": suppress_rate(rate(t.slots_emr, t.slots_offered), t.slots_emr, t.slots_offered),
    }


def breakdown(counts: dict[str, int], labels: dict[str, str], total: int) -> list[dict[str, Any]]:
    """Rows of one breakdown in the order of ``labels``: code, label, count and share, suppressed."""
    return [
        {
            "code": code,
            "label": label,
            "count": suppress_count(counts.get(code, 0)),
            "share": suppress_rate(rate(counts.get(code, 0), total), counts.get(code, 0), total),
        }
        for code, label in labels.items()
    ]


# --- the dashboard ---------------------------------------------------------------------------------


def _stat_rows(f: Filters) -> QuerySet[WeekStat]:
    rows = WeekStat.objects.filter(week__gte=f.week_from, week__lte=f.week_to)
    if f.by_clinic:
        rows = rows.filter(clinic__isnull=False)
        if f.gmf_id is not None:
            rows = rows.filter(gmf_id=f.gmf_id)
        if f.clinic_id is not None:
            rows = rows.filter(clinic_id=f.clinic_id)
    else:
        rows = rows.filter(clinic__isnull=True)
    if f.region:
        rows = rows.filter(region_id=f.region)
    return rows


@dataclass
class Dashboard:
    filters: Filters
    totals: Totals
    headline: dict[str, Any]
    weeks: list[dict[str, Any]]
    regions: list[dict[str, Any]]
    breakdowns: dict[str, list[dict[str, Any]]]
    demand: dict[str, Any]
    computed_at: datetime | None


def _labels() -> dict[str, dict[str, str]]:
    from ..models import Appointment, Audience, Modality, Slot

    timing = {
        "under_24h": _("Less than 24 hours before"),
        "1_to_7_days": _("1 to 7 days before"),
        "over_7_days": _("More than 7 days before"),
        "unknown": _("Unknown"),
    }
    return {
        "offered_by_audience": {k: str(v) for k, v in Audience.choices},
        "offered_by_reason": {k: str(v) for k, v in Reason.choices},
        "offered_by_modality": {k: str(v) for k, v in Modality.choices},
        "offered_by_source": {k: str(v) for k, v in Slot.Source.choices},
        "booked_by_channel": {k: str(v) for k, v in Appointment.Channel.choices},
        "cancelled_by_reason": {
            **{k: str(v) for k, v in Appointment.CancelReason.choices},
            "unspecified": str(_("Not given")),
        },
        "cancelled_by_actor": {"citizen": str(_("By the citizen")), "clinic": str(_("By the clinic"))},
        "cancelled_by_timing": {k: str(v) for k, v in timing.items()},
    }


def dashboard(f: Filters) -> Dashboard:
    rows = list(_stat_rows(f).order_by("week", "region_id"))
    totals = totals_of(rows)
    by_week: dict[date, Totals] = defaultdict(Totals)
    by_region: dict[str, Totals] = defaultdict(Totals)
    for row in rows:
        by_week[row.week].add(row)
        by_region[row.region_id].add(row)
    weeks = []
    week = f.week_from
    while week <= f.week_to:
        weeks.append({"week": week, **figures(by_week.get(week, Totals()))})
        week += timedelta(weeks=1)
    region_names = dict(Region.objects.values_list("code", "name_fr"))
    regions = [
        {"region": code, "name": region_names.get(code, code), **figures(t)}
        for code, t in sorted(by_region.items())
    ]
    labels = _labels()
    counts = dict(totals.maps)
    counts["offered_by_source"] = {"emr": totals.slots_emr, "web": totals.slots_offered - totals.slots_emr}
    denominators = {
        "offered_by_audience": totals.slots_offered,
        "offered_by_reason": totals.slots_offered,
        "offered_by_modality": totals.slots_offered,
        "offered_by_source": totals.slots_offered,
        "booked_by_channel": totals.appointments,
        "cancelled_by_reason": totals.cancelled,
        "cancelled_by_actor": totals.cancelled,
        "cancelled_by_timing": totals.cancelled,
    }
    breakdowns = {name: breakdown(counts.get(name, {}), labels[name], denominators[name]) for name in labels}
    computed = max((r.computed_at for r in rows), default=None)
    return Dashboard(
        filters=f,
        totals=totals,
        headline=figures(totals),
        weeks=weeks,
        regions=regions,
        breakdowns=breakdowns,
        demand=unmet_demand(f, region_names=region_names),
        computed_at=computed,
    )


def unmet_demand(f: Filters, *, region_names: dict[str, str] | None = None) -> dict[str, Any]:
    """Searches without result in the weeks and region chosen (GMF and clinic filters do not apply:
    a search names a place, not a clinic), ranked by region, by reason and by FSA."""
    names = region_names if region_names is not None else dict(Region.objects.values_list("code", "name_fr"))
    rows = DemandWeek.objects.filter(week__gte=f.week_from, week__lte=f.week_to)
    if f.region:
        rows = rows.filter(region_id=f.region)
    by_region = rows.values_list("region_id").annotate(n=Sum("misses")).order_by("-n", "region_id")
    by_reason = rows.values_list("reason").annotate(n=Sum("misses")).order_by("-n", "reason")
    by_fsa = (
        rows.exclude(fsa="")
        .values_list("fsa", "region_id")
        .annotate(n=Sum("misses"))
        .order_by("-n", "fsa")[:15]
    )
    waitlist = rows.filter(waitlist_length__isnull=False, week=f.week_to).aggregate(
        n=Sum("waitlist_length"), rows=Count("id")
    )
    reasons = {k: str(v) for k, v in Reason.choices}
    total = rows.aggregate(n=Sum("misses"))["n"] or 0
    return {
        "total": suppress_count(total),
        "by_region": [
            {
                "region": code,
                "name": names.get(code, "") if code else _("Region not known"),
                "misses": suppress_count(n),
                "raw": 0 if is_small(n) else n,
            }
            for code, n in by_region
            if n
        ],
        "by_reason": [
            {"reason": code, "label": reasons.get(code, _("Not given")), "misses": suppress_count(n)}
            for code, n in by_reason
            if n
        ],
        "by_fsa": [
            {"fsa": fsa, "region": region, "misses": suppress_count(n)} for fsa, region, n in by_fsa if n
        ],
        "waitlist_length": suppress_count(waitlist["n"]) if waitlist["rows"] else None,
    }


# --- sync health -----------------------------------------------------------------------------------


def emr_clinics_in_scope(f: Filters) -> QuerySet[Clinic]:
    clinics = Clinic.objects.filter(is_active=True, is_sandbox=False).exclude(emr_product="")
    if f.region:
        clinics = clinics.filter(region_id=f.region)
    if f.gmf_id is not None:
        clinics = clinics.filter(gmf_id=f.gmf_id)
    if f.clinic_id is not None:
        clinics = clinics.filter(pk=f.clinic_id)
    return clinics


def last_emr_change_by_clinic(clinic_ids: Iterable[int]) -> dict[int, datetime]:
    return dict(
        ClinicActivity.objects.filter(clinic_id__in=clinic_ids).values_list("clinic_id", "last_emr_change_at")
    )


@dataclass(frozen=True)
class SyncHealth:
    emr_clinics: int
    stale: list[dict[str, Any]]  # clinic id, name, region, last sync (None: never)
    stale_after_hours: int


def sync_health(
    f: Filters, *, last_snapshot: dict[int, datetime], now: datetime, stale_after_hours: int
) -> SyncHealth:
    """EMR clinics whose EMR has not synchronized (sent a snapshot or changed a slot or appointment)
    for ``stale_after_hours``; ``last_snapshot`` comes from sync's selectors, read by the page."""
    scope = emr_clinics_in_scope(f)
    clinics = list(scope.values_list("pk", "name", "region_id"))
    changes = last_emr_change_by_clinic(scope.values_list("pk", flat=True))
    cutoff = now - timedelta(hours=stale_after_hours)
    stale = []
    for pk, name, region in clinics:
        seen = [t for t in (last_snapshot.get(pk), changes.get(pk)) if t is not None]
        last = max(seen) if seen else None
        if last is None or last < cutoff:
            stale.append({"clinic": pk, "name": name, "region": region, "last_sync": last})
    stale.sort(key=lambda row: (row["last_sync"] is not None, row["last_sync"] or now, row["name"]))
    return SyncHealth(emr_clinics=len(clinics), stale=stale, stale_after_hours=stale_after_hours)


# --- exports ---------------------------------------------------------------------------------------


HEADLINE_KEYS = (
    "slots_offered",
    "slots_booked",
    "fill_rate",
    "lead_time_median_hours",
    "lead_time_p90_hours",
    "appointments",
    "cancellations",
    "noshow_rate",
    "emr_share",
)


def _breakdown_codes() -> dict[str, list[str]]:
    from ..models import Appointment, Audience, Modality

    return {
        "offered_by_audience": list(Audience.values),
        "offered_by_reason": list(Reason.values),
        "offered_by_modality": list(Modality.values),
        "booked_by_channel": list(Appointment.Channel.values),
        "cancelled_by_reason": [*Appointment.CancelReason.values, "unspecified"],
        "cancelled_by_actor": ["citizen", "clinic"],
        "cancelled_by_timing": ["under_24h", "1_to_7_days", "over_7_days", "unknown"],
    }


EXPORT_COLUMNS: tuple[str, ...] = (
    "week",
    "region",
    "gmf",
    "clinic",
    "clinic_name",
    *HEADLINE_KEYS,
    *(f"{name}.{code}" for name, codes in _breakdown_codes().items() for code in codes),
)


def export_rows(f: Filters) -> list[dict[str, Any]]:
    """One row per week and region (or per week and clinic with a GMF or clinic filter), suppressed."""
    rows = _stat_rows(f).select_related("clinic").order_by("week", "region_id", "clinic_id")
    out = []
    for row in rows:
        t = totals_of([row])
        out.append(
            {
                "week": row.week.isoformat(),
                "region": row.region_id,
                "gmf": row.gmf_id,
                "clinic": row.clinic_id,
                "clinic_name": row.clinic.name if row.clinic else "",
                **figures(t),
                **{
                    f"{name}.{code}": suppress_count(n)
                    for name in MAPS
                    for code, n in sorted(getattr(row, name).items())
                },
            }
        )
    return out


# --- the clinic view -------------------------------------------------------------------------------


@dataclass
class ClinicComparison:
    clinic: Clinic
    own: dict[str, Any]
    region_median: dict[str, Any] | None  # None: fewer than MIN_PEERS clinics in the region
    peers: int


COMPARED = ("fill_rate", "lead_time_median_hours", "noshow_rate", "emr_share")


def clinic_comparison(*, clinic: Clinic, week_from: date, week_to: date) -> ClinicComparison:
    """The clinic's own figures and, for each, the median over the clinics of its region (each
    clinic's figure first, then the median of those), shown only when the region has at least
    ``MIN_PEERS`` clinics with figures in the period."""
    rows = WeekStat.objects.filter(
        region_id=clinic.region_id, week__gte=week_from, week__lte=week_to, clinic__isnull=False
    ).defer("computed_at")
    per_clinic: dict[int, Totals] = defaultdict(Totals)
    for row in rows:
        assert row.clinic_id is not None
        per_clinic[row.clinic_id].add(row)
    own = figures(per_clinic.get(clinic.pk, Totals()))
    peers = len(per_clinic)
    if peers < MIN_PEERS:
        return ClinicComparison(clinic=clinic, own=own, region_median=None, peers=peers)
    medians: dict[str, Any] = {}
    for key in COMPARED:
        values = [figures(t)[key] for t in per_clinic.values()]
        numbers = [v for v in values if isinstance(v, int | float)]
        medians[key] = round(statistics.median(numbers), 1) if len(numbers) >= MIN_PEERS else None
    return ClinicComparison(clinic=clinic, own=own, region_median=medians, peers=peers)
