"""Clinic onboarding: registration requests, the board's decision, and staff invitations.

A clinic asks to join (``registration_request_submit``, a public form); a board administrator
approves it (``registration_approve``: the clinic, its practitioners' roles and an invitation for its
administrator, all or nothing) or rejects it with a reason. The requester is e-mailed in the language
they used, after commit. The invitation link is single-use and expires; accepting it
(``invitation_accept``) creates or links the account and its clinic membership.

Every decision writes one ``StaffAuditEvent`` (ids only) in the same transaction.
"""

import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from citizens.models import User

from .audit import staff_action_audit
from .models import (
    Clinic,
    ClinicMembership,
    Fsa,
    Gmf,
    Practitioner,
    PractitionerRole,
    RegistrationPractitioner,
    RegistrationRequest,
    StaffInvitation,
)
from .services_board import BoardQueue

INVITATION_LIFETIME = timedelta(days=7)


@dataclass(frozen=True)
class PractitionerEntry:
    ramq_number: str
    first_name: str
    last_name: str


def _absolute(path: str) -> str:
    site_url: str = settings.SITE_URL
    return site_url.rstrip("/") + path


def staff_email_send(*, to: str, language: str, template: str, context: Mapping[str, object]) -> None:
    """A plain-text e-mail to a staff member or a requester, rendered in their language."""
    with translation.override(language or settings.LANGUAGE_CODE):
        subject = render_to_string(f"clinics/email/{template}_subject.txt", dict(context)).strip()
        body = render_to_string(f"clinics/email/{template}.txt", dict(context))
    EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [to]).send()


REGISTRATIONS = BoardQueue(
    model=RegistrationRequest,
    purpose="onboarding",
    refusal=_("Only a board administrator can decide on registration requests."),
    email_field="admin_email",
    email_send=staff_email_send,
)


# --- registration requests -------------------------------------------------------------------------


def registration_request_submit(
    *,
    name: str,
    address: str,
    city: str,
    postal_code: str,
    phone: str,
    time_zone: str,
    gmf: Gmf | None,
    emr_product: str,
    admin_name: str,
    admin_email: str,
    practitioners: list[PractitionerEntry],
    attested: bool,
    language: str,
    now: datetime | None = None,
) -> RegistrationRequest:
    """Record a clinic's request to join; the region comes from the postal code's FSA."""
    now = now or timezone.now()
    if not attested:
        raise ValidationError(_("The administrator must attest that the information is accurate."))
    if not practitioners:
        raise ValidationError(_("Name at least one practitioner."))
    fsa = Fsa.objects.filter(code=postal_code[:3]).first()
    if fsa is None:
        raise ValidationError(_("This postal code is not in a known area of Quebec."))
    with transaction.atomic():
        request = RegistrationRequest.objects.create(
            name=name,
            address=address,
            city=city,
            postal_code=postal_code,
            region_id=fsa.region_id,
            time_zone=time_zone,
            phone=phone,
            gmf=gmf,
            emr_product=emr_product,
            admin_name=admin_name,
            admin_email=admin_email,
            language=language if language in ("fr", "en") else "fr",
            attested=True,
            submitted_at=now,
        )
        RegistrationPractitioner.objects.bulk_create(
            [
                RegistrationPractitioner(
                    request=request, ramq_number=p.ramq_number, first_name=p.first_name, last_name=p.last_name
                )
                for p in practitioners
            ]
        )
    return request


# Called inside the approval's transaction with the new clinic (``clinic=, by=, now=``). ``sync``
# registers the EMR access grant here at start-up (domain apps never import ``sync``): a clinic
# approved with an EMR product is approved with its grant, all or nothing.
_approval_hooks: list[Callable[..., None]] = []


def clinic_approved_hook_register(hook: Callable[..., None]) -> None:
    if hook not in _approval_hooks:
        _approval_hooks.append(hook)


def registration_approve(*, request_id: int, by: User, now: datetime | None = None) -> Clinic:
    """Create the clinic from a pending request and invite its administrator, all or nothing.

    Practitioners already known by their RAMQ number are reused (their names are kept: the RAMQ
    number is the identity); each gets a role at the new clinic. The request row is locked first,
    so two reviewers approving at once create one clinic; the second is told it was decided.
    """
    now = now or timezone.now()
    REGISTRATIONS.require_board_admin(by)
    with transaction.atomic():
        request = REGISTRATIONS.pending_locked(request_id)
        fsa = Fsa.objects.get(code=request.postal_code[:3])
        clinic = Clinic.objects.create(
            name=request.name,
            address=request.address,
            city=request.city,
            postal_code=request.postal_code,
            latitude=fsa.latitude,
            longitude=fsa.longitude,
            region_id=request.region_id,
            time_zone=request.time_zone,
            phone=request.phone,
            gmf_id=request.gmf_id,
            emr_product=request.emr_product,
        )
        for entry in request.practitioners.all():
            practitioner, _created = Practitioner.objects.get_or_create(
                ramq_number=entry.ramq_number,
                defaults={"first_name": entry.first_name, "last_name": entry.last_name},
            )
            PractitionerRole.objects.get_or_create(practitioner=practitioner, clinic=clinic)
        for hook in _approval_hooks:
            hook(clinic=clinic, by=by, now=now)
        invitation, token = invitation_create(
            clinic=clinic,
            email=request.admin_email,
            role=ClinicMembership.Role.CLINIC_ADMIN,
            language=request.language,
            by=by,
            now=now,
        )
        context = {
            "request": request,
            "clinic": clinic,
            "invitation_url": _absolute(reverse("clinics:invitation", args=[token])),
            "expires_at": invitation.expires_at,
        }
        REGISTRATIONS.approve(
            request,
            by=by,
            now=now,
            template="registration_approved",
            context=context,
            audit_clinic=clinic,
            clinic=clinic,
        )
    return clinic


