"""A Celery worker killed with SIGKILL in the middle of an agenda snapshot's reconciliation: nothing
of it was applied, and after a restart the agenda ends exactly as the snapshot says, each change
made once (one outbox event each), the citizen's booking kept.

Two kills: (1) the whole worker (its main process and pool process), restarted afterwards; (2) only
the pool process under a live worker, as the out-of-memory killer would do.

Real processes: a private Redis (the broker) and Celery workers (prefork, as in production) on the
test database. The moment is
deterministic: the test holds a row lock on the slot the snapshot moves, so the worker's
reconciliation transaction waits there after it withdrew the slot the snapshot dropped; the test
sees it waiting (``pg_locks``), kills the worker, and checks that the transaction was still open
when the worker died. The restarted worker gets the same message again: the task is acknowledged
late, so a killed worker's message goes back to the queue (after the broker's visibility timeout,
shortened here; in production the snapshots sweep queues it again even sooner, docs/faults.md). A
killed pool process's message is put back at once by its worker (``reject_on_worker_lost``).
"""

import contextlib
import os
import signal
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.utils import timezone

from booking.models import OCCUPYING_STATUSES, Appointment, OutboxEvent, Slot
from booking.services import appointment_book
from sync import snapshots
from sync.models import AgendaSnapshot, EmrClient
from tests.factories import CitizenFactory, ClinicFactory, RoleFactory
from tests.sync.conftest import EmrPersona, create_client
from tests.sync.test_snapshots import entry, snapshot_body

from .conftest import RedisServer, broker, celery, django_env, test_database_url, wait_until, worker_ready

pytestmark = pytest.mark.django_db(transaction=True)


def accept(persona, emr_client, generation, positions):
    """Record a snapshot of ``{identifier: position}`` (free slots at base + position × 30 min)."""
    slots = [entry(persona, identifier, position) for identifier, position in positions.items()]
    data = snapshots.snapshot_input(
        snapshot_body(generation, slots), role=persona.role, clinic_ids=[persona.clinic.pk]
    )
    snapshot, _retry = snapshots.snapshot_accept(emr_client=emr_client, data=data)
    return snapshot


def agenda(role) -> dict[str, tuple]:
    """The role's EMR slots: identifier → (start, status), withdrawn ones included."""
    return {
        s.external_id: (s.start, s.status)
        for s in Slot.objects.filter(role=role, source=Slot.Source.EMR).order_by("start")
    }


def waiting_backend(conn) -> int | None:
    """The backend of the test database waiting for a row lock (the worker's), if any."""
    row = conn.execute(
        "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE NOT l.granted AND a.datname = current_database() AND a.pid <> pg_backend_pid()"
    ).fetchone()
    return row[0] if row else None


