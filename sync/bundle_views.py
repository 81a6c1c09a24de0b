"""``POST /fhir/r4/`` with a transaction or batch Bundle of Slot writes (``system/Slot.write``).

Each entry is one of the Slot interactions the REST API offers, run by the same functions
(``sync.slot_ops``): ``POST Slot`` (create), ``PUT Slot?identifier=system|value`` (the idempotent
upsert), ``PUT Slot/{id}`` and ``DELETE Slot/{id}`` (``request.ifMatch`` as ``If-Match``).

* ``transaction``: all or nothing, in one database transaction. Entries run in FHIR's order (DELETE,
  then POST, then PUT, so that a withdrawn slot frees its time for the others) and answer in the
  order sent; the first refusal rolls everything back and is the answer: one OperationOutcome with
  that entry's status, naming it. Two entries about the same slot are refused (400).
* ``batch``: each entry alone, in the order sent (one savepoint each); the answer is always ``200``,
  a ``batch-response`` whose entries carry their own status (and an OperationOutcome when refused).
"""

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from django.db import OperationalError, transaction
from rest_framework.request import Request
from rest_framework.response import Response

from . import slot_ops
from .fhir import resources
from .fhir.errors import FhirError, operation_outcome
from .fhir.search import RESOURCES
from .views import FhirView, fhir_base_url

MAX_ENTRIES = slot_ops.BUNDLE_MAX_ENTRIES
METHOD_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2}  # http://hl7.org/fhir/R4/http.html#trules
STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}


@dataclass(frozen=True)
class Entry:
    index: int
    method: str
    pk: str | None  # PUT / DELETE Slot/{id}
    params: list[tuple[str, str]]  # PUT Slot?identifier=…
    resource: dict[str, Any] | None
    if_match: str | None

    @property
    def label(self) -> str:
        return f"entry[{self.index}]"

    @property
    def target(self) -> str | None:
        """What the entry is about, to refuse two entries on one slot in a transaction."""
        if self.pk is not None:
            return f"Slot/{self.pk}"
        if self.params:
            return "Slot?" + "&".join(f"{n}={v}" for n, v in self.params)
        return None


def _entry(index: int, raw: Any, base_url: str) -> Entry:
    label = f"entry[{index}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise FhirError(400, "structure", f"{label}: each entry needs a request (method and url).")
    request = raw["request"]
    method, url = request.get("method"), request.get("url")
    if not isinstance(method, str):
        raise FhirError(400, "required", f"{label}: request.method is required (POST, PUT or DELETE).")
    if not isinstance(url, str) or not url:
        raise FhirError(400, "required", f"{label}: request.url is required.")
    if url.startswith(base_url):
        url = url[len(base_url) :]
    parts = urlsplit(url)
    path = parts.path.strip("/")
    resource = raw.get("resource")
    if resource is not None and not isinstance(resource, dict):
        raise FhirError(400, "structure", f"{label}: resource must be a JSON object.")
    if_match = request.get("ifMatch")
    if if_match is not None and not isinstance(if_match, str):
        raise FhirError(400, "invalid", f'{label}: request.ifMatch must be a string such as W/"3".')
    kind, _, pk = path.partition("/")
    params = parse_qsl(parts.query, keep_blank_values=True)
    shapes = {
        ("POST", False, False),  # POST Slot
        ("PUT", False, True),  # PUT Slot?identifier=…
        ("PUT", True, False),  # PUT Slot/{id}
        ("DELETE", True, False),  # DELETE Slot/{id}
    }
    if kind != "Slot" or "/" in pk or (method, bool(pk), bool(params)) not in shapes:
        raise FhirError(
            422,
            "not-supported",
            f"{label}: {method} {url} is not supported in a Bundle; use POST Slot, PUT Slot/{{id}}, "
            "PUT Slot?identifier=system|value or DELETE Slot/{id}.",
        )
    if method in ("POST", "PUT") and not resource:
        raise FhirError(400, "required", f"{label}: {method} needs a resource (a Slot).")
    return Entry(index, method, pk or None, params, resource, if_match)


