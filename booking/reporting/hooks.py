"""Hooks for figures whose source is not built yet.

``waitlist_length_by_region``: the waitlist work (issue 5) replaces this body with a count of the
people waiting, per region code, at the end of ``week``. Until then it returns None and the
dashboard shows the figure as "not available yet" (``DemandWeek.waitlist_length`` stays empty).
"""

from datetime import date


def waitlist_length_by_region(*, week: date) -> dict[str, int] | None:
    return None
