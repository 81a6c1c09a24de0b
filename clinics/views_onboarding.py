"""Onboarding pages: the public registration request, the board's review queue, the invitation link.

The request form and the invitation page are public (the invitation's token is its credential, and
it changes nothing on GET: accepting is a POST). The review pages are for board administrators,
behind ``staff_required`` (signed in, second factor proven); anyone else gets a 404.
"""

from allauth.account.internal.flows.login import record_authentication
from allauth.account.utils import perform_login
from django.contrib import messages
from django.contrib.auth import logout
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_safe

from citizens.models import User
from config import ratelimit

from . import selectors_onboarding as selectors
from . import services_onboarding as services
from .access import staff_required
from .forms_onboarding import InvitationAccountForm, RegistrationForm
from .models import RegistrationRequest
from .views_board import board_review_post


@require_http_methods(["GET", "POST"])
def registration_new(request: HttpRequest) -> HttpResponse:
    form = RegistrationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # Counted only for complete requests: a person correcting their form is not slowed down.
        ratelimit.hit("clinic_registration", ratelimit.client_ip(request))
        data = form.cleaned_data
        try:
            services.registration_request_submit(
                name=data["name"],
                address=data["address"],
                city=data["city"],
                postal_code=data["postal_code"],
                phone=data["phone"],
                time_zone=data["time_zone"],
                gmf=data["gmf"],
                emr_product=data["emr_product"],
                admin_name=data["admin_name"],
                admin_email=data["admin_email"],
                practitioners=data["practitioners"],
                attested=data["attestation"],
                language=get_language() or "fr",
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("clinics:registration_sent")
    return render(
        request,
        "clinics/registration_new.html",
        {"form": form},
        status=422 if form.errors else 200,
    )


@require_safe
def registration_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "clinics/registration_sent.html")


def _board_admin(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # staff_required refused anonymous visitors
    if not selectors.is_board_admin(user):
        raise Http404
    return user


@require_safe
@staff_required
def registration_queue(request: HttpRequest) -> HttpResponse:
    _board_admin(request)
    status = request.GET.get("status", RegistrationRequest.Status.PENDING)
    if status not in RegistrationRequest.Status.values:
        status = RegistrationRequest.Status.PENDING
    rows = [
        (item, selectors.registration_flags(item)) for item in selectors.registration_queue(status=status)
    ]
    return render(
        request,
        "clinics/registration_queue.html",
        {"rows": rows, "status": status, "statuses": RegistrationRequest.Status.choices},
    )


@require_http_methods(["GET", "POST"])
@staff_required
def registration_review(request: HttpRequest, request_id: int) -> HttpResponse:
    user = _board_admin(request)
    item = selectors.registration_get(request_id=request_id)
    if item is None:
        raise Http404

    def approve() -> str:
        clinic = services.registration_approve(request_id=item.pk, by=user)
        return _("%(clinic)s is created; its administrator is invited by e-mail.") % {"clinic": clinic.name}

    def reject(reason: str) -> None:
        services.registration_reject(request_id=item.pk, by=user, reason=reason)

    review = board_review_post(
        request,
        approve=approve,
        reject=reject,
        queue_url=reverse("clinics:registration_queue"),
        review_url=reverse("clinics:registration_review", kwargs={"request_id": item.pk}),
    )
    if review.response is not None:
        return review.response
    return render(
        request,
        "clinics/registration_review.html",
        {
            "item": item,
            "practitioners": list(item.practitioners.all()),
            "flags": selectors.registration_flags(item),
            "reject_form": review.reject_form,
            "pending": item.status == RegistrationRequest.Status.PENDING,
        },
        status=review.status,
    )


@require_http_methods(["GET", "POST"])
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The invitation link: GET shows what it offers; a POST accepts it (single use).

    Nobody signed in and no account under the invited address: choose a password, the account is
    created and signed in, and the staff pages send it to the second-factor set-up. An account
    exists: sign in first (back here after). Signed in as someone else: sign out first.
    """
    found = services.invitation_get_valid(token=token)
    if found is None:
        return render(request, "clinics/invitation_invalid.html", status=404)
    user = request.user
    # A closed account (offboarded earlier) cannot sign in: the invitation reopens it instead.
    has_account = User.objects.filter(email__iexact=found.email, is_active=True).exists()
    signed_in_as_invited = user.is_authenticated and user.email.casefold() == found.email.casefold()
    form = None
    if not user.is_authenticated and not has_account:
        form = InvitationAccountForm(request.POST or None, email=found.email)
    if request.method == "POST":
        if request.POST.get("action") == "sign_out" and user.is_authenticated:
            logout(request)
            return redirect(request.path)
        try:
            if form is not None and form.is_valid():
                new_user = services.invitation_account_create(
                    token=token, password=form.cleaned_data["password1"]
                )
                # The password was just set on this page: that is how this session signed in.
                record_authentication(request, new_user, method="password", email=new_user.email)
                messages.success(
                    request,
                    _("Welcome to %(clinic)s. Now set up two-factor authentication to open the clinic pages.")
                    % {"clinic": found.clinic.name},
                )
                return perform_login(request, new_user, redirect_url=reverse("clinics:home"))
            if signed_in_as_invited:
                assert isinstance(user, User)
                services.invitation_accept(token=token, user=user)
                messages.success(
                    request, _("You now have access to %(clinic)s.") % {"clinic": found.clinic.name}
                )
                return redirect("clinics:home")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect(request.path)
    return render(
        request,
        "clinics/invitation.html",
        {
            "invitation": found,
            "form": form,
            "has_account": has_account,
            "signed_in_as_invited": signed_in_as_invited,
            "login_url": f"{reverse('account_login')}?{urlencode({'next': request.path})}",
        },
        status=422 if form is not None and form.errors else 200,
    )
