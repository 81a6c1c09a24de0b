"""Webhooks: an EMR client's change feed pushed to its endpoint (FHIR Subscription, rest-hook).

A subscription is a cursor in the feed (``last_delivered_seq``) that we follow on the client's
behalf. Each delivery is the next page of that client's feed, read through ``sync.feed`` (the same
selection: its clinics, without the changes its EMR made) and built by ``sync.feed_bundle`` (the
same history Bundle as ``$feed``), POSTed to the endpoint with an HMAC-SHA256 signature of the
exact body. Hence:

- order: deliveries follow the feed order, one page at a time, and a page is sent only after the
  previous one was acknowledged;
- nothing skipped: the cursor moves only on a 2xx, and then exactly as a feed reader's would;
- nothing repeated after a 2xx: the subscription row is locked (``SELECT … FOR UPDATE SKIP LOCKED``)
  from the read of its cursor to the write of the new one, across the HTTP call, so a second worker
  skips it instead of sending the same page. An endpoint that answered 2xx but whose answer we
  lost (a timeout after it processed the body) gets that page again: receivers dedupe by ``seq``.

A failure (not 2xx, a redirect, a connection error, a timeout) leaves the cursor where it is and
schedules the next attempt after ``min(2^n, 3600)`` seconds (n consecutive failures). After
``SYNC_WEBHOOK_MAX_FAILURES`` failures in a row, or ``SYNC_WEBHOOK_DEAD_AFTER_HOURS`` of failing,
the subscription is dead: its pending events (after its cursor) are its dead letters, visible on
the Subscription and readable with ``$feed?cursor=<its cursor>``; re-activating it resumes from
there, in order.

The clock is an argument (``now``) so that tests can move time; by default ``timezone.now()``.
"""

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone, translation

from config import metrics

from . import feed
from .audit import audit_record
from .feed_bundle import history_bundle
from .fhir import resources
from .models import AuditEvent, EmrClient, WebhookSubscription
from .selectors import clinic_ids_for_emr_client

logger = logging.getLogger(__name__)

SUPPORTED_CRITERIA = ("Appointment",)
PAYLOAD_TYPE = "application/fhir+json"
SIGNATURE_HEADER = "X-RDV-Signature"
TIMESTAMP_HEADER = "X-RDV-Timestamp"
# During a secret rotation's overlap, the signature with the previous secret (same format).
SIGNATURE_PREVIOUS_HEADER = "X-RDV-Signature-Previous"
DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)
MAX_ROTATION_OVERLAP = timedelta(days=30)
DELIVERY_HEADER = "X-RDV-Delivery"
SUBSCRIPTION_HEADER = "X-RDV-Subscription"
SUBSCRIPTION_EXTENSION = f"{resources.BASE}/StructureDefinition/feed-subscription"
# Connect, read (seconds): a slow endpoint holds its subscription's lock and a worker, not more.
TIMEOUT = (2, 5)
MAX_BACKOFF_SECONDS = 3600
# Pages delivered to one subscription per run before the next subscription gets its turn.
MAX_PAGES_PER_RUN = 10
LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


class WebhookError(Exception):
    """A subscription request we refuse; ``str()`` says why, for the client."""


class SubscriptionLimitReached(WebhookError):
    pass


