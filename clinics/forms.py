"""Clinic page forms. The agenda is a GET form: bookmarkable, works without JavaScript."""

import datetime

from django import forms
from django.utils.translation import gettext_lazy as _

from citizens.forms import AccessibleFormMixin, DateInput

from .models import Clinic, Practitioner
from .selectors import practitioners_of_clinic


class PractitionerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Practitioner) -> str:
        return obj.display_name


class AgendaForm(AccessibleFormMixin, forms.Form):
    date = forms.DateField(
        label=_("Date"),
        required=False,
        widget=DateInput(),
        error_messages={"invalid": _("Enter a real date in the format YYYY-MM-DD.")},
    )
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
