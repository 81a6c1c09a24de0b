"""The sweep of agenda snapshots no worker finished: queued again, failed after too many attempts,
idempotent, and never touching one a worker is reconciling right now."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from booking.models import Slot
from sync import snapshot_sweep, snapshots, tasks
from sync.models import AgendaSnapshot, EmrClient
from sync.selectors import clinic_ids_for_emr_client

from .conftest import FHIR, get_token
from .test_snapshots import entry, snapshot_body


def accepted(persona, generation=1, *, age=timedelta(minutes=30), status="received"):
    """A snapshot recorded as the API records it, left unfinished ``age`` ago (no worker ran it)."""
    client = EmrClient.objects.get(application__client_id=persona.client_id)
    data = snapshots.snapshot_input(
        snapshot_body(generation, [entry(persona, "S0", 0), entry(persona, "S1", 1)]),
        role=persona.role,
        clinic_ids=clinic_ids_for_emr_client(client),
    )
    snapshot, _retry = snapshots.snapshot_accept(emr_client=client, data=data)
    AgendaSnapshot.objects.filter(pk=snapshot.pk).update(received_at=timezone.now() - age, status=status)
    return snapshot


@pytest.mark.parametrize("status", ["received", "processing"])
def test_a_stuck_snapshot_is_queued_again_and_then_reconciled(persona_a, status):
    snapshot = accepted(persona_a, status=status)
    assert tasks.snapshots_sweep() == 1  # the beat task: queued again (run at once here: eager)
    snapshot.refresh_from_db()
    assert (snapshot.status, snapshot.sweeps) == ("done", 1)
    assert snapshot.counts["created"] == 2
    assert set(Slot.objects.filter(role=persona_a.role).values_list("external_id", flat=True)) == {"S0", "S1"}


def test_a_recent_or_finished_snapshot_is_left_alone(persona_a):
    recent = accepted(persona_a, 1, age=timedelta(minutes=2))
    done = accepted(persona_a, 2, status="done")
    failed = accepted(persona_a, 3, status="failed")
    assert snapshot_sweep.snapshots_sweep() == snapshot_sweep.SweepResult([], [])
    for row, status in ((recent, "received"), (done, "done"), (failed, "failed")):
        row.refresh_from_db()
        assert (row.status, row.sweeps, row.swept_at) == (status, 0, None)


def test_the_sweep_is_idempotent(persona_a):
    snapshot = accepted(persona_a, status="processing")
    now = timezone.now()
    assert snapshot_sweep.snapshots_sweep(now=now).requeued == [snapshot.pk]
    # Run again at once (or by a second beat): nothing more, until STUCK_AFTER has passed again.
    assert snapshot_sweep.snapshots_sweep(now=now).requeued == []
    assert snapshot_sweep.snapshots_sweep(now=now + timedelta(minutes=9)).requeued == []
    snapshot.refresh_from_db()
    assert (snapshot.status, snapshot.sweeps) == ("received", 1)
    assert snapshot_sweep.snapshots_sweep(now=now + timedelta(minutes=11)).requeued == [snapshot.pk]


def test_after_too_many_attempts_it_is_failed_with_a_clear_error_and_nothing_applied(client, persona_a):
    snapshot = accepted(persona_a)
    now = timezone.now()
    for attempt in range(snapshot_sweep.MAX_SWEEPS):
        result = snapshot_sweep.snapshots_sweep(now=now + attempt * snapshot_sweep.STUCK_AFTER)
        assert result.requeued == [snapshot.pk]
    last = now + snapshot_sweep.MAX_SWEEPS * snapshot_sweep.STUCK_AFTER
    assert snapshot_sweep.snapshots_sweep(now=last) == snapshot_sweep.SweepResult([], [snapshot.pk])
    snapshot.refresh_from_db()
    assert snapshot.status == "failed" and snapshot.finished_at == last
    assert "nothing of this snapshot was applied" in snapshot.error
    assert not Slot.objects.filter(role=persona_a.role).exists()
    # Failed is final: a later sweep leaves it, and the queued task would not apply it either.
    assert snapshot_sweep.snapshots_sweep(now=last + timedelta(hours=1)) == snapshot_sweep.SweepResult()
    assert snapshots.snapshot_reconcile(snapshot.pk).status == "failed"
    # The EMR reads it on the status URL: done polling (200), with the error.
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {get_token(client, persona_a)}"
    response = client.get(f"{FHIR}Schedule/{persona_a.role.pk}/$snapshot-status/{snapshot.pk}")
    assert response.status_code == 200
    params = {p["name"]: p for p in response.json()["parameter"]}
    assert params["status"]["valueCode"] == "failed"
    assert "greater generation" in params["error"]["valueString"]


@pytest.mark.django_db(transaction=True)
def test_a_snapshot_a_worker_is_reconciling_is_skipped(persona_a):
    snapshot = accepted(persona_a, status="processing")
    locked, release = threading.Event(), threading.Event()

    def worker():  # a reconciliation in progress holds the snapshot's row
        try:
            with transaction.atomic():
                AgendaSnapshot.objects.select_for_update().get(pk=snapshot.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert locked.wait(10)
        assert snapshot_sweep.snapshots_sweep() == snapshot_sweep.SweepResult()
    finally:
        release.set()
        thread.join()
    assert snapshot_sweep.snapshots_sweep().requeued == [snapshot.pk]
