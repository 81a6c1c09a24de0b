"""Reminders (docs/reminders.md): scheduled once, sent only 8:00–21:00 clinic time, never twice.

The clock is faked (``now=``); e-mail is captured by Django's locmem backend and SMS by
``booking.sms.LocmemSmsBackend``, which records every call, duplicates included.
"""

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.db import connections
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from booking import sms
from booking.models import Appointment, OutboxEvent, Reminder, ReportingWatermark
from booking.reminders import (
    LATEST_DUE,
    REMINDERS_WATERMARK,
    WINDOW_START,
    in_sending_window,
    next_window_start,
    reminder_deliver,
    reminder_due_at,
    reminder_render,
    reminders_claim,
    reminders_schedule,
    reminders_send,
)
from booking.services import appointment_book, appointment_cancel
from citizens.models import Citizen
from tests.factories import NOW, CitizenFactory, ClinicFactory, RoleFactory, slot_at

TORONTO = ZoneInfo("America/Toronto")
HALIFAX = ZoneInfo("America/Halifax")
BLANC_SABLON = ZoneInfo("America/Blanc-Sablon")
LOCMEM_SMS = "booking.sms.LocmemSmsBackend"
DAY_BEFORE, THREE_DAYS = Reminder.Kind.DAY_BEFORE, Reminder.Kind.THREE_DAYS
EMAIL, SMS = Reminder.Channel.EMAIL, Reminder.Channel.SMS


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def book(slot, citizen) -> Appointment:
    return appointment_book(
        slot_id=slot.pk, citizen=citizen, reason="pregnancy", channel=Appointment.Channel.PORTAL, now=NOW
    )


@pytest.fixture(autouse=True)
def _empty_sms_outbox():
    sms.outbox.clear()
    yield
    sms.outbox.clear()


@pytest.fixture
def sms_on(settings):
    settings.SMS_BACKEND = LOCMEM_SMS


@pytest.fixture
def appointment(role):
    # 48 h after NOW: Wednesday 3 February 2027, 10:00 in Montreal (15:00 UTC).
    return book(slot_at(role), CitizenFactory(email="julie@example.org", mobile=""))


def reminder_mails(reminders) -> list:
    keys = {r.idempotency_key for r in reminders}
    return [m for m in mail.outbox if m.extra_headers.get("X-Idempotency-Key") in keys]


# --- scheduling ------------------------------------------------------------------------------------


def test_a_booked_appointment_gets_one_email_reminder_the_day_before_at_the_same_time(appointment):
    reminders_schedule(now=NOW)
    (reminder,) = Reminder.objects.all()
    assert (reminder.appointment, reminder.kind, reminder.channel) == (appointment, DAY_BEFORE, EMAIL)
    assert reminder.state == Reminder.State.PENDING
    assert reminder.due_at == utc(2027, 2, 2, 15, 0)  # Tuesday 10:00 in Montreal
    assert reminder.idempotency_key == f"{appointment.pk}:day_before:email:1"
    assert reminder.attempts == 0


def test_the_three_days_reminder_only_for_a_clinic_that_wants_it(db):
    eager = RoleFactory(clinic=ClinicFactory(reminder_three_days=True))
    plain = RoleFactory(clinic=ClinicFactory())
    wanted = book(slot_at(eager, hours=80), CitizenFactory(mobile=""))
    not_wanted = book(slot_at(plain, hours=80), CitizenFactory(mobile=""))
    reminders_schedule(now=NOW)
    assert sorted(Reminder.objects.filter(appointment=wanted).values_list("kind", flat=True)) == [
        "day_before",
        "three_days",
    ]
    assert list(Reminder.objects.filter(appointment=not_wanted).values_list("kind", flat=True)) == [
        "day_before"
    ]
    # Thursday 4 February, 18:00 in Montreal → Monday 1 February, 18:00 (23:00 UTC).
    assert Reminder.objects.get(appointment=wanted, kind=THREE_DAYS).due_at == utc(2027, 2, 1, 23, 0)


