"""Booking writes: hold, book, cancel. Each is one short transaction with a compare-and-set.

Every function takes keyword-only arguments and the application clock ``now`` (tests move it).
Slow work (e-mail) is enqueued on commit from the outbox event written in the same transaction.
"""

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from citizens.models import Citizen, User
from citizens.selectors import citizen_care
from clinics.models import AgendaChange, Practitioner, PractitionerRole

from . import errors
from .models import (
    OCCUPYING_STATUSES,
    REASON_BITS,
    Appointment,
    Audience,
    Modality,
    OutboxEvent,
    Reason,
    Slot,
    reasons_to_mask,
)
from .selectors import appointment_is_cancellable

logger = logging.getLogger(__name__)

ONLINE_CHANNELS = (Appointment.Channel.PORTAL, Appointment.Channel.CITIZEN_API, Appointment.Channel.WAITLIST)


CANCELLABLE_STATUSES = (Appointment.Status.BOOKED, Appointment.Status.ARRIVED)


@dataclass(frozen=True)
class Hold:
    slot_id: int
    token: str
    expires: datetime


def _lock_timeout() -> None:
    # A booking waits at most this long for a row lock; then the citizen is asked to try again
    # (errors.Busy) instead of piling up connections during a rush.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '3s'")


def _live_hold_by_other(citizen_id: int | None, now: datetime) -> Q:
    """Rows held by someone else whose hold has not expired: the only holds that block."""
    q = Q(hold_expires__gt=now)
    if citizen_id is not None:
        q &= ~Q(holder_id=citizen_id)
    return q


def slot_is_eligible(*, slot: Slot, citizen: Citizen) -> bool:
    """Invariant 3, audience part: may this citizen book this slot online?"""
    if slot.audience == Audience.PUBLIC:
        return True
    if slot.audience == Audience.NOT_ONLINE:
        return False
    care = citizen_care(citizen=citizen)
    if care.practitioner_id == slot.practitioner_id:
        return True
    if slot.audience == Audience.GMF_PATIENTS:
        return care.gmf_id is not None and care.gmf_id == slot.clinic.gmf_id
    return False


def _active_future_online_count(*, citizen: Citizen, now: datetime) -> int:
    return Appointment.objects.filter(
        citizen=citizen, status=Appointment.Status.BOOKED, start__gt=now, channel__in=ONLINE_CHANNELS
    ).count()


def _check_online_rules(
    *, slot: Slot, citizen: Citizen, reason: str | None, now: datetime, check_limit: bool = True
) -> None:
    """Invariant 3. ``reason`` None skips the reason check (a hold before the reason is final)."""
    if not slot.clinic.is_active:
        raise errors.SlotNotFound
    if slot.status != Slot.Status.FREE:
        raise errors.SlotUnavailable
    if not slot_is_eligible(slot=slot, citizen=citizen):
        raise errors.NotEligible
    if reason is not None and (reason not in Reason.values or not slot.accepts(reason)):
        raise errors.ReasonNotAccepted
    if slot.start < now + slot.clinic.min_notice:
        raise errors.TooSoon
    if (
        check_limit
        and _active_future_online_count(citizen=citizen, now=now) >= settings.BOOKING_MAX_ACTIVE_ONLINE
    ):
        raise errors.LimitReached


def _get_slot(slot_id: int) -> Slot:
    try:
        return Slot.objects.select_related("clinic").get(pk=slot_id)
    except (Slot.DoesNotExist, ValueError, TypeError) as exc:
        raise errors.SlotNotFound from exc


