"""Appointment writes: book, cancel, reschedule, move by the clinic, status changes."""

from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F
from django.db.models.signals import post_save, pre_save
from django.utils import timezone

from citizens.models import Citizen, User

from .. import errors
from ..models import (
    Appointment,
    Reason,
    Slot,
)
from ..selectors import appointment_is_cancellable
from ._common import (
    LOCK_TIMEOUT,
    ONLINE_CHANNELS,
    _check_online_rules,
    _enqueue_notification,
    _lock_citizen,
    _lock_timeout,
    logger,
    outbox_append,
)
from ._hot import booking_lock_and_read, booking_read, booking_write

CANCELLABLE_STATUSES = (Appointment.Status.BOOKED, Appointment.Status.ARRIVED)


def appointment_book(
    *,
    slot_id: int,
    citizen: Citizen,
    reason: str,
    channel: str,
    hold_token: str = "",
    booked_by_user: User | None = None,
    external_id: str = "",
    now: datetime | None = None,
) -> Appointment:
    """Book a slot: the first committed booking wins, on every channel.

    Online channels apply invariant 3 (audience, reason, notice, anti-hoarding limit); staff and
    EMR channels skip it and need no hold. A retried confirmation with the same hold token, or a
    retried EMR booking with the same ``external_id`` (the EMR's identifier, unique per clinic),
    returns the appointment it created instead of an error.
    """
    now = now or timezone.now()
    if hold_token:
        existing = _appointment_for_hold(hold_token, citizen, slot_id)
        if existing is not None:
            return existing
    if external_id:
        existing = _appointment_for_external_id(external_id, slot_id)
        if existing is not None:
            return existing
    try:
        with transaction.atomic():
            # Serializes one citizen's bookings, so that two tabs cannot both pass the limit check;
            # the slot is read in the same statement (its version decides in the compare-and-set).
            slot = booking_lock_and_read(citizen_id=citizen.pk, slot_id=slot_id, lock_timeout=LOCK_TIMEOUT)
            appointment = _book_in_transaction(
                slot=slot,
                slot_id=slot_id,
                citizen=citizen,
                reason=reason,
                channel=channel,
                hold_token=hold_token,
                booked_by_user=booked_by_user,
                external_id=external_id,
                now=now,
            )
    except errors.SlotUnavailable:
        if external_id:
            # A concurrent retry of the same EMR booking committed first: same answer as it got.
            existing = _appointment_for_external_id(external_id, slot_id)
            if existing is not None:
                return existing
        if hold_token:
            # A concurrent retry of the same confirmation committed first: same answer as it got.
            existing = _appointment_for_hold(hold_token, citizen, slot_id)
            if existing is not None:
                return existing
            if not _hold_is_live(slot_id, citizen, hold_token, now):
                # Nobody could have taken the slot under a live hold: the citizen's hold ran out.
                raise errors.HoldExpired from None
        raise
    except IntegrityError as exc:
        # The constraints are the last word; a race the checks above did not see ends here.
        name = str(exc)
        if "appt_no_overlap_per_citizen" in name:
            raise errors.PatientOverlap from exc
        if "idempotency_key" in name and hold_token:
            existing = _appointment_for_hold(hold_token, citizen, slot_id)
            if existing is not None:
                return existing
        if "appt_unique_external_id" in name and external_id:
            existing = _appointment_for_external_id(external_id, slot_id)
            if existing is not None:
                return existing
        raise errors.SlotUnavailable from exc
    except OperationalError as exc:
        if "lock timeout" in str(exc) or "lock_not_available" in str(exc):
            raise errors.Busy from exc
        raise
    logger.info("appointment booked", extra={"appointment_id": appointment.pk, "channel": channel})
    return appointment


