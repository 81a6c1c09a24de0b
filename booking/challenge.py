"""A self-hosted challenge for the booking flow under abnormal load (issue 5, docs/scaling.md).

Off until load is abnormal: ``CHALLENGE_ENABLED`` (forced on), or the flag ``challenge:on`` in Redis,
set by an operator (``manage.py challenge on|off|status``) or automatically when more than
``CHALLENGE_AUTO_THRESHOLD`` requests of the booking flow (the gated pages and API routes of the
waiting room) arrive in one ``CHALLENGE_AUTO_WINDOW`` (0: never automatically); the automatic flag
lapses after ``CHALLENGE_AUTO_SECONDS``. Each process reads the flag at most every
``CHALLENGE_FLAG_CACHE_SECONDS`` (2).

While it is on, a browser session that has not passed it is sent from the booking flow to
``/verification/``, which issues a signed challenge naming the session's visitor (the waiting
room's) and the time. Two ways through, no third party:

- a small proof of work: a nonce such that SHA-256(challenge + ":" + nonce) starts with
  ``CHALLENGE_BITS`` zero bits, found by ``static/booking/challenge.js`` (an external file: CSP), which
  fills the form and submits it;
- without JavaScript, a timed wait: the form is accepted ``CHALLENGE_WAIT_SECONDS`` after the
  challenge was issued (the server reads the signed time).

A challenge is valid ``CHALLENGE_MAX_AGE`` seconds and only for the session it was issued to (a
solved challenge replayed from another session counts for nothing). Passing sets a mark in the
session valid ``CHALLENGE_PASS_SECONDS``. The citizen API has no page to show: while the challenge
is on, its booking routes answer 503 with ``Retry-After`` (``CHALLENGE_AUTO_SECONDS`` at most; error
code ``challenge``), so scripted clients back off while people on the pages carry on.

Redis down: no flag can be read, the challenge is off (logged), like the rate limits.
"""

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import waitingroom

logger = logging.getLogger(__name__)

SALT = "booking.challenge"
FLAG = "challenge:on"
SESSION_PASSED = "challenge_passed_until"


# The flag as this process last read it, and until when (time.monotonic()): reading Redis at most
# every CHALLENGE_FLAG_CACHE_SECONDS keeps the booking path at its round trips (docs/benchmarks.md).
_flag: list[float] = [0.0, 0.0]


def active() -> bool:
    if settings.CHALLENGE_ENABLED:
        return True
    now = time.monotonic()
    if now < _flag[1]:
        return bool(_flag[0])
    try:
        value = bool(cache.get(FLAG))
    except Exception:  # noqa: BLE001 - Redis down: no challenge rather than no service
        logger.warning("challenge flag unavailable; off")
        value = False
    _flag[:] = [float(value), now + settings.CHALLENGE_FLAG_CACHE_SECONDS]
    return value


def switch(on: bool, *, seconds: int | None = None) -> None:
    """The operator's switch (``seconds``: until then; None: until switched off)."""
    if on:
        cache.set(FLAG, 1, timeout=seconds)
    else:
        cache.delete(FLAG)
    _flag[:] = [0.0, 0.0]  # this process reads it again; the others within the cache time


def count_request(*, now: float | None = None) -> None:
    """Count one request of the booking flow; past the threshold, switch the challenge on for a while."""
    threshold = settings.CHALLENGE_AUTO_THRESHOLD
    if threshold <= 0:
        return
    from config.ratelimit import _incr

    now = time.time() if now is None else now
    window = settings.CHALLENGE_AUTO_WINDOW
    try:
        count = _incr(f"challenge:rate:{int(now) // window}", window)
        if count > threshold:
            cache.set(FLAG, 1, timeout=settings.CHALLENGE_AUTO_SECONDS)
            _flag[:] = [0.0, 0.0]
            if count == threshold + 1:
                logger.warning("abnormal load on the booking flow; challenge on", extra={"count": count})
    except Exception:  # noqa: BLE001
        logger.warning("challenge counter unavailable")


