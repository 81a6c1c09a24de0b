"""A citizen's own data (Law 25, docs/privacy.md): see and download it, close the account.

``citizen_data`` gathers everything the service keeps about a citizen and the dependants in their
care; ``citizen_data_audit`` records the read in the citizen chain (ids only). ``account_close``
cancels the citizen's future appointments through the booking service (slots freed, outbox events,
the EMR told as on any cancellation), withdraws their waitlist requests, ends the links with
dependants and guardians, anonymizes their appointments and erases contact details, deactivates
the account (which ends its sessions everywhere) and e-mails a confirmation in their language.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone, translation

from citizens.models import Citizen, Dependant, Enrolment, User
from citizens.selectors import dependants_of
from clinics.audit_chain import chain_append, chain_for_model
from clinics.models import BoardRole, ClinicMembership

from . import errors
from .models import OCCUPYING_STATUSES, Appointment, CitizenDataEvent, Reason, Reminder, Slot
from .selectors import appointment_is_cancellable
from .services import appointment_cancel
from .services._common import _lock_timeout
from .services.retention import appointments_anonymize, waitlist_anonymize
from .waitlist.models import WaitlistOffer, WaitlistRequest
from .waitlist.services import waitlist_request_withdraw

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "rdv-sante-quebec/citizen-data"
EXPORT_VERSION = 1


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _label(choices: Any, code: str) -> dict[str, str]:
    """A code with its label in the current language: readable, and stable for machines."""
    labels = dict(choices)
    return {"code": code, "label": str(labels.get(code, code))}


def _appointment(row: Appointment) -> dict[str, Any]:
    tz = row.clinic.tz
    return {
        "reference": row.reference,
        "clinic": row.clinic.name,
        "practitioner": row.slot.practitioner.display_name,
        "start": _instant(row.start),
        "start_local": row.start.astimezone(tz).isoformat(),
        "end": _instant(row.end),
        "reason": _label(Reason.choices, row.reason),
        "status": _label(Appointment.Status.choices, row.status),
        "channel": _label(Appointment.Channel.choices, row.channel),
        "modality": row.slot.modality,
        "booked_at": _instant(row.created_at),
        "cancelled_at": _instant(row.cancelled_at),
        "cancel_reason": _label(Appointment.CancelReason.choices, row.cancel_reason)
        if row.cancel_reason
        else None,
        "rescheduled_from": row.rescheduled_from.reference if row.rescheduled_from else None,
        "reminders": [
            {
                "kind": _label(Reminder.Kind.choices, r.kind),
                "channel": _label(Reminder.Channel.choices, r.channel),
                "state": _label(Reminder.State.choices, r.state),
                "due_at": _instant(r.due_at),
                "sent_at": _instant(r.sent_at),
            }
            for r in row.reminders.all()
        ],
    }


def _waitlist_request(row: WaitlistRequest) -> dict[str, Any]:
    return {
        "path": _label(WaitlistRequest.Path.choices, row.path),
        "reason": _label(Reason.choices, row.reason),
        "postal_area": row.fsa,
        "radius_km": row.radius_km,
        "date_from": row.date_from.isoformat(),
        "date_to": row.date_to.isoformat(),
        "time_of_day": row.time_of_day,
        "channel": _label(WaitlistRequest.Channel.choices, row.channel),
        "language": row.language,
        "status": _label(WaitlistRequest.Status.choices, row.status),
        "created_at": _instant(row.created_at),
        "ended_at": _instant(row.ended_at),
        "offers": [
            {
                "status": _label(WaitlistOffer.Status.choices, o.status),
                "clinic": o.slot.clinic.name,
                "slot_start": _instant(o.slot.start),
                "offered_at": _instant(o.created_at),
                "answered_at": _instant(o.answered_at),
            }
            for o in row.offers.all()
        ],
    }


def _person(
    person: Citizen, *, relationship: str = "", attested_at: datetime | None = None
) -> dict[str, Any]:
    appointments = (
        Appointment.objects.filter(citizen=person)
        .select_related("clinic", "slot__practitioner", "rescheduled_from")
        .prefetch_related("reminders")
        .order_by("start", "pk")
    )
    requests = (
        WaitlistRequest.objects.filter(citizen=person)
        .prefetch_related("offers__slot__clinic")
        .order_by("created_at", "pk")
    )
    enrolments = (
        Enrolment.objects.filter(citizen=person).select_related("practitioner", "gmf").order_by("since")
    )
    return {
        "id": person.pk,
        "relationship": _label(Dependant.Relationship.choices, relationship) if relationship else None,
        "attested_at": _instant(attested_at),
        "identity": {
            "health_insurance_number": person.nam,
            "card_sequence": person.card_sequence,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "birth_date": person.birth_date.isoformat(),
            "sex": person.sex,
            "postal_code": person.postal_code,
            "card_expires": person.card_expires.isoformat() if person.card_expires else None,
        },
        "notification_preferences": {
            "language": person.preferred_language,
            "email": person.email,
            "mobile": person.mobile,
        },
        "enrolments": [
            {
                "practitioner": e.practitioner.display_name,
                "gmf": e.gmf.name if e.gmf else None,
                "since": e.since.isoformat(),
                "active": e.is_active,
            }
            for e in enrolments
        ],
        "appointments": [_appointment(a) for a in appointments],
        "waitlist_requests": [_waitlist_request(r) for r in requests],
    }


def citizen_data(*, citizen: Citizen, user: User | None, now: datetime | None = None) -> dict[str, Any]:
    """Everything kept about ``citizen`` and the dependants in their care, as one JSON-ready dict.

    ``user`` is the signed-in account acting for the citizen (its own details are included), or
    None for a card identification. Labels follow the active language; codes never change.
    """
    now = now or timezone.now()
    links = dependants_of(guardian=citizen)
    acting_for_me = Dependant.objects.filter(citizen=citizen).order_by("created_at", "pk")
    account = None
    if user is not None:
        account = {
            "email": user.email,
            "language": user.preferred_language,
            "created_at": _instant(user.date_joined),
            "last_sign_in": _instant(user.last_login),
        }
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "generated_at": _instant(now),
        "account": account,
        "you": _person(citizen),
        "dependants": [
            _person(d.citizen, relationship=d.relationship, attested_at=d.attested_at) for d in links
        ],
        # Who may act for this citizen: the consent given (relationship, when), never their identity.
        "acting_for_you": [
            {
                "relationship": _label(Dependant.Relationship.choices, link.relationship),
                "attested_at": _instant(link.attested_at),
            }
            for link in acting_for_me
        ],
    }


def _audit(*, actor: Citizen, user: User | None, action: str, person_ids: list[int], now: datetime) -> None:
    rows = [
        CitizenDataEvent(
            actor_id=actor.pk, user_id=user.pk if user else None, action=action, resource_id=pk, at=now
        )
        for pk in dict.fromkeys(person_ids)
    ]
    chain_append(chain_for_model(CitizenDataEvent), rows)


def citizen_data_audit(*, citizen: Citizen, user: User | None, data: dict[str, Any], action: str) -> None:
    """One row per person whose data ``data`` carried (the citizen and each dependant)."""
    ids = [data["you"]["id"], *(d["id"] for d in data["dependants"])]
    _audit(actor=citizen, user=user, action=action, person_ids=ids, now=timezone.now())


# --- closing ---------------------------------------------------------------------------------------


class CloseRefused(Exception):  # noqa: N818
    """The account cannot be closed online: ``code`` says why (``too_late``: an appointment is past
    the clinic's online cancellation cut-off, or the patient has arrived: call the clinic; ``staff``:
    the account also signs in to clinic or board work; ``sign_in``: the card is linked to an account,
    which only its holder, signed in, may close; ``changed``: an appointment was booked while
    closing, nothing more was done). ``appointments`` names the appointments concerned."""

    def __init__(self, code: str, appointments: list[Appointment] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.appointments = appointments or []


@dataclass
class ClosedAccount:
    cancelled: list[Appointment] = field(default_factory=list)
    waitlist_withdrawn: int = 0
    links_ended: int = 0
    appointments_anonymized: int = 0


def future_appointments(*, citizen: Citizen, now: datetime) -> list[Appointment]:
    return list(
        Appointment.objects.filter(citizen=citizen, status=Appointment.Status.BOOKED, start__gt=now)
        .select_related("clinic", "slot__practitioner")
        .order_by("start")
    )


def close_check(*, citizen: Citizen, user: User | None, now: datetime | None = None) -> list[Appointment]:
    """Raise CloseRefused when the account cannot be closed online; else the appointments that
    closing will cancel."""
    now = now or timezone.now()
    if user is not None and (
        user.is_staff
        or user.is_superuser
        or ClinicMembership.objects.filter(user=user).exists()
        or BoardRole.objects.filter(user=user).exists()
    ):
        raise CloseRefused("staff")
    if user is None and citizen.account_id is not None:
        raise CloseRefused("sign_in")  # the card alone does not close someone's account
    future = future_appointments(citizen=citizen, now=now)
    arrived = Appointment.objects.filter(citizen=citizen, status=Appointment.Status.ARRIVED, start__gt=now)
    too_late = [a for a in future if not appointment_is_cancellable(a, now=now)]
    too_late += list(arrived.select_related("clinic"))
    if too_late:
        raise CloseRefused("too_late", too_late)
    return future


def account_close(*, citizen: Citizen, user: User | None, now: datetime | None = None) -> ClosedAccount:
    """Close the citizen's account (docs/privacy.md, "Closing an account").

    Each cancellation is the booking service's own (one transaction each: the slot is freed once,
    the version bumped, the outbox event written, so the EMR and the waitlist hear of it). Then one
    transaction, the citizen row locked so that two closings queue, erases and anonymizes. Two
    closings at once: the second finds the appointments already cancelled and nothing left to do.
    """
    now = now or timezone.now()
    result = ClosedAccount()
    for appointment in close_check(citizen=citizen, user=user, now=now):
        try:
            result.cancelled.append(
                appointment_cancel(
                    appointment=appointment, reason=Appointment.CancelReason.OTHER, channel="citizen", now=now
                )
            )
        except errors.NotCancellable:
            continue  # cancelled meanwhile (another tab, the clinic): nothing to free
    # Their own requests, and those they made for a dependant (offers would be sent to them).
    for request_id in WaitlistRequest.objects.filter(
        Q(citizen=citizen) | Q(requested_by=citizen), status=WaitlistRequest.Status.ACTIVE
    ).values_list("pk", flat=True):
        waitlist_request_withdraw(citizen=citizen, request_id=request_id, now=now)
        result.waitlist_withdrawn += 1
    _close_in_transaction(citizen=citizen, user=user, now=now, result=result)
    logger.info(
        "account closed",
        extra={"citizen_id": citizen.pk, "cancelled": len(result.cancelled), "links": result.links_ended},
    )
    return result


def _close_in_transaction(
    *, citizen: Citizen, user: User | None, now: datetime, result: ClosedAccount
) -> None:
    """The erasing step, after the cancellations. Bookings lock the citizen row too: once it is
    locked here, none is half done, and one committed since the cancellations stops the closing
    (an occupying future appointment is never anonymized)."""
    with transaction.atomic():
        _lock_timeout()
        # Read under the lock: a second closing queued behind the first finds no address left, and
        # sends no second confirmation.
        locked = Citizen.objects.select_for_update().get(pk=citizen.pk)
        email, language = locked.email, locked.preferred_language
        booked_meanwhile = list(
            Appointment.objects.filter(citizen=citizen, status__in=OCCUPYING_STATUSES, start__gt=now)
        )
        if booked_meanwhile:
            raise CloseRefused("changed", booked_meanwhile)
        dependant_ids = list(Dependant.objects.filter(guardian=citizen).values_list("citizen_id", flat=True))
        if email:
            # A child's confirmations went to the holder's address: it is the holder's, erased too.
            Citizen.objects.filter(pk__in=dependant_ids, email=email).update(email="")
        result.links_ended, _ = Dependant.objects.filter(Q(guardian=citizen) | Q(citizen=citizen)).delete()
        # A hold is the citizen's id on a slot row: released (a hold has no version, no event).
        Slot.objects.filter(holder=citizen).update(holder=None, hold_expires=None, hold_token="")
        result.appointments_anonymized = appointments_anonymize(
            Appointment.objects.filter(citizen=citizen)
        ).appointments
        waitlist_anonymize(WaitlistRequest.objects.filter(citizen=citizen))
        # Requests they made for a dependant keep the child, not who asked.
        WaitlistRequest.objects.filter(requested_by=citizen).exclude(
            status=WaitlistRequest.Status.ACTIVE
        ).update(requested_by=None)
        Citizen.objects.filter(pk=citizen.pk).update(email="", mobile="", account=None)
        if user is not None:
            # Appointments the account booked for others (dependants) keep the patient, not the booker.
            Appointment.objects.filter(booked_by_user=user).update(booked_by_user=None)
            _account_deactivate(user)
        _audit(
            actor=citizen, user=user, action=CitizenDataEvent.Action.CLOSE, person_ids=[citizen.pk], now=now
        )
        if email:
            transaction.on_commit(lambda: _send_closed_email(email, language, result))
    citizen.email, citizen.mobile, citizen.account = "", "", None


def _account_deactivate(user: User) -> None:
    """The account row stays (ids in logs point to it) with nothing personal left: no address, no
    name, no password, no second factor. A new password hash changes the session hash, so every
    other browser signed in to it is signed out at its next request."""
    from allauth.account.models import EmailAddress
    from allauth.mfa.models import Authenticator

    EmailAddress.objects.filter(user=user).delete()
    Authenticator.objects.filter(user=user).delete()
    user.email = f"closed-{user.pk}@closed.invalid"
    user.first_name = user.last_name = ""
    user.is_active = False
    user.set_unusable_password()
    user.save(update_fields=["email", "first_name", "last_name", "is_active", "password"])


def _send_closed_email(email: str, language: str, result: ClosedAccount) -> None:
    try:
        with translation.override(language or settings.LANGUAGE_CODE):
            context = {"cancelled": result.cancelled, "site_url": settings.SITE_URL}
            subject = render_to_string("booking/email/account_closed_subject.txt", context).strip()
            text = render_to_string("booking/email/account_closed.txt", context)
        message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [email])
        message.send()
    except Exception:  # noqa: BLE001 - the account is closed; a lost confirmation must not undo it
        logger.warning("account closed e-mail not sent", exc_info=True)
