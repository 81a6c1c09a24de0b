"""The gate in front of every staff page: signed in, on staff, and past a second factor.

Staff read citizens' personal data, so a password alone never opens a clinic page. ``staff_required``
checks, in order:

1. signed in (else allauth's sign-in page, back here after);
2. an active clinic membership or board role (else a 403 page that says so: a citizen account
   that wandered here learns nothing about any clinic);
3. a TOTP or WebAuthn authenticator (else the TOTP set-up page, with a message);
4. this session proved that second factor: signed in with it (allauth's login stage), re-verified
   with it, or set it up after signing in (setting up a TOTP means typing a code from it). A session
   opened some other way is sent to allauth's MFA re-authentication page.

Which clinic a person may see is not decided here but by ``selectors.clinic_get_for_staff``.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from .selectors import is_staff_member

SECOND_FACTORS = (Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)


def mfa_enabled(user: Any) -> bool:
    return Authenticator.objects.filter(user_id=user.pk, type__in=SECOND_FACTORS).exists()


def mfa_proven_in_session(request: HttpRequest) -> bool:
    records = get_authentication_records(request, request.user)
    if any(record.get("method") == "mfa" for record in records):
        return True
    signed_in_at = min((float(record.get("at", 0)) for record in records), default=None)
    if signed_in_at is None:
        return False
    # Set up during this session, after signing in: activation itself checked a code from it.
    return any(
        created.timestamp() >= signed_in_at
        for created in Authenticator.objects.filter(
            user_id=request.user.pk, type__in=SECOND_FACTORS
        ).values_list("created_at", flat=True)
    )


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_staff_member(user):
            return render(request, "clinics/not_staff.html", status=403)
        if not mfa_enabled(user):
            messages.warning(
                request,
                _(
                    "Clinic pages show patients' personal information: set up two-factor "
                    "authentication first, then come back."
                ),
            )
            return _redirect_with_next("mfa_activate_totp", request)
        if not mfa_proven_in_session(request):
            messages.info(request, _("Confirm it is you with your second factor to open the clinic pages."))
            return _redirect_with_next("mfa_reauthenticate", request)
        response = view(request, *args, **kwargs)
        # Pages carry patients' names: never kept by a shared browser's cache or a proxy.
        response["Cache-Control"] = "no-store, private"
        return response

    return wrapper


def _redirect_with_next(url_name: str, request: HttpRequest) -> HttpResponse:
    return redirect(f"{reverse(url_name)}?{urlencode({'next': request.get_full_path()})}")
