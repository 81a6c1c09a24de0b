"""Clinic staff pages: thin callers of the selectors and services, behind ``staff_required``.

Every page that names a patient writes one audit row per citizen shown (invariant 7) before it
answers. Pages work without JavaScript.
"""

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format, time_format
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_safe

from booking import errors as booking_errors
from booking import services as booking_services
from booking.errors import ApplicationError
from booking.models import Appointment
from citizens.models import Citizen, User

from . import selectors, services, slot_plans
from .access import staff_required
from .audit import audit_staff_read
from .forms import (
    AgendaForm,
    AppointmentStatusForm,
    BlockPeriodForm,
    MoveForm,
    OfferChangeForm,
    PhoneBookForm,
    PhoneFindForm,
    PhoneSlotFilterForm,
    SlotTemplateForm,
    StaffCancelForm,
    clinic_cancel_reason_choices,
)
from .forms_admin import StaffInviteForm
from .models import BoardRole, Clinic, ClinicMembership
from .services_staff import invitations_pending

AGENDA_ROLES = tuple(ClinicMembership.Role.values)
ADMIN_ROLES = (ClinicMembership.Role.CLINIC_ADMIN,)
# Who changes the agenda: clinic administrators and receptionists; practitioners read it.
PLANNER_ROLES = (ClinicMembership.Role.CLINIC_ADMIN, ClinicMembership.Role.RECEPTIONIST)


def _user(request: HttpRequest) -> User:
    # staff_required has already refused anonymous visitors.
    assert isinstance(request.user, User)
    return request.user


@require_safe
@staff_required
def home(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    return render(
        request,
        "clinics/home.html",
        {
            "memberships": selectors.memberships_for_staff_home(user),
            "board_roles": sorted(selectors.board_roles_for(user)),
            "admin_role": ClinicMembership.Role.CLINIC_ADMIN,
            "planner_roles": PLANNER_ROLES,
        },
    )


@require_safe
@staff_required
def agenda(request: HttpRequest, clinic_id: int) -> HttpResponse:
    user = _user(request)
    clinic = selectors.clinic_get_for_staff(user, clinic_id, roles=AGENDA_ROLES)
    today = timezone.now().astimezone(clinic.tz).date()
    form = AgendaForm(request.GET or None, clinic=clinic, today=today)
    day, view = form.chosen_date(), form.chosen_view()
    practitioner = form.chosen_practitioner()
    first_day, days, step = (day - timedelta(days=day.weekday()), 7, 7) if view == "week" else (day, 1, 1)
    days_shown = selectors.agenda_for_clinic(
        clinic=clinic,
        first_day=first_day,
        days=days,
        practitioner_id=practitioner.pk if practitioner else None,
    )
    audit_staff_read(
        user=user, clinic=clinic, purpose="agenda", citizen_ids=selectors.citizen_ids_shown(days_shown)
    )

    def link(target_day: object) -> str:
        params = {"date": str(target_day), "view": view}
        if practitioner:
            params["practitioner"] = str(practitioner.pk)
        return f"{request.path}?{urlencode(params)}"

    return render(
        request,
        "clinics/agenda.html",
        {
            "clinic": clinic,
            "form": form,
            "days": days_shown,
            "view": view,
            "day": day,
            "first_day": first_day,
            "last_day": first_day + timedelta(days=days - 1),
            "practitioner": practitioner,
            "practitioners": selectors.practitioners_of_clinic(clinic=clinic),
            "previous_url": link(day - timedelta(days=step)),
            "next_url": link(day + timedelta(days=step)),
            "today_url": link(today),
            "cancel_reasons": clinic_cancel_reason_choices(),
            "can_plan": not clinic.uses_emr
            and clinic.pk in selectors.clinic_ids_for_staff(user, roles=PLANNER_ROLES),
            # Arrived / no-show only for today's and past appointments; move and cancel for later ones.
            "today_end": selectors.local_day_bounds(today, clinic)[1],
            "now": timezone.now(),
        },
    )


@require_safe
@staff_required
def day_sheet(request: HttpRequest, clinic_id: int) -> HttpResponse:
    user = _user(request)
    clinic = selectors.clinic_get_for_staff(user, clinic_id, roles=AGENDA_ROLES)
    today = timezone.now().astimezone(clinic.tz).date()
    form = AgendaForm(request.GET or None, clinic=clinic, today=today)
    day, practitioner = form.chosen_date(), form.chosen_practitioner()
    rows = []
    if practitioner is not None:
        days_shown = selectors.agenda_for_clinic(
            clinic=clinic, first_day=day, days=1, practitioner_id=practitioner.pk
        )
        audit_staff_read(
            user=user,
            clinic=clinic,
            purpose="day-sheet",
            citizen_ids=selectors.citizen_ids_shown(days_shown),
        )
        rows = days_shown[0].rows
    return render(
        request,
        "clinics/day_sheet.html",
        {
            "clinic": clinic,
            "form": form,
            "day": day,
            "practitioner": practitioner,
            "rows": rows,
            "printed_at": timezone.now().astimezone(clinic.tz),
        },
    )


@require_safe
@staff_required
def staff_list(request: HttpRequest, clinic_id: int) -> HttpResponse:
    user = _user(request)
    clinic = selectors.clinic_get_for_staff(user, clinic_id, roles=ADMIN_ROLES)
    return render(
        request,
        "clinics/staff_list.html",
        {
            "clinic": clinic,
            "memberships": selectors.membership_list_for_clinic(clinic=clinic),
            "invitations": list(invitations_pending(clinic=clinic)),
            "invite_form": StaffInviteForm(clinic=clinic),
            "now": timezone.now(),
        },
    )


def staff_membership_get(user: User, clinic_id: int, membership_id: int) -> tuple[Clinic, ClinicMembership]:
    """For a clinic administrator: their clinic and one of its active memberships (else a 404)."""
    clinic = selectors.clinic_get_for_staff(user, clinic_id, roles=ADMIN_ROLES)
    membership = (
        ClinicMembership.objects.filter(clinic=clinic, pk=membership_id, is_active=True)
        .select_related("user")
        .first()
    )
    if membership is None:
        raise Http404
    return clinic, membership


def confirm_page(
    request: HttpRequest, *, template: str, context: dict[str, Any], act: Callable[[], str], back: str
) -> HttpResponse:
    """A staff decision behind a confirmation page: GET shows ``template``; the POST runs ``act``
    (its success message, or PermissionDenied / ValidationError, shown as an error) and goes
    ``back``."""
    if request.method != "POST":
        return render(request, template, context)
    try:
        messages.success(request, act())
    except (PermissionDenied, ValidationError) as exc:
        messages.error(request, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))
    return redirect(back)


