"""The request middleware (request id, metrics, one access log line) and the signal receivers that
count bookings, reconciliations and Celery tasks, and carry the request id into tasks.

Connected once by ``config.apps.OperationsConfig.ready`` (web and worker processes alike).
"""

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from . import emr_activity, metrics
from .logs import REQUEST_ID_HEADER, new_request_id, request_id_var, sane_request_id

access_logger = logging.getLogger("rdv.access")
task_logger = logging.getLogger("rdv.tasks")


class RequestObservabilityMiddleware:
    """First in the chain: times the whole request; labels it with its route, never its path (paths
    can hold a cancellation token); logs one line; returns the request id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = sane_request_id(request.META.get("HTTP_X_REQUEST_ID")) or new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            seconds = time.perf_counter() - started
            view = metrics.record_request(request, response, seconds)
            emr_activity.note_request(request)
            response[REQUEST_ID_HEADER] = request_id
            if view != "metrics":
                access_logger.info(
                    "request",
                    extra={
                        "view": view,
                        "method": request.method,
                        "status": response.status_code,
                        "duration_ms": round(seconds * 1000, 1),
                    },
                )
            return response
        finally:
            request_id_var.reset(token)


# --- Celery: request id across the broker, task durations ----------------------------------------

_task_started: dict[str, float] = {}


def _before_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = request_id_var.get()
    if headers is not None and request_id and "request_id" not in headers:
        headers["request_id"] = request_id


def _task_prerun(task_id: str = "", task: Any = None, **_: Any) -> None:
    request = getattr(task, "request", None)
    incoming = getattr(request, "request_id", None) or (getattr(request, "headers", None) or {}).get(
        "request_id"
    )
    # A task run inline (eager, the demo and tests) keeps its caller's id.
    request_id = sane_request_id(incoming) or request_id_var.get() or f"task-{task_id}"
    if request is not None:
        request._rdv_request_id_token = request_id_var.set(request_id)
    _task_started[task_id] = time.perf_counter()


def _task_postrun(task_id: str = "", task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _task_started.pop(task_id, None)
    name = getattr(task, "name", "unknown")
    if started is not None:
        seconds = time.perf_counter() - started
        metrics.TASK_DURATION.labels(task=name).observe(seconds)
        metrics.TASKS.labels(task=name, state=state or "UNKNOWN").inc()
        task_logger.info(
            "task finished", extra={"task": name, "state": state, "duration_ms": round(seconds * 1000, 1)}
        )
    token = getattr(getattr(task, "request", None), "_rdv_request_id_token", None)
    if token is not None:
        with contextlib.suppress(ValueError):  # set in another context (should not happen)
            request_id_var.reset(token)


# --- model signals: bookings and reconciliations ------------------------------------------------


# Counted when the row is inserted, not on commit: by then the compare-and-set and the constraints
# have accepted the booking (only the outbox insert and the commit follow), and an on-commit callback
# would be one more hook for every test of the booking's commit hooks to account for.
def _appointment_saved(sender: Any, instance: Any, created: bool, **_: Any) -> None:
    if created:
        metrics.BOOKINGS.labels(channel=str(instance.channel or "unknown")).inc()


def _snapshot_saved(sender: Any, instance: Any, update_fields: Any = None, **_: Any) -> None:
    if update_fields is None or "status" not in update_fields or instance.finished_at is None:
        return
    if instance.status not in ("done", "failed"):
        return
    seconds = max(0.0, (instance.finished_at - instance.received_at).total_seconds())
    conflicts = int((instance.counts or {}).get("conflicts", 0))
    outcome = str(instance.status)

    metrics.RECONCILIATIONS.labels(outcome=outcome).inc()
    metrics.RECONCILE_DURATION.observe(seconds)
    if conflicts:
        metrics.RECONCILE_CONFLICTS.inc(conflicts)


def connect() -> None:
    from celery.signals import before_task_publish, task_postrun, task_prerun
    from django.db.models.signals import post_save

    before_task_publish.connect(_before_publish, weak=False, dispatch_uid="rdv-request-id")
    task_prerun.connect(_task_prerun, weak=False, dispatch_uid="rdv-task-prerun")
    task_postrun.connect(_task_postrun, weak=False, dispatch_uid="rdv-task-postrun")
    post_save.connect(_appointment_saved, sender="booking.Appointment", dispatch_uid="rdv-bookings")
    post_save.connect(_snapshot_saved, sender="sync.AgendaSnapshot", dispatch_uid="rdv-snapshots")
