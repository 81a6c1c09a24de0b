"""Webhooks (FHIR Subscription rest-hook): creation and its refusals, signed delivery in feed order
to a real HTTP server on 127.0.0.1, backoff, dead letters, re-activation, scope, and two deliverers
at once. The EMR's endpoint is the only fake: a real local server that records what it receives."""

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from booking.models import Appointment, OutboxEvent
from booking.services import appointment_book, appointment_cancel
from sync import feed, webhooks
from sync.models import AuditEvent, EmrClient, WebhookSubscription
from sync.tasks import feed_relay as feed_relay_task
from tests.factories import CitizenFactory, SlotFactory

from .conftest import FHIR, get_token

SECRET_URL = "https://rdv-sante.quebec/fhir/StructureDefinition/subscription-secret"
DELIVERY_URL = "https://rdv-sante.quebec/fhir/StructureDefinition/subscription-delivery"


@pytest.fixture(autouse=True)
def _loopback_endpoints_and_no_poll_budget():
    with override_settings(SYNC_WEBHOOK_ALLOW_LOOPBACK=True, SYNC_FEED_MIN_INTERVAL_SECONDS=0):
        yield


class Receiver(ThreadingHTTPServer):
    """The EMR's webhook endpoint: records every POST, answers ``status`` after ``delay`` seconds."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict] = []
        self.status = 200
        self.delay = 0.0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/rdv"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def seqs(self) -> list[int]:
        return [seq_of(e) for r in self.received for e in json.loads(r["body"])["entry"]]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.delay:
            time.sleep(self.server.delay)
        with self.server.lock:
            self.server.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet
        pass


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


def seq_of(entry) -> int:
    (event,) = entry["extension"]
    return int(next(e["valueString"] for e in event["extension"] if e["url"] == "seq"))


def subscription_body(endpoint: str, **changes) -> dict:
    body = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Portal bookings to our agenda",
        "criteria": "Appointment",
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"},
    }
    body.update(changes)
    return body


def post_json(client, path, body, **extra):
    return client.post(path, json.dumps(body), content_type="application/fhir+json", **extra)


def put_json(client, path, body, **extra):
    return client.put(path, json.dumps(body), content_type="application/fhir+json", **extra)


def subscribe(fhir, endpoint: str) -> tuple[int, str]:
    response = post_json(fhir, f"{FHIR}Subscription", subscription_body(endpoint))
    assert response.status_code == 201, response.json()
    body = response.json()
    secret = next(e["valueString"] for e in body["extension"] if e["url"] == SECRET_URL)
    return int(body["id"]), secret


def book(role, *, channel=Appointment.Channel.PORTAL) -> Appointment:
    return appointment_book(
        slot_id=SlotFactory(role=role).pk, citizen=CitizenFactory(), reason="follow_up", channel=channel
    )


def delivery_state(resource) -> dict:
    ext = next(e for e in resource["extension"] if e["url"] == DELIVERY_URL)
    return {e["url"]: next(v for k, v in e.items() if k.startswith("value")) for e in ext["extension"]}


# --- creating, reading, refusing -----------------------------------------------------------------


def test_a_client_subscribes_and_sees_the_secret_once(fhir_a, persona_a, receiver):
    response = post_json(fhir_a, f"{FHIR}Subscription", subscription_body(receiver.url))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert response["Location"].endswith(f"/fhir/r4/Subscription/{body['id']}")
    assert body["status"] == "active"
    assert body["criteria"] == "Appointment"
    assert body["channel"] == {
        "type": "rest-hook",
        "endpoint": receiver.url,
        "payload": "application/fhir+json",
    }
    secret = next(e["valueString"] for e in body["extension"] if e["url"] == SECRET_URL)
    assert len(secret) >= 40
    assert WebhookSubscription.objects.get(pk=body["id"]).secret == secret

    again = fhir_a.get(f"{FHIR}Subscription/{body['id']}")
    assert again.status_code == 200
    assert secret not in again.content.decode()
    assert delivery_state(again.json()) == {"cursor": str(feed.feed_head()), "pending": 0, "failures": 0}
    listed = fhir_a.get(f"{FHIR}Subscription").json()
    assert [e["resource"]["id"] for e in listed["entry"]] == [body["id"]]
    assert secret not in json.dumps(listed)


def test_subscribing_needs_the_appointment_read_scope(client, persona_a, receiver):
    slot_only = get_token(client, persona_a, scope="system/Slot.read")
    response = post_json(
        client,
        f"{FHIR}Subscription",
        subscription_body(receiver.url),
        HTTP_AUTHORIZATION=f"Bearer {slot_only}",
    )
    assert response.status_code == 403
    assert "system/Appointment.read" in response.json()["issue"][0]["diagnostics"]
    assert client.get(f"{FHIR}Subscription", HTTP_AUTHORIZATION=f"Bearer {slot_only}").status_code == 403
    assert post_json(client, f"{FHIR}Subscription", subscription_body(receiver.url)).status_code == 401

    read_only = get_token(client, persona_a, scope="system/Appointment.read")
    response = post_json(
        client,
        f"{FHIR}Subscription",
        subscription_body(receiver.url),
        HTTP_AUTHORIZATION=f"Bearer {read_only}",
    )
    assert response.status_code == 201


ENDPOINT = "https://emr.example.org/hooks"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"resourceType": "Appointment"}, 400, "invalid"),
        (subscription_body(ENDPOINT, channel=None), 400, "invalid"),
        (subscription_body(ENDPOINT, criteria=None), 400, "invalid"),
        (subscription_body(ENDPOINT, status="maybe"), 400, "code-invalid"),
        (subscription_body(ENDPOINT, status="error"), 422, "business-rule"),
        (subscription_body(ENDPOINT, criteria="Slot"), 422, "business-rule"),
        (subscription_body(ENDPOINT, criteria="Appointment?status=booked"), 422, "business-rule"),
        (subscription_body(ENDPOINT, end="2027-01-01T00:00:00Z"), 422, "business-rule"),
        (
            subscription_body(ENDPOINT, channel={"type": "pigeon", "endpoint": ENDPOINT}),
            400,
            "code-invalid",
        ),
        (
            subscription_body(
                ENDPOINT,
                channel={"type": "websocket", "endpoint": ENDPOINT, "payload": "application/fhir+json"},
            ),
            422,
            "business-rule",
        ),
        (
            subscription_body(ENDPOINT, channel={"type": "rest-hook", "endpoint": ENDPOINT}),
            422,
            "business-rule",
        ),
        (
            subscription_body(
                ENDPOINT,
                channel={
                    "type": "rest-hook",
                    "endpoint": ENDPOINT,
                    "payload": "application/fhir+json",
                    "header": ["Authorization: Bearer x"],
                },
            ),
            422,
            "business-rule",
        ),
        (subscription_body("http://emr.example.org/hooks"), 422, "business-rule"),
        (subscription_body("not a url"), 422, "business-rule"),
        (subscription_body("ftp://emr.example.org/hooks"), 422, "business-rule"),
        (subscription_body("https://user:pw@emr.example.org/hooks"), 422, "business-rule"),
        (subscription_body("https://10.1.2.3/hooks"), 422, "business-rule"),
        (subscription_body("https://169.254.169.254/latest"), 422, "business-rule"),
        (subscription_body("https://emr.example.org:99999/hooks"), 422, "business-rule"),
    ],
)
def test_a_subscription_we_cannot_honour_is_refused_with_an_operation_outcome(fhir_a, body, status, code):
    body = {k: v for k, v in body.items() if v is not None}
    response = post_json(fhir_a, f"{FHIR}Subscription", body)
    assert response.status_code == status, response.json()
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.json()["issue"][0]["code"] == code
    assert not WebhookSubscription.objects.exists()


def test_an_https_endpoint_is_accepted_and_loopback_only_where_allowed(fhir_a, receiver):
    assert post_json(fhir_a, f"{FHIR}Subscription", subscription_body(ENDPOINT)).status_code == 201
    with override_settings(SYNC_WEBHOOK_ALLOW_LOOPBACK=False):
        refused = post_json(fhir_a, f"{FHIR}Subscription", subscription_body(receiver.url))
        assert refused.status_code == 422
        assert "public host" in refused.json()["issue"][0]["diagnostics"]


@override_settings(SYNC_WEBHOOK_MAX_PER_CLIENT=2)
def test_a_client_has_a_limited_number_of_subscriptions_and_deleting_one_frees_a_place(fhir_a):
    first, _ = subscribe(fhir_a, ENDPOINT)
    subscribe(fhir_a, ENDPOINT)
    assert post_json(fhir_a, f"{FHIR}Subscription", subscription_body(ENDPOINT)).status_code == 422
    assert fhir_a.delete(f"{FHIR}Subscription/{first}").status_code == 204
    assert post_json(fhir_a, f"{FHIR}Subscription", subscription_body(ENDPOINT)).status_code == 201


def test_another_clients_subscription_is_not_found(fhir_a, client, persona_b, receiver):
    token_b = get_token(client, persona_b)
    response = post_json(
        client, f"{FHIR}Subscription", subscription_body(receiver.url), HTTP_AUTHORIZATION=f"Bearer {token_b}"
    )
    theirs = response.json()["id"]
    mine, _ = subscribe(fhir_a, receiver.url)
    assert fhir_a.get(f"{FHIR}Subscription/{theirs}").status_code == 404
    assert put_json(fhir_a, f"{FHIR}Subscription/{theirs}", subscription_body(ENDPOINT)).status_code == 404
    assert fhir_a.delete(f"{FHIR}Subscription/{theirs}").status_code == 404
    assert WebhookSubscription.objects.get(pk=theirs).status == "active"
    assert [e["resource"]["id"] for e in fhir_a.get(f"{FHIR}Subscription").json()["entry"]] == [str(mine)]
    assert fhir_a.get(f"{FHIR}Subscription/{mine}").status_code == 200


# --- delivery --------------------------------------------------------------------------------------


def test_a_portal_booking_reaches_the_endpoint_signed_in_a_history_bundle(fhir_a, persona_a, receiver):
    pk, secret = subscribe(fhir_a, receiver.url)
    appointment = book(persona_a.role)

    feed_relay_task()  # numbers the event, then kicks the delivery (eager in tests)

    (request,) = receiver.received
    assert request["path"] == "/hooks/rdv"
    headers = request["headers"]
    expected = "sha256=" + hmac.new(secret.encode(), request["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-RDV-Signature"], expected)
    assert headers["Content-Type"].startswith("application/fhir+json")
    assert abs(int(headers["X-RDV-Timestamp"]) - time.time()) < 60
    assert len(headers["X-RDV-Delivery"]) == 32
    assert headers["X-RDV-Subscription"] == str(pk)
    bundle = json.loads(request["body"])
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "history"
    (entry,) = bundle["entry"]
    assert entry["resource"]["resourceType"] == "Appointment"
    assert entry["resource"]["id"] == str(appointment.pk)
    assert entry["request"] == {"method": "POST", "url": "Appointment"}
    seq = seq_of(entry)
    cursor = next(e for e in bundle["meta"]["extension"] if e["url"].endswith("feed-cursor"))
    assert int(cursor["valueString"]) == seq
    # The same page as the feed would give from the subscription's previous cursor.
    from_feed = fhir_a.get(f"{FHIR}$feed", {"cursor": seq - 1}).json()["entry"]
    assert [e["resource"]["id"] for e in from_feed] == [entry["resource"]["id"]]

    sub = WebhookSubscription.objects.get(pk=pk)
    assert (sub.last_delivered_seq, sub.failures, sub.last_error) == (seq, 0, "")
    webhook_audit = AuditEvent.objects.get(action="webhook")
    assert (webhook_audit.resource_type, webhook_audit.resource_id) == ("Appointment", appointment.pk)

    assert webhooks.webhooks_deliver() == []  # caught up: nothing is sent twice
    assert len(receiver.received) == 1


def test_a_tampered_body_does_not_match_the_signature(fhir_a, persona_a, receiver):
    _, secret = subscribe(fhir_a, receiver.url)
    book(persona_a.role)
    feed_relay_task()
    (request,) = receiver.received
    tampered = request["body"].replace(b'"booked"', b'"cancelled"')
    assert tampered != request["body"]
    forged = "sha256=" + hmac.new(secret.encode(), tampered, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(request["headers"]["X-RDV-Signature"], forged)
    other = "sha256=" + hmac.new(b"another secret", request["body"], hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(request["headers"]["X-RDV-Signature"], other)


def test_the_emrs_own_changes_and_other_clinics_changes_are_not_sent(fhir_a, persona_a, persona_b, receiver):
    pk, _ = subscribe(fhir_a, receiver.url)
    by_emr = book(persona_a.role, channel=Appointment.Channel.EMR)
    book(persona_b.role)
    feed.feed_relay()
    assert webhooks.webhooks_deliver()[0].outcome == "empty"
    assert receiver.received == []
    assert WebhookSubscription.objects.get(pk=pk).last_delivered_seq == feed.feed_head()

    appointment_cancel(appointment=by_emr, reason="other", by_clinic=True, channel="agenda")
    feed.feed_relay()
    webhooks.webhooks_deliver()
    (request,) = receiver.received
    (entry,) = json.loads(request["body"])["entry"]
    assert entry["resource"]["id"] == str(by_emr.pk)
    assert entry["resource"]["status"] == "cancelled"
    assert entry["request"]["method"] == "PUT"


def test_an_endpoint_that_fails_gets_backoff_and_nothing_advances_then_delivery_resumes_in_order(
    fhir_a, persona_a, receiver
):
    pk, _ = subscribe(fhir_a, receiver.url)
    start = feed.feed_head()
    first = book(persona_a.role)
    feed.feed_relay()
    receiver.status = 500
    t0 = timezone.now()

    (result,) = webhooks.webhooks_deliver(now=t0)
    assert result.outcome == "failed"
    sub = WebhookSubscription.objects.get(pk=pk)
    assert (sub.last_delivered_seq, sub.failures, sub.last_error) == (start, 1, "HTTP 500")
    assert sub.next_attempt_at == t0 + timedelta(seconds=2)
    assert AuditEvent.objects.filter(action="webhook").count() == 1  # the body did reach the endpoint

    assert webhooks.webhooks_deliver(now=t0 + timedelta(seconds=1)) == []  # not due yet
    assert len(receiver.received) == 1

    receiver.stop()  # the endpoint is down: connection refused
    second = book(persona_a.role)
    feed.feed_relay()
    (result,) = webhooks.webhooks_deliver(now=t0 + timedelta(seconds=3))
    assert result.outcome == "failed"
    sub.refresh_from_db()
    assert (sub.last_delivered_seq, sub.failures, sub.last_error) == (start, 2, "ConnectionError")
    assert sub.next_attempt_at == t0 + timedelta(seconds=3 + 4)
    state = delivery_state(fhir_a.get(f"{FHIR}Subscription/{pk}").json())
    assert (state["pending"], state["failures"]) == (2, 2)
    assert fhir_a.get(f"{FHIR}Subscription/{pk}").json()["status"] == "active"

    back = Receiver()  # the endpoint comes back, on another port: the client updates its endpoint
    try:
        response = put_json(fhir_a, f"{FHIR}Subscription/{pk}", subscription_body(back.url, id=str(pk)))
        assert response.status_code == 200, response.json()
        (result,) = webhooks.webhooks_deliver(now=t0 + timedelta(seconds=8))
        assert (result.outcome, result.events) == ("delivered", 2)
        third = book(persona_a.role)
        feed.feed_relay()
        webhooks.webhooks_deliver(now=t0 + timedelta(seconds=9))
        ids = [e["resource"]["id"] for r in back.received for e in json.loads(r["body"])["entry"]]
        assert ids == [str(first.pk), str(second.pk), str(third.pk)]
        assert back.seqs() == sorted(set(back.seqs()))
        sub.refresh_from_db()
        assert (sub.failures, sub.last_error, sub.next_attempt_at) == (0, "", None)
    finally:
        back.stop()


@pytest.mark.parametrize("status", [302, 404, 503])
def test_anything_but_a_2xx_is_a_failure(fhir_a, persona_a, receiver, status):
    pk, _ = subscribe(fhir_a, receiver.url)
    book(persona_a.role)
    feed.feed_relay()
    receiver.status = status
    webhooks.webhooks_deliver()
    sub = WebhookSubscription.objects.get(pk=pk)
    assert (sub.failures, sub.last_error, sub.last_delivered_seq < feed.feed_head()) == (
        1,
        f"HTTP {status}",
        True,
    )


def test_backoff_doubles_up_to_an_hour():
    assert [webhooks.backoff_seconds(n) for n in (1, 2, 3, 10, 11, 12, 50)] == [
        2,
        4,
        8,
        1024,
        2048,
        3600,
        3600,
    ]


@override_settings(SYNC_WEBHOOK_MAX_FAILURES=3)
def test_after_n_failures_the_subscription_is_dead_its_letters_visible_and_reactivation_resumes(
    fhir_a, persona_a, receiver
):
    pk, _ = subscribe(fhir_a, receiver.url)
    cursor = feed.feed_head()
    booked = [book(persona_a.role), book(persona_a.role)]
    feed.feed_relay()
    receiver.status = 500
    moment = timezone.now()
    outcomes = []
    for _ in range(3):
        outcomes += [d.outcome for d in webhooks.webhooks_deliver(now=moment)]
        moment += timedelta(hours=1)
    assert outcomes == ["failed", "failed", "dead"]

    resource = fhir_a.get(f"{FHIR}Subscription/{pk}").json()
    assert resource["status"] == "error"
    assert "HTTP 500" in resource["error"]
    assert f"$feed?cursor={cursor}" in resource["error"]
    state = delivery_state(resource)
    assert (state["cursor"], state["pending"], state["failures"]) == (str(cursor), 2, 3)
    assert "nextAttempt" not in state
    # The dead letters are the feed after the subscription's cursor.
    letters = fhir_a.get(f"{FHIR}$feed", {"cursor": cursor}).json()["entry"]
    assert [e["resource"]["id"] for e in letters] == [str(a.pk) for a in booked]

    receiver.status = 200
    assert webhooks.webhooks_deliver(now=moment + timedelta(days=1)) == []  # dead: nothing is tried
    assert len(receiver.received) == 3

    body = subscription_body(receiver.url, id=str(pk), status="requested")
    response = put_json(fhir_a, f"{FHIR}Subscription/{pk}", body)
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "active"
    (result,) = webhooks.webhooks_deliver(now=moment + timedelta(days=1))
    assert (result.outcome, result.events) == ("delivered", 2)
    last = json.loads(receiver.received[-1]["body"])
    assert [e["resource"]["id"] for e in last["entry"]] == [str(a.pk) for a in booked]
    resource = fhir_a.get(f"{FHIR}Subscription/{pk}").json()
    assert resource["status"] == "active"
    assert "error" not in resource
    assert delivery_state(resource)["pending"] == 0


def test_a_subscription_failing_for_more_than_a_day_is_dead_before_n_failures(fhir_a, persona_a, receiver):
    pk, _ = subscribe(fhir_a, receiver.url)
    book(persona_a.role)
    feed.feed_relay()
    receiver.status = 500
    t0 = timezone.now()
    assert [d.outcome for d in webhooks.webhooks_deliver(now=t0)] == ["failed"]
    assert [d.outcome for d in webhooks.webhooks_deliver(now=t0 + timedelta(hours=25))] == ["dead"]
    assert WebhookSubscription.objects.get(pk=pk).failures == 2


def test_a_dead_subscription_whose_letters_were_pruned_cannot_resume(fhir_a, persona_a, receiver):
    pk, _ = subscribe(fhir_a, receiver.url)
    WebhookSubscription.objects.filter(pk=pk).update(status="dead")
    for _ in range(3):
        book(persona_a.role)
    feed.feed_relay()
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(days=31), notify_state="sent")
    assert feed.feed_prune() == 2
    response = put_json(fhir_a, f"{FHIR}Subscription/{pk}", subscription_body(receiver.url, id=str(pk)))
    assert response.status_code == 410
    assert "Resync" in response.json()["issue"][0]["diagnostics"]
    assert WebhookSubscription.objects.get(pk=pk).status == "dead"


def test_an_inactive_clients_subscription_waits_and_gets_everything_once_reactivated(
    fhir_a, persona_a, receiver
):
    pk, _ = subscribe(fhir_a, receiver.url)
    cursor = feed.feed_head()
    appointment = book(persona_a.role)
    feed.feed_relay()
    EmrClient.objects.update(is_active=False)
    assert webhooks.webhooks_deliver() == []
    assert WebhookSubscription.objects.get(pk=pk).last_delivered_seq == cursor
    EmrClient.objects.update(is_active=True)
    (result,) = webhooks.webhooks_deliver()
    assert result.events == 1
    (entry,) = json.loads(receiver.received[0]["body"])["entry"]
    assert entry["resource"]["id"] == str(appointment.pk)


def test_deleting_a_subscription_turns_it_off_and_nothing_more_is_sent(fhir_a, persona_a, receiver):
    pk, _ = subscribe(fhir_a, receiver.url)
    assert fhir_a.delete(f"{FHIR}Subscription/{pk}").status_code == 204
    assert fhir_a.get(f"{FHIR}Subscription/{pk}").json()["status"] == "off"
    assert fhir_a.get(f"{FHIR}Subscription", {"status": "active"}).json()["entry"] == []
    book(persona_a.role)
    feed_relay_task()
    assert receiver.received == []


def test_the_capability_statement_lists_subscription_rest_hook(client, db):
    statement = client.get(f"{FHIR}metadata").json()
    (subscription,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription"]
    assert [i["code"] for i in subscription["interaction"]] == [
        "read",
        "search-type",
        "create",
        "update",
        "delete",
    ]
    assert "rest-hook" in subscription["documentation"]
    assert "X-RDV-Signature" in subscription["documentation"]


# --- two deliverers at once --------------------------------------------------------------------------


def _deliver_in_thread(barrier: threading.Barrier, outcomes: list) -> None:
    try:
        barrier.wait(10)
        outcomes.extend(d.outcome for d in webhooks.webhooks_deliver())
    except Exception as exc:  # noqa: BLE001 - reported by the assertion on outcomes
        outcomes.append(repr(exc))
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
@override_settings(SYNC_WEBHOOK_BATCH=2)
def test_concurrent_deliverers_never_send_the_same_events_twice(fhir_a, persona_a, receiver):
    pk, _ = subscribe(fhir_a, receiver.url)
    booked = [book(persona_a.role) for _ in range(5)]
    feed.feed_relay()
    receiver.delay = 0.3  # each delivery is slow, so the deliverers overlap
    barrier, outcomes = threading.Barrier(4), []
    threads = [threading.Thread(target=_deliver_in_thread, args=(barrier, outcomes)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert all(outcome in ("delivered", "busy", "idle") for outcome in outcomes), outcomes
    assert "busy" in outcomes  # the race happened: a deliverer found the subscription locked
    ids = [e["resource"]["id"] for r in receiver.received for e in json.loads(r["body"])["entry"]]
    assert ids == [str(a.pk) for a in booked]  # every event once, in feed order
    assert len(receiver.received) == 3  # pages of 2, 2 and 1
    assert WebhookSubscription.objects.get(pk=pk).last_delivered_seq == feed.feed_head()
