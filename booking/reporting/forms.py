"""The dashboard's filters (GET, bookmarkable): region, GMF, clinic and a range of weeks."""

from datetime import date, timedelta
from typing import Any, cast

from django import forms
from django.utils.translation import gettext_lazy as _

from citizens.forms import AccessibleFormMixin, DateInput
from clinics.models import Clinic, Gmf, Region

from .selectors import Filters, default_weeks

MAX_WEEKS = 53


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


class WeeksForm(AccessibleFormMixin, forms.Form):
    """A range of ISO weeks: any day picks its week (Monday to Sunday)."""

    week_from = forms.DateField(label=_("From the week of"), required=False, widget=DateInput())
    week_to = forms.DateField(label=_("To the week of"), required=False, widget=DateInput())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        default_from, default_to = default_weeks()
        week_from = _monday(data.get("week_from") or default_from)
        week_to = _monday(data.get("week_to") or default_to)
        if week_to < week_from:
            self.add_error("week_to", _("The last week comes after the first one."))
        elif (week_to - week_from).days // 7 >= MAX_WEEKS:
            self.add_error("week_to", _("Choose at most 53 weeks."))
        data["week_from"], data["week_to"] = week_from, week_to
        return data

    def weeks(self) -> tuple[date, date]:
        if not self.is_bound or not self.is_valid():
            return default_weeks()
        return self.cleaned_data["week_from"], self.cleaned_data["week_to"]


class FiltersForm(WeeksForm):
    field_order = ["region", "gmf", "clinic", "week_from", "week_to"]
    region = forms.ChoiceField(label=_("Health region"), required=False)
    gmf = forms.TypedChoiceField(
        label=_("GMF"),
        required=False,
        coerce=int,
        empty_value=None,
        help_text=_("The list shows the GMFs of the region chosen."),
    )
    clinic = forms.TypedChoiceField(
        label=_("Clinic"),
        required=False,
        coerce=int,
        empty_value=None,
        help_text=_("The list shows the clinics of the region or GMF chosen."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        all_regions = [("", _("All of Quebec"))]
        cast(forms.ChoiceField, self.fields["region"]).choices = all_regions + [
            (code, f"{code} {name}") for code, name in Region.objects.values_list("code", "name_fr")
        ]
        # GMFs and clinics are listed once a region or GMF narrows them (the province has hundreds of
        # GMFs and thousands of clinics); an id given alone (a bookmark, the API) stays valid.
        region = self.data.get("region") or ""
        gmf = self.data.get("gmf") or ""
        clinic = self.data.get("clinic") or ""
        gmfs = Gmf.objects.none()
        if region:
            gmfs = Gmf.objects.filter(region_id=region)
        elif gmf.isdigit():
            gmfs = Gmf.objects.filter(pk=int(gmf))
        cast(forms.ChoiceField, self.fields["gmf"]).choices = [("", _("All GMFs"))] + list(
            gmfs.order_by("name").values_list("pk", "name")
        )
        clinics = Clinic.objects.none()
        production = Clinic.objects.filter(is_sandbox=False)
        if gmf.isdigit():
            clinics = production.filter(gmf_id=int(gmf))
        elif region:
            clinics = production.filter(region_id=region)
        elif clinic.isdigit():
            clinics = production.filter(pk=int(clinic))
        cast(forms.ChoiceField, self.fields["clinic"]).choices = [("", _("All clinics"))] + list(
            clinics.order_by("name").values_list("pk", "name")
        )

    def filters(self) -> Filters:
        """The filters of a valid form (the defaults for an empty one)."""
        if not self.is_bound or not self.is_valid():
            week_from, week_to = default_weeks()
            return Filters(week_from=week_from, week_to=week_to)
        data = self.cleaned_data
        return Filters(
            week_from=data["week_from"],
            week_to=data["week_to"],
            region=data.get("region") or "",
            gmf_id=data.get("gmf"),
            clinic_id=data.get("clinic"),
        )