@require_http_methods(["GET", "POST"])
@staff_required
def membership_deactivate(request: HttpRequest, clinic_id: int, membership_id: int) -> HttpResponse:
    user = _user(request)
    clinic, membership = staff_membership_get(user, clinic_id, membership_id)

    def deactivate() -> str:
        services.membership_deactivate(by=user, membership=membership)
        return _("%(email)s no longer has access to %(clinic)s.") % {
            "email": membership.user.email,
            "clinic": clinic.name,
        }

    return confirm_page(
        request,
        template="clinics/membership_deactivate.html",
        context={"clinic": clinic, "membership": membership},
        act=deactivate,
        back=reverse("clinics:staff", args=[clinic.pk]),
    )


# --- the web agenda's bulk changes ----------------------------------------------------------------
# Clinic administrators and receptionists run the agenda; practitioners read it (ClinicMembership).
# Each page previews first (GET, or POST action=preview) and changes on a POST confirmation; the
# booking service checks everything again and refuses a confirmation whose agenda changed meanwhile.

_NOT_CARRIED = {"csrfmiddlewaretoken", "action", "expected", "expected_free", "expected_booked"}


def _planner_clinic(request: HttpRequest, clinic_id: int) -> tuple[User, Clinic, HttpResponse | None]:
    """The clinic, if this person may change its agenda here; a 403 page for an EMR clinic."""
    user = _user(request)
    clinic = selectors.clinic_get_for_staff(user, clinic_id, roles=PLANNER_ROLES)
    if clinic.uses_emr:
        return user, clinic, render(request, "clinics/emr_refused.html", {"clinic": clinic}, status=403)
    return user, clinic, None


def _carried(data: QueryDict) -> list[tuple[str, str]]:
    """The form's values, to repeat as hidden inputs in the confirmation form."""
    return [(name, value) for name, values in data.lists() if name not in _NOT_CARRIED for value in values]


