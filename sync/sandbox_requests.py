"""The record of a sandbox client's API requests that the conformance kit reads (docs/vendors.md).

``sandbox_request_record`` is called by ``FhirView.finalize_response`` for every answered request of
an authenticated client: it returns at once for a production client, and makes one insert for a
sandbox client. Method, resource type, interaction, status, the OperationOutcome's issue code,
whether ``If-Match``/``If-None-Exist`` were sent, the EMR's identifier of the slot or booking, our
resource id, and for the change feed the cursors: never a body, never a person's data.
"""

import datetime as dt
from typing import Any

from django.conf import settings
from django.utils import timezone

from .models import EmrClient, SandboxRequest

DEFAULT_KEEP_DAYS = 30


def _interaction(method: str, view: Any, kwargs: dict[str, Any]) -> str:
    named = getattr(view, "interaction", None)
    if named:
        return str(named)
    if kwargs.get("pk") is not None:
        return {"GET": "read", "PUT": "update", "DELETE": "delete"}.get(method, method.lower())
    return {"GET": "search", "POST": "create", "PUT": "conditional-update", "DELETE": "delete"}.get(
        method, method.lower()
    )


def _identifier(request: Any, resource_type: str) -> str:
    """The EMR's identifier of what it writes: the conditional URL's, else the body's first. Never
    for a Patient (its identifier is a NAM)."""
    if resource_type not in ("Slot", "Appointment"):
        return ""
    value = request.query_params.get("identifier", "")
    if value:
        return value.rsplit("|", 1)[-1][:100]
    data = getattr(request, "_full_data", None)  # parsed already, or not at all: never parse here
    if isinstance(data, dict):
        identifiers = data.get("identifier")
        if isinstance(identifiers, list) and identifiers and isinstance(identifiers[0], dict):
            return str(identifiers[0].get("value", ""))[:100]
    return ""


def sandbox_request_record(*, client: EmrClient, request: Any, response: Any, view: Any) -> None:
    if not client.is_sandbox:
        return
    data = response.data if isinstance(getattr(response, "data", None), dict) else {}
    outcome = ""
    if data.get("resourceType") == "OperationOutcome":
        issues = data.get("issue") or [{}]
        outcome = str(issues[0].get("code", ""))[:40]
    kwargs = getattr(view, "kwargs", {}) or {}
    pk = kwargs.get("pk")
    resource_id: int | None = int(pk) if isinstance(pk, str) and pk.isdigit() and len(pk) < 18 else None
    if resource_id is None and isinstance(data.get("id"), str) and data["id"].isdigit():
        resource_id = int(data["id"])
    resource = getattr(view, "resource", None)
    resource_type = resource.name if resource is not None else type(view).__name__.removesuffix("View")
    cursors = getattr(view, "feed_cursors", None) or (None, None, None)
    SandboxRequest.objects.create(
        emr_client=client,
        at=timezone.now(),
        method=request.method[:8],
        resource_type=resource_type[:40],
        interaction=_interaction(request.method, view, kwargs)[:20],
        status=response.status_code,
        outcome_code=outcome,
        if_match="If-Match" in request.headers,
        if_none_exist="If-None-Exist" in request.headers,
        identifier=_identifier(request, resource_type),
        resource_id=resource_id,
        cursor=cursors[0],
        next_cursor=cursors[1],
        entries=cursors[2],
    )


def sandbox_requests_prune(*, now: dt.datetime | None = None) -> int:
    """Delete the records older than ``SYNC_SANDBOX_REQUEST_DAYS`` (default 30); how many went."""
    now = now or timezone.now()
    days = getattr(settings, "SYNC_SANDBOX_REQUEST_DAYS", DEFAULT_KEEP_DAYS)
    deleted, _ = SandboxRequest.objects.filter(at__lt=now - dt.timedelta(days=days)).delete()
    return deleted
