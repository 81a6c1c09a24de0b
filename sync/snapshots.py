"""Agenda snapshots: an EMR's complete agenda of one schedule over a window, reconciled with the store.

``snapshot_input`` reads and validates the ``$snapshot`` body (every Slot through the same checks as
``POST Slot``, plus the window, duplicate identifiers and overlaps inside the snapshot);
``snapshot_accept`` records it, refusing a generation that is not above the last one accepted for the
role (409), so that a stale snapshot arriving late can never bring withdrawn slots back;
``snapshot_reconcile`` applies it in one transaction, under the practitioner's lock:

* a slot identifier unknown to the store is created; a known free slot whose content differs is
  updated; identical content changes nothing (no version bump, no outbox event); slots trading
  times (swaps, rotations) are all moved at once; a free slot whose new time is held by a slot that
  stays (a kept booking) is withdrawn and its entry refused, never left at a time the EMR dropped;
* an EMR slot of the role in the window that the snapshot no longer lists is withdrawn when free;
* a booked slot that the snapshot removed or changed is never touched: the booking is kept and a
  ``SyncConflict`` is recorded (one open conflict per slot and kind, so a retry records nothing new).

Applying the same snapshot twice changes nothing the second time. Entries that cannot be applied
(a withdrawn identifier, an identifier of another schedule, a new slot overlapping a kept booking, a
busy slot we do not know) are counted as ``refused`` and listed, without failing the others.
"""

import contextlib
import datetime as dt
import functools
import gc
import hashlib
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models import JSONField, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from booking import errors as booking_errors
from booking import services as booking_services
from booking.models import OCCUPYING_STATUSES, Appointment, Slot, reasons_to_mask
from clinics.models import Practitioner, PractitionerRole

from .fhir import writes
from .fhir.errors import FhirError
from .models import AgendaSnapshot, EmrClient, SyncConflict

