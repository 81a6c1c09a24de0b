"""Figures whose source lives in another part of booking.

``waitlist_length_by_region``: the people waiting on the waitlist (booking.waitlist) at the end of
``week`` (or now, for the current week), per health region code.
"""

from datetime import date

from django.utils import timezone


def waitlist_length_by_region(*, week: date) -> dict[str, int] | None:
    from ..waitlist.selectors import waitlist_length_at
    from .aggregate import DEMAND_TZ, week_bounds

    _start, end = week_bounds(week, DEMAND_TZ)
    return waitlist_length_at(min(end, timezone.now()))
