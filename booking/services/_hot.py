"""The booking's hot path in two statements between BEGIN and COMMIT, as prepared statements.

1. ``booking_lock_and_read``: the citizen's row lock (with the lock timeout set in the same scan, so
   it applies to that very wait) and the slot with its clinic and practitioner, in one statement.
   The slot is read from the statement's snapshot, taken before the lock wait: the compare-and-set
   below decides on its version, so a slot that changed meanwhile is refused, never booked on stale
   rules.
2. ``booking_write``: the two guard reads (an occupying appointment of the citizen's that overlaps,
   the active future online appointments for the anti-hoarding limit), the compare-and-set with
   version bump that also releases the citizen's hold on any other slot, the appointment INSERT
   and the outbox INSERT, as data-modifying CTEs of one statement. It runs after the lock, so its
   snapshot sees every booking of the citizen's that committed before the lock was granted; the
   compare-and-set is conditional on the guards, and each INSERT reads the row the step before it
   returned, so nothing is written unless the slot was taken by this very statement.

The statements are built once per process from the models' tables and are sent with server-side
binding and prepared on first use (psycopg keeps them per connection): PostgreSQL skips parsing and
planning, and Python skips the client-side quoting of every value. ``DATABASE_PREPARED_STATEMENTS``
false (behind a connection pooler that does not keep prepared statements) sends them unprepared.
"""

import copy
import functools
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import psycopg
from django.conf import settings
from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader
from django.db.backends.utils import CursorWrapper
from django.db.models import F, Model, Q
from psycopg.pq import Format

from citizens.models import Citizen

from .. import errors
from ..models import OCCUPYING_STATUSES, Appointment, OutboxEvent, Slot

if TYPE_CHECKING:
    from clinics.models import Clinic, Practitioner

ONLINE = (Appointment.Channel.PORTAL, Appointment.Channel.CITIZEN_API, Appointment.Channel.WAITLIST)

TIMESTAMPTZ_OID = 1184
M = TypeVar("M", bound=Model)

Loader = tuple[type[Model], list[str], list[tuple[int, list[Callable[..., Any]]]]]


def _literals(values: Sequence[str]) -> str:
    # Constants of the code (statuses, channels), never input: inlined so that the plan sees them.
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


class _PreparedCursor(psycopg.Cursor[Any]):
    """Server-side binding; each statement prepared on first use (``prepare`` true)."""

    prepare: bool = True

    def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
        kw.setdefault("prepare", self.prepare)
        return super().execute(query, params, **kw)


def hot_cursor() -> CursorWrapper:
    """A cursor on Django's connection (same transaction, same error wrapping, seen by
    ``CaptureQueriesContext``) with server-side binding, whose statements are prepared.

    While queries are logged (``CaptureQueriesContext``, DEBUG) they are sent unprepared, so that
    the log shows their text (Django reads it from the cursor, which a prepared execution leaves
    empty); the statements and their parameters are the same."""
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = connection.connection
    cursor = _PreparedCursor(raw)
    cursor.prepare = settings.DATABASE_PREPARED_STATEMENTS and not connection.queries_logged
    if connection.timezone != getattr(
        raw.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT), "timezone", None
    ):
        register_tzloader(connection.timezone, cursor)
    if connection.queries_logged:
        return connection.make_debug_cursor(cast(Any, cursor))  # the stubs say a wrapper: a DB-API cursor
    return connection.make_cursor(cast(Any, cursor))