def _error_text(exc: ApplicationError) -> str:
    """The service's message, prefixed with the clinic-local time it is about, when it names one."""
    local = exc.extra.get("local_start")
    if not local:
        return str(exc.message)
    moment = datetime.fromisoformat(local)
    return _("%(day)s at %(time)s: %(message)s") % {
        "day": date_format(moment, "l j F Y"),
        "time": time_format(moment, "H:i"),
        "message": exc.message,
    }


def _agenda_url(clinic: Clinic, day: date, practitioner_id: int) -> str:
    query = urlencode({"date": day.isoformat(), "view": "week", "practitioner": str(practitioner_id)})
    return f"{reverse('clinics:agenda', args=[clinic.pk])}?{query}"


def _planner_page(
    request: HttpRequest,
    clinic_id: int,
    *,
    form_class: Any,
    template: str,
    confirm_action: str,
    confirm: Callable[[User, Clinic, Any, datetime], HttpResponse | None],
    preview: Callable[[User, Clinic, Any], Any],
    result_name: str,
) -> HttpResponse:
    """The planner pages' one shape: a valid form shows a preview (``preview``: what would change);
    a POST with ``confirm_action`` changes the agenda (``confirm``: a redirect, or None after adding
    the reason to the form). A refusal from the booking service is shown above the form, with the
    preview of the agenda as it is now, and the form's values carried into the next confirmation."""
    user, clinic, refused = _planner_clinic(request, clinic_id)
    if refused is not None:
        return refused
    now = timezone.now()
    data = request.POST if request.method == "POST" else request.GET
    form = form_class(data or None, clinic=clinic, today=now.astimezone(clinic.tz).date())
    result = None
    if form.is_valid():
        if request.method == "POST" and request.POST.get("action") == confirm_action:
            try:
                done = confirm(user, clinic, form, now)
            except ApplicationError as exc:
                form.add_error(None, _error_text(exc))
            else:
                if done is not None:
                    return done
        result = preview(user, clinic, form)
    return render(
        request,
        template,
        {
            "clinic": clinic,
            "form": form,
            result_name: result,
            "carried": _carried(data) if result is not None else [],
        },
    )


@require_http_methods(["GET", "POST"])
@staff_required
def slot_template(request: HttpRequest, clinic_id: int) -> HttpResponse:
    def plan_now(form: SlotTemplateForm) -> slot_plans.TemplatePlan:
        return slot_plans.template_plan(role=form.role, now=timezone.now(), **form.template_args())

    def publish(user: User, clinic: Clinic, form: SlotTemplateForm, now: datetime) -> HttpResponse | None:
        role = form.role
        plan = slot_plans.template_plan(role=role, now=now, **form.template_args())
        expected = form.cleaned_data.get("expected")
        if plan.refused:
            form.add_error(None, _("Some times are refused (see the preview): change the template first."))
            return None
        if not plan.new:
            form.add_error(None, booking_errors.NothingToPublish.message)
            return None
        if expected is not None and expected != len(plan.new):
            form.add_error(None, booking_errors.AgendaChanged.message)
            return None
        slots = booking_services.slots_publish(
            role=role,
            starts_local=[planned.local_start for planned in plan.new],
            minutes=form.cleaned_data["minutes"],
            reasons=form.cleaned_data["reasons"],
            audience=form.cleaned_data["audience"],
            modality=form.cleaned_data["modality"],
            created_by=user,
            now=now,
        )
        messages.success(
            request,
            ngettext(
                "%(count)s slot published for %(name)s.",
                "%(count)s slots published for %(name)s.",
                len(slots),
            )
            % {"count": len(slots), "name": role.practitioner.display_name},
        )
        return redirect(_agenda_url(clinic, plan.new[0].local_start.date(), role.practitioner_id))

    return _planner_page(
        request,
        clinic_id,
        form_class=SlotTemplateForm,
        template="clinics/slot_template.html",
        confirm_action="publish",
        confirm=publish,
        preview=lambda user, clinic, form: plan_now(form),
        result_name="plan",
    )


