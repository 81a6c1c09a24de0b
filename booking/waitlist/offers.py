"""Offering slots to waiting citizens, and the dispatcher that drives it (docs/waitlist.md).

The fair rule: a free slot is offered to the waiting citizen whose matching request is the oldest
(first come, first offered), one citizen at a time. The offer puts the slot's own hold on it for
``WAITLIST_OFFER_SECONDS`` (the hold is the compare-and-set guard of the booking contract: nobody
else can hold or book it meanwhile); an unanswered offer expires and the slot passes to the next
request in the same order; a declined one passes on at once (``services``).

Two workers may try to offer the same slot at once: the hold's compare-and-set lets one of them
hold it, and the partial unique index on live offers per slot refuses a second offer row even for
the same citizen. Every function takes the application clock ``now`` (tests move it).
"""

import logging
import math
import secrets
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from .. import errors
from ..models import OCCUPYING_STATUSES, Appointment, Audience, OutboxEvent, Slot
from ..reminders import WINDOW_END, in_sending_window
from ..selectors import KM_PER_DEGREE, QUEBEC_TZ, RADII_KM, TIME_OF_DAY
from ..services import _check_online_rules, slot_hold
from .models import WaitlistOffer, WaitlistRequest
from .services import (
    _end_offer,
    _quiet_hours,
    _reachable,
    _setting,
    contact_of,
    offer_seconds,
    still_in_care,
    token_hash,
    waitlist_requests_expire,
)

logger = logging.getLogger(__name__)

# Outbox events after which a slot may have become free for the waitlist: a cancellation (including
# the release step of a reschedule or of a clinic's move), a publication, an update (unblocked,
# opened to the public).
FREEING_KINDS = ("appointment.cancelled", "slot.created", "slot.updated")
# Offers that ended without a booking within the look-back: their slots pass on (a lost task).
ENDED_UNBOOKED = (
    WaitlistOffer.Status.DECLINED,
    WaitlistOffer.Status.EXPIRED,
    WaitlistOffer.Status.FAILED,
    WaitlistOffer.Status.WITHDRAWN,
)
# Slots freed at night are offered from 8:00: until this Quebec time, the dispatcher also reads the
# outbox back to the previous evening's 21:00.
MORNING_CATCH_UP_UNTIL = time(10, 0)


# --- offering --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfferMade:
    """A new offer and the link's token: the token exists only here and in the message sent."""

    offer: WaitlistOffer
    token: str


def _time_of_day(hour: int) -> str:
    return next(name for name, (low, high) in TIME_OF_DAY.items() if low <= hour < high)


def _distance_km(lat: float, lon: float, lat0: float, lon0: float) -> float:
    # The same equirectangular distance as the search (booking.selectors._distance).
    dx = (lon - lon0) * math.cos(math.radians(lat0))
    return KM_PER_DEGREE * math.sqrt(dx * dx + (lat - lat0) ** 2)


def _candidates(slot: Slot, now: datetime, limit: int = 50) -> list[WaitlistRequest]:
    """Waiting requests this slot matches, in the fair order (oldest request first), one per citizen.

    Excluded: a request already offered this slot (each gets one chance at a given slot), and a
    citizen with a live offer (one offer per person at a time). Eligibility, the limit of
    appointments and overlaps are checked per candidate by the caller.
    """
    clinic = slot.clinic
    local = slot.start.astimezone(clinic.tz)
    scope = Q()
    if slot.audience in (Audience.OWN_PATIENTS, Audience.GMF_PATIENTS, Audience.PUBLIC):
        scope |= Q(path=WaitlistRequest.Path.MINE, practitioner_id=slot.practitioner_id)
    if slot.audience in (Audience.GMF_PATIENTS, Audience.PUBLIC) and clinic.gmf_id:
        scope |= Q(path=WaitlistRequest.Path.GMF, gmf_id=clinic.gmf_id)
    if slot.audience == Audience.PUBLIC:
        box = RADII_KM[-1] / KM_PER_DEGREE
        scope |= Q(
            path=WaitlistRequest.Path.NEAR,
            latitude__gte=clinic.latitude - box,
            latitude__lte=clinic.latitude + box,
        )
    if not scope:
        return []
    live_offer = WaitlistOffer.objects.filter(
        citizen_id=OuterRef("citizen_id"), status=WaitlistOffer.Status.OFFERED
    )
    rows = (
        WaitlistRequest.objects.filter(
            scope,
            status=WaitlistRequest.Status.ACTIVE,
            expires_at__gt=now,
            date_from__lte=local.date(),
            date_to__gte=local.date(),
            reason__in=slot.reason_codes,
        )
        .filter(Q(time_of_day="") | Q(time_of_day=_time_of_day(local.hour)))
        .exclude(offers__slot_id=slot.pk)
        .exclude(Exists(live_offer))
        .select_related("citizen", "requested_by")
        .order_by("created_at", "id")
    )
    chosen: list[WaitlistRequest] = []
    seen: set[int] = set()
    for request in rows[: limit * 4]:
        if request.citizen_id in seen:
            continue
        if request.path == WaitlistRequest.Path.NEAR:
            assert request.latitude is not None and request.longitude is not None
            km = _distance_km(clinic.latitude, clinic.longitude, request.latitude, request.longitude)
            if km > (request.radius_km or 0):
                continue
        if request.citizen_id is not None:
            seen.add(request.citizen_id)
        chosen.append(request)
        if len(chosen) >= limit:
            break
    return chosen


