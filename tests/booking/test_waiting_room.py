"""The virtual waiting room (issue 5): first come, first served; signed, per-visitor admissions.

Redis is real (the test database of the cache, emptied before each test); the clock of the queue is
passed in where a test needs time to pass.
"""

import json

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse

from booking import waitingroom
from booking.api.auth import citizen_token_make
from booking.waitingroom import HEADER, SESSION_TOKEN, leave, poll, token_check, token_make
from tests.factories import CitizenFactory

pytestmark = pytest.mark.django_db

T = 1_900_000_000.0  # a fixed clock for the queue


@pytest.fixture
def room(settings):
    settings.WAITING_ROOM_ENABLED = True
    settings.WAITING_ROOM_CAPACITY = 2
    settings.WAITING_ROOM_IDLE_SECONDS = 300
    settings.WAITING_ROOM_STALE_SECONDS = 60
    settings.WAITING_ROOM_REFRESH_SECONDS = 15
    settings.WAITING_ROOM_TOKEN_RECHECK_SECONDS = 30
    return settings


def test_off_by_default_the_flow_is_not_gated(client):
    response = client.get(reverse("booking:search"))
    assert response["Location"].startswith(reverse("booking:identify"))  # not the queue
    response = client.get(reverse("booking:waiting_room") + "?next=/recherche/")
    assert (response.status_code, response["Location"]) == (302, "/recherche/")


# --- the queue --------------------------------------------------------------------------------


def test_first_come_first_served_nobody_overtakes_a_waiter(room):
    assert poll("a", now=T).admitted and poll("b", now=T).admitted
    assert [poll(v, now=T + 1).position for v in ("c", "d", "e")] == [1, 2, 3]
    leave("a")  # a seat frees
    later = poll("d", now=T + 2)
    assert (later.admitted, later.position) == (False, 2)  # c is ahead and still waiting
    assert poll("c", now=T + 3).admitted
    assert poll("e", now=T + 4).position == 2  # behind d, whatever the order they ask in
    leave("b")
    assert not poll("e", now=T + 5).admitted
    assert poll("d", now=T + 6).admitted
    assert poll("e", now=T + 7).position == 1


def test_asking_again_keeps_the_same_place(room):
    poll("a", now=T)
    poll("b", now=T)
    assert poll("c", now=T).position == 1
    assert poll("d", now=T).position == 2
    assert [poll("c", now=T + i).position for i in range(1, 4)] == [1, 1, 1]


def test_a_seat_frees_when_its_visitor_is_idle_and_the_next_one_is_admitted(room):
    poll("a", now=T)
    poll("b", now=T + 100)
    assert not poll("c", now=T + 200).admitted
    assert poll("a", now=T + 250).admitted  # a asks again: the seat is kept until T + 550
    assert not poll("c", now=T + 399).admitted
    assert poll("c", now=T + 420).admitted  # b's seat lapsed at T + 400 (idle 300 s)
    assert not poll("b", now=T + 421).admitted  # b comes back: to the end of the line
    assert poll("a", now=T + 500).admitted


def test_a_waiter_who_stopped_asking_loses_the_place(room):
    poll("a", now=T)
    poll("b", now=T)
    poll("gone", now=T)
    poll("c", now=T + 1)
    assert poll("c", now=T + 59).position == 2
    assert poll("c", now=T + 62).position == 1  # "gone" last asked more than 60 s ago


# --- tokens -----------------------------------------------------------------------------------


def test_a_token_is_for_its_visitor_only_and_short_lived(room):
    token = token_make("s:visitor-a", now=T)
    assert token_check(token, "s:visitor-a", now=T + 10) == "fresh"
    assert token_check(token, "s:visitor-a", now=T + 40) == "recheck"  # poll again, keeps the seat
    assert token_check(token, "s:visitor-b", now=T + 10) == "invalid"  # another session's
    forged = signing.dumps({"v": "s:visitor-b", "t": int(T)}, salt="booking.waiting-room", key="not-ours")
    assert token_check(forged, "s:visitor-b", now=T) == "invalid"
    assert token_check(token[:-2] + "xx", "s:visitor-a", now=T) == "invalid"
    assert token_check(token_make("s:visitor-a"), "s:visitor-a") == "fresh"
    assert token_check(token, "s:visitor-a", now=T + 301) == "invalid"  # older than the idle time


# --- pages ------------------------------------------------------------------------------------


def _full_room(room) -> tuple[Client, Client]:
    """Two visitors admitted (capacity 2): the room is full."""
    first, second = Client(), Client()
    for c in (first, second):
        response = c.get(reverse("booking:search"))
        assert response["Location"].startswith(reverse("booking:identify"))  # admitted, went on
    return first, second


