"""Clinic pages about the clinic's EMR: its health and the agenda conflicts to resolve.

They live in ``sync`` (the domain apps never import ``sync``, ARCHITECTURE.md) and are mounted in the
clinic pages' URL space by config/urls.py (``/clinique/<id>/dme/…``), behind the same gate as every
staff page (``clinics.access.staff_required``: signed in, on staff, second factor proven) and the
same scoped access (``clinics.selectors.clinic_get_for_staff``: another clinic is a 404). Every staff
member of the clinic sees them; administrators and receptionists resolve. Patients' names are shown,
so each response writes one audit row per citizen (invariant 7).
"""

from datetime import datetime, tzinfo

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format, time_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_http_methods, require_safe

from booking.errors import ApplicationError
from booking.models import Appointment
from citizens.models import User
from clinics import selectors as clinic_selectors
from clinics.access import staff_required
from clinics.audit import audit_staff_read
from clinics.forms import PhoneSlotFilterForm
from clinics.models import Clinic, ClinicMembership
from clinics.selectors_onboarding import is_board_admin

from . import conflicts, grants
from .models import SyncConflict
from .selectors import emr_product_names

RESOLVER_ROLES = (ClinicMembership.Role.CLINIC_ADMIN, ClinicMembership.Role.RECEPTIONIST)
AUDIT_PURPOSE = "emr-conflicts"


class ResolveForm(forms.Form):
    resolution = forms.ChoiceField(choices=SyncConflict.Resolution.choices)
    slot = forms.IntegerField(min_value=1, required=False)


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # staff_required let only signed-in staff in
    return request.user


@require_safe
@staff_required
def emr_overview(request: HttpRequest, clinic_id: int) -> HttpResponse:
    """The EMR health panel and the list of open conflicts (and the latest resolved ones)."""
    user = _user(request)
    clinic = clinic_selectors.clinic_get_for_staff(user, clinic_id)
    open_rows, resolved = conflicts.conflict_list_for_clinic(clinic=clinic)
    audit_staff_read(
        user=user,
        clinic=clinic,
        purpose=AUDIT_PURPOSE,
        citizen_ids=conflicts.citizen_ids_shown(open_rows + resolved),
    )
    return render(
        request,
        "sync/clinic_emr.html",
        {
            "clinic": clinic,
            "health": conflicts.emr_health_for_clinic(clinic=clinic),
            "can_manage_access": grants.may_manage_emr_access(user=user, clinic=clinic),
            "open_rows": open_rows,
            "resolved": resolved,
        },
    )


@require_http_methods(["GET", "POST"])
@staff_required
def conflict_detail(request: HttpRequest, clinic_id: int, conflict_id: int) -> HttpResponse:
    """One conflict: what the EMR and the store say, and the three choices (a POST each)."""
    user = _user(request)
    clinic = clinic_selectors.clinic_get_for_staff(user, clinic_id)
    conflict = conflicts.conflict_get_for_clinic(clinic=clinic, conflict_id=conflict_id)
    can_resolve = clinic.pk in clinic_selectors.clinic_ids_for_staff(user, roles=RESOLVER_ROLES)
    error, status = "", 200
    if request.method == "POST":
        form = ResolveForm(request.POST)
        if not can_resolve:
            error, status = _("Only the clinic's administrators and receptionists resolve conflicts."), 403
        elif not form.is_valid():
            error, status = _("Choose keep, move or cancel."), 422
        else:
            try:
                resolved = conflicts.conflict_resolve(
                    clinic=clinic,
                    conflict_id=conflict.pk,
                    resolution=form.cleaned_data["resolution"],
                    new_slot_id=form.cleaned_data.get("slot"),
                    by=user,
                )
            except ApplicationError as exc:
                error, status = str(exc.message), exc.status
                conflict = conflicts.conflict_get_for_clinic(clinic=clinic, conflict_id=conflict.pk)
            else:
                messages.success(request, _success_text(resolved, clinic.tz))
                return redirect(reverse("sync_clinic:emr", args=[clinic.pk]))
    if conflict.appointment is not None and conflict.appointment.citizen_id is not None:
        audit_staff_read(
            user=user, clinic=clinic, purpose=AUDIT_PURPOSE, citizen_ids=[conflict.appointment.citizen_id]
        )
    movable = (
        conflict.status == SyncConflict.Status.OPEN
        and conflict.appointment is not None
        and conflict.appointment.status == Appointment.Status.BOOKED
        and conflict.appointment.start > timezone.now()
    )
    filters, slot_rows = None, []
    if can_resolve and movable:
        # Free times of the clinic, the conflict's practitioner first (GET: no personal data in it).
        data = request.GET if request.GET else {"practitioner": str(conflict.slot.practitioner_id)}
        filters = PhoneSlotFilterForm(data, clinic=clinic)
        practitioner, day = filters.chosen()
        slot_rows = clinic_selectors.free_slots_for_clinic(
            clinic=clinic,
            now=timezone.now(),
            practitioner_id=practitioner.pk if practitioner else None,
            day=day,
            exclude_slot_id=conflict.slot_id,
        )
    return render(
        request,
        "sync/clinic_conflict.html",
        {
            "clinic": clinic,
            "conflict": conflict,
            "snapshot_times": _snapshot_times(conflict),
            "can_resolve": can_resolve and conflict.status == SyncConflict.Status.OPEN,
            "movable": movable,
            "filters": filters,
            "slot_rows": slot_rows,
            "error": error,
        },
        status=status,
    )


