"""Many EMR slots of one practitioner role created at once (an agenda snapshot's new slots).

``slot_create`` publishes one slot: a savepoint, the practitioner's lock, an overlap query, two
INSERTs. A 10,000-slot snapshot that way is 60,000 statements; here it is one overlap read and
two INSERTs (one per table, the rows as arrays), with the same rules (invariants 2, 5 and 6):
every slot's fields are checked; a slot that would overlap another published slot of the
practitioner (in any clinic, or an earlier one of the same batch) is not created and is handed
back to the caller; the exclusion constraint stays the last word (a violation rolls the whole
batch back and raises ``PractitionerOverlap``, so the caller can fall back to ``slot_create``).
"""

import json
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from clinics.models import Practitioner, PractitionerRole

from .. import errors
from ..models import OutboxEvent, Slot, reasons_to_mask
from ._common import _lock_timeout
from .slots import _check_slot_fields, _outbox_bulk, _practitioner_slots_between


@dataclass(frozen=True)
class EmrSlot:
    start: datetime
    end: datetime
    reasons: list[str]
    audience: str
    modality: str
    external_id: str


def _check_specs(specs: Iterable[EmrSlot]) -> None:
    """Every spec well formed (aware instants, the slot rules), else ``InvalidSlot`` before any write."""
    for spec in specs:
        if spec.start.tzinfo is None or spec.end.tzinfo is None:
            raise errors.InvalidSlot
        _check_slot_fields(
            start=spec.start,
            end=spec.end,
            reasons=spec.reasons,
            audience=spec.audience,
            modality=spec.modality,
        )


def emr_slots_create(*, role: PractitionerRole, specs: list[EmrSlot]) -> tuple[list[int], list[EmrSlot]]:
    """Create the EMR's new slots of ``role``: returns (the new slots' ids, overlapping specs left out).

    Raises ``InvalidSlot`` (nothing created) if any spec is malformed, ``PractitionerOverlap`` if
    the exclusion constraint refuses the batch (a writer that did not take the practitioner's lock).
    """
    if not specs:
        return [], []
    _check_specs(specs)
    ordered = sorted(specs, key=lambda s: (s.start, s.end))
    try:
        with transaction.atomic():
            # The same turn-taking as slot_create and slots_publish: one writer per practitioner.
            Practitioner.objects.select_for_update().filter(pk=role.practitioner_id).first()
            existing = _between(role.practitioner_id, ordered[0].start, max(s.end for s in ordered))
            keep, left_out = _without_overlaps(ordered, existing)
            if connection.vendor == "postgresql":
                ids = _insert_postgresql(role, keep)
            else:  # the SQLite demo: the ORM's batched INSERTs
                ids = [s.pk for s in Slot.objects.bulk_create([_slot(role, spec) for spec in keep])]
                _outbox_bulk(
                    kind="slot.created",
                    clinic_id=role.clinic_id,
                    versions=((pk, 1) for pk in ids),
                    channel=Slot.Source.EMR.value,
                )
    except IntegrityError as exc:
        if "slot_no_overlap_per_practitioner" in str(exc):
            raise errors.PractitionerOverlap from exc
        raise
    return ids, left_out


def _slot(role: PractitionerRole, spec: EmrSlot) -> Slot:
    return Slot(
        role=role,
        practitioner_id=role.practitioner_id,
        clinic_id=role.clinic_id,
        start=spec.start,
        end=spec.end,
        reasons=reasons_to_mask(spec.reasons),
        audience=spec.audience,
        modality=spec.modality,
        source=Slot.Source.EMR,
        external_id=spec.external_id,
    )


# One statement whatever the count: the slots, then their ``slot.created`` events from the ids the
# first INSERT returns (a data-modifying CTE: one round trip, and the ids never travel to Python and
# back). The rows travel as one JSON array of arrays: psycopg quotes list parameters element by
# element in Python (0.35 s for 10,000 slots' six arrays), a single string in C. The ORM's
# bulk_create builds 18 placeholders a row in Python: 6 s of CPU for 10,000 slots.
_INSERT_SLOTS = """
    WITH u AS (
        SELECT n, (v->>0)::timestamptz AS start, (v->>1)::timestamptz AS finish, (v->>2)::int AS reasons,
            v->>3 AS audience, v->>4 AS modality, v->>5 AS external_id
        FROM json_array_elements(%s::json) WITH ORDINALITY AS j(v, n)
    ), created AS (
        INSERT INTO booking_slot (role_id, practitioner_id, clinic_id, start, "end", reasons, audience,
            modality, source, external_id, status, version, hold_token, created_at, updated_at)
        SELECT %s, %s, %s, u.start, u.finish, u.reasons, u.audience, u.modality, %s, u.external_id,
            %s, 1, '', %s, %s
        FROM u ORDER BY u.n
        RETURNING id
    )
    INSERT INTO booking_outboxevent (created_at, kind, channel, payload, notify_state, clinic_id, slot_id)
    SELECT %s, 'slot.created', %s, '{"version": 1}'::jsonb, %s, %s, created.id
    FROM created ORDER BY created.id
    RETURNING slot_id
"""


