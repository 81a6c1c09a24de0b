"""The help desk page (booking.helpdesk): board administrators only, past a second factor."""

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from citizens.forms import AccessibleFormMixin, nam_error_message
from citizens.models import User
from citizens.nam import NamError, parse_nam
from clinics.access import staff_required
from clinics.models import BoardRole
from clinics.selectors import board_roles_for
from config import ratelimit

from .helpdesk import helpdesk_lookup
from .models import HelpdeskLookup


class HelpdeskForm(AccessibleFormMixin, forms.Form):
    by = forms.ChoiceField(label=_("Search by"), choices=HelpdeskLookup.By.choices, widget=forms.RadioSelect)
    value = forms.CharField(
        label=_("Reference or health insurance number"),
        max_length=20,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters"}),
    )
    why = forms.ChoiceField(label=_("Why you are looking"), choices=HelpdeskLookup.Why.choices)
    details = forms.CharField(
        label=_("Details of the request"),
        max_length=200,
        help_text=_(
            "E.g. the ticket number of the call. Never a name, a health insurance number or contact details."
        ),
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        value = str(data.get("value") or "")
        if data.get("by") == HelpdeskLookup.By.NAM:
            try:
                data["value"] = parse_nam(value).value
            except NamError as exc:
                self.add_error("value", nam_error_message(exc.code))
        elif data.get("by") == HelpdeskLookup.By.REFERENCE:
            data["value"] = value.strip().upper().replace(" ", "").replace("-", "")
            if len(data["value"]) != 10:
                self.add_error("value", _("A confirmation reference has 10 characters."))
        return data


@sensitive_post_parameters("value", "details")
@never_cache
@require_http_methods(["GET", "POST"])
@staff_required
def lookup(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)  # staff_required let only signed-in people through
    if BoardRole.Role.BOARD_ADMIN not in board_roles_for(user):
        return render(request, "clinics/not_staff.html", status=403)
    form = HelpdeskForm(request.POST or None)
    found = None
    if request.method == "POST" and form.is_valid():
        ratelimit.hit("helpdesk", f"u{user.pk}")
        data = form.cleaned_data
        found = helpdesk_lookup(
            user=user, by=data["by"], value=data["value"], why=data["why"], details=data["details"]
        )
        form = HelpdeskForm(initial={"by": data["by"], "why": data["why"]})
    status = 400 if form.is_bound and not form.is_valid() else 200
    return render(request, "booking/helpdesk.html", {"form": form, "found": found}, status=status)