def test_an_sms_reminder_only_for_a_citizen_with_a_mobile_number(role, sms_on):
    both = book(slot_at(role, hours=30), CitizenFactory(email="a@example.org", mobile="514 555-0199"))
    email_only = book(slot_at(role, hours=31), CitizenFactory(email="b@example.org", mobile=""))
    sms_only = book(slot_at(role, hours=32), CitizenFactory(email="", mobile="(438) 555-0142"))
    nothing = book(slot_at(role, hours=33), CitizenFactory(email="", mobile="555-01"))
    reminders_schedule(now=NOW)

    def channels(appointment):
        return sorted(Reminder.objects.filter(appointment=appointment).values_list("channel", flat=True))

    assert channels(both) == ["email", "sms"]
    assert channels(email_only) == ["email"]
    assert channels(sms_only) == ["sms"]
    assert channels(nothing) == []  # not a mobile number: nobody to write to


def test_no_sms_reminder_while_sms_is_switched_off(role, settings):
    settings.SMS_BACKEND = ""
    appointment = book(slot_at(role), CitizenFactory(email="a@example.org", mobile="514 555-0199"))
    reminders_schedule(now=NOW)
    assert list(Reminder.objects.filter(appointment=appointment).values_list("channel", flat=True)) == [
        "email"
    ]


def test_scheduling_twice_changes_nothing(role, sms_on):
    book(slot_at(role, hours=30), CitizenFactory(mobile="514 555-0199"))
    book(slot_at(role, hours=50), CitizenFactory(mobile=""))
    reminders_schedule(now=NOW)
    first = list(Reminder.objects.order_by("pk").values_list("pk", "due_at", "idempotency_key"))
    assert len(first) == 3
    reminders_schedule(now=NOW)
    reminders_schedule(now=NOW + timedelta(minutes=5))
    assert list(Reminder.objects.order_by("pk").values_list("pk", "due_at", "idempotency_key")) == first


def test_a_sent_reminder_is_not_scheduled_again(appointment):
    reminders_schedule(now=NOW)
    reminders_send(now=utc(2027, 2, 2, 15, 0))
    reminders_schedule(now=utc(2027, 2, 2, 15, 5))
    assert Reminder.objects.get().state == Reminder.State.SENT
    assert len(mail.outbox) == 1


def test_the_catch_up_scan_looks_four_days_ahead_and_skips_cancelled_appointments(role):
    later = book(slot_at(role, hours=24 * 5), CitizenFactory())
    cancelled = book(slot_at(role, hours=30), CitizenFactory())
    appointment_cancel(appointment=cancelled, reason="better_time", now=NOW)
    reminders_schedule(now=NOW, full=True)
    assert not Reminder.objects.exists()
    reminders_schedule(now=NOW + timedelta(days=2), full=True)  # now within four days of the later one
    assert list(Reminder.objects.values_list("appointment", flat=True)) == [later.pk]


def test_no_reminder_when_the_appointment_was_booked_after_its_moment(appointment):
    # Booked on Tuesday at 12:00 for Wednesday 10:00: the day-before moment (Tuesday 10:00) had passed.
    Appointment.objects.filter(pk=appointment.pk).update(created_at=utc(2027, 2, 2, 17, 0))
    reminders_schedule(now=utc(2027, 2, 2, 17, 1))
    assert not Reminder.objects.exists()


# --- driven from the outbox -------------------------------------------------------------------------


def outbox_run(now=NOW) -> None:
    """A run of the beat task after the first one (which scans, and sets the watermark)."""
    assert ReportingWatermark.objects.filter(source=REMINDERS_WATERMARK).exists()
    reminders_schedule(now=now)


@pytest.fixture
def watermark(db):
    reminders_schedule(now=NOW)  # the first run: nothing booked yet, the watermark is set
    return ReportingWatermark.objects.get(source=REMINDERS_WATERMARK)


