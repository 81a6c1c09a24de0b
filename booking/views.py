"""Citizen pages: thin callers of the services and selectors. Work without JavaScript."""

from datetime import UTC, datetime

from django.contrib import messages
from django.contrib.auth import logout
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from citizens.forms import IdentifyForm, PatientForm
from citizens.models import Citizen, Dependant
from citizens.selectors import citizen_care, dependants_of
from citizens.services import IdentificationFailed, citizen_identify, citizen_update_contact
from config import metrics, ratelimit

from . import errors, patients, selectors, services, session
from .forms import CancelForm, ConfirmForm, FindForm, SearchForm
from .models import Appointment, Reason, Slot
from .notifications import appointment_ics, cancel_token_read
from .waitlist import selectors as waitlist_selectors


def _steps(current: str) -> dict[str, str]:
    return {"step": current}


def _next_url(request: HttpRequest, default: str) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()}):
        return candidate
    return default


def _require_citizen(request: HttpRequest) -> Citizen | None:
    citizen = session.current_citizen(request)
    if citizen is None:
        messages.info(request, _("Please identify yourself with your health insurance card first."))
    return citizen


def _patient(
    citizen: Citizen, *, dependant_id: int | str | None = None, replacing: Appointment | None = None
) -> tuple[Citizen, Dependant | None]:
    """Who the page acts for: the appointment being moved fixes it; else a dependant id (404 when
    it is not one of the citizen's own) or, by default, the citizen themself."""
    try:
        if replacing is not None:
            return patients.patient_of_appointment(citizen=citizen, appointment=replacing)
        return patients.patient_resolve(citizen=citizen, dependant_id=dependant_id)
    except patients.PatientNotFound as exc:
        raise Http404 from exc


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "booking/home.html")


@sensitive_post_parameters("first_name", "last_name", "nam", "card_sequence", "birth_date", "email")
@never_cache
@require_http_methods(["GET", "POST"])
def identify(request: HttpRequest) -> HttpResponse:
    form = IdentifyForm(request.POST or None)
    failed = False
    if request.method == "POST" and form.is_valid():
        try:
            citizen = citizen_identify(**form.cleaned_data, ip=ratelimit.client_ip(request))
        except IdentificationFailed:
            failed = True
        else:
            session.citizen_sign_in(request, citizen)
            return redirect(_next_url(request, reverse("booking:search")))
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "booking/identify.html",
        {"form": form, "failed": failed, "next": _next_url(request, ""), **_steps("identify")},
        status=status,
    )


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    # Ends everything: the card identification, found appointments, and a signed-in account too.
    logout(request)
    session.citizen_sign_out(request)
    messages.success(request, _("Your session has ended. Your card details are no longer kept."))
    return redirect("booking:home")


@sensitive_post_parameters("first_name", "last_name", "nam", "card_sequence", "birth_date", "email")
@never_cache
def search(request: HttpRequest) -> HttpResponse:
    citizen = _require_citizen(request)
    if citizen is None:
        return redirect(f"{reverse('booking:identify')}?next={reverse('booking:search')}")
    replacing = _rescheduling(request, citizen)
    patient, dependant = _patient(citizen, dependant_id=request.GET.get("patient"), replacing=replacing)
    care = citizen_care(citizen=patient)  # the patient's own enrolment decides the paths
    default_path = selectors.Path.MINE if care.is_enrolled else selectors.Path.NEAR
    result = None
    search_error = ""
    if "reason" in request.GET:
        form = SearchForm(request.GET)
        if form.is_valid():
            data = form.cleaned_data
            ratelimit.hit_with_ip("search", f"c{citizen.pk}", request)
            query = selectors.SlotQuery(
                path=data["path"],
                reason=data["reason"],
                date_from=data.get("date_from"),
                date_to=data.get("date_to"),
                time_of_day=data.get("time_of_day") or "",
                modality=data.get("modality") or "",
                language=data.get("language") or "",
                fsa=data.get("postal_code") or "",
                radius_km=data.get("radius_km") or 25,
                sort=data.get("sort") or "soonest",
                page=data.get("page") or 1,
            )
            try:
                result = selectors.slot_search(citizen=patient, query=query)
            except selectors.SearchError as exc:
                search_error = exc.code
    else:
        form = SearchForm(initial={"path": default_path, "radius_km": 25, "sort": "soonest"})
    status = 400 if form.is_bound and not form.is_valid() else 200
    return render(
        request,
        "booking/search.html",
        {
            "replacing": replacing,
            "form": form,
            "result": result,
            "care": care,
            "search_error": search_error,
            "citizen_fsa": patient.fsa,
            "dependant": dependant,
            "patient_form": _patient_form(citizen, dependant) if replacing is None else None,
            "query_string": _query_without_page(request),
            **_steps("search"),
        },
        status=status,
    )


