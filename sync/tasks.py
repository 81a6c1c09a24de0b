"""Celery tasks of the EMR synchronization: thin callers of ``sync.feed``."""

import logging

from celery import shared_task

from . import feed

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def feed_relay() -> int:
    """Beat, every second: number the committed outbox events (one relay at a time, see sync.feed)."""
    return feed.feed_relay()


@shared_task(ignore_result=True)
def feed_prune() -> int:
    """Beat, daily: delete the feed's events past ``SYNC_FEED_RETENTION_DAYS``."""
    deleted = feed.feed_prune()
    if deleted:
        logger.info("change feed pruned", extra={"count": deleted})
    return deleted
