"""The change feed under concurrency, on PostgreSQL: transactions that commit out of order never put
an event behind a cursor already handed out, and only one relay numbers at a time."""

import random
import threading

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import override_settings

from booking.models import Appointment, OutboxEvent
from booking.services import appointment_book
from sync import feed
from tests.factories import CitizenFactory, SlotFactory

from .test_feed import appointment_ids, follow, seq_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("_no_feed_budget")]


@pytest.fixture
def _no_feed_budget():
    with override_settings(SYNC_FEED_MIN_INTERVAL_SECONDS=0):
        yield


def _slow_booking(slot, citizen, *, inserted: threading.Event | None = None, hold_open: float, results):
    """Book inside a transaction that stays open ``hold_open`` seconds after the event's insert."""
    try:
        with transaction.atomic():
            appointment = appointment_book(
                slot_id=slot.pk,
                citizen=citizen,
                reason="follow_up",
                channel=Appointment.Channel.CLINIC_AGENDA,
            )
            if inserted is not None:
                inserted.set()
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(%s)", [hold_open])
        results.append(appointment.pk)
    except Exception as exc:  # noqa: BLE001 - reported by the assertion on results
        results.append(repr(exc))
    finally:
        connection.close()


def test_paging_by_insert_order_would_miss_a_late_commit_and_the_feed_does_not(fhir_a, persona_a):
    """The race exists: an event inserted first and committed last is passed by an id cursor."""
    slow_slot, fast_slot = SlotFactory(role=persona_a.role), SlotFactory(role=persona_a.role)
    slow_citizen = CitizenFactory()
    inserted, results = threading.Event(), []
    slow = threading.Thread(
        target=_slow_booking,
        args=(slow_slot, slow_citizen),
        kwargs={"inserted": inserted, "hold_open": 1.5, "results": results},
    )
    slow.start()
    assert inserted.wait(10)
    fast = appointment_book(
        slot_id=fast_slot.pk,
        citizen=CitizenFactory(),
        reason="follow_up",
        channel=Appointment.Channel.CLINIC_AGENDA,
    )

    # A reader paging by id now sees only the fast event and moves its cursor past the slow one.
    id_cursor = max(OutboxEvent.objects.values_list("id", flat=True))
    feed.feed_relay()
    entries, feed_cursor = follow(fhir_a, 0)
    assert appointment_ids(entries) == [fast.pk]

    slow.join(10)
    (slow_pk,) = results
    assert not OutboxEvent.objects.filter(id__gt=id_cursor).exists()  # the id reader lost it
    feed.feed_relay()
    entries, _ = follow(fhir_a, feed_cursor)
    assert appointment_ids(entries) == [slow_pk]  # the feed did not


def test_many_bookings_committing_out_of_order_reach_a_polling_reader_exactly_once(fhir_a, persona_a):
    rng = random.Random(7)
    slots = [SlotFactory(role=persona_a.role) for _ in range(24)]
    citizens = [CitizenFactory() for _ in slots]
    results: list = []
    threads = [
        threading.Thread(
            target=_slow_booking,
            args=(slot, citizen),
            kwargs={"hold_open": rng.choice([0, 0, 0.05, 0.3, 0.8, 1.2]), "results": results},
        )
        for slot, citizen in zip(slots, citizens, strict=True)
    ]
    for index, thread in enumerate(threads):
        thread.start()
        if index % 4 == 0:
            threading.Event().wait(0.05)

    seen: list[dict] = []
    cursor = 0
    cursors_given = []
    while any(t.is_alive() for t in threads):
        feed.feed_relay()
        entries, cursor = follow(fhir_a, cursor, count=rng.choice([1, 3, 50]))
        seen += entries
        cursors_given.append(cursor)
    for thread in threads:
        thread.join(30)
    feed.feed_relay()
    entries, cursor = follow(fhir_a, cursor)
    seen += entries

    booked = [r for r in results if isinstance(r, int)]
    assert len(booked) == len(slots), results
    ids = appointment_ids(seen)
    assert sorted(ids) == sorted(booked)  # every event, exactly once
    seqs = [seq_of(e) for e in seen]
    assert seqs == list(range(1, len(slots) + 1))  # in feed order, without a gap
    assert cursors_given == sorted(cursors_given)
    # Out of order for real: some event was inserted before another yet numbered after it.
    events = list(OutboxEvent.objects.order_by("created_at", "id").values_list("feed_seq", flat=True))
    assert events != sorted(events)


def test_two_relays_at_once_never_number_an_event_twice(persona_a):
    for _ in range(30):
        appointment_book(
            slot_id=SlotFactory(role=persona_a.role).pk,
            citizen=CitizenFactory(),
            reason="follow_up",
            channel=Appointment.Channel.CLINIC_AGENDA,
        )
    barrier = threading.Barrier(4)
    counts: list = []

    def relay():
        try:
            barrier.wait(10)
            counts.append(feed.feed_relay(batch=7))
        finally:
            connection.close()

    threads = [threading.Thread(target=relay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    feed.feed_relay()  # whatever a relay that found the lock taken left behind
    numbers = list(OutboxEvent.objects.order_by("feed_seq").values_list("feed_seq", flat=True))
    assert numbers == list(range(1, 31))


def test_a_relay_finding_the_lock_taken_does_nothing_and_a_duplicate_number_is_refused(persona_a):
    appointment_book(
        slot_id=SlotFactory(role=persona_a.role).pk,
        citizen=CitizenFactory(),
        reason="follow_up",
        channel=Appointment.Channel.CLINIC_AGENDA,
    )
    locked, release = threading.Event(), threading.Event()

    def other_relay():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [feed.RELAY_LOCK_KEY])
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=other_relay)
    holder.start()
    assert locked.wait(10)
    assert feed.feed_relay() == 0
    release.set()
    holder.join(10)
    assert feed.feed_relay() == 1

    second = appointment_book(
        slot_id=SlotFactory(role=persona_a.role).pk,
        citizen=CitizenFactory(),
        reason="follow_up",
        channel=Appointment.Channel.CLINIC_AGENDA,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        OutboxEvent.objects.filter(appointment=second).update(feed_seq=1)
