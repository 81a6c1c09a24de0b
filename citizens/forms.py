"""Identity forms: the health-insurance card, checked field by field before the registry."""

from datetime import date
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import Citizen, Dependant
from .nam import NamError, parse_nam

if TYPE_CHECKING:
    _FormBase = forms.BaseForm  # what the mixin is mixed into, for the type checker only
else:
    _FormBase = object


class AccessibleFormMixin(_FormBase):
    """Ties each field's error message to its input (aria-describedby), beside the hint."""

    def full_clean(self) -> None:
        super().full_clean()
        for name in self.errors:
            if name not in self.fields:
                continue
            bound = self[name]
            ids = [f"{bound.auto_id}_error"]
            if self.fields[name].help_text:
                ids.insert(0, f"{bound.auto_id}_helptext")
            self.fields[name].widget.attrs["aria-describedby"] = " ".join(ids)


NAM_MESSAGES = {
    "required": _("Enter your health insurance number."),
    "format": _("The health insurance number has 4 letters and 8 digits, for example TREM 5551 2314."),
    "birth_date": _("This health insurance number is not valid: check the digits of the birth date."),
}


def nam_error_message(code: str) -> str:
    return str(NAM_MESSAGES.get(code, NAM_MESSAGES["format"]))


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


class IdentifyForm(AccessibleFormMixin, forms.Form):
    first_name = forms.CharField(
        label=_("First name"), max_length=100, widget=forms.TextInput(attrs={"autocomplete": "given-name"})
    )
    last_name = forms.CharField(
        label=_("Last name"), max_length=100, widget=forms.TextInput(attrs={"autocomplete": "family-name"})
    )
    nam = forms.CharField(
        label=_("Health insurance number"),
        help_text=_("4 letters and 8 digits, as on your card, for example TREM 5551 2314."),
        max_length=20,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}
        ),
    )
    card_sequence = forms.RegexField(
        label=_("Sequence number"),
        help_text=_("The 2 digits printed beside the expiry date on your card."),
        regex=r"^\d{2}$",
        max_length=2,
        error_messages={"invalid": _("The sequence number has exactly 2 digits.")},
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    birth_date = forms.DateField(
        label=_("Date of birth"),
        help_text=_("Format: YYYY-MM-DD."),
        widget=DateInput(attrs={"autocomplete": "bday"}),
        error_messages={"invalid": _("Enter a real date in the format YYYY-MM-DD.")},
    )

    def clean_nam(self) -> str:
        try:
            return parse_nam(self.cleaned_data["nam"]).value
        except NamError as exc:
            raise forms.ValidationError(nam_error_message(exc.code), code=exc.code) from exc

    def clean_birth_date(self) -> date:
        value: date = self.cleaned_data["birth_date"]
        if value > timezone.localdate():
            raise forms.ValidationError(_("The date of birth cannot be in the future."))
        if value.year < 1900:
            raise forms.ValidationError(_("Enter a real date in the format YYYY-MM-DD."))
        return value


class DependantForm(IdentifyForm):
    """The dependant's own card details (checked like an identification), the relationship, and
    the holder's attestation that they may act for this person."""

    relationship = forms.ChoiceField(
        label=_("Your relationship with this person"),
        choices=Dependant.Relationship.choices,
        widget=forms.RadioSelect,
    )
    attestation = forms.BooleanField(
        label=_(
            "I attest that I am this person's parent, tutor, mandatary or caregiver as stated above, "
            "and that I may make appointments for them."
        ),
        error_messages={"required": _("Check the box to attest your relationship with this person.")},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The labels speak of "your card" for an identification; here it is the other person's.
        self.fields["nam"].help_text = _("4 letters and 8 digits, as on this person's card.")
        self.fields["card_sequence"].help_text = _(
            "The 2 digits printed beside the expiry date on their card."
        )
        for name in ("first_name", "last_name", "birth_date"):
            self.fields[name].widget.attrs["autocomplete"] = "off"


class PatientForm(AccessibleFormMixin, forms.Form):
    """Who an appointment is for: the identified person themself, or one of their dependants."""

    patient = forms.ChoiceField(
        label=_("Who is the appointment for?"), required=False, widget=forms.RadioSelect
    )

    def __init__(self, *args: Any, person: Citizen, dependants: list[Dependant], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast(forms.ChoiceField, self.fields["patient"])
        field.choices = [
            ("", _("Myself (%(name)s)") % {"name": person.first_name}),
            *[(str(d.pk), f"{d.citizen.first_name} {d.citizen.last_name}") for d in dependants],
        ]
