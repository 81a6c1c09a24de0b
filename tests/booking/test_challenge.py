"""The self-hosted challenge of the booking flow under abnormal load (issue 5): a proof of work, or
without JavaScript a timed wait; per session; off unless switched on (by hand or by the load)."""

import itertools
import time

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from booking import challenge
from booking.waitingroom import page_visitor
from tests.booking.test_api import bearer, error
from tests.conftest import identify_payload
from tests.factories import FsaFactory

pytestmark = pytest.mark.django_db

SEARCH = reverse("booking:search")
PAGE = reverse("booking:challenge")


@pytest.fixture
def on(settings):
    settings.CHALLENGE_ENABLED = True
    settings.CHALLENGE_BITS = 8
    settings.CHALLENGE_WAIT_SECONDS = 10
    return settings


def _identified(citizen) -> Client:
    FsaFactory()
    client = Client()
    assert client.post(reverse("booking:identify"), identify_payload(citizen)).status_code == 302
    return client


def _issued(client: Client) -> str:
    response = client.get(PAGE, {"next": SEARCH})
    assert response.status_code == 200
    return response.context["challenge"]


def _solve(value: str) -> str:
    return next(str(n) for n in itertools.count() if challenge.solved(value, str(n)))


def _visitor(client: Client) -> str:
    return page_visitor(type("R", (), {"session": client.session})())


def test_switched_off_there_is_no_challenge(citizen):
    client = _identified(citizen)
    assert client.get(SEARCH).status_code == 200
    assert client.get(PAGE, {"next": SEARCH})["Location"] == SEARCH
    assert client.get("/api/v1/slots", {"path": "near"}, **bearer(citizen)).status_code == 200


def test_switched_on_the_flow_sends_to_the_check_and_a_solved_proof_of_work_lets_through(on, citizen):
    client = _identified(citizen)
    response = client.get(SEARCH)
    assert response.status_code == 302 and response["Location"].startswith(PAGE)
    page = client.get(response["Location"])
    body = page.content.decode()
    assert 'src="/static/booking/challenge.js"' in body and "<script>" not in body
    value = page.context["challenge"]
    answer = client.post(PAGE, {"challenge": value, "nonce": _solve(value), "next": SEARCH})
    assert (answer.status_code, answer["Location"]) == (303, SEARCH)
    assert client.get(SEARCH).status_code == 200


def test_a_wrong_nonce_does_not_pass(on, citizen):
    client = _identified(citizen)
    value = _issued(client)
    wrong = next(str(n) for n in itertools.count() if not challenge.solved(value, str(n)))
    response = client.post(PAGE, {"challenge": value, "nonce": wrong, "next": SEARCH})
    assert response.status_code == 400 and response.context["error"]
    assert client.get(SEARCH).status_code == 302


def test_the_timed_wait_passes_only_after_the_wait(on, citizen):
    client = _identified(citizen)
    value = _issued(client)
    early = client.post(PAGE, {"challenge": value, "nonce": "", "next": SEARCH})
    assert early.status_code == 400 and early.context["challenge"] == value  # the time waited is kept
    assert client.get(SEARCH).status_code == 302
    waited = challenge.issue(_visitor(client), now=time.time() - 11)
    answer = client.post(PAGE, {"challenge": waited, "nonce": "", "next": SEARCH})
    assert answer.status_code == 303
    assert client.get(SEARCH).status_code == 200


def test_a_solved_challenge_replayed_from_another_session_does_not_pass(on, citizen):
    first = _identified(citizen)
    value = _issued(first)
    nonce = _solve(value)
    other = _identified(citizen)
    response = other.post(PAGE, {"challenge": value, "nonce": nonce, "next": SEARCH})
    assert response.status_code == 400
    assert other.get(SEARCH).status_code == 302
    old = challenge.issue(_visitor(other), now=time.time() - 3600)  # and an expired one
    assert other.post(PAGE, {"challenge": old, "nonce": _solve(old), "next": SEARCH}).status_code == 400


def test_a_forged_challenge_does_not_pass(on, citizen):
    client = _identified(citizen)
    value = _issued(client) + "x"
    assert client.post(PAGE, {"challenge": value, "nonce": "1", "next": SEARCH}).status_code == 400


def test_the_api_answers_503_with_retry_after_while_on(on, citizen):
    response = Client().get("/api/v1/slots", {"path": "near"}, **bearer(citizen))
    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    assert error(response)["code"] == "challenge"


def test_the_operator_switches_it_on_and_off(settings, citizen):
    client = _identified(citizen)
    call_command("challenge", "on", "--minutes", "5")
    assert client.get(SEARCH).status_code == 302
    call_command("challenge", "off")
    assert client.get(SEARCH).status_code == 200


def test_abnormal_load_switches_it_on(settings, citizen):
    settings.CHALLENGE_AUTO_THRESHOLD = 3
    settings.CHALLENGE_AUTO_WINDOW = 3600
    client = _identified(citizen)
    assert [client.get(SEARCH).status_code for _ in range(3)] == [200, 200, 200]
    assert client.get(SEARCH).status_code == 302  # the fourth in the window
    assert challenge.active()
    challenge.switch(False)
    settings.CHALLENGE_AUTO_THRESHOLD = 0  # never automatically
    assert [client.get(SEARCH).status_code for _ in range(5)] == [200] * 5


def test_leading_zero_bits():
    assert challenge.leading_zero_bits(bytes([0, 0x0F, 0xFF])) == 12
    assert challenge.leading_zero_bits(bytes([0x80])) == 0


def test_each_process_reads_the_flag_at_most_every_few_seconds(settings):
    from django.core.cache import cache

    settings.CHALLENGE_FLAG_CACHE_SECONDS = 60
    challenge.switch(False)
    assert not challenge.active()
    cache.set(challenge.FLAG, 1)  # another process switched it on
    assert not challenge.active()  # not read again yet
    challenge._flag[1] = 0.0  # the cache time is over
    assert challenge.active()
    challenge.switch(False)  # and off again, read at once in this process
    assert not challenge.active()