def test_a_booking_gets_its_reminders_from_its_outbox_event_at_the_next_run(role, watermark):
    # Ten days ahead: beyond the catch-up scan's look-ahead, so only the outbox can have brought it.
    appointment = book(slot_at(role, hours=24 * 10), CitizenFactory(email="a@example.org", mobile=""))
    assert not Reminder.objects.exists()
    outbox_run()
    reminder = Reminder.objects.get()
    assert (reminder.appointment, reminder.kind, reminder.state) == (appointment, DAY_BEFORE, "pending")
    assert reminder.idempotency_key == f"{appointment.pk}:day_before:email:1"
    assert ReportingWatermark.objects.get(source=REMINDERS_WATERMARK).until > watermark.until


def test_a_cancellation_event_cancels_the_pending_reminders(role, watermark):
    appointment = book(slot_at(role, hours=24 * 10), CitizenFactory(email="a@example.org", mobile=""))
    outbox_run()
    appointment_cancel(appointment=appointment, reason="better_time", now=NOW)
    outbox_run()
    assert list(Reminder.objects.values_list("state", flat=True)) == [Reminder.State.CANCELLED]


def test_a_run_reads_only_the_events_since_its_watermark_and_the_catch_up_finds_the_rest(role, watermark):
    appointment = book(slot_at(role), CitizenFactory(email="a@example.org", mobile=""))
    # As if the event had been read long ago and its reminder lost: the incremental run does not
    # look that far back; the nightly catch-up does.
    ReportingWatermark.objects.filter(source=REMINDERS_WATERMARK).update(
        until=timezone.now() + timedelta(hours=1)
    )
    outbox_run()
    assert not Reminder.objects.exists()
    reminders_schedule(now=NOW, full=True)
    assert list(Reminder.objects.values_list("appointment", flat=True)) == [appointment.pk]


def test_an_event_committed_after_a_run_started_is_read_by_the_next_run(role, watermark, settings):
    appointment = book(slot_at(role, hours=24 * 10), CitizenFactory(email="a@example.org", mobile=""))
    # Inserted two minutes before the last run started, committed after it: within the overlap.
    ReportingWatermark.objects.filter(source=REMINDERS_WATERMARK).update(until=timezone.now())
    OutboxEvent.objects.filter(appointment=appointment).update(
        created_at=timezone.now() - timedelta(minutes=2)
    )
    settings.REMINDER_OUTBOX_OVERLAP_SECONDS = 600
    outbox_run()
    assert Reminder.objects.filter(appointment=appointment).count() == 1
    settings.REMINDER_OUTBOX_OVERLAP_SECONDS = 60  # a shorter overlap would have missed it
    Reminder.objects.all().delete()
    outbox_run()
    assert not Reminder.objects.exists()


# --- the window: 8:00–21:00 clinic time, daylight-saving changes included -----------------------------


