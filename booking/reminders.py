"""Appointment reminders: scheduling, the 8:00–21:00 clinic-time window, and sending exactly once.

The rules are set down in docs/reminders.md; in short:

* ``reminders_schedule`` (beat, every minute) reads the outbox's ``appointment.booked`` and
  ``appointment.cancelled`` events since its watermark and inserts one ``pending`` Reminder per kind
  and channel of each booked appointment, in bulk (cancelling the pending ones of cancelled
  appointments); once a night (``full``) it scans the booked appointments of the next days instead,
  to catch up on anything missed. The unique (appointment, kind, channel) constraint makes a second
  run, or two runs at once, insert nothing more.
* ``reminder_due_at``: the same wall-clock time one (or three) local days before the start, clamped
  into that local day's window: before 8:00 → 8:00, after ``LATEST_DUE`` → ``LATEST_DUE`` (the
  evening before rather than the night or a morning closer to the appointment).
* ``reminders_send`` (beat, every minute) claims due rows with ``SELECT … FOR UPDATE SKIP LOCKED`` in
  a short transaction (``pending`` → ``sending``, ``attempts + 1``), commits, sends outside any
  transaction with the row's idempotency key, then marks ``sent`` with a compare-and-set on the
  claim. A claim older than the timeout (its worker was killed) is taken again, same key.
"""

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from .models import Appointment, OutboxEvent, Reminder
from .notifications import cancel_token_make
from .reporting.models import ReportingWatermark
from .sms import SmsRejected, get_sms_backend, mobile_e164, sms_enabled

logger = logging.getLogger(__name__)

# The sending window, in clinic local time: a message may leave at 08:00 and until 20:59:59.
WINDOW_START = time(8, 0)
WINDOW_END = time(21, 0)
# Scheduling never aims later than this: the minute beat and one quick retry still fit before 21:00.
LATEST_DUE = time(20, 45)

LEAD_DAYS: dict[str, int] = {Reminder.Kind.DAY_BEFORE: 1, Reminder.Kind.THREE_DAYS: 3}


def _setting(name: str, default: int) -> int:
    value: int = getattr(settings, name, default)
    return value


# --- the window ------------------------------------------------------------------------------------


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz)


def reminder_due_at(*, start: datetime, kind: str, tz: ZoneInfo) -> datetime:
    """When a reminder of ``kind`` for an appointment starting at ``start`` is due (UTC).

    The same wall-clock time ``LEAD_DAYS[kind]`` local days earlier (so 24 real hours, or 23 or 25
    across a daylight-saving change), clamped into that day's window. Comparisons of datetimes that
    share one tzinfo are wall-clock comparisons: a time that does not exist or exists twice on a
    change night (between 0:00 and 3:00) is before 8:00, so it is clamped to 8:00 and never used.
    """
    local_start = start.astimezone(tz)
    day = local_start.date() - timedelta(days=LEAD_DAYS[kind])
    ideal = _local(day, local_start.time(), tz)
    due = min(max(ideal, _local(day, WINDOW_START, tz)), _local(day, LATEST_DUE, tz))
    return due.astimezone(UTC)


def in_sending_window(moment: datetime, tz: ZoneInfo) -> bool:
    return WINDOW_START <= moment.astimezone(tz).time() < WINDOW_END


def next_window_start(moment: datetime, tz: ZoneInfo) -> datetime:
    """The next 8:00 clinic time after ``moment`` (today's if it is still night, else tomorrow's)."""
    local = moment.astimezone(tz)
    day = local.date() if local.time() < WINDOW_START else local.date() + timedelta(days=1)
    return _local(day, WINDOW_START, tz).astimezone(UTC)


# --- scheduling ------------------------------------------------------------------------------------


def _channels(citizen_email: str, citizen_mobile: str) -> list[str]:
    channels: list[str] = []
    if citizen_email:
        channels.append(Reminder.Channel.EMAIL)
    if sms_enabled() and mobile_e164(citizen_mobile):
        channels.append(Reminder.Channel.SMS)
    return channels


def _kind_missing(kind: str) -> Q:
    # A due moment is at most LEAD_DAYS days minus 9 hours before the start (clamped up to 8:00 at
    # most 8 hours later, plus one for a short day at a DST change); an appointment booked after
    # that can never have this reminder, so it is not looked at again on every run.
    latest_booking = timedelta(days=LEAD_DAYS[kind]) - timedelta(hours=9)
    missing = ~Exists(Reminder.objects.filter(appointment=OuterRef("pk"), kind=kind))
    return Q(missing, created_at__lt=F("start") - latest_booking)


