"""Booking writes: hold, book, cancel. Each is one short transaction with a compare-and-set.

Every function takes keyword-only arguments and the application clock ``now`` (tests move it).
Slow work (e-mail) is enqueued on commit from the outbox event written in the same transaction.
"""

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from citizens.models import Citizen, User
from citizens.selectors import citizen_care
from clinics.models import PractitionerRole

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


def _check_online_rules(*, slot: Slot, citizen: Citizen, reason: str | None, now: datetime) -> None:
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
    if _active_future_online_count(citizen=citizen, now=now) >= settings.BOOKING_MAX_ACTIVE_ONLINE:
        raise errors.LimitReached


def _get_slot(slot_id: int) -> Slot:
    try:
        return Slot.objects.select_related("clinic").get(pk=slot_id)
    except (Slot.DoesNotExist, ValueError, TypeError) as exc:
        raise errors.SlotNotFound from exc


def slot_hold(*, slot_id: int, citizen: Citizen, now: datetime | None = None) -> Hold:
    """Hold a free slot for ``BOOKING_HOLD_SECONDS`` so that nobody takes it while the citizen confirms.

    One hold per citizen: taking a new one releases the previous one in the same transaction. The
    compare-and-set succeeds only if the slot is free and not under someone else's live hold; a
    hold is not a change of the slot's published state, so it neither bumps the version nor writes
    an outbox event (EMRs never see holds). Holding the same slot again returns the same hold
    without extending it: a slot cannot be kept out of reach by holding it over and over.
    """
    now = now or timezone.now()
    slot = _get_slot(slot_id)
    _check_online_rules(slot=slot, citizen=citizen, reason=None, now=now)
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
    now: datetime | None = None,
) -> Appointment:
    """Book a slot: the first committed booking wins, on every channel.

    Online channels apply invariant 3 (audience, reason, notice, anti-hoarding limit); staff and
    EMR channels skip it and need no hold. A retried confirmation with the same hold token returns
    the appointment it created instead of an error.
    """
    now = now or timezone.now()
    online = channel in ONLINE_CHANNELS
    if hold_token:
        existing = _appointment_for_hold(hold_token, citizen, slot_id)
        if existing is not None:
            return existing
    try:
        with transaction.atomic():
            _lock_timeout()
            # Serializes one citizen's bookings, so that two tabs cannot both pass the limit check.
            Citizen.objects.select_for_update().filter(pk=citizen.pk).first()
            slot = _get_slot(slot_id)
            if online:
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
            )
            outbox_append(
                kind="appointment.booked",
                clinic_id=slot.clinic_id,
                slot=slot,
                appointment=appointment,
                channel=channel,
                payload={"slot_version": slot.version + 1, "appointment_version": appointment.version},
                notify=True,
            )
    except errors.SlotUnavailable:
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
        raise errors.SlotUnavailable from exc
    except OperationalError as exc:
        if "lock timeout" in str(exc) or "lock_not_available" in str(exc):
            raise errors.Busy from exc
        raise
    logger.info("appointment booked", extra={"appointment_id": appointment.pk, "channel": channel})
    return appointment


def _appointment_for_hold(hold_token: str, citizen: Citizen, slot_id: int) -> Appointment | None:
    return Appointment.objects.filter(idempotency_key=hold_token, citizen=citizen, slot_id=slot_id).first()


def _hold_is_live(slot_id: int, citizen: Citizen, hold_token: str, now: datetime) -> bool:
    return Slot.objects.filter(
        pk=slot_id, holder=citizen, hold_token=hold_token, hold_expires__gt=now
    ).exists()


def appointment_cancel(
    *,
    appointment: Appointment,
    reason: str,
    by_clinic: bool = False,
    now: datetime | None = None,
) -> Appointment:
    """Cancel an appointment and free its slot at once, in one transaction.

    A citizen may cancel online until the clinic's cut-off; the slot goes back to ``free`` (ready for
    the next citizen or the waitlist) unless the clinic withdrew or blocked it meanwhile.
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
        changed = Appointment.objects.filter(pk=appointment.pk, status__in=CANCELLABLE_STATUSES).update(
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
            channel="clinic" if by_clinic else "citizen",
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


def slot_create(
    *,
    role: PractitionerRole,
    local_start: datetime,
    minutes: int,
    reasons: list[str],
    audience: str = Audience.PUBLIC,
    modality: str = Modality.IN_PERSON,
    source: str = Slot.Source.WEB_AGENDA,
    external_id: str = "",
) -> Slot:
    """Publish one slot at a clinic's local time (invariants 2, 5 and 6).

    The practitioner may not have another published slot overlapping it, in any clinic: an
    exclusion constraint on PostgreSQL, checked here first for a clear message (and as the guard on
    the SQLite demo, where the IMMEDIATE transaction serializes writers).
    """
    if not 5 <= minutes <= 240 or not reasons or any(r not in REASON_BITS for r in reasons):
        raise errors.InvalidSlot
    start = local_to_utc(local=local_start, tz=role.clinic.tz)
    end = start + timedelta(minutes=minutes)
    try:
        with transaction.atomic():
            overlap = (
                Slot.objects.filter(practitioner_id=role.practitioner_id, start__lt=end, end__gt=start)
                .exclude(status=Slot.Status.CANCELLED)
                .exists()
            )
            if overlap:
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
            outbox_append(kind="slot.created", clinic_id=role.clinic_id, slot=slot, payload={"version": 1})
    except IntegrityError as exc:
        if "slot_no_overlap_per_practitioner" in str(exc):
            raise errors.PractitionerOverlap from exc
        raise
    return slot