SYNC_LIMIT = 200  # at most this many slots are reconciled in the request; more go to the worker
MAX_SLOTS = 10_000
MAX_BODY_BYTES = 16 * 1024 * 1024  # 10,000 slots fit; other FHIR bodies stay at 1 MB
MAX_WINDOW = dt.timedelta(days=366)
MAX_GENERATION = 2**63 - 1
SLOT_MINUTES = (5, 240)
MAX_LISTED_ERRORS = 20
MAX_LISTED_REFUSALS = 100
ENTRY_STATUSES = ("free", "busy")
_GENERATION_KEYS = ("valueInteger", "valueInteger64", "valuePositiveInt", "valueUnsignedInt", "valueString")


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a snapshot is parsed, checked or applied.

    A 10,000-slot snapshot allocates some 200,000 containers that all survive (the parsed body, the
    entries, the rows read): the collector then runs its full collections over the whole process
    heap again and again, for nothing (a third of the reconciliation's time, measured). The
    reference counts still free everything; the collector runs again at the end. It is
    process-wide, so a thread serving another request meanwhile goes without it for that second.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass(frozen=True)
class SnapshotInput:
    role: PractitionerRole
    window_start: dt.datetime
    window_end: dt.datetime
    generation: int
    # JSON-ready: index (in the body), identifier, status, start, end, reasons, audience, modality
    entries: list[dict[str, Any]]

    @functools.cached_property
    def stored_entries(self) -> list[dict[str, Any]]:
        """The entries as stored for the worker: by identifier, without their position in the body
        (the worker and the conflict pages never read it)."""
        return sorted((_without_index(e) for e in self.entries), key=lambda e: e["identifier"])

    @functools.cached_property
    def stored(self) -> str:
        """``stored_entries`` as JSON, keys sorted. Serialised once: the digest is computed over the
        same text, and PostgreSQL stores it as it is."""
        return json.dumps(self.stored_entries, sort_keys=True)

    @property
    def digest(self) -> str:
        # Byte for byte json.dumps({"start": …, "end": …, "entries": sorted entries}, sort_keys=True),
        # the digest of earlier versions (a retry across a deployment is still recognised), without
        # serialising the 10,000 entries a second time.
        content = (
            f'{{"end": {json.dumps(self.window_end.isoformat())}, "entries": {self.stored}, '
            f'"start": {json.dumps(self.window_start.isoformat())}}}'
        )
        return hashlib.sha256(content.encode()).hexdigest()


def _without_index(entry: dict[str, Any]) -> dict[str, Any]:
    content = dict(entry)
    del content["index"]
    return content


def _instant_param(param: dict[str, Any], name: str) -> dt.datetime:
    value = param.get("valueInstant", param.get("valueDateTime"))
    return writes._instant({name: value}, name)


def _generation_param(param: dict[str, Any]) -> int:
    for key in _GENERATION_KEYS:
        if key in param:
            value = param[key]
            if isinstance(value, bool):
                break
            if isinstance(value, str) and value.isascii() and value.isdigit():
                value = int(value)
            if isinstance(value, int) and 1 <= value <= MAX_GENERATION:
                return value
            break
    raise writes.bad("generation must be a positive integer (valueInteger, or valueString of digits).")


def _entry_label(index: int, slot: Any, system: str) -> str:
    identifiers = slot.get("identifier") if isinstance(slot, dict) else None
    for identifier in identifiers if isinstance(identifiers, list) else []:
        if isinstance(identifier, dict) and identifier.get("system") == system:
            return f"slot[{index}] ({identifier.get('value')!r})"
    return f"slot[{index}]"


def snapshot_input(
    body: dict[str, Any], *, role: PractitionerRole, clinic_ids: Collection[int]
) -> SnapshotInput:
    """A ``Parameters`` body: ``start``, ``end`` (instants), ``generation`` and one ``slot`` per Slot."""
    if body.get("resourceType") != "Parameters":
        kind = body.get("resourceType")
        raise writes.bad(f"The body must be a Parameters resource (resourceType {kind!r}).")
    params = body.get("parameter", [])
    if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
        raise writes.bad("Parameters.parameter must be a list of parameters.")
    singles: dict[str, dict[str, Any]] = {}
    slots: list[Any] = []
    for param in params:
        name = param.get("name")
        if name == "slot":
            slots.append(param.get("resource"))
        elif name in ("start", "end", "generation"):
            if name in singles:
                raise writes.bad(f"The parameter {name} is given twice.")
            singles[name] = param
        else:
            raise writes.bad(f"Unknown parameter {name!r}: use start, end, generation and slot.")
    missing = [name for name in ("start", "end", "generation") if name not in singles]
    if missing:
        raise writes.bad(f"Missing parameter(s): {', '.join(missing)}.")
    window_start = _instant_param(singles["start"], "start")
    window_end = _instant_param(singles["end"], "end")
    generation = _generation_param(singles["generation"])
    if window_start >= window_end:
        raise writes.rule("The snapshot's start must be before its end.")
    if window_end - window_start > MAX_WINDOW:
        raise writes.rule(f"A snapshot covers at most {MAX_WINDOW.days} days.")
    if len(slots) > MAX_SLOTS:
        raise FhirError(413, "too-costly", f"A snapshot holds at most {MAX_SLOTS} slots; split the window.")

    system = writes.resources.slot_identifier_system(role.clinic_id)
    problems: list[tuple[int, str]] = []  # (status, message naming the entry)
    entries: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, slot in enumerate(slots):
        label = _entry_label(index, slot, system)
        try:
            if not isinstance(slot, dict):
                raise writes.bad("each slot parameter needs a resource (a Slot).")
            data = writes.slot_input(slot, clinic_ids=clinic_ids, role=role)
            if data.status not in ENTRY_STATUSES:
                raise writes.rule("Slot.status must be free (or busy for a slot booked here).")
            if not data.external_id:
                raise writes.rule(f"Slot.identifier with the system {system} is required.")
            minutes = (data.end - data.start).total_seconds() / 60
            if not SLOT_MINUTES[0] <= minutes <= SLOT_MINUTES[1]:
                raise writes.rule(f"A slot lasts {SLOT_MINUTES[0]} to {SLOT_MINUTES[1]} minutes.")
            if data.start < window_start or data.end > window_end:
                raise writes.rule("the slot is outside the snapshot's window [start, end).")
            if data.external_id in seen:
                raise writes.rule(f"the identifier is also used by slot[{seen[data.external_id]}].")
        except FhirError as exc:
            problems.append((exc.status, f"{label}: {exc.diagnostics}"))
            continue
        seen[data.external_id] = index
        entries.append(
            {
                "index": index,
                "identifier": data.external_id,
                "status": data.status,
                "start": data.start.isoformat(),
                "end": data.end.isoformat(),
                "reasons": data.reasons,
                "audience": data.audience,
                "modality": data.modality,
            }
        )
    ordered = sorted(entries, key=lambda e: e["start"])
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after["start"] < before["end"]:
            problems.append(
                (
                    422,
                    f"slot[{before['index']}] ({before['identifier']!r}) and slot[{after['index']}] "
                    f"({after['identifier']!r}) overlap.",
                )
            )
    _refuse(problems)
    return SnapshotInput(role, window_start, window_end, generation, entries)


def _refuse(problems: list[tuple[int, str]]) -> None:
    """One OperationOutcome naming the offending entries (the first ones); nothing is applied."""
    if not problems:
        return
    status = 400 if any(code == 400 for code, _ in problems) else 422
    listed = [message for _, message in problems[:MAX_LISTED_ERRORS]]
    more = len(problems) - len(listed)
    text = "; ".join(listed) + (f"; and {more} more." if more > 0 else "")
    code = "invalid" if status == 400 else "business-rule"
    raise FhirError(status, code, f"The snapshot was refused, nothing changed: {text}")


def _store_problems(role: PractitionerRole, entries: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """Identifiers the store cannot take: a withdrawn slot's, or a slot of another schedule's."""
    by_identifier = {e["identifier"]: e for e in entries}
    problems = []
    if connection.vendor != "postgresql":  # the SQLite demo (make run): no array parameters
        rows = list(
            Slot.objects.filter(clinic_id=role.clinic_id, external_id__in=list(by_identifier))
            .exclude(external_id="")
            .values_list("external_id", "role_id", "status")
        )
    else:
        with connection.cursor() as cursor:  # an array parameter, not an IN list (see _STORE_ROWS)
            cursor.execute(
                "SELECT external_id, role_id, status FROM booking_slot"
                " WHERE clinic_id = %s AND external_id <> '' AND external_id = ANY(%s::text[])",
                [role.clinic_id, list(by_identifier)],
            )
            rows = cursor.fetchall()
    for external_id, role_id, status in rows:
        entry = by_identifier[external_id]
        label = f"slot[{entry['index']}] ({external_id!r})"
        if role_id != role.pk:
            problems.append((422, f"{label}: the identifier belongs to a slot of another schedule."))
        elif status == Slot.Status.CANCELLED:
            problems.append((422, f"{label}: this slot was withdrawn; publish it with a new identifier."))
    return problems


def snapshot_accept(*, emr_client: EmrClient, data: SnapshotInput) -> tuple[AgendaSnapshot, bool]:
    """Record a snapshot; returns it and whether it is a retry of the last one (same generation and
    content). A generation not above the last accepted one is refused with 409."""
    digest = data.digest
    with transaction.atomic():
        # One acceptance at a time per role, so that generations are accepted in increasing order.
        PractitionerRole.objects.select_for_update().filter(pk=data.role.pk).first()
        # The generation and digest only: loading the last snapshot's 10,000 entries costs 0.2 s.
        last = (
            AgendaSnapshot.objects.filter(role=data.role)
            .order_by("-generation")
            .values_list("pk", "generation", "digest")
            .first()
        )
        if last is not None and last[1] == data.generation and last[2] == digest:
            return AgendaSnapshot.objects.get(pk=last[0]), True
        if last is not None and data.generation <= last[1]:
            raise FhirError(
                409,
                "conflict",
                f"Generation {data.generation} is not above the last accepted one ({last[1]}) "
                "for this schedule: send the current agenda with a greater generation.",
            )
        _refuse(_store_problems(data.role, data.entries))
        snapshot = AgendaSnapshot.objects.create(
            emr_client=emr_client,
            role=data.role,
            window_start=data.window_start,
            window_end=data.window_end,
            generation=data.generation,
            digest=digest,
            entries=_stored(data),
        )
    snapshot.entries = data.stored_entries
    return snapshot, False


def _stored(data: SnapshotInput) -> Any:
    """The entries for the INSERT: on PostgreSQL the text already serialised for the digest, cast
    there (the JSONField would serialise the 10,000 entries again); the list elsewhere."""
    if connection.vendor == "postgresql":
        return RawSQL("%s::jsonb", [data.stored], output_field=JSONField())
    return data.stored_entries


# --- reconciliation ---------------------------------------------------------------------------


class _Known(NamedTuple):
    """A slot of the store as the reconciliation reads it: the columns the diff needs, no model."""

    pk: int
    external_id: str
    role_id: int
    status: str
    version: int
    start: int  # microseconds since the epoch: 20,000 datetimes cost more to load than to compare
    end: int
    reasons: int
    audience: str
    modality: str

    @property
    def content(self) -> tuple[Any, ...]:
        return (self.start, self.end, self.reasons, self.audience, self.modality)


class _Entry(NamedTuple):
    """A snapshot entry, its instants parsed once."""

    identifier: str
    status: str
    start: dt.datetime
    end: dt.datetime
    reasons: list[str]
    mask: int
    audience: str
    modality: str
    raw: dict[str, Any]

    @property
    def content(self) -> tuple[Any, ...]:
        return (_micros(self.start), _micros(self.end), self.mask, self.audience, self.modality)

    def spec(self) -> booking_services.EmrSlot:
        return booking_services.EmrSlot(
            start=self.start,
            end=self.end,
            reasons=self.reasons,
            audience=self.audience,
            modality=self.modality,
            external_id=self.identifier,
        )


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _micros(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


@functools.lru_cache(maxsize=256)
def _mask(reasons: tuple[str, ...]) -> int:
    return reasons_to_mask(reasons)


def _entry(raw: dict[str, Any]) -> _Entry:
    return _Entry(
        identifier=raw["identifier"],
        status=raw["status"],
        start=dt.datetime.fromisoformat(raw["start"]),
        end=dt.datetime.fromisoformat(raw["end"]),
        reasons=raw["reasons"],
        mask=_mask(tuple(raw["reasons"])),
        audience=raw["audience"],
        modality=raw["modality"],
        raw=raw,
    )


# One read of the store for the whole diff, as value rows: the clinic's slots that carry one of the
# snapshot's identifiers (whatever their schedule or status: the diff refuses the others' and the
# withdrawn ones), and the role's live EMR slots in the window (those the snapshot no longer lists
# are withdrawn or kept). The identifiers travel as one array parameter: an IN list of 10,000
# values costs a second of query compilation in Django and psycopg. ``external_id <> ''`` lets the
# planner use the partial unique index on (clinic, external_id).
_STORE_ROWS = """
    SELECT id, external_id, role_id, status, version, (extract(epoch FROM start) * 1000000)::bigint,
        (extract(epoch FROM "end") * 1000000)::bigint, reasons, audience, modality
    FROM booking_slot
    WHERE clinic_id = %s AND (
        (external_id <> '' AND external_id = ANY(%s::text[]))
        OR (role_id = %s AND source = %s AND start >= %s AND start < %s AND status <> %s)
    )
    ORDER BY start, id
"""


def _store_rows_portable(
    role: PractitionerRole, snapshot: AgendaSnapshot, identifiers: Collection[str]
) -> list[_Known]:
    """_STORE_ROWS through the ORM, for the SQLite demo (``make run``): same rows, same order."""
    listed = Q(external_id__in=list(identifiers)) & ~Q(external_id="")
    window = Q(
        role_id=role.pk,
        source=Slot.Source.EMR,
        start__gte=snapshot.window_start,
        start__lt=snapshot.window_end,
    ) & ~Q(status=Slot.Status.CANCELLED)
    rows = Slot.objects.filter(listed | window, clinic_id=role.clinic_id).order_by("start", "id")
    return [
        _Known(
            s.pk,
            s.external_id,
            s.role_id,
            s.status,
            s.version,
            _micros(s.start),
            _micros(s.end),
            s.reasons,
            s.audience,
            s.modality,
        )
        for s in rows.only(
            "id",
            "external_id",
            "role_id",
            "status",
            "version",
            "start",
            "end",
            "reasons",
            "audience",
            "modality",
        )
    ]


def _store(
    role: PractitionerRole, snapshot: AgendaSnapshot, identifiers: Collection[str]
) -> tuple[dict[str, _Known], list[_Known]]:
    """(the store's slots by the snapshot's identifiers, the role's live EMR slots of the window that
    the snapshot no longer lists, by start)."""
    if connection.vendor != "postgresql":
        rows = _store_rows_portable(role, snapshot, identifiers)
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                _STORE_ROWS,
                [
                    role.clinic_id,
                    list(identifiers),
                    role.pk,
                    Slot.Source.EMR.value,
                    snapshot.window_start,
                    snapshot.window_end,
                    Slot.Status.CANCELLED.value,
                ],
            )
            rows = [_Known(*row) for row in cursor.fetchall()]
    known: dict[str, _Known] = {}
    gone: list[_Known] = []
    for row in rows:
        if row.external_id in identifiers:
            known[row.external_id] = row
        else:
            gone.append(row)
    return known, gone


def _status(slot_id: int) -> str:
    return str(Slot.objects.filter(pk=slot_id).values_list("status", flat=True).get())


class _Run:
    def __init__(self, snapshot: AgendaSnapshot) -> None:
        self.snapshot = snapshot
        self.counts = dict.fromkeys(
            ("created", "updated", "withdrawn", "unchanged", "conflicts", "kept", "refused"), 0
        )
        self.refusals: list[dict[str, str]] = []

    def refuse(self, identifier: str, reason: str) -> None:
        self.counts["refused"] += 1
        if len(self.refusals) < MAX_LISTED_REFUSALS:
            self.refusals.append({"identifier": identifier, "reason": reason})

    def conflict(self, slot_id: int, kind: str, entry: _Entry | None) -> None:
        """The booking is kept and the slot untouched; one open conflict per slot and kind."""
        self.counts["kept"] += 1
        if SyncConflict.objects.filter(slot_id=slot_id, kind=kind, status=SyncConflict.Status.OPEN).exists():
            return
        slot = Slot.objects.get(pk=slot_id)
        appointment = Appointment.objects.filter(slot=slot, status__in=OCCUPYING_STATUSES).first()
        detail: dict[str, Any] = {
            "slot_id": slot.pk,
            "identifier": slot.external_id,
            "appointment_id": appointment.pk if appointment else None,
            "generation": self.snapshot.generation,
            "store": {"start": slot.start.isoformat(), "end": slot.end.isoformat()},
        }
        if entry is not None:
            detail["snapshot"] = {"start": entry.raw["start"], "end": entry.raw["end"]}
        SyncConflict.objects.create(
            clinic_id=slot.clinic_id,
            slot=slot,
            appointment=appointment,
            kind=kind,
            snapshot=self.snapshot,
            detail=detail,
        )
        self.counts["conflicts"] += 1


def _apply(run: _Run, role: PractitionerRole) -> None:
    snapshot = run.snapshot
    entries = {e["identifier"]: _entry(e) for e in snapshot.entries}
    store, gone = _store(role, snapshot, entries.keys())
    # Gone first: a free slot withdrawn frees its time for the updates and creations below.
    withdrawn = set(
        booking_services.emr_slots_withdraw(
            clinic_id=role.clinic_id, slot_ids=[s.pk for s in gone if s.status == Slot.Status.FREE]
        )
    )
    run.counts["withdrawn"] += len(withdrawn)
    for old in gone:
        if old.pk in withdrawn:
            continue
        status = _status(old.pk) if old.status == Slot.Status.FREE else old.status  # booked meanwhile
        if status == Slot.Status.BOOKED:
            run.conflict(old.pk, SyncConflict.Kind.BOOKED_SLOT_REMOVED, None)
        else:
            run.counts["kept"] += 1  # blocked by the clinic: the clinic's decision stays

    pending: list[tuple[_Entry, _Known | None]] = []
    for identifier, entry in sorted(entries.items(), key=lambda item: item[1].start):
        slot = store.get(identifier)
        if slot is None:
            if entry.status != "free":
                run.refuse(identifier, "a busy slot this service does not know; publish it free.")
            else:
                pending.append((entry, None))
        elif slot.role_id != role.pk:
            run.refuse(identifier, "the identifier belongs to a slot of another schedule.")
        elif slot.status == Slot.Status.CANCELLED:
            run.refuse(identifier, "this slot was withdrawn; publish it with a new identifier.")
        elif slot.content == entry.content:
            run.counts["unchanged"] += 1
        elif slot.status == Slot.Status.BOOKED:
            run.conflict(slot.pk, SyncConflict.Kind.BOOKED_SLOT_CHANGED, entry)
        elif slot.status != Slot.Status.FREE:
            run.refuse(identifier, "the clinic blocked this slot; it cannot change.")
        else:
            pending.append((entry, slot))

    # Updates first: the moves that fit where the other slots stand now in one statement, then the
    # rest (chains, swaps and rotations of times) at once, so that the result is the agenda the
    # snapshot describes whatever order its moves would need. Then the new slots, in one batch: they
    # can only overlap slots that stay where they are (the snapshot itself has none).
    creations = [entry for entry, known in pending if known is None]
    moves: list[tuple[_Entry, _Known | None]] = [(e, k) for e, k in pending if k is not None]
    _update_rounds(run, role, _rearrange(run, role, _move(run, role, moves)))
    _create(run, role, creations)


def _move(
    run: _Run, role: PractitionerRole, pending: list[tuple[_Entry, _Known | None]]
) -> list[tuple[_Entry, _Known | None]]:
    """The changed free slots that can move in any order, in one statement, compare-and-set on the
    versions read above; returns the others (chains of moves, swaps, overlaps, and slots booked or
    held meanwhile) for ``_rearrange``."""
    by_id = {known.pk: (entry, known) for entry, known in pending if known is not None}
    moves = [
        booking_services.EmrSlotMove(slot_id=known.pk, version=known.version, spec=entry.spec())
        for entry, known in by_id.values()
    ]
    try:
        changed, left = booking_services.emr_slots_update(role=role, moves=moves)
    except booking_errors.ApplicationError:
        return pending  # a malformed entry: one by one, each with its reason
    run.counts["updated"] += len(changed)
    return sorted((by_id[m.slot_id] for m in left), key=lambda pair: pair[0].start)


def _rearrange(
    run: _Run, role: PractitionerRole, pending: list[tuple[_Entry, _Known | None]]
) -> list[tuple[_Entry, _Known | None]]:
    """The moves left by ``_move``, all at once (``emr_slots_rearrange``): a slot whose new time is
    held by a slot that stays (a kept booking, a blocked slot, another clinic's slot) is withdrawn and
    its entry refused; returns the slots booked, blocked or changed since they were read, for
    ``_update_rounds`` (where ``slot_update`` says what happened: a booked one becomes a conflict)."""
    by_id = {known.pk: (entry, known) for entry, known in pending if known is not None}
    moves = [
        booking_services.EmrSlotMove(slot_id=known.pk, version=known.version, spec=entry.spec())
        for entry, known in by_id.values()
    ]
    try:
        done = booking_services.emr_slots_rearrange(role=role, moves=moves)
    except booking_errors.InvalidSlot:
        return pending  # a malformed entry: one by one, each with its reason
    run.counts["updated"] += len(done.changed)
    run.counts["withdrawn"] += len(done.withdrawn)
    for move in done.withdrawn:
        run.refuse(by_id[move.slot_id][0].identifier, _HELD)
    return sorted((by_id[m.slot_id] for m in done.stale), key=lambda pair: pair[0].start)


_HELD = (
    "its new time is held by a slot of the practitioner that stays (a kept booking, a blocked slot): "
    "withdrawn; publish it again with a new identifier."
)


def _create(run: _Run, role: PractitionerRole, creations: list[_Entry]) -> None:
    try:
        created, left_out = booking_services.emr_slots_create(
            role=role, specs=[entry.spec() for entry in creations]
        )
    except booking_errors.ApplicationError:
        # A malformed entry or the constraint refusing the batch: one by one, each with its reason.
        _update_rounds(run, role, [(entry, None) for entry in creations])
        return
    run.counts["created"] += len(created)
    for spec in left_out:
        run.refuse(spec.external_id, "overlaps another slot of the practitioner that stays.")


def _update_rounds(run: _Run, role: PractitionerRole, pending: list[tuple[_Entry, _Known | None]]) -> None:
    while pending:
        retry: list[tuple[_Entry, _Known | None]] = []
        for entry, known in pending:
            try:
                _write(run, role, entry, known)
            except booking_errors.PractitionerOverlap:
                retry.append((entry, known))
        if len(retry) == len(pending):
            # No progress. A known slot waiting to move (one changed since it was read, taken one by
            # one) has its new time held by a slot that stays: withdraw it rather than keep offering
            # a time the EMR no longer has, refuse its entry, and let the others use the freed time.
            moving = next(((e, k) for e, k in retry if k is not None), None)
            if moving is None:
                for entry, _slot in retry:
                    run.refuse(entry.identifier, "overlaps another slot of the practitioner that stays.")
                break
            entry, known = moving
            assert known is not None
            retry.remove(moving)
            try:
                booking_services.slot_withdraw(slot_id=known.pk, channel=Slot.Source.EMR)
                run.counts["withdrawn"] += 1
                run.refuse(entry.identifier, _HELD)
            except booking_errors.ApplicationError:
                run.refuse(entry.identifier, "overlaps another slot of the practitioner that stays.")
        pending = retry


def _write(run: _Run, role: PractitionerRole, entry: _Entry, slot: _Known | None) -> None:
    try:
        if slot is None:
            booking_services.slot_create(
                role=role,
                start=entry.start,
                end=entry.end,
                source=Slot.Source.EMR,
                external_id=entry.identifier,
                reasons=entry.reasons,
                audience=entry.audience,
                modality=entry.modality,
            )
            run.counts["created"] += 1
            return
        _row, changed = booking_services.slot_update(
            slot_id=slot.pk,
            expected_version=None,
            start=entry.start,
            end=entry.end,
            channel=Slot.Source.EMR,
            reasons=entry.reasons,
            audience=entry.audience,
            modality=entry.modality,
        )
        run.counts["updated" if changed else "unchanged"] += 1
    except booking_errors.SlotNotFree:
        assert slot is not None
        if _status(slot.pk) == Slot.Status.BOOKED:  # booked by a citizen in the meantime
            run.conflict(slot.pk, SyncConflict.Kind.BOOKED_SLOT_CHANGED, entry)
        else:
            run.refuse(entry.identifier, "the clinic blocked this slot; it cannot change.")
    except booking_errors.PractitionerOverlap:
        raise
    except booking_errors.Busy:
        raise
    except booking_errors.ApplicationError as exc:
        run.refuse(entry.identifier, str(exc.message))


def snapshot_reconcile(snapshot_id: int) -> AgendaSnapshot:
    """Apply a snapshot, in one transaction. A snapshot already done (or failed) is left alone, so a
    retried or duplicated task does nothing; one superseded by a newer generation already applied
    is not applied (it would bring back an older agenda)."""
    AgendaSnapshot.objects.filter(pk=snapshot_id, status=AgendaSnapshot.Status.RECEIVED).update(
        status=AgendaSnapshot.Status.PROCESSING
    )
    with gc_paused(), transaction.atomic():
        snapshot = AgendaSnapshot.objects.select_for_update().get(pk=snapshot_id)
        if snapshot.status in (AgendaSnapshot.Status.DONE, AgendaSnapshot.Status.FAILED):
            return snapshot
        role = PractitionerRole.objects.select_related("clinic").get(pk=snapshot.role_id)
        Practitioner.objects.select_for_update().filter(pk=role.practitioner_id).first()
        newer = (
            AgendaSnapshot.objects.filter(
                role_id=role.pk, generation__gt=snapshot.generation, status=AgendaSnapshot.Status.DONE
            )
            .order_by("-generation")
            .values_list("generation", flat=True)
            .first()
        )
        if newer is not None:
            snapshot.status = AgendaSnapshot.Status.FAILED
            snapshot.error = f"Superseded by generation {newer}, applied first; nothing changed."
        else:
            run = _Run(snapshot)
            _apply(run, role)
            snapshot.status = AgendaSnapshot.Status.DONE
            snapshot.counts = {**run.counts, "refusals": run.refusals}
        snapshot.finished_at = timezone.now()
        snapshot.save(update_fields=["status", "error", "counts", "finished_at"])
    return snapshot


def snapshot_fail(snapshot_id: int, error: str) -> None:
    """The worker gave up: the snapshot is marked failed (nothing of it was applied)."""
    AgendaSnapshot.objects.filter(pk=snapshot_id).exclude(status=AgendaSnapshot.Status.DONE).update(
        status=AgendaSnapshot.Status.FAILED, error=error[:2000], finished_at=timezone.now()
    )


def snapshot_summary(snapshot: AgendaSnapshot) -> dict[str, Any]:
    """The answer to ``$snapshot`` and ``$snapshot-status``: a Parameters resource."""
    params: list[dict[str, Any]] = [
        {"name": "snapshot", "valueString": str(snapshot.pk)},
        {"name": "generation", "valueString": str(snapshot.generation)},
        {"name": "status", "valueCode": snapshot.status},
        {"name": "start", "valueInstant": _z(snapshot.window_start)},
        {"name": "end", "valueInstant": _z(snapshot.window_end)},
        {"name": "slots", "valueInteger": len(snapshot.entries)},
    ]
    counts = snapshot.counts or {}
    for name in ("created", "updated", "withdrawn", "unchanged", "conflicts", "kept", "refused"):
        if name in counts:
            params.append({"name": name, "valueInteger": counts[name]})
    for refusal in counts.get("refusals", []):
        params.append(
            {
                "name": "refusal",
                "part": [
                    {"name": "identifier", "valueString": refusal["identifier"]},
                    {"name": "reason", "valueString": refusal["reason"]},
                ],
            }
        )
    if snapshot.error:
        params.append({"name": "error", "valueString": snapshot.error})
    return {"resourceType": "Parameters", "parameter": params}


def _z(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
