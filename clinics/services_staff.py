"""Inviting more staff from a clinic's Staff page: invite, invite again, withdraw an invitation.

The same single-use, expiring ``StaffInvitation`` as the administrator's invitation at onboarding
(``services_onboarding.invitation_create``): accepting it creates the membership, and the staff
pages then require a second factor before anything opens. Only an administrator of the clinic
acts. Inviting an address that already has a pending invitation replaces it (the old link stops
working), so one address has at most one live link per clinic. Each action locks the clinic's row
(two administrators at once: one after the other) and writes one ``StaffAuditEvent`` (ids only);
the e-mail leaves after commit, in the language chosen for the person.
"""

from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from citizens.models import User

from .audit import staff_action_audit
from .models import Clinic, ClinicMembership, Practitioner, PractitionerRole, StaffInvitation
from .selectors import clinic_ids_for_staff
from .services_onboarding import _absolute, invitation_create, staff_email_send

AUDIT_PURPOSE = "staff"


def _require_admin(*, by: User, clinic: Clinic) -> None:
    if clinic.pk not in clinic_ids_for_staff(by, roles=[ClinicMembership.Role.CLINIC_ADMIN]):
        raise PermissionDenied(_("Only an administrator of this clinic can invite its staff."))


def invitations_pending(*, clinic: Clinic) -> QuerySet[StaffInvitation]:
    """Invitations neither accepted nor withdrawn, newest first (expired ones included: they can be
    sent again)."""
    return (
        StaffInvitation.objects.filter(clinic=clinic, accepted_at__isnull=True, revoked_at__isnull=True)
        .select_related("practitioner")
        .order_by("-created_at")
    )


def _revoke_pending(*, clinic: Clinic, email: str, now: datetime) -> list[int]:
    pending = StaffInvitation.objects.filter(
        clinic=clinic, email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True
    )
    ids = list(pending.values_list("pk", flat=True))
    StaffInvitation.objects.filter(pk__in=ids).update(revoked_at=now)
    return ids


def staff_invite(
    *,
    clinic: Clinic,
    by: User,
    email: str,
    role: str,
    language: str,
    practitioner: Practitioner | None = None,
    now: datetime | None = None,
) -> StaffInvitation:
    """Invite someone to the clinic's staff by e-mail, with a role; replaces a pending invitation
    to the same address."""
    now = now or timezone.now()
    _require_admin(by=by, clinic=clinic)
    email = email.strip()
    if role not in ClinicMembership.Role.values:
        raise ValidationError(_("Choose a role."))
    if practitioner is not None:
        if role != ClinicMembership.Role.PRACTITIONER:
            raise ValidationError(_("Only a practitioner's account is linked to a practitioner."))
        if not PractitionerRole.objects.filter(
            practitioner=practitioner, clinic=clinic, is_active=True
        ).exists():
            raise ValidationError(_("This practitioner does not practise at this clinic."))
    with transaction.atomic():
        Clinic.objects.select_for_update().get(pk=clinic.pk)
        if ClinicMembership.objects.filter(clinic=clinic, user__email__iexact=email, is_active=True).exists():
            raise ValidationError(_("This person already has access to the clinic."))
        replaced = _revoke_pending(clinic=clinic, email=email, now=now)
        invitation, token = invitation_create(
            clinic=clinic,
            email=email,
            role=role,
            language=language if language in ("fr", "en") else "fr",
            by=by,
            now=now,
            practitioner=practitioner,
        )
        for old_id in replaced:
            staff_action_audit(
                by=by,
                clinic=clinic,
                action="revoke",
                resource_type="StaffInvitation",
                resource_id=old_id,
                purpose=AUDIT_PURPOSE,
                now=now,
            )
        staff_action_audit(
            by=by,
            clinic=clinic,
            action="invite",
            resource_type="StaffInvitation",
            resource_id=invitation.pk,
            purpose=AUDIT_PURPOSE,
            now=now,
        )
        context = {
            "clinic": clinic,
            "role": invitation.get_role_display,
            "invitation_url": _absolute(reverse("clinics:invitation", args=[token])),
            "expires_at": invitation.expires_at,
        }
        transaction.on_commit(
            lambda: staff_email_send(
                to=invitation.email,
                language=invitation.language,
                template="staff_invitation",
                context=context,
            )
        )
    return invitation


def _pending_of_clinic(*, clinic: Clinic, invitation_id: int) -> StaffInvitation:
    invitation = StaffInvitation.objects.filter(
        clinic=clinic, pk=invitation_id, accepted_at__isnull=True, revoked_at__isnull=True
    ).first()
    if invitation is None:
        raise ValidationError(_("This invitation was already accepted or withdrawn."))
    return invitation


def staff_invitation_resend(
    *, clinic: Clinic, by: User, invitation_id: int, now: datetime | None = None
) -> StaffInvitation:
    """Send a pending (or expired) invitation again: a new link, valid 7 days; the old one stops."""
    _require_admin(by=by, clinic=clinic)
    old = _pending_of_clinic(clinic=clinic, invitation_id=invitation_id)
    return staff_invite(
        clinic=clinic,
        by=by,
        email=old.email,
        role=old.role,
        language=old.language,
        practitioner=old.practitioner,
        now=now,
    )


def staff_invitation_revoke(
    *, clinic: Clinic, by: User, invitation_id: int, now: datetime | None = None
) -> None:
    """Withdraw a pending invitation: its link stops working at once."""
    now = now or timezone.now()
    _require_admin(by=by, clinic=clinic)
    with transaction.atomic():
        # Compare-and-set: an invitation accepted meanwhile stays accepted (the person is staff:
        # deactivate the membership instead).
        changed = StaffInvitation.objects.filter(
            clinic=clinic, pk=invitation_id, accepted_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=now)
        if not changed:
            raise ValidationError(_("This invitation was already accepted or withdrawn."))
        staff_action_audit(
            by=by,
            clinic=clinic,
            action="revoke",
            resource_type="StaffInvitation",
            resource_id=invitation_id,
            purpose=AUDIT_PURPOSE,
            now=now,
        )
