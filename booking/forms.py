"""Citizen page forms: every field validated with a clear message in the current language."""

import re
from datetime import timedelta
from typing import Any, cast

from django import forms
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from citizens.forms import AccessibleFormMixin, DateInput, IdentifyForm, nam_error_message
from citizens.nam import NamError, parse_nam

from .models import Appointment, Modality, Reason
from .selectors import MAX_DAYS_AHEAD, RADII_KM, TIME_OF_DAY, Path, fsa_get


def _radius_choices() -> list[tuple[int, str]]:
    # A callable, evaluated at render time in the active language.
    return [(r, _("Within %(km)s km") % {"km": r}) for r in RADII_KM]


def _blank_choice(choices: list[tuple[str, Any]], label: Promise) -> list[tuple[str, Any]]:
    return [("", label), *choices]


def postal_code_fsa(value: str) -> str:
    """A Quebec postal code (A1A 1A1 or its first 3 characters) to its known FSA, "" for nothing;
    ``forms.ValidationError`` otherwise. Shared by the search, the waitlist form and the API."""
    raw = value.upper().replace(" ", "").replace("-", "")
    if not raw:
        return ""
    if not re.fullmatch(r"[A-Z]\d[A-Z](\d[A-Z]\d)?", raw):
        raise forms.ValidationError(_("Enter a postal code in the format A1A 1A1."))
    if raw[0] not in "GHJ" or fsa_get(raw[:3]) is None:
        raise forms.ValidationError(
            _("We do not know the postal code %(code)s in Quebec. Check it (format A1A 1A1).")
            % {"code": raw[:3] + (" " + raw[3:] if len(raw) > 3 else "")}
        )
    return raw[:3]


class SearchForm(AccessibleFormMixin, forms.Form):
    """GET form: bookmarkable, works without JavaScript."""

    path = forms.ChoiceField(
        label=_("Where"),
        choices=[
            (Path.MINE, _("With my family doctor")),
            (Path.GMF, _("In my family doctor's GMF")),
            (Path.NEAR, _("At a clinic near a place I choose")),
        ],
        widget=forms.RadioSelect,
    )
    reason = forms.ChoiceField(label=_("Reason for the visit"), choices=Reason.choices)
    postal_code = forms.CharField(
        label=_("Postal code"),
        required=False,
        max_length=7,
        help_text=_("Format A1A 1A1. Leave empty to use the postal code on your file."),
        widget=forms.TextInput(attrs={"autocomplete": "postal-code", "autocapitalize": "characters"}),
    )
    radius_km = forms.TypedChoiceField(
        label=_("Distance"),
        coerce=int,
        initial=25,
        required=False,
        choices=_radius_choices,
    )
    sort = forms.ChoiceField(
        label=_("Sort by"),
        required=False,
        initial="soonest",
        choices=[("soonest", _("Soonest")), ("nearest", _("Nearest"))],
    )
    date_from = forms.DateField(
        label=_("From"),
        required=False,
        widget=DateInput(),
        error_messages={"invalid": _("Enter a real date in the format YYYY-MM-DD.")},
    )
    date_to = forms.DateField(
        label=_("To"),
        required=False,
        widget=DateInput(),
        error_messages={"invalid": _("Enter a real date in the format YYYY-MM-DD.")},
    )
    time_of_day = forms.ChoiceField(
        label=_("Time of day"),
        required=False,
        choices=_blank_choice(
            [("morning", _("Morning")), ("afternoon", _("Afternoon")), ("evening", _("Evening"))],
            _("Any time"),
        ),
    )
    modality = forms.ChoiceField(
        label=_("Type of appointment"), required=False, choices=_blank_choice(Modality.choices, _("Any type"))
    )
    language = forms.ChoiceField(
        label=_("Practitioner's language"),
        required=False,
        choices=[("", _("Any language")), ("fr", _("French")), ("en", _("English")), ("es", _("Spanish"))],
    )
    page = forms.IntegerField(required=False, min_value=1, max_value=50, widget=forms.HiddenInput)

    def clean_postal_code(self) -> str:
        return postal_code_fsa(self.cleaned_data.get("postal_code") or "")

    def clean(self) -> dict[str, Any]:
        data = cast(dict[str, Any], super().clean())  # BaseForm.clean returns cleaned_data, never None
        today = timezone.localdate()
        date_from, date_to = data.get("date_from"), data.get("date_to")
        if date_from and date_from < today:
            self.add_error("date_from", _("This date is in the past. Choose today or a later date."))
        if date_to and date_to < today:
            self.add_error("date_to", _("This date is in the past. Choose today or a later date."))
        if date_from and date_to and date_to < date_from:
            self.add_error("date_to", _("The end date must be on or after the start date."))
        if date_to and date_to > today + timedelta(days=MAX_DAYS_AHEAD):
            self.add_error(
                "date_to", _("Slots are offered at most %(days)s days ahead.") % {"days": MAX_DAYS_AHEAD}
            )
        if data.get("time_of_day") and data["time_of_day"] not in TIME_OF_DAY:
            self.add_error("time_of_day", _("Choose a time of day from the list."))
        return data


class ConfirmForm(AccessibleFormMixin, forms.Form):
    reason = forms.ChoiceField(label=_("Reason for the visit"), choices=Reason.choices)
    email = forms.EmailField(
        label=_("E-mail for the confirmation"),
        required=False,
        help_text=_("We send the confirmation and a calendar file there. Optional."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    language = forms.ChoiceField(
        label=_("Language of messages"),
        choices=[("fr", "Français"), ("en", "English")],
        widget=forms.RadioSelect,
    )
    hold_token = forms.CharField(widget=forms.HiddenInput, max_length=64)


class CancelForm(AccessibleFormMixin, forms.Form):
    reason = forms.ChoiceField(
        label=_("Why are you cancelling?"),
        # "Moved to another time" is recorded by rescheduling; the clinic's reasons are the clinic's.
        choices=[c for c in Appointment.CancelReason.choices if c[0] in Appointment.CITIZEN_CANCEL_REASONS],
        widget=forms.RadioSelect,
        help_text=_("Your answer helps clinics offer the time to someone else."),
    )


class FindForm(AccessibleFormMixin, forms.Form):
    reference = forms.CharField(
        label=_("Confirmation reference"),
        max_length=14,
        help_text=_("10 characters, in your confirmation e-mail."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters"}),
    )
    nam = IdentifyForm.base_fields["nam"]

    def clean_nam(self) -> str:
        try:
            return parse_nam(self.cleaned_data["nam"]).value
        except NamError as exc:
            raise forms.ValidationError(nam_error_message(exc.code), code=exc.code) from exc
