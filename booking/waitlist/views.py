"""Waitlist pages: ask to be told, withdraw, and the offer's one-step confirmation page."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from citizens.services import citizen_update_contact
from config import ratelimit

from .. import errors, patients, session
from . import selectors, services
from .forms import WaitlistForm
from .models import WaitlistOffer


@never_cache
@require_http_methods(["GET", "POST"])
def waitlist_new(request: HttpRequest) -> HttpResponse:
    citizen = session.current_citizen(request)
    if citizen is None:
        messages.info(request, _("Please identify yourself with your health insurance card first."))
        return redirect(f"{reverse('booking:identify')}?next={reverse('booking:search')}")
    # For one of the citizen's dependants (``patient``, carried over from the search's query):
    # their own doctor, GMF and limits; the offers come to the citizen. Anyone else's: 404.
    try:
        patient, dependant = patients.patient_resolve(
            citizen=citizen, dependant_id=request.GET.get("patient")
        )
    except patients.PatientNotFound as exc:
        raise Http404 from exc
    initial = WaitlistForm.initial_from_search(
        request.GET,
        email=citizen.email,
        mobile=citizen.mobile,
        language=citizen.preferred_language or translation.get_language() or "fr",
    )
    form = WaitlistForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        ratelimit.hit_with_ip("search", f"c{citizen.pk}", request)
        citizen_update_contact(
            citizen=citizen,
            email=data["email"] or citizen.email,
            mobile=data["mobile"] or citizen.mobile,
            language=data["language"],
        )
        try:
            services.waitlist_request_create(
                citizen=patient,
                requested_by=citizen if dependant else None,
                path=data["path"],
                reason=data["reason"],
                date_from=data["date_from"],
                date_to=data["date_to"],
                time_of_day=data.get("time_of_day") or "",
                fsa=data.get("postal_code") or "",
                radius_km=data.get("radius_km") or 25,
                channel=data["channel"],
                language=data["language"],
            )
        except errors.ApplicationError as exc:
            form.add_error(None, str(exc.message))
        else:
            messages.success(
                request,
                _("You are on the waiting list. We will write to you as soon as a matching time opens."),
            )
            return redirect("booking:mine")
    return render(
        request,
        "booking/waitlist/new.html",
        {
            "form": form,
            "citizen_fsa": patient.fsa,
            "dependant": dependant,
            "offer_minutes": services.offer_seconds() // 60,
        },
        status=400 if form.is_bound and not form.is_valid() else 200,
    )


@require_POST
def waitlist_withdraw(request: HttpRequest, request_id: int) -> HttpResponse:
    citizen = session.current_citizen(request)
    if citizen is None:
        return redirect(f"{reverse('booking:identify')}?next={reverse('booking:mine')}")
    try:
        services.waitlist_request_withdraw(citizen=citizen, request_id=request_id)
    except errors.WaitlistRequestNotFound as exc:
        raise Http404 from exc
    messages.success(request, _("Your waiting-list request is withdrawn."))
    return redirect("booking:mine")


@never_cache
@require_http_methods(["GET", "POST"])
def waitlist_offer(request: HttpRequest, token: str) -> HttpResponse:
    """The offer's link: the GET only shows the time (mail scanners follow links); booking or
    declining is a POST with the same single-use token."""
    offer = selectors.waitlist_offer_for_token(token)
    if offer is None:
        return render(request, "booking/waitlist/offer_invalid.html", status=404)
    error: errors.ApplicationError | None = None
    if request.method == "POST":
        ratelimit.hit_with_ip("book", f"o{offer.pk}", request)
        try:
            if request.POST.get("action") == "decline":
                services.waitlist_offer_decline(token=token)
                messages.success(
                    request,
                    _("You declined this time. It goes to the next person; your request keeps waiting."),
                )
                return redirect("booking:waitlist_offer", token=token)
            appointment = services.waitlist_offer_accept(token=token)
        except errors.ApplicationError as exc:
            error = exc
            offer.refresh_from_db()
        else:
            session.found_remember(request, appointment.pk)
            messages.success(request, _("Your appointment is booked. A confirmation is on its way."))
            return redirect("booking:appointment", appointment_id=appointment.pk)
    is_open = offer.status == WaitlistOffer.Status.OFFERED and offer.expires_at > timezone.now()
    return render(
        request,
        "booking/waitlist/offer.html",
        {"offer": offer, "slot": offer.slot, "error": error, "is_open": is_open},
        status=error.status if error else 200,
    )