REMINDERS_WATERMARK = "reminders"  # its row in ReportingWatermark (booking.reporting.models)
SCHEDULED_EVENTS = ("appointment.booked", "appointment.cancelled")


def reminders_schedule(*, now: datetime | None = None, full: bool = False) -> int:
    """Beat: insert the pending reminders of appointments booked since the last run (from the
    outbox), or, with ``full`` or on the very first run, of every booked appointment in the
    look-ahead (the nightly catch-up). Returns how many rows were offered to the database."""
    now = now or timezone.now()
    if full or not ReportingWatermark.objects.filter(source=REMINDERS_WATERMARK).exists():
        started = timezone.now()  # the real clock: the watermark is compared with created_at
        offered = reminders_schedule_scan(now=now)
        ReportingWatermark.objects.get_or_create(source=REMINDERS_WATERMARK, defaults={"until": started})
        return offered
    return reminders_schedule_outbox(now=now)


def reminders_schedule_outbox(*, now: datetime | None = None) -> int:
    """Insert the reminders of the appointments whose ``appointment.booked`` outbox event was written
    since the watermark; cancel the pending reminders of ``appointment.cancelled`` events.

    The watermark is the real time the previous run started. Events are read from the watermark
    minus ``REMINDER_OUTBOX_OVERLAP_SECONDS``: an event's ``created_at`` is its insert time, and a
    transaction that committed a little after a run started is read by the next one (inserts are
    idempotent, so reading an event twice changes nothing). One run at a time: the watermark row is
    locked for the run (a second run waits, then finds little to do).
    """
    now = now or timezone.now()
    overlap = timedelta(seconds=_setting("REMINDER_OUTBOX_OVERLAP_SECONDS", 600))
    with transaction.atomic():
        mark = ReportingWatermark.objects.select_for_update().filter(source=REMINDERS_WATERMARK).first()
        if mark is None:
            return reminders_schedule(now=now, full=True)
        started = timezone.now()
        events = OutboxEvent.objects.filter(
            kind__in=SCHEDULED_EVENTS, appointment__isnull=False, created_at__gte=mark.until - overlap
        ).values_list("kind", "appointment_id")
        booked: set[int] = set()
        cancelled: set[int] = set()
        for kind, appointment_id in events.iterator(2000):
            (booked if kind == "appointment.booked" else cancelled).add(appointment_id)
        if cancelled:
            Reminder.objects.filter(appointment_id__in=cancelled, state=Reminder.State.PENDING).update(
                state=Reminder.State.CANCELLED
            )
        offered = _schedule(
            Appointment.objects.filter(
                pk__in=booked - cancelled, status=Appointment.Status.BOOKED, start__gt=now
            )
        )
        mark.until = max(mark.until, started)
        mark.save(update_fields=["until"])
    return offered


def reminders_schedule_scan(*, now: datetime | None = None) -> int:
    """Insert the missing pending reminders of booked appointments starting in the look-ahead.

    The catch-up (nightly, and the first run): it reads appointments, not the outbox, so it finds
    whatever the incremental runs could have missed. ``three_days`` only when the clinic wants it;
    one row per channel the citizen can be reached on (e-mail, and SMS when a mobile number is known
    and SMS is switched on); none for a moment that had passed when the appointment was booked (its
    confirmation is fresh). Existing rows are left as they are (ignore_conflicts).
    """
    now = now or timezone.now()
    horizon = now + timedelta(days=_setting("REMINDER_LOOKAHEAD_DAYS", 4))
    return _schedule(
        Appointment.objects.filter(
            status=Appointment.Status.BOOKED, start__gt=now, start__lte=horizon
        ).filter(
            _kind_missing(Reminder.Kind.DAY_BEFORE)
            | (Q(clinic__reminder_three_days=True) & _kind_missing(Reminder.Kind.THREE_DAYS))
        )
    )


def _schedule(appointments: QuerySet[Appointment]) -> int:
    candidates = appointments.exclude(citizen__email="", citizen__mobile="").values_list(
        "pk",
        "start",
        "created_at",
        "version",
        "clinic__time_zone",
        "clinic__reminder_three_days",
        "citizen__email",
        "citizen__mobile",
    )
    offered = 0
    batch: list[Reminder] = []
    for pk, start, created_at, version, time_zone, three_days, email, mobile in candidates.iterator(2000):
        channels = _channels(email, mobile)
        kinds = [Reminder.Kind.DAY_BEFORE] + ([Reminder.Kind.THREE_DAYS] if three_days else [])
        for kind in kinds:
            due_at = reminder_due_at(start=start, kind=kind, tz=ZoneInfo(time_zone))
            if created_at >= due_at:
                continue
            batch.extend(
                Reminder(
                    appointment_id=pk,
                    kind=kind,
                    channel=channel,
                    due_at=due_at,
                    idempotency_key=f"{pk}:{kind}:{channel}:{version}",
                )
                for channel in channels
            )
        if len(batch) >= 1000:
            offered += _insert(batch)
            batch = []
    offered += _insert(batch)
    return offered