def slot_hold(
    *, slot_id: int, citizen: Citizen, now: datetime | None = None, to_reschedule: Appointment | None = None
) -> Hold:
    """Hold a free slot for ``BOOKING_HOLD_SECONDS`` so that nobody takes it while the citizen confirms.

    One hold per citizen: taking a new one releases the previous one in the same transaction. The
    compare-and-set succeeds only if the slot is free and not under someone else's live hold; a
    hold is not a change of the slot's published state, so it neither bumps the version nor writes
    an outbox event (EMRs never see holds). Holding the same slot again returns the same hold
    without extending it: a slot cannot be kept out of reach by holding it over and over.

    ``to_reschedule``: the citizen's own booked appointment this hold would replace; the limit of
    active appointments is then not a reason to refuse (rescheduling does not add one).
    """
    now = now or timezone.now()
    slot = _get_slot(slot_id)
    replacing = (
        to_reschedule is not None
        and to_reschedule.citizen_id == citizen.pk
        and to_reschedule.status == Appointment.Status.BOOKED
    )
    _check_online_rules(slot=slot, citizen=citizen, reason=None, now=now, check_limit=not replacing)
    with transaction.atomic():
        _lock_timeout()
        # Serializes one citizen's holds, so that parallel requests cannot leave several live holds.
        Citizen.objects.select_for_update().filter(pk=citizen.pk).first()
        Slot.objects.filter(holder=citizen).exclude(pk=slot_id).update(
            holder=None, hold_expires=None, hold_token=""
        )
        live = (
            Slot.objects.filter(pk=slot_id, holder=citizen, hold_expires__gt=now)
            .values_list("hold_token", "hold_expires")
            .first()
        )
        if live and live[1] is not None:  # hold_expires__gt matched, so it is never None here
            return Hold(slot_id=slot_id, token=live[0], expires=live[1])
        token = secrets.token_hex(16)
        expires = now + timedelta(seconds=settings.BOOKING_HOLD_SECONDS)
        changed = (
            Slot.objects.filter(pk=slot_id, status=Slot.Status.FREE)
            .exclude(_live_hold_by_other(citizen.pk, now))
            .update(holder=citizen, hold_expires=expires, hold_token=token)
        )
        if changed != 1:
            raise errors.SlotUnavailable
    return Hold(slot_id=slot_id, token=token, expires=expires)


def slot_release_hold(*, citizen: Citizen) -> None:
    Slot.objects.filter(holder=citizen).update(holder=None, hold_expires=None, hold_token="")


def outbox_append(
    *,
    kind: str,
    clinic_id: int,
    slot: Slot | None = None,
    appointment: Appointment | None = None,
    channel: str = "",
    payload: dict[str, Any] | None = None,
    notify: bool = False,
) -> OutboxEvent:
    """Invariant 5: call inside the transaction that changed the slot or the appointment."""
    event = OutboxEvent.objects.create(
        kind=kind,
        clinic_id=clinic_id,
        slot=slot,
        appointment=appointment,
        channel=channel,
        payload=payload or {},
        notify_state=OutboxEvent.NotifyState.PENDING if notify else OutboxEvent.NotifyState.SKIPPED,
    )
    if notify:
        transaction.on_commit(lambda: _enqueue_notification(event.pk))
    return event


def _enqueue_notification(event_id: int) -> None:
    # The booking has committed whatever happens here: if the broker is down the event stays
    # pending and the beat sweep sends it later (nothing lost, never a 500 after a booking).
    from .tasks import notify_event

    try:
        notify_event.delay(event_id)
    except Exception:  # noqa: BLE001 - any broker failure must not surface to the citizen
        logger.warning("notification not enqueued; the sweep will send it", extra={"event_id": event_id})


def appointment_book(
    *,
    slot_id: int,
    citizen: Citizen,
    reason: str,
    channel: str,
    hold_token: str = "",
    booked_by_user: User | None = None,
    external_id: str = "",
    now: datetime | None = None,
) -> Appointment:
    """Book a slot: the first committed booking wins, on every channel.

    Online channels apply invariant 3 (audience, reason, notice, anti-hoarding limit); staff and
    EMR channels skip it and need no hold. A retried confirmation with the same hold token, or a
    retried EMR booking with the same ``external_id`` (the EMR's identifier, unique per clinic),
    returns the appointment it created instead of an error.
    """
    now = now or timezone.now()
    if hold_token:
        existing = _appointment_for_hold(hold_token, citizen, slot_id)
        if existing is not None:
            return existing
    if external_id:
        existing = _appointment_for_external_id(external_id, slot_id)
        if existing is not None:
            return existing
    try:
        with transaction.atomic():
            _lock_timeout()
            # Serializes one citizen's bookings, so that two tabs cannot both pass the limit check.
            Citizen.objects.select_for_update().filter(pk=citizen.pk).first()
            appointment = _book_in_transaction(
                slot_id=slot_id,
                citizen=citizen,
                reason=reason,
                channel=channel,
                hold_token=hold_token,
                booked_by_user=booked_by_user,
                external_id=external_id,
                now=now,
            )
    except errors.SlotUnavailable:
        if external_id:
            # A concurrent retry of the same EMR booking committed first: same answer as it got.
            existing = _appointment_for_external_id(external_id, slot_id)
            if existing is not None:
                return existing
        if hold_token:
            # A concurrent retry of the same confirmation committed first: same answer as it got.
            existing = _appointment_for_hold(hold_token, citizen, slot_id)
            if existing is not None:
                return existing
            if not _hold_is_live(slot_id, citizen, hold_token, now):
                # Nobody could have taken the slot under a live hold: the citizen's hold ran out.
                raise errors.HoldExpired from None
        raise
    except IntegrityError as exc:
        # The constraints are the last word; a race the checks above did not see ends here.
        name = str(exc)
        if "appt_no_overlap_per_citizen" in name:
            raise errors.PatientOverlap from exc
        if "idempotency_key" in name and hold_token:
            existing = _appointment_for_hold(hold_token, citizen, slot_id)
            if existing is not None:
                return existing
        if "appt_unique_external_id" in name and external_id:
            existing = _appointment_for_external_id(external_id, slot_id)
            if existing is not None:
                return existing
        raise errors.SlotUnavailable from exc
    except OperationalError as exc:
        if "lock timeout" in str(exc) or "lock_not_available" in str(exc):
            raise errors.Busy from exc
        raise
    logger.info("appointment booked", extra={"appointment_id": appointment.pk, "channel": channel})
    return appointment