def _run(entry: Entry, clinic_ids: Collection[int]) -> dict[str, Any]:
    """One entry, as the REST interaction would answer it: the ``response`` (and the resource)."""
    if entry.method == "DELETE":
        assert entry.pk is not None
        return {
            "response": {"status": STATUS_TEXT[slot_ops.slot_op_delete(clinic_ids, entry.pk, entry.if_match)]}
        }
    assert entry.resource is not None
    if entry.method == "POST":
        status, row = slot_ops.slot_op_create(clinic_ids, entry.resource)
    elif entry.pk is not None:
        status, row = slot_ops.slot_op_update(clinic_ids, entry.pk, entry.resource, entry.if_match)
    else:
        status, row = slot_ops.slot_op_upsert(clinic_ids, entry.params, entry.resource)
    return {
        "fullUrl": f"Slot/{row.pk}",
        "resource": resources.slot(row),
        "response": {
            "status": STATUS_TEXT[status],
            "location": f"Slot/{row.pk}/_history/{row.version}",
            "etag": f'W/"{row.version}"',
            "lastModified": resources.instant(row.updated_at),
        },
    }


def _named(entry: Entry, exc: FhirError, *, suffix: str = "") -> FhirError:
    return FhirError(exc.status, exc.code, f"{entry.label}: {exc.diagnostics}{suffix}", headers=exc.headers)


class BundleView(FhirView):
    resource = RESOURCES["Slot"]  # the scope: system/Slot.write
    interaction = "batch"

    def post(self, request: Request) -> Response:
        body = self.body()
        if body.get("resourceType") != "Bundle":
            raise FhirError(
                400,
                "invalid",
                f"POST {request.path} takes a Bundle (resourceType {body.get('resourceType')!r}).",
            )
        kind = body.get("type")
        if kind not in ("transaction", "batch"):
            raise FhirError(400, "invalid", f"Bundle.type must be transaction or batch, not {kind!r}.")
        raw_entries = body.get("entry", [])
        if not isinstance(raw_entries, list):
            raise FhirError(400, "structure", "Bundle.entry must be a list.")
        if len(raw_entries) > MAX_ENTRIES:
            raise FhirError(413, "too-costly", f"A Bundle holds at most {MAX_ENTRIES} entries; split it.")
        base_url = fhir_base_url(request)
        clinic_ids = self.clinic_ids()
        if kind == "batch":
            return Response(self._batch(raw_entries, clinic_ids, base_url))
        entries = [_entry(index, raw, base_url) for index, raw in enumerate(raw_entries)]
        seen: dict[str, int] = {}
        for entry in entries:
            target = entry.target
            if target is not None and target in seen:
                raise FhirError(
                    400, "invalid", f"{entry.label} and entry[{seen[target]}] are both about {target}."
                )
            if target is not None:
                seen[target] = entry.index
        return Response(self._transaction(entries, clinic_ids))

    def _transaction(self, entries: list[Entry], clinic_ids: Collection[int]) -> dict[str, Any]:
        results: dict[int, dict[str, Any]] = {}
        try:
            with transaction.atomic():
                for entry in sorted(entries, key=lambda e: (METHOD_ORDER[e.method], e.index)):
                    try:
                        results[entry.index] = _run(entry, clinic_ids)
                    except FhirError as exc:
                        raise _named(entry, exc, suffix=" Nothing in this transaction was applied.") from exc
        except OperationalError as exc:  # a deadlock with another writer: rolled back, safe to retry
            raise FhirError(
                503,
                "transient",
                "Another change to the same agenda was in progress; nothing was applied: retry.",
                headers={"Retry-After": "3"},
            ) from exc
        return {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [results[entry.index] for entry in entries],
        }

    def _batch(self, raw_entries: list[Any], clinic_ids: Collection[int], base_url: str) -> dict[str, Any]:
        answers = []
        for index, raw in enumerate(raw_entries):
            try:
                entry = _entry(index, raw, base_url)
                try:
                    with transaction.atomic():
                        answers.append(_run(entry, clinic_ids))
                except OperationalError as exc:  # a deadlock: this entry rolled back, safe to retry
                    raise FhirError(503, "transient", "Another change was in progress; retry.") from exc
            except FhirError as exc:
                answers.append(
                    {
                        "response": {
                            "status": str(exc.status),
                            "outcome": operation_outcome(exc.code, f"entry[{index}]: {exc.diagnostics}"),
                        }
                    }
                )
        return {"resourceType": "Bundle", "type": "batch-response", "entry": answers}
