"""Clinic administration: booking settings, and resetting a staff member's lost second factor.

Both are audited (one ``StaffAuditEvent``, ids only) in the same transaction as the change.
"""

from datetime import datetime, timedelta

from allauth.mfa.models import Authenticator
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from citizens.models import User

from .audit import staff_action_audit
from .models import BoardRole, Clinic, ClinicMembership, Practitioner
from .selectors import clinic_ids_for_staff
from .selectors_onboarding import is_board_admin
from .services import user_sessions_end
from .services_onboarding import staff_email_send

MAX_MIN_NOTICE = timedelta(days=7)
MAX_CANCEL_CUTOFF_HOURS = 24
SPOKEN_LANGUAGE_CODES = ("fr", "en", "es")  # the languages citizens can search by


def clinic_settings_update(
    *,
    clinic: Clinic,
    by: User,
    phone: str,
    min_notice: timedelta,
    cancel_cutoff_hours: int,
    reminder_three_days: bool,
    practitioner_languages: dict[int, str] | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Change the clinic's booking settings; returns the names of the fields that changed.

    Only an administrator of this clinic may. Nothing changed: nothing written, no audit row.
    The new values apply to the next booking, cancellation or reminder: nothing already booked
    moves (the rules are read from the clinic when each action happens).
    """
    now = now or timezone.now()
    if clinic.pk not in clinic_ids_for_staff(by, roles=[ClinicMembership.Role.CLINIC_ADMIN]):
        raise PermissionDenied(_("Only an administrator of this clinic can change its settings."))
    if not timedelta(0) <= min_notice <= MAX_MIN_NOTICE:
        raise ValidationError(_("The minimum notice is between none and 7 days."))
    if not 0 <= cancel_cutoff_hours <= MAX_CANCEL_CUTOFF_HOURS:
        raise ValidationError(_("The cancellation cut-off is between 0 and 24 hours."))
    values = {
        "phone": phone,
        "min_notice": min_notice,
        "cancel_cutoff_hours": cancel_cutoff_hours,
        "reminder_three_days": reminder_three_days,
    }
    languages = practitioner_languages or {}
    for codes in languages.values():
        if not codes or any(code not in SPOKEN_LANGUAGE_CODES for code in codes.split(",")):
            raise ValidationError(_("Tick at least one language."))
    with transaction.atomic():
        current = Clinic.objects.select_for_update().get(pk=clinic.pk)
        changed = [name for name, value in values.items() if getattr(current, name) != value]
        if changed:
            Clinic.objects.filter(pk=clinic.pk).update(**{name: values[name] for name in changed})
            staff_action_audit(
                by=by,
                clinic=clinic,
                action="update",
                resource_type="Clinic",
                resource_id=clinic.pk,
                purpose="settings",
                now=now,
            )
        # Only this clinic's practitioners: a form naming another one changes nothing there.
        practitioners = Practitioner.objects.select_for_update().filter(
            pk__in=list(languages), roles__clinic=clinic, roles__is_active=True
        )
        for practitioner in practitioners.order_by("pk"):
            if practitioner.languages == languages[practitioner.pk]:
                continue
            Practitioner.objects.filter(pk=practitioner.pk).update(languages=languages[practitioner.pk])
            staff_action_audit(
                by=by,
                clinic=clinic,
                action="update",
                resource_type="Practitioner",
                resource_id=practitioner.pk,
                purpose="settings",
                now=now,
            )
            if "languages" not in changed:
                changed.append("languages")
    clinic.refresh_from_db()
    return changed


def _holds_clinic_admin_or_board_role(user_id: int) -> bool:
    return (
        ClinicMembership.objects.filter(
            user_id=user_id, role=ClinicMembership.Role.CLINIC_ADMIN, is_active=True
        ).exists()
        or BoardRole.objects.filter(user_id=user_id, is_active=True).exists()
    )


def mfa_reset_allowed(*, by: User, target: User, clinic: Clinic | None) -> bool:
    """Who may reset whose second factor.

    A clinic administrator resets the staff of their clinic (receptionists, practitioners); the
    board resets clinic administrators. Nobody resets their own (they use their recovery codes), a
    board member's, or, from a clinic, someone who administers a clinic anywhere: a clinic
    administrator's account opens a whole clinic, so only the board decides on it.
    """
    if by.pk == target.pk or BoardRole.objects.filter(user_id=target.pk, is_active=True).exists():
        return False
    if clinic is None:
        return (
            is_board_admin(by)
            and ClinicMembership.objects.filter(
                user_id=target.pk, role=ClinicMembership.Role.CLINIC_ADMIN, is_active=True
            ).exists()
        )
    return (
        clinic.pk in clinic_ids_for_staff(by, roles=[ClinicMembership.Role.CLINIC_ADMIN])
        and ClinicMembership.objects.filter(user_id=target.pk, clinic=clinic, is_active=True).exists()
        and not _holds_clinic_admin_or_board_role(target.pk)
    )


def staff_mfa_reset(
    *, by: User, target: User, clinic: Clinic | None = None, now: datetime | None = None
) -> int:
    """A staff member lost their phone or key: remove every authenticator (TOTP, security keys,
    recovery codes) and end their sessions. At their next sign-in the password suffices once, and the
    staff pages send them straight to enrolling a new second factor before anything else opens.

    ``clinic``: the clinic whose administrator acts; None when the board acts. Returns how many
    authenticators were removed. The person is e-mailed after commit, in their language: if they
    did not ask for it, they know to call.
    """
    now = now or timezone.now()
    if not mfa_reset_allowed(by=by, target=target, clinic=clinic):
        raise PermissionDenied(_("You cannot reset this person's second factor."))
    with transaction.atomic():
        removed, _detail = Authenticator.objects.filter(user_id=target.pk).delete()
        user_sessions_end(user_id=target.pk)
        staff_action_audit(
            by=by,
            clinic=clinic,
            action="mfa-reset",
            resource_type="User",
            resource_id=target.pk,
            purpose="lost-factor",
            now=now,
        )
        context = {"target": target, "clinic": clinic, "by_board": clinic is None}
        transaction.on_commit(
            lambda: staff_email_send(
                to=target.email, language=target.preferred_language, template="mfa_reset", context=context
            )
        )
    return removed
