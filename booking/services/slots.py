"""Slot writes: one slot from an EMR or the agenda, and the bulk changes from the clinic web agenda
(publishing, blocked periods, the offer of free slots) with their preview helpers.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, OperationalError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from citizens.models import User
from clinics.models import AgendaChange, Practitioner, PractitionerRole

from .. import errors
from ..models import (
    REASON_BITS,
    Appointment,
    Audience,
    Modality,
    OutboxEvent,
    Slot,
    reasons_to_mask,
)
from ._common import (
    _get_slot,
    _lock_timeout,
    local_to_utc,
    logger,
    outbox_append,
)
from .appointments import appointment_cancel


def _check_slot_fields(
    *, start: datetime, end: datetime, reasons: list[str], audience: str, modality: str
) -> None:
    minutes = (end - start).total_seconds() / 60
    if not 5 <= minutes <= 240 or not reasons or any(r not in REASON_BITS for r in reasons):
        raise errors.InvalidSlot
    if audience not in _AUDIENCES or modality not in _MODALITIES:
        raise errors.InvalidSlot


# Sets built once: ``Audience.values`` builds a new list on every call (0.3 s for a 10,000-slot batch).
_AUDIENCES = frozenset(Audience.values)
_MODALITIES = frozenset(Modality.values)


def _practitioner_overlap(
    *, practitioner_id: int, start: datetime, end: datetime, exclude_pk: int | None
) -> bool:
    overlap = Slot.objects.filter(practitioner_id=practitioner_id, start__lt=end, end__gt=start).exclude(
        status=Slot.Status.CANCELLED
    )
    if exclude_pk is not None:
        overlap = overlap.exclude(pk=exclude_pk)
    return overlap.exists()


def _slot_channel(source: str) -> str:
    # The outbox names who made the change, so that the EMR change feed can skip the EMR's own.
    return Slot.Source.EMR.value if source == Slot.Source.EMR else ""


def slot_create(
    *,
    role: PractitionerRole,
    local_start: datetime | None = None,
    minutes: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    reasons: list[str],
    audience: str = Audience.PUBLIC,
    modality: str = Modality.IN_PERSON,
    source: str = Slot.Source.WEB_AGENDA,
    external_id: str = "",
) -> Slot:
    """Publish one slot (invariants 2, 5 and 6), at a clinic's local time or as UTC instants.

    The web agenda gives ``local_start`` and ``minutes`` (wall-clock time, checked against the clinic's
    DST transitions); an EMR gives ``start`` and ``end`` as aware instants, which need no such check.
    The practitioner may not have another published slot overlapping it, in any clinic: an
    exclusion constraint on PostgreSQL, checked here first for a clear message (and as the guard on
    the SQLite demo, where the IMMEDIATE transaction serializes writers).
    """
    if local_start is not None and minutes is not None:
        if not 5 <= minutes <= 240:
            raise errors.InvalidSlot
        start = local_to_utc(local=local_start, tz=role.clinic.tz)
        end = start + timedelta(minutes=minutes)
    if start is None or end is None or start.tzinfo is None or end.tzinfo is None:
        raise errors.InvalidSlot
    _check_slot_fields(start=start, end=end, reasons=reasons, audience=audience, modality=modality)
    try:
        with transaction.atomic():
            # One writer per practitioner at a time (as slots_publish does): concurrent inserts that
            # conflict would otherwise wait on each other inside the exclusion constraint and could
            # deadlock; serialized, the second sees the first and gets a clear overlap error.
            Practitioner.objects.select_for_update().filter(pk=role.practitioner_id).first()
            if _practitioner_overlap(
                practitioner_id=role.practitioner_id, start=start, end=end, exclude_pk=None
            ):
                raise errors.PractitionerOverlap
            slot = Slot.objects.create(
                role=role,
                practitioner_id=role.practitioner_id,
                clinic_id=role.clinic_id,
                start=start,
                end=end,
                reasons=reasons_to_mask(reasons),
                audience=audience,
                modality=modality,
                source=source,
                external_id=external_id,
            )
            outbox_append(
                kind="slot.created",
                clinic_id=role.clinic_id,
                slot=slot,
                channel=_slot_channel(source),
                payload={"version": 1},
            )
    except IntegrityError as exc:
        if "slot_no_overlap_per_practitioner" in str(exc):
            raise errors.PractitionerOverlap from exc
        raise
    return slot


def _slot_cas_failed(slot_id: int, expected_version: int | None) -> errors.ApplicationError:
    """Why a compare-and-set on a free slot changed nothing: gone, another version, or not free."""
    current = Slot.objects.filter(pk=slot_id).values_list("status", "version").first()
    if current is None or current[0] == Slot.Status.CANCELLED:
        return errors.SlotNotFound()
    if expected_version is not None and current[1] != expected_version:
        return errors.VersionMismatch()
    return errors.SlotNotFree()


def slot_update(
    *,
    slot_id: int,
    expected_version: int | None,
    start: datetime,
    end: datetime,
    reasons: list[str],
    audience: str,
    modality: str,
    channel: str = Slot.Source.EMR,
    now: datetime | None = None,
) -> tuple[Slot, bool]:
    """Change a free slot's time, reasons, audience or modality; returns the slot and whether it changed.

    Only a ``free`` slot changes: a booked or blocked one keeps the citizen's time (``SlotNotFree``).
    The same content again changes nothing (no version bump, no outbox event), so that an EMR may
    retry an update safely. ``expected_version`` (from ``If-Match``) refuses a stale write.
    """
    now = now or timezone.now()
    if start.tzinfo is None or end.tzinfo is None:
        raise errors.InvalidSlot
    _check_slot_fields(start=start, end=end, reasons=reasons, audience=audience, modality=modality)
    mask = reasons_to_mask(reasons)
    try:
        with transaction.atomic():
            _lock_timeout()
            slot = _get_slot(slot_id)
            # One writer per practitioner at a time (see slot_create).
            Practitioner.objects.select_for_update().filter(pk=slot.practitioner_id).first()
            if slot.status == Slot.Status.CANCELLED:
                raise errors.SlotNotFound
            if expected_version is not None and slot.version != expected_version:
                raise errors.VersionMismatch
            if (slot.start, slot.end, slot.reasons, slot.audience, slot.modality) == (
                start,
                end,
                mask,
                audience,
                modality,
            ):
                return slot, False
            if slot.status != Slot.Status.FREE:
                raise errors.SlotNotFree
            if _practitioner_overlap(
                practitioner_id=slot.practitioner_id, start=start, end=end, exclude_pk=slot.pk
            ):
                raise errors.PractitionerOverlap
            # The version in the filter: the checks above were made on this very version.
            # A citizen holding the slot chose the old content: the hold ends with it, and their
            # confirmation will be refused (appointment_book checks the hold token) rather than
            # booking a time they were not shown.
            changed = Slot.objects.filter(pk=slot_id, status=Slot.Status.FREE, version=slot.version).update(
                start=start,
                end=end,
                reasons=mask,
                audience=audience,
                modality=modality,
                holder=None,
                hold_expires=None,
                hold_token="",
                version=F("version") + 1,
                updated_at=now,
            )
            if changed != 1:
                raise _slot_cas_failed(slot_id, expected_version)
            # What the UPDATE wrote, without reading the row back (one statement less per slot).
            slot.start, slot.end, slot.reasons, slot.audience, slot.modality = (
                start,
                end,
                mask,
                audience,
                modality,
            )
            slot.holder, slot.hold_expires, slot.hold_token = None, None, ""
            slot.version, slot.updated_at = slot.version + 1, now
            outbox_append(
                kind="slot.updated",
                clinic_id=slot.clinic_id,
                slot=slot,
                channel=channel,
                payload={"version": slot.version},
            )
    except IntegrityError as exc:
        if "slot_no_overlap_per_practitioner" in str(exc):
            raise errors.PractitionerOverlap from exc
        raise
    return slot, True


def slot_withdraw(
    *,
    slot_id: int,
    expected_version: int | None = None,
    channel: str = Slot.Source.EMR,
    now: datetime | None = None,
) -> Slot:
    """Withdraw a free slot (status ``cancelled``); the row and its history stay.

    A booked or blocked slot is refused (``SlotNotFree``): the citizen's appointment is never dropped
    silently. Any hold on it ends with it. Withdrawing a withdrawn slot again changes nothing.
    """
    now = now or timezone.now()
    with transaction.atomic():
        _lock_timeout()
        slot = _get_slot(slot_id)
        if slot.status == Slot.Status.CANCELLED:
            return slot
        current = Slot.objects.filter(pk=slot_id, status=Slot.Status.FREE)
        if expected_version is not None:
            current = current.filter(version=expected_version)
        changed = current.update(
            status=Slot.Status.CANCELLED,
            holder=None,
            hold_expires=None,
            hold_token="",
            version=F("version") + 1,
            updated_at=now,
        )
        if changed != 1:
            raise _slot_cas_failed(slot_id, expected_version)
        slot.refresh_from_db()
        outbox_append(
            kind="slot.withdrawn",
            clinic_id=slot.clinic_id,
            slot=slot,
            channel=channel,
            payload={"version": slot.version},
        )
    return slot


# --- bulk changes from the clinic web agenda: templates, blocked periods, the offer of free slots ---
#
# Each is all or nothing: one transaction, the slots' rows locked before they are re-checked and
# written, one outbox event per slot changed (invariant 5), and one ``clinics.AgendaChange`` row that
# says who did it. They refuse clinics whose agenda is kept in an EMR: the EMR is the master there.


def _check_web_agenda_role(role: PractitionerRole) -> None:
    clinic = role.clinic
    if clinic.uses_emr:
        raise errors.ClinicUsesEmr
    if not role.is_active or not clinic.is_active:
        raise errors.PractitionerNotAttached


def _at_local_time(exc: errors.ApplicationError, local: datetime) -> errors.ApplicationError:
    """The error, naming the clinic-local wall-clock time it is about (for the page to show)."""
    exc.extra["local_start"] = local.replace(tzinfo=None).isoformat(timespec="minutes")
    return exc


def _first_overlap(
    planned: list[tuple[datetime, datetime, datetime]], existing: list[tuple[datetime, datetime]]
) -> datetime | None:
    """The local time of the first planned (local, start, end) that overlaps an existing slot.

    ``existing`` is one practitioner's published slots, sorted: they never overlap one another (the
    exclusion constraint), so their ends are sorted too and a bisection finds the one to compare.
    """
    from bisect import bisect_right

    ends = [end for _, end in existing]
    for local, start, end in planned:
        index = bisect_right(ends, start)  # the first existing slot that ends after this start
        if index < len(existing) and existing[index][0] < end:
            return local
    return None


def _practitioner_slots_between(
    practitioner_id: int, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    return list(
        Slot.objects.filter(practitioner_id=practitioner_id, start__lt=end, end__gt=start)
        .exclude(status=Slot.Status.CANCELLED)
        .order_by("start")
        .values_list("start", "end")
    )


def _outbox_bulk(*, kind: str, clinic_id: int, versions: Iterable[tuple[int, int]], channel: str) -> None:
    """One outbox event per (slot id, version), in one INSERT, inside the caller's transaction.

    No citizen notification rides on slot events, so nothing is enqueued on commit.
    """
    OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(
                kind=kind,
                clinic_id=clinic_id,
                slot_id=slot_id,
                channel=channel,
                payload={"version": version},
                notify_state=OutboxEvent.NotifyState.SKIPPED,
            )
            for slot_id, version in versions
        ]
    )


def slots_publish(
    *,
    role: PractitionerRole,
    starts_local: list[datetime],
    minutes: int,
    reasons: list[str],
    audience: str,
    modality: str,
    created_by: User,
    now: datetime | None = None,
) -> list[Slot]:
    """Publish many slots of one practitioner at one clinic, all or nothing (invariants 2, 5, 6).

    ``starts_local`` are the clinic's wall-clock times (naive, or aware in any zone: only the clock
    reading counts); each slot lasts ``minutes``. Every time is checked before anything is written:
    one that does not exist or happens twice on a daylight-saving night, one already past, one that
    overlaps another slot of the practitioner in any clinic (or another time of the same batch).
    The first failing time's error is raised with ``extra["local_start"]`` set, and nothing is
    created; that includes a concurrent publish that commits first (the exclusion constraint).
    """
    now = now or timezone.now()
    _check_web_agenda_role(role)
    if not starts_local:
        raise errors.NothingToPublish
    if not 5 <= minutes <= 240:
        raise errors.InvalidSlot
    tz = role.clinic.tz
    length = timedelta(minutes=minutes)
    planned: list[tuple[datetime, datetime, datetime]] = []
    for local in sorted({value.replace(tzinfo=None) for value in starts_local}):
        try:
            start = local_to_utc(local=local, tz=tz)
        except errors.ApplicationError as exc:
            raise _at_local_time(exc, local) from None
        if start < now:
            raise _at_local_time(errors.SlotInPast(), local)
        if planned and start < planned[-1][2]:
            raise _at_local_time(errors.PractitionerOverlap(), local)
        planned.append((local, start, start + length))
    _check_slot_fields(
        start=planned[0][1], end=planned[0][2], reasons=reasons, audience=audience, modality=modality
    )
    mask = reasons_to_mask(reasons)
    first, last = planned[0][1], planned[-1][2]
    try:
        with transaction.atomic():
            _lock_timeout()
            # Publishes for one practitioner take turns on the practitioner's row: the second one
            # then sees the first one's slots and names the time that overlaps, instead of failing
            # on the constraint, or deadlocking with it when two batches interleave.
            Practitioner.objects.select_for_update().filter(pk=role.practitioner_id).first()
            clash = _first_overlap(planned, _practitioner_slots_between(role.practitioner_id, first, last))
            if clash is not None:
                raise _at_local_time(errors.PractitionerOverlap(), clash)
            slots = Slot.objects.bulk_create(
                [
                    Slot(
                        role=role,
                        practitioner_id=role.practitioner_id,
                        clinic_id=role.clinic_id,
                        start=start,
                        end=end,
                        reasons=mask,
                        audience=audience,
                        modality=modality,
                        source=Slot.Source.WEB_AGENDA,
                    )
                    for _, start, end in planned
                ]
            )
            _outbox_bulk(
                kind="slot.created", clinic_id=role.clinic_id, versions=((s.pk, 1) for s in slots), channel=""
            )
            AgendaChange.objects.create(
                clinic_id=role.clinic_id,
                practitioner_id=role.practitioner_id,
                by=created_by,
                kind=AgendaChange.Kind.PUBLISH,
                start=first,
                end=last,
                slots_count=len(slots),
                at=now,
            )
    except IntegrityError as exc:
        if "slot_no_overlap_per_practitioner" not in str(exc):
            raise
        # Another path (one slot, an EMR) committed an overlapping slot after our check; it is
        # committed now, so reading again names the time.
        clash = _first_overlap(planned, _practitioner_slots_between(role.practitioner_id, first, last))
        error = errors.PractitionerOverlap()
        raise (_at_local_time(error, clash) if clash else error) from exc
    except OperationalError as exc:
        if "lock timeout" in str(exc) or "lock_not_available" in str(exc) or "deadlock" in str(exc):
            raise errors.Busy from exc
        raise
    logger.info(
        "slots published",
        extra={"role_id": role.pk, "count": len(slots), "user_id": created_by.pk},
    )
    return slots


def _period_bounds(start: datetime, end: datetime, now: datetime) -> tuple[datetime, datetime]:
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise errors.InvalidPeriod
    # Past slots are history: a period that began earlier today only changes what is still to come.
    return max(start, now), end


def period_block_targets(
    *, role: PractitionerRole, start: datetime, end: datetime, now: datetime
) -> tuple[QuerySet[Slot], QuerySet[Appointment]]:
    """What ``period_block`` changes: the role's free future slots in the period, and the booked
    appointments whose slots start in it. The preview page and the service read the same sets."""
    start, end = _period_bounds(start, end, now)
    in_period = Slot.objects.filter(role=role, start__gte=start, start__lt=end)
    free = in_period.filter(status=Slot.Status.FREE).order_by("start")
    booked = (
        Appointment.objects.filter(
            slot__in=in_period.filter(status=Slot.Status.BOOKED), status=Appointment.Status.BOOKED
        )
        .select_related("citizen", "slot")
        .order_by("start")
    )
    return free, booked


@dataclass(frozen=True)
class PeriodBlocked:
    blocked_slot_ids: list[int]
    cancelled: list[Appointment]


def period_block(
    *,
    role: PractitionerRole,
    start: datetime,
    end: datetime,
    by: User,
    note: str = "",
    expected: tuple[int, int] | None = None,
    now: datetime | None = None,
) -> PeriodBlocked:
    """Take a period out of a practitioner's agenda at one clinic (the doctor is ill), all or nothing.

    Free slots starting in the period (from now on) become ``blocked`` (any hold on them ends), and
    so do booked slots whose appointment is still ``booked``: those appointments are cancelled by
    the clinic through ``appointment_cancel``, whose outbox event e-mails each citizen in their
    language after commit, with a link to book another time. Slots whose patient has arrived, and
    slots already blocked or withdrawn, are left alone. ``expected`` (free slots, appointments)
    are the counts the staff member confirmed: a different agenda now is refused (``AgendaChanged``)
    rather than cancelling an appointment nobody saw. ``note`` stays with the staff (AgendaChange).
    """
    now = now or timezone.now()
    _check_web_agenda_role(role)
    free, booked = period_block_targets(role=role, start=start, end=end, now=now)
    try:
        with transaction.atomic():
            _lock_timeout()
            # Appointments before slots, the order appointment_cancel locks them in, so that a
            # citizen cancelling at this moment waits instead of deadlocking with us.
            appointments = list(booked.select_for_update(of=("self",)).order_by("pk"))
            slot_ids = list(free.values_list("pk", flat=True)) + [a.slot_id for a in appointments]
            locked = list(
                Slot.objects.select_for_update()
                .filter(pk__in=slot_ids)
                .order_by("pk")
                .values_list("pk", "status")
            )
            # Re-read under the locks: a booking or cancellation may have committed since.
            free_ids = [pk for pk, status in locked if status == Slot.Status.FREE]
            appointments = list(booked.order_by("pk"))
            if expected is not None and (len(free_ids), len(appointments)) != expected:
                raise errors.AgendaChanged
            block_ids = free_ids + [a.slot_id for a in appointments]
            if not block_ids:
                return PeriodBlocked(blocked_slot_ids=[], cancelled=[])
            Slot.objects.filter(pk__in=block_ids).update(
                status=Slot.Status.BLOCKED,
                holder=None,
                hold_expires=None,
                hold_token="",
                version=F("version") + 1,
                updated_at=now,
            )
            versions = list(Slot.objects.filter(pk__in=block_ids).order_by("pk").values_list("pk", "version"))
            _outbox_bulk(kind="slot.blocked", clinic_id=role.clinic_id, versions=versions, channel="clinic")
            cancelled = [
                # The slot is blocked already, so the cancellation does not free it.
                appointment_cancel(
                    appointment=appointment,
                    reason=Appointment.CancelReason.OTHER,
                    by_clinic=True,
                    channel="clinic",
                    now=now,
                )
                for appointment in appointments
            ]
            AgendaChange.objects.create(
                clinic_id=role.clinic_id,
                practitioner_id=role.practitioner_id,
                by=by,
                kind=AgendaChange.Kind.BLOCK,
                start=start,
                end=end,
                note=note[:300],
                slots_count=len(block_ids),
                appointments_count=len(cancelled),
                at=now,
            )
    except OperationalError as exc:
        if "lock timeout" in str(exc) or "lock_not_available" in str(exc) or "deadlock" in str(exc):
            raise errors.Busy from exc
        raise
    logger.info(
        "period blocked",
        extra={"role_id": role.pk, "slots": len(block_ids), "cancelled": len(cancelled), "user_id": by.pk},
    )
    return PeriodBlocked(blocked_slot_ids=sorted(block_ids), cancelled=cancelled)


def slots_offer_targets(
    *,
    role: PractitionerRole,
    start: datetime,
    end: datetime,
    now: datetime,
    audience: str | None,
    reasons: list[str] | None,
) -> QuerySet[Slot]:
    """The role's free future slots in the period whose audience or reasons would change."""
    start, end = _period_bounds(start, end, now)
    differs = Q()
    if audience is not None:
        differs |= ~Q(audience=audience)
    if reasons is not None:
        differs |= ~Q(reasons=reasons_to_mask(reasons))
    if not differs:
        return Slot.objects.none()
    return Slot.objects.filter(
        differs, role=role, status=Slot.Status.FREE, start__gte=start, start__lt=end
    ).order_by("start")


