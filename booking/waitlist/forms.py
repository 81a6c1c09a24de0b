"""The waitlist request form: the search's choices, plus how to be told."""

from datetime import timedelta
from typing import Any, cast

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from citizens.forms import AccessibleFormMixin, DateInput

from ..forms import SearchForm, _radius_choices
from ..models import Reason
from ..sms import sms_enabled
from .models import WaitlistRequest
from .rules import contact_errors, window_errors

DEFAULT_WINDOW_DAYS = 30


def _channel_choices() -> list[tuple[str, Any]]:
    choices: list[tuple[str, Any]] = [(WaitlistRequest.Channel.EMAIL, _("By e-mail"))]
    if sms_enabled():
        choices.append((WaitlistRequest.Channel.SMS, _("By text message")))
    return choices


class WaitlistForm(AccessibleFormMixin, forms.Form):
    path = forms.ChoiceField(label=_("Where"), choices=WaitlistRequest.Path.choices, widget=forms.RadioSelect)
    reason = forms.ChoiceField(label=_("Reason for the visit"), choices=Reason.choices)
    postal_code = forms.CharField(
        label=_("Postal code"),
        required=False,
        max_length=7,
        help_text=_(
            "For a clinic near a place. Format A1A 1A1. Leave empty to use the postal code on your file."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "postal-code", "autocapitalize": "characters"}),
    )
    radius_km = forms.TypedChoiceField(
        label=_("Distance"), coerce=int, initial=25, required=False, choices=_radius_choices
    )
    date_from = forms.DateField(
        label=_("From"),
        widget=DateInput(),
        error_messages={"invalid": _("Enter a real date in the format YYYY-MM-DD.")},
    )
    date_to = forms.DateField(
        label=_("To"),
        widget=DateInput(),
        help_text=_("Your request ends after this day."),
        error_messages={"invalid": _("Enter a real date in the format YYYY-MM-DD.")},
    )
    time_of_day = forms.ChoiceField(
        label=_("Time of day"),
        required=False,
        choices=[("", _("Any time")), *WaitlistRequest.TimeOfDay.choices],
    )
    channel = forms.ChoiceField(label=_("Tell me"), choices=_channel_choices, widget=forms.RadioSelect)
    email = forms.EmailField(
        label=_("E-mail"), required=False, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    mobile = forms.CharField(
        label=_("Mobile number"),
        required=False,
        max_length=20,
        help_text=_("For text messages. 10 digits, for example 514 555-0123."),
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
    )
    language = forms.ChoiceField(
        label=_("Language of messages"),
        choices=[("fr", "Français"), ("en", "English")],
        widget=forms.RadioSelect,
    )

    clean_postal_code = SearchForm.clean_postal_code

    @staticmethod
    def initial_from_search(params: Any, *, email: str, mobile: str, language: str) -> dict[str, Any]:
        """The search's choices (a GET query), with a default window of the next 30 days."""
        today = timezone.localdate()
        initial: dict[str, Any] = {
            "path": params.get("path") or WaitlistRequest.Path.NEAR,
            "reason": params.get("reason") or "",
            "postal_code": params.get("postal_code") or "",
            "radius_km": params.get("radius_km") or 25,
            "date_from": params.get("date_from") or today,
            "date_to": params.get("date_to") or today + timedelta(days=DEFAULT_WINDOW_DAYS),
            "time_of_day": params.get("time_of_day") or "",
            "channel": WaitlistRequest.Channel.EMAIL,
            "email": email,
            "mobile": mobile,
            "language": language,
        }
        return initial

    def clean(self) -> dict[str, Any]:
        data = cast(dict[str, Any], super().clean())
        problems = {
            **window_errors(data.get("date_from"), data.get("date_to"), today=timezone.localdate()),
            **contact_errors(
                data.get("channel"), email=data.get("email") or "", mobile=data.get("mobile") or ""
            ),
        }
        for name, message in problems.items():
            self.add_error(name, message)
        return data