@require_http_methods(["GET", "POST"])
@staff_required
def period_block(request: HttpRequest, clinic_id: int) -> HttpResponse:
    def block(user: User, clinic: Clinic, form: BlockPeriodForm, now: datetime) -> HttpResponse:
        free_count, booked_count = (
            form.cleaned_data.get("expected_free"),
            form.cleaned_data.get("expected_booked"),
        )
        expected = (free_count, booked_count) if free_count is not None and booked_count is not None else None
        result = booking_services.period_block(
            role=form.role,
            start=form.cleaned_data["start_utc"],
            end=form.cleaned_data["end_utc"],
            by=user,
            note=form.cleaned_data["note"],
            expected=expected,
            now=now,
        )
        without_email = [a.reference for a in result.cancelled if a.citizen is None or not a.citizen.email]
        messages.success(
            request,
            _(
                "%(slots)s slots blocked; %(appointments)s appointments cancelled, "
                "and the patients notified by e-mail."
            )
            % {"slots": len(result.blocked_slot_ids), "appointments": len(result.cancelled)},
        )
        if without_email:
            messages.warning(
                request,
                _("No e-mail address for these appointments: call the patients. References: %(refs)s")
                % {"refs": ", ".join(without_email)},
            )
        return redirect(_agenda_url(clinic, form.cleaned_data["start"].date(), form.role.practitioner_id))

    def preview(user: User, clinic: Clinic, form: BlockPeriodForm) -> slot_plans.BlockPlan:
        plan = slot_plans.block_plan(
            role=form.role,
            start=form.cleaned_data["start_utc"],
            end=form.cleaned_data["end_utc"],
            now=timezone.now(),
        )
        # The preview names the patients whose appointments would be cancelled (invariant 7).
        audit_staff_read(
            user=user, clinic=clinic, purpose="block-period", citizen_ids=[a.citizen_id for a in plan.booked]
        )
        return plan

    return _planner_page(
        request,
        clinic_id,
        form_class=BlockPeriodForm,
        template="clinics/period_block.html",
        confirm_action="block",
        confirm=block,
        preview=preview,
        result_name="plan",
    )


@require_http_methods(["GET", "POST"])
@staff_required
def offer_change(request: HttpRequest, clinic_id: int) -> HttpResponse:
    def offer(form: OfferChangeForm) -> dict[str, Any]:
        start, end = form.period()
        return {
            "role": form.role,
            "start": start,
            "end": end,
            "audience": form.cleaned_data.get("audience") or None,
            "reasons": form.cleaned_data.get("reasons") or None,
        }

    def apply(user: User, clinic: Clinic, form: OfferChangeForm, now: datetime) -> HttpResponse:
        changed = booking_services.slots_change_offer(
            **offer(form), by=user, expected_count=form.cleaned_data.get("expected"), now=now
        )
        messages.success(
            request,
            ngettext("%(count)s free slot changed.", "%(count)s free slots changed.", len(changed))
            % {"count": len(changed)},
        )
        return redirect(_agenda_url(clinic, form.cleaned_data["date_from"], form.role.practitioner_id))

    return _planner_page(
        request,
        clinic_id,
        form_class=OfferChangeForm,
        template="clinics/offer_change.html",
        confirm_action="apply",
        confirm=apply,
        preview=lambda user, clinic, form: slot_plans.offer_plan(**offer(form), now=timezone.now()),
        result_name="targets",
    )


# --- the phone channel ----------------------------------------------------------------------------
# A receptionist identifies a caller by NAM (POSTed, never in a URL or a log), then books, moves or
# cancels for them. Between steps the session keeps the caller's internal id only, for this clinic,
# for a few minutes; every page that shows the caller writes an audit row (purpose "phone").

PHONE_CALLER_KEY = "clinics.phone_caller"
PHONE_CALLER_TTL = timedelta(minutes=15)


def _caller_remember(request: HttpRequest, clinic: Clinic, citizen: Citizen) -> None:
    until = timezone.now() + PHONE_CALLER_TTL
    request.session[PHONE_CALLER_KEY] = {
        "clinic": clinic.pk,
        "citizen": citizen.pk,
        "until": until.timestamp(),
    }


def _caller(request: HttpRequest, clinic: Clinic) -> Citizen | None:
    """The caller identified on this clinic's phone page, while the short expiry has not passed."""
    kept = request.session.get(PHONE_CALLER_KEY)
    if not isinstance(kept, dict) or kept.get("clinic") != clinic.pk:
        return None
    if float(kept.get("until", 0)) < timezone.now().timestamp():
        request.session.pop(PHONE_CALLER_KEY, None)
        return None
    return selectors.citizen_get_for_phone(citizen_id=int(kept["citizen"]))


def _phone_url(clinic: Clinic) -> str:
    return reverse("clinics:phone", args=[clinic.pk])