def _book_in_transaction(
    *,
    slot_id: int,
    citizen: Citizen,
    reason: str,
    channel: str,
    hold_token: str,
    booked_by_user: User | None,
    external_id: str,
    now: datetime,
    rescheduled_from: Appointment | None = None,
    slot: Slot | None = None,
) -> Appointment:
    """The booking itself; the caller holds a transaction and the citizen's row lock.

    ``slot``: the slot as read with the lock (``booking_lock_and_read``), else it is read here. The
    rules are checked in Python on that version of the slot; then one statement reads the overlap
    and anti-hoarding guards, does the compare-and-set (conditional on them) that also releases the
    citizen's hold, and inserts the appointment and the outbox event (``booking_write``).
    """
    online = channel in ONLINE_CHANNELS
    if slot is None:
        slot = booking_read(slot_id)
    # Every channel: a partner-sandbox slot is for synthetic citizens only, and they are booked
    # nowhere else (docs/vendors.md), so a sandbox EMR cannot pull a real person into its sandbox.
    if slot.clinic.is_sandbox != citizen.is_synthetic:
        raise errors.SlotNotFound
    if online:
        # The limit is checked below, with the guards read after the lock.
        _check_online_rules(slot=slot, citizen=citizen, reason=reason, now=now, check_limit=False)
    elif reason not in Reason.values:
        raise errors.ReasonNotAccepted
    # The token is the retry key only if it is this slot's hold by this citizen (live or not).
    own_token = bool(hold_token) and slot.holder_id == citizen.pk and slot.hold_token == hold_token
    stamp = timezone.now()
    appointment = Appointment(
        slot=slot,
        citizen=citizen,
        clinic=slot.clinic,  # already read with the slot: the answer's serializer needs no query
        start=slot.start,
        end=slot.end,
        reason=reason,
        status=Appointment.Status.BOOKED,
        channel=channel,
        booked_by_user=booked_by_user,
        idempotency_key=hold_token if own_token else None,
        external_id=external_id,
        rescheduled_from=rescheduled_from,
        version=1,
        created_at=stamp,
        updated_at=stamp,
    )
    payload: dict[str, object] = {"slot_version": slot.version + 1, "appointment_version": 1}
    if rescheduled_from is not None:
        payload["rescheduled_from"] = rescheduled_from.pk
    pre_save.send(
        sender=Appointment, instance=appointment, raw=False, using=connection.alias, update_fields=None
    )
    # A hold token that is not this citizen's hold of this slot (it ran out and someone else held the
    # slot, or the clinic changed or withdrew the slot): never book a time they were not shown. The
    # guards are still read, so the refusals keep their order: the slot changed, limit, overlap,
    # the hold, then the compare-and-set.
    current, overlap, active, appointment_id, event_id = booking_write(
        slot=slot,
        appointment=appointment,
        online=online,
        go=not hold_token or own_token,
        now=now,
        payload=payload,
    )
    if not current:
        # Booked, changed or withdrawn while the citizen's lock was awaited: the slot read is stale.
        raise errors.SlotUnavailable
    if online and active >= settings.BOOKING_MAX_ACTIVE_ONLINE:
        raise errors.LimitReached
    if overlap:
        # Also a PostgreSQL exclusion constraint; this gives the friendly message.
        raise errors.PatientOverlap
    if appointment_id is None or event_id is None:
        # Taken, changed or held by someone else since the read: the compare-and-set decided.
        raise errors.SlotUnavailable
    appointment.pk = appointment_id
    appointment._state.adding = False
    appointment._state.db = connection.alias
    # The instances the caller gets are as the database now has them.
    slot.status = Slot.Status.BOOKED
    slot.version += 1
    slot.updated_at = now
    slot.holder_id = None
    slot.hold_expires = None
    slot.hold_token = ""
    post_save.send(
        sender=Appointment,
        instance=appointment,
        created=True,
        update_fields=None,
        raw=False,
        using=connection.alias,
    )
    if settings.NOTIFICATIONS_ON_COMMIT:
        # Otherwise (production) the beat relay hands the committed pending events to the workers.
        transaction.on_commit(lambda: _enqueue_notification(event_id))
    return appointment


