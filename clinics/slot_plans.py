"""Previews of the web agenda's bulk changes: what a template, a blocked period or a change of offer
would do, computed from the same rules the booking services apply when the change is confirmed.

A preview is a read: it never writes. The booking services check everything again, under locks,
when the staff member confirms (``booking.services.slots_publish``, ``period_block``,
``slots_change_offer``), and refuse a confirmation whose agenda changed since the preview.
"""

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from booking import errors
from booking.models import Appointment, Slot
from booking.services import local_to_utc, period_block_targets, slots_offer_targets

from .holidays import holidays_between
from .models import Clinic, PractitionerRole


class Planned:
    """What becomes of one time of a template."""

    NEW = "new"  # would be created
    HOLIDAY = "holiday"  # skipped: a statutory holiday the clinic does not open
    REFUSED = "refused"  # cannot be created: the template must change first


@dataclass(frozen=True)
class PlannedSlot:
    local_start: datetime  # the clinic's wall-clock time (naive)
    local_end: datetime
    state: str
    note: str | Promise = ""
    start: datetime | None = None  # UTC, when the local time exists once


@dataclass
class TemplatePlan:
    slots: list[PlannedSlot] = field(default_factory=list)
    holidays: dict[date, Promise] = field(default_factory=dict)

    def _with(self, state: str) -> list[PlannedSlot]:
        return [s for s in self.slots if s.state == state]

    @property
    def new(self) -> list[PlannedSlot]:
        return self._with(Planned.NEW)

    @property
    def skipped(self) -> list[PlannedSlot]:
        return self._with(Planned.HOLIDAY)

    @property
    def refused(self) -> list[PlannedSlot]:
        return self._with(Planned.REFUSED)

    @property
    def days(self) -> list[tuple[date, list[PlannedSlot]]]:
        by_day: dict[date, list[PlannedSlot]] = {}
        for slot in self.slots:
            by_day.setdefault(slot.local_start.date(), []).append(slot)
        return sorted(by_day.items())


def template_times(
    *, weekdays: list[int], time_from: time, time_to: time, minutes: int, date_from: date, date_to: date
) -> list[datetime]:
    """Every wall-clock start of the template: each chosen weekday, ``minutes`` apart, each slot
    ending by ``time_to``. Wall-clock arithmetic on purpose: 08:00 stays 08:00 across a DST change."""
    starts = []
    step = timedelta(minutes=minutes)
    day = date_from
    while day <= date_to:
        if day.weekday() in weekdays:
            moment, close = datetime.combine(day, time_from), datetime.combine(day, time_to)
            while moment + step <= close:
                starts.append(moment)
                moment += step
        day += timedelta(days=1)
    return starts


def template_plan(
    *,
    role: PractitionerRole,
    weekdays: list[int],
    time_from: time,
    time_to: time,
    minutes: int,
    date_from: date,
    date_to: date,
    open_on: set[date],
    now: datetime,
) -> TemplatePlan:
    """The preview of a recurring template: each time, created, skipped (holiday) or refused.

    Refused: a time that does not exist or happens twice on a daylight-saving night, a time already
    past, or one that overlaps a slot the practitioner already has, in this clinic or another.
    """
    clinic: Clinic = role.clinic
    tz = clinic.tz
    step = timedelta(minutes=minutes)
    holidays = holidays_between(date_from, date_to)
    plan = TemplatePlan(holidays=holidays)
    starts = template_times(
        weekdays=weekdays,
        time_from=time_from,
        time_to=time_to,
        minutes=minutes,
        date_from=date_from,
        date_to=date_to,
    )
    existing: list[tuple[datetime, datetime, int]] = []
    if starts:
        window_start = datetime.combine(date_from, time.min, tzinfo=tz).astimezone(UTC)
        window_end = datetime.combine(date_to + timedelta(days=1), time.max, tzinfo=tz).astimezone(UTC)
        existing = list(
            Slot.objects.filter(
                practitioner_id=role.practitioner_id, start__lt=window_end, end__gt=window_start
            )
            .exclude(status=Slot.Status.CANCELLED)
            .order_by("start")
            .values_list("start", "end", "clinic_id")
        )
    # One practitioner's published slots never overlap one another, so their ends are sorted too.
    ends = [e for _, e, _ in existing]
    for local in starts:
        local_end = local + step
        holiday = holidays.get(local.date())
        if holiday is not None and local.date() not in open_on:
            plan.slots.append(PlannedSlot(local, local_end, Planned.HOLIDAY, holiday))
            continue
        try:
            start = local_to_utc(local=local, tz=tz)
        except errors.ApplicationError as exc:
            plan.slots.append(PlannedSlot(local, local_end, Planned.REFUSED, exc.message))
            continue
        end = start + step
        if start < now:
            plan.slots.append(
                PlannedSlot(local, local_end, Planned.REFUSED, errors.SlotInPast.message, start)
            )
            continue
        index = bisect_right(ends, start)  # the first existing slot ending after this start
        clash = existing[index][2] if index < len(existing) and existing[index][0] < end else None
        if clash is not None:
            note: str | Promise = (
                _("The practitioner already has a slot at that time in this clinic.")
                if clash == clinic.pk
                else _("The practitioner already has a slot at that time in another clinic.")
            )
            plan.slots.append(PlannedSlot(local, local_end, Planned.REFUSED, note, start))
            continue
        opened = holiday is not None
        opened_note = str(_("Holiday, open anyway: %(name)s") % {"name": holiday}) if opened else ""
        plan.slots.append(PlannedSlot(local, local_end, Planned.NEW, opened_note, start))
    return plan


@dataclass(frozen=True)
class BlockPlan:
    free: list[Slot]
    booked: list[Appointment]


def block_plan(*, role: PractitionerRole, start: datetime, end: datetime, now: datetime) -> BlockPlan:
    free, booked = period_block_targets(role=role, start=start, end=end, now=now)
    return BlockPlan(free=list(free), booked=list(booked))


def offer_plan(
    *,
    role: PractitionerRole,
    start: datetime,
    end: datetime,
    now: datetime,
    audience: str | None,
    reasons: list[str] | None,
) -> list[Slot]:
    return list(
        slots_offer_targets(role=role, start=start, end=end, now=now, audience=audience, reasons=reasons)
    )