def _patient_form(citizen: Citizen, dependant: Dependant | None) -> PatientForm | None:
    """The "who is it for" choice, only for a citizen with dependants."""
    dependants = dependants_of(guardian=citizen)
    if not dependants:
        return None
    initial = {"patient": str(dependant.pk) if dependant else ""}
    return PatientForm(initial=initial, person=citizen, dependants=dependants)


def _query_without_page(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()


def _slot_or_404(slot_id: int) -> Slot:
    slot = (
        Slot.objects.select_related("clinic", "practitioner")
        .filter(pk=slot_id, clinic__is_sandbox=False)
        .first()
    )
    if slot is None:
        raise Http404
    return slot


@sensitive_post_parameters("first_name", "last_name", "nam", "card_sequence", "birth_date", "email")
@never_cache
@require_POST
def hold(request: HttpRequest, slot_id: int) -> HttpResponse:
    citizen = _require_citizen(request)
    if citizen is None:
        return redirect("booking:identify")
    reason = request.POST.get("reason", "")
    if reason not in Reason.values:
        reason = ""
    replacing = _rescheduling(request, citizen)
    patient, dependant = _patient(citizen, dependant_id=request.POST.get("patient"), replacing=replacing)
    ratelimit.hit_with_ip("hold", f"c{citizen.pk}", request)
    try:
        # The hold is the patient's: one hold per person, and the booking checks it is theirs.
        held = services.slot_hold(slot_id=slot_id, citizen=patient, to_reschedule=replacing)
    except errors.ApplicationError as exc:
        return _unavailable(request, patient, slot_id, exc, reason, dependant=dependant)
    metrics.record_hold(Appointment.Channel.PORTAL)
    session.hold_remember(
        request,
        slot_id=slot_id,
        token=held.token,
        expires_ts=held.expires.timestamp(),
        reason=reason,
        patient=dependant.pk if dependant else None,
    )
    return redirect("booking:confirm", slot_id=slot_id)


def _unavailable(
    request: HttpRequest,
    citizen: Citizen,
    slot_id: int,
    exc: errors.ApplicationError,
    reason: str,
    *,
    dependant: Dependant | None = None,
) -> HttpResponse:
    slot = Slot.objects.select_related("clinic").filter(pk=slot_id).first()
    alternatives: list[Slot] = []
    if slot is not None and isinstance(exc, errors.SlotUnavailable | errors.HoldExpired):
        alternatives = selectors.next_free_slots(citizen=citizen, like=slot, reason=reason)
    return render(
        request,
        "booking/unavailable.html",
        {
            "error": exc,
            # The heading says what happened: the time is gone, or this person may not take it (the
            # online limit, an appointment at that time, a reason the slot does not accept).
            "taken": isinstance(exc, errors.SlotUnavailable | errors.HoldExpired | errors.SlotNotFound),
            "alternatives": alternatives,
            "reason": reason,
            "dependant": dependant,
            **_steps("search"),
        },
        status=exc.status,
    )


@sensitive_post_parameters("first_name", "last_name", "nam", "card_sequence", "birth_date", "email")
@never_cache
@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, slot_id: int) -> HttpResponse:
    citizen = _require_citizen(request)
    if citizen is None:
        return redirect("booking:identify")
    held = session.hold_for(request, slot_id)
    slot = _slot_or_404(slot_id)
    if held is None:
        # No hold in this session (a bookmark, another tab): back to choosing.
        messages.warning(request, _("Choose a time first: it is then held for you for a few minutes."))
        return redirect("booking:search")
    expires = datetime.fromtimestamp(held["expires"], tz=UTC)
    replacing = _rescheduling(request, citizen)
    patient, dependant = _patient(citizen, dependant_id=held.get("patient"), replacing=replacing)
    initial = {
        "reason": held.get("reason") or "",
        # A child has no address of their own, usually: the holder's, in the holder's language.
        "email": patient.email or (citizen.email if dependant else ""),
        "language": patient.preferred_language
        if patient.email or not dependant
        else citizen.preferred_language,
        "hold_token": held["token"],
    }
    form = ConfirmForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        ratelimit.hit_with_ip("book", f"c{citizen.pk}", request)
        try:
            if replacing is not None:
                appointment = services.appointment_reschedule(
                    appointment=replacing,
                    new_slot_id=slot_id,
                    channel=Appointment.Channel.PORTAL,
                    hold_token=data["hold_token"],
                    reason=data["reason"],
                )
            else:
                booked_by = request.user if request.user.is_authenticated else None
                appointment = services.appointment_book(
                    slot_id=slot_id,
                    citizen=patient,
                    reason=data["reason"],
                    channel=Appointment.Channel.PORTAL,
                    hold_token=data["hold_token"],
                    # For a dependant: the holder, even when identified by card only.
                    booked_by_user=booked_by if booked_by or dependant is None else citizen.account,
                )
        except errors.ApplicationError as exc:
            if isinstance(exc, errors.ReasonNotAccepted):
                form.add_error("reason", str(exc.message))
            else:
                return _unavailable(request, patient, slot_id, exc, data["reason"], dependant=dependant)
        else:
            # Saved once the booking succeeded: the address the confirmation is about to go to
            # (the patient's, which for a child is usually the holder's).
            citizen_update_contact(
                citizen=patient,
                email=data["email"] or patient.email,
                mobile=patient.mobile,
                language=data["language"],
            )
            request.session.pop(session.HOLD_KEY, None)
            session.reschedule_end(request)
            return redirect("booking:appointment", appointment_id=appointment.pk)
    seconds_left = max(0, int((expires - timezone.now()).total_seconds()))
    return render(
        request,
        "booking/confirm.html",
        {
            "form": form,
            "slot": slot,
            "expires": expires,
            "seconds_left": seconds_left,
            "replacing": replacing,
            "dependant": dependant,
            "noshow_reminder": selectors.noshow_reminder_due(citizen=patient),
            **_steps("confirm"),
        },
        status=400 if form.is_bound and not form.is_valid() else 200,
    )


