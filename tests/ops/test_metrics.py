"""/metrics: who may read it, and that each number moves when the thing it counts happens."""

import json
import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from booking.models import OutboxEvent, Reason
from booking.services import appointment_book
from config import emr_activity
from config.metrics import EXPORTED_NAMES
from sync.models import WebhookSubscription
from tests.conftest import identify_payload
from tests.factories import FsaFactory, SlotFactory

pytestmark = pytest.mark.django_db
TOKEN = "m" * 40


def scrape(client: Client | None = None, **headers) -> dict[tuple[str, tuple], float]:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- access -------------------------------------------------------------------------------------


def test_loopback_may_read_the_metrics_by_default():
    assert Client().get("/metrics").status_code == 200


def test_another_address_gets_404_as_if_nothing_were_there(settings):
    assert Client(REMOTE_ADDR="203.0.113.9").get("/metrics").status_code == 404
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404


def test_the_token_opens_it_from_anywhere_and_a_wrong_token_is_forbidden(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []
    outside = Client(REMOTE_ADDR="203.0.113.9")
    assert outside.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert outside.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN[:-1]}x").status_code == 403
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403
    assert outside.get("/metrics").status_code == 404


def test_a_bearer_token_is_not_accepted_when_none_is_configured(settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_behind_a_proxy_the_allow_list_reads_the_forwarded_client(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxied = Client(REMOTE_ADDR="10.0.0.5")
    assert proxied.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 200
    assert proxied.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1, 203.0.113.9").status_code == 404


# --- request metrics ----------------------------------------------------------------------------


def test_requests_are_counted_by_route_name_never_by_path(citizen):
    client = Client()
    before = scrape()
    client.get("/healthz")
    client.get(f"/annulation/secret-token-{citizen.pk}/")
    client.get("/nothing/here/at/all/")
    after = scrape()
    assert value(after, "rdv_http_requests_total", view="healthz", method="GET", status="200") == (
        value(before, "rdv_http_requests_total", view="healthz", method="GET", status="200") + 1
    )
    assert (
        value(after, "rdv_http_requests_total", view="booking:cancel_link", method="GET", status="404") >= 1
    )
    assert value(after, "rdv_http_request_duration_seconds_count", view="healthz") >= 1
    labels = {dict(key[1]).get("view", "") for key in after}
    assert not any("secret-token" in label or "nothing/here" in label for label in labels), labels


def test_an_unnamed_fhir_route_is_labelled_by_its_pattern(fhir_a, persona_a):
    slot = SlotFactory(role=persona_a.role)
    assert fhir_a.get(f"/fhir/r4/Slot/{slot.pk}").status_code == 200
    views = {dict(key[1]).get("view") for key in scrape() if key[0] == "rdv_http_requests_total"}
    assert "fhir/r4/Slot/<pk>" in views
    assert not any(str(slot.pk) in (v or "") for v in views)


def test_a_request_id_is_returned_and_a_sane_incoming_one_is_kept():
    client = Client()
    generated = client.get("/healthz")["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert (
        client.get("/healthz", HTTP_X_REQUEST_ID="lb-1234567890abcdef")["X-Request-ID"]
        == "lb-1234567890abcdef"
    )
    for bad in ("short", "x" * 65, "évil-id-0123456789", "a b c d e f g h"):
        returned = client.get("/healthz", HTTP_X_REQUEST_ID=bad)["X-Request-ID"]
        assert returned != bad and re.fullmatch(r"[0-9a-f]{32}", returned)


# --- booking metrics ----------------------------------------------------------------------------


def test_holds_and_bookings_are_counted_by_channel_and_a_lost_race_as_a_409(
    citizen, django_capture_on_commit_callbacks
):
    FsaFactory()
    slot = SlotFactory()
    before = scrape()
    client = Client()
    assert client.post("/identification/", identify_payload(citizen)).status_code == 302
    client.post(reverse("booking:hold", args=[slot.pk]), {"reason": Reason.FOLLOW_UP})
    token = client.get(reverse("booking:confirm", args=[slot.pk])).context["form"].initial["hold_token"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("booking:confirm", args=[slot.pk]),
            {"reason": Reason.FOLLOW_UP, "email": "", "language": "fr", "hold_token": token},
        )
    assert response.status_code == 302
    # The API: someone else's hold on the booked slot is a 409.
    from booking.api.auth import citizen_token_make
    from tests.factories import CitizenFactory

    other = CitizenFactory(first_name="Paul", last_name="Roy", sex="M")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {citizen_token_make(other)[0]}")
    conflict = api.post("/api/v1/holds", json.dumps({"slot_id": slot.pk}), content_type="application/json")
    assert conflict.status_code == 409
    free = SlotFactory(role=slot.role)
    assert (
        api.post(
            "/api/v1/holds", json.dumps({"slot_id": free.pk}), content_type="application/json"
        ).status_code
        == 201
    )
    after = scrape()
    assert (
        value(after, "rdv_holds_total", channel="portal")
        == value(before, "rdv_holds_total", channel="portal") + 1
    )
    assert (
        value(after, "rdv_holds_total", channel="api") == value(before, "rdv_holds_total", channel="api") + 1
    )
    assert (
        value(after, "rdv_bookings_total", channel="portal")
        == value(before, "rdv_bookings_total", channel="portal") + 1
    )
    assert (
        value(after, "rdv_http_conflicts_total", view="api:holds")
        == value(before, "rdv_http_conflicts_total", view="api:holds") + 1
    )


def test_a_booking_adds_no_commit_hook_of_its_own(citizen, slot, django_capture_on_commit_callbacks):
    """Counting happens at the insert: the booking's commit hooks stay the booking's own."""
    before = value(scrape(), "rdv_bookings_total", channel="agenda")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        appointment_book(slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="agenda")
    assert all("config" not in getattr(c, "__module__", "") for c in callbacks)
    assert value(scrape(), "rdv_bookings_total", channel="agenda") == before + 1


def test_rate_limit_hits_are_counted_by_limit(settings, citizen):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "search": "1/60"}
    FsaFactory()
    client = Client()
    client.post("/identification/", identify_payload(citizen))
    before = value(scrape(), "rdv_rate_limited_total", limit="search")
    url = reverse("booking:search") + "?reason=follow_up&path=near&radius_km=25&sort=soonest"
    assert client.get(url).status_code == 200
    assert client.get(url).status_code == 429
    assert value(scrape(), "rdv_rate_limited_total", limit="search") == before + 1


# --- states read at scrape time -----------------------------------------------------------------


def test_outbox_and_feed_lag_are_the_age_of_the_oldest_waiting_event(citizen, slot):
    samples = scrape()
    assert value(samples, "rdv_outbox_notify_lag_seconds") == 0
    assert value(samples, "rdv_feed_relay_lag_seconds") == 0
    appointment_book(slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="agenda")
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(minutes=10))
    OutboxEvent.objects.update(notify_state=OutboxEvent.NotifyState.PENDING)
    samples = scrape()
    assert 590 < value(samples, "rdv_outbox_notify_lag_seconds") < 700
    assert 590 < value(samples, "rdv_feed_relay_lag_seconds") < 700
    assert value(samples, "rdv_feed_unnumbered") == OutboxEvent.objects.count()
    from sync import feed

    feed.feed_relay()
    assert value(scrape(), "rdv_feed_relay_lag_seconds") == 0


