"""Display of reporting figures: counts, percentages and lead times, "<5" left as is."""

from typing import Any

from django import template
from django.template.defaultfilters import floatformat
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

register = template.Library()


@register.filter
def count(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(number_format(value, force_grouping=True))
    return str(value)


@register.filter
def percent(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float):
        return f"{floatformat(value, 1)} %"
    return str(value)


@register.filter
def lead_time(hours: Any) -> str:
    """Hours below two days, whole days above (the resolution of the lead-time bins)."""
    if hours is None:
        return "—"
    if not isinstance(hours, int | float):
        return str(hours)
    if hours < 48:
        return _("%(hours)s h") % {"hours": int(hours)}
    days = int(hours // 24)
    return ngettext("%(days)s day", "%(days)s days", days) % {"days": days}
