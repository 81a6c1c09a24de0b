"""Virtual waiting room for release peaks (issue 5, docs/scaling.md).

Off unless ``WAITING_ROOM_ENABLED``. When on, the booking flow (the search, hold and confirmation
pages; ``/api/v1/slots``, ``/api/v1/holds`` and booking through ``/api/v1/appointments``) admits at
most ``WAITING_ROOM_CAPACITY`` active visitors. A visitor is a browser session (a random visitor id
kept in it) or, on the citizen API, the citizen of the bearer token. Beyond that, newcomers wait in
one first-come-first-served queue in Redis:

- ``wr:active``, a sorted set of admitted visitors scored by when their seat lapses: each request of
  theirs in the flow keeps it for ``WAITING_ROOM_IDLE_SECONDS`` more, so someone who left (or finished
  booking) frees the seat that long after their last request;
- ``wr:queue``, the waiting visitors scored by arrival (a counter), and ``wr:seen``, when each last
  asked; a waiter who has not asked for ``WAITING_ROOM_STALE_SECONDS`` (closed the page) loses the place.

One Lua script (atomic) does a poll: drop lapsed seats and stale waiters; an admitted visitor keeps
the seat; otherwise the visitor joins the queue (once: the same visitor keeps the same place) and is
admitted only if fewer people are ahead than seats are free. Nobody overtakes a waiter still waiting.

An admission is proved by a signed token (``django.core.signing``, its own salt) naming the visitor,
valid ``WAITING_ROOM_IDLE_SECONDS``: kept in the session for pages, sent back in the
``Waiting-Room-Token`` header on the API. It is not accepted for another visitor (another session, another
citizen's token). A request carrying a token younger than ``WAITING_ROOM_TOKEN_RECHECK_SECONDS``
costs no Redis round trip; an older one polls again (which also keeps the seat).

Pages: a visitor not admitted is sent to the queue page (``booking:waiting_room``), which shows the
position and an estimated wait, refreshes itself (meta refresh, no JavaScript) and has a "check
again" button; once admitted it sends them on to where they were going. The citizen API answers
503 with ``Retry-After``, the position and the estimated wait (error code ``waiting_room``).

Redis holds nothing that cannot be lost: when it is down the room lets everyone in (logged).
"""

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

TOKEN_SALT = "booking.waiting-room"  # noqa: S105 - a signing salt, not a secret
SESSION_VISITOR = "waiting_room_visitor"
SESSION_TOKEN = "waiting_room_token"  # noqa: S105 - a session key's name, not a secret
HEADER = "Waiting-Room-Token"
KEYS = ("wr:active", "wr:queue", "wr:seen", "wr:seq")

GATED_PAGES = frozenset({"booking:search", "booking:hold", "booking:confirm", "booking:reschedule"})
# Citizen API routes in the flow, by method ("*": every method).
GATED_API = {"api:slots": "*", "api:holds": "*", "api:appointments": "POST"}

_POLL = """
local active, queue, seen, seq = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, now = ARGV[1], tonumber(ARGV[2])
local capacity, idle, stale = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', active, '-inf', now)
local gone = redis.call('ZRANGEBYSCORE', seen, '-inf', now - stale)
for _, g in ipairs(gone) do redis.call('ZREM', queue, g) end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - stale) end
if redis.call('ZSCORE', active, id) then
  redis.call('ZADD', active, now + idle, id)
  return {1, 0, redis.call('ZCARD', active)}
end
if not redis.call('ZSCORE', queue, id) then
  redis.call('ZADD', queue, redis.call('INCR', seq), id)
end
redis.call('ZADD', seen, now, id)
local rank = redis.call('ZRANK', queue, id)
local free = capacity - redis.call('ZCARD', active)
if rank < free then
  redis.call('ZREM', queue, id)
  redis.call('ZREM', seen, id)
  redis.call('ZADD', active, now + idle, id)
  return {1, 0, redis.call('ZCARD', active)}
end
return {0, rank + 1, redis.call('ZCARD', active)}
"""
_script: Any = None


@dataclass(frozen=True)
class Admission:
    admitted: bool
    position: int = 0  # 1 = next in line
    active: int = 0

    @property
    def wait_seconds(self) -> int:
        """A rough estimate: seats free as visits end (``WAITING_ROOM_AVERAGE_VISIT_SECONDS`` each)."""
        per_seat = settings.WAITING_ROOM_AVERAGE_VISIT_SECONDS / max(1, settings.WAITING_ROOM_CAPACITY)
        return int(self.position * per_seat) + int(settings.WAITING_ROOM_REFRESH_SECONDS)


def _keys() -> list[str]:
    # Under the cache's prefix (CACHE_KEY_PREFIX), like every other key of this deployment.
    return [cache.make_key(key) for key in KEYS]


def _redis() -> Any:
    # Django's RedisCache: the redis-py client behind it (the script needs the raw client).
    return cache._cache.get_client(None, write=True)  # type: ignore[attr-defined]


def poll(visitor: str, *, now: float | None = None) -> Admission:
    """Admit ``visitor`` if it is their turn (or they are admitted already), else their place."""
    global _script
    now = time.time() if now is None else now
    try:
        client = _redis()
        if _script is None or _script.registered_client is not client:
            _script = client.register_script(_POLL)
        admitted, position, active = _script(
            keys=_keys(),
            args=[
                visitor,
                now,
                settings.WAITING_ROOM_CAPACITY,
                settings.WAITING_ROOM_IDLE_SECONDS,
                settings.WAITING_ROOM_STALE_SECONDS,
            ],
        )
    except Exception:  # noqa: BLE001 - Redis down: let everyone in rather than turn them away
        logger.warning("waiting room store unavailable; admitting")
        return Admission(True)
    return Admission(bool(admitted), int(position), int(active))


