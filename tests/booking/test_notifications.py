"""Citizen e-mails: in the citizen's language, in clinic local time, with an .ics; sent once.

The outbox event is the source of truth: the on-commit task sends it, and the beat sweep sends
any event whose task was lost (the broker was down at commit time).
"""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from icalendar import Calendar

from booking.models import Appointment, OutboxEvent
from booking.notifications import (
    appointment_ics,
    cancel_token_make,
    cancel_token_read,
    send_appointment_email,
)
from booking.services import appointment_book, appointment_cancel
from booking.tasks import notifications_sweep, notify_event
from tests.factories import NOW, CitizenFactory, ClinicFactory, RoleFactory, slot_at


def book(slot, citizen) -> Appointment:
    return appointment_book(
        slot_id=slot.pk, citizen=citizen, reason="follow_up", channel=Appointment.Channel.PORTAL, now=NOW
    )


@pytest.fixture
def appointment(role):
    return book(slot_at(role), CitizenFactory(email="julie@example.org"))


# --- language and local time ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["booked", "cancelled"])
def test_each_email_renders_in_french_and_in_english(appointment, kind):
    citizen = appointment.citizen
    for language in ("fr", "en"):
        citizen.preferred_language = language
        assert send_appointment_email(appointment, kind)
    french, english = mail.outbox
    assert french.subject != english.subject
    assert french.body != english.body
    for message in (french, english):
        assert appointment.reference in message.subject
        assert message.alternatives[0][1] == "text/html"
    assert "Rendez-vous" in french.subject
    assert "Appointment" in english.subject


def test_the_email_shows_the_clinics_local_time_not_utc(appointment):
    # 15:00 UTC on 3 February is 10:00 in Montreal.
    send_appointment_email(appointment, "booked")
    body = mail.outbox[0].body
    assert "10:00" in body
    assert "15:00" not in body


def test_an_email_for_a_clinic_on_atlantic_time_shows_its_local_time(db):
    role = RoleFactory(clinic=ClinicFactory(time_zone="America/Halifax", gmf=None))
    appointment = book(slot_at(role), CitizenFactory(email="luc@example.org"))
    send_appointment_email(appointment, "booked")
    body = mail.outbox[0].body
    assert "11:00" in body  # 15:00 UTC is 11:00 in Cap-aux-Meules in February
    assert "10:00" not in body


# --- the calendar file ---------------------------------------------------------------------------


def test_the_confirmation_carries_an_ics_with_the_utc_times_and_the_reference(appointment):
    send_appointment_email(appointment, "booked")
    ((filename, content, mimetype),) = mail.outbox[0].attachments
    assert (filename, mimetype) == (f"rendez-vous-{appointment.reference}.ics", "text/calendar")
    (event,) = Calendar.from_ical(content).walk("VEVENT")
    assert event.decoded("dtstart") == appointment.start
    assert event.decoded("dtend") == appointment.end
    assert str(event["uid"]).startswith(appointment.reference)
    assert appointment.clinic.name in str(event["summary"])


def test_the_cancellation_carries_no_ics(appointment):
    send_appointment_email(appointment, "cancelled")
    assert mail.outbox[0].attachments == []


def test_the_ics_is_a_valid_calendar_on_its_own(appointment):
    calendar = Calendar.from_ical(appointment_ics(appointment))
    assert str(calendar["version"]) == "2.0"
    assert len(calendar.walk("VEVENT")) == 1


# --- addresses, headers, links -------------------------------------------------------------------


def test_a_citizen_without_an_address_gets_no_email(role):
    appointment = book(slot_at(role), CitizenFactory(email=""))
    assert send_appointment_email(appointment, "booked") is False
    assert mail.outbox == []


def test_each_email_carries_an_idempotency_key_that_changes_with_the_version(appointment):
    send_appointment_email(appointment, "booked")
    appointment_cancel(appointment=appointment, reason="better_time", now=NOW)
    send_appointment_email(appointment, "cancelled")
    first, second = (m.extra_headers["X-Idempotency-Key"] for m in mail.outbox)
    assert first == f"booked-{appointment.pk}-1"
    assert second == f"cancelled-{appointment.pk}-2"


def test_the_cancel_link_token_names_the_appointment_and_its_version(appointment):
    assert cancel_token_read(cancel_token_make(appointment)) == (appointment.pk, appointment.version)


@pytest.mark.parametrize("token", ["", "garbage", "eyJhIjoxLCJ2IjoxfQ:1abcde:forged"])
def test_a_forged_or_broken_cancel_link_token_is_refused(appointment, token):
    assert cancel_token_read(token) is None


def test_a_tampered_cancel_link_token_is_refused(appointment):
    token = cancel_token_make(appointment)
    assert cancel_token_read(token[:-1] + ("A" if token[-1] != "A" else "B")) is None


# --- the outbox drives the sending ---------------------------------------------------------------


def test_an_event_is_sent_once_even_if_its_task_runs_twice(appointment):
    event = OutboxEvent.objects.get(appointment=appointment)
    notify_event(event.pk)
    notify_event(event.pk)
    assert len(mail.outbox) == 1
    event.refresh_from_db()
    assert event.notify_state == OutboxEvent.NotifyState.SENT
    assert event.notified_at is not None


def test_the_sweep_sends_an_event_whose_task_was_lost(appointment):
    # The on-commit callback never ran in this test: as if the broker had been down at commit.
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    assert notifications_sweep() == 1
    assert len(mail.outbox) == 1
    assert OutboxEvent.objects.get().notify_state == OutboxEvent.NotifyState.SENT
    assert notifications_sweep() == 0


def test_the_sweep_leaves_a_recent_event_to_its_own_task(appointment):
    assert notifications_sweep() == 0
    assert mail.outbox == []
    assert OutboxEvent.objects.get().notify_state == OutboxEvent.NotifyState.PENDING
