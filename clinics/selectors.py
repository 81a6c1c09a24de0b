"""Clinic-side reads. Staff reach a clinic only through ``clinic_get_for_staff`` (invariant 7).

The clinic web agenda lives in this app (docs/ARCHITECTURE.md, layout) and reads booking's slots and
appointments; ``clinics.models`` itself never imports ``booking``, so there is no import cycle.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from booking.models import OCCUPYING_STATUSES, Appointment, Reason, Slot
from citizens.models import Citizen, User

from .audit_chain import ChainReport, chain_verify, chains
from .models import BoardRole, Clinic, ClinicMembership, Practitioner

ALL_CLINIC_ROLES: tuple[str, ...] = tuple(ClinicMembership.Role.values)


def _active_memberships(user: User) -> QuerySet[ClinicMembership]:
    return ClinicMembership.objects.filter(user_id=user.pk, is_active=True, clinic__is_active=True)


def clinic_ids_for_staff(user: User, *, roles: Iterable[str] = ALL_CLINIC_ROLES) -> set[int]:
    """The clinics this person works at, with one of ``roles``, through an active membership."""
    if not user.is_authenticated or not user.is_active:
        return set()
    return set(_active_memberships(user).filter(role__in=list(roles)).values_list("clinic_id", flat=True))


def clinic_get_for_staff(
    user: User, clinic_id: int | str, *, roles: Iterable[str] = ALL_CLINIC_ROLES
) -> Clinic:
    """The one scoped access helper: the clinic, if this person holds one of ``roles`` there.

    Any other clinic, an inactive membership or a role not in ``roles`` is a 404: a stranger learns
    nothing about which clinics exist behind an identifier.
    """
    try:
        pk = int(clinic_id)
    except (TypeError, ValueError):
        raise Http404 from None
    if pk not in clinic_ids_for_staff(user, roles=roles):
        raise Http404
    return Clinic.objects.get(pk=pk)


def membership_for(user: User, clinic: Clinic) -> ClinicMembership | None:
    return _active_memberships(user).filter(clinic=clinic).first()


def board_roles_for(user: User) -> set[str]:
    if not user.is_authenticated or not user.is_active:
        return set()
    return set(BoardRole.objects.filter(user_id=user.pk, is_active=True).values_list("role", flat=True))


def is_staff_member(user: User) -> bool:
    """Has an active clinic membership or an active board role: may enter the staff area at all."""
    return bool(clinic_ids_for_staff(user)) or bool(board_roles_for(user))


def memberships_for_staff_home(user: User) -> list[ClinicMembership]:
    return list(_active_memberships(user).select_related("clinic", "practitioner").order_by("clinic__name"))


def membership_list_for_clinic(*, clinic: Clinic) -> list[ClinicMembership]:
    """The clinic's staff, active first; callers have already checked the admin role."""
    return list(
        ClinicMembership.objects.filter(clinic=clinic)
        .select_related("user", "practitioner")
        .order_by("-is_active", "role", "user__email")
    )


def practitioners_of_clinic(*, clinic: Clinic) -> QuerySet[Practitioner]:
    return Practitioner.objects.filter(roles__clinic=clinic, roles__is_active=True).order_by(
        "last_name", "first_name"
    )


# --- the agenda ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgendaRow:
    slot: Slot
    local_start: datetime
    local_end: datetime
    reasons: list[str]
    appointment: Appointment | None


@dataclass(frozen=True)
class AgendaDay:
    day: date
    rows: list[AgendaRow]


def local_day_bounds(day: date, clinic: Clinic) -> tuple[datetime, datetime]:
    """The UTC instants where a local calendar day starts and ends in the clinic's time zone.

    Built from local midnights, never by adding 24 hours: a daylight-saving day has 23 or 25 hours.
    """
    tz = clinic.tz
    return (
        datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC),
        datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC),
    )


def agenda_for_clinic(
    *, clinic: Clinic, first_day: date, days: int = 1, practitioner_id: int | None = None
) -> list[AgendaDay]:
    """The clinic's slots of ``days`` local days from ``first_day``, with each occupying appointment.

    Withdrawn slots are left out (they were never bookable); blocked, free and booked ones are shown.
    """
    start, _ = local_day_bounds(first_day, clinic)
    _, end = local_day_bounds(first_day + timedelta(days=days - 1), clinic)
    occupying = Appointment.objects.filter(status__in=OCCUPYING_STATUSES).select_related("citizen")
    slots = (
        Slot.objects.filter(clinic=clinic, start__gte=start, start__lt=end)
        .exclude(status=Slot.Status.CANCELLED)
        .select_related("practitioner")
        .prefetch_related(Prefetch("appointments", queryset=occupying, to_attr="occupying"))
        .order_by("start", "practitioner__last_name", "id")
    )
    if practitioner_id is not None:
        slots = slots.filter(practitioner_id=practitioner_id)
    tz = clinic.tz
    labels = dict(Reason.choices)
    by_day: dict[date, list[AgendaRow]] = {first_day + timedelta(days=i): [] for i in range(days)}
    for slot in slots:
        local_start = slot.start.astimezone(tz)
        appointments: list[Appointment] = getattr(slot, "occupying", [])
        by_day.setdefault(local_start.date(), []).append(
            AgendaRow(
                slot=slot,
                local_start=local_start,
                local_end=slot.end.astimezone(tz),
                reasons=[str(labels[code]) for code in slot.reason_codes],
                appointment=appointments[0] if appointments else None,
            )
        )
    return [AgendaDay(day=day, rows=rows) for day, rows in sorted(by_day.items())]