def _book_in_transaction(
    *,
    slot_id: int,
    citizen: Citizen,
    reason: str,
    channel: str,
    hold_token: str,
    booked_by_user: User | None,
    external_id: str,
    now: datetime,
    rescheduled_from: Appointment | None = None,
) -> Appointment:
    """The booking itself; the caller holds a transaction and the citizen's row lock."""
    slot = _get_slot(slot_id)
    if channel in ONLINE_CHANNELS:
        _check_online_rules(slot=slot, citizen=citizen, reason=reason, now=now)
    elif reason not in Reason.values:
        raise errors.ReasonNotAccepted
    overlap = Appointment.objects.filter(
        citizen=citizen, status__in=OCCUPYING_STATUSES, start__lt=slot.end, end__gt=slot.start
    ).exists()
    if overlap:  # also a PostgreSQL exclusion constraint; this gives the friendly message
        raise errors.PatientOverlap
    # The token is the retry key only if it is this slot's hold by this citizen (live or not).
    own_token = bool(hold_token) and slot.holder_id == citizen.pk and slot.hold_token == hold_token
    if hold_token and not own_token:
        # The hold the citizen confirms is gone (it ran out and someone else held the slot,
        # or the clinic changed or withdrew the slot): never book a time they were not shown.
        raise errors.SlotUnavailable
    # The version in the filter: the rules above were checked on this very version of the slot.
    changed = (
        Slot.objects.filter(pk=slot_id, status=Slot.Status.FREE, version=slot.version)
        .exclude(_live_hold_by_other(citizen.pk, now))
        .update(
            status=Slot.Status.BOOKED,
            holder=None,
            hold_expires=None,
            hold_token="",
            version=F("version") + 1,
            updated_at=now,
        )
    )
    if changed != 1:
        raise errors.SlotUnavailable
    # A booking consumes the citizen's hold, whichever slot it was on.
    Slot.objects.filter(holder=citizen).update(holder=None, hold_expires=None, hold_token="")
    appointment = Appointment.objects.create(
        slot=slot,
        citizen=citizen,
        clinic_id=slot.clinic_id,
        start=slot.start,
        end=slot.end,
        reason=reason,
        channel=channel,
        booked_by_user=booked_by_user,
        idempotency_key=hold_token if own_token else None,
        external_id=external_id,
        rescheduled_from=rescheduled_from,
    )
    payload: dict[str, object] = {
        "slot_version": slot.version + 1,
        "appointment_version": appointment.version,
    }
    if rescheduled_from is not None:
        payload["rescheduled_from"] = rescheduled_from.pk
    outbox_append(
        kind="appointment.booked",
        clinic_id=slot.clinic_id,
        slot=slot,
        appointment=appointment,
        channel=channel,
        payload=payload,
        notify=True,
    )
    return appointment


def _appointment_for_hold(hold_token: str, citizen: Citizen, slot_id: int) -> Appointment | None:
    return Appointment.objects.filter(idempotency_key=hold_token, citizen=citizen, slot_id=slot_id).first()