def slots_change_offer(
    *,
    role: PractitionerRole,
    start: datetime,
    end: datetime,
    by: User,
    audience: str | None = None,
    reasons: list[str] | None = None,
    expected_count: int | None = None,
    now: datetime | None = None,
) -> list[int]:
    """Change who may book (audience) and/or the reasons of a practitioner's future free slots.

    All or nothing, in one transaction; only slots whose content changes are touched (version bump,
    outbox event each). Like ``slot_update``, a citizen's hold on a changed slot ends: they chose
    the old offer, and their confirmation will be refused rather than booking something else.
    Booked and blocked slots keep their offer. Returns the ids of the changed slots.
    """
    now = now or timezone.now()
    _check_web_agenda_role(role)
    if audience is None and reasons is None:
        raise errors.InvalidSlot
    if audience is not None and audience not in Audience.values:
        raise errors.InvalidSlot
    if reasons is not None and (not reasons or any(r not in REASON_BITS for r in reasons)):
        raise errors.InvalidSlot
    targets = slots_offer_targets(
        role=role, start=start, end=end, now=now, audience=audience, reasons=reasons
    )
    changes: dict[str, Any] = {}
    if audience is not None:
        changes["audience"] = audience
    if reasons is not None:
        changes["reasons"] = reasons_to_mask(reasons)
    try:
        with transaction.atomic():
            _lock_timeout()
            ids = list(targets.select_for_update().order_by("pk").values_list("pk", flat=True))
            if expected_count is not None and len(ids) != expected_count:
                raise errors.AgendaChanged
            if not ids:
                return []
            Slot.objects.filter(pk__in=ids).update(
                **changes,
                holder=None,
                hold_expires=None,
                hold_token="",
                version=F("version") + 1,
                updated_at=now,
            )
            versions = list(Slot.objects.filter(pk__in=ids).order_by("pk").values_list("pk", "version"))
            _outbox_bulk(kind="slot.updated", clinic_id=role.clinic_id, versions=versions, channel="clinic")
            AgendaChange.objects.create(
                clinic_id=role.clinic_id,
                practitioner_id=role.practitioner_id,
                by=by,
                kind=AgendaChange.Kind.CHANGE,
                start=start,
                end=end,
                slots_count=len(ids),
                at=now,
            )
    except OperationalError as exc:
        if "lock timeout" in str(exc) or "lock_not_available" in str(exc):
            raise errors.Busy from exc
        raise
    return ids