def _appointment_for_hold(hold_token: str, citizen: Citizen, slot_id: int) -> Appointment | None:
    return Appointment.objects.filter(idempotency_key=hold_token, citizen=citizen, slot_id=slot_id).first()


def _appointment_for_external_id(external_id: str, slot_id: int) -> Appointment | None:
    """The appointment an EMR booked with this identifier at the slot's clinic, whichever slot."""
    clinic = Slot.objects.filter(pk=slot_id).values("clinic_id")
    return Appointment.objects.filter(clinic_id__in=clinic, external_id=external_id).first()


def _hold_is_live(slot_id: int, citizen: Citizen, hold_token: str, now: datetime) -> bool:
    return Slot.objects.filter(
        pk=slot_id, holder=citizen, hold_token=hold_token, hold_expires__gt=now
    ).exists()


def appointment_cancel(
    *,
    appointment: Appointment,
    reason: str,
    by_clinic: bool = False,
    channel: str = "",
    expected_version: int | None = None,
    now: datetime | None = None,
) -> Appointment:
    """Cancel an appointment and free its slot at once, in one transaction.

    A citizen may cancel online until the clinic's cut-off; the slot goes back to ``free`` (ready for
    the next citizen or the waitlist) unless the clinic withdrew or blocked it meanwhile. ``channel``
    names where the change came from in the outbox (``emr`` for a clinic's EMR, so that the change
    feed need not echo it back); ``expected_version`` makes it conditional (``If-Match``).
    """
    now = now or timezone.now()
    if reason not in Appointment.CancelReason.values:
        raise errors.InvalidCancelReason
    if appointment.status not in CANCELLABLE_STATUSES:
        raise errors.NotCancellable
    if not by_clinic:
        if appointment.status != Appointment.Status.BOOKED:
            raise errors.NotCancellable  # once arrived, only the clinic cancels
        if not appointment_is_cancellable(appointment, now=now):
            raise errors.CancelTooLate
    new_status = (
        Appointment.Status.CANCELLED_BY_CLINIC if by_clinic else Appointment.Status.CANCELLED_BY_CITIZEN
    )
    with transaction.atomic():
        _lock_timeout()
        current = Appointment.objects.filter(pk=appointment.pk, status__in=CANCELLABLE_STATUSES)
        if expected_version is not None:
            if not current.filter(version=expected_version).exists() and current.exists():
                raise errors.VersionMismatch
            current = current.filter(version=expected_version)
        changed = current.update(
            status=new_status,
            cancel_reason=reason,
            cancelled_at=now,
            version=F("version") + 1,
            updated_at=now,
        )
        if changed != 1:
            raise errors.NotCancellable
        freed = Slot.objects.filter(pk=appointment.slot_id, status=Slot.Status.BOOKED).update(
            status=Slot.Status.FREE, version=F("version") + 1, updated_at=now
        )
        appointment.refresh_from_db()
        slot_version = Slot.objects.filter(pk=appointment.slot_id).values_list("version", flat=True).get()
        outbox_append(
            kind="appointment.cancelled",
            clinic_id=appointment.clinic_id,
            slot=appointment.slot,
            appointment=appointment,
            channel=channel or ("clinic" if by_clinic else "citizen"),
            payload={
                "reason": reason,
                "slot_freed": bool(freed),
                "slot_version": slot_version,
                "appointment_version": appointment.version,
            },
            notify=True,
        )
    return appointment


# Status changes the clinic reports after the booking (cancellation has its own function).
STATUS_TRANSITIONS: dict[str, tuple[str, ...]] = {
    Appointment.Status.BOOKED: (Appointment.Status.ARRIVED, Appointment.Status.NOSHOW),
    Appointment.Status.ARRIVED: (Appointment.Status.FULFILLED,),
}