def pool_process(worker) -> int:
    """The prefork worker's pool process (concurrency 1), the one running tasks."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == worker.pid:
                return int(stat.parent.name)
    raise AssertionError(f"{worker.name} has no pool process")


def kill_while_waiting(slot_pk: int, enqueue, kill) -> None:
    """Hold a row lock on the slot, enqueue the reconciliation, wait until the worker's transaction
    waits for that lock, ``kill``; check that the transaction had written and was still open, then
    release the lock and wait until the orphaned database session has ended (rolled back)."""
    with psycopg.connect(test_database_url(), autocommit=False) as blocker:
        blocker.execute("SELECT 1 FROM booking_slot WHERE id = %s FOR UPDATE", [slot_pk])
        enqueue()
        with psycopg.connect(test_database_url(), autocommit=True) as watcher:
            backend = wait_until(
                lambda: waiting_backend(watcher),
                timeout=30,
                interval=0.05,
                what="the worker waits on the slot",
            )
            kill()
            # Killed mid-way: its transaction had already written (a slot withdrawn, an outbox
            # event) and was still open, waiting for the lock, when the process died.
            tables = {
                row[0]
                for row in watcher.execute(
                    "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "WHERE l.pid = %s AND l.mode = 'RowExclusiveLock'",
                    [backend],
                )
            }
            assert {"booking_slot", "booking_outboxevent"} <= tables, tables
            blocker.rollback()  # the orphaned transaction goes on, finds its client gone, rolls back
            wait_until(
                lambda: (
                    watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [backend]
                    ).fetchone()[0]
                    == 0
                ),
                timeout=30,
                what="the killed worker's database session ends",
            )


def test_a_reconciliation_killed_midway_is_applied_once_after_a_restart(tmp_path, processes):
    clinic = ClinicFactory(emr_product="ClinIQ")
    role = RoleFactory(clinic=clinic)
    client_id, secret = create_client("Vendeur A|ClinIQ", clinic)
    persona = EmrPersona(client_id, secret, clinic, role)
    emr_client = EmrClient.objects.get(application__client_id=client_id)

    # The agenda before: A, B, C, D (applied in this process); a citizen books C.
    first = accept(persona, emr_client, 1, {"A": 0, "B": 1, "C": 4, "D": 6})
    assert snapshots.snapshot_reconcile(first.pk).status == "done"
    slot_c = Slot.objects.get(role=role, external_id="C")
    booking = appointment_book(
        slot_id=slot_c.pk, citizen=CitizenFactory(), reason="follow_up", channel="portal"
    )
    before = agenda(role)
    last_event = OutboxEvent.objects.order_by("-pk").values_list("pk", flat=True).first()

    # The snapshot the worker reconciles: A moves, B is dropped, C (booked) and D stay, E and F are new.
    second = accept(persona, emr_client, 2, {"A": 2, "C": 4, "D": 6, "E": 8, "F": 10})
    slot_a = Slot.objects.get(role=role, external_id="A")

    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    processes.append(redis_server)
    env = django_env(
        DATABASE_URL=test_database_url(), REDIS_URL=redis_server.url, FAULT_VISIBILITY_TIMEOUT="2"
    )

    first_worker = celery(tmp_path, env, "worker", name="worker-1", pool="prefork")
    first_worker.start()
    processes.append(first_worker)
    worker_ready(first_worker)
    kill_while_waiting(
        slot_a.pk,
        lambda: broker(redis_server.url).send_task("sync.tasks.snapshot_reconcile", args=[second.pk]),
        first_worker.kill,
    )

    # Nothing of the snapshot was applied, and its status still says it is not finished.
    assert agenda(role) == before
    assert not OutboxEvent.objects.filter(pk__gt=last_event).exists()
    second.refresh_from_db()
    assert second.status == AgendaSnapshot.Status.PROCESSING

    # 1. Restarted: the worker gets the killed worker's message again and applies the snapshot once.
    second_worker = celery(tmp_path, env, "worker", name="worker-2", pool="prefork")
    second_worker.start()
    processes.append(second_worker)
    worker_ready(second_worker)
    wait_until(
        lambda: AgendaSnapshot.objects.get(pk=second.pk).status == AgendaSnapshot.Status.DONE,
        timeout=60,
        what="the snapshot is reconciled after the restart",
    )
    # A second delivery (the snapshots sweep, or the message restored once more) changes nothing.
    broker(redis_server.url).send_task("sync.tasks.snapshot_reconcile", args=[second.pk])
    wait_until(
        lambda: second_worker.output().count("succeeded") >= 2, timeout=30, what="the duplicate task ran"
    )

    base = before["A"][0]
    at = {position: base + timedelta(minutes=30 * position) for position in (0, 1, 2, 4, 6, 8, 10)}
    assert agenda(role) == {
        "A": (at[2], "free"),
        "B": (at[1], "cancelled"),
        "C": (at[4], "booked"),
        "D": (at[6], "free"),
        "E": (at[8], "free"),
        "F": (at[10], "free"),
    }
    second.refresh_from_db()
    assert {k: second.counts[k] for k in ("created", "updated", "withdrawn", "unchanged", "conflicts")} == {
        "created": 2,
        "updated": 1,
        "withdrawn": 1,
        "unchanged": 2,
        "conflicts": 0,
    }
    # One outbox event per change, none for what did not change, none left by the killed run.
    events = sorted(
        (kind, external_id)
        for kind, external_id in OutboxEvent.objects.filter(pk__gt=last_event).values_list(
            "kind", "slot__external_id"
        )
    )
    assert events == [
        ("slot.created", "E"),
        ("slot.created", "F"),
        ("slot.updated", "A"),
        ("slot.withdrawn", "B"),
    ]
    # The citizen's booking is untouched and no slot is occupied twice.
    booking.refresh_from_db()
    assert booking.status == Appointment.Status.BOOKED and booking.slot_id == slot_c.pk
    occupied = Appointment.objects.filter(clinic=clinic, status__in=OCCUPYING_STATUSES)
    assert occupied.count() == occupied.values("slot").distinct().count() == 1
    assert timezone.now() < base  # the agenda is still in the future: nothing was skipped as past

    # 2. Only the pool process is killed (as the kernel's out-of-memory killer would), under a live
    # worker: the worker puts the message back at once (reject_on_worker_lost) and a new pool
    # process applies the next snapshot, once. D is dropped, E moves (the lock is held on E), G is new.
    last_event = OutboxEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    third = accept(persona, emr_client, 3, {"A": 2, "C": 4, "E": 9, "F": 10, "G": 12})
    slot_e = Slot.objects.get(role=role, external_id="E")
    kill_while_waiting(
        slot_e.pk,
        lambda: broker(redis_server.url).send_task("sync.tasks.snapshot_reconcile", args=[third.pk]),
        lambda: os.kill(pool_process(second_worker), signal.SIGKILL),
    )
    wait_until(
        lambda: AgendaSnapshot.objects.get(pk=third.pk).status == AgendaSnapshot.Status.DONE,
        timeout=30,
        what="the snapshot is reconciled by the new pool process",
    )
    assert "WorkerLostError" in second_worker.output()
    at.update({position: base + timedelta(minutes=30 * position) for position in (9, 12)})
    assert agenda(role) == {
        "A": (at[2], "free"),
        "B": (at[1], "cancelled"),
        "C": (at[4], "booked"),
        "D": (at[6], "cancelled"),
        "E": (at[9], "free"),
        "F": (at[10], "free"),
        "G": (at[12], "free"),
    }
    events = sorted(OutboxEvent.objects.filter(pk__gt=last_event).values_list("kind", "slot__external_id"))
    assert events == [("slot.created", "G"), ("slot.updated", "E"), ("slot.withdrawn", "D")]
    booking.refresh_from_db()
    assert booking.status == Appointment.Status.BOOKED and booking.slot_id == slot_c.pk
