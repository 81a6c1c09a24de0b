"""Forms of the clinic administrator's settings page and of the single-slot page of the agenda."""

import datetime
from datetime import timedelta
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from booking.models import Audience, Modality, Reason
from citizens.forms import AccessibleFormMixin

from .forms import SLOT_LENGTHS, _PractitionerFormMixin, date_field, time_field
from .forms_onboarding import phone_normalize
from .models import Clinic, ClinicMembership, Practitioner
from .selectors import practitioners_of_clinic

MIN_NOTICE_CHOICES = [
    (0, _("No minimum: up to the start")),
    (15, _("15 minutes")),
    (30, _("30 minutes")),
    (60, _("1 hour")),
    (120, _("2 hours")),
    (240, _("4 hours")),
    (720, _("12 hours")),
    (1440, _("1 day")),
    (2880, _("2 days")),
]


SPOKEN_LANGUAGES = [("fr", _("French")), ("en", _("English")), ("es", _("Spanish"))]


class ClinicSettingsForm(AccessibleFormMixin, forms.Form):
    phone = forms.CharField(
        label=_("Clinic phone number"),
        help_text=_("Shown to patients with their appointment, for example 514 555-0100."),
        max_length=25,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}),
        error_messages={"required": _("Enter the clinic's phone number.")},
    )
    min_notice = forms.TypedChoiceField(
        label=_("Minimum notice for online bookings"),
        help_text=_("Citizens cannot book online a slot that starts sooner than this."),
        coerce=int,
        choices=MIN_NOTICE_CHOICES,
        error_messages={"invalid_choice": _("Choose a minimum notice from the list.")},
    )
    cancel_cutoff_hours = forms.IntegerField(
        label=_("Online cancellation cut-off (hours)"),
        help_text=_(
            "Citizens may cancel online until this many hours before the appointment (0 to 24); "
            "later, they call the clinic."
        ),
        min_value=0,
        max_value=24,
        error_messages={
            "required": _("Enter a number of hours between 0 and 24."),
            "invalid": _("Enter a number of hours between 0 and 24."),
            "min_value": _("Enter a number of hours between 0 and 24."),
            "max_value": _("Enter a number of hours between 0 and 24."),
        },
    )
    reminder_three_days = forms.BooleanField(
        label=_("Also remind citizens three days before the appointment"),
        help_text=_("The reminder the day before is always sent."),
        required=False,
    )

    def __init__(self, *args: Any, practitioners: list[Practitioner] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Languages spoken, one group of boxes per practitioner of the clinic (citizens search by
        # their practitioner's language).
        self.practitioners = practitioners or []
        for practitioner in self.practitioners:
            name = f"languages_{practitioner.pk}"
            self.fields[name] = forms.MultipleChoiceField(
                label=practitioner.display_name,
                choices=SPOKEN_LANGUAGES,
                widget=forms.CheckboxSelectMultiple,
                error_messages={
                    "required": _("Tick at least one language."),
                    "invalid_choice": _("Tick languages from the list."),
                },
            )
            self.initial.setdefault(name, practitioner.language_codes)
        initial_minutes = self.initial.get("min_notice")
        if initial_minutes is not None and initial_minutes not in dict(MIN_NOTICE_CHOICES):
            # A value set elsewhere (the demo, an import) stays choosable.
            field = self.fields["min_notice"]
            field.choices = [*MIN_NOTICE_CHOICES, (initial_minutes, f"{initial_minutes} min")]  # type: ignore[attr-defined]

    def clean_phone(self) -> str:
        return phone_normalize(self.cleaned_data["phone"])

    def language_fields(self) -> list[forms.BoundField]:
        return [self[f"languages_{p.pk}"] for p in self.practitioners]

    def cleaned_languages(self) -> dict[int, str]:
        """Each practitioner's languages as ``Practitioner.languages`` stores them ("fr,en")."""
        order = [code for code, _label in SPOKEN_LANGUAGES]
        return {
            p.pk: ",".join(sorted(self.cleaned_data[f"languages_{p.pk}"], key=order.index))
            for p in self.practitioners
        }

    def cleaned_min_notice(self) -> timedelta:
        return timedelta(minutes=self.cleaned_data["min_notice"])


class SingleSlotForm(_PractitionerFormMixin):
    """One slot: practitioner, clinic-local day and time, length, reasons, audience, modality."""

    date = date_field(_("Day"), required=_("Enter the day of the slot."))
    time = time_field(
        _("Start time"),
        required=_("Enter the time the slot starts."),
        help_text=_("Clinic time, for example 08:00."),
    )
    minutes = forms.TypedChoiceField(label=_("Slot length"), choices=SLOT_LENGTHS, coerce=int, initial=15)
    reasons = forms.MultipleChoiceField(
        label=_("Reasons accepted"),
        choices=Reason.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one reason.")},
    )
    audience = forms.ChoiceField(
        label=_("Who may book online"),
        choices=Audience.choices,
        widget=forms.RadioSelect,
        initial=Audience.PUBLIC,
    )
    modality = forms.ChoiceField(
        label=_("Modality"), choices=Modality.choices, widget=forms.RadioSelect, initial=Modality.IN_PERSON
    )

    def clean_date(self) -> datetime.date:
        value: datetime.date = self.cleaned_data["date"]
        if value < self.today:
            raise forms.ValidationError(_("This day is past: choose today or a later day."))
        return value

    def local_start(self) -> datetime.datetime:
        return datetime.datetime.combine(self.cleaned_data["date"], self.cleaned_data["time"])


class StaffInviteForm(AccessibleFormMixin, forms.Form):
    """The Staff page's invitation: an e-mail address, a role, for a practitioner their doctor."""

    email = forms.EmailField(
        label=_("E-mail address"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
        error_messages={
            "required": _("Enter the person's e-mail address."),
            "invalid": _("Enter an e-mail address such as name@clinic.example."),
        },
    )
    role = forms.ChoiceField(
        label=_("Role"),
        choices=[("", "—"), *ClinicMembership.Role.choices],
        help_text=_(
            "Administrators manage staff and settings; receptionists run the agenda and the phone; "
            "practitioners read the agenda."
        ),
        error_messages={
            "required": _("Choose a role."),
            "invalid_choice": _("Choose a role."),
        },
    )
    practitioner = forms.ModelChoiceField(
        label=_("Practitioner (for a practitioner’s account)"),
        queryset=Practitioner.objects.none(),
        required=False,
        empty_label="—",
        error_messages={"invalid_choice": _("Choose a practitioner of this clinic.")},
    )
    language = forms.ChoiceField(
        label=_("Language of the invitation e-mail"),
        choices=[("fr", "Français"), ("en", "English")],
        initial="fr",
        error_messages={"required": _("Choose a language."), "invalid_choice": _("Choose a language.")},
    )

    def __init__(self, *args: Any, clinic: Clinic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["practitioner"].queryset = practitioners_of_clinic(clinic=clinic)  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("practitioner") and data.get("role") != ClinicMembership.Role.PRACTITIONER:
            self.add_error("practitioner", _("Only a practitioner's account is linked to a practitioner."))
        return data