def _appointment_for_external_id(external_id: str, slot_id: int) -> Appointment | None:
    """The appointment an EMR booked with this identifier at the slot's clinic, whichever slot."""
    clinic = Slot.objects.filter(pk=slot_id).values("clinic_id")
    return Appointment.objects.filter(clinic_id__in=clinic, external_id=external_id).first()


def _hold_is_live(slot_id: int, citizen: Citizen, hold_token: str, now: datetime) -> bool:
    return Slot.objects.filter(
        pk=slot_id, holder=citizen, hold_token=hold_token, hold_expires__gt=now
    ).exists()


def appointment_cancel(
    *,
    appointment: Appointment,
    reason: str,
    by_clinic: bool = False,
    channel: str = "",
    expected_version: int | None = None,
    now: datetime | None = None,
) -> Appointment:
    """Cancel an appointment and free its slot at once, in one transaction.

    A citizen may cancel online until the clinic's cut-off; the slot goes back to ``free`` (ready for
    the next citizen or the waitlist) unless the clinic withdrew or blocked it meanwhile. ``channel``
    names where the change came from in the outbox (``emr`` for a clinic's EMR, so that the change
    feed need not echo it back); ``expected_version`` makes it conditional (``If-Match``).
    """
    now = now or timezone.now()
    if reason not in Appointment.CancelReason.values:
        raise errors.InvalidCancelReason
    if appointment.status not in CANCELLABLE_STATUSES:
        raise errors.NotCancellable
    if not by_clinic:
        if appointment.status != Appointment.Status.BOOKED:
            raise errors.NotCancellable  # once arrived, only the clinic cancels
        if not appointment_is_cancellable(appointment, now=now):
            raise errors.CancelTooLate
    new_status = (
        Appointment.Status.CANCELLED_BY_CLINIC if by_clinic else Appointment.Status.CANCELLED_BY_CITIZEN
    )
    with transaction.atomic():
        _lock_timeout()
        current = Appointment.objects.filter(pk=appointment.pk, status__in=CANCELLABLE_STATUSES)
        if expected_version is not None:
            if not current.filter(version=expected_version).exists() and current.exists():
                raise errors.VersionMismatch
            current = current.filter(version=expected_version)
        changed = current.update(
            status=new_status,
            cancel_reason=reason,
            cancelled_at=now,
            version=F("version") + 1,
            updated_at=now,
        )
        if changed != 1:
            raise errors.NotCancellable
        freed = Slot.objects.filter(pk=appointment.slot_id, status=Slot.Status.BOOKED).update(
            status=Slot.Status.FREE, version=F("version") + 1, updated_at=now
        )
        appointment.refresh_from_db()
        slot_version = Slot.objects.filter(pk=appointment.slot_id).values_list("version", flat=True).get()
        outbox_append(
            kind="appointment.cancelled",
            clinic_id=appointment.clinic_id,
            slot=appointment.slot,
            appointment=appointment,
            channel=channel or ("clinic" if by_clinic else "citizen"),
            payload={
                "reason": reason,
                "slot_freed": bool(freed),
                "slot_version": slot_version,
                "appointment_version": appointment.version,
            },
            notify=True,
        )
    return appointment


def local_to_utc(*, local: datetime, tz: ZoneInfo) -> datetime:
    """A clinic's wall-clock time to UTC, refusing the hour that does not exist (spring forward)
    and the hour that happens twice (fall back) instead of guessing."""
    if local.tzinfo is not None:
        local = local.replace(tzinfo=None)
    first = local.replace(tzinfo=tz, fold=0)
    second = local.replace(tzinfo=tz, fold=1)
    if first.utcoffset() != second.utcoffset():
        # fold=0 and fold=1 disagree: either a gap (the time is skipped) or an overlap (repeated).
        round_trip = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        if round_trip != local:
            raise errors.NonexistentLocalTime
        raise errors.AmbiguousLocalTime
    return first.astimezone(UTC)


def _check_slot_fields(
    *, start: datetime, end: datetime, reasons: list[str], audience: str, modality: str
) -> None:
    minutes = (end - start).total_seconds() / 60
    if not 5 <= minutes <= 240 or not reasons or any(r not in REASON_BITS for r in reasons):
        raise errors.InvalidSlot
    if audience not in Audience.values or modality not in Modality.values:
        raise errors.InvalidSlot


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
            slot.refresh_from_db()
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