def _insert_postgresql(role: PractitionerRole, specs: list[EmrSlot]) -> list[int]:
    """The slots and their ``slot.created`` outbox events (invariant 5), in one statement."""
    if not specs:
        return []
    now = timezone.now()
    rows = json.dumps(
        [
            [
                s.start.isoformat(),
                s.end.isoformat(),
                reasons_to_mask(s.reasons),
                s.audience,
                s.modality,
                s.external_id,
            ]
            for s in specs
        ],
        separators=(",", ":"),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_SLOTS,
            [
                rows,
                role.pk,
                role.practitioner_id,
                role.clinic_id,
                Slot.Source.EMR.value,
                Slot.Status.FREE.value,
                now,
                now,
                now,
                Slot.Source.EMR.value,
                OutboxEvent.NotifyState.SKIPPED.value,
                role.clinic_id,
            ],
        )
        return [row[0] for row in cursor.fetchall()]


def _without_overlaps(
    ordered: list[EmrSlot], existing: list[tuple[int, int, int]]
) -> tuple[list[EmrSlot], list[EmrSlot]]:
    """Split sorted specs into those that overlap nothing (existing: (id, start, end) in epoch
    microseconds, or an earlier kept spec) and the rest. Both lists are sorted by start; a merge
    walk keeps it linear."""
    keep: list[EmrSlot] = []
    left_out: list[EmrSlot] = []
    i = 0
    last_end: datetime | None = None
    for spec in ordered:
        start, end = _micros(spec.start), _micros(spec.end)
        while i < len(existing) and existing[i][2] <= start:
            i += 1  # existing slots never overlap one another, so their ends are sorted too
        clash_existing = i < len(existing) and existing[i][1] < end
        clash_batch = last_end is not None and spec.start < last_end
        if clash_existing or clash_batch:
            left_out.append(spec)
            continue
        keep.append(spec)
        last_end = spec.end
    return keep, left_out


def emr_slots_withdraw(*, clinic_id: int, slot_ids: list[int], now: datetime | None = None) -> list[int]:
    """Withdraw the free ones of these EMR slots at once (``slot_withdraw`` for many); returns them.

    The free rows are locked, then changed, then one ``slot.withdrawn`` outbox event each: a slot a
    citizen booked meanwhile is not free and stays as it is (the caller records a conflict for it);
    a hold on a withdrawn slot ends with it, as in ``slot_withdraw``.
    """
    if not slot_ids:
        return []
    now = now or timezone.now()
    with transaction.atomic():
        _lock_timeout()
        free = list(
            Slot.objects.select_for_update()
            .filter(pk__in=slot_ids, clinic_id=clinic_id, status=Slot.Status.FREE)
            .order_by("pk")
            .values_list("pk", "version")
        )
        ids = [pk for pk, _version in free]
        Slot.objects.filter(pk__in=ids).update(
            status=Slot.Status.CANCELLED,
            holder=None,
            hold_expires=None,
            hold_token="",
            version=F("version") + 1,
            updated_at=now,
        )
        _outbox_bulk(
            kind="slot.withdrawn",
            clinic_id=clinic_id,
            versions=((pk, version + 1) for pk, version in free),
            channel=Slot.Source.EMR.value,
        )
    return ids


@dataclass(frozen=True)
class EmrSlotMove:
    """A free EMR slot to change: its id, the version the caller read, and its new content."""

    slot_id: int
    version: int
    spec: EmrSlot


# One UPDATE whatever the count, compare-and-set on each row's version and status (invariant 3):
# a row a citizen booked or held since the caller read it is not returned, and the caller takes it
# one by one (``slot_update`` then says SlotNotFree, and the snapshot records a conflict).
_UPDATE_SLOTS = """
    UPDATE booking_slot AS s
    SET start = u.start, "end" = u.finish, reasons = u.reasons, audience = u.audience,
        modality = u.modality, holder_id = NULL, hold_expires = NULL, hold_token = '',
        version = s.version + 1, updated_at = %s
    FROM unnest(%s::bigint[], %s::int[], %s::timestamptz[], %s::timestamptz[], %s::int[], %s::text[],
        %s::text[]) AS u(id, version, start, finish, reasons, audience, modality)
    WHERE s.id = u.id AND s.version = u.version AND s.status = %s AND s.role_id = %s
    RETURNING s.id, s.version
"""