def _insert(rows: list[Reminder]) -> int:
    if rows:
        Reminder.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


# --- claiming --------------------------------------------------------------------------------------


def _decide(reminder: Reminder, now: datetime) -> None:
    """Set the claimed row's next state (in the claim transaction, the row locked)."""
    appointment = reminder.appointment
    min_lead = timedelta(minutes=_setting("REMINDER_MIN_LEAD_MINUTES", 120))
    reminder.claimed_at = None
    if appointment.status != Appointment.Status.BOOKED:
        reminder.state = Reminder.State.CANCELLED
    elif appointment.start - now < min_lead:
        reminder.state, reminder.last_error = Reminder.State.SKIPPED, "too_late"
    elif reminder.attempts >= _setting("REMINDER_MAX_ATTEMPTS", 5):
        # Only a claim abandoned again and again (a message that kills its worker) gets here.
        reminder.state, reminder.last_error = Reminder.State.SKIPPED, "max_attempts"
    elif not in_sending_window(now, appointment.clinic.tz):
        reminder.state = Reminder.State.PENDING
        reminder.due_at = next_window_start(now, appointment.clinic.tz)
    else:
        reminder.state, reminder.claimed_at = Reminder.State.SENDING, now
        reminder.attempts += 1


def reminders_claim(*, now: datetime, limit: int) -> list[Reminder]:
    """Claim up to ``limit`` due reminders for this sender; returns those now in ``sending``.

    SKIP LOCKED: a row another sender is claiming right now is simply not ours; once that sender
    commits, the row is ``sending`` with a fresh claim and no longer matches (PostgreSQL re-checks
    the condition on the row it locks). The transaction holds no lock while anything is sent.
    """
    stale = now - timedelta(seconds=_setting("REMINDER_SENDING_TIMEOUT_SECONDS", 600))
    with transaction.atomic():
        rows = list(
            Reminder.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                Q(state=Reminder.State.PENDING, due_at__lte=now)
                | Q(state=Reminder.State.SENDING, claimed_at__lt=stale)
            )
            .select_related("appointment__clinic", "appointment__citizen", "appointment__slot__practitioner")
            .order_by("due_at")[:limit]
        )
        for reminder in rows:
            _decide(reminder, now)
        Reminder.objects.bulk_update(rows, ["state", "attempts", "claimed_at", "due_at", "last_error"])
    return [r for r in rows if r.state == Reminder.State.SENDING]


# --- sending ---------------------------------------------------------------------------------------


class Unsendable(Exception):
    """The reminder can never be sent as it stands; ``code`` goes to ``last_error``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _absolute(path: str) -> str:
    site_url: str = settings.SITE_URL
    return site_url.rstrip("/") + path


def reminder_context(reminder: Reminder) -> dict[str, Any]:
    appointment = reminder.appointment
    return {
        "reminder": reminder,
        "appointment": appointment,
        "clinic": appointment.clinic,
        "practitioner": appointment.slot.practitioner,
        "cancel_url": _absolute(reverse("booking:cancel_link", args=[cancel_token_make(appointment)])),
    }


def reminder_render(reminder: Reminder) -> dict[str, str]:
    """The message in the citizen's language: ``subject``/``text``/``html``, or ``sms``."""
    citizen = reminder.appointment.citizen
    language = citizen.preferred_language if citizen is not None else ""
    with translation.override(language or settings.LANGUAGE_CODE):
        context = reminder_context(reminder)
        if reminder.channel == Reminder.Channel.SMS:
            # One line, no blank lines: an SMS is billed by length.
            body = " ".join(render_to_string("booking/sms/reminder.txt", context).split())
            return {"sms": body}
        return {
            "subject": render_to_string("booking/email/reminder_subject.txt", context).strip(),
            "text": render_to_string("booking/email/reminder.txt", context),
            "html": render_to_string("booking/email/reminder.html", context),
        }