@pytest.mark.parametrize(
    ("tz", "start", "kind", "due"),
    [
        # An ordinary day in Montreal (EST, UTC−5): the same time the day before.
        (TORONTO, utc(2027, 2, 3, 15, 0), DAY_BEFORE, utc(2027, 2, 2, 15, 0)),
        # 07:30 → 08:00 the same day (not the night, not the evening before).
        (TORONTO, utc(2027, 2, 3, 12, 30), DAY_BEFORE, utc(2027, 2, 2, 13, 0)),
        # Exactly 08:00 stays.
        (TORONTO, utc(2027, 2, 3, 13, 0), DAY_BEFORE, utc(2027, 2, 2, 13, 0)),
        # 21:30 → 20:45 that evening, earlier rather than the next morning closer to the appointment.
        (TORONTO, utc(2027, 2, 4, 2, 30), DAY_BEFORE, utc(2027, 2, 3, 1, 45)),
        # 20:50 → 20:45.
        (TORONTO, utc(2027, 2, 4, 1, 50), DAY_BEFORE, utc(2027, 2, 3, 1, 45)),
        # Spring forward, Sunday 14 March 2027: Sunday 10:00 EDT → Saturday 10:00 EST (23 h before).
        (TORONTO, utc(2027, 3, 14, 14, 0), DAY_BEFORE, utc(2027, 3, 13, 15, 0)),
        # Monday 10:00 EDT → Sunday 10:00 EDT.
        (TORONTO, utc(2027, 3, 15, 14, 0), DAY_BEFORE, utc(2027, 3, 14, 14, 0)),
        # Monday 02:30 EDT → Sunday 02:30 does not exist → Sunday 08:00 EDT.
        (TORONTO, utc(2027, 3, 15, 6, 30), DAY_BEFORE, utc(2027, 3, 14, 12, 0)),
        # Monday 07:00 EDT → Sunday 08:00 EDT (12:00 UTC, not 13:00).
        (TORONTO, utc(2027, 3, 15, 11, 0), DAY_BEFORE, utc(2027, 3, 14, 12, 0)),
        # Three days across the change: Tuesday 09:00 EDT → Saturday 09:00 EST.
        (TORONTO, utc(2027, 3, 16, 13, 0), THREE_DAYS, utc(2027, 3, 13, 14, 0)),
        # Fall back, Sunday 7 November 2027: Monday 01:30 EST → Sunday 01:30 exists twice → 08:00 EST.
        (TORONTO, utc(2027, 11, 8, 6, 30), DAY_BEFORE, utc(2027, 11, 7, 13, 0)),
        # Sunday 10:00 EST → Saturday 10:00 EDT (25 h before).
        (TORONTO, utc(2027, 11, 7, 15, 0), DAY_BEFORE, utc(2027, 11, 6, 14, 0)),
        # Îles-de-la-Madeleine (Atlantic): Monday 22:30 AST → Sunday 20:45 AST, the change day.
        (HALIFAX, utc(2027, 11, 9, 2, 30), DAY_BEFORE, utc(2027, 11, 8, 0, 45)),
        # Monday 07:00 AST → Sunday 08:00 AST (12:00 UTC; it would be 11:00 in ADT).
        (HALIFAX, utc(2027, 11, 8, 11, 0), DAY_BEFORE, utc(2027, 11, 7, 12, 0)),
        # Spring: Sunday 09:00 ADT → Saturday 09:00 AST.
        (HALIFAX, utc(2027, 3, 14, 12, 0), DAY_BEFORE, utc(2027, 3, 13, 13, 0)),
        # Three days, Halifax, Wednesday 19:00 ADT → Sunday 19:00 ADT (the change day).
        (HALIFAX, utc(2027, 3, 17, 22, 0), THREE_DAYS, utc(2027, 3, 14, 22, 0)),
        # Basse-Côte-Nord: Atlantic time all year, no change.
        (BLANC_SABLON, utc(2027, 3, 14, 13, 0), DAY_BEFORE, utc(2027, 3, 13, 13, 0)),
    ],
)
def test_the_due_moment_is_clamped_into_the_clinic_window(tz, start, kind, due):
    assert reminder_due_at(start=start, kind=kind, tz=tz) == due


@pytest.mark.parametrize("tz", [TORONTO, HALIFAX, BLANC_SABLON])
@pytest.mark.parametrize("kind", [DAY_BEFORE, THREE_DAYS])
@pytest.mark.parametrize("first_day", [utc(2027, 3, 10), utc(2027, 11, 3)])
def test_every_due_moment_of_a_change_week_is_in_the_window_and_on_the_right_day(tz, kind, first_day):
    lead = 1 if kind == DAY_BEFORE else 3
    for quarter in range(7 * 24 * 4):
        start = first_day + timedelta(minutes=15 * quarter)
        due = reminder_due_at(start=start, kind=kind, tz=tz)
        local = due.astimezone(tz)
        assert WINDOW_START <= local.time() <= LATEST_DUE, start
        assert local.date() == start.astimezone(tz).date() - timedelta(days=lead), start
        assert due <= start - timedelta(days=lead) + timedelta(hours=9), start


