"""Fixed-window rate limits on the shared cache (Redis in production and tests).

Limits slow abusers down; they never lock a person out for long: a window is at most a few minutes,
and the answer says when to retry. Settings: ``RATE_LIMITS = {"name": "count/seconds"}``.
"""

import hashlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache


@dataclass(frozen=True)
class RateLimited(Exception):  # noqa: N818 - reads better at the call site
    retry_after: int


def _parse(rule: str) -> tuple[int, int]:
    count, _, seconds = rule.partition("/")
    return int(count), int(seconds)


def _key(name: str, ident: str, window_start: int) -> str:
    # The identifier (an IP, a NAM) is hashed: no personal data in cache keys.
    digest = hashlib.sha256(f"{settings.SECRET_KEY}:{ident}".encode()).hexdigest()[:24]
    return f"rl:{name}:{digest}:{window_start}"


def hit(name: str, ident: str, *, raise_when_over: bool = True) -> None:
    """Count one attempt for ``ident`` under limit ``name``; raise RateLimited when over."""
    if not settings.RATE_LIMIT_ENABLED or not ident:
        return
    limit, period = _parse(settings.RATE_LIMITS[name])
    now = int(time.time())
    window_start = now - now % period
    key = _key(name, ident, window_start)
    if cache.add(key, 1, timeout=period + 1):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=period + 1)
            count = 1
    if count > limit and raise_when_over:
        raise RateLimited(retry_after=max(1, window_start + period - now))


def peek_exceeded(name: str, ident: str) -> int | None:
    """Seconds to wait if ``ident`` is already over the limit, without counting an attempt."""
    if not settings.RATE_LIMIT_ENABLED or not ident:
        return None
    limit, period = _parse(settings.RATE_LIMITS[name])
    now = int(time.time())
    window_start = now - now % period
    count = cache.get(_key(name, ident, window_start)) or 0
    if count >= limit:
        return max(1, window_start + period - now)
    return None


def client_ip(request) -> str:
    # Behind the load balancer the first X-Forwarded-For hop is the client; the proxy overwrites it.
    if getattr(settings, "TRUST_X_FORWARDED_FOR", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR", "")
