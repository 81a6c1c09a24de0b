"""The checks a waitlist request's input gets, with their messages: one copy for the web form and
the citizen API. The service (``services.waitlist_request_create``) enforces the same rules again as
errors, whoever calls it."""

from datetime import date, timedelta

from django.utils.translation import gettext_lazy as _

from ..selectors import MAX_DAYS_AHEAD
from ..sms import mobile_e164
from .models import WaitlistRequest


def window_errors(date_from: date | None, date_to: date | None, *, today: date) -> dict[str, str]:
    """Per-field messages for the window: not in the past, in order, at most MAX_DAYS_AHEAD away."""
    problems: dict[str, str] = {}
    if date_from and date_from < today:
        problems["date_from"] = str(_("This date is in the past. Choose today or a later date."))
    if date_from and date_to and date_to < date_from:
        problems["date_to"] = str(_("The end date must be on or after the start date."))
    elif date_to and date_to > today + timedelta(days=MAX_DAYS_AHEAD):
        problems["date_to"] = str(
            _("Slots are offered at most %(days)s days ahead.") % {"days": MAX_DAYS_AHEAD}
        )
    return problems


def contact_errors(channel: str | None, *, email: str, mobile: str) -> dict[str, str]:
    """Per-field messages for how to be told: an e-mail address, or a valid mobile number for SMS."""
    if channel == WaitlistRequest.Channel.EMAIL and not email:
        return {"email": str(_("Enter the e-mail address where we should write to you."))}
    if channel == WaitlistRequest.Channel.SMS and not mobile_e164(mobile or ""):
        return {"mobile": str(_("Enter a mobile number of 10 digits, for example 514 555-0123."))}
    return {}