@pytest.mark.parametrize(
    ("tz", "moment", "inside"),
    [
        (TORONTO, utc(2027, 2, 2, 12, 59, 59), False),  # 07:59:59
        (TORONTO, utc(2027, 2, 2, 13, 0), True),  # 08:00
        (TORONTO, utc(2027, 2, 3, 1, 59, 59), True),  # 20:59:59
        (TORONTO, utc(2027, 2, 3, 2, 0), False),  # 21:00
        (HALIFAX, utc(2027, 2, 2, 12, 0), True),  # 08:00 AST
        (HALIFAX, utc(2027, 2, 3, 1, 0), False),  # 21:00 AST
        (TORONTO, utc(2027, 3, 14, 12, 0), True),  # 08:00 EDT on the change day
        (TORONTO, utc(2027, 3, 14, 11, 30), False),  # 07:30 EDT
    ],
)
def test_the_sending_window_is_8_to_21_clinic_time(tz, moment, inside):
    assert in_sending_window(moment, tz) is inside


@pytest.mark.parametrize(
    ("tz", "moment", "expected"),
    [
        # 01:30 EST on the spring-forward night → 08:00 EDT that day (12:00 UTC).
        (TORONTO, utc(2027, 3, 14, 6, 30), utc(2027, 3, 14, 12, 0)),
        # Saturday 21:30 EDT before the fall-back night → Sunday 08:00 EST (13:00 UTC).
        (TORONTO, utc(2027, 11, 7, 1, 30), utc(2027, 11, 7, 13, 0)),
        # Saturday 21:10 ADT in Halifax → Sunday 08:00 AST (12:00 UTC).
        (HALIFAX, utc(2027, 11, 7, 0, 10), utc(2027, 11, 7, 12, 0)),
    ],
)
def test_outside_the_window_the_next_start_is_8_clinic_time(tz, moment, expected):
    assert next_window_start(moment, tz) == expected


# --- sending ---------------------------------------------------------------------------------------


def test_a_due_reminder_is_sent_once_and_marked_sent(appointment):
    reminders_schedule(now=NOW)
    reminder = Reminder.objects.get()
    assert reminders_send(now=reminder.due_at - timedelta(minutes=1)) == 0
    assert reminders_send(now=reminder.due_at) == 1
    assert reminders_send(now=reminder.due_at + timedelta(minutes=20)) == 0
    (message,) = mail.outbox
    assert message.to == ["julie@example.org"]
    assert message.extra_headers["X-Idempotency-Key"] == reminder.idempotency_key
    reminder.refresh_from_db()
    assert reminder.state == Reminder.State.SENT
    assert (reminder.attempts, reminder.sent_at) == (1, reminder.due_at)
    assert reminder.provider_id == message.extra_headers["Message-ID"]
    assert reminder.claimed_at is None


def test_a_reminder_of_a_cancelled_appointment_is_cancelled_not_sent(appointment):
    reminders_schedule(now=NOW)
    appointment_cancel(appointment=appointment, reason="cannot_attend", now=NOW)
    reminder = Reminder.objects.get()
    assert reminders_send(now=reminder.due_at) == 0
    reminder.refresh_from_db()
    assert reminder.state == Reminder.State.CANCELLED
    assert reminder_mails([reminder]) == []


def test_a_reminder_processed_after_21_waits_for_8_the_next_morning(appointment):
    reminders_schedule(now=NOW)
    reminder = Reminder.objects.get()
    # The beat was down all day: it comes back at 21:10 on Tuesday.
    assert reminders_send(now=utc(2027, 2, 3, 2, 10)) == 0
    reminder.refresh_from_db()
    assert (reminder.state, reminder.attempts) == (Reminder.State.PENDING, 0)
    assert reminder.due_at == utc(2027, 2, 3, 13, 0)  # Wednesday 08:00, two hours before
    assert mail.outbox == []
    assert reminders_send(now=utc(2027, 2, 3, 13, 0)) == 1


