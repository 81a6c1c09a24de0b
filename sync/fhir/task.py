"""Agenda conflicts as FHIR ``Task`` resources: what the clinic's EMR must decide, and its decision.

A ``SyncConflict`` (``sync.snapshots``: a booked slot that the EMR's snapshot removed or changed; the
booking was kept) is a Task addressed to the clinic: ``status`` ``requested`` while open,
``completed`` once resolved; ``code`` says which kind (CodeSystem ``sync-conflict``), ``focus`` is the
kept Appointment, ``input`` the slot and what the snapshot said; once resolved, ``businessStatus``
gives the choice (CodeSystem ``sync-conflict-resolution``: keep, move, cancel) and ``output`` the new
appointment of a move. Ids and times only: no personal data. The EMR resolves one with
``POST Task/{id}/$resolve`` (``sync.task_views``).
"""

import datetime as dt
from typing import Any

from ..models import SyncConflict
from .resources import BASE, instant, ref

CONFLICT_SYSTEM = f"{BASE}/CodeSystem/sync-conflict"
RESOLUTION_SYSTEM = f"{BASE}/CodeSystem/sync-conflict-resolution"
TASK_INPUT_SYSTEM = f"{BASE}/CodeSystem/sync-conflict-input"
TASK_STATUS = {SyncConflict.Status.OPEN: "requested", SyncConflict.Status.RESOLVED: "completed"}
FHIR_TASK_STATUS = {fhir: ours for ours, fhir in TASK_STATUS.items()}
KIND_DISPLAY = {
    SyncConflict.Kind.BOOKED_SLOT_REMOVED: "Booked slot removed by the EMR",
    SyncConflict.Kind.BOOKED_SLOT_CHANGED: "Booked slot changed by the EMR",
    SyncConflict.Kind.DESK_BOOKING_REFUSED: "Desk booking refused: slot booked here first",
}
KIND_DESCRIPTION = {
    SyncConflict.Kind.BOOKED_SLOT_REMOVED: (
        "Your agenda snapshot no longer lists a slot a patient booked. The booking was kept and the "
        "slot left as it was. Resolve: keep (put it back in your agenda), move (to another free slot; "
        "the patient is told and may cancel), or cancel (the patient gets the clinic's notice)."
    ),
    SyncConflict.Kind.BOOKED_SLOT_CHANGED: (
        "Your agenda snapshot changed a slot a patient booked. The booking was kept at the booked "
        "time. Resolve: keep (put it back in your agenda), move (to another free slot; the patient is "
        "told and may cancel), or cancel (the patient gets the clinic's notice)."
    ),
    SyncConflict.Kind.DESK_BOOKING_REFUSED: (
        "Your EMR booked a patient at its desk on a slot that was already booked here (often while "
        "it was offline). The booking here stands; yours was refused with 409. Book your patient "
        "on another free slot, then resolve: keep; or move or cancel the booking here (the patient "
        "is told) and send your desk booking again."
    ),
}
RESOLUTION_DISPLAY = {
    SyncConflict.Resolution.KEEP: "Appointment kept",
    SyncConflict.Resolution.MOVE: "Patient moved to another slot",
    SyncConflict.Resolution.CANCEL: "Appointment cancelled with notice",
}


def _input(code: str, **value: Any) -> dict[str, Any]:
    return {"type": {"coding": [{"system": TASK_INPUT_SYSTEM, "code": code}]}, **value}


def task_version(row: SyncConflict) -> int:
    """A conflict changes once: version 1 while open, 2 once resolved."""
    return 1 if row.status == SyncConflict.Status.OPEN else 2


def task_updated(row: SyncConflict) -> dt.datetime:
    return row.resolved_at or row.created_at


def task(row: SyncConflict) -> dict[str, Any]:
    kind = SyncConflict.Kind(row.kind)
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": str(row.pk),
        "meta": {"versionId": str(task_version(row)), "lastUpdated": instant(task_updated(row))},
        "status": TASK_STATUS[SyncConflict.Status(row.status)],
    }
    if row.resolution:
        resolution = SyncConflict.Resolution(row.resolution)
        resource["businessStatus"] = {
            "coding": [
                {
                    "system": RESOLUTION_SYSTEM,
                    "code": resolution.value,
                    "display": RESOLUTION_DISPLAY[resolution],
                }
            ]
        }
    resource.update(
        {
            "intent": "order",
            "code": {
                "coding": [{"system": CONFLICT_SYSTEM, "code": kind.value, "display": KIND_DISPLAY[kind]}]
            },
            "description": KIND_DESCRIPTION[kind],
        }
    )
    if row.appointment_id:
        resource["focus"] = ref("Appointment", row.appointment_id)
    resource.update(
        {
            "authoredOn": instant(row.created_at),
            "lastModified": instant(task_updated(row)),
            "location": ref("Location", row.clinic_id),
        }
    )
    detail = row.detail or {}
    inputs = [_input("slot", valueReference=ref("Slot", row.slot_id))]
    if detail.get("generation"):
        inputs.append(_input("snapshot-generation", valueString=str(detail["generation"])))
    if detail.get("emr_identifier"):
        inputs.append(_input("emr-identifier", valueString=str(detail["emr_identifier"])))
    snapshot = detail.get("snapshot")
    if isinstance(snapshot, dict):
        inputs.append(_input("snapshot-start", valueDateTime=_z(snapshot["start"])))
        inputs.append(_input("snapshot-end", valueDateTime=_z(snapshot["end"])))
    resource["input"] = inputs
    if row.moved_to_id:
        resource["output"] = [_input("moved-to", valueReference=ref("Appointment", row.moved_to_id))]
    return resource


def _z(value: str) -> str:
    return instant(dt.datetime.fromisoformat(value))
