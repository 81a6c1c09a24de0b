"""Shared by the booking services: the lock timeout, slot fetch, live-hold filter, online rules,
the outbox and its notification enqueueing, and clinic wall-clock conversion.
"""

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from citizens.models import Citizen
from citizens.selectors import citizen_care

from .. import errors
from ..models import (
    Appointment,
    Audience,
    OutboxEvent,
    Reason,
    Slot,
)

if TYPE_CHECKING:
    from django.db.models import QuerySet


# Named as before the package split, so that log records keep their logger name.
logger = logging.getLogger("booking.services")

ONLINE_CHANNELS = (Appointment.Channel.PORTAL, Appointment.Channel.CITIZEN_API, Appointment.Channel.WAITLIST)


LOCK_TIMEOUT = "3s"


def _lock_timeout() -> None:
    # A booking waits at most this long for a row lock; then the citizen is asked to try again
    # (errors.Busy) instead of piling up connections during a rush.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")


def _lock_citizen(citizen_id: int) -> None:
    """``_lock_timeout()`` and the citizen's row lock in one round trip (the booking's hot path).

    The lock serializes one citizen's bookings and holds (two tabs cannot both pass the limit
    check). ``set_config`` is evaluated in the index scan, below the LockRows node that waits for the
    row, so the timeout already applies to this very wait (tests/booking/test_booking_fast_path.py).
    """
    if connection.vendor != "postgresql":
        _lock_timeout()
        Citizen.objects.select_for_update().filter(pk=citizen_id).first()
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT set_config('lock_timeout', %s, true) FROM {Citizen._meta.db_table} "  # noqa: S608 - table name from the model
            "WHERE id = %s FOR UPDATE",
            [LOCK_TIMEOUT, citizen_id],
        )


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


def _active_future_online(*, citizen_id: int, now: datetime) -> "QuerySet[Appointment]":
    return Appointment.objects.filter(
        citizen_id=citizen_id, status=Appointment.Status.BOOKED, start__gt=now, channel__in=ONLINE_CHANNELS
    )


def _active_future_online_count(*, citizen: Citizen, now: datetime) -> int:
    return _active_future_online(citizen_id=citizen.pk, now=now).count()


def _check_online_rules(
    *,
    slot: Slot,
    citizen: Citizen,
    reason: str | None,
    now: datetime,
    check_limit: bool = True,
    active_count: int | None = None,
) -> None:
    """Invariant 3. ``reason`` None skips the reason check (a hold before the reason is final).
    ``active_count``: the citizen's active online appointments when the caller read them already,
    else they are counted here (``check_limit`` false: the caller checks the limit itself)."""
    # A partner-sandbox clinic takes only its vendor's synthetic citizens, who book nowhere else
    # (docs/vendors.md): to everyone else its slots do not exist.
    if not slot.clinic.is_active or slot.clinic.is_sandbox != citizen.is_synthetic:
        raise errors.SlotNotFound
    if slot.status != Slot.Status.FREE:
        raise errors.SlotUnavailable
    if not slot_is_eligible(slot=slot, citizen=citizen):
        raise errors.NotEligible
    if reason is not None and (reason not in Reason.values or not slot.accepts(reason)):
        raise errors.ReasonNotAccepted
    if slot.start < now + slot.clinic.min_notice:
        raise errors.TooSoon
    if check_limit:
        if active_count is None:
            active_count = _active_future_online_count(citizen=citizen, now=now)
        if active_count >= settings.BOOKING_MAX_ACTIVE_ONLINE:
            raise errors.LimitReached


def _get_slot(slot_id: int) -> Slot:
    try:
        return Slot.objects.select_related("clinic").get(pk=slot_id)
    except (Slot.DoesNotExist, ValueError, TypeError) as exc:
        raise errors.SlotNotFound from exc


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
    if notify and settings.NOTIFICATIONS_ON_COMMIT:
        # Otherwise (production) the beat relay hands the committed pending events to the workers
        # in batches (booking.tasks.notifications_relay): no broker round trip in the request.
        transaction.on_commit(lambda: _enqueue_notification(event.pk))
    return event


def _enqueue_notification(event_id: int) -> None:
    # The booking has committed whatever happens here: if the broker is down the event stays
    # pending and the beat sweep sends it later (nothing lost, never a 500 after a booking).
    from ..tasks import notify_event

    try:
        notify_event.delay(event_id)
    except Exception:  # noqa: BLE001 - any broker failure must not surface to the citizen
        logger.warning("notification not enqueued; the sweep will send it", extra={"event_id": event_id})


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