# --- endpoints -----------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook endpoint, or None.

    https only; plain http and loopback hosts only where ``SYNC_WEBHOOK_ALLOW_LOOPBACK`` (the demo
    and the tests) or DEBUG allows them; no credentials in the URL (it would be logged and shown);
    no IP literal in a private, link-local or reserved range (our own network, cloud metadata).
    """
    if not isinstance(url, str) or not url or len(url) > 2000 or any(c.isspace() for c in url):
        return "channel.endpoint must be an absolute https URL of at most 2000 characters."
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed IPv6 host: "https://[::1"
        return "channel.endpoint is not a valid URL."
    try:
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "channel.endpoint has an invalid port."
    if parts.scheme not in ("http", "https") or not host:
        return "channel.endpoint must be an absolute https URL."
    if parts.username or parts.password:
        return "channel.endpoint must not carry credentials; verify our signature instead."
    if parts.fragment:
        return "channel.endpoint must not have a fragment."
    loopback = _is_loopback(host)
    if loopback and not (settings.SYNC_WEBHOOK_ALLOW_LOOPBACK or settings.DEBUG):
        return "channel.endpoint must be a public host."
    if parts.scheme != "https" and not (loopback or settings.DEBUG):
        return "channel.endpoint must use https."
    if not loopback:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None and not address.is_global and not settings.DEBUG:
            return "channel.endpoint must be a public host."
    return None


# --- subscriptions (services and selectors) ------------------------------------------------------


def subscription_get_for_client(*, emr_client: EmrClient, pk: int) -> WebhookSubscription | None:
    """A subscription of this client, or None (another client's is as unknown as a missing one)."""
    return WebhookSubscription.objects.filter(emr_client=emr_client, pk=pk).first()


def subscription_list_for_client(*, emr_client: EmrClient) -> list[WebhookSubscription]:
    return list(WebhookSubscription.objects.filter(emr_client=emr_client).order_by("pk"))


def subscription_create(
    *, emr_client: EmrClient, endpoint: str, criteria: str, reason: str = ""
) -> tuple[WebhookSubscription, str]:
    """A new active subscription starting at the feed's current head; returns it and its secret.

    The secret is the only time it leaves: the caller shows it once.
    """
    problem = endpoint_problem(endpoint)
    if problem:
        raise WebhookError(problem)
    if criteria not in SUPPORTED_CRITERIA:
        raise WebhookError(f"criteria must be one of: {', '.join(SUPPORTED_CRITERIA)}.")
    with transaction.atomic():
        # Serializes one client's creations, so that two at once cannot both pass the limit.
        EmrClient.objects.select_for_update().filter(pk=emr_client.pk).first()
        live = WebhookSubscription.objects.filter(emr_client=emr_client).exclude(
            status=WebhookSubscription.Status.OFF
        )
        limit = settings.SYNC_WEBHOOK_MAX_PER_CLIENT
        if live.count() >= limit:
            raise SubscriptionLimitReached(
                f"A client may have at most {limit} subscriptions; delete one first."
            )
        secret = secrets.token_urlsafe(32)
        subscription = WebhookSubscription.objects.create(
            emr_client=emr_client,
            endpoint=endpoint,
            secret=secret,
            criteria=criteria,
            reason=reason[:200],
            last_delivered_seq=feed.feed_head(),
        )
    return subscription, secret


def subscription_rotate_secret(
    *,
    subscription: WebhookSubscription,
    overlap: timedelta = DEFAULT_ROTATION_OVERLAP,
    now: dt.datetime | None = None,
) -> tuple[WebhookSubscription, str]:
    """A new signing secret; returns the subscription and the secret (shown once).

    Until ``now + overlap`` each delivery is signed with both: ``X-RDV-Signature`` with the new
    secret and ``X-RDV-Signature-Previous`` with the one it replaces, so the receiver can switch at
    its own pace. ``overlap`` 0 drops the old secret at once (a leaked secret). Rotating again
    during an overlap keeps only the secret that was current (one previous secret at a time).
    """
    now = now or timezone.now()
    if not timedelta(0) <= overlap <= MAX_ROTATION_OVERLAP:
        raise WebhookError(f"The overlap lasts 0 to {MAX_ROTATION_OVERLAP.days} days.")
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        sub = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        sub.previous_secret = sub.secret if overlap else ""
        sub.previous_secret_until = now + overlap if overlap else None
        sub.secret = secret
        sub.save(update_fields=["secret", "previous_secret", "previous_secret_until", "updated_at"])
    logger.info("webhook secret rotated", extra={"subscription_id": sub.pk})
    return sub, secret


def previous_secret_live(sub: WebhookSubscription, now: dt.datetime) -> bool:
    return (
        bool(sub.previous_secret)
        and sub.previous_secret_until is not None
        and now < sub.previous_secret_until
    )


def subscription_update(
    *, subscription: WebhookSubscription, active: bool, endpoint: str, reason: str
) -> WebhookSubscription:
    """Change the endpoint or reason; ``active`` re-activates (from where it stopped) or turns off.

    Re-activating clears the failures and makes it due at once. A subscription whose cursor is
    older than the feed's retention cannot resume (its events are gone): ``feed.FeedExpired``.
    """
    problem = endpoint_problem(endpoint)
    if problem:
        raise WebhookError(problem)
    with transaction.atomic():
        # Waits for a delivery in progress to finish (it holds this row): its outcome is kept.
        row = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        if endpoint != row.endpoint:
            row.next_attempt_at = None  # a fixed endpoint is tried at once, not after the backoff
        row.endpoint = endpoint
        row.reason = reason[:200]
        if active:
            if row.status != WebhookSubscription.Status.ACTIVE and feed.feed_cursor_expired(
                row.last_delivered_seq
            ):
                raise feed.FeedExpired
            if row.status != WebhookSubscription.Status.ACTIVE:
                row.failures = 0
                row.failing_since = None
                row.next_attempt_at = None
            row.status = WebhookSubscription.Status.ACTIVE
        else:
            row.status = WebhookSubscription.Status.OFF
            row.next_attempt_at = None
        row.save()
    return row


def subscription_off(*, subscription: WebhookSubscription) -> None:
    """Delete = off: nothing more is sent; the row stays, for history and the audit."""
    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        status=WebhookSubscription.Status.OFF, next_attempt_at=None, updated_at=timezone.now()
    )


