"""Booking reads: the three search paths, a citizen's appointments, scoped look-ups.

A search runs a bounded number of SQL queries whatever the number of results: one for the
citizen's enrolment, one for the origin's centroid (near me), one for the page of slots with their
clinic and practitioner joined (or, for a page in the short-lived cache, one primary-key query
that checks its slots are still bookable), one to record a search that found nothing.
"""

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import (
    DateTimeField,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Sqrt
from django.db.models.lookups import GreaterThan
from django.utils import timezone

from citizens.models import Citizen
from citizens.selectors import CitizenCare, citizen_care, dependants_of, patient_ids_for
from clinics.models import Clinic, Fsa

from .dbfunctions import LocalDate, LocalHour
from .models import REASON_BITS, Appointment, Audience, SearchMiss, Slot

QUEBEC_TZ = ZoneInfo("America/Toronto")
KM_PER_DEGREE = 111.195
RADII_KM = (5, 10, 25, 50, 100)
PAGE_SIZE = 10
MAX_PAGE = 50
MAX_DAYS_AHEAD = 90


class Path:
    MINE = "mine"
    GMF = "gmf"
    NEAR = "near"
    ALL = (MINE, GMF, NEAR)


TIME_OF_DAY = {"morning": (0, 12), "afternoon": (12, 17), "evening": (17, 24)}


@dataclass(frozen=True)
class SlotQuery:
    path: str
    reason: str = ""
    date_from: date | None = None
    date_to: date | None = None
    time_of_day: str = ""
    modality: str = ""
    language: str = ""
    fsa: str = ""
    radius_km: int = 25
    sort: str = "soonest"
    page: int = 1


@dataclass
class SlotResult:
    slot: Slot
    distance_km: float | None

    @property
    def local_start(self) -> datetime:
        return self.slot.local_start()

    @property
    def local_end(self) -> datetime:
        return self.slot.local_end()


@dataclass
class SearchResult:
    query: SlotQuery
    items: list[SlotResult]
    page: int
    has_next: bool
    care: CitizenCare | None = None
    origin: Fsa | None = None
    suggestions: list[str] = field(default_factory=list)


class SearchError(ValueError):
    """The query cannot run (e.g. near me without a known postal code). ``code`` names the field."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def fsa_get(code: str) -> Fsa | None:
    return Fsa.objects.filter(code=(code or "")[:3].upper()).first()


def _utc_bounds(query: SlotQuery, now: datetime) -> tuple[datetime, datetime]:
    """A UTC window for the index, one day wider than the asked dates on each side (Quebec's clinics
    are within two hours of each other); the exact day is then the clinic's local date (LocalDate)."""
    start = now
    if query.date_from:
        start = max(start, datetime.combine(query.date_from - timedelta(days=1), time.min, tzinfo=QUEBEC_TZ))
    last_day = query.date_to or (timezone.localdate(now, QUEBEC_TZ) + timedelta(days=MAX_DAYS_AHEAD))
    end = datetime.combine(last_day + timedelta(days=2), time.min, tzinfo=QUEBEC_TZ)
    return start, end


def _base(query: SlotQuery, citizen: Citizen | None, now: datetime) -> QuerySet[Slot]:
    start, end = _utc_bounds(query, now)
    earliest = ExpressionWrapper(Value(now) + F("clinic__min_notice"), output_field=DateTimeField())
    # Anyone else's live hold hides a slot; the citizen's own hold keeps it visible to them.
    held = Q(hold_expires__gt=now)
    if citizen is not None:
        held &= ~Q(holder_id=citizen.pk)
    qs = (
        Slot.objects.filter(
            status=Slot.Status.FREE,
            start__gte=start,
            start__lt=end,
            clinic__is_active=True,
            clinic__is_sandbox=False,  # partner-sandbox clinics are never public (docs/vendors.md)
        )
        .filter(start__gte=earliest)  # invariant 3: each clinic's minimum notice
        .exclude(held)
    )
    if query.date_from or query.date_to:
        qs = qs.annotate(local_date=LocalDate("start", "clinic__time_zone"))
        if query.date_from:
            qs = qs.filter(local_date__gte=query.date_from)
        if query.date_to:
            qs = qs.filter(local_date__lte=query.date_to)
    if query.reason:
        if query.reason not in REASON_BITS:
            raise SearchError("reason")
        qs = qs.filter(GreaterThan(F("reasons").bitand(REASON_BITS[query.reason]), 0))
    if query.modality:
        qs = qs.filter(modality=query.modality)
    if query.language:
        qs = qs.filter(practitioner__languages__contains=query.language)
    if query.time_of_day:
        low, high = TIME_OF_DAY[query.time_of_day]
        qs = qs.annotate(local_hour=LocalHour("start", "clinic__time_zone")).filter(
            local_hour__gte=low, local_hour__lt=high
        )
    return qs.select_related("clinic", "practitioner")


def _distance(
    origin: Fsa, radius_km: int, prefix: str = ""
) -> tuple[Q, "ExpressionWrapper[CombinedExpression]"]:
    """Distance on an equirectangular projection: within 0.5 % of the great circle up to 100 km,
    arithmetic only (the same SQL on PostgreSQL and SQLite), and a bounding box to cut early."""
    cos_lat = math.cos(math.radians(origin.latitude))
    dlat = radius_km / KM_PER_DEGREE
    dlon = dlat / max(cos_lat, 0.01)
    lat, lon = f"{prefix}latitude", f"{prefix}longitude"
    box = Q(
        **{
            f"{lat}__gte": origin.latitude - dlat,
            f"{lat}__lte": origin.latitude + dlat,
            f"{lon}__gte": origin.longitude - dlon,
            f"{lon}__lte": origin.longitude + dlon,
        }
    )
    dy = F(lat) - Value(origin.latitude)
    dx = (F(lon) - Value(origin.longitude)) * Value(cos_lat)
    return box, ExpressionWrapper(Value(KM_PER_DEGREE) * Sqrt(dx * dx + dy * dy), output_field=FloatField())


def _near_soonest(qs: QuerySet[Slot], origin: Fsa, radius_km: int) -> QuerySet[Slot]:
    """Public slots within the radius, soonest first: an index scan in start order
    (slot_free_public_start) that stops at the page's last row."""
    box, distance = _distance(origin, radius_km, prefix="clinic__")
    return (
        qs.filter(box, audience=Audience.PUBLIC)
        .annotate(distance_km=distance)
        .filter(distance_km__lte=radius_km)
        .order_by("start", "id")
    )


# "Soonest near a place" has two plans (docs/search-plan.md). Up to NEAR_PER_CLINIC_MAX clinics in the
# radius, each clinic's first k matching slots come from the (clinic, start) index (k the rows the page
# needs), the k soonest of them are picked here and only those are fetched: at most 200 short index
# probes and k rows, whatever the place. Beyond it, the area holds more than a tenth of the province's
# clinics and walking its free public slots in start order meets a page of them within about 10 x k
# rows; left to itself the planner would rather read every slot of the clinics in the box and sort.
NEAR_PER_CLINIC_MAX = 200


def _near_soonest_ids(qs: QuerySet[Slot], origin: Fsa, radius_km: int, wanted: int) -> list[int] | None:
    """The candidate slots of a sparse area: each clinic's ``wanted`` soonest matching public slots
    (the page's rows are among them), or None when more than NEAR_PER_CLINIC_MAX clinics are in
    the radius. Two bounded queries: the clinics (box index), then one probe per clinic."""
    from django.contrib.postgres.expressions import ArraySubquery

    box, distance = _distance(origin, radius_km)
    clinics = list(
        Clinic.objects.filter(box, is_active=True, is_sandbox=False)
        .annotate(distance_km=distance)
        .filter(distance_km__lte=radius_km)
        .values_list("pk", flat=True)[: NEAR_PER_CLINIC_MAX + 1]
    )
    if len(clinics) > NEAR_PER_CLINIC_MAX:
        return None
    firsts = qs.filter(clinic_id=OuterRef("pk"), audience=Audience.PUBLIC).order_by("start", "id")
    arrays = Clinic.objects.filter(pk__in=clinics).values_list(
        ArraySubquery(firsts.values("pk")[:wanted]), ArraySubquery(firsts.values("start")[:wanted])
    )
    candidates = sorted(
        (start, slot_id) for ids, starts in arrays for slot_id, start in zip(ids, starts, strict=True)
    )
    return [slot_id for _start, slot_id in candidates[:wanted]]


def _near_nearest(qs: QuerySet[Slot], origin: Fsa, radius_km: int, offset: int) -> list[tuple[Slot, float]]:
    """Nearest clinics first, each with its soonest matching slot: one probe of the
    (clinic, start) index per clinic in the radius, then one fetch of the page's slots."""
    box, distance = _distance(origin, radius_km)
    soonest = (
        qs.filter(clinic_id=OuterRef("pk"), audience=Audience.PUBLIC).order_by("start", "id").values("pk")[:1]
    )
    rows = list(
        Clinic.objects.filter(box, is_active=True, is_sandbox=False)
        .annotate(distance_km=distance, first_slot=Subquery(soonest))
        .filter(distance_km__lte=radius_km, first_slot__isnull=False)
        .order_by("distance_km", "id")
        .values_list("first_slot", "distance_km")[offset : offset + PAGE_SIZE + 1]
    )
    slots = Slot.objects.select_related("clinic", "practitioner").in_bulk([slot_id for slot_id, _ in rows])
    return [(slots[slot_id], km) for slot_id, km in rows if slot_id in slots]


def slot_search(*, citizen: Citizen | None, query: SlotQuery, now: datetime | None = None) -> SearchResult:
    """Free slots the citizen may book online on one of the three paths, one page at a time."""
    now = now or timezone.now()
    qs = _base(query, citizen, now)
    care = None
    origin = None
    if query.path in (Path.MINE, Path.GMF):
        if citizen is None:
            raise SearchError("identify")
        care = citizen_care(citizen=citizen)
        if query.path == Path.MINE:
            if care.practitioner_id is None:  # not enrolled
                raise SearchError("not_enrolled")
            qs = qs.filter(
                practitioner_id=care.practitioner_id,
                audience__in=[Audience.OWN_PATIENTS, Audience.GMF_PATIENTS, Audience.PUBLIC],
            )
        else:
            if care.gmf_id is None:
                raise SearchError("no_gmf")
            qs = qs.filter(clinic__gmf_id=care.gmf_id, audience__in=[Audience.GMF_PATIENTS, Audience.PUBLIC])
    elif query.path == Path.NEAR:
        code = query.fsa or (citizen.fsa if citizen else "")
        if not code:
            raise SearchError("postal_code")
        origin = fsa_get(code)
        if origin is None:
            raise SearchError("postal_code_unknown")
    else:
        raise SearchError("path")

    page = min(max(query.page, 1), MAX_PAGE)
    offset = (page - 1) * PAGE_SIZE
    key = _cache_key(query, page, care, origin)
    pairs: Sequence[tuple[Slot, float | None]] | None = _cached_page(key, citizen, now)
    if pairs is None:
        if origin is not None and query.sort == "nearest":
            pairs = _near_nearest(qs, origin, query.radius_km, offset)
        else:
            if origin is not None:
                if connection.vendor == "postgresql":
                    wanted = offset + PAGE_SIZE + 1
                    candidates = _near_soonest_ids(qs, origin, query.radius_km, wanted)
                    if candidates is not None:
                        # Every rule was applied when they were picked; fetched by primary key (the
                        # planner would otherwise walk each clinic's slots again), re-checked free.
                        held = Q(hold_expires__gt=now)
                        if citizen is not None:
                            held &= ~Q(holder_id=citizen.pk)
                        qs = (
                            Slot.objects.select_related("clinic", "practitioner")
                            .filter(pk__in=candidates, status=Slot.Status.FREE)
                            .exclude(held)
                        )
                qs = _near_soonest(qs, origin, query.radius_km)
            pairs = [
                (s, getattr(s, "distance_km", None))
                for s in qs.order_by("start", "id")[offset : offset + PAGE_SIZE + 1]
            ]
        _cache_page(key, pairs, citizen, now)
    rows = [pair[0] for pair in pairs]
    items = [SlotResult(slot=slot, distance_km=km) for slot, km in pairs[:PAGE_SIZE]]
    result = SearchResult(
        query=query,
        items=items,
        page=page,
        has_next=len(rows) > PAGE_SIZE and page < MAX_PAGE,
        care=care,
        origin=origin,
    )
    if not items and page == 1:
        _record_miss(query=query, citizen=citizen, origin=origin)
        result.suggestions = _suggestions(query)
    return result


# --- the short-lived search cache (docs/scaling.md) -----------------------------------------------
# A page of results is kept SEARCH_CACHE_SECONDS under its normalized query (path, the care it
# depends on, the origin, every filter, the page), as the (slot id, version, distance) of each row.
# Every read checks those rows again in one primary-key query: each must still be free, at the same
# version (a booking, a cancellation or a clinic's change bumps it), past the clinic's minimum
# notice, and not under anyone else's live hold; if one is not, the page is computed again. So a
# booked or held slot never shows from the cache; a slot freed or published meanwhile shows once the
# entry lapses: within SEARCH_CACHE_SECONDS. Redis down: no cache, the search runs.

_CACHE_PREFIX = "search:v1:"


def _cache_key(query: SlotQuery, page: int, care: CitizenCare | None, origin: Fsa | None) -> str | None:
    if settings.SEARCH_CACHE_SECONDS <= 0:
        return None
    parts = (
        query.path,
        care.practitioner_id if care and query.path == Path.MINE else "",
        care.gmf_id if care and query.path == Path.GMF else "",
        origin.code if origin else "",
        query.radius_km if origin else "",
        query.sort if origin else "",
        query.reason,
        query.date_from,
        query.date_to,
        query.time_of_day,
        query.modality,
        query.language,
        page,
    )
    return _CACHE_PREFIX + hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def _cache_page(
    key: str | None, pairs: Sequence[tuple[Slot, float | None]], citizen: Citizen | None, now: datetime
) -> None:
    if key is None or (citizen is not None and any(s.holder_id == citizen.pk for s, _ in pairs)):
        return  # a page showing the citizen's own hold is theirs alone
    rows = [(s.pk, s.version, km) for s, km in pairs]
    try:
        cache.set(key, rows, timeout=settings.SEARCH_CACHE_SECONDS)
    except Exception:  # noqa: BLE001 - no cache: the next search runs the query
        return


def _cached_page(
    key: str | None, citizen: Citizen | None, now: datetime
) -> list[tuple[Slot, float | None]] | None:
    if key is None:
        return None
    try:
        rows = cache.get(key)
    except Exception:  # noqa: BLE001
        return None
    if rows is None:
        return None
    held = Q(hold_expires__gt=now)
    wanted = Q(pk__in=[pk for pk, _, _ in rows])
    if citizen is not None:
        held &= ~Q(holder_id=citizen.pk)
        wanted |= Q(holder_id=citizen.pk, hold_expires__gt=now)  # their own hold, in the same query
    slots = (
        Slot.objects.select_related("clinic", "practitioner")
        .filter(wanted, status=Slot.Status.FREE, clinic__is_active=True)
        .exclude(held)
        .in_bulk()
    )
    if len(slots) > len(rows) or (
        citizen is not None and any(s.holder_id == citizen.pk for s in slots.values())
    ):
        return None  # the citizen holds a slot: their page is computed for them alone
    pairs = []
    for pk, version, km in rows:
        slot = slots.get(pk)
        if slot is None or slot.version != version or slot.start < now + slot.clinic.min_notice:
            return None  # taken, held, changed or too soon since: compute the page again
        pairs.append((slot, km))
    return pairs


def _record_miss(*, query: SlotQuery, citizen: Citizen | None, origin: Fsa | None) -> None:
    fsa = origin.code if origin else (citizen.fsa if citizen else "")
    SearchMiss.objects.create(
        path=query.path,
        reason=query.reason,
        fsa=fsa,
        region_id=origin.region_id if origin else None,
        radius_km=query.radius_km if query.path == Path.NEAR else None,
    )


def _suggestions(query: SlotQuery) -> list[str]:
    tips = []
    if query.path == Path.NEAR and query.radius_km < RADII_KM[-1]:
        tips.append("wider_radius")
    if query.path != Path.NEAR:
        tips.append("near")
    if query.reason or query.modality or query.language or query.time_of_day or query.date_to:
        tips.append("fewer_filters")
    tips.append("info_sante")
    return tips


def next_free_slots(
    *, citizen: Citizen | None, like: Slot, reason: str = "", limit: int = 3, now: datetime | None = None
) -> list[Slot]:
    """After a conflict: the next free times of the same practitioner or clinic that this citizen
    may book (the same audience rules as booking), soonest first."""
    now = now or timezone.now()
    eligible = Q(audience=Audience.PUBLIC)
    if citizen is not None:
        care = citizen_care(citizen=citizen)
        if care.practitioner_id:
            eligible |= Q(
                practitioner_id=care.practitioner_id,
                audience__in=[Audience.OWN_PATIENTS, Audience.GMF_PATIENTS],
            )
        if care.gmf_id:
            eligible |= Q(clinic__gmf_id=care.gmf_id, audience=Audience.GMF_PATIENTS)
    qs = (
        _base(SlotQuery(path=Path.NEAR, reason=reason), citizen, now)
        .filter(Q(practitioner_id=like.practitioner_id) | Q(clinic_id=like.clinic_id))
        .filter(eligible)
        .exclude(pk=like.pk)
    )
    return list(qs.order_by("start", "id")[:limit])


def appointment_is_cancellable(appointment: Appointment, *, now: datetime | None = None) -> bool:
    """Online cancellation: the appointment is booked and the clinic's cut-off has not passed."""
    now = now or timezone.now()
    cutoff = appointment.start - timedelta(hours=appointment.clinic.cancel_cutoff_hours)
    return appointment.status == Appointment.Status.BOOKED and now <= cutoff


def appointment_list_for_citizen(
    *, citizen: Citizen, now: datetime | None = None
) -> dict[str, list[Appointment]]:
    now = now or timezone.now()
    rows = list(
        Appointment.objects.filter(citizen=citizen)
        .select_related("clinic", "slot__practitioner")
        .order_by("start")
    )
    upcoming = [a for a in rows if a.status == Appointment.Status.BOOKED and a.end > now]
    past = [a for a in rows if a not in upcoming]
    past.reverse()
    return {"upcoming": upcoming, "past": past[:20]}


def appointment_get_for_citizen(*, citizen: Citizen, appointment_id: int | str) -> Appointment | None:
    """The only way a citizen's page or API call reaches one appointment: their own or one of
    their dependants' (invariant 7), or nothing."""
    try:
        return (
            Appointment.objects.select_related("clinic", "slot__practitioner", "citizen")
            .filter(citizen_id__in=patient_ids_for(citizen=citizen))
            .get(pk=int(appointment_id))
        )
    except (Appointment.DoesNotExist, ValueError, TypeError):
        return None


@dataclass
class PatientAppointments:
    """One person's appointments on "my appointments": the citizen, or one of their dependants."""

    patient: Citizen
    dependant_id: int | None
    upcoming: list[Appointment]
    past: list[Appointment]


def appointment_groups_for_citizen(
    *, citizen: Citizen, now: datetime | None = None
) -> list[PatientAppointments]:
    """The citizen's own appointments first, then each dependant's, in the order they were added."""
    now = now or timezone.now()
    groups = [PatientAppointments(citizen, None, **appointment_list_for_citizen(citizen=citizen, now=now))]
    for dependant in dependants_of(guardian=citizen):
        lists = appointment_list_for_citizen(citizen=dependant.citizen, now=now)
        groups.append(PatientAppointments(dependant.citizen, dependant.pk, **lists))
    return groups


def noshow_count(*, citizen: Citizen, now: datetime | None = None) -> int:
    """The patient's no-shows over the last ``BOOKING_NOSHOW_REMINDER_DAYS`` days."""
    now = now or timezone.now()
    since = now - timedelta(days=settings.BOOKING_NOSHOW_REMINDER_DAYS)
    return Appointment.objects.filter(
        citizen=citizen, status=Appointment.Status.NOSHOW, start__gte=since, start__lt=now
    ).count()


def noshow_reminder_due(*, citizen: Citizen, now: datetime | None = None) -> bool:
    """Whether the confirmation step reminds this patient of the rules (never a refusal)."""
    threshold: int = settings.BOOKING_NOSHOW_REMINDER_COUNT
    return noshow_count(citizen=citizen, now=now) >= threshold


def appointment_get_by_reference(*, reference: str, nam: str) -> Appointment | None:
    """Without an account: the confirmation reference and the NAM together, or nothing."""
    ref = (reference or "").strip().upper().replace(" ", "").replace("-", "")
    return (
        Appointment.objects.select_related("clinic", "slot__practitioner", "citizen")
        .filter(reference=ref, citizen__nam=nam)
        .first()
    )
