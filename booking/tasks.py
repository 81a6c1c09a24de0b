"""Celery tasks: thin callers that take ids. Enqueued on commit; a beat sweep catches anything the
broker lost (Redis down at commit time), so every notification is eventually sent."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from . import reminders
from .models import OutboxEvent
from .notifications import send_appointment_email
from .services.retention import retention_apply as retention_apply_service

logger = logging.getLogger(__name__)

KIND_TO_EMAIL = {"appointment.booked": "booked", "appointment.cancelled": "cancelled"}


@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=8)
def notify_event(event_id: int) -> None:
    """Send the citizen e-mail of one outbox event, once.

    The row is locked while sending so that the on-commit task and the sweep never both send it;
    the state moves to ``sent`` in the same transaction. If the process dies after the SMTP server
    accepted the message but before commit, the sweep sends it again: the residual duplicate,
    which the message's idempotency header lets a provider discard.
    """
    with transaction.atomic():
        event = (
            OutboxEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=event_id, notify_state=OutboxEvent.NotifyState.PENDING)
            .select_related("appointment__citizen", "appointment__clinic", "appointment__slot__practitioner")
            .first()
        )
        if event is None:
            return
        kind = KIND_TO_EMAIL.get(event.kind)
        sent = bool(kind and event.appointment and send_appointment_email(event.appointment, kind))
        event.notify_state = OutboxEvent.NotifyState.SENT if sent else OutboxEvent.NotifyState.SKIPPED
        event.notified_at = timezone.now()
        event.save(update_fields=["notify_state", "notified_at"])


@shared_task(ignore_result=True)
def notifications_sweep() -> int:
    """Beat, every minute: events still pending after a minute (their task was lost) are sent."""
    cutoff = timezone.now() - timedelta(seconds=settings.NOTIFICATIONS_SWEEP_AFTER_SECONDS)
    ids = list(
        OutboxEvent.objects.filter(notify_state=OutboxEvent.NotifyState.PENDING, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:500]
    )
    for event_id in ids:
        notify_event(event_id)
    if ids:
        logger.info("notifications sweep sent pending events", extra={"count": len(ids)})
    return len(ids)


RELAY_WATERMARK_KEY = "notifications-relay:last-id"
RELAY_BATCH = 50


@shared_task(ignore_result=True)
def notifications_relay() -> int:
    """Beat, every ``NOTIFICATIONS_RELAY_SECONDS``: the pending events committed since the last run
    go to the workers in batches (``notify_events``), instead of one task published per booking.

    The watermark (the highest event id handed over, in the cache) keeps each event from being
    handed over at every run while the workers are busy. An event whose id is below the watermark
    but which committed after the run that moved it (ids are taken at insert, not at commit) is not
    lost: it stays pending and the minute sweep sends it. Handing an event over twice (cache lost)
    is harmless: ``notify_event`` sends only a pending event, under its row lock.
    """
    last = cache.get(RELAY_WATERMARK_KEY, 0)
    ids = list(
        OutboxEvent.objects.filter(notify_state=OutboxEvent.NotifyState.PENDING, pk__gt=last)
        .order_by("pk")
        .values_list("pk", flat=True)[:5000]
    )
    for start in range(0, len(ids), RELAY_BATCH):
        notify_events.delay(ids[start : start + RELAY_BATCH])
    if ids:
        cache.set(RELAY_WATERMARK_KEY, ids[-1], None)
    return len(ids)


@shared_task(ignore_result=True)
def notify_events(event_ids: list[int]) -> None:
    """A batch of the relay: each e-mail on its own (one failure leaves the others unaffected and
    its event pending for the sweep)."""
    for event_id in event_ids:
        try:
            notify_event(event_id)
        except Exception:  # noqa: BLE001 - the sweep retries it
            logger.warning("notification not sent; the sweep will retry it", extra={"event_id": event_id})


@shared_task(ignore_result=True)
def reminders_schedule(full: bool = False) -> int:
    """Beat, every minute: pending reminders for the appointments booked since the last run (read
    from the outbox); ``full`` (nightly): for every booked appointment of the next days."""
    count = reminders.reminders_schedule(full=full)
    logger.info("reminders scheduled", extra={"offered": count, "full": full})
    return count


@shared_task(ignore_result=True)
def reminders_send() -> int:
    """Beat, every minute: send the due reminders; overlapping runs each claim different rows."""
    return reminders.reminders_send()


@shared_task(ignore_result=True)
def waitlist_dispatch() -> int:
    """Beat, every few seconds: end past offers and requests, offer freed and published slots to
    waiting citizens (booking.waitlist, docs/waitlist.md). Overlapping runs are safe: the database
    allows one live offer per slot and per citizen."""
    from .waitlist.offers import waitlist_dispatch as dispatch

    result = dispatch()
    if result.made or result.offers_expired:
        logger.info(
            "waitlist dispatched",
            extra={"offers_made": len(result.made), "offers_expired": result.offers_expired},
        )
    return len(result.made)


@shared_task(ignore_result=True)
def waitlist_offer_slot(slot_id: int) -> bool:
    """Pass one slot on at once (an offer was declined or could not be booked)."""
    from .waitlist.offers import waitlist_offer_next, waitlist_offer_send

    made = waitlist_offer_next(slot_id=slot_id)
    return made is not None and waitlist_offer_send(made)


@shared_task(ignore_result=True)
def retention_apply() -> None:
    """Beat, daily: Law 25 retention (booking.services.retention, docs/privacy.md)."""
    report = retention_apply_service(now=timezone.now())
    logger.info("retention applied", extra=vars(report))


@shared_task(ignore_result=True)
def reporting_aggregate(full: bool = False) -> dict[str, int]:
    """Beat, every few minutes: the reporting summary rows of the weeks touched since the last run
    (docs/metrics.md); ``full`` (nightly) recomputes every week from the raw rows."""
    from .reporting.aggregate import reporting_aggregate as aggregate

    return aggregate(full=full)


@shared_task(ignore_result=True)
def opendata_publish() -> dict[str, int]:
    """Beat, every 15 minutes: the SMART Scheduling Links files of free public slots."""
    from .reporting.opendata import opendata_publish as publish

    return publish()