def issue(visitor: str, *, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    return signing.dumps({"v": visitor, "t": issued}, salt=SALT)


def leading_zero_bits(digest: bytes) -> int:
    bits = 0
    for byte in digest:
        if byte == 0:
            bits += 8
            continue
        return bits + 8 - byte.bit_length()
    return bits


def solved(challenge: str, nonce: str) -> bool:
    digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
    bits: int = settings.CHALLENGE_BITS
    return leading_zero_bits(digest) >= bits


def check(challenge: str, nonce: str, visitor: str, *, now: float | None = None) -> str:
    """``ok``, or why not: ``invalid`` (forged, expired, another session's), ``early``, ``wrong``."""
    now = time.time() if now is None else now
    try:
        data = signing.loads(challenge, salt=SALT)
        age = now - int(data["t"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return "invalid"
    if data.get("v") != visitor or not 0 <= age < settings.CHALLENGE_MAX_AGE:
        return "invalid"
    if nonce:
        return "ok" if len(nonce) <= 32 and solved(challenge, nonce) else "wrong"
    return "ok" if age >= settings.CHALLENGE_WAIT_SECONDS else "early"


def passed(request: HttpRequest, *, now: float | None = None) -> bool:
    until = request.session.get(SESSION_PASSED)
    return bool(isinstance(until, int | float) and (time.time() if now is None else now) < until)


def api_response() -> JsonResponse:
    retry = min(60, settings.CHALLENGE_AUTO_SECONDS)
    response = JsonResponse(
        {
            "error": {
                "code": "challenge",
                "message": _("The service is under unusual load. Try again after the Retry-After delay."),
                "retry_after": retry,
            }
        },
        status=503,
    )
    response["Retry-After"] = str(retry)
    response["Cache-Control"] = "no-store"
    return response


class ChallengeMiddleware:
    """Before the waiting room: the booking flow's challenge while load is abnormal."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        kind = waitingroom._gated(request)
        if kind is None:
            return None
        count_request()
        if not active():
            return None
        if kind == "api":
            return api_response() if waitingroom.api_visitor(request) is not None else None
        if passed(request):
            return None
        target = request.get_full_path() if request.method == "GET" else reverse("booking:search")
        url = reverse("booking:challenge") + "?" + urlencode({"next": target})
        return HttpResponseRedirect(url, status=303 if request.method == "POST" else 302)


class ChallengeForm(forms.Form):
    challenge = forms.CharField(widget=forms.HiddenInput, max_length=400)
    nonce = forms.CharField(widget=forms.HiddenInput, required=False, max_length=32)
    next = forms.CharField(widget=forms.HiddenInput, required=False, max_length=2000)


ERRORS = {
    "early": gettext_lazy("Please wait a few more seconds, then select Continue again."),
    "wrong": gettext_lazy("The check did not succeed. Select Continue to try again."),
    "invalid": gettext_lazy("This check has expired. Select Continue to try again."),
}


def challenge_view(request: HttpRequest) -> HttpResponse:
    """GET: a fresh challenge; POST: its answer (a nonce, or none after the timed wait)."""
    source = request.POST if request.method == "POST" else request.GET
    target = waitingroom._safe_next(source.get("next"))
    if not active() or passed(request):
        return HttpResponseRedirect(target)
    visitor = waitingroom.page_visitor(request)
    error = None
    if request.method == "POST":
        form = ChallengeForm(request.POST)
        outcome = "invalid"
        if form.is_valid():
            outcome = check(form.cleaned_data["challenge"], form.cleaned_data["nonce"], visitor)
        if outcome == "ok":
            request.session[SESSION_PASSED] = time.time() + settings.CHALLENGE_PASS_SECONDS
            return HttpResponseRedirect(target, status=303)
        error = ERRORS[outcome]
        if outcome == "early" and form.is_valid():
            challenge = form.cleaned_data["challenge"]  # keep the time already waited
        else:
            challenge = issue(visitor)
    else:
        challenge = issue(visitor)
    context = {
        "form": ChallengeForm(initial={"challenge": challenge, "next": target}),
        "challenge": challenge,
        "bits": settings.CHALLENGE_BITS,
        "wait": settings.CHALLENGE_WAIT_SECONDS,
        "error": error,
    }
    response = render(request, "booking/challenge.html", context, status=400 if error else 200)
    response["Cache-Control"] = "no-store"
    return response
