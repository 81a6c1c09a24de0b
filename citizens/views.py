"""Account pages: an account holder links their health-insurance card once."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from config import ratelimit

from .forms import IdentifyForm
from .models import User
from .services import CardLinkedElsewhere, IdentificationFailed, citizen_identify, citizen_link_account


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