# The practitioner's live slots between the first new start and the last new end, times as epoch
# microseconds: loading 20,000 timestamptz values for a 10,000-slot agenda costs more than the
# statement. (A join on the exclusion constraint's GiST index would read fewer rows, but with the
# statistics of a table just filled the planner scans every slot of the practitioner per move.)
_BETWEEN = """
    SELECT id, (extract(epoch FROM start) * 1000000)::bigint, (extract(epoch FROM "end") * 1000000)::bigint
    FROM booking_slot
    WHERE practitioner_id = %s AND start < %s AND "end" > %s AND status <> 'cancelled'
    ORDER BY start
"""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _between(practitioner_id: int, start: datetime, end: datetime) -> list[tuple[int, int, int]]:
    """The practitioner's live slots overlapping [start, end): (id, start, end), by start."""
    if connection.vendor != "postgresql":  # the SQLite demo
        rows = _practitioner_slots_between(practitioner_id, start, end)
        return [(0, _micros(a), _micros(b)) for a, b in rows]
    with connection.cursor() as cursor:
        cursor.execute(_BETWEEN, [practitioner_id, end, start])
        return [(pk, a, b) for pk, a, b in cursor.fetchall()]


def emr_slots_update(
    *, role: PractitionerRole, moves: list[EmrSlotMove], now: datetime | None = None
) -> tuple[list[int], list[EmrSlotMove]]:
    """Move or change many free EMR slots of ``role`` at once (``slot_update`` for many).

    Returns (the ids changed, the moves left to the caller). Only moves that can be made in any
    order are made here: the new time overlaps no slot of the practitioner where it stands now (in
    any clinic; the slot itself aside) nor another move of the batch, so the exclusion constraint
    can never be hit half-way through the statement. The others are left: a chain of moves (a slot
    into the time another one leaves), a real overlap, or a row whose version or status changed
    since it was read (compare-and-set); the caller takes them one by one, after this batch. Each
    changed slot gets its ``slot.updated`` outbox event with its new version (invariant 5), and a
    hold on it ends, as in ``slot_update``. Raises ``InvalidSlot`` (nothing changed) on a
    malformed spec.
    """
    if not moves:
        return [], []
    _check_specs([move.spec for move in moves])
    if connection.vendor != "postgresql":
        return [], list(moves)  # the SQLite demo: one by one
    now = now or timezone.now()
    ordered = sorted(moves, key=lambda m: (m.spec.start, m.spec.end))
    try:
        with transaction.atomic():
            _lock_timeout()
            Practitioner.objects.select_for_update().filter(pk=role.practitioner_id).first()
            existing = _between(role.practitioner_id, ordered[0].spec.start, max(m.spec.end for m in ordered))
            batch, left = _movable(ordered, existing)
            if not batch:
                return [], left
            with connection.cursor() as cursor:
                cursor.execute(
                    _UPDATE_SLOTS,
                    [
                        now,
                        [m.slot_id for m in batch],
                        [m.version for m in batch],
                        [m.spec.start for m in batch],
                        [m.spec.end for m in batch],
                        [reasons_to_mask(m.spec.reasons) for m in batch],
                        [m.spec.audience for m in batch],
                        [m.spec.modality for m in batch],
                        Slot.Status.FREE.value,
                        role.pk,
                    ],
                )
                changed = dict(cursor.fetchall())
            _outbox_bulk(
                kind="slot.updated",
                clinic_id=role.clinic_id,
                versions=sorted(changed.items()),
                channel=Slot.Source.EMR.value,
            )
    except IntegrityError as exc:  # a writer that did not take the practitioner's lock
        if "slot_no_overlap_per_practitioner" in str(exc):
            raise errors.PractitionerOverlap from exc
        raise
    left.extend(m for m in batch if m.slot_id not in changed)
    return sorted(changed), left


