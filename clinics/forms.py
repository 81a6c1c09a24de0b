"""Clinic page forms. The agenda is a GET form: bookmarkable, works without JavaScript."""

import datetime
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.dates import WEEKDAYS as DJANGO_WEEKDAYS
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from booking.errors import ApplicationError
from booking.models import Appointment, Audience, Modality, Reason
from booking.services import local_to_utc
from citizens.forms import NAM_MESSAGES, AccessibleFormMixin, DateInput, nam_error_message
from citizens.nam import NamError, parse_nam

from .models import Clinic, Practitioner, PractitionerRole
from .selectors import practitioners_of_clinic


class PractitionerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Practitioner) -> str:
        return obj.display_name


DATE_INVALID = _("Enter a real date in the format YYYY-MM-DD.")
TIME_INVALID = _("Enter a time as HH:MM.")


def date_field(label: Any, *, required: Any = None, help_text: Any = "") -> forms.DateField:
    """A clinic-local day (a date input): ``required`` is the message when it is left empty, or
    None for an optional field; a malformed date gets the same message on every page."""
    messages = {"invalid": DATE_INVALID} | ({"required": required} if required else {})
    return forms.DateField(
        label=label, required=bool(required), help_text=help_text, widget=DateInput(), error_messages=messages
    )


def time_field(label: Any, *, required: Any, help_text: Any = "") -> forms.TimeField:
    """A clinic-local time of day (a time input), required, with ``required`` as its message."""
    return forms.TimeField(
        label=label,
        help_text=help_text,
        widget=TimeInput(),
        error_messages={"required": required, "invalid": TIME_INVALID},
    )


