"""The booking's hot path (issue 7): fewer round trips, the same guarantees.

A booking is two statements between BEGIN and COMMIT (booking/services/_hot.py): the citizen's row
lock with the lock timeout set in it and the slot read; then the overlap and anti-hoarding reads, the
compare-and-set that also releases the citizen's hold, the appointment and the outbox event as
data-modifying CTEs of one statement. Both are prepared once per connection. In production, no broker
round trip: the beat relay hands the e-mails to the workers (``NOTIFICATIONS_ON_COMMIT`` false).
"""

import threading
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from booking import errors
from booking.models import Appointment, OutboxEvent, Slot
from booking.services import appointment_book, slot_hold
from booking.tasks import RELAY_WATERMARK_KEY, notifications_relay, notifications_sweep
from citizens.models import Citizen
from tests.factories import NOW, CitizenFactory, slot_at

API = Appointment.Channel.CITIZEN_API
TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", "BEGIN", "COMMIT")


def book(slot, citizen, **kwargs) -> Appointment:
    kwargs.setdefault("now", NOW)
    return appointment_book(slot_id=slot.pk, citizen=citizen, reason="follow_up", channel=API, **kwargs)


def test_an_online_booking_is_two_statements(role, citizen):
    slot = slot_at(role)
    with CaptureQueriesContext(connection) as queries:
        book(slot, citizen)
    sql = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(TRANSACTION_CONTROL)]
    assert len(sql) == 2, sql
    assert "set_config('lock_timeout'" in sql[0] and "FOR UPDATE OF z" in sql[0]
    write = sql[1].lower()
    assert write.startswith("with g as (select exists") and "count(*)" in write  # overlap, anti-hoarding
    assert "cas as (update booking_slot" in write and "version = $" in write
    assert "insert into booking_appointment" in write and "insert into booking_outboxevent" in write
    assert not any("SET LOCAL" in s for s in sql)


def test_the_returned_instances_are_as_the_database_has_them(role, citizen):
    slot = slot_at(role)
    appointment = book(slot, citizen)
    stored = Appointment.objects.get(pk=appointment.pk)
    names = [f.attname for f in Appointment._meta.concrete_fields]
    assert {n: getattr(appointment, n) for n in names} == {n: getattr(stored, n) for n in names}
    assert not appointment._state.adding
    stored_slot = Slot.objects.get(pk=slot.pk)
    for name in ("status", "version", "holder_id", "hold_expires", "hold_token"):
        assert getattr(appointment.slot, name) == getattr(stored_slot, name), name
    event = OutboxEvent.objects.get(appointment=appointment)
    assert (event.kind, event.slot_id, event.clinic_id, event.channel) == (
        "appointment.booked",
        slot.pk,
        slot.clinic_id,
        API,
    )
    assert event.payload == {"slot_version": 2, "appointment_version": 1}
    assert event.notify_state == OutboxEvent.NotifyState.PENDING and event.created_at == stored.created_at


