"""The offer message, by text message or e-mail, in the language of the request."""

from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from ..sms import get_sms_backend, mobile_e164, sms_enabled
from .models import WaitlistOffer, WaitlistRequest
from .services import contact_of


def offer_url(token: str) -> str:
    site_url: str = settings.SITE_URL
    return site_url.rstrip("/") + reverse("booking:waitlist_offer", args=[token])


def offer_context(offer: WaitlistOffer, token: str) -> dict[str, Any]:
    slot = offer.slot
    return {
        "offer": offer,
        "slot": slot,
        "clinic": slot.clinic,
        "practitioner": slot.practitioner,
        "citizen": contact_of(offer.request),
        # Named in the message when the offer is for a dependant (their guardian is told).
        "patient": offer.citizen if offer.request.requested_by_id else None,
        "offer_url": offer_url(token),
    }


def offer_message_send(offer: WaitlistOffer, token: str) -> str:
    """Send the link by the request's channel (e-mail when a text message cannot be sent) to the
    request's contact (the guardian, for a dependant); returns the channel used, or "" when nobody
    can be reached. The link's token is the only
    credential in the message: never the NAM."""
    request = offer.request
    if request.citizen_id is None:  # anonymized: nobody to write to
        return ""
    citizen = contact_of(request)
    key = f"waitlist-offer-{offer.pk}"
    with translation.override(request.language or settings.LANGUAGE_CODE):
        context = offer_context(offer, token)
        to = mobile_e164(citizen.mobile)
        if request.channel == WaitlistRequest.Channel.SMS and sms_enabled() and to:
            body = " ".join(render_to_string("booking/sms/waitlist_offer.txt", context).split())
            get_sms_backend().send(to, body, key)
            return WaitlistRequest.Channel.SMS
        if not citizen.email:
            return ""
        subject = render_to_string("booking/email/waitlist_offer_subject.txt", context).strip()
        text = render_to_string("booking/email/waitlist_offer.txt", context)
        html = render_to_string("booking/email/waitlist_offer.html", context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [citizen.email])
    message.attach_alternative(html, "text/html")
    message.extra_headers["X-Idempotency-Key"] = key
    message.send()
    return WaitlistRequest.Channel.EMAIL
