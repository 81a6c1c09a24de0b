"""Celery tasks of the EMR synchronization: thin callers of ``sync.feed`` and ``sync.webhooks``."""

import logging

from celery import shared_task

from . import feed, webhooks

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
