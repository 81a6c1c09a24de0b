"""The citizen's own data (Law 25, docs/privacy.md): see it, download it, close the account.

Reached like "my appointments": a card identified in this browser or a signed-in account with its
card linked. Nothing personal in the URLs; the download is a POST; every read is audited.
"""

import json

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from citizens.models import Citizen, User

from . import privacy, session
from .models import CitizenDataEvent

EXPORT_FILENAME = "rendez-vous-sante-mes-donnees.json"


def _who(request: HttpRequest) -> tuple[Citizen | None, User | None]:
    """The citizen, and the account only when it is the one linked to that card."""
    citizen = session.current_citizen(request)
    user = request.user if isinstance(request.user, User) and request.user.is_authenticated else None
    if citizen is None or user is None or citizen.account_id != user.pk:
        user = None
    return citizen, user


def _identify_first(request: HttpRequest, here: str) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("citizens:link_card")
    messages.info(request, _("Please identify yourself with your health insurance card first."))
    return redirect(f"{reverse('booking:identify')}?next={reverse(here)}")


@never_cache
@require_http_methods(["GET", "POST"])
def my_data(request: HttpRequest) -> HttpResponse:
    """GET: the page, human readable. POST: the same data as a JSON file (an attachment)."""
    citizen, user = _who(request)
    if citizen is None:
        return _identify_first(request, "booking:my_data")
    data = privacy.citizen_data(citizen=citizen, user=user)
    if request.method == "POST":
        privacy.citizen_data_audit(
            citizen=citizen, user=user, data=data, action=CitizenDataEvent.Action.EXPORT
        )
        response = HttpResponse(
            json.dumps(data, ensure_ascii=False, indent=2), content_type="application/json; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{EXPORT_FILENAME}"'
        response["X-Content-Type-Options"] = "nosniff"
        return response
    privacy.citizen_data_audit(citizen=citizen, user=user, data=data, action=CitizenDataEvent.Action.VIEW)
    return render(request, "booking/my_data.html", {"data": data, "has_account": user is not None})


class CloseAccountForm(forms.Form):
    confirm = forms.BooleanField(
        label=gettext_lazy("I understand: my future appointments will be cancelled and my account closed."),
        error_messages={
            "required": gettext_lazy("Check the box to confirm that you want to close your account.")
        },
    )
    password = forms.CharField(
        label=gettext_lazy("Your password"),
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        required=False,
    )

    def __init__(self, *args: object, user: User | None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.user = user
        if user is None:
            del self.fields["password"]  # a card identification is proof enough (30 minutes at most)
        else:
            self.fields["password"].required = True
            self.fields["password"].error_messages["required"] = _("Enter your password to confirm.")

    def clean_password(self) -> str:
        password: str = self.cleaned_data.get("password") or ""
        if self.user is not None and not self.user.check_password(password):
            raise forms.ValidationError(_("This password is not correct."), code="password")
        return password


REFUSALS = {
    "too_late": gettext_lazy(
        "Some appointments can no longer be cancelled online. Call the clinic to cancel them, then close "
        "your account."
    ),
    "changed": gettext_lazy(
        "An appointment was booked while your account was being closed, so it was not closed. Check "
        "your appointments, then try again."
    ),
    "sign_in": gettext_lazy("Your card is linked to an account: sign in to your account to close it."),
    "staff": gettext_lazy(
        "This account is also used for clinic or board work: it cannot be closed here. Ask your "
        "administrator."
    ),
}


@sensitive_post_parameters("password")
@never_cache
@require_http_methods(["GET", "POST"])
def close_account(request: HttpRequest) -> HttpResponse:
    """Confirm, then close: what happens is said on the page before anything is done."""
    citizen, user = _who(request)
    if citizen is None:
        return _identify_first(request, "booking:close_account")
    now = timezone.now()
    refused: privacy.CloseRefused | None = None
    try:
        to_cancel = privacy.close_check(citizen=citizen, user=user, now=now)
    except privacy.CloseRefused as exc:
        refused, to_cancel = exc, []
    form = CloseAccountForm(request.POST or None, user=user)
    status = 200
    if request.method == "POST":
        status = 400
        if refused is None and form.is_valid():
            try:
                privacy.account_close(citizen=citizen, user=user, now=now)
            except privacy.CloseRefused as exc:
                refused = exc
                status = 409
            else:
                logout(request)  # ends this session; the new password hash ends the others
                session.citizen_sign_out(request)
                messages.success(
                    request,
                    _(
                        "Your account is closed. Your future appointments are cancelled and your "
                        "contact details erased. A confirmation is on its way to your e-mail address, "
                        "if you gave one."
                    ),
                )
                return redirect("booking:home")
        elif refused is not None:
            status = 409
    return render(
        request,
        "booking/close_account.html",
        {
            "form": form,
            "to_cancel": to_cancel,
            "refused": refused,
            "refusal": REFUSALS.get(refused.code, "") if refused else "",
            "has_account": user is not None,
            "dependants": citizen.dependant_links.count(),
        },
        status=status,
    )