@functools.cache
def _read_sql() -> tuple[str, str, list[Loader]]:
    """(lock and read, read only, how to make the three instances from a row)."""
    from clinics.models import Clinic, Practitioner

    quote = connection.ops.quote_name
    loaders: list[Loader] = []
    columns: list[str] = []
    position = 0
    for model, alias in ((Slot, "s"), (Clinic, "c"), (Practitioner, "p")):
        fields = list(model._meta.concrete_fields)
        converters = []
        for field in fields:
            found = field.get_db_converters(connection)
            if found:
                converters.append((position, found))
            columns.append(f"{alias}.{quote(str(field.column))}")
            position += 1
        loaders.append((model, [f.attname for f in fields], converters))
    tables = (
        f"{Slot._meta.db_table} s JOIN {Clinic._meta.db_table} c ON c.id = s.clinic_id "
        f"JOIN {Practitioner._meta.db_table} p ON p.id = s.practitioner_id"
    )
    select = ", ".join(columns)
    lock_and_read = (
        f"SELECT {select}, set_config('lock_timeout', %(timeout)s, true) "  # noqa: S608 - names from the models
        f"FROM {Citizen._meta.db_table} z, {tables} WHERE z.id = %(citizen)s AND s.id = %(slot)s "
        "FOR UPDATE OF z"
    )
    read = f"SELECT {select} FROM {tables} WHERE s.id = %(slot)s"  # noqa: S608 - names from the models
    return lock_and_read, read, loaders


def _slot_from_row(row: Sequence[Any], loaders: list[Loader]) -> Slot:
    values = list(row)
    instances = []
    start = 0
    for model, attnames, converters in loaders:
        for position, functions in converters:
            value = values[position]
            for converter in functions:
                value = converter(value, None, connection)
            values[position] = value
        instances.append(model.from_db(connection.alias, attnames, values[start : start + len(attnames)]))
        start += len(attnames)
    slot = cast(Slot, instances[0])
    slot.clinic = cast("Clinic", instances[1])
    slot.practitioner = cast("Practitioner", instances[2])
    return slot


def _slot_id(slot_id: Any) -> int:
    try:
        value = int(slot_id)
    except (ValueError, TypeError) as exc:
        raise errors.SlotNotFound from exc
    if not -(2**63) <= value < 2**63:
        raise errors.SlotNotFound
    return value


def booking_lock_and_read(*, citizen_id: int, slot_id: Any, lock_timeout: str) -> Slot:
    """Lock the citizen's row (waiting at most ``lock_timeout``) and read the slot, one statement."""
    slot_id = _slot_id(slot_id)
    if connection.vendor != "postgresql":
        Citizen.objects.select_for_update().filter(pk=citizen_id).exists()
        return _portable_read(slot_id)
    lock_and_read, _, loaders = _read_sql()
    with hot_cursor() as cursor:
        cursor.execute(lock_and_read, {"timeout": lock_timeout, "citizen": citizen_id, "slot": slot_id})
        row = cursor.fetchone()
    if row is None:
        raise errors.SlotNotFound
    return _slot_from_row(row, loaders)


def booking_read(slot_id: Any) -> Slot:
    """The slot with its clinic and practitioner (a move: the citizen is locked already)."""
    slot_id = _slot_id(slot_id)
    if connection.vendor != "postgresql":
        return _portable_read(slot_id)
    _, read, loaders = _read_sql()
    with hot_cursor() as cursor:
        cursor.execute(read, {"slot": slot_id})
        row = cursor.fetchone()
    if row is None:
        raise errors.SlotNotFound
    return _slot_from_row(row, loaders)