def test_a_newcomer_to_a_full_room_gets_the_queue_page_then_goes_on(room):
    _full_room(room)
    newcomer = Client(HTTP_ACCEPT_LANGUAGE="en")
    response = newcomer.get(reverse("booking:search") + "?postal_code=H2X")
    queue = reverse("booking:waiting_room")
    assert response.status_code == 302 and response["Location"].startswith(queue)
    page = newcomer.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    assert '<meta http-equiv="refresh" content="15">' in html
    assert "Your place in line: <strong>1</strong>" in html
    assert "Check again" in html and 'method="get"' in html
    assert "<script" not in html
    room.WAITING_ROOM_CAPACITY = 3  # a seat frees
    page = newcomer.get(response["Location"])
    assert (page.status_code, page["Location"]) == (302, "/recherche/?postal_code=H2X")
    assert newcomer.get(reverse("booking:search"))["Location"].startswith(reverse("booking:identify"))


def test_the_queue_page_is_in_french_by_default(room):
    _full_room(room)
    page = Client().get(reverse("booking:waiting_room") + "?next=/recherche/")
    html = page.content.decode()
    assert "Votre place dans la file" in html and "Vérifier de nouveau" in html


def test_an_admission_cannot_be_carried_to_another_session(room):
    first, _second = _full_room(room)
    other = Client()
    assert other.get(reverse("booking:search"))["Location"].startswith(reverse("booking:waiting_room"))
    session = other.session
    session[SESSION_TOKEN] = first.session[SESSION_TOKEN]  # the first visitor's admission
    session.save()
    response = other.get(reverse("booking:search"))
    assert response["Location"].startswith(reverse("booking:waiting_room"))


def test_a_post_from_outside_the_room_is_sent_to_the_queue_not_replayed(room):
    _full_room(room)
    response = Client().post(reverse("booking:hold", args=[1]))
    assert response.status_code == 303
    assert response["Location"] == reverse("booking:waiting_room") + "?next=%2Frecherche%2F"


def test_the_queue_page_never_redirects_elsewhere(room):
    room.WAITING_ROOM_ENABLED = False
    response = Client().get(reverse("booking:waiting_room") + "?next=https://evil.example/")
    assert response["Location"] == reverse("booking:search")


# --- the citizen API --------------------------------------------------------------------------


def _api(citizen, token: str = "") -> dict:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {citizen_token_make(citizen)[0]}"}
    if token:
        headers["HTTP_WAITING_ROOM_TOKEN"] = token
    return headers


def test_the_api_answers_503_with_retry_after_and_the_position(room):
    room.WAITING_ROOM_CAPACITY = 1
    a, b = CitizenFactory(), CitizenFactory()
    client = Client()
    first = client.get("/api/v1/slots", **_api(a))
    assert first.status_code == 400  # past the room (no search criteria)
    token = first[HEADER]
    waiting = client.get("/api/v1/slots", **_api(b))
    assert waiting.status_code == 503 and waiting["Retry-After"] == "15"
    body = json.loads(waiting.content)["error"]
    assert (body["code"], body["position"], body["retry_after"]) == ("waiting_room", 1, 15)
    assert body["estimated_wait_seconds"] > 0
    # A's admission does not admit B. Booking is gated too; the list of one's appointments is not.
    assert client.get("/api/v1/slots", **_api(b, token)).status_code == 503
    book = client.post("/api/v1/appointments", {}, content_type="application/json", **_api(b))
    assert book.status_code == 503
    assert client.get("/api/v1/appointments", **_api(b)).status_code == 200
    # A's seat frees (idle); A's own token, still fresh, passes without asking Redis; B is next.
    waitingroom.leave(waitingroom.citizen_visitor(a.pk))
    assert client.get("/api/v1/slots", **_api(a, token)).status_code == 400
    assert client.get("/api/v1/slots", **_api(b)).status_code == 400


def test_an_api_call_without_a_valid_citizen_token_is_left_to_the_view(room):
    room.WAITING_ROOM_CAPACITY = 0
    assert Client().get("/api/v1/slots").status_code == 401


def test_the_visitor_may_turn_the_automatic_reload_off_and_on_again(room):
    # WCAG 2.2.1 (timing adjustable): the reload that keeps the place can be turned off.
    _full_room(room)
    visitor = Client(HTTP_ACCEPT_LANGUAGE="en")
    queue = reverse("booking:waiting_room")
    html = visitor.get(queue + "?next=/recherche/").content.decode()
    assert '<meta http-equiv="refresh"' in html
    assert 'href="?manual=1&amp;next=/recherche/"' in html
    manual = visitor.get(queue + "?manual=1&next=/recherche/").content.decode()
    assert 'http-equiv="refresh"' not in manual
    assert "Automatic checking is off" in manual
    assert '<input type="hidden" name="manual" value="1">' in manual
    assert 'href="?next=/recherche/"' in manual