def test_webhook_failures_and_dead_letters(persona_a, settings, fhir_a):
    from sync import feed, webhooks
    from sync.models import EmrClient

    settings.SYNC_WEBHOOK_MAX_FAILURES = 2
    settings.SYNC_WEBHOOK_ALLOW_LOOPBACK = True
    emr_client = EmrClient.objects.get(application__client_id=persona_a.client_id)
    sub, _secret = webhooks.subscription_create(
        emr_client=emr_client, endpoint="http://127.0.0.1:9/hook", criteria="Appointment"
    )
    from tests.factories import CitizenFactory

    slot = SlotFactory(role=persona_a.role)
    appointment_book(slot_id=slot.pk, citizen=CitizenFactory(), reason=Reason.FOLLOW_UP, channel="portal")
    feed.feed_relay()
    before = scrape()
    now = timezone.now()
    webhooks.subscription_deliver(sub.pk, now=now)  # nothing listens on port 9: a failure
    samples = scrape()
    assert (
        value(samples, "rdv_webhook_delivery_failures_total")
        == value(before, "rdv_webhook_delivery_failures_total") + 1
    )
    assert value(samples, "rdv_webhook_failing_subscriptions") == 1
    webhooks.subscription_deliver(sub.pk, now=now + timedelta(hours=1))
    sub.refresh_from_db()
    assert sub.status == WebhookSubscription.Status.DEAD
    samples = scrape()
    assert value(samples, "rdv_webhook_subscriptions", status="dead") == 1
    assert value(samples, "rdv_webhook_dead_letters") == 1