# Status changes the clinic reports after the booking (cancellation has its own function).
STATUS_TRANSITIONS: dict[str, tuple[str, ...]] = {
    Appointment.Status.BOOKED: (Appointment.Status.ARRIVED, Appointment.Status.NOSHOW),
    Appointment.Status.ARRIVED: (Appointment.Status.FULFILLED,),
}


def appointment_set_status(
    *,
    appointment_id: int,
    status: str,
    expected_version: int | None = None,
    channel: str = Appointment.Channel.EMR,
    now: datetime | None = None,
) -> tuple[Appointment, bool]:
    """Move an appointment along booked → arrived → fulfilled, or booked → noshow.

    Returns the appointment and whether it changed: the status it already has changes nothing (a
    retried update), any other move outside ``STATUS_TRANSITIONS`` is refused. The slot stays
    occupied: arrived, fulfilled and no-show appointments all occupy it.
    """
    now = now or timezone.now()
    with transaction.atomic():
        _lock_timeout()
        appointment = Appointment.objects.filter(pk=appointment_id).first()
        if appointment is None:
            raise errors.AppointmentNotFound
        if expected_version is not None and appointment.version != expected_version:
            raise errors.VersionMismatch
        if appointment.status == status:
            return appointment, False
        if status not in STATUS_TRANSITIONS.get(appointment.status, ()):
            raise errors.InvalidStatusChange
        changed = Appointment.objects.filter(
            pk=appointment_id, status=appointment.status, version=appointment.version
        ).update(status=status, version=F("version") + 1, updated_at=now)
        if changed != 1:
            raise errors.VersionMismatch  # changed meanwhile: the caller reads it again
        appointment.refresh_from_db()
        outbox_append(
            kind=f"appointment.{status}",
            clinic_id=appointment.clinic_id,
            slot=None,
            appointment=appointment,
            channel=channel,
            payload={"appointment_version": appointment.version},
        )
    return appointment, True


def appointment_reschedule(
    *,
    appointment: Appointment,
    new_slot_id: int,
    channel: str,
    hold_token: str = "",
    reason: str = "",
    now: datetime | None = None,
) -> Appointment:
    """Move a citizen's appointment to another slot in one step: the new slot is booked and the old
    one released in the same transaction, never both and never neither.

    The old appointment must still be cancellable online (the clinic's cut-off); it is cancelled
    first inside the transaction, so that the limit and overlap rules see the citizen as they will
    be afterwards; if the new booking is refused, everything rolls back and the old one stands.
    """
    now = now or timezone.now()
    citizen = appointment.citizen
    if hold_token:
        existing = _appointment_for_hold(hold_token, citizen, new_slot_id)
        if existing is not None and existing.rescheduled_from_id == appointment.pk:
            return existing  # a retried confirmation: the same answer as the first time
    if appointment.slot_id == new_slot_id:
        raise errors.SameSlot
    if appointment.status != Appointment.Status.BOOKED:
        raise errors.NotCancellable
    if not appointment_is_cancellable(appointment, now=now):
        raise errors.CancelTooLate
    reason = reason or appointment.reason
    try:
        with transaction.atomic():
            _lock_timeout()
            Citizen.objects.select_for_update().filter(pk=citizen.pk).first()
            released = Appointment.objects.filter(pk=appointment.pk, status=Appointment.Status.BOOKED).update(
                status=Appointment.Status.CANCELLED_BY_CITIZEN,
                cancel_reason=Appointment.CancelReason.RESCHEDULED,
                cancelled_at=now,
                version=F("version") + 1,
                updated_at=now,
            )
            if released != 1:
                raise errors.NotCancellable
            Slot.objects.filter(pk=appointment.slot_id, status=Slot.Status.BOOKED).update(
                status=Slot.Status.FREE, version=F("version") + 1, updated_at=now
            )
            appointment.refresh_from_db()
            outbox_append(
                kind="appointment.cancelled",
                clinic_id=appointment.clinic_id,
                slot=appointment.slot,
                appointment=appointment,
                channel="citizen",
                payload={
                    "reason": Appointment.CancelReason.RESCHEDULED,
                    "appointment_version": appointment.version,
                },
            )
            new = _book_in_transaction(
                slot_id=new_slot_id,
                citizen=citizen,
                reason=reason,
                channel=channel,
                hold_token=hold_token,
                booked_by_user=None,
                external_id="",
                now=now,
                rescheduled_from=appointment,
            )
    except errors.SlotUnavailable:
        appointment.refresh_from_db()
        if hold_token:
            existing = _appointment_for_hold(hold_token, citizen, new_slot_id)
            if existing is not None and existing.rescheduled_from_id == appointment.pk:
                return existing
            if not _hold_is_live(new_slot_id, citizen, hold_token, now):
                raise errors.HoldExpired from None
        raise
    except IntegrityError as exc:
        appointment.refresh_from_db()
        if "appt_no_overlap_per_citizen" in str(exc):
            raise errors.PatientOverlap from exc
        raise errors.SlotUnavailable from exc
    except errors.ApplicationError:
        appointment.refresh_from_db()  # rolled back: the old appointment stands
        raise
    except OperationalError as exc:
        if "lock timeout" in str(exc) or "lock_not_available" in str(exc):
            raise errors.Busy from exc
        raise
    logger.info("appointment rescheduled", extra={"appointment_id": new.pk, "from_id": appointment.pk})
    return new


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


