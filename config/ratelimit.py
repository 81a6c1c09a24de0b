"""Fixed-window rate limits on the shared cache (Redis in production and tests).

Limits slow abusers down; they never lock a person out for long: a window is at most a few minutes,
and the answer says when to retry. Settings: ``RATE_LIMITS = {"name": "count/seconds"}``.

When Redis is unreachable the limits fail open (the request goes through and a warning is logged):
Redis holds nothing that cannot be lost, and citizens must keep booking through its outage.
"""

import hashlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest

from . import metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateLimited(Exception):  # noqa: N818 - reads better at the call site
    retry_after: int


def _parse(rule: str) -> tuple[int, int]:
    count, _, seconds = rule.partition("/")
    return int(count), int(seconds)


def _window(name: str, ident: str) -> tuple[str, int, int, int]:
    limit, period = _parse(settings.RATE_LIMITS[name])
    now = int(time.time())
    window_start = now - now % period
    # The identifier (an IP, a NAM) is hashed: no personal data in cache keys.
    digest = hashlib.sha256(f"{settings.SECRET_KEY}:{ident}".encode()).hexdigest()[:24]
    return f"rl:{name}:{digest}:{window_start}", limit, period, max(1, window_start + period - now)


def _incr(key: str, period: int, delta: int = 1) -> int:
    if isinstance(cache, RedisCache):
        # One round trip (INCRBY, and EXPIRE only when the key has none) instead of add, exists and
        # incr: three round trips per counted request on the booking path (docs/benchmarks.md).
        full_key = cache.make_and_validate_key(key)
        pipe = cache._cache.get_client(full_key, write=True).pipeline(transaction=False)
        pipe.incrby(full_key, delta)
        pipe.expire(full_key, period + 1, nx=True)
        count, _ = pipe.execute()
        return int(count)
    if cache.add(key, delta, timeout=period + 1):
        return delta
    try:
        return cache.incr(key, delta)
    except ValueError:  # the key expired between add and incr
        cache.add(key, delta, timeout=period + 1)
        return delta


def hit(name: str, ident: str, *, raise_when_over: bool = True) -> None:
    """Count one attempt for ``ident`` under limit ``name``; raise RateLimited when over."""
    if not settings.RATE_LIMIT_ENABLED or not ident:
        return
    key, limit, period, retry_after = _window(name, ident)
    try:
        count = _incr(key, period)
    except Exception:  # noqa: BLE001 - any cache failure: let the person through
        logger.warning("rate limit store unavailable; failing open", extra={"limit": name})
        return
    if count > limit and raise_when_over:
        metrics.record_rate_limited(name)
        raise RateLimited(retry_after=retry_after)


def hit_with_ip(name: str, ident: str, request: HttpRequest) -> None:
    """Count one attempt under ``<name>_ip`` for the client's address, then under ``name`` for
    ``ident`` (the citizen, the account): the address's limit is generous (many people share one
    address behind a hospital's or a school's NAT) and only slows a single abusive source down."""
    hit(f"{name}_ip", client_ip(request))
    hit(name, ident)


def undo(name: str, ident: str) -> None:
    """Take back one attempt counted by ``hit`` (a success that should not count)."""
    if not settings.RATE_LIMIT_ENABLED or not ident:
        return
    key, _limit, period, _retry = _window(name, ident)
    try:
        cache.decr(key)
    except Exception:  # noqa: BLE001 - expired key or cache down: nothing to take back
        return


def peek_exceeded(name: str, ident: str) -> int | None:
    """Seconds to wait if ``ident`` is already over the limit, without counting an attempt."""
    if not settings.RATE_LIMIT_ENABLED or not ident:
        return None
    key, limit, _period, retry_after = _window(name, ident)
    try:
        count = cache.get(key) or 0
    except Exception:  # noqa: BLE001
        logger.warning("rate limit store unavailable; failing open", extra={"limit": name})
        return None
    if count >= limit:
        metrics.record_rate_limited(name)
        return retry_after
    return None


def client_ip(request: HttpRequest) -> str:
    """The client's address. Behind ``TRUSTED_PROXY_COUNT`` proxies that each append the address
    they saw to X-Forwarded-For, the client is that many hops from the right; anything further
    left was written by the client and is ignored."""
    hops: int = settings.TRUSTED_PROXY_COUNT
    if hops > 0:
        forwarded: list[str] = [
            h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()
        ]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    remote: str = request.META.get("REMOTE_ADDR", "")
    return remote