def test_a_slot_taken_between_the_read_and_the_write_is_refused_by_the_compare_and_set(
    role, citizen, monkeypatch
):
    # The read (with the lock) saw the slot free; another booking takes it before the write: the
    # single write statement must book nothing, write no event and keep the citizen's hold.
    from booking.services import _hot, appointments

    slot, held = slot_at(role, hours=48), slot_at(role, hours=72)
    hold = slot_hold(slot_id=held.pk, citizen=citizen, now=NOW)
    real_write = _hot.booking_write

    def taken_meanwhile(**kwargs):
        Slot.objects.filter(pk=slot.pk).update(status=Slot.Status.BOOKED, version=F("version") + 1)
        return real_write(**kwargs)

    monkeypatch.setattr(appointments, "booking_write", taken_meanwhile)
    with pytest.raises(errors.SlotUnavailable):
        book(slot, citizen)
    assert not Appointment.objects.filter(slot=slot).exists()
    assert not OutboxEvent.objects.filter(slot=slot, kind="appointment.booked").exists()
    held.refresh_from_db()
    assert (held.holder_id, held.hold_token) == (citizen.pk, hold.token)


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_booking_between_the_read_and_the_write_wins_alone(role):
    # Two real transactions: A has read the slot (free, version 1) and waits before its write;
    # B books the same slot and commits; A's compare-and-set then refuses.
    from booking.services import _hot, appointments

    first, second = CitizenFactory(), CitizenFactory()
    slot = slot_at(role)
    a_read, b_done = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}
    real_write = _hot.booking_write

    def write_after_b(**kwargs):
        if threading.current_thread().name == "A":
            a_read.set()
            assert b_done.wait(10)
        return real_write(**kwargs)

    appointments.booking_write, saved = write_after_b, appointments.booking_write
    try:

        def a() -> None:
            try:
                book(slot, first, now=timezone.now())
                outcome["a"] = "booked"
            except errors.SlotUnavailable:
                outcome["a"] = "refused"
            finally:
                connection.close()

        thread = threading.Thread(target=a, name="A")
        thread.start()
        assert a_read.wait(10)
        book(slot, second, now=timezone.now())
        b_done.set()
        thread.join(15)
    finally:
        appointments.booking_write = saved
    assert outcome == {"a": "refused"}
    assert list(Appointment.objects.filter(slot=slot).values_list("citizen_id", flat=True)) == [second.pk]
    assert OutboxEvent.objects.filter(slot=slot, kind="appointment.booked").count() == 1
    assert Slot.objects.get(pk=slot.pk).version == 2


@pytest.mark.django_db(transaction=True)
def test_the_guards_see_a_booking_the_same_citizen_committed_while_waiting_for_the_lock(settings, role):
    # Two tabs of one citizen at the limit minus one: B waits on the citizen's lock while A books;
    # B's guards are read after the lock, so they see A's booking and B is refused (limit).
    from booking.services import _hot, appointments

    settings.BOOKING_MAX_ACTIVE_ONLINE = 1
    citizen = CitizenFactory()
    one, other = slot_at(role, hours=48), slot_at(role, hours=72)
    a_locked, b_started = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}
    real_write = _hot.booking_write

    def write_slowly(**kwargs):
        if threading.current_thread().name == "A":
            a_locked.set()
            assert b_started.wait(10)
            time.sleep(0.5)  # B is now waiting on the citizen's row lock
        return real_write(**kwargs)

    appointments.booking_write, saved = write_slowly, appointments.booking_write
    try:

        def a() -> None:
            try:
                book(one, citizen, now=timezone.now())
                outcome["a"] = "booked"
            finally:
                connection.close()

        thread = threading.Thread(target=a, name="A")
        thread.start()
        assert a_locked.wait(10)
        b_started.set()
        with pytest.raises(errors.LimitReached):
            book(other, citizen, now=timezone.now())
        thread.join(15)
    finally:
        appointments.booking_write = saved
    assert outcome == {"a": "booked"}
    assert list(Appointment.objects.filter(citizen=citizen).values_list("slot_id", flat=True)) == [one.pk]


def test_the_folded_reads_still_refuse_the_limit_and_the_overlap(settings, role, colleague_role, citizen):
    settings.BOOKING_MAX_ACTIVE_ONLINE = 1
    book(slot_at(role, hours=48), citizen)
    with pytest.raises(errors.LimitReached):
        book(slot_at(role, hours=72), citizen)
    settings.BOOKING_MAX_ACTIVE_ONLINE = 5
    with pytest.raises(errors.PatientOverlap):
        book(slot_at(colleague_role, hours=48, minutes=30), citizen)  # overlaps the first one
    assert Appointment.objects.filter(citizen=citizen).count() == 1


def test_a_booking_without_the_token_releases_the_hold_on_another_slot(role, citizen):
    held, other = slot_at(role, hours=48), slot_at(role, hours=72)
    slot_hold(slot_id=held.pk, citizen=citizen, now=NOW)
    book(other, citizen)
    held.refresh_from_db()
    other.refresh_from_db()
    assert (held.status, held.holder_id, held.hold_token, held.version) == (Slot.Status.FREE, None, "", 1)
    assert (other.status, other.holder_id, other.version) == (Slot.Status.BOOKED, None, 2)