def _rescheduling(request: HttpRequest, citizen: Citizen) -> Appointment | None:
    """The citizen's own booked appointment that the time being chosen will replace, if any."""
    appointment_id = session.reschedule_id(request)
    if appointment_id is None:
        return None
    appointment = selectors.appointment_get_for_citizen(citizen=citizen, appointment_id=appointment_id)
    if appointment is None or not selectors.appointment_is_cancellable(appointment):
        session.reschedule_end(request)
        return None
    return appointment


@never_cache
@require_http_methods(["GET", "POST"])
def reschedule(request: HttpRequest, appointment_id: int) -> HttpResponse:
    """Start moving an appointment: the search then offers times that replace it in one step.
    The current appointment stays until the new time is confirmed."""
    citizen = _require_citizen(request)
    if citizen is None:
        next_url = reverse("booking:appointment", args=[appointment_id])
        return redirect(f"{reverse('booking:identify')}?next={next_url}")
    appointment = selectors.appointment_get_for_citizen(citizen=citizen, appointment_id=appointment_id)
    if appointment is None:
        raise Http404
    if request.method == "POST":
        if request.POST.get("action") == "stop":
            session.reschedule_end(request)
            return redirect("booking:appointment", appointment_id=appointment.pk)
        if selectors.appointment_is_cancellable(appointment):
            session.reschedule_start(request, appointment.pk)
            return redirect("booking:search")
    return render(
        request,
        "booking/reschedule.html",
        {"appointment": appointment, "cancellable": selectors.appointment_is_cancellable(appointment)},
    )


def _appointment_for_request(request: HttpRequest, appointment_id: int) -> Appointment:
    """The identified citizen's own appointment, or one found with its reference and NAM."""
    citizen = session.current_citizen(request)
    appointment = None
    if citizen is not None:
        appointment = selectors.appointment_get_for_citizen(citizen=citizen, appointment_id=appointment_id)
        if appointment is not None:
            appointment.for_dependant = appointment.citizen_id != citizen.pk
    if appointment is None and appointment_id in session.found_ids(request):
        appointment = (
            Appointment.objects.select_related("clinic", "slot__practitioner", "citizen")
            .filter(pk=appointment_id)
            .first()
        )
    if appointment is None:
        raise Http404
    return appointment


@sensitive_post_parameters("first_name", "last_name", "nam", "card_sequence", "birth_date", "email")
@never_cache
def appointment_detail(request: HttpRequest, appointment_id: int) -> HttpResponse:
    appointment = _appointment_for_request(request, appointment_id)
    return render(
        request,
        "booking/appointment.html",
        {
            "appointment": appointment,
            "cancellable": selectors.appointment_is_cancellable(appointment),
            **_steps("done"),
        },
    )


