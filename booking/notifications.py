"""Citizen e-mails, rendered in the citizen's language, with an .ics for bookings."""

from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from icalendar import Calendar, Event

from .models import Appointment

CANCEL_SALT = "booking.cancel-link"


def cancel_token_make(appointment: Appointment) -> str:
    """A signed token for the cancel link: bound to the appointment's version, so it works once."""
    return signing.dumps({"a": appointment.pk, "v": appointment.version}, salt=CANCEL_SALT, compress=True)


def cancel_token_read(token: str, *, max_age_days: int = 120) -> tuple[int, int] | None:
    try:
        data = signing.loads(token, salt=CANCEL_SALT, max_age=max_age_days * 86400)
        return int(data["a"]), int(data["v"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


def appointment_ics(appointment: Appointment) -> bytes:
    slot = appointment.slot
    clinic = appointment.clinic
    cal = Calendar()
    cal.add("prodid", "-//Rendez-vous sante Quebec//rdv//FR")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"{appointment.reference}@rdv-sante.quebec")
    event.add("dtstamp", appointment.created_at)
    event.add("dtstart", appointment.start)
    event.add("dtend", appointment.end)
    event.add("summary", f"{slot.practitioner.display_name} — {clinic.name}")
    event.add("location", f"{clinic.name}, {clinic.address}, {clinic.city} {clinic.postal_code}")
    event.add("description", f"{appointment.get_reason_display()} · {appointment.reference}")
    cal.add_component(event)
    return cal.to_ical()


def _absolute(path: str) -> str:
    site_url: str = settings.SITE_URL
    return site_url.rstrip("/") + path


def _context(appointment: Appointment) -> dict[str, Any]:
    return {
        "appointment": appointment,
        "clinic": appointment.clinic,
        "practitioner": appointment.slot.practitioner,
        "cancel_url": _absolute(reverse("booking:cancel_link", args=[cancel_token_make(appointment)])),
        "mine_url": _absolute(reverse("booking:mine")),
        "search_url": _absolute(reverse("booking:search")),
    }


def send_appointment_email(appointment: Appointment, kind: str) -> bool:
    """``kind``: ``booked`` or ``cancelled``. Returns False when there is no address to write to."""
    citizen = appointment.citizen
    if citizen is None or not citizen.email:  # anonymized, or no address
        return False
    with translation.override(citizen.preferred_language or settings.LANGUAGE_CODE):
        context = _context(appointment)
        subject = render_to_string(f"booking/email/{kind}_subject.txt", context).strip()
        text = render_to_string(f"booking/email/{kind}.txt", context)
        html = render_to_string(f"booking/email/{kind}.html", context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [citizen.email])
    message.attach_alternative(html, "text/html")
    if kind == "booked":
        message.attach(
            f"rendez-vous-{appointment.reference}.ics", appointment_ics(appointment), "text/calendar"
        )
    message.extra_headers["X-Idempotency-Key"] = f"{kind}-{appointment.pk}-{appointment.version}"
    message.send()
    return True
