"""Clinic-side writes: staff offboarding, phone bookings. Keyword-only arguments; the clock ``now``."""

from datetime import datetime

from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from booking import errors as booking_errors
from booking.models import Appointment, Slot
from booking.services import appointment_book
from citizens.models import Citizen, User

from .models import BoardRole, Clinic, ClinicMembership, PhoneBookingNote
from .selectors import active_future_count, clinic_ids_for_staff


def user_sessions_end(*, user_id: int) -> int:
    """Delete every live session of this account, so that its next request is anonymous.

    Sessions are stored in the database (Django's default engine) and do not index their user: the
    scan reads live sessions only and runs on offboarding, a rare action. Returns how many ended.
    """
    ended = []
    live = Session.objects.filter(expire_date__gt=timezone.now()).only("session_key", "session_data")
    for session in live.iterator(chunk_size=2000):
        if str(session.get_decoded().get("_auth_user_id")) == str(user_id):
            ended.append(session.session_key)
    Session.objects.filter(session_key__in=ended).delete()
    return len(ended)


def membership_deactivate(*, by: User, membership: ClinicMembership, now: datetime | None = None) -> bool:
    """Offboard a staff member from one clinic: access ends at once.

    Only an administrator of the membership's own clinic may do it, and not on their own membership
    (a clinic must never lock itself out by mistake). The person's sessions end in the same
    transaction; when no other active membership or board role is left, the account is deactivated
    too. Deactivating twice changes nothing and returns False.
    """
    now = now or timezone.now()
    if membership.clinic_id not in clinic_ids_for_staff(by, roles=[ClinicMembership.Role.CLINIC_ADMIN]):
        raise PermissionDenied(_("Only an administrator of this clinic can deactivate its staff."))
    if membership.user_id == by.pk:
        raise ValidationError(_("You cannot deactivate your own access; ask another administrator."))
    with transaction.atomic():
        # Compare-and-set: of two administrators clicking at once, one deactivates, the other no-ops.
        changed = ClinicMembership.objects.filter(pk=membership.pk, is_active=True).update(
            is_active=False, deactivated_at=now
        )
        if not changed:
            return False
        still_staff = (
            ClinicMembership.objects.filter(user_id=membership.user_id, is_active=True).exists()
            or BoardRole.objects.filter(user_id=membership.user_id, is_active=True).exists()
        )
        if not still_staff:
            User.objects.filter(pk=membership.user_id).update(is_active=False)
        user_sessions_end(user_id=membership.user_id)
    membership.refresh_from_db()
    return True


def phone_booking_make(
    *,
    clinic: Clinic,
    citizen: Citizen,
    slot_id: int,
    reason: str,
    by: User,
    over_limit_reason: str = "",
    now: datetime | None = None,
) -> Appointment:
    """Book one of this clinic's free slots for a caller, through the one booking service.

    The clinic-agenda channel keeps invariants 1, 2, 4 and 5 and skips the online rules. Staff may
    pass the online limit of upcoming appointments, but only with a written reason: the count is
    taken under the citizen's row lock, and the reason is stored with the booking, all or nothing.
    """
    now = now or timezone.now()
    if not Slot.objects.filter(pk=slot_id, clinic=clinic).exists():
        raise booking_errors.SlotNotFound  # never another clinic's slot, whatever the form says
    over_limit_reason = over_limit_reason.strip()
    with transaction.atomic():
        Citizen.objects.select_for_update().filter(pk=citizen.pk).first()
        over_limit = active_future_count(citizen=citizen, now=now) >= settings.BOOKING_MAX_ACTIVE_ONLINE
        if over_limit and not over_limit_reason:
            raise booking_errors.OverLimitReasonRequired
        appointment = appointment_book(
            slot_id=slot_id,
            citizen=citizen,
            reason=reason,
            channel=Appointment.Channel.CLINIC_AGENDA,
            booked_by_user=by,
            now=now,
        )
        if over_limit:
            PhoneBookingNote.objects.create(
                clinic=clinic, appointment=appointment, by=by, reason=over_limit_reason[:300], at=now
            )
    return appointment