def test_a_claim_that_reaches_21_before_sending_is_put_back_for_the_morning(appointment):
    reminders_schedule(now=NOW)
    Reminder.objects.update(due_at=utc(2027, 2, 3, 1, 59))  # 20:59
    (claimed,) = reminders_claim(now=utc(2027, 2, 3, 1, 59), limit=10)
    assert reminder_deliver(claimed, now=utc(2027, 2, 3, 2, 0)) == "deferred"  # 21:00
    claimed.refresh_from_db()
    assert (claimed.state, claimed.attempts, claimed.due_at) == ("pending", 0, utc(2027, 2, 3, 13, 0))
    assert mail.outbox == []


def test_a_reminder_too_close_to_the_appointment_is_skipped(appointment):
    reminders_schedule(now=NOW)
    assert reminders_send(now=utc(2027, 2, 3, 14, 0)) == 0  # the appointment is in an hour
    reminder = Reminder.objects.get()
    assert (reminder.state, reminder.last_error) == (Reminder.State.SKIPPED, "too_late")
    assert mail.outbox == []


class FlakySmsBackend(sms.LocmemSmsBackend):
    """An SMS provider that is down for the first ``failures`` calls (an outbound fake)."""

    failures = 0

    def send(self, to: str, body: str, idempotency_key: str) -> str:
        if FlakySmsBackend.failures > 0:
            FlakySmsBackend.failures -= 1
            raise sms.SmsError(f"provider down for {to}")
        return super().send(to, body, idempotency_key)


class RejectingSmsBackend(sms.BaseSmsBackend):
    def send(self, to: str, body: str, idempotency_key: str) -> str:
        raise sms.SmsRejected(f"{to} is a landline")


@pytest.fixture
def sms_appointment(role, settings):
    settings.SMS_BACKEND = f"{__name__}.FlakySmsBackend"
    appointment = book(slot_at(role), CitizenFactory(email="", mobile="514 555-0199"))
    reminders_schedule(now=NOW)
    return appointment


def test_a_transient_failure_is_retried_later_and_then_sent(sms_appointment):
    FlakySmsBackend.failures = 1
    reminder = Reminder.objects.get()
    due = reminder.due_at
    assert reminders_send(now=due) == 0
    reminder.refresh_from_db()
    assert (reminder.state, reminder.attempts) == (Reminder.State.PENDING, 1)
    assert reminder.due_at == due + timedelta(minutes=2)
    assert reminder.last_error == "SmsError"  # the class only: the message quoted the number
    assert reminders_send(now=due + timedelta(minutes=1)) == 0
    assert reminders_send(now=due + timedelta(minutes=2)) == 1
    reminder.refresh_from_db()
    assert (reminder.state, reminder.attempts, reminder.last_error) == (Reminder.State.SENT, 2, "")
    assert len(sms.outbox) == 1


def test_a_reminder_is_given_up_after_the_last_attempt(sms_appointment, settings):
    settings.REMINDER_MAX_ATTEMPTS = 3
    FlakySmsBackend.failures = 10
    moment = Reminder.objects.get().due_at
    for _ in range(3):
        reminders_send(now=moment)
        moment += timedelta(minutes=10)
    reminder = Reminder.objects.get()
    assert (reminder.state, reminder.attempts, reminder.last_error) == (Reminder.State.SKIPPED, 3, "SmsError")
    FlakySmsBackend.failures = 0
    assert reminders_send(now=moment) == 0
    assert sms.outbox == []


def test_a_number_the_provider_refuses_is_skipped_at_once(sms_appointment, settings):
    settings.SMS_BACKEND = f"{__name__}.RejectingSmsBackend"
    reminders_send(now=Reminder.objects.get().due_at)
    reminder = Reminder.objects.get()
    assert (reminder.state, reminder.attempts, reminder.last_error) == ("skipped", 1, "SmsRejected")
    assert "514" not in reminder.last_error


# --- a killed worker: re-sent with the same key, marked sent once ----------------------------------