def test_a_refused_booking_keeps_the_hold_it_would_have_released(role, citizen):
    held, taken = slot_at(role, hours=48), slot_at(role, hours=72)
    hold = slot_hold(slot_id=held.pk, citizen=citizen, now=NOW)
    book(taken, CitizenFactory())
    with pytest.raises(errors.SlotUnavailable):
        book(taken, citizen)
    held.refresh_from_db()
    assert (held.holder_id, held.hold_token) == (citizen.pk, hold.token)


def test_someone_elses_live_hold_still_blocks_and_an_expired_one_does_not(role, citizen):
    slot = slot_at(role)
    slot_hold(slot_id=slot.pk, citizen=CitizenFactory(), now=NOW)
    with pytest.raises(errors.SlotUnavailable):
        book(slot, citizen, now=NOW + timedelta(minutes=1))
    appointment = book(slot, citizen, now=NOW + timedelta(hours=1))  # the other hold ran out
    slot.refresh_from_db()
    assert appointment.slot_id == slot.pk
    assert (slot.status, slot.holder_id, slot.hold_expires) == (Slot.Status.BOOKED, None, None)


@pytest.mark.django_db(transaction=True)
def test_the_lock_timeout_applies_to_the_citizen_lock_itself(role):
    # Another transaction holds the citizen's row: the booking gives up with Busy after the lock
    # timeout (3 s), it does not wait for the other transaction to end (6 s).
    citizen = CitizenFactory()
    slot = slot_at(role)
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        try:
            with transaction.atomic():
                Citizen.objects.select_for_update().get(pk=citizen.pk)
                locked.set()
                release.wait(6)
        finally:
            connection.close()

    other = threading.Thread(target=hold_the_row)
    other.start()
    assert locked.wait(10)
    started = time.monotonic()
    try:
        with pytest.raises(errors.Busy):
            book(slot, citizen, now=timezone.now())
        waited = time.monotonic() - started
    finally:
        release.set()
        other.join()
    assert 2.5 < waited < 5.5
    assert not Appointment.objects.exists()


# --- the e-mail leaves through the relay, not from the request ---------------------------------


@pytest.fixture
def relay(settings):
    from django.core.cache import cache

    settings.NOTIFICATIONS_ON_COMMIT = False
    cache.delete(RELAY_WATERMARK_KEY)


def test_no_publish_on_commit_the_relay_sends_each_email_once(
    relay, role, django_capture_on_commit_callbacks
):
    citizen = CitizenFactory(email="julie@example.org")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        appointment = book(slot_at(role), citizen)
    assert callbacks == []  # nothing published to the broker by the booking
    event = OutboxEvent.objects.get(appointment=appointment)
    assert event.notify_state == OutboxEvent.NotifyState.PENDING
    assert mail.outbox == []
    assert notifications_relay() == 1
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["julie@example.org"]
    event.refresh_from_db()
    assert event.notify_state == OutboxEvent.NotifyState.SENT
    assert notifications_relay() == 0
    assert len(mail.outbox) == 1


def test_an_event_behind_the_relays_watermark_is_sent_by_the_sweep(relay, role):
    # Ids are taken at insert, not at commit: an event can commit after a relay run passed its id.
    from django.core.cache import cache

    first = book(slot_at(role, hours=48), CitizenFactory(email="a@example.org"))
    second = book(slot_at(role, hours=72), CitizenFactory(email="b@example.org"))
    late = OutboxEvent.objects.get(appointment=first)
    cache.set(RELAY_WATERMARK_KEY, OutboxEvent.objects.get(appointment=second).pk, None)
    assert notifications_relay() == 0
    assert mail.outbox == []
    OutboxEvent.objects.filter(pk=late.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    assert notifications_sweep() == 1
    assert [m.to for m in mail.outbox] == [["a@example.org"]]
