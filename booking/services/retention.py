"""Law 25 retention (docs/privacy.md): personal data nobody needs any more is removed or made coarse.

Run daily by beat (``booking.tasks.retention_apply``); every step is one bulk statement, safe to run
twice or concurrently, and takes the application clock ``now`` (tests move it).

- Expired holds keep their holder's id on the slot until someone holds it again: cleared once the
  hold is ``RETENTION_EXPIRED_HOLD_HOURS`` past its expiry. A hold is not part of a slot's
  published state (``slot_hold``: no version, no outbox event), and an expired hold blocks nobody,
  so clearing it changes no availability; the filter on the expiry is the compare-and-set: a slot
  held again meanwhile has a later expiry and is left alone.
- Searches without result keep the searcher's postal area (FSA) and radius for
  ``RETENTION_SEARCH_DETAIL_DAYS``; then only the region, reason, path and date remain, enough for
  provincial reporting of unmet demand.
- Expired sessions (a card identified in a browser is a citizen id in the session) are deleted.

Rate-limit counters and allauth's sign-in attempts live in Redis and expire by themselves (at most
ten minutes). The audit logs hold ids only and are kept: anonymizing never breaks their hash chains.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db.models import Q

from ..models import SearchMiss, Slot


@dataclass(frozen=True)
class RetentionReport:
    holds_cleared: int
    searches_coarsened: int
    sessions_deleted: int


def retention_apply(*, now: datetime) -> RetentionReport:
    hold_cutoff = now - timedelta(hours=settings.RETENTION_EXPIRED_HOLD_HOURS)
    holds = Slot.objects.filter(hold_expires__lt=hold_cutoff).update(
        holder=None, hold_expires=None, hold_token=""
    )
    search_cutoff = now - timedelta(days=settings.RETENTION_SEARCH_DETAIL_DAYS)
    searches = (
        SearchMiss.objects.filter(created_at__lt=search_cutoff)
        .filter(~Q(fsa="") | Q(radius_km__isnull=False))
        .update(fsa="", radius_km=None)
    )
    sessions, _ = Session.objects.filter(expire_date__lt=now).delete()
    return RetentionReport(holds_cleared=holds, searches_coarsened=searches, sessions_deleted=sessions)