def test_a_claim_left_by_a_killed_worker_is_resent_with_the_same_key(role, sms_on, settings):
    book(slot_at(role), CitizenFactory(email="", mobile="514 555-0199"))
    reminders_schedule(now=NOW)
    due = Reminder.objects.get().due_at
    # The first worker claims, hands the message to the provider, and is killed before marking it.
    (claimed,) = reminders_claim(now=due, limit=10)
    first_id = sms.get_sms_backend().send(
        "+15145550199", reminder_render(claimed)["sms"], claimed.idempotency_key
    )
    assert Reminder.objects.get().state == Reminder.State.SENDING
    # Within the timeout nobody touches it (the worker might only be slow).
    assert reminders_send(now=due + timedelta(minutes=9)) == 0
    assert len(sms.outbox) == 1
    # After the timeout another worker takes it over, with the same key.
    timeout = timedelta(seconds=settings.REMINDER_SENDING_TIMEOUT_SECONDS)
    assert reminders_send(now=due + timeout + timedelta(minutes=1)) == 1
    assert reminders_send(now=due + timeout + timedelta(minutes=30)) == 0
    first, second = sms.outbox
    assert first.idempotency_key == second.idempotency_key == claimed.idempotency_key
    assert second.provider_id == first_id  # a provider honouring the key drops the second one
    reminder = Reminder.objects.get()
    assert (reminder.state, reminder.attempts, reminder.provider_id) == (Reminder.State.SENT, 2, first_id)


def test_a_claim_killed_before_sending_is_sent_once_after_the_timeout(appointment, settings):
    reminders_schedule(now=NOW)
    due = Reminder.objects.get().due_at
    reminders_claim(now=due, limit=10)  # …and the worker dies at once
    timeout = timedelta(seconds=settings.REMINDER_SENDING_TIMEOUT_SECONDS)
    assert reminders_send(now=due + timeout + timedelta(seconds=1)) == 1
    assert len(mail.outbox) == 1
    assert Reminder.objects.get().attempts == 2


def test_a_slow_worker_that_lost_its_claim_cannot_mark_the_reminder_again(appointment, settings):
    reminders_schedule(now=NOW)
    due = Reminder.objects.get().due_at
    (slow,) = reminders_claim(now=due, limit=10)
    later = due + timedelta(seconds=settings.REMINDER_SENDING_TIMEOUT_SECONDS + 60)
    assert reminders_send(now=later) == 1
    # The slow worker wakes up: its message goes out with the same key, the row is not touched.
    assert reminder_deliver(slow, now=later + timedelta(minutes=1)) == "sent"
    reminder = Reminder.objects.get()
    assert (reminder.state, reminder.attempts, reminder.sent_at) == (Reminder.State.SENT, 2, later)
    assert {m.extra_headers["X-Idempotency-Key"] for m in mail.outbox} == {reminder.idempotency_key}


# --- two senders at once: each reminder delivered exactly once --------------------------------------


def run_together(calls, timeout: float = 60):
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def worker(index, call):
        try:
            barrier.wait(timeout=timeout)
            results[index] = call()
        except BaseException as exc:  # noqa: BLE001 - the test asserts on every result
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, c), daemon=True) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_deliver_each_reminder_exactly_once(settings):
    settings.SMS_BACKEND = LOCMEM_SMS
    settings.REMINDER_BATCH = 3  # many small claims, so that the senders interleave
    role = RoleFactory(clinic=ClinicFactory(reminder_three_days=True))
    for n in range(12):
        book(slot_at(role, hours=80 + n), CitizenFactory(mobile=f"514 555-01{n:02d}"))
    reminders_schedule(now=NOW)
    reminders = list(Reminder.objects.all())
    assert len(reminders) == 12 * 2 * 2  # two kinds, two channels
    moment = max(r.due_at for r in reminders)  # every one is due, all inside the window
    assert in_sending_window(moment, TORONTO)

    results = run_together([lambda: reminders_send(now=moment) for _ in range(4)])

    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == len(reminders)
    delivered = Counter(m.extra_headers["X-Idempotency-Key"] for m in reminder_mails(reminders))
    delivered.update(m.idempotency_key for m in sms.outbox)
    assert delivered == Counter({r.idempotency_key: 1 for r in reminders})
    assert set(Reminder.objects.values_list("state", "attempts")) == {(Reminder.State.SENT, 1)}