def appointment_move_by_clinic(
    *,
    appointment: Appointment,
    new_slot_id: int,
    by: User,
    now: datetime | None = None,
) -> Appointment:
    """The clinic moves an appointment to another of its free slots: all or nothing.

    The same pattern as ``appointment_reschedule`` without the online cut-off (the clinic moves its
    own appointments at any time before they start): the citizen's row is locked, the old
    appointment is cancelled by the clinic and its slot freed, then the new slot is booked on the
    clinic-agenda channel, in one transaction. If the new booking is refused the old appointment
    stands. Only the new booking notifies the citizen, so they get one confirmation of the new time.
    """
    now = now or timezone.now()
    citizen = appointment.citizen
    if appointment.slot_id == new_slot_id:
        raise errors.SameSlot
    if appointment.status != Appointment.Status.BOOKED or appointment.start <= now:
        raise errors.NotCancellable
    if not Slot.objects.filter(pk=new_slot_id, clinic_id=appointment.clinic_id).exists():
        raise errors.SlotNotFound  # a clinic moves appointments only within its own agenda
    try:
        with transaction.atomic():
            _lock_timeout()
            Citizen.objects.select_for_update().filter(pk=citizen.pk).first()
            released = Appointment.objects.filter(pk=appointment.pk, status=Appointment.Status.BOOKED).update(
                status=Appointment.Status.CANCELLED_BY_CLINIC,
                cancel_reason=Appointment.CancelReason.RESCHEDULED,
                cancelled_at=now,
                version=F("version") + 1,
                updated_at=now,
            )
            if released != 1:
                raise errors.NotCancellable
            Slot.objects.filter(pk=appointment.slot_id, status=Slot.Status.BOOKED).update(
                status=Slot.Status.FREE, version=F("version") + 1, updated_at=now
            )
            appointment.refresh_from_db()
            slot_version = Slot.objects.filter(pk=appointment.slot_id).values_list("version", flat=True).get()
            outbox_append(
                kind="appointment.cancelled",
                clinic_id=appointment.clinic_id,
                slot=appointment.slot,
                appointment=appointment,
                channel="clinic",
                payload={
                    "reason": Appointment.CancelReason.RESCHEDULED,
                    "slot_freed": True,
                    "slot_version": slot_version,
                    "appointment_version": appointment.version,
                },
            )
            new = _book_in_transaction(
                slot_id=new_slot_id,
                citizen=citizen,
                reason=appointment.reason,
                channel=Appointment.Channel.CLINIC_AGENDA,
                hold_token="",
                booked_by_user=by,
                external_id="",
                now=now,
                rescheduled_from=appointment,
            )
    except IntegrityError as exc:
        appointment.refresh_from_db()
        if "appt_no_overlap_per_citizen" in str(exc):
            raise errors.PatientOverlap from exc
        raise errors.SlotUnavailable from exc
    except errors.ApplicationError:
        appointment.refresh_from_db()  # rolled back: the old appointment stands
        raise
    except OperationalError as exc:
        if "lock timeout" in str(exc) or "lock_not_available" in str(exc):
            raise errors.Busy from exc
        raise
    logger.info("appointment moved by clinic", extra={"appointment_id": new.pk, "from_id": appointment.pk})
    return new