def subscription_pending(subscription: WebhookSubscription) -> int:
    """How many events wait after the subscription's cursor (its dead letters when it is dead)."""
    return feed.feed_events(
        clinic_ids=clinic_ids_for_emr_client(subscription.emr_client),
        after=subscription.last_delivered_seq,
        include_slots=False,
    ).count()


# --- delivery ------------------------------------------------------------------------------------


def signature(secret: str, body: bytes) -> str:
    """The ``X-RDV-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the exact body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Delivery:
    subscription_id: int
    # delivered (2xx), empty (nothing visible to send: the cursor moved), failed, dead, busy
    # (another worker holds it) or idle (not active, or not due).
    outcome: str
    events: int = 0
    more: bool = False


def _due(now: dt.datetime) -> Q:
    # An inactive client's subscriptions wait, cursor untouched, as its feed does (it cannot poll):
    # delivering to an empty scope would move the cursor past changes it must get once re-activated.
    return Q(status=WebhookSubscription.Status.ACTIVE, emr_client__is_active=True) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )


def webhooks_deliver(*, now: dt.datetime | None = None) -> list[Delivery]:
    """Deliver every due subscription that is behind the feed's head; the beat's and relay's task."""
    head = feed.feed_head()
    due = (
        WebhookSubscription.objects.filter(_due(now or timezone.now()), last_delivered_seq__lt=head)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return [subscription_deliver(pk, now=now) for pk in due]


def subscription_deliver(subscription_id: int, *, now: dt.datetime | None = None) -> Delivery:
    """Send this subscription's pending pages, in order, until it is caught up or a page fails."""
    result = Delivery(subscription_id, "idle")
    delivered = 0
    for _ in range(MAX_PAGES_PER_RUN):
        result = _deliver_page(subscription_id, now=now or timezone.now())
        delivered += result.events if result.outcome == "delivered" else 0
        if result.outcome not in ("delivered", "empty") or not result.more:
            break
    return Delivery(subscription_id, result.outcome, delivered, result.more)


def _feed_url(cursor: int, count: int) -> str:
    return f"{settings.SITE_URL}{reverse('sync:feed')}?{urlencode({'cursor': cursor, '_count': count})}"


def _deliver_page(subscription_id: int, *, now: dt.datetime) -> Delivery:
    with transaction.atomic():
        # The lock spans the HTTP call (at most TIMEOUT): it is what keeps a second worker from
        # sending the same page; SKIP LOCKED makes that worker move on instead of waiting.
        sub = (
            WebhookSubscription.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("emr_client")
            .filter(_due(now), pk=subscription_id)
            .first()
        )
        if sub is None:
            busy = WebhookSubscription.objects.filter(_due(now), pk=subscription_id).exists()
            return Delivery(subscription_id, "busy" if busy else "idle")
        clinic_ids = clinic_ids_for_emr_client(sub.emr_client)
        count = settings.SYNC_WEBHOOK_BATCH
        try:
            page = feed.feed_page(
                clinic_ids=clinic_ids, cursor=sub.last_delivered_seq, count=count, include_slots=False
            )
        except feed.FeedError as exc:
            # Expired: the events after the cursor were pruned unseen; no retry can bring them back.
            return _failed(sub, now=now, error=f"feed: {type(exc).__name__}", dead=True)
        with translation.override(settings.LANGUAGE_CODE):
            built = history_bundle(
                page,
                clinic_ids=clinic_ids,
                base_url=f"{settings.SITE_URL}{reverse('sync:base')}",
                self_url=_feed_url(sub.last_delivered_seq, count),
                next_url=_feed_url(page.next_cursor, count),
                now=now,
                meta_extensions=[
                    {"url": SUBSCRIPTION_EXTENSION, "valueReference": {"reference": f"Subscription/{sub.pk}"}}
                ],
            )
        if not built.entries:
            # Nothing this client may see up to the head: move on, as a feed reader would.
            sub.last_delivered_seq = page.next_cursor
            sub.save(update_fields=["last_delivered_seq", "updated_at"])
            return Delivery(sub.pk, "empty", more=page.full)
        body = json.dumps(built.bundle, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": f"{PAYLOAD_TYPE}; charset=utf-8",
            "User-Agent": "rdv-sante-webhooks/1",
            SIGNATURE_HEADER: signature(sub.secret, body),
            TIMESTAMP_HEADER: str(int(now.timestamp())),
            DELIVERY_HEADER: uuid.uuid4().hex,
            SUBSCRIPTION_HEADER: str(sub.pk),
        }
        if previous_secret_live(sub, now):
            headers[SIGNATURE_PREVIOUS_HEADER] = signature(sub.previous_secret, body)
        error, received = _post(sub.endpoint, body, headers)
        if sub.emr_client.is_sandbox:
            _sandbox_record(sub, error=error, received=received, now=now, interaction="webhook")
        if received and built.appointment_ids:
            audit_record(
                emr_client=sub.emr_client,
                action=AuditEvent.Action.WEBHOOK,
                resource_type="Appointment",
                ids=built.appointment_ids,
            )
        if error:
            return _failed(sub, now=now, error=error)
        sub.last_delivered_seq = page.next_cursor
        sub.last_delivered_at = sub.last_attempt_at = now
        sub.failures = 0
        sub.failing_since = sub.next_attempt_at = None
        sub.last_error = ""
        sub.save()
        return Delivery(sub.pk, "delivered", events=len(built.entries), more=page.full)


def _post(endpoint: str, body: bytes, headers: dict[str, str]) -> tuple[str, bool]:
    """POST once; returns (error, whether the body reached the endpoint). The answer's body is never
    read (it could be anything, of any size): only its status counts."""
    try:
        response = requests.post(
            endpoint, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False, stream=True
        )
    except requests.ConnectionError as exc:  # refused, DNS, TLS, connect timeout: nothing was sent
        return type(exc).__name__, False
    except requests.RequestException as exc:  # e.g. a read timeout: the body was sent
        return type(exc).__name__, True
    with response:
        if 200 <= response.status_code < 300:
            return "", True
        return f"HTTP {response.status_code}", True


def _failed(sub: WebhookSubscription, *, now: dt.datetime, error: str, dead: bool = False) -> Delivery:
    metrics.WEBHOOK_FAILURES.inc()
    sub.failures += 1
    sub.failing_since = sub.failing_since or now
    sub.last_attempt_at = now
    sub.last_error = error[:200]
    too_long = now - sub.failing_since >= timedelta(hours=settings.SYNC_WEBHOOK_DEAD_AFTER_HOURS)
    if dead or sub.failures >= settings.SYNC_WEBHOOK_MAX_FAILURES or too_long:
        sub.status = WebhookSubscription.Status.DEAD
        sub.next_attempt_at = None
        logger.warning(
            "webhook subscription dead",
            extra={"subscription": sub.pk, "failures": sub.failures, "error": sub.last_error},
        )
    else:
        sub.next_attempt_at = now + timedelta(seconds=backoff_seconds(sub.failures))
    sub.save()
    outcome = "dead" if sub.status == WebhookSubscription.Status.DEAD else "failed"
    return Delivery(sub.pk, outcome)


def backoff_seconds(failures: int) -> int:
    """Seconds before the next attempt after ``failures`` consecutive failures: 2, 4, 8, … 3600."""
    return int(min(2 ** min(failures, 12), MAX_BACKOFF_SECONDS))


PROBE_HEADER = "X-RDV-Probe"  # flags the conformance kit's deliberately mis-signed delivery


def _sandbox_record(
    sub: WebhookSubscription, *, error: str, received: bool, now: dt.datetime, interaction: str
) -> None:
    """The conformance kit's record of a delivery to a sandbox endpoint: the status it answered
    (0 when nothing was answered)."""
    from .models import SandboxRequest

    status = 200 if received and not error else 0
    if error.startswith("HTTP "):
        status = int(error.removeprefix("HTTP "))
    SandboxRequest.objects.create(
        emr_client=sub.emr_client,
        at=now,
        method="POST",
        resource_type="Subscription",
        interaction=interaction,
        status=status,
        resource_id=sub.pk,
    )


def webhook_signature_probe(*, subscription_id: int, now: dt.datetime | None = None) -> int | None:
    """Sandbox only: POST one deliberately mis-signed delivery (an empty history Bundle, flagged
    ``X-RDV-Probe: bad-signature``) to the subscription's endpoint and record what it answered. A
    conforming endpoint refuses it (non-2xx). Returns that status (0: no answer), None if not sent.
    The subscription's cursor and failure count are left alone."""
    now = now or timezone.now()
    sub = (
        WebhookSubscription.objects.select_related("emr_client")
        .filter(pk=subscription_id, emr_client__is_sandbox=True, status=WebhookSubscription.Status.ACTIVE)
        .first()
    )
    if sub is None:
        return None
    body = json.dumps({"resourceType": "Bundle", "type": "history", "entry": []}).encode()
    headers = {
        "Content-Type": f"{PAYLOAD_TYPE}; charset=utf-8",
        "User-Agent": "rdv-sante-webhooks/1",
        SIGNATURE_HEADER: signature(sub.secret + "-not-the-secret", body),
        TIMESTAMP_HEADER: str(int(now.timestamp())),
        DELIVERY_HEADER: uuid.uuid4().hex,
        SUBSCRIPTION_HEADER: str(sub.pk),
        PROBE_HEADER: "bad-signature",
    }
    error, received = _post(sub.endpoint, body, headers)
    _sandbox_record(sub, error=error, received=received, now=now, interaction="webhook-probe")
    return 200 if received and not error else int(error[5:]) if error.startswith("HTTP ") else 0