def appointment_set_status(
    *,
    appointment_id: int,
    status: str,
    expected_version: int | None = None,
    channel: str = Appointment.Channel.EMR,
    now: datetime | None = None,
) -> tuple[Appointment, bool]:
    """Move an appointment along booked → arrived → fulfilled, or booked → noshow.

    Returns the appointment and whether it changed: the status it already has changes nothing (a
    retried update), any other move outside ``STATUS_TRANSITIONS`` is refused. The slot stays
    occupied: arrived, fulfilled and no-show appointments all occupy it.
    """
    now = now or timezone.now()
    with transaction.atomic():
        _lock_timeout()
        appointment = Appointment.objects.filter(pk=appointment_id).first()
        if appointment is None:
            raise errors.AppointmentNotFound
        if expected_version is not None and appointment.version != expected_version:
            raise errors.VersionMismatch
        if appointment.status == status:
            return appointment, False
        if status not in STATUS_TRANSITIONS.get(appointment.status, ()):
            raise errors.InvalidStatusChange
        changed = Appointment.objects.filter(
            pk=appointment_id, status=appointment.status, version=appointment.version
        ).update(status=status, version=F("version") + 1, updated_at=now)
        if changed != 1:
            raise errors.VersionMismatch  # changed meanwhile: the caller reads it again
        appointment.refresh_from_db()
        outbox_append(
            kind=f"appointment.{status}",
            clinic_id=appointment.clinic_id,
            slot=None,
            appointment=appointment,
            channel=channel,
            payload={"appointment_version": appointment.version},
        )
    return appointment, True


def _release_for_move(appointment: Appointment, *, by_clinic: bool, now: datetime) -> None:
    """Inside a move's transaction: cancel the old appointment (reason ``rescheduled``), free its
    slot and write the outbox event; the caller then books the new slot in the same transaction."""
    released = Appointment.objects.filter(pk=appointment.pk, status=Appointment.Status.BOOKED).update(
        status=Appointment.Status.CANCELLED_BY_CLINIC
        if by_clinic
        else Appointment.Status.CANCELLED_BY_CITIZEN,
        cancel_reason=Appointment.CancelReason.RESCHEDULED,
        cancelled_at=now,
        version=F("version") + 1,
        updated_at=now,
    )
    if released != 1:
        raise errors.NotCancellable
    freed = Slot.objects.filter(pk=appointment.slot_id, status=Slot.Status.BOOKED).update(
        status=Slot.Status.FREE, version=F("version") + 1, updated_at=now
    )
    appointment.refresh_from_db()
    slot_version = Slot.objects.filter(pk=appointment.slot_id).values_list("version", flat=True).get()
    outbox_append(
        kind="appointment.cancelled",
        clinic_id=appointment.clinic_id,
        slot=appointment.slot,
        appointment=appointment,
        channel="clinic" if by_clinic else "citizen",
        payload={
            "reason": Appointment.CancelReason.RESCHEDULED,
            "slot_freed": bool(freed),
            "slot_version": slot_version,
            "appointment_version": appointment.version,
        },
    )