def _movable(
    ordered: list[EmrSlotMove], existing: list[tuple[int, int, int]]
) -> tuple[list[EmrSlotMove], list[EmrSlotMove]]:
    """Split moves sorted by new start into those whose new time is clear of every slot as it
    stands (the slot itself aside) and of the earlier moves kept, and the rest. ``existing``: (id,
    start, end) sorted by start, times in epoch microseconds."""
    ends = [end for _pk, _start, end in existing]  # sorted too: existing slots never overlap
    batch: list[EmrSlotMove] = []
    left: list[EmrSlotMove] = []
    last_end: datetime | None = None
    for move in ordered:
        spec = move.spec
        start, end = _micros(spec.start), _micros(spec.end)
        i = bisect_right(ends, start)  # the first existing slot ending after the new start
        clash = False
        while i < len(existing) and existing[i][1] < end:
            if existing[i][0] != move.slot_id:
                clash = True
                break
            i += 1
        if clash or (last_end is not None and spec.start < last_end):
            left.append(move)
            continue
        batch.append(move)
        last_end = spec.end
    return batch, left


@dataclass(frozen=True)
class EmrRearrangement:
    """What ``emr_slots_rearrange`` did: the slots moved, the moves withdrawn (their new time is held
    by a slot that stays), and the moves left to the caller (booked, blocked or changed since read)."""

    changed: list[int]
    withdrawn: list[EmrSlotMove]
    stale: list[EmrSlotMove]


# The moving rows, locked (in id order, as every batch locks) so that nobody books or changes them
# between the checks below and the writes: the compare-and-set on the version read by the caller.
_LOCK_MOVES = """
    SELECT id, version, status, role_id FROM booking_slot WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE
"""
# Set aside: a row out of the exclusion constraint's scope (``status <> 'cancelled'``) until its new
# time is written. Inside the transaction only; no other transaction ever sees it (the rows are
# locked and the change is undone by the next statement), and no version bump or event of its own.
_PARK = "UPDATE booking_slot SET status = 'cancelled' WHERE id = ANY(%s::bigint[])"
_PLACE = """
    UPDATE booking_slot AS s
    SET status = %s, start = u.start, "end" = u.finish, reasons = u.reasons, audience = u.audience,
        modality = u.modality, holder_id = NULL, hold_expires = NULL, hold_token = '',
        version = s.version + 1, updated_at = %s
    FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::int[], %s::text[], %s::text[])
        AS u(id, start, finish, reasons, audience, modality)
    WHERE s.id = u.id
    RETURNING s.id, s.version
"""
_WITHDRAW = """
    UPDATE booking_slot SET status = 'cancelled', holder_id = NULL, hold_expires = NULL, hold_token = '',
        version = version + 1, updated_at = %s
    WHERE id = ANY(%s::bigint[])
    RETURNING id, version
"""


def emr_slots_rearrange(
    *, role: PractitionerRole, moves: list[EmrSlotMove], now: datetime | None = None
) -> EmrRearrangement:
    """Move free EMR slots of ``role`` to the times the EMR now gives them, whatever the order: chains
    (a slot into the time another one leaves), swaps and rotations (slots trading times).

    ``emr_slots_update`` makes only the moves that fit where the other slots stand now; this one
    makes the rest at once, so that the result is the final agenda, not an order of steps. Every
    move's row is locked and compared with the version the caller read (compare-and-set): a slot
    booked, blocked or changed since is left untouched and handed back (``stale``). Each other move
    leaves its old time, so a new time is only refused by a slot that stays: another slot of the
    practitioner (a booking, a blocked slot, a web-agenda slot, a slot at another clinic). Such a
    slot is withdrawn rather than left on offer at a time the EMR no longer gives it (one
    ``slot.withdrawn`` event); the others are set aside out of the exclusion constraint's scope
    and written at their new times (one ``slot.updated`` event each, one version bump). The
    constraint stays the last word: a writer that did not take the practitioner's lock makes it
    raise ``PractitionerOverlap``, and the caller's transaction rolls back. ``InvalidSlot`` (nothing
    changed) on a malformed spec.
    """
    if not moves:
        return EmrRearrangement([], [], [])
    _check_specs([move.spec for move in moves])
    now = now or timezone.now()
    if connection.vendor != "postgresql":
        return _rearrange_portable(role=role, moves=moves, now=now)
    try:
        with transaction.atomic():
            _lock_timeout()
            Practitioner.objects.select_for_update().filter(pk=role.practitioner_id).first()
            with connection.cursor() as cursor:
                cursor.execute(_LOCK_MOVES, [[m.slot_id for m in moves]])
                current = {
                    pk: (version, status, role_id) for pk, version, status, role_id in cursor.fetchall()
                }
            valid: list[EmrSlotMove] = []
            stale: list[EmrSlotMove] = []
            for move in moves:
                if current.get(move.slot_id) == (move.version, Slot.Status.FREE, role.pk):
                    valid.append(move)
                else:
                    stale.append(move)
            if not valid:
                return EmrRearrangement([], [], stale)
            moving = {m.slot_id for m in valid}
            first = min(m.spec.start for m in valid)
            last = max(m.spec.end for m in valid)
            staying = [row for row in _between(role.practitioner_id, first, last) if row[0] not in moving]
            starts = [start for _pk, start, _end in staying]
            ends = [end for _pk, _start, end in staying]  # sorted too: live slots never overlap
            place: list[EmrSlotMove] = []
            blocked: list[EmrSlotMove] = []
            for move in valid:
                start, end = _micros(move.spec.start), _micros(move.spec.end)
                i = bisect_right(ends, start)  # the first staying slot ending after the new start
                held = i < len(staying) and starts[i] < end
                (blocked if held else place).append(move)
            withdrawn: dict[int, int] = {}
            changed: dict[int, int] = {}
            with connection.cursor() as cursor:
                if blocked:
                    cursor.execute(_WITHDRAW, [now, [m.slot_id for m in blocked]])
                    withdrawn = dict(cursor.fetchall())
                if place:
                    cursor.execute(_PARK, [[m.slot_id for m in place]])
                    cursor.execute(
                        _PLACE,
                        [
                            Slot.Status.FREE.value,
                            now,
                            [m.slot_id for m in place],
                            [m.spec.start for m in place],
                            [m.spec.end for m in place],
                            [reasons_to_mask(m.spec.reasons) for m in place],
                            [m.spec.audience for m in place],
                            [m.spec.modality for m in place],
                        ],
                    )
                    changed = dict(cursor.fetchall())
            _outbox_bulk(
                kind="slot.withdrawn",
                clinic_id=role.clinic_id,
                versions=sorted(withdrawn.items()),
                channel=Slot.Source.EMR.value,
            )
            _outbox_bulk(
                kind="slot.updated",
                clinic_id=role.clinic_id,
                versions=sorted(changed.items()),
                channel=Slot.Source.EMR.value,
            )
    except IntegrityError as exc:  # a writer that did not take the practitioner's lock
        if "slot_no_overlap_per_practitioner" in str(exc):
            raise errors.PractitionerOverlap from exc
        raise
    return EmrRearrangement(sorted(changed), blocked, stale)