# --- the messages ------------------------------------------------------------------------------------


def test_the_email_reminder_renders_in_french_and_in_english_in_clinic_time(appointment):
    reminders_schedule(now=NOW)
    reminder = Reminder.objects.get()
    rendered = {}
    for language in ("fr", "en"):
        Citizen.objects.filter(pk=appointment.citizen_id).update(preferred_language=language)
        reminder = Reminder.objects.select_related("appointment__citizen").get()
        rendered[language] = reminder_render(reminder)
    french, english = rendered["fr"], rendered["en"]
    assert french["subject"].startswith("Rappel")
    assert english["subject"].startswith("Reminder")
    assert "mercredi 3 février" in french["subject"]
    assert "Wednesday 3 February" in english["subject"]
    for parts in (french, english):
        assert "10:00" in parts["text"] and "15:00" not in parts["text"]
        assert appointment.clinic.name in parts["text"]
        assert appointment.slot.practitioner.last_name in parts["text"]
        assert "/annulation/" in parts["text"] and "/annulation/" in parts["html"]
    assert 'lang="en"' in english["html"] and 'lang="fr"' in french["html"]


def test_the_sms_reminder_is_short_in_the_citizens_language_with_the_cancel_link(role, sms_on):
    citizen = CitizenFactory(email="", mobile="514 555-0199", preferred_language="en")
    book(slot_at(role), citizen)
    reminders_schedule(now=NOW)
    english = reminder_render(Reminder.objects.select_related("appointment__citizen").get())["sms"]
    Citizen.objects.filter(pk=citizen.pk).update(preferred_language="fr")
    french = reminder_render(Reminder.objects.select_related("appointment__citizen").get())["sms"]
    assert "reminder" in english and "To cancel:" in english
    assert "rappel" in french and "Pour annuler" in french
    for body in (english, french):
        assert "10:00" in body
        assert "http://testserver/annulation/" in body
        assert "\n" not in body
        assert len(body) <= 300


def test_the_cancel_link_of_a_reminder_opens_the_confirmation_page_and_changes_nothing(client, role, sms_on):
    appointment = book(slot_at(role), CitizenFactory(email="", mobile="514 555-0199"))
    reminders_schedule(now=NOW)
    reminders_send(now=Reminder.objects.get().due_at)
    (message,) = sms.outbox
    path = message.body.rsplit("http://testserver", 1)[1]
    assert path.startswith(reverse("booking:cancel_link", args=["x"]).rsplit("x/", 1)[0])
    response = client.get(path)
    assert response.status_code == 200
    assert b'method="post"' in response.content.lower()
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED


def test_no_message_carries_the_health_insurance_number_or_the_reason(role, sms_on):
    citizen = CitizenFactory(email="c@example.org", mobile="514 555-0199")
    book(slot_at(role), citizen)
    reminders_schedule(now=NOW)
    reminders_send(now=Reminder.objects.first().due_at)
    texts = [sms_message.body for sms_message in sms.outbox]
    for message in mail.outbox:
        texts += [message.subject, message.body, message.alternatives[0][0]]
    assert len(texts) == 4
    for text in texts:
        assert citizen.nam not in text
        assert citizen.nam[:4] + " " not in text
        assert "grossesse" not in text.lower() and "pregnancy" not in text.lower()


# --- wiring ------------------------------------------------------------------------------------------


def test_the_beat_runs_the_reminder_tasks(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    for name in ("booking.tasks.reminders_schedule", "booking.tasks.reminders_send"):
        assert name in tasks
        assert callable(import_string(name))
