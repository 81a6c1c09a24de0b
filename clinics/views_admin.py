"""Clinic administration pages: settings, one slot at a time, and resetting a lost second factor.

Thin callers of ``services_settings`` and of booking's ``slots_publish``, behind ``staff_required``.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format, time_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from booking import services as booking_services
from booking.errors import ApplicationError
from citizens.models import User

from . import selectors, selectors_onboarding, services_settings, services_staff
from .access import staff_required
from .forms_admin import ClinicSettingsForm, SingleSlotForm, StaffInviteForm
from .models import ClinicMembership
from .views import (
    ADMIN_ROLES,
    _agenda_url,
    _error_text,
    _planner_clinic,
    _user,
    confirm_page,
    staff_membership_get,
)


@require_http_methods(["GET", "POST"])
@staff_required
def clinic_settings(request: HttpRequest, clinic_id: int) -> HttpResponse:
    user = _user(request)
    clinic = selectors.clinic_get_for_staff(user, clinic_id, roles=ADMIN_ROLES)
    initial = {
        "phone": clinic.phone,
        "min_notice": int(clinic.min_notice.total_seconds() // 60),
        "cancel_cutoff_hours": clinic.cancel_cutoff_hours,
        "reminder_three_days": clinic.reminder_three_days,
    }
    form = ClinicSettingsForm(
        request.POST if request.method == "POST" else None,
        initial=initial,
        practitioners=list(selectors.practitioners_of_clinic(clinic=clinic)),
    )
    if request.method == "POST" and form.is_valid():
        changed = services_settings.clinic_settings_update(
            clinic=clinic,
            by=user,
            phone=form.cleaned_data["phone"],
            min_notice=form.cleaned_min_notice(),
            cancel_cutoff_hours=form.cleaned_data["cancel_cutoff_hours"],
            reminder_three_days=form.cleaned_data["reminder_three_days"],
            practitioner_languages=form.cleaned_languages(),
        )
        if changed:
            messages.success(request, _("Settings saved. They apply to the next bookings and cancellations."))
        else:
            messages.info(request, _("Nothing changed."))
        return redirect("clinics:settings", clinic_id=clinic.pk)
    return render(
        request,
        "clinics/settings.html",
        {"clinic": clinic, "form": form},
        status=422 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@staff_required
def slot_new(request: HttpRequest, clinic_id: int) -> HttpResponse:
    """One slot, published through the same service as templates (no overlap, in any clinic)."""
    user, clinic, refused = _planner_clinic(request, clinic_id)
    if refused is not None:
        return refused
    now = timezone.now()
    today = now.astimezone(clinic.tz).date()
    form = SingleSlotForm(
        request.POST or None,
        clinic=clinic,
        today=today,
        initial={"date": request.GET.get("date") or today, "practitioner": request.GET.get("practitioner")},
    )
    if request.method == "POST" and form.is_valid():
        role = form.role
        try:
            (slot,) = booking_services.slots_publish(
                role=role,
                starts_local=[form.local_start()],
                minutes=form.cleaned_data["minutes"],
                reasons=form.cleaned_data["reasons"],
                audience=form.cleaned_data["audience"],
                modality=form.cleaned_data["modality"],
                created_by=user,
                now=now,
            )
        except ApplicationError as exc:
            form.add_error(None, _error_text(exc))
        else:
            local = slot.start.astimezone(clinic.tz)
            messages.success(
                request,
                _("Slot published for %(name)s on %(day)s at %(time)s.")
                % {
                    "name": role.practitioner.display_name,
                    "day": date_format(local, "l j F Y"),
                    "time": time_format(local, "H:i"),
                },
            )
            return redirect(_agenda_url(clinic, local.date(), role.practitioner_id))
    return render(
        request,
        "clinics/slot_new.html",
        {"clinic": clinic, "form": form},
        status=422 if form.errors else 200,
    )


def _reset(request: HttpRequest, *, target: User, clinic_id: int | None, back: str) -> HttpResponse:
    user = _user(request)
    clinic = selectors.clinic_get_for_staff(user, clinic_id, roles=ADMIN_ROLES) if clinic_id else None
    if not services_settings.mfa_reset_allowed(by=user, target=target, clinic=clinic):
        raise Http404

    def reset() -> str:
        services_settings.staff_mfa_reset(by=user, target=target, clinic=clinic)
        return _(
            "The second factor of %(email)s is reset: they enrol a new one at their next "
            "sign-in. They are told by e-mail."
        ) % {"email": target.email}

    return confirm_page(
        request,
        template="clinics/mfa_reset.html",
        context={"clinic": clinic, "target": target, "back": back},
        act=reset,
        back=back,
    )


@require_http_methods(["GET", "POST"])
@staff_required
def membership_mfa_reset(request: HttpRequest, clinic_id: int, membership_id: int) -> HttpResponse:
    clinic, membership = staff_membership_get(_user(request), clinic_id, membership_id)
    return _reset(
        request, target=membership.user, clinic_id=clinic.pk, back=reverse("clinics:staff", args=[clinic.pk])
    )


def _board_admin(request: HttpRequest) -> User:
    user = _user(request)
    if not selectors_onboarding.is_board_admin(user):
        raise Http404
    return user


@require_safe
@staff_required
def board_clinic_admins(request: HttpRequest) -> HttpResponse:
    """Clinic administrators, found by clinic name (never by e-mail: no personal data in URLs)."""
    _board_admin(request)
    query = (request.GET.get("clinic") or "").strip()[:100]
    memberships = selectors_onboarding.clinic_admins_find(clinic_name=query) if query else []
    return render(request, "clinics/board_admins.html", {"query": query, "memberships": memberships})


@require_http_methods(["GET", "POST"])
@staff_required
def board_mfa_reset(request: HttpRequest, membership_id: int) -> HttpResponse:
    _board_admin(request)
    membership = (
        ClinicMembership.objects.filter(
            pk=membership_id, is_active=True, role=ClinicMembership.Role.CLINIC_ADMIN
        )
        .select_related("user", "clinic")
        .first()
    )
    if membership is None:
        raise Http404
    return _reset(request, target=membership.user, clinic_id=None, back=reverse("clinics:board_admins"))


# --- inviting staff (clinic administrators) -------------------------------------------------------


@require_http_methods(["GET", "POST"])
@staff_required
def staff_invite(request: HttpRequest, clinic_id: int) -> HttpResponse:
    """Invite someone by e-mail with a role (the form is also on the Staff page)."""
    user = _user(request)
    clinic = selectors.clinic_get_for_staff(user, clinic_id, roles=ADMIN_ROLES)
    form = StaffInviteForm(request.POST if request.method == "POST" else None, clinic=clinic)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            invitation = services_staff.staff_invite(
                clinic=clinic,
                by=user,
                email=data["email"],
                role=data["role"],
                language=data["language"],
                practitioner=data["practitioner"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(
                request,
                _("Invitation sent to %(email)s; the link works once, for 7 days.")
                % {"email": invitation.email},
            )
            return redirect(reverse("clinics:staff", args=[clinic.pk]))
    return render(
        request,
        "clinics/staff_invite.html",
        {"clinic": clinic, "form": form},
        status=422 if form.errors else 200,
    )


@require_POST
@staff_required
def staff_invitation_resend(request: HttpRequest, clinic_id: int, invitation_id: int) -> HttpResponse:
    user = _user(request)
    clinic = selectors.clinic_get_for_staff(user, clinic_id, roles=ADMIN_ROLES)
    try:
        invitation = services_staff.staff_invitation_resend(
            clinic=clinic, by=user, invitation_id=invitation_id
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            _("A new invitation is sent to %(email)s; the previous link no longer works.")
            % {"email": invitation.email},
        )
    return redirect(reverse("clinics:staff", args=[clinic.pk]))


@require_POST
@staff_required
def staff_invitation_revoke(request: HttpRequest, clinic_id: int, invitation_id: int) -> HttpResponse:
    user = _user(request)
    clinic = selectors.clinic_get_for_staff(user, clinic_id, roles=ADMIN_ROLES)
    try:
        services_staff.staff_invitation_revoke(clinic=clinic, by=user, invitation_id=invitation_id)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("The invitation is withdrawn: its link no longer works."))
    return redirect(reverse("clinics:staff", args=[clinic.pk]))