def _offerable(slot_id: int, now: datetime) -> Slot | None:
    """The slot, if it may be offered now: free, under nobody's live hold, without a live offer,
    offered online, and starting late enough that the whole offer time still leaves the notice."""
    slot = (
        Slot.objects.select_related("clinic")
        .filter(pk=slot_id, status=Slot.Status.FREE, clinic__is_active=True, clinic__is_sandbox=False)
        .exclude(audience=Audience.NOT_ONLINE)
        .exclude(hold_expires__gt=now)
        .exclude(waitlist_offers__status=WaitlistOffer.Status.OFFERED)
        .first()
    )
    if slot is None or slot.start < now + slot.clinic.min_notice + timedelta(seconds=offer_seconds()):
        return None
    if _quiet_hours() and not in_sending_window(now, slot.clinic.tz):
        # Nobody answers a 15-minute offer at 3 a.m.: at night, every waiting person would lose
        # their turn in a few hours. Offered from 8:00 clinic time (the same window as reminders).
        return None
    return slot


def _may_offer_to(request: WaitlistRequest, slot: Slot, now: datetime) -> bool:
    citizen = request.citizen  # the patient: holds, limits, eligibility and overlaps are theirs
    if citizen is None:  # anonymized (an ended request only; defensive)
        return False
    contact = contact_of(request)
    if not _reachable(contact, request.channel) and not contact.email:
        return False
    if not still_in_care(request):
        return False  # the holder removed this dependant since asking
    # A citizen choosing a time on the portal right now keeps that hold: the offer would take it
    # (one hold per citizen). They are passed over for this slot, not for the next ones.
    if Slot.objects.filter(holder=citizen, hold_expires__gt=now).exclude(pk=slot.pk).exists():
        return False
    try:
        _check_online_rules(slot=slot, citizen=citizen, reason=request.reason, now=now)
    except (errors.NotEligible, errors.LimitReached, errors.ReasonNotAccepted):
        return False
    overlap = Appointment.objects.filter(
        citizen=citizen, status__in=OCCUPYING_STATUSES, start__lt=slot.end, end__gt=slot.start
    )
    return not overlap.exists()


def waitlist_offer_next(*, slot_id: int, now: datetime | None = None) -> OfferMade | None:
    """Offer a free slot to the next waiting citizen, or do nothing (already offered, held, booked,
    nobody waiting for it). Idempotent: running it twice, or in two workers at once, makes at most
    one live offer for the slot."""
    now = now or timezone.now()
    slot = _offerable(slot_id, now)
    if slot is None:
        return None
    for request in _candidates(slot, now):
        if request.citizen is None or not _may_offer_to(request, slot, now):
            continue
        token = secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                held = slot_hold(slot_id=slot.pk, citizen=request.citizen, now=now, seconds=offer_seconds())
                offer = WaitlistOffer.objects.create(
                    request=request,
                    citizen=request.citizen,
                    slot=slot,
                    token_hash=token_hash(token),
                    hold_token=held.token,
                    created_at=now,
                    expires_at=held.expires,
                )
        except (errors.SlotUnavailable, errors.SlotNotFound, errors.TooSoon):
            return None  # held or booked by someone else meanwhile: nothing to offer
        except errors.ApplicationError:
            continue  # this citizen cannot take it (checked again inside the hold)
        except IntegrityError as exc:
            if "waitlist_one_live_offer_per_citizen" in str(exc):
                continue  # another worker just made this citizen an offer of another slot
            return None  # another worker offered this slot first
        except OperationalError:
            # A lock timeout or a deadlock with a booking: nothing was written; the next run retries.
            logger.warning("waitlist offer deferred (lock)", extra={"slot_id": slot.pk})
            return None
        logger.info("waitlist offer made", extra={"offer_id": offer.pk, "slot_id": slot.pk})
        return OfferMade(offer=offer, token=token)
    return None