@functools.cache
def _write_sql() -> str:
    appointment = Appointment._meta.db_table
    slot = Slot._meta.db_table
    outbox = OutboxEvent._meta.db_table
    booked, free = _literals([Slot.Status.BOOKED]), _literals([Slot.Status.FREE])
    return (
        "WITH g AS (SELECT "  # noqa: S608 - names from the models, constants of the code
        f"EXISTS (SELECT 1 FROM {appointment} a WHERE a.citizen_id = %(citizen)s "
        f"AND a.status IN ({_literals(OCCUPYING_STATUSES)}) "
        'AND a.start < %(end)s::timestamptz AND a."end" > %(start)s::timestamptz) AS overlap, '
        f"CASE WHEN %(count)s::boolean THEN (SELECT count(*) FROM {appointment} a "
        f"WHERE a.citizen_id = %(citizen)s AND a.status = {_literals([Appointment.Status.BOOKED])} "
        f"AND a.start > %(now)s::timestamptz AND a.channel IN ({_literals(ONLINE)})) ELSE 0 END AS active, "
        # Whether the slot is still free at the version read: a change while the lock was awaited
        # (a double click's first booking) is reported before the guards, as a fresh read would.
        f"(SELECT s.status = {free} AND s.version = %(version)s FROM {slot} s "
        "WHERE s.id = %(slot)s) AS current), "
        # The compare-and-set: free, at the version the rules were checked on, no one else's live
        # hold, and the guards pass; the citizen's hold on any other slot is released with it.
        f"cas AS (UPDATE {slot} SET "
        f"status = CASE WHEN id = %(slot)s THEN {booked} ELSE status END, "
        "version = CASE WHEN id = %(slot)s THEN version + 1 ELSE version END, "
        "updated_at = CASE WHEN id = %(slot)s THEN %(now)s::timestamptz ELSE updated_at END, "
        "holder_id = NULL, hold_expires = NULL, hold_token = '' "
        f"WHERE ((id = %(slot)s AND status = {free} AND version = %(version)s "
        "AND (hold_expires IS NULL OR hold_expires <= %(now)s::timestamptz OR holder_id = %(citizen)s)) "
        "OR (holder_id = %(citizen)s AND id <> %(slot)s)) "
        "AND %(go)s::boolean AND NOT (SELECT overlap FROM g) "
        "AND (NOT %(count)s::boolean OR (SELECT active FROM g) < %(limit)s) "
        'RETURNING id, clinic_id, start, "end"), '
        f'appt AS (INSERT INTO {appointment} (slot_id, citizen_id, clinic_id, start, "end", reason, status, '
        "channel, booked_by_user_id, reference, idempotency_key, external_id, cancel_reason, "
        "rescheduled_from_id, cancelled_at, version, created_at, updated_at) "
        f'SELECT cas.id, %(citizen)s, cas.clinic_id, cas.start, cas."end", %(reason)s::text, '
        f"{_literals([Appointment.Status.BOOKED])}, %(channel)s::text, %(by_user)s::bigint, "
        "%(reference)s::text, %(idempotency_key)s::text, %(external_id)s::text, '', "
        "%(rescheduled_from)s::bigint, NULL, 1, %(stamp)s::timestamptz, %(stamp)s::timestamptz "
        "FROM cas WHERE cas.id = %(slot)s RETURNING id), "
        f"event AS (INSERT INTO {outbox} (created_at, kind, channel, payload, notify_state, notified_at, "
        "appointment_id, clinic_id, slot_id, feed_seq) "
        "SELECT %(stamp)s::timestamptz, 'appointment.booked', %(channel)s::text, %(payload)s::jsonb, "
        f"{_literals([OutboxEvent.NotifyState.PENDING])}, NULL, appt.id, %(clinic)s, %(slot)s, NULL "
        "FROM appt RETURNING id) "
        "SELECT g.current, g.overlap, g.active, (SELECT id FROM appt), (SELECT id FROM event) FROM g"
    )


def booking_write(
    *,
    slot: Slot,
    appointment: Appointment,
    online: bool,
    go: bool,
    now: datetime,
    payload: dict[str, object],
) -> tuple[bool, bool, int, int | None, int | None]:
    """Guards, compare-and-set, appointment and outbox event in one statement.

    ``appointment`` is the unsaved instance (its reference, created/updated stamps and fields are
    written as they are). ``go`` false still reads the guards but books nothing (the caller has a
    refusal to give after them). Returns (the slot is still free at the version read, overlap,
    active online appointments, appointment id, outbox event id); the ids are None when the
    compare-and-set refused.
    """
    limit = settings.BOOKING_MAX_ACTIVE_ONLINE
    if connection.vendor != "postgresql":
        return _portable_write(
            slot=slot, appointment=appointment, online=online, go=go, now=now, payload=payload
        )
    with hot_cursor() as cursor:
        cursor.execute(
            _write_sql(),
            {
                "citizen": appointment.citizen_id,
                "slot": slot.pk,
                "version": slot.version,
                "start": slot.start,
                "end": slot.end,
                "now": now,
                "count": online,
                "limit": limit,
                "go": go,
                "reason": appointment.reason,
                "channel": appointment.channel,
                "by_user": appointment.booked_by_user_id,
                "reference": appointment.reference,
                "idempotency_key": appointment.idempotency_key,
                "external_id": appointment.external_id,
                "rescheduled_from": appointment.rescheduled_from_id,
                "stamp": appointment.created_at,
                "payload": json.dumps(payload),
                "clinic": slot.clinic_id,
            },
        )
        current, overlap, active, appointment_id, event_id = cursor.fetchone()
    return bool(current), bool(overlap), int(active), appointment_id, event_id


