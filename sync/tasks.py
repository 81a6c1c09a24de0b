"""Celery tasks of the EMR synchronization: thin callers of ``sync.feed`` and ``sync.webhooks``."""

import datetime as dt
import logging

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from . import feed, sandbox_stream, snapshot_sweep, snapshots, webhooks

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def feed_relay() -> int:
    """Beat, every second: number the committed outbox events (one relay at a time, see sync.feed);
    when it numbered some, kick the webhook deliveries at once rather than at their next beat."""
    numbered = feed.feed_relay()
    if numbered:
        try:
            webhooks_deliver.delay()
        except Exception:  # broker down: the beat delivers them anyway
            logger.warning("could not enqueue webhook delivery", exc_info=True)
    return numbered


@shared_task(ignore_result=True)
def webhooks_deliver() -> int:
    """Beat, every 2 seconds, and after each relay that numbered events: push every active
    subscription's pending changes to its endpoint (sync.webhooks). Returns the events delivered."""
    return sum(d.events for d in webhooks.webhooks_deliver())


@shared_task(ignore_result=True)
def feed_prune() -> int:
    """Beat, daily: delete the feed's events past ``SYNC_FEED_RETENTION_DAYS``."""
    deleted = feed.feed_prune()
    if deleted:
        logger.info("change feed pruned", extra={"count": deleted})
    return deleted


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(Exception,),
    retry_backoff=2,
    max_retries=5,
    ignore_result=True,
)
def snapshot_reconcile(self, snapshot_id: int) -> str:
    """Reconcile a large agenda snapshot (sync.snapshots): one transaction, so a worker killed in the
    middle leaves nothing; acknowledged late and retried; a snapshot already done is left alone.

    A snapshot that kills its worker every time (out of memory, say) would come back forever: the
    broker puts a message back when its worker is lost (``reject_on_worker_lost``), and no retry count
    sees it. Every start is counted in Redis; past ``SNAPSHOT_MAX_DELIVERIES`` the snapshot is marked
    failed (nothing of it was applied) and the EMR reads why in ``$snapshot-status``."""
    if _deliveries(snapshot_id) > settings.SNAPSHOT_MAX_DELIVERIES:
        snapshots.snapshot_fail(
            snapshot_id,
            f"Reconciliation abandoned after {settings.SNAPSHOT_MAX_DELIVERIES} attempts that did not"
            " finish; nothing of this snapshot was applied. Send it again in smaller windows.",
        )
        logger.error("snapshot given up: its worker never finished", extra={"snapshot_id": snapshot_id})
        return "failed"
    try:
        return snapshots.snapshot_reconcile(snapshot_id).status
    except Exception as exc:
        if self.request.retries >= (self.max_retries or 0):
            snapshots.snapshot_fail(snapshot_id, f"{type(exc).__name__}: reconciliation failed.")
            logger.exception("snapshot reconciliation failed", extra={"snapshot_id": snapshot_id})
            return "failed"
        raise


def _deliveries(snapshot_id: int) -> int:
    """How many times a worker started this snapshot (retries, redeliveries, sweeps) in the last day."""
    key = f"sync:snapshot-deliveries:{snapshot_id}"
    cache.add(key, 0, timeout=24 * 3600)
    return int(cache.incr(key))


@shared_task(ignore_result=True)
def snapshots_sweep() -> int:
    """Beat, every minute: queue again the agenda snapshots no worker finished, or fail them after
    too many attempts (sync.snapshot_sweep). Returns how many it queued."""
    result = snapshot_sweep.snapshots_sweep()
    for snapshot_id in result.requeued:
        try:
            snapshot_reconcile.delay(snapshot_id)
        except Exception:  # broker down: still unfinished, the next sweeps try again
            logger.warning("snapshot not queued again", extra={"snapshot_id": snapshot_id})
    if result.failed:
        logger.warning("snapshots given up", extra={"snapshot_ids": result.failed})
    return len(result.requeued)


@shared_task(ignore_result=True)
def sandbox_streams() -> int:
    """Beat, every 5 minutes: one step of every partner sandbox's simulated citizens (a booking,
    and a cancellation once they hold a few; sync.sandbox_stream). Returns the changes made."""
    from .sandbox_requests import sandbox_requests_prune

    sandbox_requests_prune()  # the conformance kit's record of sandbox requests, past its days
    sandbox_signature_probes()
    step = sandbox_stream.sandbox_streams()
    return step.booked + step.cancelled


def sandbox_signature_probes(*, now: dt.datetime | None = None) -> int:
    """One mis-signed delivery a day to each active sandbox subscription (the conformance kit's
    webhook-signature scenario). Returns how many were sent."""
    from .models import SandboxRequest, WebhookSubscription
    from .webhooks import webhook_signature_probe

    now = now or timezone.now()
    probed = SandboxRequest.objects.filter(
        interaction="webhook-probe", at__gte=now - dt.timedelta(days=1)
    ).values("resource_id")
    subs = WebhookSubscription.objects.filter(
        emr_client__is_sandbox=True, status=WebhookSubscription.Status.ACTIVE
    ).exclude(pk__in=probed)
    return sum(
        webhook_signature_probe(subscription_id=pk, now=now) is not None
        for pk in subs.values_list("pk", flat=True)
    )
