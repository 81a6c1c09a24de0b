"""Prometheus metrics: counters and histograms kept by each process, gauges read at scrape time.

Two kinds of numbers (docs/operations.md lists every metric and the alert that reads it):

- Events counted where they happen (requests and their latency by view, bookings and holds by
  channel, 409 conflicts, rate-limit hits, webhook delivery failures, Celery task durations,
  snapshot reconciliations). They live in this process's memory, or, under gunicorn with several
  workers, in files under ``PROMETHEUS_MULTIPROC_DIR`` that every worker writes and the worker
  answering the scrape sums (prometheus_client's multiprocess mode; see ``scrape``).
- States read from PostgreSQL and Redis when ``/metrics`` is scraped (``StateCollector``): outbox and
  feed relay lag, webhook dead letters, Celery queue depths, database connections, the EMR products'
  silence. Each is one cheap indexed query, under a short statement timeout, so a slow database
  makes the scrape report ``rdv_scrape_errors`` instead of hanging.

Labels stay low-cardinality: view labels are URL route names (``booking:confirm``), never paths;
channels, task names and statuses are small fixed sets. No label ever carries personal data.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "rdv_http_requests", "HTTP requests answered, by view (URL route name), method and status.",
    ["view", "method", "status"],
)  # fmt: skip
HTTP_LATENCY = Histogram(
    "rdv_http_request_duration_seconds", "Time to answer a request, by view.", ["view"],
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
CONFLICTS = Counter(
    "rdv_http_conflicts", "409 answers (a slot taken first, a stale snapshot…), by view.", ["view"]
)
RATE_LIMITED = Counter(
    "rdv_rate_limited", "Requests refused by a rate limit (429), by limit name.", ["limit"]
)
BOOKINGS = Counter("rdv_bookings", "Appointments booked (inserted), by channel.", ["channel"])
HOLDS = Counter("rdv_holds", "Slot holds taken, by channel.", ["channel"])
WEBHOOK_FAILURES = Counter("rdv_webhook_delivery_failures", "Webhook deliveries that failed.")
TASKS = Counter("rdv_celery_tasks", "Celery tasks finished, by task and state.", ["task", "state"])
TASK_DURATION = Histogram(
    "rdv_celery_task_duration_seconds", "Celery task run time, by task.", ["task"], buckets=TASK_BUCKETS
)
RECONCILIATIONS = Counter(
    "rdv_snapshot_reconciliations", "Agenda snapshots reconciled, by outcome (done, failed).", ["outcome"]
)
RECONCILE_DURATION = Histogram(
    "rdv_snapshot_reconcile_duration_seconds",
    "From an agenda snapshot's receipt to the end of its reconciliation.",
    buckets=(0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0),
)
RECONCILE_CONFLICTS = Counter(
    "rdv_snapshot_conflicts",
    "Conflicts recorded by snapshot reconciliations (a booked slot removed or changed).",
)

# Every metric name this module exports, as Prometheus sees it (counters get ``_total``). The alert
# rules test checks each expression against this set.
EXPORTED_GAUGES = {
    "rdv_outbox_notify_lag_seconds": "Age of the oldest outbox event whose notification is pending.",
    "rdv_outbox_notify_pending": "Outbox events whose notification is pending (capped at 10000).",
    "rdv_feed_relay_lag_seconds": "Age of the oldest outbox event not yet numbered in the change feed.",
    "rdv_feed_unnumbered": "Outbox events not yet numbered in the change feed (capped at 10000).",
    "rdv_webhook_subscriptions": "Webhook subscriptions, by status.",
    "rdv_webhook_dead_letters": "Events waiting after the cursor of dead webhook subscriptions (capped).",
    "rdv_webhook_failing_subscriptions": "Active webhook subscriptions whose last delivery failed.",
    "rdv_celery_queue_length": "Messages waiting in a Celery queue (Redis LLEN), by queue.",
    "rdv_db_connections": "Connections to this database, by state (pg_stat_activity).",
    "rdv_db_max_connections": "The server's max_connections.",
    "rdv_db_size_bytes": "Size of this database on disk.",
    "rdv_db_wal_archive_age_seconds": "Seconds since the last WAL segment was archived (none when off).",
    "rdv_db_wal_archive_failures": "WAL archiving failures since the statistics were reset.",
    "rdv_sync_conflicts_open": "Open synchronization conflicts (for the clinics to resolve).",
    "rdv_emr_product_silence_seconds": "Seconds since any client of an EMR product in use last called us.",
    "rdv_maintenance_mode": "1 while maintenance mode pauses bookings.",
    "rdv_scrape_errors": "Parts of the last scrape that failed (0 or 1), by part.",
}
EXPORTED_NAMES: set[str] = set(EXPORTED_GAUGES)
for _metric in (
    HTTP_REQUESTS, HTTP_LATENCY, CONFLICTS, RATE_LIMITED, BOOKINGS, HOLDS, WEBHOOK_FAILURES, TASKS,
    TASK_DURATION, RECONCILIATIONS, RECONCILE_DURATION, RECONCILE_CONFLICTS,
):  # fmt: skip
    _name = _metric._name
    if isinstance(_metric, Counter):
        EXPORTED_NAMES |= {f"{_name}_total", f"{_name}_created"}
    else:
        EXPORTED_NAMES |= {f"{_name}_bucket", f"{_name}_sum", f"{_name}_count", f"{_name}_created"}

FEED_CAP = 10_000


# --- recording helpers (called from middleware, views and signal receivers) -----------------------


def view_label(request: HttpRequest) -> str:
    """The route that answered, never the path: ``booking:confirm``, or the pattern for an unnamed
    route (``fhir/r4/Slot/<pk>``). Requests that matched no route share one label."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "<unresolved>"
    if match.url_name:
        return str(match.view_name)
    route = str(match.route or "").replace("^", "").replace("$", "")
    # The FHIR instance routes are regexes: keep their shape, not their pattern syntax.
    return route.replace("(?P<pk>[A-Za-z0-9\\-.]{1,64})", "<pk>") or "<unnamed>"