def citizen_ids_shown(agenda: Iterable[AgendaDay]) -> list[int]:
    """The distinct citizens whose names an agenda page shows, in order of first appearance."""
    seen: dict[int, None] = {}
    for day in agenda:
        for row in day.rows:
            if row.appointment is not None and row.appointment.citizen_id is not None:
                seen.setdefault(row.appointment.citizen_id, None)
    return list(seen)


# --- the phone channel -----------------------------------------------------------------------------

PHONE_SLOT_DAYS = 14
PHONE_SLOT_LIMIT = 60


@dataclass(frozen=True)
class FreeSlotRow:
    slot: Slot
    local_start: datetime
    local_end: datetime
    reasons: list[tuple[str, str]]  # (code, label): the reasons this slot accepts


def citizen_get_by_nam(*, nam: str) -> Citizen | None:
    """The insured person with this (already normalized) NAM, if the registry knows them."""
    return Citizen.objects.filter(nam=nam).first()


def citizen_get_for_phone(*, citizen_id: int) -> Citizen | None:
    return Citizen.objects.filter(pk=citizen_id).first()


def active_future_count(*, citizen: Citizen, now: datetime) -> int:
    """The caller's active future appointments (booked, starting after now), on every channel."""
    return Appointment.objects.filter(
        citizen=citizen, status=Appointment.Status.BOOKED, start__gt=now
    ).count()


def caller_upcoming_at_clinic(*, clinic: Clinic, citizen: Citizen, now: datetime) -> list[Appointment]:
    """The caller's booked appointments at this clinic that have not started yet."""
    return list(
        Appointment.objects.filter(
            clinic=clinic, citizen=citizen, status=Appointment.Status.BOOKED, start__gt=now
        )
        .select_related("slot__practitioner")
        .order_by("start")
    )


def free_slots_for_clinic(
    *,
    clinic: Clinic,
    now: datetime,
    practitioner_id: int | None = None,
    day: date | None = None,
    exclude_slot_id: int | None = None,
    limit: int = PHONE_SLOT_LIMIT,
) -> list[FreeSlotRow]:
    """This clinic's free slots that a receptionist can give now: the next ``PHONE_SLOT_DAYS`` days,
    or one local ``day``; slots under a live hold by a citizen are left out (the portal is booking
    them). Staff bookings skip the audience and notice rules, so every free future slot is offered."""
    start, end = now, now + timedelta(days=PHONE_SLOT_DAYS)
    if day is not None:
        day_start, day_end = local_day_bounds(day, clinic)
        start, end = max(now, day_start), day_end
    slots = (
        Slot.objects.filter(clinic=clinic, status=Slot.Status.FREE, start__gt=start, start__lt=end)
        .exclude(hold_expires__gt=now)
        .select_related("practitioner")
        .order_by("start", "practitioner__last_name", "id")
    )
    if practitioner_id is not None:
        slots = slots.filter(practitioner_id=practitioner_id)
    if exclude_slot_id is not None:
        slots = slots.exclude(pk=exclude_slot_id)
    tz = clinic.tz
    labels = dict(Reason.choices)
    return [
        FreeSlotRow(
            slot=slot,
            local_start=slot.start.astimezone(tz),
            local_end=slot.end.astimezone(tz),
            reasons=[(code, str(labels[code])) for code in slot.reason_codes],
        )
        for slot in slots[:limit]
    ]


def appointment_get_for_clinic(*, clinic: Clinic, appointment_id: int) -> Appointment:
    """An appointment of this clinic, or 404: staff never reach another clinic's appointments."""
    appointment = (
        Appointment.objects.filter(clinic=clinic, pk=appointment_id)
        .select_related("citizen", "slot__practitioner")
        .first()
    )
    if appointment is None:
        raise Http404
    return appointment


def audit_chain_reports() -> list[ChainReport]:
    """Every audit hash chain checked from its first row (clinics.audit_chain): for the board."""
    return [chain_verify(chain) for chain in chains()]
