"""``POST Task/{id}/$resolve``: the clinic's EMR resolves an agenda conflict (``sync.fhir.task``).

The body is a ``Parameters`` resource: ``resolution`` (valueCode ``keep``, ``move`` or ``cancel``) and,
for ``move``, ``slot`` (valueReference ``Slot/{id}``: a free slot of the same clinic). The decision
goes through ``sync.conflicts.conflict_resolve``, the clinic pages' path: one transaction under the
conflict's row lock, so the first resolution wins (staff or EMR) and any other gets 409; the
citizen is told of a move or a cancellation in their language. Answer: 200 with the resolved Task.
Scope: ``system/Task.write``. A conflict of another client's clinic is 404.
"""

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from booking import errors as booking_errors

from . import conflicts
from .fhir import writes
from .fhir.errors import FhirError
from .fhir.search import RESOURCES
from .fhir.task import task, task_updated, task_version
from .models import SyncConflict
from .selectors import conflict_queryset
from .views import FhirView

RESOLUTIONS = tuple(SyncConflict.Resolution.values)


def _resolve_input(body: dict[str, Any]) -> tuple[str, int | None]:
    if body.get("resourceType") != "Parameters":
        raise writes.bad(
            f"The body must be a Parameters resource (resourceType {body.get('resourceType')!r})."
        )
    params = body.get("parameter", [])
    if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
        raise writes.bad("Parameters.parameter must be a list of parameters.")
    given: dict[str, dict[str, Any]] = {}
    for param in params:
        name = param.get("name")
        if name not in ("resolution", "slot"):
            raise writes.bad(f"Unknown parameter {name!r}: use resolution (and slot for move).")
        if name in given:
            raise writes.bad(f"The parameter {name} is given twice.")
        given[name] = param
    resolution = given.get("resolution", {}).get("valueCode")
    if resolution not in RESOLUTIONS:
        raise writes.bad(
            f"resolution must be a valueCode among {', '.join(RESOLUTIONS)} (got {resolution!r}).",
            "code-invalid" if resolution is not None else "required",
        )
    slot_id = None
    if resolution == SyncConflict.Resolution.MOVE and "slot" not in given:
        raise writes.bad("A move needs the slot parameter: valueReference Slot/{id}.", "required")
    if "slot" in given:
        if resolution != SyncConflict.Resolution.MOVE:
            raise writes.bad("The slot parameter is for a move only.")
        value = given["slot"].get("valueReference")
        reference = value.get("reference") if isinstance(value, dict) else None
        kind, _, pk = str(reference).partition("/")
        if kind != "Slot" or not (pk.isascii() and pk.isdigit()):  # "²" is a digit, not an int
            raise writes.bad("slot must be a valueReference to Slot/{id}.")
        slot_id = int(pk)
    return resolution, slot_id


class TaskResolveView(FhirView):
    resource = RESOURCES["Task"]
    interaction = "$resolve"

    def post(self, request: Request, pk: str) -> Response:
        row = conflict_queryset(self.clinic_ids()).select_related("clinic").filter(pk=int(pk)).first()
        if row is None:
            raise FhirError(404, "not-found", f"Task/{pk} is not known.")
        resolution, slot_id = _resolve_input(self.body())
        try:
            resolved = conflicts.conflict_resolve(
                clinic=row.clinic,
                conflict_id=row.pk,
                resolution=resolution,
                by=None,
                new_slot_id=slot_id,
                emr_client=self.emr_client,
            )
        except conflicts.ConflictAlreadyResolved as exc:
            raise FhirError(
                409,
                "conflict",
                f"Task/{pk} was already resolved ({row.resolution or 'by someone else'}): read it again.",
            ) from exc
        except booking_errors.ApplicationError as exc:
            raise writes.from_booking_error(exc) from exc
        headers = {
            "ETag": f'W/"{task_version(resolved)}"',
            "Last-Modified": task_updated(resolved).strftime("%a, %d %b %Y %H:%M:%S GMT"),
        }
        return Response(task(resolved), headers=headers)
