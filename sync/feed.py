"""The change feed to the EMR: committed outbox events, numbered by one relay, read by cursor.

Why a relay. ``OutboxEvent`` rows are written inside the booking transactions, and those commit in
any order: an event inserted first (lower id, earlier ``created_at``) may commit last. A reader that
paged by id or by time would hand out a cursor past an event that was still invisible to it, and
that event would never be delivered. So events get their place in the feed, ``feed_seq``, only
after they committed, from a single relay (``feed_relay``):

- it runs under a PostgreSQL transaction-level advisory lock (``pg_try_advisory_xact_lock``), so at
  most one relay numbers at a time, anywhere; a second one finds the lock taken and does nothing
  (the unique constraint on ``feed_seq`` would refuse a double numbering anyway);
- it sees only committed events (READ COMMITTED), and gives them ``max(feed_seq) + 1 …`` in
  ``(created_at, id)`` order in one transaction, which commits before the lock is released.

Hence every number given later is above every number visible now: once a reader has seen
``feed_seq = n`` committed, no event can ever get a number ``<= n``. A reader that first reads the
head (the highest number) and then the events up to it sees every one of them (numbers are given in
whole committed batches, without gaps), so a cursor it hands out never has an event appear behind
it. An event whose transaction is still open is simply not numbered yet; it joins the feed, after
the current head, on the relay's next pass.

On SQLite (the demo) the same code runs without the advisory lock: SQLite serializes writers.

Retention: numbered events older than ``SYNC_FEED_RETENTION_DAYS`` are deleted (``feed_prune``),
except the newest one, which keeps the head (and so the numbering) from going back. A cursor below
the oldest event kept means events were deleted unseen: ``FeedExpired`` (410), and the client
resyncs (reads the current slots and appointments, then follows the feed from the current head).
"""

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min, QuerySet
from django.utils import timezone

from booking.models import Appointment, OutboxEvent

# The advisory lock key of the relay: any constant unique within the database ("feed" in ASCII).
RELAY_LOCK_KEY = 0x66656564
RELAY_BATCH = 5000
# Events the EMR itself made do not come back to it: the booking core records them with this channel.
EMR_CHANNEL = Appointment.Channel.EMR


class FeedError(Exception):
    pass


class FeedExpired(FeedError):
    """The cursor points before the oldest event kept: events were deleted before it read them."""


class FeedCursorUnknown(FeedError):
    """The cursor is beyond the head: it was not handed out by this server."""


def feed_relay(*, batch: int = RELAY_BATCH) -> int:
    """Number every committed, unnumbered event; returns how many. Safe to call from anywhere.

    Each batch is its own short transaction; the loop ends when a batch comes back short (or when
    another relay holds the lock: it is numbering them).
    """
    total = 0
    while True:
        numbered = _relay_batch(batch)
        total += numbered
        if numbered < batch:
            return total


def _relay_batch(limit: int) -> int:
    table = OutboxEvent._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Held until this transaction commits, so the next relay sees our numbers in max().
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [RELAY_LOCK_KEY])
            if not cursor.fetchone()[0]:
                return 0  # another relay is numbering right now
        cursor.execute(f"SELECT COALESCE(MAX(feed_seq), 0) FROM {table}")  # noqa: S608 - our table name
        head = cursor.fetchone()[0]
        cursor.execute(
            f"UPDATE {table} SET feed_seq = %s + todo.rn "  # noqa: S608 - our table name
            f"FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY created_at, id) AS rn FROM {table} "
            f"WHERE feed_seq IS NULL ORDER BY created_at, id LIMIT %s) AS todo "
            f"WHERE {table}.id = todo.id",
            [head, limit],
        )
        return int(cursor.rowcount)


def feed_prune(*, now: dt.datetime | None = None) -> int:
    """Delete numbered events past the retention, but never the newest one (it holds the head).

    Events still waiting for their citizen notification are kept until it is sent.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.SYNC_FEED_RETENTION_DAYS)
    head = feed_head()
    deleted, _ = (
        OutboxEvent.objects.filter(feed_seq__isnull=False, feed_seq__lt=head, created_at__lt=cutoff)
        .exclude(notify_state=OutboxEvent.NotifyState.PENDING)
        .delete()
    )
    return deleted


def feed_head() -> int:
    """The highest number given so far (0 before the first event): where a new client starts."""
    return OutboxEvent.objects.aggregate(head=Max("feed_seq"))["head"] or 0


def feed_events(
    *, clinic_ids: Collection[int], after: int, up_to: int | None = None, include_slots: bool
) -> QuerySet[OutboxEvent]:
    """The one selection of what a client's feed holds: its clinics' numbered events after ``after``
    (up to ``up_to``), without the changes its EMR made itself. The feed pages and the webhooks both
    read through it, so they can never disagree on what a client is sent."""
    rows = OutboxEvent.objects.filter(feed_seq__gt=after, clinic_id__in=clinic_ids).exclude(
        channel=EMR_CHANNEL
    )
    if up_to is not None:
        rows = rows.filter(feed_seq__lte=up_to)
    if not include_slots:
        rows = rows.filter(appointment__isnull=False)
    return rows


def feed_cursor_expired(cursor: int) -> bool:
    """Whether events after ``cursor`` may already have been deleted by the retention."""
    oldest = OutboxEvent.objects.aggregate(oldest=Min("feed_seq"))["oldest"]
    return oldest is not None and cursor < oldest - 1


@dataclass(frozen=True)
class FeedPage:
    events: list[OutboxEvent]
    # Where to continue: the last event returned when the page is full, else the head read before
    # the page (every event up to it was visible to the page's query, so nothing is skipped).
    next_cursor: int
    full: bool


def feed_page(
    *,
    clinic_ids: Collection[int],
    cursor: int | None,
    since: dt.datetime | None = None,
    count: int,
    include_slots: bool,
) -> FeedPage:
    """The events after ``cursor`` (or changed since ``since``) for these clinics, in feed order.

    Excludes events the EMR made (channel ``emr``): an EMR client does not get its own changes back.
    Raises ``FeedExpired`` when ``cursor`` is below the retention and ``FeedCursorUnknown`` when it
    is above the head.
    """
    # The head first, then the rows up to it: a number visible here was committed together with
    # every smaller one, so the rows query below sees all of them (read committed, a later snapshot).
    head = feed_head()
    if cursor is not None:
        if cursor > head:
            raise FeedCursorUnknown
        if feed_cursor_expired(cursor):
            raise FeedExpired
    rows = feed_events(clinic_ids=clinic_ids, after=cursor or 0, up_to=head, include_slots=include_slots)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    events = list(
        rows.order_by("feed_seq").only(
            "id", "feed_seq", "kind", "created_at", "slot_id", "appointment_id", "clinic_id", "payload"
        )[: count + 1]
    )
    if len(events) > count:
        events = events[:count]
        return FeedPage(events=events, next_cursor=events[-1].feed_seq or 0, full=True)
    return FeedPage(events=events, next_cursor=head, full=len(events) == count and count > 0)