@sensitive_post_parameters("first_name", "last_name", "nam", "card_sequence", "birth_date", "email")
@never_cache
def appointment_calendar(request: HttpRequest, appointment_id: int) -> HttpResponse:
    appointment = _appointment_for_request(request, appointment_id)
    response = HttpResponse(appointment_ics(appointment), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="rendez-vous-{appointment.reference}.ics"'
    return response


@sensitive_post_parameters("first_name", "last_name", "nam", "card_sequence", "birth_date", "email")
@never_cache
def mine(request: HttpRequest) -> HttpResponse:
    citizen = session.current_citizen(request)
    if citizen is None:
        if request.user.is_authenticated:
            return redirect("citizens:link_card")
        return redirect(f"{reverse('booking:identify')}?next={reverse('booking:mine')}")
    groups = selectors.appointment_groups_for_citizen(citizen=citizen)
    for group in groups:
        for appointment in group.upcoming:
            appointment.cancellable = selectors.appointment_is_cancellable(appointment)
    context = {
        "upcoming": groups[0].upcoming,
        "past": groups[0].past,
        "groups": groups,
        "waitlist": waitlist_selectors.waitlist_requests_for_citizen(citizen=citizen),
        "waitlist_viewer_id": citizen.pk,
    }
    return render(request, "booking/mine.html", context)


@sensitive_post_parameters("first_name", "last_name", "nam", "card_sequence", "birth_date", "email")
@never_cache
@require_http_methods(["GET", "POST"])
def cancel(request: HttpRequest, appointment_id: int) -> HttpResponse:
    appointment = _appointment_for_request(request, appointment_id)
    return _cancel_page(request, appointment, token="")


def _cancel_page(request: HttpRequest, appointment: Appointment, *, token: str) -> HttpResponse:
    form = CancelForm(request.POST or None)
    error = None
    if request.method == "POST" and form.is_valid():
        ratelimit.hit("cancel", f"a{appointment.pk}")
        try:
            services.appointment_cancel(appointment=appointment, reason=form.cleaned_data["reason"])
        except errors.ApplicationError as exc:
            error = exc
        else:
            messages.success(
                request,
                _("Your appointment %(ref)s is cancelled. The time is offered to someone else.")
                % {"ref": appointment.reference},
            )
            session.found_remember(request, appointment.pk)
            return redirect("booking:appointment", appointment_id=appointment.pk)
    return render(
        request,
        "booking/cancel.html",
        {
            "appointment": appointment,
            "form": form,
            "error": error,
            "cancellable": selectors.appointment_is_cancellable(appointment),
            "token": token,
        },
        status=(error.status if error else (400 if form.is_bound and not form.is_valid() else 200)),
    )


@sensitive_post_parameters("first_name", "last_name", "nam", "card_sequence", "birth_date", "email")
@never_cache
@require_http_methods(["GET", "POST"])
def cancel_link(request: HttpRequest, token: str) -> HttpResponse:
    """The e-mail's cancel link: the GET only shows a page (mail scanners follow links); the POST
    with the same single-use token (bound to the appointment's version) cancels."""
    parsed = cancel_token_read(token)
    appointment = None
    if parsed:
        appointment = (
            Appointment.objects.select_related("clinic", "slot__practitioner", "citizen")
            .filter(pk=parsed[0], version=parsed[1])
            .first()
        )
    if appointment is None:
        return render(request, "booking/link_invalid.html", status=404)
    return _cancel_page(request, appointment, token=token)


@sensitive_post_parameters("first_name", "last_name", "nam", "card_sequence", "birth_date", "email")
@never_cache
@require_http_methods(["GET", "POST"])
def find(request: HttpRequest) -> HttpResponse:
    form = FindForm(request.POST or None)
    not_found = False
    if request.method == "POST" and form.is_valid():
        ip = ratelimit.client_ip(request)
        wait = ratelimit.peek_exceeded("identify_ip", ip)
        if wait:
            raise ratelimit.RateLimited(retry_after=wait)
        appointment = selectors.appointment_get_by_reference(
            reference=form.cleaned_data["reference"], nam=form.cleaned_data["nam"]
        )
        if appointment is None:
            ratelimit.hit("identify_ip", ip, raise_when_over=False)
            not_found = True
        else:
            session.found_remember(request, appointment.pk, new_session=True)
            return redirect("booking:appointment", appointment_id=appointment.pk)
    return render(
        request,
        "booking/find.html",
        {"form": form, "not_found": not_found},
        status=400 if request.method == "POST" else 200,
    )
