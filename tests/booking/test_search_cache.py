"""The short-lived search cache (docs/scaling.md): a booked or held slot never shows from it; a
freed or new slot shows within SEARCH_CACHE_SECONDS. Redis is real (emptied before each test)."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from booking.models import Appointment, Audience, SearchMiss, Slot
from booking.selectors import SlotQuery, slot_search
from booking.services import appointment_book, appointment_cancel, slot_hold
from tests.factories import NOW, CitizenFactory, FsaFactory, slot_at

NEAR = {"path": "near", "fsa": "H2X", "radius_km": 25}


@pytest.fixture(autouse=True)
def cached(settings, db):
    settings.SEARCH_CACHE_SECONDS = 60
    FsaFactory(code="H2X")


def search(citizen=None, **query) -> list[int]:
    result = slot_search(citizen=citizen, query=SlotQuery(**{**NEAR, **query}), now=NOW)
    return [item.slot.pk for item in result.items]


def book(slot, citizen) -> Appointment:
    return appointment_book(slot_id=slot.pk, citizen=citizen, reason="follow_up", channel="portal", now=NOW)


def test_a_repeated_search_reuses_the_page_and_does_not_see_a_new_slot_until_it_lapses(settings, role):
    first = slot_at(role, hours=48, audience=Audience.PUBLIC)
    assert search() == [first.pk]
    newer = slot_at(role, hours=30, audience=Audience.PUBLIC)  # published after the search
    with CaptureQueriesContext(connection) as queries:
        assert search() == [first.pk]  # from the cache: the new slot is not there yet
    slot_queries = [q["sql"] for q in queries.captured_queries if "booking_slot" in q["sql"]]
    assert len(slot_queries) == 1 and "ORDER BY" not in slot_queries[0]  # the check, not the search
    assert search(sort="nearest") == [newer.pk]  # another query, another entry, computed now
    assert search(reason="follow_up") == [newer.pk, first.pk]


def test_a_freed_slot_shows_within_the_cache_time(settings, role):
    settings.SEARCH_CACHE_SECONDS = 1
    slot = slot_at(role, hours=48, audience=Audience.PUBLIC)
    appointment = book(slot, CitizenFactory())
    assert search() == []
    appointment_cancel(appointment=appointment, reason="better_time", now=NOW)
    time.sleep(1.1)
    assert search() == [slot.pk]


def test_a_booked_slot_disappears_from_the_cached_page_at_once(role):
    a = slot_at(role, hours=48, audience=Audience.PUBLIC)
    b = slot_at(role, hours=72, audience=Audience.PUBLIC)
    assert search() == [a.pk, b.pk]
    book(a, CitizenFactory())
    assert search() == [b.pk]
    assert search(sort="nearest") == [b.pk]


def test_a_slot_held_by_someone_else_disappears_and_the_holder_still_sees_it(role):
    a = slot_at(role, hours=48, audience=Audience.PUBLIC)
    b = slot_at(role, hours=72, audience=Audience.PUBLIC)
    holder, other = CitizenFactory(), CitizenFactory()
    assert search(other) == [a.pk, b.pk]
    slot_hold(slot_id=a.pk, citizen=holder, now=NOW)
    assert search(other) == [b.pk]
    assert search(holder) == [a.pk, b.pk]
    assert search(other) == [b.pk]  # the holder's page is not cached for others


def test_a_slot_the_clinic_changed_is_searched_again(role):
    slot = slot_at(role, hours=48, audience=Audience.PUBLIC)
    assert search() == [slot.pk]
    Slot.objects.filter(pk=slot.pk).update(audience=Audience.NOT_ONLINE, version=slot.version + 1)
    assert search() == []


def test_an_empty_page_from_the_cache_still_records_the_unmet_demand(role):
    assert search() == []
    assert search() == []
    assert SearchMiss.objects.count() == 2


def test_off_with_zero(settings, role):
    settings.SEARCH_CACHE_SECONDS = 0
    assert search() == []
    slot = slot_at(role, hours=48, audience=Audience.PUBLIC)
    assert search() == [slot.pk]