def _over_limit(citizen: Citizen | None) -> bool:
    if citizen is None:
        return False
    count = selectors.active_future_count(citizen=citizen, now=timezone.now())
    return count >= settings.BOOKING_MAX_ACTIVE_ONLINE


def _free_slots(request: HttpRequest, clinic: Clinic, **kwargs: object) -> tuple[PhoneSlotFilterForm, list]:
    filters = PhoneSlotFilterForm(request.GET or None, clinic=clinic)
    practitioner, day = filters.chosen()
    rows = selectors.free_slots_for_clinic(
        clinic=clinic,
        now=timezone.now(),
        practitioner_id=practitioner.pk if practitioner else None,
        day=day,
        **kwargs,  # type: ignore[arg-type]
    )
    return filters, rows


@require_http_methods(["GET", "POST"])
@staff_required
def phone(request: HttpRequest, clinic_id: int) -> HttpResponse:
    user, clinic, refused = _planner_clinic(request, clinic_id)
    if refused is not None:
        return refused
    find_form = PhoneFindForm()
    if request.method == "POST":
        if request.POST.get("action") == "forget":
            request.session.pop(PHONE_CALLER_KEY, None)
            return redirect(_phone_url(clinic))
        find_form = PhoneFindForm(request.POST)
        if find_form.is_valid():
            citizen = selectors.citizen_get_by_nam(nam=find_form.cleaned_data["nam"])
            if citizen is None:
                find_form.add_error(
                    "nam",
                    _("No insured person matches this number. Check the card number with the caller."),
                )
            else:
                _caller_remember(request, clinic, citizen)
                return redirect(_phone_url(clinic))
    caller = _caller(request, clinic)
    upcoming: list[Appointment] = []
    if caller is not None:
        audit_staff_read(user=user, clinic=clinic, purpose="phone", citizen_ids=[caller.pk])
        upcoming = selectors.caller_upcoming_at_clinic(clinic=clinic, citizen=caller, now=timezone.now())
    filters, rows = _free_slots(request, clinic)
    return render(
        request,
        "clinics/phone.html",
        {
            "clinic": clinic,
            "find_form": find_form,
            "caller": caller,
            "upcoming": upcoming,
            "over_limit": _over_limit(caller),
            "filters": filters,
            "slot_rows": rows,
            "cancel_reasons": clinic_cancel_reason_choices(),
        },
        status=422 if find_form.errors else 200,
    )


@require_http_methods(["POST"])
@staff_required
def phone_book(request: HttpRequest, clinic_id: int) -> HttpResponse:
    user, clinic, refused = _planner_clinic(request, clinic_id)
    if refused is not None:
        return refused
    caller = _caller(request, clinic)
    if caller is None:
        messages.error(request, _("Find the caller with their health insurance number first."))
        return redirect(_phone_url(clinic))
    form = PhoneBookForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a time and a reason for the visit."))
        return redirect(_phone_url(clinic))
    try:
        appointment = services.phone_booking_make(
            clinic=clinic,
            citizen=caller,
            slot_id=form.cleaned_data["slot"],
            reason=form.cleaned_data["reason"],
            over_limit_reason=form.cleaned_data["over_limit_reason"],
            by=user,
        )
    except booking_errors.SlotUnavailable as exc:
        rows = _free_slots(request, clinic)[1]
        return render(
            request,
            "clinics/phone_taken.html",
            {"clinic": clinic, "message": exc.message, "slot_rows": rows, "over_limit": _over_limit(caller)},
            status=409,
        )
    except ApplicationError as exc:
        messages.error(request, str(exc.message))
        return redirect(_phone_url(clinic))
    local = appointment.start.astimezone(clinic.tz)
    messages.success(
        request,
        _("Booked on %(day)s at %(time)s. Reference: %(reference)s.")
        % {
            "day": date_format(local, "l j F Y"),
            "time": time_format(local, "H:i"),
            "reference": appointment.reference,
        },
    )
    return redirect(_phone_url(clinic))


def _back_url(request: HttpRequest, clinic: Clinic, appointment: Appointment) -> str:
    """Back to the caller's page, or to the agenda day the appointment is on."""
    if request.POST.get("back") == "phone":
        return _phone_url(clinic)
    day = appointment.start.astimezone(clinic.tz).date()
    return f"{reverse('clinics:agenda', args=[clinic.pk])}?{urlencode({'date': day.isoformat()})}"