def record_request(request: HttpRequest, response: HttpResponse, seconds: float) -> str:
    view = view_label(request)
    method = request.method if request.method in METHODS else "OTHER"
    HTTP_REQUESTS.labels(view=view, method=method, status=str(response.status_code)).inc()
    HTTP_LATENCY.labels(view=view).observe(seconds)
    if response.status_code == 409:
        CONFLICTS.labels(view=view).inc()
    return view


def record_hold(channel: str) -> None:
    HOLDS.labels(channel=channel).inc()


def record_rate_limited(limit: str) -> None:
    RATE_LIMITED.labels(limit=limit).inc()


# --- /metrics --------------------------------------------------------------------------------------


def address_allowed(remote: str) -> bool:
    """The address is in ``METRICS_ALLOWED_IPS`` (addresses or CIDR networks)."""
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    for entry in settings.METRICS_ALLOWED_IPS:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def access_status(remote: str, authorization: str) -> int:
    """200 when the scraper may read the metrics; 403 for a wrong token; 404 for everyone else (the
    endpoint does not advertise itself). The token is compared in constant time. Shared by ``/metrics``
    and the Celery workers' exporter (config.worker_metrics)."""
    token: str = settings.METRICS_TOKEN
    if token and authorization.startswith("Bearer "):
        if hmac.compare_digest(authorization[len("Bearer ") :].strip().encode(), token.encode()):
            return 200
        return 403
    return 200 if address_allowed(remote) else 404


def access(request: HttpRequest) -> int:
    from config.ratelimit import client_ip

    return access_status(client_ip(request), request.META.get("HTTP_AUTHORIZATION", ""))


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def scrape() -> bytes:
    """The exposition text: this process's metrics (or every worker's, in multiprocess mode) and
    the states read now."""
    registry = CollectorRegistry(auto_describe=True)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessCollector())
    registry.register(StateCollector())
    return generate_latest(registry)


