"""``{% emr_notice clinic %}``: the clinic agenda's link to its EMR page, and a notice while agenda
conflicts wait. A template tag, so that ``clinics`` (a domain app) never imports ``sync``; the page
that uses it has already checked the person's access to ``clinic``."""

from typing import Any

from django import template

from ..conflicts import conflicts_open_count

register = template.Library()


@register.inclusion_tag("sync/_emr_notice.html")
def emr_notice(clinic: Any) -> dict[str, Any]:
    if not clinic.uses_emr:
        return {"clinic": clinic, "uses_emr": False, "open_conflicts": 0}
    return {"clinic": clinic, "uses_emr": True, "open_conflicts": conflicts_open_count(clinic_id=clinic.pk)}
