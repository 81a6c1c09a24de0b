"""Agenda snapshots: an EMR's complete agenda of one schedule over a window, reconciled with the store.

``snapshot_input`` reads and validates the ``$snapshot`` body (every Slot through the same checks as
``POST Slot``, plus the window, duplicate identifiers and overlaps inside the snapshot);
``snapshot_accept`` records it, refusing a generation that is not above the last one accepted for the
role (409), so that a stale snapshot arriving late can never bring withdrawn slots back;
``snapshot_reconcile`` applies it in one transaction, under the practitioner's lock:

* a slot identifier unknown to the store is created; a known free slot whose content differs is
  updated; identical content changes nothing (no version bump, no outbox event);
* an EMR slot of the role in the window that the snapshot no longer lists is withdrawn when free;
* a booked slot that the snapshot removed or changed is never touched: the booking is kept and a
  ``SyncConflict`` is recorded (one open conflict per slot and kind, so a retry records nothing new).

Applying the same snapshot twice changes nothing the second time. Entries that cannot be applied
(a withdrawn identifier, an identifier of another schedule, a new slot overlapping a kept booking, a
busy slot we do not know) are counted as ``refused`` and listed, without failing the others.
"""

import datetime as dt
import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from django.db import transaction
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


@dataclass(frozen=True)
class SnapshotInput:
    role: PractitionerRole
    window_start: dt.datetime
    window_end: dt.datetime
    generation: int
    # JSON-ready: index (in the body), identifier, status, start, end, reasons, audience, modality
    entries: list[dict[str, Any]]

    @property
    def digest(self) -> str:
        content = {
            "start": self.window_start.isoformat(),
            "end": self.window_end.isoformat(),
            "entries": sorted(
                ({k: v for k, v in e.items() if k != "index"} for e in self.entries),
                key=lambda e: e["identifier"],
            ),
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


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
    rows = Slot.objects.filter(clinic_id=role.clinic_id, external_id__in=list(by_identifier)).values_list(
        "external_id", "role_id", "status"
    )
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
        last = AgendaSnapshot.objects.filter(role=data.role).order_by("-generation").first()
        if last is not None and last.generation == data.generation and last.digest == digest:
            return last, True
        if last is not None and data.generation <= last.generation:
            raise FhirError(
                409,
                "conflict",
                f"Generation {data.generation} is not above the last accepted one ({last.generation}) "
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
            entries=data.entries,
        )
    return snapshot, False


# --- reconciliation ---------------------------------------------------------------------------


def _content(slot: Slot) -> tuple[Any, ...]:
    return (slot.start, slot.end, slot.reasons, slot.audience, slot.modality)


def _entry_content(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (
        dt.datetime.fromisoformat(entry["start"]),
        dt.datetime.fromisoformat(entry["end"]),
        reasons_to_mask(entry["reasons"]),
        entry["audience"],
        entry["modality"],
    )


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

    def conflict(self, slot: Slot, kind: str, entry: dict[str, Any] | None) -> None:
        """The booking is kept and the slot untouched; one open conflict per slot and kind."""
        self.counts["kept"] += 1
        if SyncConflict.objects.filter(slot=slot, kind=kind, status=SyncConflict.Status.OPEN).exists():
            return
        appointment = Appointment.objects.filter(slot=slot, status__in=OCCUPYING_STATUSES).first()
        detail: dict[str, Any] = {
            "slot_id": slot.pk,
            "identifier": slot.external_id,
            "appointment_id": appointment.pk if appointment else None,
            "generation": self.snapshot.generation,
            "store": {"start": slot.start.isoformat(), "end": slot.end.isoformat()},
        }
        if entry is not None:
            detail["snapshot"] = {"start": entry["start"], "end": entry["end"]}
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
    entries = {e["identifier"]: e for e in snapshot.entries}
    store = {
        s.external_id: s for s in Slot.objects.filter(clinic_id=role.clinic_id, external_id__in=list(entries))
    }
    # Gone first: a free slot withdrawn frees its time for the updates and creations below.
    gone_query = (
        Slot.objects.filter(
            role=role,
            source=Slot.Source.EMR,
            start__gte=snapshot.window_start,
            start__lt=snapshot.window_end,
        )
        .exclude(status=Slot.Status.CANCELLED)
        .exclude(external_id__in=list(entries))
        .order_by("start")
    )
    gone = list(gone_query)
    withdrawn = set(
        booking_services.emr_slots_withdraw(
            clinic_id=role.clinic_id, slot_ids=[s.pk for s in gone if s.status == Slot.Status.FREE]
        )
    )
    run.counts["withdrawn"] += len(withdrawn)
    for old in gone:
        if old.pk in withdrawn:
            continue
        if old.status == Slot.Status.FREE:
            old.refresh_from_db()  # booked by a citizen in the meantime
        if old.status == Slot.Status.BOOKED:
            run.conflict(old, SyncConflict.Kind.BOOKED_SLOT_REMOVED, None)
        else:
            run.counts["kept"] += 1  # blocked by the clinic: the clinic's decision stays

    pending: list[tuple[dict[str, Any], Slot | None]] = []
    for identifier, entry in sorted(entries.items(), key=lambda item: item[1]["start"]):
        slot = store.get(identifier)
        if slot is None:
            if entry["status"] != "free":
                run.refuse(identifier, "a busy slot this service does not know; publish it free.")
            else:
                pending.append((entry, None))
        elif slot.role_id != role.pk:
            run.refuse(identifier, "the identifier belongs to a slot of another schedule.")
        elif slot.status == Slot.Status.CANCELLED:
            run.refuse(identifier, "this slot was withdrawn; publish it with a new identifier.")
        elif _content(slot) == _entry_content(entry):
            run.counts["unchanged"] += 1
        elif slot.status == Slot.Status.BOOKED:
            run.conflict(slot, SyncConflict.Kind.BOOKED_SLOT_CHANGED, entry)
        elif slot.status != Slot.Status.FREE:
            run.refuse(identifier, "the clinic blocked this slot; it cannot change.")
        else:
            pending.append((entry, slot))

    # Updates first; an overlap may only be one with a slot not yet moved, so the entries refused
    # for an overlap are tried again while each round makes progress. Then the new slots, in one
    # batch: they can only overlap slots that stay where they are (the snapshot itself has none).
    creations = [entry for entry, known in pending if known is None]
    pending = [(entry, known) for entry, known in pending if known is not None]
    _update_rounds(run, role, _move(run, role, pending))
    _create(run, role, creations)


def _move(
    run: _Run, role: PractitionerRole, pending: list[tuple[dict[str, Any], Slot | None]]
) -> list[tuple[dict[str, Any], Slot | None]]:
    """The changed free slots in one statement, compare-and-set on the versions read above; returns
    those left one by one: chains of moves, overlaps, and slots booked or held meanwhile (where
    ``slot_update`` says what happened: a booked one becomes a conflict)."""
    by_id = {known.pk: (entry, known) for entry, known in pending if known is not None}
    moves = [
        booking_services.EmrSlotMove(
            slot_id=known.pk,
            version=known.version,
            spec=booking_services.EmrSlot(
                start=dt.datetime.fromisoformat(entry["start"]),
                end=dt.datetime.fromisoformat(entry["end"]),
                reasons=entry["reasons"],
                audience=entry["audience"],
                modality=entry["modality"],
                external_id=entry["identifier"],
            ),
        )
        for entry, known in by_id.values()
    ]
    try:
        changed, left = booking_services.emr_slots_update(role=role, moves=moves)
    except booking_errors.ApplicationError:
        return pending  # a malformed entry: one by one, each with its reason
    run.counts["updated"] += len(changed)
    return sorted((by_id[m.slot_id] for m in left), key=lambda pair: pair[0]["start"])


def _create(run: _Run, role: PractitionerRole, creations: list[dict[str, Any]]) -> None:
    specs = [
        booking_services.EmrSlot(
            start=dt.datetime.fromisoformat(e["start"]),
            end=dt.datetime.fromisoformat(e["end"]),
            reasons=e["reasons"],
            audience=e["audience"],
            modality=e["modality"],
            external_id=e["identifier"],
        )
        for e in creations
    ]
    try:
        created, left_out = booking_services.emr_slots_create(role=role, specs=specs)
    except booking_errors.ApplicationError:
        # A malformed entry or the constraint refusing the batch: one by one, each with its reason.
        _update_rounds(run, role, [(entry, None) for entry in creations])
        return
    run.counts["created"] += len(created)
    for spec in left_out:
        run.refuse(spec.external_id, "overlaps another slot of the practitioner that stays.")


def _update_rounds(
    run: _Run, role: PractitionerRole, pending: list[tuple[dict[str, Any], Slot | None]]
) -> None:
    while pending:
        retry: list[tuple[dict[str, Any], Slot | None]] = []
        for entry, known in pending:
            try:
                _write(run, role, entry, known)
            except booking_errors.PractitionerOverlap:
                retry.append((entry, known))
        if len(retry) == len(pending):
            # No progress. If a known slot is waiting to move, its moves form a cycle (two slots
            # trading places): withdraw one of them rather than keep offering a time the EMR no
            # longer has, refuse its entry, and let the others move into the freed time.
            moving = next(((e, k) for e, k in retry if k is not None), None)
            if moving is None:
                for entry, _slot in retry:
                    run.refuse(entry["identifier"], "overlaps another slot of the practitioner that stays.")
                break
            entry, known = moving
            retry.remove(moving)
            try:
                booking_services.slot_withdraw(slot_id=known.pk, channel=Slot.Source.EMR)
                run.counts["withdrawn"] += 1
                run.refuse(
                    entry["identifier"],
                    "it traded places with another slot of the practitioner: withdrawn; publish it "
                    "again with a new identifier.",
                )
            except booking_errors.ApplicationError:
                run.refuse(entry["identifier"], "overlaps another slot of the practitioner that stays.")
        pending = retry


def _write(run: _Run, role: PractitionerRole, entry: dict[str, Any], slot: Slot | None) -> None:
    start, end = dt.datetime.fromisoformat(entry["start"]), dt.datetime.fromisoformat(entry["end"])
    fields = {"reasons": entry["reasons"], "audience": entry["audience"], "modality": entry["modality"]}
    try:
        if slot is None:
            booking_services.slot_create(
                role=role,
                start=start,
                end=end,
                source=Slot.Source.EMR,
                external_id=entry["identifier"],
                **fields,
            )
            run.counts["created"] += 1
            return
        _row, changed = booking_services.slot_update(
            slot_id=slot.pk,
            expected_version=None,
            start=start,
            end=end,
            channel=Slot.Source.EMR,
            **fields,
        )
        run.counts["updated" if changed else "unchanged"] += 1
    except booking_errors.SlotNotFree:
        assert slot is not None
        slot.refresh_from_db()  # booked by a citizen in the meantime
        if slot.status == Slot.Status.BOOKED:
            run.conflict(slot, SyncConflict.Kind.BOOKED_SLOT_CHANGED, entry)
        else:
            run.refuse(entry["identifier"], "the clinic blocked this slot; it cannot change.")
    except booking_errors.PractitionerOverlap:
        raise
    except booking_errors.Busy:
        raise
    except booking_errors.ApplicationError as exc:
        run.refuse(entry["identifier"], str(exc.message))


def snapshot_reconcile(snapshot_id: int) -> AgendaSnapshot:
    """Apply a snapshot, in one transaction. A snapshot already done (or failed) is left alone, so a
    retried or duplicated task does nothing; one superseded by a newer generation already applied
    is not applied (it would bring back an older agenda)."""
    AgendaSnapshot.objects.filter(pk=snapshot_id, status=AgendaSnapshot.Status.RECEIVED).update(
        status=AgendaSnapshot.Status.PROCESSING
    )
    with transaction.atomic():
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
