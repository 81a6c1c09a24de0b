"""An EMR's webhook endpoint down for hours (simulated clock): we keep retrying with backoff, the
subscription stays active, and once the endpoint answers again every change is delivered in feed
order, in batches, once, without anyone re-activating anything.

The endpoint is a real HTTP server on loopback, stopped and started on the same port (connection
refused meanwhile); the deliverer runs as beat would, once a minute of simulated time.
"""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings
from django.utils import timezone

from sync import feed, webhooks
from sync.models import WebhookSubscription
from tests.sync.conftest import fhir_a, persona_a
from tests.sync.test_webhooks import book, seq_of, subscribe

__all__ = ["fhir_a", "persona_a"]  # fixtures used below

BATCH = 5


class Endpoint:
    """The EMR's endpoint: answers 200 and records each body; can go down and come back."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.up()

    def up(self) -> None:
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format, *args) -> None:  # noqa: A002 - quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def down(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"


@pytest.fixture
def endpoint():
    server = Endpoint()
    yield server
    server.down()


@override_settings(
    SYNC_WEBHOOK_ALLOW_LOOPBACK=True, SYNC_FEED_MIN_INTERVAL_SECONDS=0, SYNC_WEBHOOK_BATCH=BATCH
)
def test_an_endpoint_down_for_twelve_hours_gets_every_change_in_order_once_it_is_back(
    fhir_a, persona_a, endpoint
):
    pk, _ = subscribe(fhir_a, endpoint.url)
    endpoint.down()
    clock = timezone.now()
    booked, attempts = [], []
    for minute in range(12 * 60):  # twelve hours down; a booking every half hour; beat every minute
        if minute % 30 == 0:
            booked.append(book(persona_a.role))
            feed.feed_relay()
        for delivery in webhooks.webhooks_deliver(now=clock):
            assert delivery.outcome == "failed"
            attempts.append(clock)
        clock += timedelta(minutes=1)

    sub = WebhookSubscription.objects.get(pk=pk)
    assert sub.status == WebhookSubscription.Status.ACTIVE, "a long outage must not need a re-activation"
    assert endpoint.bodies == []
    gaps = [later - earlier for earlier, later in zip(attempts, attempts[1:], strict=False)]
    assert max(gaps) <= timedelta(hours=1, minutes=1)  # backoff capped at an hour
    assert 15 <= len(attempts) <= 25, len(attempts)

    endpoint.up()  # back, same address
    waited = timedelta()
    while len({e["resource"]["id"] for b in endpoint.bodies for e in b["entry"]}) < len(booked):
        assert waited <= timedelta(hours=1, minutes=5), (
            "not delivered within an hour of the endpoint's return"
        )
        webhooks.webhooks_deliver(now=clock)
        clock += timedelta(minutes=1)
        waited += timedelta(minutes=1)

    entries = [e for body in endpoint.bodies for e in body["entry"]]
    assert [e["resource"]["id"] for e in entries] == [str(a.pk) for a in booked]  # in order, once each
    seqs = [seq_of(e) for e in entries]
    assert seqs == sorted(set(seqs))
    assert max(len(body["entry"]) for body in endpoint.bodies) == BATCH
    sub.refresh_from_db()
    assert (sub.status, sub.failures, sub.last_delivered_seq) == ("active", 0, feed.feed_head())
    print(
        f"{len(attempts)} attempts in 12 h down; delivered {len(entries)} changes {waited} after the return"
    )


@override_settings(SYNC_WEBHOOK_ALLOW_LOOPBACK=True, SYNC_FEED_MIN_INTERVAL_SECONDS=0)
def test_after_a_day_of_failures_the_subscription_is_dead_and_its_letters_wait_in_the_feed(
    fhir_a, persona_a, endpoint
):
    pk, _ = subscribe(fhir_a, endpoint.url)
    endpoint.down()
    book(persona_a.role)
    feed.feed_relay()
    clock, outcomes = timezone.now(), []
    start = clock
    while not outcomes or outcomes[-1][1] != "dead":
        assert clock - start < timedelta(hours=26)
        outcomes += [(clock, d.outcome) for d in webhooks.webhooks_deliver(now=clock)]
        clock += timedelta(minutes=1)
    died_at = outcomes[-1][0] - start
    assert timedelta(hours=24) <= died_at < timedelta(hours=25, minutes=1)
    assert WebhookSubscription.objects.get(pk=pk).last_delivered_seq < feed.feed_head()
