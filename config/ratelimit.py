"""Fixed-window rate limits on the shared cache (Redis in production and tests).

Limits slow abusers down; they never lock a person out for long: a window is at most a few minutes,
and the answer says when to retry. Settings: ``RATE_LIMITS = {"name": "count/seconds"}``.

When Redis is unreachable the limits fail open (the request goes through and a warning is logged):
Redis holds nothing that cannot be lost, and citizens must keep booking through its outage.
"""

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
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


def _redis(backend: RedisCache) -> Any:
    """The backend's Redis client, made once per backend instance (per thread): Django's
    ``get_client`` builds a new client, with its table of response callbacks, at every call."""
    client = getattr(backend, "_ratelimit_client", None)
    if client is None:
        client = backend._cache.get_client(write=True)
        backend._ratelimit_client = client  # type: ignore[attr-defined]
    return client


def _incr_many(windows: list[tuple[str, int]]) -> list[int]:
    """Count one attempt in each (key, period) window; the new counts, in order."""
    backend = caches["default"]  # ``cache`` is a proxy: isinstance() must see the backend itself
    if isinstance(backend, RedisCache):
        # One round trip for every counter (INCRBY, and EXPIRE only when the key has none) instead
        # of add, exists and incr for each: the booking path counts two (the address, the citizen).
        keys = [backend.make_and_validate_key(key) for key, _ in windows]
        pipe = _redis(backend).pipeline(transaction=False)
        for full_key, (_, period) in zip(keys, windows, strict=True):
            pipe.incrby(full_key, 1)
            pipe.expire(full_key, period + 1, nx=True)
        replies = pipe.execute()
        return [int(replies[2 * i]) for i in range(len(windows))]
    return [_incr_one(key, period) for key, period in windows]


def _incr(key: str, period: int) -> int:
    """Count one in the (key, period) window; the new count (booking.challenge counts with it)."""
    return _incr_many([(key, period)])[0]


def _incr_one(key: str, period: int) -> int:
    if cache.add(key, 1, timeout=period + 1):
        return 1
    try:
        return cache.incr(key, 1)
    except ValueError:  # the key expired between add and incr
        cache.add(key, 1, timeout=period + 1)
        return 1


def _hit_all(rules: list[tuple[str, str]]) -> None:
    """Count one attempt under each (limit name, identifier), in one round trip; raise
    RateLimited for the first limit passed, as if they were counted one after the other (the
    ones after it are taken back: they were not reached)."""
    if not settings.RATE_LIMIT_ENABLED:
        return
    rules = [(name, ident) for name, ident in rules if ident]
    if not rules:
        return
    windows = [_window(name, ident) for name, ident in rules]
    try:
        counts = _incr_many([(key, period) for key, _limit, period, _retry in windows])
    except Exception:  # noqa: BLE001 - any cache failure: let the person through
        logger.warning("rate limit store unavailable; failing open", extra={"limit": rules[0][0]})
        return
    for position, ((name, _ident), (_key, limit, _period, retry_after), count) in enumerate(
        zip(rules, windows, counts, strict=True)
    ):
        if count > limit:
            for later_key, *_ in windows[position + 1 :]:
                # Expired, or the cache is down: nothing to take back.
                with contextlib.suppress(Exception):
                    cache.decr(later_key)
            metrics.record_rate_limited(name)
            raise RateLimited(retry_after=retry_after)


def hit(name: str, ident: str, *, raise_when_over: bool = True) -> None:
    """Count one attempt for ``ident`` under limit ``name``; raise RateLimited when over."""
    if not settings.RATE_LIMIT_ENABLED or not ident:
        return
    if raise_when_over:
        _hit_all([(name, ident)])
        return
    key, _limit, period, _retry = _window(name, ident)
    try:
        _incr_many([(key, period)])
    except Exception:  # noqa: BLE001 - any cache failure: let the person through
        logger.warning("rate limit store unavailable; failing open", extra={"limit": name})


def hit_with_ip(name: str, ident: str, request: HttpRequest) -> None:
    """Count one attempt under ``<name>_ip`` for the client's address, then under ``name`` for
    ``ident`` (the citizen, the account): the address's limit is generous (many people share one
    address behind a hospital's or a school's NAT) and only slows a single abusive source down.
    Both counters in one round trip; the citizen's is not counted when the address is over."""
    _hit_all([(f"{name}_ip", client_ip(request)), (name, ident)])


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