def test_celery_queue_length_is_read_from_the_broker(settings):
    import redis

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    settings.METRICS_CELERY_QUEUES = ["celery", "rdv-test-queue"]
    broker.delete("rdv-test-queue")
    broker.rpush("rdv-test-queue", "a", "b", "c")
    try:
        assert value(scrape(), "rdv_celery_queue_length", queue="rdv-test-queue") == 3
    finally:
        broker.delete("rdv-test-queue")


def test_database_connections_and_size_are_reported():
    samples = scrape()
    assert sum(v for (name, _), v in samples.items() if name == "rdv_db_connections") >= 1
    assert value(samples, "rdv_db_size_bytes") > 0
    assert value(samples, "rdv_db_max_connections") > 0
    assert all(v == 0 for (name, _), v in samples.items() if name == "rdv_scrape_errors")


def test_an_emr_product_reports_how_long_it_has_been_silent(fhir_a, persona_a):
    assert not any(key[0] == "rdv_emr_product_silence_seconds" for key in scrape())
    assert fhir_a.get("/fhir/r4/Slot").status_code == 200
    samples = scrape()
    assert value(samples, "rdv_emr_product_silence_seconds", product="Vendeur A ClinIQ") < 60
    emr_activity._last_write.clear()
    for key in cache.keys("emr-seen:*") if hasattr(cache, "keys") else []:
        cache.delete(key)
    from sync.models import EmrClient

    client = EmrClient.objects.get(application__client_id=persona_a.client_id)
    cache.set(emr_activity.KEY.format(client.pk), timezone.now().timestamp() - 3600)
    assert 3590 < value(scrape(), "rdv_emr_product_silence_seconds", product="Vendeur A ClinIQ") < 3700


def test_reconciliation_durations_and_conflicts_are_counted(
    fhir_a, persona_a, django_capture_on_commit_callbacks
):
    from sync.models import AgendaSnapshot, EmrClient

    before = scrape()
    snapshot = AgendaSnapshot.objects.create(
        emr_client=EmrClient.objects.get(application__client_id=persona_a.client_id),
        role=persona_a.role,
        window_start=timezone.now(),
        window_end=timezone.now() + timedelta(days=1),
        generation=7,
        digest="0" * 64,
    )
    AgendaSnapshot.objects.filter(pk=snapshot.pk).update(received_at=timezone.now() - timedelta(seconds=30))
    from sync.snapshots import snapshot_reconcile

    with django_capture_on_commit_callbacks(execute=True):
        snapshot_reconcile(snapshot.pk)
    after = scrape()
    assert value(after, "rdv_snapshot_reconciliations_total", outcome="done") == (
        value(before, "rdv_snapshot_reconciliations_total", outcome="done") + 1
    )
    assert (
        value(after, "rdv_snapshot_reconcile_duration_seconds_sum")
        - value(before, "rdv_snapshot_reconcile_duration_seconds_sum")
        >= 29
    )


def test_celery_task_durations_are_observed(django_capture_on_commit_callbacks):
    from sync.tasks import feed_prune

    before = value(scrape(), "rdv_celery_task_duration_seconds_count", task="sync.tasks.feed_prune")
    feed_prune.delay()
    samples = scrape()
    assert (
        value(samples, "rdv_celery_task_duration_seconds_count", task="sync.tasks.feed_prune") == before + 1
    )
    assert value(samples, "rdv_celery_tasks_total", task="sync.tasks.feed_prune", state="SUCCESS") >= 1


def test_every_sample_name_is_one_we_declare():
    ours = {key[0] for key in scrape() if key[0].startswith("rdv_")}
    assert ours - EXPORTED_NAMES == set()


# --- several gunicorn workers --------------------------------------------------------------------


def test_multiprocess_mode_sums_what_every_worker_wrote(tmp_path):
    """Two worker processes count requests into PROMETHEUS_MULTIPROC_DIR; a third (the one that
    answers the scrape) reports the sum. Real processes: the mode exists for them."""
    import subprocess
    import sys

    script = (
        "import os, django; os.environ['DJANGO_SETTINGS_MODULE']='config.settings_test'; django.setup();"
        "from config import metrics; metrics.HOLDS.labels(channel='portal').inc({n});"
        "print(metrics.scrape().decode() if {scrape} else '')"
    )
    env = {**__import__("os").environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in (2, 3):
        subprocess.run([sys.executable, "-c", script.format(n=n, scrape=False)], env=env, check=True)
    out = subprocess.run(
        [sys.executable, "-c", script.format(n=0, scrape=True)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert re.search(r'^rdv_holds_total\{channel="portal"\} 5\.0$', out, re.M), out