def metrics_view(request: HttpRequest) -> HttpResponse:
    status = access(request)
    if status != 200:
        return HttpResponse(status=status, content_type="text/plain")
    response = HttpResponse(scrape(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


class _ProcessCollector(Collector):
    """The default registry (this process's counters, plus Python's process and GC metrics)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class StateCollector(Collector):
    """Gauges read from PostgreSQL and Redis at scrape time. Each part fails alone."""

    def collect(self) -> Iterator[Metric]:
        errors = GaugeMetricFamily("rdv_scrape_errors", EXPORTED_GAUGES["rdv_scrape_errors"], labels=["part"])
        for part, reader in (
            ("database", self._database),
            ("redis", self._redis),
            ("emr", self._emr),
            ("maintenance", self._maintenance),
        ):
            started = time.monotonic()
            try:
                yield from reader()
                errors.add_metric([part], 0)
            except Exception:  # noqa: BLE001 - a scrape reports what it could read
                logger.warning("metrics: could not read %s", part, exc_info=True)
                errors.add_metric([part], 1)
            logger.debug("metrics: %s read in %.3fs", part, time.monotonic() - started)
        yield errors

    @staticmethod
    def _gauge(name: str, value: float | None, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, EXPORTED_GAUGES[name], labels=list(labels or {}))
        if value is not None:
            family.add_metric(list((labels or {}).values()), value)
        return family

    def _database(self) -> Iterator[Metric]:
        from django.db import connection, transaction

        rows: dict[str, Any] = {}
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL statement_timeout = %s", [f"{settings.METRICS_QUERY_TIMEOUT_MS}ms"])
            for name, sql in _STATE_QUERIES.items():
                if name.startswith("pg_") and connection.vendor != "postgresql":
                    continue
                cursor.execute(sql, {"cap": FEED_CAP})
                rows[name] = cursor.fetchall()
        now_row = rows["now"][0]
        now = now_row[0]

        def age(value: Any) -> float:
            return max(0.0, (now - value).total_seconds()) if value is not None else 0.0

        notify = rows["outbox_notify"][0]
        yield self._gauge("rdv_outbox_notify_lag_seconds", age(notify[0]))
        yield self._gauge("rdv_outbox_notify_pending", notify[1])
        feed = rows["feed_unnumbered"][0]
        yield self._gauge("rdv_feed_relay_lag_seconds", age(feed[0]))
        yield self._gauge("rdv_feed_unnumbered", feed[1])
        subs = GaugeMetricFamily(
            "rdv_webhook_subscriptions", EXPORTED_GAUGES["rdv_webhook_subscriptions"], labels=["status"]
        )
        counts = dict(rows["webhooks"])
        for status in ("active", "dead", "off"):
            subs.add_metric([status], counts.get(status, 0))
        yield subs
        yield self._gauge("rdv_webhook_failing_subscriptions", rows["webhooks_failing"][0][0])
        yield self._gauge("rdv_webhook_dead_letters", _dead_letters())
        yield self._gauge("rdv_sync_conflicts_open", rows["conflicts"][0][0])
        if "pg_connections" in rows:
            conns = GaugeMetricFamily(
                "rdv_db_connections", EXPORTED_GAUGES["rdv_db_connections"], labels=["state"]
            )
            for state, count in rows["pg_connections"]:
                conns.add_metric([state or "unknown"], count)
            yield conns
            size, max_conns = rows["pg_size"][0]
            yield self._gauge("rdv_db_size_bytes", size)
            yield self._gauge("rdv_db_max_connections", int(max_conns))
            archived, failed = rows["pg_archiver"][0]
            yield self._gauge("rdv_db_wal_archive_age_seconds", age(archived) if archived else None)
            yield self._gauge("rdv_db_wal_archive_failures", failed)

    def _redis(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "rdv_celery_queue_length", EXPORTED_GAUGES["rdv_celery_queue_length"], labels=["queue"]
        )
        broker: str = settings.CELERY_BROKER_URL
        if broker.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(broker, socket_timeout=1, socket_connect_timeout=1)
            try:
                for queue in settings.METRICS_CELERY_QUEUES:
                    family.add_metric([queue], client.llen(queue))
            finally:
                client.close()
        yield family

    def _emr(self) -> Iterator[Metric]:
        from config.emr_activity import product_silence

        family = GaugeMetricFamily(
            "rdv_emr_product_silence_seconds",
            EXPORTED_GAUGES["rdv_emr_product_silence_seconds"],
            labels=["product"],
        )
        for product, seconds in product_silence().items():
            family.add_metric([product], seconds)
        yield family

    def _maintenance(self) -> Iterator[Metric]:
        from config.maintenance import maintenance_state

        yield self._gauge("rdv_maintenance_mode", 1 if maintenance_state().active else 0)


def _dead_letters() -> int:
    """Events after the cursor of each dead subscription, in its client's scope (capped: an old dead
    subscription must not make the scrape slow). Dead subscriptions are few."""
    from sync import feed
    from sync.models import WebhookSubscription
    from sync.selectors import clinic_ids_for_emr_client

    dead = WebhookSubscription.objects.filter(status=WebhookSubscription.Status.DEAD).select_related(
        "emr_client"
    )
    total = 0
    for sub in dead[:50]:
        pending = feed.feed_events(
            clinic_ids=clinic_ids_for_emr_client(sub.emr_client),
            after=sub.last_delivered_seq,
            include_slots=False,
        )
        total += pending[:FEED_CAP].count()
    return total


# Each query reads a partial index (outbox_pending_notify, outbox_feed_unnumbered) or a small table
# (webhook subscriptions, open conflicts, PostgreSQL's statistics views). ``now`` is the database's
# clock, so ages do not depend on the web server's.
_STATE_QUERIES = {
    "now": "SELECT CURRENT_TIMESTAMP",
    "outbox_notify": (
        "SELECT (SELECT min(created_at) FROM booking_outboxevent WHERE notify_state = 'pending'),"
        " (SELECT count(*) FROM (SELECT 1 FROM booking_outboxevent WHERE notify_state = 'pending'"
        " LIMIT %(cap)s) AS capped)"
    ),
    "feed_unnumbered": (
        "SELECT (SELECT min(created_at) FROM booking_outboxevent WHERE feed_seq IS NULL),"
        " (SELECT count(*) FROM (SELECT 1 FROM booking_outboxevent WHERE feed_seq IS NULL"
        " LIMIT %(cap)s) AS capped)"
    ),
    "webhooks": "SELECT status, count(*) FROM sync_webhooksubscription GROUP BY status",
    "webhooks_failing": (
        "SELECT count(*) FROM sync_webhooksubscription WHERE status = 'active' AND failures > 0"
    ),
    "conflicts": "SELECT count(*) FROM sync_syncconflict WHERE status = 'open'",
    "pg_connections": (
        "SELECT state, count(*) FROM pg_stat_activity WHERE datname = current_database() GROUP BY state"
    ),
    "pg_size": "SELECT pg_database_size(current_database()), current_setting('max_connections')",
    "pg_archiver": "SELECT last_archived_time, failed_count FROM pg_stat_archiver",
}
