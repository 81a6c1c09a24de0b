"""Maintenance mode: searching and viewing keep working; every write to appointments pauses.

While it is on (docs/operations.md, docs/runbooks/maintenance-mode.md):

- every page shows a bilingual banner (French and English, whatever the page's language);
- holds, bookings, reschedules and cancellations pause on every channel: the citizen pages and the
  clinic pages answer a friendly page (503, ``Retry-After``) instead of doing them; the citizen API
  answers its error shape with code ``maintenance``; the FHIR API answers every write (any method
  but GET/HEAD/OPTIONS, except the ``_search`` forms, which are reads) with an OperationOutcome;
  both with 503 and ``Retry-After``.

It is on when ``settings.MAINTENANCE_MODE`` is true (set at deploy time), or when the runtime flag is
set in the shared cache by ``manage.py maintenance on`` (every process sees it within
``MEMO_SECONDS``). Redis holds nothing that cannot be lost: if it is flushed or down, the flag is off
and bookings go on; an operation that must not see writes uses the setting.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

CACHE_KEY = "maintenance"
MEMO_SECONDS = 3.0
_memo: tuple[float, "MaintenanceState"] | None = None

# Pages whose POST writes to appointments (and, for the first two, whose GET starts one).
PAUSED_PAGES = frozenset(
    {
        "booking:hold",
        "booking:confirm",
        "booking:reschedule",
        "booking:cancel",
        "booking:cancel_link",
        "clinics:phone_book",
        "clinics:appointment_cancel",
        "clinics:appointment_move",
        "clinics:appointment_status",
    }
)
PAUSED_ON_GET = frozenset({"booking:confirm", "booking:reschedule"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Citizen API writes that are not appointment writes.
API_ALLOWED_WRITES = frozenset({"api:identify"})


@dataclass(frozen=True)
class MaintenanceState:
    active: bool
    retry_after: int
    source: str = ""  # "setting" or "flag"
    since: str = ""


def maintenance_state(*, fresh: bool = False) -> MaintenanceState:
    """On when the setting says so, or when the runtime flag is set in the shared cache. Each process
    reads the flag at most every ``MEMO_SECONDS``; Redis down means the flag is off."""
    global _memo
    if settings.MAINTENANCE_MODE:
        return MaintenanceState(True, settings.MAINTENANCE_RETRY_AFTER, "setting")
    now = time.monotonic()
    if not fresh and _memo is not None and now - _memo[0] < MEMO_SECONDS:
        return _memo[1]
    try:
        flag = cache.get(CACHE_KEY)
    except Exception:  # noqa: BLE001 - Redis down: bookings go on
        flag = None
    if isinstance(flag, dict):
        retry_after = int(flag.get("retry_after") or settings.MAINTENANCE_RETRY_AFTER)
        state = MaintenanceState(True, retry_after, "flag", str(flag.get("since", "")))
    else:
        state = MaintenanceState(False, 0)
    _memo = (now, state)
    return state


def maintenance_set(*, active: bool, retry_after: int | None = None) -> MaintenanceState:
    """Turn the runtime flag on or off (the setting, if on, stays on)."""
    global _memo
    if active:
        flag = {
            "retry_after": retry_after or settings.MAINTENANCE_RETRY_AFTER,
            "since": timezone.now().isoformat(timespec="seconds"),
        }
        cache.set(CACHE_KEY, flag, timeout=None)
    else:
        cache.delete(CACHE_KEY)
    _memo = None
    return maintenance_state(fresh=True)


def context_processor(request: HttpRequest) -> dict[str, Any]:
    state = maintenance_state()
    return {"maintenance": state if state.active else None}


def _paused(request: HttpRequest) -> str | None:
    """Which kind of answer a paused request gets ("page", "api", "fhir"), or None if it goes on."""
    match = request.resolver_match
    view = match.view_name if match is not None else ""
    method = request.method or "GET"
    if request.path.startswith("/api/v1/"):
        return "api" if method not in SAFE_METHODS and view not in API_ALLOWED_WRITES else None
    if request.path.startswith("/fhir/"):
        is_search = request.path.rstrip("/").endswith("/_search")
        return "fhir" if method not in SAFE_METHODS and not is_search else None
    if view in PAUSED_PAGES and (method not in SAFE_METHODS or view in PAUSED_ON_GET):
        return "page"
    return None


def paused_response(request: HttpRequest, kind: str, state: MaintenanceState) -> HttpResponse:
    response: HttpResponse
    minutes = max(1, round(state.retry_after / 60))
    if kind == "api":
        message = _("Booking is paused for maintenance. Please try again in %(minutes)d minutes.") % {
            "minutes": minutes
        }
        response = JsonResponse(
            {"error": {"code": "maintenance", "message": message, "retry_after": state.retry_after}},
            status=503,
        )
    elif kind == "fhir":
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "transient",
                    "diagnostics": "Maintenance: writes are paused; retry after the Retry-After delay. "
                    "Reads and searches keep working.",
                }
            ],
        }
        response = JsonResponse(outcome, status=503, content_type="application/fhir+json")
    else:
        response = render(request, "maintenance.html", {"minutes": minutes}, status=503)
    response["Retry-After"] = str(state.retry_after)
    return response


class MaintenanceMiddleware:
    """After URL resolution and authentication: pauses the writes listed above while it is on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        kind = _paused(request)
        if kind is None:
            return None
        state = maintenance_state()
        if not state.active:
            return None
        return paused_response(request, kind, state)
