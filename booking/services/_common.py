"""Shared by the booking services: the lock timeout, slot fetch, live-hold filter, online rules,
the outbox and its notification enqueueing, and clinic wall-clock conversion.
"""

import functools
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field, Model, Q

from citizens.models import Citizen
from citizens.selectors import citizen_care

from .. import errors
from ..models import (
    OCCUPYING_STATUSES,
    Appointment,
    Audience,
    OutboxEvent,
    Reason,
    Slot,
)

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from clinics.models import Clinic, Practitioner

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
    ``active_count``: the citizen's active online appointments when the caller read them already
    (``_get_slot_for_booking``), else they are counted here."""
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


@functools.cache
def _slot_for_booking_sql() -> "tuple[str, list[tuple[type[Model], list[Field[Any, Any]]]]]":
    """The statement of ``_get_slot_for_booking``, built once per process: the ORM would compile
    it again at every booking, which was the largest share of the booking's Python time."""
    from clinics.models import Clinic, Practitioner

    models = [(Slot, "s"), (Clinic, "c"), (Practitioner, "p")]
    quote = connection.ops.quote_name
    columns = [
        f"{alias}.{quote(str(f.column))}" for model, alias in models for f in model._meta.concrete_fields
    ]
    appointment = Appointment._meta.db_table
    sql = (
        f"SELECT {', '.join(columns)}, "  # noqa: S608 - names from the models
        f"EXISTS (SELECT 1 FROM {appointment} a WHERE a.citizen_id = %(citizen)s "
        'AND a.status = ANY(%(occupying)s) AND a.start < s."end" AND a."end" > s.start), '
        f"(SELECT count(*) FROM {appointment} a WHERE a.citizen_id = %(citizen)s AND %(count)s "
        "AND a.status = %(booked)s AND a.start > %(now)s AND a.channel = ANY(%(online)s)) "
        f"FROM {Slot._meta.db_table} s JOIN {Clinic._meta.db_table} c ON c.id = s.clinic_id "
        f"JOIN {Practitioner._meta.db_table} p ON p.id = s.practitioner_id WHERE s.id = %(slot)s"
    )
    return sql, [(model, list(model._meta.concrete_fields)) for model, _ in models]


def _get_slot_for_booking(slot_id: int, *, citizen_id: int, now: datetime, count_active: bool) -> Slot:
    """The slot with its clinic and practitioner, with the booking's two guard reads folded into the
    same statement: ``booking_overlap`` (the citizen already has an occupying appointment at that
    time) and ``booking_active`` (their active future online appointments, the anti-hoarding limit;
    0 unless ``count_active``). Call it after the citizen's row lock: the statement's snapshot then
    sees every booking of theirs that committed before the lock was granted."""
    try:
        slot_id = int(slot_id)
    except (ValueError, TypeError) as exc:
        raise errors.SlotNotFound from exc
    sql, models = _slot_for_booking_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "slot": slot_id,
                "citizen": citizen_id,
                "now": now,
                "count": count_active,
                "occupying": list(OCCUPYING_STATUSES),
                "booked": Appointment.Status.BOOKED,
                "online": list(ONLINE_CHANNELS),
            },
        )
        row = cursor.fetchone()
    if row is None:
        raise errors.SlotNotFound
    instances = []
    position = 0
    for model, fields in models:
        values = []
        for field in fields:
            value = row[position]
            for converter in field.get_db_converters(connection):
                value = converter(value, None, connection)
            values.append(value)
            position += 1
        instances.append(model.from_db(connection.alias, [f.attname for f in fields], values))
    slot = cast(Slot, instances[0])
    slot.clinic = cast("Clinic", instances[1])
    slot.practitioner = cast("Practitioner", instances[2])
    slot.booking_overlap = bool(row[position])  # type: ignore[attr-defined]
    slot.booking_active = int(row[position + 1])  # type: ignore[attr-defined]
    return slot


def slot_book_cas(*, slot_id: int, version: int, citizen_id: int, now: datetime) -> bool:
    """The booking's compare-and-set and the release of the citizen's hold, in one statement.

    The slot becomes ``booked`` with its version bumped only if it is still free, still at the
    version the rules were checked on, and not under someone else's live hold; in the same UPDATE,
    any other slot this citizen holds is released (a booking consumes the citizen's hold, whichever
    slot it was on). Returns whether the slot was booked; the caller raises (and so rolls back the
    release) when it was not.
    """
    table = Slot._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET "  # noqa: S608 - table name from the model
            "status = CASE WHEN id = %(slot)s THEN %(booked)s ELSE status END, "
            "version = CASE WHEN id = %(slot)s THEN version + 1 ELSE version END, "
            "updated_at = CASE WHEN id = %(slot)s THEN %(now)s ELSE updated_at END, "
            "holder_id = NULL, hold_expires = NULL, hold_token = '' "
            "WHERE (id = %(slot)s AND status = %(free)s AND version = %(version)s "
            "AND (hold_expires IS NULL OR hold_expires <= %(now)s OR holder_id = %(citizen)s)) "
            "OR (holder_id = %(citizen)s AND id <> %(slot)s) "
            "RETURNING id",
            {
                "slot": slot_id,
                "version": version,
                "citizen": citizen_id,
                "now": now,
                "free": Slot.Status.FREE,
                "booked": Slot.Status.BOOKED,
            },
        )
        return any(row[0] == slot_id for row in cursor.fetchall())


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