@require_http_methods(["POST"])
@staff_required
def appointment_cancel(request: HttpRequest, clinic_id: int, appointment_id: int) -> HttpResponse:
    clinic, refused = _planner_clinic(request, clinic_id)[1:]
    if refused is not None:
        return refused
    appointment = selectors.appointment_get_for_clinic(clinic=clinic, appointment_id=appointment_id)
    form = StaffCancelForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a reason for cancelling from the list."))
        return redirect(_back_url(request, clinic, appointment))
    try:
        booking_services.appointment_cancel(
            appointment=appointment, reason=form.cleaned_data["reason"], by_clinic=True
        )
    except ApplicationError as exc:
        messages.error(request, str(exc.message))
    else:
        messages.success(
            request,
            _("Appointment %(reference)s cancelled; the patient is notified by e-mail.")
            % {"reference": appointment.reference},
        )
    return redirect(_back_url(request, clinic, appointment))


@require_http_methods(["GET", "POST"])
@staff_required
def appointment_move(request: HttpRequest, clinic_id: int, appointment_id: int) -> HttpResponse:
    user, clinic, refused = _planner_clinic(request, clinic_id)
    if refused is not None:
        return refused
    appointment = selectors.appointment_get_for_clinic(clinic=clinic, appointment_id=appointment_id)
    status = 200
    error = ""
    if request.method == "POST":
        form = MoveForm(request.POST)
        if not form.is_valid():
            error, status = str(_("Choose the new time.")), 422
        else:
            try:
                new = booking_services.appointment_move_by_clinic(
                    appointment=appointment, new_slot_id=form.cleaned_data["slot"], by=user
                )
            except ApplicationError as exc:
                error, status = str(exc.message), exc.status
            else:
                local = new.start.astimezone(clinic.tz)
                messages.success(
                    request,
                    _("Appointment moved to %(day)s at %(time)s; the patient is notified by e-mail.")
                    % {"day": date_format(local, "l j F Y"), "time": time_format(local, "H:i")},
                )
                return redirect(_back_url(request, clinic, new))
    audit_staff_read(user=user, clinic=clinic, purpose="phone", citizen_ids=[appointment.citizen_id])
    filters, rows = _free_slots(request, clinic, exclude_slot_id=appointment.slot_id)
    return render(
        request,
        "clinics/appointment_move.html",
        {
            "clinic": clinic,
            "appointment": appointment,
            "local_start": appointment.start.astimezone(clinic.tz),
            "error": error,
            "filters": filters,
            "slot_rows": rows,
            "movable": appointment.status == Appointment.Status.BOOKED and appointment.start > timezone.now(),
            "back": request.POST.get("back") or request.GET.get("back") or "",
        },
        status=status,
    )


@require_http_methods(["POST"])
@staff_required
def appointment_status(request: HttpRequest, clinic_id: int, appointment_id: int) -> HttpResponse:
    clinic, refused = _planner_clinic(request, clinic_id)[1:]
    if refused is not None:
        return refused
    appointment = selectors.appointment_get_for_clinic(clinic=clinic, appointment_id=appointment_id)
    form = AppointmentStatusForm(request.POST)
    today = timezone.now().astimezone(clinic.tz).date()
    if not form.is_valid():
        messages.error(request, _("Choose arrived or no-show."))
    elif appointment.start >= selectors.local_day_bounds(today, clinic)[1]:
        messages.error(request, _("Only today's and past appointments can be marked arrived or no-show."))
    else:
        try:
            booking_services.appointment_set_status(
                appointment_id=appointment.pk, status=form.cleaned_data["status"], channel="clinic"
            )
        except ApplicationError as exc:
            messages.error(request, str(exc.message))
        else:
            text = (
                _("%(reference)s marked as arrived.")
                if form.cleaned_data["status"] == Appointment.Status.ARRIVED
                else _("%(reference)s marked as a no-show.")
            )
            messages.success(request, text % {"reference": appointment.reference})
    return redirect(_back_url(request, clinic, appointment))


@require_safe
@staff_required
def audit_log(request: HttpRequest) -> HttpResponse:
    """The board checks the audit logs' hash chains; ids and hashes only, no personal data."""
    if BoardRole.Role.BOARD_ADMIN not in selectors.board_roles_for(_user(request)):
        raise Http404
    return render(request, "clinics/audit_log.html", {"reports": selectors.audit_chain_reports()})