@functools.cache
def _by_pk_sql(model: type[Model]) -> tuple[str, Loader]:
    quote = connection.ops.quote_name
    fields = list(model._meta.concrete_fields)
    converters = [(i, found) for i, f in enumerate(fields) if (found := f.get_db_converters(connection))]
    columns = ", ".join(quote(str(f.column)) for f in fields)
    sql = f"SELECT {columns} FROM {model._meta.db_table} WHERE id = %s"  # noqa: S608 - names from the model
    return sql, (model, [f.attname for f in fields], converters)


def model_by_pk(model: type[M], pk: int) -> M | None:
    """One row by primary key as a model instance, through a prepared statement (the citizen
    API's token check reads the citizen at every request)."""
    if connection.vendor != "postgresql":
        return model._default_manager.filter(pk=pk).first()
    sql, (_, attnames, converters) = _by_pk_sql(model)
    with hot_cursor() as cursor:
        cursor.execute(sql, [pk])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for position, functions in converters:
        for converter in functions:
            values[position] = converter(values[position], None, connection)
    return model.from_db(connection.alias, attnames, values)


# --- the SQLite demo (``make run``) ---------------------------------------------------------------
# The same reads and writes through the ORM, in the same order, with the same answers; SQLite has one
# writer at a time, so the lock and the compare-and-set need no more than this.


def _portable_read(slot_id: int) -> Slot:
    slot = Slot.objects.select_related("clinic", "practitioner").filter(pk=slot_id).first()
    if slot is None:
        raise errors.SlotNotFound
    return slot


def _portable_write(
    *,
    slot: Slot,
    appointment: Appointment,
    online: bool,
    go: bool,
    now: datetime,
    payload: dict[str, object],
) -> tuple[bool, bool, int, int | None, int | None]:
    citizen_id = cast(int, appointment.citizen_id)  # always set: the caller built it for a citizen
    current = Slot.objects.filter(pk=slot.pk, status=Slot.Status.FREE, version=slot.version).exists()
    overlap = Appointment.objects.filter(
        citizen_id=citizen_id, status__in=OCCUPYING_STATUSES, start__lt=slot.end, end__gt=slot.start
    ).exists()
    active = (
        Appointment.objects.filter(
            citizen_id=citizen_id, status=Appointment.Status.BOOKED, start__gt=now, channel__in=ONLINE
        ).count()
        if online
        else 0
    )
    if not go or overlap or (online and active >= settings.BOOKING_MAX_ACTIVE_ONLINE):
        return current, overlap, active, None, None
    released = {"holder": None, "hold_expires": None, "hold_token": ""}
    free_of_holds = Q(hold_expires__isnull=True) | Q(hold_expires__lte=now) | Q(holder_id=citizen_id)
    taken = Slot.objects.filter(
        free_of_holds, pk=slot.pk, status=Slot.Status.FREE, version=slot.version
    ).update(status=Slot.Status.BOOKED, version=F("version") + 1, updated_at=now, **released)
    if not taken:
        return current, overlap, active, None, None
    Slot.objects.filter(holder_id=citizen_id).exclude(pk=slot.pk).update(**released)
    (created,) = Appointment.objects.bulk_create([copy.copy(appointment)])
    event = OutboxEvent.objects.create(
        created_at=appointment.created_at,
        kind="appointment.booked",
        channel=appointment.channel,
        payload=payload,
        notify_state=OutboxEvent.NotifyState.PENDING,
        appointment_id=created.pk,
        clinic_id=slot.clinic_id,
        slot_id=slot.pk,
    )
    return current, overlap, active, created.pk, event.pk