def waitlist_offers_expire(*, now: datetime) -> list[int]:
    """Beat: unanswered offers past their time end as ``expired``; returns their slots, to pass on.
    SKIP LOCKED: an offer being answered right now is left to its answer."""
    with transaction.atomic():
        offers = list(
            WaitlistOffer.objects.select_for_update(skip_locked=True).filter(
                status=WaitlistOffer.Status.OFFERED, expires_at__lte=now
            )[:500]
        )
        for offer in offers:
            _end_offer(offer, WaitlistOffer.Status.EXPIRED, now)
    return [offer.slot_id for offer in offers]


# --- the dispatcher --------------------------------------------------------------------------------


@dataclass
class DispatchResult:
    requests_ended: int = 0
    offers_expired: int = 0
    slots_checked: int = 0
    made: list[OfferMade] = field(default_factory=list)


def _recent_slots(now: datetime) -> set[int]:
    """Slots that may have become free lately: from the outbox (every change to a slot is there,
    written in the changing transaction) and from offers that ended without a booking.

    A look-back rather than a cursor: an event whose transaction commits late is still seen by a
    later run, and a slot seen twice is harmless (``waitlist_offer_next`` is idempotent)."""
    lookback = timedelta(seconds=_setting("WAITLIST_LOOKBACK_SECONDS", 900))
    since = now - lookback
    local = now.astimezone(QUEBEC_TZ)
    if _quiet_hours() and local.time() < MORNING_CATCH_UP_UNTIL:
        evening = datetime.combine(local.date() - timedelta(days=1), WINDOW_END, tzinfo=QUEBEC_TZ)
        since = min(since, evening - lookback)
    free_now = Slot.objects.filter(pk=OuterRef("slot_id"), status=Slot.Status.FREE, start__gt=now)
    from_events = (
        OutboxEvent.objects.filter(created_at__gt=since, kind__in=FREEING_KINDS, slot__isnull=False)
        .filter(Exists(free_now))
        .values_list("slot_id", flat=True)
        .distinct()[: _setting("WAITLIST_MAX_SLOTS_PER_RUN", 2000)]
    )
    ended = WaitlistOffer.objects.filter(status__in=ENDED_UNBOOKED, answered_at__gt=since).values_list(
        "slot_id", flat=True
    )
    return {s for s in from_events if s is not None} | set(ended)


def waitlist_dispatch(*, now: datetime | None = None, send: bool = True) -> DispatchResult:
    """Beat, every few seconds: end past requests and offers, then offer every recently freed or
    published slot (and every slot whose offer just ended) to the next waiting citizen."""
    now = now or timezone.now()
    result = DispatchResult()
    result.requests_ended = waitlist_requests_expire(now=now)
    expired = waitlist_offers_expire(now=now)
    result.offers_expired = len(expired)
    if not WaitlistRequest.objects.filter(status=WaitlistRequest.Status.ACTIVE, expires_at__gt=now).exists():
        return result
    slot_ids = set(expired) | _recent_slots(now)
    result.slots_checked = len(slot_ids)
    for slot_id in sorted(slot_ids):
        made = waitlist_offer_next(slot_id=slot_id, now=now)
        if made is not None:
            result.made.append(made)
            if send:
                waitlist_offer_send(made)
    return result


def waitlist_offer_send(made: OfferMade) -> bool:
    """Send the offer's link, after the offer committed (outside any transaction)."""
    from .notifications import offer_message_send

    offer = made.offer
    try:
        channel = offer_message_send(offer, made.token)
    except Exception as exc:  # noqa: BLE001 - a failed send must not stop the other offers
        error = type(exc).__name__  # the class only: messages can quote the address
        logger.warning("waitlist offer not sent", extra={"offer_id": offer.pk, "error": error})
        WaitlistOffer.objects.filter(pk=offer.pk).update(
            notify_state=WaitlistOffer.NotifyState.FAILED, last_error=error
        )
        return False
    WaitlistOffer.objects.filter(pk=offer.pk).update(
        notify_state=WaitlistOffer.NotifyState.SENT if channel else WaitlistOffer.NotifyState.FAILED,
        channel=channel,
        last_error="" if channel else "no_contact",
    )
    return bool(channel)