def leave(visitor: str) -> None:
    """Free the visitor's seat or place at once (tests; a finished visit could call it)."""
    try:
        client = _redis()
        for key in _keys()[:3]:
            client.zrem(key, visitor)
    except Exception:  # noqa: BLE001
        logger.warning("waiting room store unavailable")


def token_make(visitor: str, *, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    return signing.dumps({"v": visitor, "t": issued}, salt=TOKEN_SALT)


def token_check(token: str | None, visitor: str, *, now: float | None = None) -> str:
    """``fresh`` (admitted, no need to ask Redis), ``recheck`` (admitted, but poll to keep the seat),
    or ``invalid`` (missing, forged, expired, or another visitor's)."""
    if not token:
        return "invalid"
    try:
        data = signing.loads(token, salt=TOKEN_SALT)
        age = (time.time() if now is None else now) - int(data["t"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return "invalid"
    if data.get("v") != visitor or not 0 <= age < settings.WAITING_ROOM_IDLE_SECONDS:
        return "invalid"
    return "fresh" if age < settings.WAITING_ROOM_TOKEN_RECHECK_SECONDS else "recheck"


def _hashed(kind: str, ident: str) -> str:
    # No personal identifier in Redis: a keyed hash of it.
    return kind + ":" + salted_hmac(TOKEN_SALT, ident).hexdigest()[:24]


def page_visitor(request: HttpRequest) -> str:
    visitor = request.session.get(SESSION_VISITOR)
    if not isinstance(visitor, str):
        visitor = secrets.token_hex(12)
        request.session[SESSION_VISITOR] = visitor
    return _hashed("s", visitor)


def api_visitor(request: HttpRequest) -> str | None:
    """The bearer token's citizen, or None (no valid token: the view itself answers 401)."""
    from .api.auth import citizen_token_read

    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    try:
        return citizen_visitor(citizen_token_read(header.removeprefix("Bearer ").strip()))
    except Exception:  # noqa: BLE001 - an invalid token: not ours to answer
        return None


def citizen_visitor(citizen_id: int) -> str:
    """The API visitor of a citizen: one place in line per citizen, whatever token they hold."""
    return _hashed("c", str(citizen_id))


def _gated(request: HttpRequest) -> str | None:
    match = request.resolver_match
    view = match.view_name if match is not None else ""
    if view in GATED_PAGES:
        return "page"
    methods = GATED_API.get(view)
    if methods is not None and (methods == "*" or request.method == methods):
        return "api"
    return None


def _safe_next(value: str | None) -> str:
    from django.utils.http import url_has_allowed_host_and_scheme

    if value and value.startswith("/") and url_has_allowed_host_and_scheme(value, allowed_hosts=None):
        return value
    return reverse("booking:search")


def queue_url(next_path: str) -> str:
    return reverse("booking:waiting_room") + "?" + urlencode({"next": next_path})


def api_waiting_response(admission: Admission) -> JsonResponse:
    retry = settings.WAITING_ROOM_REFRESH_SECONDS
    minutes = max(1, round(admission.wait_seconds / 60))
    message = _(
        "Many people are booking right now. You are number %(position)d in line; "
        "estimated wait about %(minutes)d min. Try again after the Retry-After delay."
    ) % {"position": admission.position, "minutes": minutes}
    response = JsonResponse(
        {
            "error": {
                "code": "waiting_room",
                "message": message,
                "position": admission.position,
                "estimated_wait_seconds": admission.wait_seconds,
                "retry_after": retry,
            }
        },
        status=503,
    )
    response["Retry-After"] = str(retry)
    response["Cache-Control"] = "no-store"
    return response


class WaitingRoomMiddleware:
    """After URL resolution: the booking flow's admission (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        token = getattr(request, "_waiting_room_token", None)
        if token:
            response[HEADER] = token
        return response

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        if not settings.WAITING_ROOM_ENABLED:
            return None
        kind = _gated(request)
        if kind is None:
            return None
        if kind == "api":
            visitor = api_visitor(request)
            if visitor is None:
                return None
            if token_check(request.headers.get(HEADER), visitor) == "fresh":
                return None
            admission = poll(visitor)
            if not admission.admitted:
                return api_waiting_response(admission)
            request._waiting_room_token = token_make(visitor)  # type: ignore[attr-defined]
            return None
        visitor = page_visitor(request)
        if token_check(request.session.get(SESSION_TOKEN), visitor) == "fresh":
            return None
        admission = poll(visitor)
        if admission.admitted:
            request.session[SESSION_TOKEN] = token_make(visitor)
            return None
        request.session.pop(SESSION_TOKEN, None)
        target = request.get_full_path() if request.method == "GET" else reverse("booking:search")
        return HttpResponseRedirect(queue_url(target), status=303 if request.method == "POST" else 302)


def waiting_room(request: HttpRequest) -> HttpResponse:
    """The queue page: admitted, it sends the visitor on; otherwise their place, refreshed."""
    from django.shortcuts import render

    target = _safe_next(request.GET.get("next"))
    if not settings.WAITING_ROOM_ENABLED:
        return HttpResponseRedirect(target)
    visitor = page_visitor(request)
    admission = poll(visitor)
    if admission.admitted:
        request.session[SESSION_TOKEN] = token_make(visitor)
        return HttpResponseRedirect(target)
    context = {
        "position": admission.position,
        "minutes": max(1, round(admission.wait_seconds / 60)),
        "refresh": settings.WAITING_ROOM_REFRESH_SECONDS,
        "next": target,
        # WCAG 2.2.1: the visitor may turn the automatic reload off (they then check by hand).
        "manual": request.GET.get("manual") == "1",
    }
    response = render(request, "booking/waiting_room.html", context)
    response["Cache-Control"] = "no-store"
    return response
