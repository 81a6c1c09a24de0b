"""The sweep of agenda snapshots that no worker finished (``sync.tasks.snapshots_sweep``, each minute).

A large snapshot is reconciled by a Celery task (``sync.tasks.snapshot_reconcile``: one transaction,
acknowledged late, retried). If the broker lost the message, the enqueue failed while Redis was down,
or every retry died with its worker, the snapshot would wait in ``received`` or ``processing`` for
ever and its status URL would answer 202 for ever. The sweep finds those older than
``STUCK_AFTER`` and queues them again (back to ``received``); after ``MAX_SWEEPS`` times it gives up
and marks them ``failed`` with an error that tells the EMR what to do. Nothing of an unfinished
snapshot was applied (one transaction), so queueing it again is safe, and a snapshot some worker is
reconciling right now is skipped: its row is locked by that transaction (``skip locked``).

Idempotent: a sweep right after another finds nothing (``swept_at`` moved), and queueing a snapshot
that is meanwhile done does nothing (the task leaves done and failed snapshots alone).
"""

import datetime as dt
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .models import AgendaSnapshot

STUCK_AFTER = dt.timedelta(minutes=10)
MAX_SWEEPS = 5
BATCH = 100
UNFINISHED = (AgendaSnapshot.Status.RECEIVED, AgendaSnapshot.Status.PROCESSING)


@dataclass
class SweepResult:
    requeued: list[int] = field(default_factory=list)  # for the caller to enqueue, after commit
    failed: list[int] = field(default_factory=list)


def given_up_message(sweeps: int) -> str:
    return (
        f"Not reconciled after {sweeps + 1} attempts (no worker finished it); nothing of this snapshot "
        "was applied. Send the agenda again with a greater generation."
    )


def snapshots_sweep(*, now: dt.datetime | None = None) -> SweepResult:
    """Queue again (or fail) the snapshots unfinished for ``STUCK_AFTER``; returns their ids."""
    now = now or timezone.now()
    cutoff = now - STUCK_AFTER
    result = SweepResult()
    with transaction.atomic():
        stuck = (
            AgendaSnapshot.objects.select_for_update(skip_locked=True)
            .filter(status__in=UNFINISHED)
            .filter(Q(swept_at__lte=cutoff) | Q(swept_at__isnull=True, received_at__lte=cutoff))
            .only("id", "sweeps")
            .order_by("received_at", "pk")[:BATCH]
        )
        for snapshot in stuck:
            if snapshot.sweeps >= MAX_SWEEPS:
                AgendaSnapshot.objects.filter(pk=snapshot.pk).update(
                    status=AgendaSnapshot.Status.FAILED,
                    error=given_up_message(snapshot.sweeps),
                    finished_at=now,
                    swept_at=now,
                )
                result.failed.append(snapshot.pk)
            else:
                AgendaSnapshot.objects.filter(pk=snapshot.pk).update(
                    status=AgendaSnapshot.Status.RECEIVED, sweeps=snapshot.sweeps + 1, swept_at=now
                )
                result.requeued.append(snapshot.pk)
    return result
