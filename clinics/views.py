"""Clinic staff pages: thin callers of the selectors and services, behind ``staff_required``.

Every page that names a patient writes one audit row per citizen shown (invariant 7) before it
answers. Pages work without JavaScript.
"""

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_safe

from citizens.models import User

from . import selectors, services
from .access import staff_required
from .audit import audit_staff_read
from .forms import AgendaForm
from .models import ClinicMembership

AGENDA_ROLES = tuple(ClinicMembership.Role.values)
ADMIN_ROLES = (ClinicMembership.Role.CLINIC_ADMIN,)


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
        {"clinic": clinic, "memberships": selectors.membership_list_for_clinic(clinic=clinic)},
    )


@require_http_methods(["GET", "POST"])
@staff_required
def membership_deactivate(request: HttpRequest, clinic_id: int, membership_id: int) -> HttpResponse:
    user = _user(request)
    clinic = selectors.clinic_get_for_staff(user, clinic_id, roles=ADMIN_ROLES)
    membership = (
        ClinicMembership.objects.filter(clinic=clinic, pk=membership_id, is_active=True)
        .select_related("user")
        .first()
    )
    if membership is None:
        raise Http404
    if request.method == "POST":
        try:
            services.membership_deactivate(by=user, membership=membership)
        except (PermissionDenied, ValidationError) as exc:
            messages.error(request, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))
        else:
            messages.success(
                request,
                _("%(email)s no longer has access to %(clinic)s.")
                % {"email": membership.user.email, "clinic": clinic.name},
            )
        return redirect(reverse("clinics:staff", args=[clinic.pk]))
    return render(request, "clinics/membership_deactivate.html", {"clinic": clinic, "membership": membership})
