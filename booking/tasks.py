"""Celery tasks: thin callers that take ids. Enqueued on commit; a beat sweep catches anything the
broker lost (Redis down at commit time), so every notification is eventually sent."""

import logging
from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from . import reminders
from .models import OutboxEvent
from .notifications import send_appointment_email

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
    cutoff = timezone.now() - timedelta(minutes=1)
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


@shared_task(ignore_result=True)
def reminders_schedule() -> int:
    """Beat, every few minutes: pending reminders for booked appointments of the next days."""
    count = reminders.reminders_schedule()
    logger.info("reminders scheduled", extra={"offered": count})
    return count


@shared_task(ignore_result=True)
def reminders_send() -> int:
    """Beat, every minute: send the due reminders; overlapping runs each claim different rows."""
    return reminders.reminders_send()


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