def appointment_reschedule(
    *,
    appointment: Appointment,
    new_slot_id: int,
    channel: str,
    hold_token: str = "",
    reason: str = "",
    now: datetime | None = None,
) -> Appointment:
    """Move a citizen's appointment to another slot in one step: the new slot is booked and the old
    one released in the same transaction, never both and never neither.

    The old appointment must still be cancellable online (the clinic's cut-off); it is cancelled
    first inside the transaction, so that the limit and overlap rules see the citizen as they will
    be afterwards; if the new booking is refused, everything rolls back and the old one stands.
    """
    now = now or timezone.now()
    citizen = appointment.citizen
    if citizen is None:  # anonymized: long past, or its citizen closed their account
        raise errors.NotCancellable
    if hold_token:
        existing = _appointment_for_hold(hold_token, citizen, new_slot_id)
        if existing is not None and existing.rescheduled_from_id == appointment.pk:
            return existing  # a retried confirmation: the same answer as the first time
    if appointment.slot_id == new_slot_id:
        raise errors.SameSlot
    if appointment.status != Appointment.Status.BOOKED:
        raise errors.NotCancellable
    if not appointment_is_cancellable(appointment, now=now):
        raise errors.CancelTooLate
    reason = reason or appointment.reason
    try:
        with transaction.atomic():
            _lock_citizen(citizen.pk)
            _release_for_move(appointment, by_clinic=False, now=now)
            new = _book_in_transaction(
                slot_id=new_slot_id,
                citizen=citizen,
                reason=reason,
                channel=channel,
                hold_token=hold_token,
                booked_by_user=None,
                external_id="",
                now=now,
                rescheduled_from=appointment,
            )
    except errors.SlotUnavailable:
        appointment.refresh_from_db()
        if hold_token:
            existing = _appointment_for_hold(hold_token, citizen, new_slot_id)
            if existing is not None and existing.rescheduled_from_id == appointment.pk:
                return existing
            if not _hold_is_live(new_slot_id, citizen, hold_token, now):
                raise errors.HoldExpired from None
        raise
    except IntegrityError as exc:
        appointment.refresh_from_db()
        if "appt_no_overlap_per_citizen" in str(exc):
            raise errors.PatientOverlap from exc
        raise errors.SlotUnavailable from exc
    except errors.ApplicationError:
        appointment.refresh_from_db()  # rolled back: the old appointment stands
        raise
    except OperationalError as exc:
        if "lock timeout" in str(exc) or "lock_not_available" in str(exc):
            raise errors.Busy from exc
        raise
    logger.info("appointment rescheduled", extra={"appointment_id": new.pk, "from_id": appointment.pk})
    return new


def appointment_move_by_clinic(
    *,
    appointment: Appointment,
    new_slot_id: int,
    by: User | None,
    now: datetime | None = None,
) -> Appointment:
    """The clinic moves an appointment to another of its free slots: all or nothing.

    The same pattern as ``appointment_reschedule`` without the online cut-off (the clinic moves its
    own appointments at any time before they start): the citizen's row is locked, the old
    appointment is cancelled by the clinic and its slot freed, then the new slot is booked on the
    clinic-agenda channel, in one transaction. If the new booking is refused the old appointment
    stands. Only the new booking notifies the citizen, so they get one confirmation of the new time.
    """
    now = now or timezone.now()
    citizen = appointment.citizen
    if appointment.slot_id == new_slot_id:
        raise errors.SameSlot
    if appointment.status != Appointment.Status.BOOKED or appointment.start <= now or citizen is None:
        raise errors.NotCancellable
    if not Slot.objects.filter(pk=new_slot_id, clinic_id=appointment.clinic_id).exists():
        raise errors.SlotNotFound  # a clinic moves appointments only within its own agenda
    try:
        with transaction.atomic():
            _lock_citizen(citizen.pk)
            _release_for_move(appointment, by_clinic=True, now=now)
            new = _book_in_transaction(
                slot_id=new_slot_id,
                citizen=citizen,
                reason=appointment.reason,
                channel=Appointment.Channel.CLINIC_AGENDA,
                hold_token="",
                booked_by_user=by,
                external_id="",
                now=now,
                rescheduled_from=appointment,
            )
    except IntegrityError as exc:
        appointment.refresh_from_db()
        if "appt_no_overlap_per_citizen" in str(exc):
            raise errors.PatientOverlap from exc
        raise errors.SlotUnavailable from exc
    except errors.ApplicationError:
        appointment.refresh_from_db()  # rolled back: the old appointment stands
        raise
    except OperationalError as exc:
        if "lock timeout" in str(exc) or "lock_not_available" in str(exc):
            raise errors.Busy from exc
        raise
    logger.info("appointment moved by clinic", extra={"appointment_id": new.pk, "from_id": appointment.pk})
    return new