def _snapshot_times(conflict: SyncConflict) -> tuple[datetime, datetime] | None:
    """The times the EMR gave the slot (a changed slot), as datetimes for the template."""
    times = conflict.detail.get("snapshot") if isinstance(conflict.detail, dict) else None
    if not times:
        return None
    return datetime.fromisoformat(times["start"]), datetime.fromisoformat(times["end"])


def _success_text(conflict: SyncConflict, tz: tzinfo) -> str:
    if conflict.resolution == SyncConflict.Resolution.MOVE and conflict.moved_to is not None:
        local = conflict.moved_to.start.astimezone(tz)
        return _("Appointment moved to %(day)s at %(time)s; the patient is notified by e-mail.") % {
            "day": date_format(local, "l j F Y"),
            "time": time_format(local, "H:i"),
        }
    if conflict.resolution == SyncConflict.Resolution.CANCEL:
        return _("Appointment cancelled; the patient is notified by e-mail with a link to book another time.")
    return _("Appointment kept as it is. Put it back in your EMR at this time.")


NO_EMR = "-"  # the product choice "none" (a product name is never a lone hyphen)


class ProductChangeForm(forms.Form):
    product = forms.ChoiceField(label=_lazy("New EMR product"))
    grant = forms.BooleanField(
        label=_lazy("Let this product's API clients act for the clinic now"), required=False, initial=True
    )

    def __init__(self, *args: object, clinic: Clinic, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        choices = [(NO_EMR, _("None: the agenda is kept on these pages"))]
        choices += [(name, name) for name in emr_product_names() if name != clinic.emr_product]
        self.fields["product"].choices = choices  # type: ignore[attr-defined]
        for code in ("invalid_choice", "required"):
            self.fields["product"].error_messages[code] = _lazy(
                "Choose an EMR product from the list, or none."
            )


def _clinic_for_access(user: User, clinic_id: int) -> Clinic:
    """The clinic, for its administrators and the board administrators; a 404 for anyone else."""
    if is_board_admin(user):
        clinic = Clinic.objects.filter(pk=clinic_id).first()
        if clinic is None:
            raise Http404
        return clinic
    return clinic_selectors.clinic_get_for_staff(user, clinic_id, roles=[ClinicMembership.Role.CLINIC_ADMIN])


@require_http_methods(["GET", "POST"])
@staff_required
def emr_access(request: HttpRequest, clinic_id: int) -> HttpResponse:
    """Which EMR product's clients may act for the clinic: grant, revoke, change product (POSTs).

    No patient data here: the board administrators, who see no clinic's patients, use it too.
    """
    user = _user(request)
    clinic = _clinic_for_access(user, clinic_id)
    form = ProductChangeForm(clinic=clinic)
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "grant":
                grants.emr_access_grant(clinic=clinic, by=user)
                messages.success(
                    request,
                    _("The API clients of %(product)s may now act for this clinic.")
                    % {"product": clinic.emr_product},
                )
                return redirect(request.path)
            if action == "revoke":
                grants.emr_access_revoke(clinic=clinic, by=user)
                messages.success(request, _("No EMR client may act for this clinic any more."))
                return redirect(request.path)
            if action == "change":
                form = ProductChangeForm(request.POST, clinic=clinic)
                if form.is_valid():
                    grants.emr_product_change(
                        clinic=clinic,
                        by=user,
                        product=""
                        if form.cleaned_data["product"] == NO_EMR
                        else form.cleaned_data["product"],
                        grant=form.cleaned_data["grant"],
                    )
                    messages.success(request, _("The clinic's EMR product is changed."))
                    return redirect(request.path)
                status = 422
            else:
                status = 400
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect(request.path)
        except PermissionDenied as exc:
            messages.error(request, str(exc))
            return redirect(request.path)
    return render(
        request,
        "sync/clinic_emr_access.html",
        {
            "clinic": clinic,
            "grants": grants.emr_grants_active(clinic=clinic),
            "known_product": bool(grants.emr_products_named(clinic.emr_product)),
            "form": form,
            "is_clinic_admin": clinic.pk
            in clinic_selectors.clinic_ids_for_staff(user, roles=[ClinicMembership.Role.CLINIC_ADMIN]),
        },
        status=status,
    )
