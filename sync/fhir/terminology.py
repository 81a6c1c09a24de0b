"""Our vocabularies as FHIR ``CodeSystem`` and ``ValueSet`` resources, read-only and public.

The codes the API uses in Slot.serviceType, Slot/Appointment.appointmentType, the audience
extension, Appointment.cancelationReason and the conflicts' Task are published here, each with its
French (``fr-CA``) and English designations; each ValueSet includes its whole CodeSystem. The
content is built from the model choices, so a code cannot be used without being published.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils import translation

from booking.models import Appointment, Audience, Modality, Reason

from ..models import SyncConflict
from . import resources, task

PUBLISHER = "Rendez-vous santé Québec"


@dataclass(frozen=True)
class Vocabulary:
    id: str
    url: str
    title: str
    description: str
    concepts: Callable[[], list[tuple[str, Any]]]  # (code, label: lazy or plain string)

    @property
    def value_set_url(self) -> str:
        return f"{resources.BASE}/ValueSet/{self.id}"


VOCABULARIES: dict[str, Vocabulary] = {
    v.id: v
    for v in (
        Vocabulary(
            "reason",
            resources.REASON_SYSTEM,
            "Reasons for a visit",
            "What a slot accepts (Slot.serviceType) and why an appointment was booked (appointmentType).",
            lambda: list(Reason.choices),
        ),
        Vocabulary(
            "modality",
            resources.MODALITY_SYSTEM,
            "Visit modalities",
            "In person, by phone or by video (Slot.appointmentType).",
            lambda: list(Modality.choices),
        ),
        Vocabulary(
            "audience",
            resources.AUDIENCE_SYSTEM,
            "Slot audiences",
            f"Who may book a slot online (extension {resources.AUDIENCE_EXTENSION}).",
            lambda: list(Audience.choices),
        ),
        Vocabulary(
            "cancel-reason",
            resources.CANCEL_REASON_SYSTEM,
            "Cancellation reasons",
            "Why an appointment was cancelled (Appointment.cancelationReason, with HL7's pat/prov).",
            lambda: list(Appointment.CancelReason.choices),
        ),
        Vocabulary(
            "sync-conflict",
            task.CONFLICT_SYSTEM,
            "Agenda conflict kinds",
            "Task.code of an agenda conflict.",
            lambda: list(task.KIND_DISPLAY.items()),
        ),
        Vocabulary(
            "sync-conflict-resolution",
            task.RESOLUTION_SYSTEM,
            "Agenda conflict resolutions",
            "Task.businessStatus of a resolved conflict, and $resolve's resolution.",
            lambda: list(task.RESOLUTION_DISPLAY.items()),
        ),
        Vocabulary(
            "sync-conflict-input",
            task.TASK_INPUT_SYSTEM,
            "Agenda conflict inputs and outputs",
            "Task.input.type and Task.output.type of an agenda conflict.",
            lambda: [
                ("slot", "The slot in conflict"),
                ("snapshot-generation", "The snapshot's generation"),
                ("snapshot-start", "The slot's start in the snapshot"),
                ("snapshot-end", "The slot's end in the snapshot"),
                ("emr-identifier", "The EMR's identifier of the refused desk booking"),
                ("moved-to", "The new appointment after a move"),
            ],
        ),
    )
}
assert len({v.url for v in VOCABULARIES.values()}) == len(VOCABULARIES)
_ = SyncConflict  # the conflict vocabularies above are SyncConflict's choices (sync.fhir.task)


def _label(value: Any, language: str) -> str:
    with translation.override(language):
        return str(value)


def code_system(vocabulary: Vocabulary) -> dict[str, Any]:
    concepts = vocabulary.concepts()
    return {
        "resourceType": "CodeSystem",
        "id": vocabulary.id,
        "url": vocabulary.url,
        "version": "1",
        "name": vocabulary.id.replace("-", "_"),
        "title": vocabulary.title,
        "status": "active",
        "experimental": False,
        "publisher": PUBLISHER,
        "description": vocabulary.description,
        "caseSensitive": True,
        "valueSet": vocabulary.value_set_url,
        "content": "complete",
        "count": len(concepts),
        "concept": [
            {
                "code": str(code),
                "display": _label(label, "fr"),
                "designation": [
                    {"language": "fr-CA", "value": _label(label, "fr")},
                    {"language": "en", "value": _label(label, "en")},
                ],
            }
            for code, label in concepts
        ],
    }


def value_set(vocabulary: Vocabulary) -> dict[str, Any]:
    return {
        "resourceType": "ValueSet",
        "id": vocabulary.id,
        "url": vocabulary.value_set_url,
        "version": "1",
        "name": vocabulary.id.replace("-", "_"),
        "title": vocabulary.title,
        "status": "active",
        "experimental": False,
        "publisher": PUBLISHER,
        "description": vocabulary.description,
        "compose": {"include": [{"system": vocabulary.url}]},
    }
