"""Account pages: an account holder links their health-insurance card once."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from config import ratelimit

from .forms import DependantForm, IdentifyForm
from .models import Citizen, User
from .selectors import dependant_get_for_guardian, dependants_of
from .services import (
    CardLinkedElsewhere,
    DependantRefused,
    IdentificationFailed,
    citizen_identify,
    citizen_link_account,
    dependant_add,
    dependant_remove,
)


class AuthenticatedHttpRequest(HttpRequest):
    user: User  # behind login_required


@sensitive_post_parameters("first_name", "last_name", "nam", "card_sequence", "birth_date")
@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def link_card(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = IdentifyForm(request.POST or None)
    failed = linked_elsewhere = False
    if request.method == "POST" and form.is_valid():
        try:
            citizen = citizen_identify(**form.cleaned_data, ip=ratelimit.client_ip(request))
            citizen_link_account(citizen=citizen, user=request.user)
        except IdentificationFailed:
            failed = True
        except CardLinkedElsewhere:
            linked_elsewhere = True
        else:
            messages.success(
                request, _("Your card is linked to your account. Your appointments appear here.")
            )
            return redirect("booking:mine")
    return render(
        request,
        "citizens/link_card.html",
        {"form": form, "failed": failed, "linked_elsewhere": linked_elsewhere},
        status=400 if request.method == "POST" else 200,
    )


# Why a verified card could not be added, for the page (the codes of DependantRefused).
REFUSALS = {
    "self": gettext_lazy("This is your own card: your appointments are already yours to manage."),
    "adult": gettext_lazy(
        "This person is 18 or older: a parent or tutor acts for a minor only. If you act for this adult, "
        "choose mandatary or caregiver."
    ),
    "already": gettext_lazy("This person is already in your list."),
    "too_many": gettext_lazy("You cannot add more people to your list. Remove someone first."),
    "relationship": gettext_lazy("Choose your relationship with this person."),
}


def _holder_card(request: AuthenticatedHttpRequest) -> Citizen | None:
    """The card linked to the signed-in account: dependants hang from it."""
    return Citizen.objects.filter(account=request.user).first()


@sensitive_post_parameters("first_name", "last_name", "nam", "card_sequence", "birth_date")
@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def dependants(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The people in the holder's care: the list, and adding one by verifying their card."""
    guardian = _holder_card(request)
    if guardian is None:
        messages.info(request, _("Link your own health insurance card first."))
        return redirect("citizens:link_card")
    form = DependantForm(request.POST or None)
    failed = False
    refused = ""
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            added = dependant_add(
                guardian=guardian,
                user=request.user,
                first_name=data["first_name"],
                last_name=data["last_name"],
                nam=data["nam"],
                card_sequence=data["card_sequence"],
                birth_date=data["birth_date"],
                relationship=data["relationship"],
                ip=ratelimit.client_ip(request),
            )
        except IdentificationFailed:
            failed = True
        except DependantRefused as exc:
            refused = str(REFUSALS.get(exc.code, REFUSALS["relationship"]))
        else:
            messages.success(
                request,
                _("%(name)s is added. You can now make appointments for them.")
                % {"name": added.citizen.first_name},
            )
            return redirect("citizens:dependants")
    return render(
        request,
        "citizens/dependants.html",
        {"form": form, "failed": failed, "refused": refused, "dependants": dependants_of(guardian=guardian)},
        status=400 if request.method == "POST" else 200,
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def dependant_remove_page(request: AuthenticatedHttpRequest, dependant_id: int) -> HttpResponse:
    """Confirm, then end the link. Someone else's dependant is not found (404)."""
    guardian = _holder_card(request)
    dependant = dependant_get_for_guardian(guardian=guardian, dependant_id=dependant_id) if guardian else None
    if guardian is None or dependant is None:
        raise Http404
    if request.method == "POST":
        dependant_remove(guardian=guardian, dependant_id=dependant.pk)
        messages.success(
            request,
            _("%(name)s is removed from your list. Their appointments stay booked.")
            % {"name": dependant.citizen.first_name},
        )
        return redirect("citizens:dependants")
    return render(request, "citizens/dependant_remove.html", {"dependant": dependant})
