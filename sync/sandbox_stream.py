"""The simulated citizen stream of a partner sandbox (docs/vendors.md).

Each step books one free public slot of the vendor's sandbox clinics for one of its synthetic
citizens, and cancels the oldest of their future bookings once they hold a few, through the same
booking services as the portal (online rules, compare-and-set, outbox in the same transaction). The
vendor's client therefore sees genuine portal-side changes in its feed and webhooks, and a desk
booking it tries on a slot taken this way gets the real 409.
"""

import datetime as dt
import logging
import random
from dataclasses import dataclass

from django.utils import timezone

from booking import errors
from booking.models import Appointment, Audience, Slot
from booking.services import appointment_book, appointment_cancel

from .models import EmrVendor

logger = logging.getLogger(__name__)

KEEP_BOOKED = 3  # beyond this many future bookings, a step also cancels the oldest one
ATTEMPTS = 5


@dataclass(frozen=True)
class StreamStep:
    booked: int
    cancelled: int


def sandbox_stream_step(
    *,
    vendor: EmrVendor,
    now: dt.datetime | None = None,
    rng: random.Random | None = None,
    slot_id: int | None = None,
) -> StreamStep:
    """One step; ``slot_id`` books that sandbox slot on demand (the conformance kit's 409 scenario:
    a citizen takes on the portal a slot the vendor just published)."""
    now = now or timezone.now()
    rng = rng or random.Random()
    clinic_ids = list(vendor.sandbox_clinics.values_list("pk", flat=True))
    people = list(vendor.synthetic_citizens.all())
    if not clinic_ids or not people:
        return StreamStep(0, 0)
    booked = cancelled = 0
    free = list(
        Slot.objects.filter(
            clinic_id__in=clinic_ids, status=Slot.Status.FREE, audience=Audience.PUBLIC, start__gt=now
        )
        .exclude(hold_expires__gt=now)
        .filter(**({"pk": slot_id} if slot_id is not None else {}))
        .order_by("start")[:50]
    )
    rng.shuffle(free)
    for slot in free[:ATTEMPTS]:
        reasons = slot.reason_codes
        if not reasons:
            continue
        try:
            appointment_book(
                slot_id=slot.pk,
                citizen=rng.choice(people),
                reason=rng.choice(reasons),
                channel="portal",
                now=now,
            )
        except errors.ApplicationError as exc:  # taken meanwhile, a limit, too soon: try another
            logger.info("sandbox stream: booking refused", extra={"slot_id": slot.pk, "code": exc.code})
            continue
        booked = 1
        break
    upcoming = Appointment.objects.filter(
        clinic_id__in=clinic_ids,
        citizen__in=people,
        status=Appointment.Status.BOOKED,
        start__gt=now + dt.timedelta(hours=24),  # well past any clinic's cancellation cut-off
    ).order_by("created_at", "pk")
    if upcoming.count() > KEEP_BOOKED:
        oldest = upcoming.first()
        assert oldest is not None
        try:
            appointment_cancel(appointment=oldest, reason="cannot_attend", now=now)
            cancelled = 1
        except errors.ApplicationError as exc:
            logger.info("sandbox stream: cancellation refused", extra={"code": exc.code})
    return StreamStep(booked, cancelled)


def sandbox_streams(*, now: dt.datetime | None = None) -> StreamStep:
    """One step for every approved vendor's sandbox."""
    booked = cancelled = 0
    for vendor in EmrVendor.objects.filter(status=EmrVendor.Status.APPROVED):
        step = sandbox_stream_step(vendor=vendor, now=now)
        booked += step.booked
        cancelled += step.cancelled
    return StreamStep(booked, cancelled)