def registration_reject(*, request_id: int, by: User, reason: str, now: datetime | None = None) -> None:
    """Refuse a pending request with a reason that the requester reads in their e-mail."""
    now = now or timezone.now()
    reason = REGISTRATIONS.rejection_reason(by=by, reason=reason)
    with transaction.atomic():
        request = REGISTRATIONS.pending_locked(request_id)
        REGISTRATIONS.reject(
            request,
            by=by,
            now=now,
            reason=reason,
            template="registration_rejected",
            context={"request": request, "reason": reason},
        )


# --- invitations -----------------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_create(
    *,
    clinic: Clinic,
    email: str,
    role: str,
    language: str,
    by: User | None,
    now: datetime,
    practitioner: Practitioner | None = None,
) -> tuple[StaffInvitation, str]:
    """A new invitation and its token (returned once: only its digest is stored)."""
    token = secrets.token_urlsafe(32)
    invitation = StaffInvitation.objects.create(
        clinic=clinic,
        email=email,
        role=role,
        practitioner=practitioner,
        token_digest=_digest(token),
        language=language,
        created_at=now,
        expires_at=now + INVITATION_LIFETIME,
        invited_by=by,
    )
    return invitation, token


def invitation_get_valid(*, token: str, now: datetime | None = None) -> StaffInvitation | None:
    """The invitation behind a link, if it is still unused and unexpired."""
    now = now or timezone.now()
    return (
        StaffInvitation.objects.select_related("clinic")
        .filter(
            token_digest=_digest(token),
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=now,
            clinic__is_active=True,
        )
        .first()
    )


def invitation_accept(*, token: str, user: User, now: datetime | None = None) -> ClinicMembership:
    """Use the invitation once: ``user`` (whose e-mail must be the invited one) joins the clinic.

    Compare-and-set on ``accepted_at``: a link opened twice, or in two tabs at once, makes one
    membership; the second use is told the link is no longer valid. An earlier, deactivated
    membership at the same clinic is reactivated with the invited role.
    """
    now = now or timezone.now()
    invitation = invitation_get_valid(token=token, now=now)
    if invitation is None:
        raise ValidationError(_("This invitation link is no longer valid: ask for a new one."))
    if user.email.casefold() != invitation.email.casefold():
        raise PermissionDenied(_("This invitation was sent to another e-mail address."))
    with transaction.atomic():
        changed = StaffInvitation.objects.filter(
            pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
        ).update(accepted_at=now, accepted_by=user)
        if not changed:
            raise ValidationError(_("This invitation link is no longer valid: ask for a new one."))
        membership, created = ClinicMembership.objects.select_for_update().get_or_create(
            user=user,
            clinic=invitation.clinic,
            defaults={"role": invitation.role, "practitioner_id": invitation.practitioner_id},
        )
        if not created:
            membership.role = invitation.role
            membership.practitioner_id = invitation.practitioner_id
            membership.is_active = True
            membership.deactivated_at = None
            membership.save(update_fields=["role", "practitioner", "is_active", "deactivated_at"])
        if not user.is_active:
            User.objects.filter(pk=user.pk).update(is_active=True)
        staff_action_audit(
            by=user,
            clinic=invitation.clinic,
            action="accept",
            resource_type="StaffInvitation",
            resource_id=invitation.pk,
            purpose="onboarding",
            now=now,
        )
    return membership


def invitation_account_create(*, token: str, password: str, now: datetime | None = None) -> User:
    """Create the invited person's account (their e-mail is verified: the link reached it) and accept.

    A former staff member whose account was closed at offboarding cannot sign in any more: the
    invitation, which proves they read that inbox (as a password reset would), reopens the account
    with the new password. Refused when an active account has this e-mail: that person signs in,
    then accepts.
    """
    now = now or timezone.now()
    invitation = invitation_get_valid(token=token, now=now)
    if invitation is None:
        raise ValidationError(_("This invitation link is no longer valid: ask for a new one."))
    with transaction.atomic():
        user = User.objects.select_for_update().filter(email__iexact=invitation.email).first()
        if user is not None and user.is_active:
            raise ValidationError(_("An account already uses this e-mail address: sign in to accept."))
        if user is None:
            user = User.objects.create_user(
                email=invitation.email, password=password, preferred_language=invitation.language
            )
        else:
            user.set_password(password)
            user.is_active = True
            user.save(update_fields=["password", "is_active"])
        EmailAddress.objects.update_or_create(
            user=user,
            email__iexact=invitation.email,
            defaults={"email": user.email, "verified": True, "primary": True},
        )
        invitation_accept(token=token, user=user, now=now)
    return user
