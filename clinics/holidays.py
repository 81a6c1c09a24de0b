"""Quebec's statutory holidays (jours fériés), which recurring slot templates skip by default.

The nine days of the Act respecting labour standards, on their calendar date: the clinic decides
whether it opens on a holiday (the template's "open anyway" dates), so no day is moved when a
holiday falls on a weekend. Easter Monday and Good Friday are both listed: employers choose one,
and clinics are usually closed on both.
"""

from datetime import date, timedelta

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous "Meeus/Jones/Butcher" computus)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_monday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(7 - first.weekday()) % 7 + 7 * (n - 1))


def quebec_holidays(year: int) -> dict[date, Promise]:
    """The statutory holidays of ``year``, each with its name, in date order."""
    easter = easter_sunday(year)
    may_25 = date(year, 5, 25)
    # National Patriots' Day: the Monday before May 25 (May 18–24).
    patriots = may_25 - timedelta(days=(may_25.weekday() or 7))
    days = {
        date(year, 1, 1): _("New Year's Day"),
        easter - timedelta(days=2): _("Good Friday"),
        easter + timedelta(days=1): _("Easter Monday"),
        patriots: _("National Patriots' Day"),
        date(year, 6, 24): _("Saint-Jean-Baptiste Day (Fête nationale)"),
        date(year, 7, 1): _("Canada Day"),
        _nth_monday(year, 9, 1): _("Labour Day"),
        _nth_monday(year, 10, 2): _("Thanksgiving"),
        date(year, 12, 25): _("Christmas Day"),
    }
    return dict(sorted(days.items()))


def holidays_between(first: date, last: date) -> dict[date, Promise]:
    """The statutory holidays from ``first`` to ``last`` inclusive."""
    found: dict[date, Promise] = {}
    for year in range(first.year, last.year + 1):
        found.update({d: name for d, name in quebec_holidays(year).items() if first <= d <= last})
    return found
