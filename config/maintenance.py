"""Maintenance mode: see docs/operations.md."""

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

CACHE_KEY = "maintenance"
MEMO_SECONDS = 3.0
_memo: tuple[float, "MaintenanceState"] | None = None


@dataclass(frozen=True)
class MaintenanceState:
    active: bool
    retry_after: int
    source: str = ""  # "setting" or "flag"


def maintenance_state(*, fresh: bool = False) -> MaintenanceState:
    """On when the setting says so, or when the runtime flag is set in the shared cache. Each process
    reads the flag at most every ``MEMO_SECONDS``; Redis down means the flag is off."""
    global _memo
    if getattr(settings, "MAINTENANCE_MODE", False):
        return MaintenanceState(True, getattr(settings, "MAINTENANCE_RETRY_AFTER", 900), "setting")
    now = time.monotonic()
    if not fresh and _memo is not None and now - _memo[0] < MEMO_SECONDS:
        return _memo[1]
    try:
        flag = cache.get(CACHE_KEY)
    except Exception:  # noqa: BLE001 - Redis down: bookings go on
        flag = None
    if isinstance(flag, dict):
        state = MaintenanceState(True, int(flag.get("retry_after") or 900), "flag")
    else:
        state = MaintenanceState(False, 0)
    _memo = (now, state)
    return state