def _send(reminder: Reminder) -> str:
    """Hand the message to its backend with the idempotency key; returns the provider's id."""
    citizen = reminder.appointment.citizen
    key = reminder.idempotency_key
    if citizen is None:
        raise Unsendable("anonymized")
    if reminder.channel == Reminder.Channel.SMS:
        to = mobile_e164(citizen.mobile)
        if not to:
            raise Unsendable("no_mobile")
        if not sms_enabled():
            raise Unsendable("sms_off")
        return get_sms_backend().send(to, reminder_render(reminder)["sms"], key)
    if not citizen.email:
        raise Unsendable("no_email")
    parts = reminder_render(reminder)
    message = EmailMultiAlternatives(
        parts["subject"], parts["text"], settings.DEFAULT_FROM_EMAIL, [citizen.email]
    )
    message.attach_alternative(parts["html"], "text/html")
    # A Message-ID derived from the key: the same message if it is ever sent again.
    message_id = f"<reminder.{key.replace(':', '.')}@rdv-sante.quebec>"
    message.extra_headers["Message-ID"] = message_id
    message.extra_headers["X-Idempotency-Key"] = key
    message.send()
    return message_id


def _finish(reminder: Reminder, **fields: Any) -> bool:
    """Compare-and-set on the claim: only the sender holding this claim may end it."""
    changed = Reminder.objects.filter(
        pk=reminder.pk, state=Reminder.State.SENDING, attempts=reminder.attempts
    ).update(**fields)
    if not changed:
        # The claim timed out and another sender took it over: it sends with the same key.
        logger.warning("reminder claim lost", extra={"reminder_id": reminder.pk})
    return bool(changed)


def reminder_deliver(reminder: Reminder, *, now: datetime) -> str:
    """Send one claimed reminder; returns its outcome (``sent``, ``deferred``, ``retry``, ``skipped``)."""
    tz = reminder.appointment.clinic.tz
    if not in_sending_window(now, tz):
        # Re-checked at send time: a long batch may have run past 21:00. Not an attempt.
        _finish(
            reminder,
            state=Reminder.State.PENDING,
            due_at=next_window_start(now, tz),
            attempts=reminder.attempts - 1,
            claimed_at=None,
        )
        return "deferred"
    # Accepted race: the appointment may be cancelled between the claim and this send (milliseconds);
    # the citizen then gets a reminder whose cancel link shows the appointment as already cancelled.
    try:
        provider_id = _send(reminder)
    except Unsendable as exc:
        _finish(reminder, state=Reminder.State.SKIPPED, last_error=exc.code, claimed_at=None)
        return "skipped"
    except SmsRejected as exc:
        _finish(reminder, state=Reminder.State.SKIPPED, last_error=type(exc).__name__, claimed_at=None)
        return "skipped"
    except Exception as exc:  # noqa: BLE001 - any backend failure is retried, then given up on
        error = type(exc).__name__  # the class only: messages can quote the address
        logger.warning("reminder not sent", extra={"reminder_id": reminder.pk, "error": error})
        if reminder.attempts >= _setting("REMINDER_MAX_ATTEMPTS", 5):
            _finish(reminder, state=Reminder.State.SKIPPED, last_error=error, claimed_at=None)
            return "skipped"
        backoff = timedelta(minutes=min(2**reminder.attempts, 60))
        _finish(
            reminder, state=Reminder.State.PENDING, due_at=now + backoff, last_error=error, claimed_at=None
        )
        return "retry"
    _finish(
        reminder,
        state=Reminder.State.SENT,
        sent_at=now,
        provider_id=provider_id[:200],
        last_error="",
        claimed_at=None,
    )
    return "sent"


def _clock(now: datetime | None) -> Callable[[], datetime]:
    return (lambda: now) if now is not None else timezone.now


def _claims(clock: Callable[[], datetime]) -> Iterator[list[Reminder]]:
    for _ in range(_setting("REMINDER_MAX_BATCHES", 50)):
        claimed = reminders_claim(now=clock(), limit=_setting("REMINDER_BATCH", 100))
        if not claimed:
            return
        yield claimed


def reminders_send(*, now: datetime | None = None) -> int:
    """Claim and send due reminders, batch after batch; returns how many were sent.

    Several senders may run at once (overlapping beat runs, several workers): each row is claimed
    by one of them. ``now`` fixes the clock for tests; otherwise every check reads the real clock.
    """
    clock = _clock(now)
    sent = 0
    for claimed in _claims(clock):
        for reminder in claimed:
            sent += reminder_deliver(reminder, now=clock()) == "sent"
    return sent
