"""Slot holds: a citizen keeps a free slot while confirming."""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from citizens.models import Citizen

from .. import errors
from ..models import (
    Appointment,
    Slot,
)
from ._common import (
    _check_online_rules,
    _get_slot,
    _live_hold_by_other,
    _lock_citizen,
)


@dataclass(frozen=True)
class Hold:
    slot_id: int
    token: str
    expires: datetime


def slot_hold(
    *,
    slot_id: int,
    citizen: Citizen,
    now: datetime | None = None,
    to_reschedule: Appointment | None = None,
    seconds: int | None = None,
) -> Hold:
    """Hold a free slot for ``BOOKING_HOLD_SECONDS`` so that nobody takes it while the citizen confirms.

    One hold per citizen: taking a new one releases the previous one in the same transaction. The
    compare-and-set succeeds only if the slot is free and not under someone else's live hold; a
    hold is not a change of the slot's published state, so it neither bumps the version nor writes
    an outbox event (EMRs never see holds). Holding the same slot again returns the same hold
    without extending it: a slot cannot be kept out of reach by holding it over and over.

    ``to_reschedule``: the citizen's own booked appointment this hold would replace; the limit of
    active appointments is then not a reason to refuse (rescheduling does not add one).

    ``seconds``: the hold's length when not ``BOOKING_HOLD_SECONDS`` (a waitlist offer holds the slot
    for the whole time the citizen has to answer, ``WAITLIST_OFFER_SECONDS``).
    """
    now = now or timezone.now()
    slot = _get_slot(slot_id)
    replacing = (
        to_reschedule is not None
        and to_reschedule.citizen_id == citizen.pk
        and to_reschedule.status == Appointment.Status.BOOKED
    )
    _check_online_rules(slot=slot, citizen=citizen, reason=None, now=now, check_limit=not replacing)
    with transaction.atomic():
        # Serializes one citizen's holds, so that parallel requests cannot leave several live holds.
        _lock_citizen(citizen.pk)
        Slot.objects.filter(holder=citizen).exclude(pk=slot_id).update(
            holder=None, hold_expires=None, hold_token=""
        )
        live = (
            Slot.objects.filter(pk=slot_id, holder=citizen, hold_expires__gt=now)
            .values_list("hold_token", "hold_expires")
            .first()
        )
        if live and live[1] is not None:  # hold_expires__gt matched, so it is never None here
            return Hold(slot_id=slot_id, token=live[0], expires=live[1])
        token = secrets.token_hex(16)
        expires = now + timedelta(seconds=seconds or settings.BOOKING_HOLD_SECONDS)
        changed = (
            Slot.objects.filter(pk=slot_id, status=Slot.Status.FREE)
            .exclude(_live_hold_by_other(citizen.pk, now))
            .update(holder=citizen, hold_expires=expires, hold_token=token)
        )
        if changed != 1:
            raise errors.SlotUnavailable
    return Hold(slot_id=slot_id, token=token, expires=expires)


def slot_release_hold(*, citizen: Citizen) -> None:
    Slot.objects.filter(holder=citizen).update(holder=None, hold_expires=None, hold_token="")


def slot_release_hold_token(*, slot_id: int, token: str) -> bool:
    """Release one given hold (a waitlist offer that ended): compare-and-set on its token, so that a
    hold someone else took meanwhile is never touched."""
    if not token:
        return False
    return bool(
        Slot.objects.filter(pk=slot_id, hold_token=token).update(
            holder=None, hold_expires=None, hold_token=""
        )
    )
