"""Search, hold and book are rate-limited per citizen on the pages and the citizen API alike: the
request past the limit gets 429 with Retry-After (a friendly page, or the API's error body), and
another citizen carries on. Identification's limits are in tests/citizens/test_identify.py."""

import pytest
from django.test import Client
from django.urls import reverse

from booking.models import Reason
from tests.booking.test_api import bearer, error, post
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, FsaFactory, SlotFactory

pytestmark = pytest.mark.django_db

SEARCH = {
    "path": "near",
    "reason": Reason.FOLLOW_UP,
    "postal_code": "H2X",
    "radius_km": 25,
    "sort": "soonest",
}


@pytest.fixture(autouse=True)
def _fsa(db):
    FsaFactory()


def _identified(citizen) -> Client:
    client = Client()
    assert client.post(reverse("booking:identify"), identify_payload(citizen)).status_code == 302
    return client


def _page_search(client, slot):
    return client.get(reverse("booking:search"), SEARCH)


def _page_hold(client, slot):
    return client.post(reverse("booking:hold", args=[slot.pk]), {"reason": Reason.FOLLOW_UP})


def _page_book(client, slot):
    assert _page_hold(client, slot).status_code == 302  # the hold's own limit is not the one tested
    token = client.get(reverse("booking:confirm", args=[slot.pk])).context["form"].initial["hold_token"]
    data = {"reason": Reason.FOLLOW_UP, "email": "julie@example.org", "language": "fr", "hold_token": token}
    return client.post(reverse("booking:confirm", args=[slot.pk]), data)


PAGES = {"search": _page_search, "hold": _page_hold, "book": _page_book}


@pytest.mark.parametrize("limit", ["search", "hold", "book"])
def test_the_pages_answer_429_past_the_limit_with_a_friendly_page(limit, citizen, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, limit: "1/3600"}
    client = _identified(citizen)
    first = PAGES[limit](client, SlotFactory())
    assert first.status_code in (200, 302)
    second = PAGES[limit](client, SlotFactory())
    assert second.status_code == 429
    assert 0 < int(second["Retry-After"]) <= 3600
    assert "811" in second.content.decode()
    other = _identified(CitizenFactory(first_name="Marc", last_name="Roy", sex="M"))
    assert PAGES[limit](other, SlotFactory()).status_code in (200, 302)


def _api_search(client, citizen, slot):
    return client.get("/api/v1/slots", {"path": "near"}, **bearer(citizen))


def _api_hold(client, citizen, slot):
    return post(client, "/api/v1/holds", {"slot_id": slot.pk}, **bearer(citizen))


def _api_book(client, citizen, slot):
    return post(
        client, "/api/v1/appointments", {"slot_id": slot.pk, "reason": Reason.FOLLOW_UP}, **bearer(citizen)
    )


API = {"search": _api_search, "hold": _api_hold, "book": _api_book}


@pytest.mark.parametrize("limit", ["search", "hold", "book"])
def test_the_api_answers_429_past_the_limit_with_retry_after(limit, citizen, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, limit: "1/3600"}
    client = Client()
    assert API[limit](client, citizen, SlotFactory()).status_code in (200, 201)
    second = API[limit](client, citizen, SlotFactory())
    assert second.status_code == 429
    retry_after = int(second["Retry-After"])
    assert 0 < retry_after <= 3600
    assert error(second)["code"] == "rate_limited" and error(second)["retry_after"] == retry_after
    other = CitizenFactory(first_name="Marc", last_name="Roy", sex="M")
    assert API[limit](client, other, SlotFactory()).status_code in (200, 201)


# --- per address (on top of the per-citizen limits) --------------------------------------------


def _page_client(citizen, ip: str) -> Client:
    client = Client(REMOTE_ADDR=ip)
    assert client.post(reverse("booking:identify"), identify_payload(citizen)).status_code == 302
    return client


@pytest.mark.parametrize("limit", ["search", "hold", "book"])
def test_one_address_is_limited_across_citizens_and_another_address_is_not(limit, citizen, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, f"{limit}_ip": "1/3600"}
    marc = CitizenFactory(first_name="Marc", last_name="Roy", sex="M")
    client = Client(REMOTE_ADDR="203.0.113.7")
    assert API[limit](client, citizen, SlotFactory()).status_code in (200, 201)
    second = API[limit](client, marc, SlotFactory())  # another citizen, the same address
    assert second.status_code == 429
    assert error(second)["code"] == "rate_limited" and 0 < int(second["Retry-After"]) <= 3600
    elsewhere = Client(REMOTE_ADDR="198.51.100.9")
    assert API[limit](elsewhere, marc, SlotFactory()).status_code in (200, 201)


def test_the_pages_count_the_address_too(citizen, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "search_ip": "1/3600"}
    assert _page_search(_page_client(citizen, "203.0.113.7"), None).status_code == 200
    marc = CitizenFactory(first_name="Marc", last_name="Roy", sex="M")
    response = _page_search(_page_client(marc, "203.0.113.7"), None)
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert _page_search(_page_client(marc, "198.51.100.9"), None).status_code == 200


def test_an_address_over_its_limit_is_let_in_again_after_the_window(citizen, settings):
    import time

    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "search_ip": "1/1"}
    client = Client(REMOTE_ADDR="203.0.113.7")
    time.sleep(1 - time.time() % 1)  # start of a window: the two requests share it
    assert _api_search(client, citizen, None).status_code == 200
    over = _api_search(client, citizen, None)
    assert over.status_code == 429 and over["Retry-After"] == "1"
    time.sleep(1.05)
    assert _api_search(client, citizen, None).status_code == 200


def test_the_address_limits_are_generous_by_default():
    """Shared NAT (a hospital, a school): an address allows many times what one citizen may do."""
    from django.conf import settings as django_settings

    from config.ratelimit import _parse

    for name in ("search", "hold", "book"):
        per_ip, ip_period = _parse(django_settings.RATE_LIMITS[f"{name}_ip"])
        per_citizen, period = _parse(django_settings.RATE_LIMITS[name])
        assert per_ip / ip_period >= 15 * per_citizen / period


# --- the counters' cost: one Redis round trip per counted request --------------------------------


def test_the_address_and_the_citizen_are_counted_in_one_redis_round_trip(settings, rf, monkeypatch):
    # The booking path counts two limits; each used to take three round trips (add, exists, incr)
    # because the check for Redis looked at the cache proxy instead of the backend.
    import redis.connection
    from django.core.cache import cache, caches

    from config import ratelimit

    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "book": "2/60", "book_ip": "100/60"}
    sent = []
    real_send = redis.connection.AbstractConnection.send_packed_command

    def counting_send(self, command, check_health=True):
        sent.append(command)
        return real_send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting_send)
    request = rf.post("/api/v1/appointments", REMOTE_ADDR="192.0.2.77")
    ratelimit.hit_with_ip("book", "c-one-trip", request)
    assert len(sent) == 1
    ratelimit.hit_with_ip("book", "c-one-trip", request)
    with pytest.raises(ratelimit.RateLimited):
        ratelimit.hit_with_ip("book", "c-one-trip", request)
    key, _limit, _period, _retry = ratelimit._window("book", "c-one-trip")
    assert cache.get(key) == 3  # the third was counted, then refused
    assert 0 < caches["default"]._cache.get_client().ttl(cache.make_and_validate_key(key)) <= 61
