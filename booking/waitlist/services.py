"""Waitlist writes: requests, and the answers to offers (docs/waitlist.md). Making offers and the
dispatcher that drives them are in ``booking.waitlist.offers``.

Booking through an offer is the ordinary ``appointment_book`` on the ``waitlist`` channel, so every
booking invariant holds; the offer row is locked while it is answered, so its link works once.
Every function takes the application clock ``now`` (tests move it).
"""

import hashlib
import logging
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from citizens.models import Citizen
from citizens.selectors import citizen_care, dependant_of_person, patient_ids_for

from .. import errors
from ..models import Appointment, Reason, Slot
from ..patients import PatientNotFound
from ..selectors import MAX_DAYS_AHEAD, QUEBEC_TZ, RADII_KM, TIME_OF_DAY, fsa_get
from ..services import _lock_timeout, appointment_book, slot_release_hold_token
from ..sms import mobile_e164, sms_enabled
from .models import WaitlistOffer, WaitlistRequest

logger = logging.getLogger(__name__)


def _setting(name: str, default: int) -> int:
    value: int = getattr(settings, name, default)
    return value


def offer_seconds() -> int:
    return _setting("WAITLIST_OFFER_SECONDS", 900)


def _quiet_hours() -> bool:
    value: bool = getattr(settings, "WAITLIST_QUIET_HOURS", True)
    return value


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def window_end(day: date) -> datetime:
    """A request waits until the end of its last day, Quebec time."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=QUEBEC_TZ)


# --- requests --------------------------------------------------------------------------------------


def contact_of(request: WaitlistRequest) -> Citizen:
    """Who is told of the request's offers: the account holder who asked for a dependant, else
    the patient themself."""
    return request.requested_by if request.requested_by_id else request.citizen  # type: ignore[return-value]


def still_in_care(request: WaitlistRequest) -> bool:
    """A request made for a dependant counts only while the holder still has them in their care."""
    if request.requested_by_id is None:
        return True
    return (
        dependant_of_person(guardian=request.requested_by, citizen_id=request.citizen_id)  # type: ignore[arg-type]
        is not None
    )


def _reachable(citizen: Citizen, channel: str) -> bool:
    if channel == WaitlistRequest.Channel.SMS:
        return sms_enabled() and mobile_e164(citizen.mobile) is not None
    return bool(citizen.email)


def waitlist_request_create(
    *,
    citizen: Citizen,
    path: str,
    reason: str,
    date_from: date,
    date_to: date,
    time_of_day: str = "",
    fsa: str = "",
    radius_km: int = 25,
    channel: str = WaitlistRequest.Channel.EMAIL,
    language: str = "fr",
    requested_by: Citizen | None = None,
    now: datetime | None = None,
) -> WaitlistRequest:
    """Put the citizen on the waitlist for one path, reason, area and window.

    The area is fixed now from the path: the citizen's family doctor, their doctor's GMF, or a
    circle around a postal-code area (the patient's own: a dependant's doctor, GMF and postal code).
    At most ``WAITLIST_MAX_ACTIVE_REQUESTS`` waiting requests per person, counted per patient (the
    patient's row is locked so that two tabs, or two guardians, cannot both pass the count).

    ``requested_by``: the account holder asking for ``citizen``, one of their dependants
    (``PatientNotFound`` otherwise); the offers then go to the holder's channel.
    """
    now = now or timezone.now()
    if requested_by is not None:
        if requested_by.pk == citizen.pk:
            requested_by = None
        elif dependant_of_person(guardian=requested_by, citizen_id=citizen.pk) is None:
            raise PatientNotFound
    contact = requested_by or citizen
    today = timezone.localdate(now, QUEBEC_TZ)
    if reason not in Reason.values:
        raise errors.ReasonNotAccepted
    if date_from < today or date_to < date_from or date_to > today + timedelta(days=MAX_DAYS_AHEAD):
        raise errors.InvalidPeriod
    if time_of_day and time_of_day not in TIME_OF_DAY:
        raise errors.InvalidPeriod
    if channel not in WaitlistRequest.Channel.values or not _reachable(contact, channel):
        raise errors.WaitlistNoContact
    scope: dict[str, object] = {}
    care = citizen_care(citizen=citizen)
    home = fsa_get(citizen.fsa)
    region_id = home.region_id if home else None
    if path == WaitlistRequest.Path.MINE:
        if care.practitioner_id is None:
            raise errors.WaitlistScopeUnknown
        scope = {"practitioner_id": care.practitioner_id}
    elif path == WaitlistRequest.Path.GMF:
        if care.gmf_id is None:
            raise errors.WaitlistScopeUnknown
        scope = {"gmf_id": care.gmf_id}
    elif path == WaitlistRequest.Path.NEAR:
        origin = fsa_get(fsa or citizen.fsa)
        if origin is None or radius_km not in RADII_KM:
            raise errors.WaitlistScopeUnknown
        region_id = origin.region_id
        scope = {
            "fsa": origin.code,
            "latitude": origin.latitude,
            "longitude": origin.longitude,
            "radius_km": radius_km,
        }
    else:
        raise errors.WaitlistScopeUnknown
    with transaction.atomic():
        _lock_timeout()
        Citizen.objects.select_for_update().filter(pk=citizen.pk).first()
        waiting = WaitlistRequest.objects.filter(
            citizen=citizen, status=WaitlistRequest.Status.ACTIVE, expires_at__gt=now
        ).count()
        if waiting >= _setting("WAITLIST_MAX_ACTIVE_REQUESTS", 3):
            raise errors.WaitlistLimitReached
        request = WaitlistRequest.objects.create(
            citizen=citizen,
            requested_by=requested_by,
            path=path,
            reason=reason,
            date_from=date_from,
            date_to=date_to,
            time_of_day=time_of_day,
            channel=channel,
            language=language if language in ("fr", "en") else "fr",
            region_id=region_id,
            created_at=now,
            expires_at=window_end(date_to),
            **scope,
        )
    logger.info("waitlist request created", extra={"waitlist_request_id": request.pk, "path": path})
    return request


def waitlist_request_withdraw(
    *, citizen: Citizen, request_id: int, now: datetime | None = None
) -> WaitlistRequest:
    """The citizen withdraws a request of theirs or of one of their dependants; a live offer made for
    it ends and its slot passes on. Anyone else's request is not found."""
    now = now or timezone.now()
    with transaction.atomic():
        _lock_timeout()
        request = (
            WaitlistRequest.objects.select_for_update()
            .filter(pk=request_id, citizen_id__in=patient_ids_for(citizen=citizen))
            .first()
        )
        if request is None:
            raise errors.WaitlistRequestNotFound
        if request.status != WaitlistRequest.Status.ACTIVE:
            return request
        request.status, request.ended_at = WaitlistRequest.Status.WITHDRAWN, now
        request.save(update_fields=["status", "ended_at"])
        for offer in WaitlistOffer.objects.select_for_update().filter(
            request=request, status=WaitlistOffer.Status.OFFERED
        ):
            _end_offer(offer, WaitlistOffer.Status.WITHDRAWN, now)
    return request


def waitlist_requests_expire(*, now: datetime) -> int:
    """Beat: requests whose window has ended are marked ended (queries already ignore them)."""
    return WaitlistRequest.objects.filter(status=WaitlistRequest.Status.ACTIVE, expires_at__lte=now).update(
        status=WaitlistRequest.Status.EXPIRED, ended_at=now
    )


def _end_offer(offer: WaitlistOffer, status: str, now: datetime) -> None:
    """Inside a transaction, the offer row locked: end it and free its hold for the next one."""
    offer.status, offer.answered_at = status, now
    offer.save(update_fields=["status", "answered_at"])
    slot_release_hold_token(slot_id=offer.slot_id, token=offer.hold_token)


# --- answers ---------------------------------------------------------------------------------------


def offer_is_for(offer: WaitlistOffer, caller: Citizen) -> bool:
    """Whether ``caller`` may answer this offer when they act as themself (the citizen API): it is
    theirs, one of their dependants', or one they asked for."""
    return offer.request.requested_by_id == caller.pk or offer.citizen_id in patient_ids_for(citizen=caller)


def _locked_offer(token: str, caller: Citizen | None = None) -> WaitlistOffer:
    offer = (
        WaitlistOffer.objects.select_for_update(of=("self",))
        .select_related("request__requested_by", "citizen")
        .filter(token_hash=token_hash(token))
        .first()
    )
    if offer is None or (caller is not None and not offer_is_for(offer, caller)):
        raise errors.OfferNotFound
    return offer


def _check_open(offer: WaitlistOffer, now: datetime) -> None:
    if offer.status == WaitlistOffer.Status.ACCEPTED:
        raise errors.OfferUsed
    if offer.status == WaitlistOffer.Status.EXPIRED or (
        offer.status == WaitlistOffer.Status.OFFERED and offer.expires_at <= now
    ):
        raise errors.OfferExpired
    if offer.status != WaitlistOffer.Status.OFFERED:
        raise errors.OfferClosed


def _enqueue_pass_on(slot_id: int) -> None:
    transaction.on_commit(lambda: _pass_on(slot_id))


def _pass_on(slot_id: int) -> None:
    # The answer has committed whatever happens here: with the broker down, the beat's look-back
    # over recently ended offers passes the slot on instead.
    from ..tasks import waitlist_offer_slot

    try:
        waitlist_offer_slot.delay(slot_id)
    except Exception:  # noqa: BLE001 - any broker failure must not surface to the citizen
        logger.warning("waitlist pass-on not enqueued; the beat will do it", extra={"slot_id": slot_id})


def waitlist_offer_accept(
    *, token: str, caller: Citizen | None = None, now: datetime | None = None
) -> Appointment:
    """Book the offered slot: the confirmation page's POST (and the citizen API's). Single use: the
    offer row is locked, and once ``accepted`` a second POST gets ``OfferUsed``. A refused booking
    ends the offer as ``failed`` (committed) and passes the slot on; the refusal is then raised.

    The token is the credential; ``caller`` (the API's identified citizen) must also be the offer's
    patient or their guardian, else ``OfferNotFound``. For a dependant, the appointment is the
    dependant's, booked by the holder's account."""
    now = now or timezone.now()
    refusal: errors.ApplicationError | None = None
    with transaction.atomic():
        _lock_timeout()
        offer = _locked_offer(token, caller)
        _check_open(offer, now)
        if offer.citizen is None:  # anonymized: only ended offers are (defensive)
            raise errors.OfferClosed
        # The offer's hold is gone if the citizen held another time on the portal meanwhile (one
        # hold per citizen): the booking then competes like any other, without a hold, and still
        # cannot take a time someone else holds.
        still_held = Slot.objects.filter(pk=offer.slot_id, hold_token=offer.hold_token).exists()
        guardian = offer.request.requested_by
        try:
            if not still_in_care(offer.request):
                raise PatientNotFound  # the holder removed this dependant since asking
            appointment = appointment_book(
                slot_id=offer.slot_id,
                citizen=offer.citizen,
                reason=offer.request.reason,
                channel=Appointment.Channel.WAITLIST,
                hold_token=offer.hold_token if still_held else "",
                booked_by_user=guardian.account if guardian is not None else None,
                now=now,
            )
        except errors.ApplicationError as exc:
            refusal = exc
            offer.last_error = exc.code
            offer.save(update_fields=["last_error"])
            _end_offer(offer, WaitlistOffer.Status.FAILED, now)
            _enqueue_pass_on(offer.slot_id)
        else:
            offer.status, offer.answered_at, offer.appointment = (
                WaitlistOffer.Status.ACCEPTED,
                now,
                appointment,
            )
            offer.save(update_fields=["status", "answered_at", "appointment"])
            WaitlistRequest.objects.filter(pk=offer.request_id, status=WaitlistRequest.Status.ACTIVE).update(
                status=WaitlistRequest.Status.BOOKED, ended_at=now
            )
    if refusal is not None:
        raise refusal
    logger.info("waitlist offer accepted", extra={"offer_id": offer.pk, "appointment_id": appointment.pk})
    return appointment


def waitlist_offer_decline(
    *, token: str, caller: Citizen | None = None, now: datetime | None = None
) -> WaitlistOffer:
    """The citizen says no: the hold is released and the slot passes on at once. The request keeps
    waiting for another time. ``caller`` as for ``waitlist_offer_accept``."""
    now = now or timezone.now()
    with transaction.atomic():
        _lock_timeout()
        offer = _locked_offer(token, caller)
        _check_open(offer, now)
        _end_offer(offer, WaitlistOffer.Status.DECLINED, now)
        _enqueue_pass_on(offer.slot_id)
    return offer