def _rearrange_portable(
    *, role: PractitionerRole, moves: list[EmrSlotMove], now: datetime
) -> EmrRearrangement:
    """``emr_slots_rearrange`` on the SQLite demo (``make run``): the same checks and results, written
    through the ORM. SQLite has no exclusion constraint to step around and one writer at a time, so
    each move is written in turn once every check has passed."""
    with transaction.atomic():
        current = {
            pk: (version, status, role_id)
            for pk, version, status, role_id in Slot.objects.select_for_update()
            .filter(pk__in=[m.slot_id for m in moves])
            .values_list("pk", "version", "status", "role_id")
        }
        valid = [m for m in moves if current.get(m.slot_id) == (m.version, Slot.Status.FREE, role.pk)]
        stale = [m for m in moves if m not in valid]
        if not valid:
            return EmrRearrangement([], [], stale)
        staying = list(
            Slot.objects.filter(
                practitioner_id=role.practitioner_id,
                start__lt=max(m.spec.end for m in valid),
                end__gt=min(m.spec.start for m in valid),
            )
            .exclude(status=Slot.Status.CANCELLED)
            .exclude(pk__in=[m.slot_id for m in valid])
            .values_list("start", "end")
        )
        blocked = [m for m in valid if any(a < m.spec.end and b > m.spec.start for a, b in staying)]
        place = [m for m in valid if m not in blocked]
        released = {"holder": None, "hold_expires": None, "hold_token": "", "updated_at": now}
        for move in blocked:
            Slot.objects.filter(pk=move.slot_id).update(
                status=Slot.Status.CANCELLED, version=F("version") + 1, **released
            )
        for move in place:
            Slot.objects.filter(pk=move.slot_id).update(
                start=move.spec.start,
                end=move.spec.end,
                reasons=reasons_to_mask(move.spec.reasons),
                audience=move.spec.audience,
                modality=move.spec.modality,
                version=F("version") + 1,
                **released,
            )
        versions = dict(Slot.objects.filter(pk__in=[m.slot_id for m in valid]).values_list("pk", "version"))
        for kind, done in (("slot.withdrawn", blocked), ("slot.updated", place)):
            _outbox_bulk(
                kind=kind,
                clinic_id=role.clinic_id,
                versions=sorted((m.slot_id, versions[m.slot_id]) for m in done),
                channel=Slot.Source.EMR.value,
            )
    return EmrRearrangement(sorted(m.slot_id for m in place), blocked, stale)
