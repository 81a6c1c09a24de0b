"""Pure arithmetic of the figures (docs/metrics.md): lead-time bins, percentiles, rates, suppression.

Kept apart from the database so that the aggregation, the pages, the exports and the API compute
every figure the same way.
"""

import math
import operator
from collections.abc import Iterable, Mapping, Sequence

# Lead time (booking → appointment start) in whole hours, binned: one bin per hour below 48 hours,
# one per day from 2 to 59 days, then one bin for 60 days and more. A bin is named by its lower bound.
LEAD_BINS: tuple[int, ...] = (*range(48), *(24 * d for d in range(2, 60)), 24 * 60)

# Cells under this count are shown as "<5" everywhere (pages, exports, API).
SUPPRESS_BELOW = 5
SUPPRESSED = "<5"

# Cancellation timing: how long before the appointment start it was cancelled.
TIMING_BUCKETS = ("under_24h", "1_to_7_days", "over_7_days", "unknown")


def lead_bin(hours: float) -> int:
    """The index in ``LEAD_BINS`` of a lead time; negative lead times (entered after the fact) count
    as zero."""
    whole = max(0, math.floor(hours))
    if whole < 48:
        return whole
    days = whole // 24
    return 48 + min(days, 60) - 2


def empty_hist() -> list[int]:
    return [0] * len(LEAD_BINS)


def hist_add(total: list[int], other: Sequence[int]) -> list[int]:
    total[:] = map(operator.add, total, other)
    return total


def percentile_hours(hist: Sequence[int], fraction: float) -> int | None:
    """Nearest-rank percentile: the lower bound (hours) of the bin holding the ⌈fraction·N⌉-th
    smallest lead time; None when there is none."""
    total = sum(hist)
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for i, count in enumerate(hist):
        seen += count
        if seen >= rank:
            return LEAD_BINS[i]
    return LEAD_BINS[-1]  # pragma: no cover - the loop always reaches the rank


def timing_bucket(hours_before: float | None) -> str:
    if hours_before is None:
        return "unknown"
    if hours_before < 24:
        return "under_24h"
    if hours_before < 24 * 7:
        return "1_to_7_days"
    return "over_7_days"


def rate(numerator: int, denominator: int) -> float | None:
    """A share in percent with one decimal, or None when the denominator is zero."""
    if denominator == 0:
        return None
    return round(100 * numerator / denominator, 1)


def merge_counts(maps: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for m in maps:
        for key, count in m.items():
            total[key] = total.get(key, 0) + count
    return total


def is_small(count: int | None) -> bool:
    """A count from 1 to 4: shown as "<5". Zero says nothing about anyone and is shown."""
    return count is not None and 0 < count < SUPPRESS_BELOW


def suppress_count(count: int | None) -> int | str | None:
    return SUPPRESSED if is_small(count) else count


def suppress_rate(value: float | None, numerator: int, denominator: int) -> float | str | None:
    """A rate is withheld when its numerator is 1–4 or its denominator is under 5: either would let a
    reader work the small count back out."""
    if value is None:
        return None
    if is_small(numerator) or denominator < SUPPRESS_BELOW:
        return SUPPRESSED
    return value


def suppress_percentile(value: int | None, n: int) -> int | str | None:
    if value is None:
        return None
    return SUPPRESSED if n < SUPPRESS_BELOW else value