class AgendaForm(AccessibleFormMixin, forms.Form):
    date = date_field(_("Date"))
    view = forms.ChoiceField(
        label=_("Show"),
        required=False,
        choices=[("day", _("One day")), ("week", _("The week"))],
    )
    practitioner = PractitionerChoiceField(
        label=_("Practitioner"),
        required=False,
        queryset=Practitioner.objects.none(),
        empty_label=_("All practitioners"),
        error_messages={"invalid_choice": _("Choose a practitioner of this clinic.")},
    )

    def __init__(self, *args: object, clinic: Clinic, today: datetime.date, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.today = today
        self.fields["practitioner"].queryset = practitioners_of_clinic(clinic=clinic)  # type: ignore[attr-defined]

    def chosen_date(self) -> datetime.date:
        return (self.cleaned_data.get("date") if self.is_valid() else None) or self.today

    def chosen_view(self) -> str:
        return (self.cleaned_data.get("view") if self.is_valid() else None) or "day"

    def chosen_practitioner(self) -> Practitioner | None:
        return self.cleaned_data.get("practitioner") if self.is_valid() else None


# --- the web agenda's bulk changes: templates, blocked periods, the offer of free slots ---------

# Django's own day names (its catalogue translates them): a project msgid "Monday" would override
# the day names of every date the site formats.
WEEKDAYS = list(DJANGO_WEEKDAYS.items())
# format_lazy: the label is translated when the page renders, not once at import.
SLOT_LENGTHS = [(m, format_lazy(_("{minutes} minutes"), minutes=m)) for m in (10, 15, 20, 30, 45, 60)]
MAX_TEMPLATE_DAYS = 12 * 7


class TimeInput(forms.TimeInput):
    input_type = "time"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%H:%M", **kwargs)


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


class WallClockDateTimeField(forms.DateTimeField):
    """A clinic wall-clock date and time, kept naive: the page converts it with the clinic's time
    zone, which refuses a time that does not exist or happens twice, with its own message."""

    def to_python(self, value: Any) -> datetime.datetime | None:
        # In UTC every wall-clock reading exists exactly once, so the parent never refuses one.
        with timezone.override(datetime.UTC):
            result = super().to_python(value)
        return result.replace(tzinfo=None) if result is not None else None


def _dates_parse(text: str) -> set[datetime.date]:
    found = set()
    for part in text.replace(",", " ").replace(";", " ").split():
        try:
            found.add(datetime.date.fromisoformat(part))
        except ValueError:
            raise forms.ValidationError(
                _("“%(value)s” is not a date in the format YYYY-MM-DD."), params={"value": part}
            ) from None
    return found


class _PractitionerFormMixin(AccessibleFormMixin, forms.Form):
    practitioner = PractitionerChoiceField(
        label=_("Practitioner"),
        queryset=Practitioner.objects.none(),
        error_messages={
            "required": _("Choose a practitioner."),
            "invalid_choice": _("Choose a practitioner of this clinic."),
        },
    )

    def __init__(self, *args: Any, clinic: Clinic, today: datetime.date, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clinic = clinic
        self.today = today
        self.fields["practitioner"].queryset = practitioners_of_clinic(clinic=clinic)  # type: ignore[attr-defined]

    @property
    def role(self) -> PractitionerRole:
        return PractitionerRole.objects.select_related("clinic", "practitioner").get(
            clinic=self.clinic, practitioner=self.cleaned_data["practitioner"], is_active=True
        )


class SlotTemplateForm(_PractitionerFormMixin):
    """A recurring template: weekdays, hours, slot length, a date range of at most 12 weeks."""

    weekdays = forms.TypedMultipleChoiceField(
        label=_("Days of the week"),
        choices=WEEKDAYS,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one day of the week.")},
    )
    time_from = time_field(
        _("From"),
        required=_("Enter the time of the first slot."),
        help_text=_("Clinic time, for example 08:00."),
    )
    time_to = time_field(
        _("To"),
        required=_("Enter the time the last slot ends."),
        help_text=_("The last slot ends by this time."),
    )
    minutes = forms.TypedChoiceField(label=_("Slot length"), choices=SLOT_LENGTHS, coerce=int, initial=15)
    date_from = date_field(_("First day"), required=_("Enter the first day."))
    date_to = date_field(
        _("Last day"), required=_("Enter the last day."), help_text=_("At most 12 weeks after the first day.")
    )
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
    open_on = forms.CharField(
        label=_("Statutory holidays the clinic opens"),
        help_text=_(
            "Holidays are skipped. To open on one anyway, enter its date (YYYY-MM-DD); separate several "
            "dates with spaces."
        ),
        required=False,
        max_length=500,
    )
    expected = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def clean_date_from(self) -> datetime.date:
        value: datetime.date = self.cleaned_data["date_from"]
        if value < self.today:
            raise forms.ValidationError(_("The first day cannot be in the past."))
        return value

    def clean_open_on(self) -> set[datetime.date]:
        return _dates_parse(self.cleaned_data.get("open_on") or "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("date_from"), data.get("date_to")
        if first and last:
            if last < first:
                self.add_error("date_to", _("The last day comes before the first day."))
            elif (last - first).days >= MAX_TEMPLATE_DAYS:
                self.add_error(
                    "date_to", _("A template covers at most 12 weeks: choose an earlier last day.")
                )
        start, end, minutes = data.get("time_from"), data.get("time_to"), data.get("minutes")
        if start and end and minutes:
            span = datetime.datetime.combine(self.today, end) - datetime.datetime.combine(self.today, start)
            if span < datetime.timedelta(minutes=minutes):
                self.add_error("time_to", _("The hours must leave room for at least one slot."))
        return data

    def template_args(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "weekdays": data["weekdays"],
            "time_from": data["time_from"],
            "time_to": data["time_to"],
            "minutes": data["minutes"],
            "date_from": data["date_from"],
            "date_to": data["date_to"],
            "open_on": data["open_on"],
        }


class BlockPeriodForm(_PractitionerFormMixin):
    start = WallClockDateTimeField(
        label=_("From"),
        help_text=_("Clinic date and time, for example 2027-03-15 08:00."),
        widget=DateTimeLocalInput(),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        error_messages={
            "required": _("Enter when the period starts."),
            "invalid": _("Enter a date and time."),
        },
    )
    end = WallClockDateTimeField(
        label=_("To"),
        widget=DateTimeLocalInput(),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        error_messages={"required": _("Enter when the period ends."), "invalid": _("Enter a date and time.")},
    )
    note = forms.CharField(
        label=_("Reason (staff only)"),
        help_text=_("For example “sick leave”. Never shown to patients."),
        max_length=300,
        widget=forms.TextInput(),
        error_messages={"required": _("Enter the reason for the staff.")},
    )
    expected_free = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    expected_booked = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        tz = self.clinic.tz
        for name in ("start", "end"):
            value = data.get(name)
            if value is None:
                continue
            try:
                data[f"{name}_utc"] = local_to_utc(local=value, tz=tz)
            except ApplicationError as exc:
                self.add_error(name, str(exc.message))
        if start and end and end <= start:
            self.add_error("end", _("The end of the period must come after its start."))
        elif end and end.date() < self.today:
            self.add_error("end", _("This period is over: nothing is left to block."))
        return data


class OfferChangeForm(_PractitionerFormMixin):
    date_from = date_field(_("First day"), required=_("Enter the first day."))
    date_to = date_field(_("Last day"), required=_("Enter the last day."))
    audience = forms.ChoiceField(
        label=_("Who may book online"),
        choices=[("", _("Keep as it is")), *Audience.choices],
        widget=forms.RadioSelect,
        required=False,
        initial="",
    )
    reasons = forms.MultipleChoiceField(
        label=_("Reasons accepted"),
        help_text=_("Leave every box empty to keep each slot's reasons."),
        choices=Reason.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    expected = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("date_from"), data.get("date_to")
        if first and last and last < first:
            self.add_error("date_to", _("The last day comes before the first day."))
        elif last and last < self.today:
            self.add_error("date_to", _("These days are past: only future free slots can change."))
        if not data.get("audience") and not data.get("reasons"):
            raise forms.ValidationError(_("Choose a new audience, new reasons, or both."))
        return data

    def period(self) -> tuple[datetime.datetime, datetime.datetime]:
        """Local midnight of the first day to local midnight after the last, in UTC."""
        tz = self.clinic.tz
        first = datetime.datetime.combine(self.cleaned_data["date_from"], datetime.time.min, tzinfo=tz)
        after = datetime.datetime.combine(
            self.cleaned_data["date_to"] + datetime.timedelta(days=1), datetime.time.min, tzinfo=tz
        )
        return first.astimezone(datetime.UTC), after.astimezone(datetime.UTC)


# --- the phone channel ------------------------------------------------------------------------------


class PhoneFindForm(AccessibleFormMixin, forms.Form):
    """The caller's health-insurance number: POSTed, never in a URL; the citizen form's messages."""

    nam = forms.CharField(
        label=_("Caller's health insurance number"),
        max_length=20,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        error_messages={"required": NAM_MESSAGES["required"]},
    )

    def clean_nam(self) -> str:
        try:
            return parse_nam(self.cleaned_data.get("nam") or "").value
        except NamError as exc:
            raise forms.ValidationError(nam_error_message(exc.code), code=exc.code) from exc


class PhoneSlotFilterForm(AccessibleFormMixin, forms.Form):
    """Which free slots to list: one practitioner, one day (GET: no personal data in it)."""

    practitioner = PractitionerChoiceField(
        label=_("Practitioner"),
        required=False,
        queryset=Practitioner.objects.none(),
        empty_label=_("All practitioners"),
        error_messages={"invalid_choice": _("Choose a practitioner of this clinic.")},
    )
    date = date_field(_("Date"))

    def __init__(self, *args: object, clinic: Clinic, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["practitioner"].queryset = practitioners_of_clinic(clinic=clinic)  # type: ignore[attr-defined]

    def chosen(self) -> tuple[Practitioner | None, datetime.date | None]:
        if not self.is_valid():
            return None, None
        return self.cleaned_data.get("practitioner"), self.cleaned_data.get("date")


class PhoneBookForm(forms.Form):
    slot = forms.IntegerField(min_value=1)
    reason = forms.ChoiceField(
        label=_("Reason for the visit"),
        choices=Reason.choices,
        error_messages={"invalid_choice": _("Choose a reason for the visit from the list.")},
    )
    over_limit_reason = forms.CharField(
        label=_("Why book past the online limit"), max_length=300, required=False
    )


class AppointmentStatusForm(forms.Form):
    status = forms.ChoiceField(choices=[("arrived", "arrived"), ("noshow", "noshow")])


def clinic_cancel_reason_choices() -> list[tuple[str, Any]]:
    return [
        (code, label)
        for code, label in Appointment.CancelReason.choices
        if code in Appointment.CLINIC_CANCEL_REASONS
    ]


class StaffCancelForm(forms.Form):
    """Why the clinic cancels: recorded on the appointment and in the EMR change feed. A request
    without a reason (an older page still open) records "other" rather than refusing."""

    reason = forms.ChoiceField(choices=clinic_cancel_reason_choices, required=False)

    def clean_reason(self) -> str:
        return self.cleaned_data.get("reason") or Appointment.CancelReason.OTHER


class MoveForm(forms.Form):
    slot = forms.IntegerField(min_value=1)
