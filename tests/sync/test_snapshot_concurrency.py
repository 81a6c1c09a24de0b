"""Citizens booking while a snapshot moves the same slots: a booked slot is never moved.

The snapshot's moves are made in one statement (``emr_slots_update``, compare-and-set on the
versions read at the start of the reconciliation); a citizen who books a slot meanwhile either
books it before the move (the move is refused by the version, and the snapshot records a
conflict) or after (the citizen books the new time). Never a slot changed after its booking.
"""

import threading

import pytest
from django.db import connection

from booking.errors import SlotUnavailable
from booking.models import OutboxEvent, Slot
from sync import snapshots
from sync.models import AgendaSnapshot, EmrClient, SyncConflict

from .test_snapshots import _z, book, entry, post, snapshot_body

pytestmark = pytest.mark.django_db(transaction=True)

COUNT = 30


@pytest.fixture(autouse=True)
def _generous_rate(settings):
    settings.SYNC_API_RATE = "100000/m"


@pytest.mark.parametrize("rounds", range(2))
def test_bookings_racing_a_snapshot_that_moves_their_slots(fhir_a, persona_a, rounds):
    role = persona_a.role
    first = [entry(persona_a, f"E{i}", i) for i in range(COUNT)]
    assert post(fhir_a, role, snapshot_body(1, first, hours=40)).status_code == 200
    assert AgendaSnapshot.objects.filter(role=role, generation=1, status="done").exists()
    moved = [entry(persona_a, f"E{i}", i + COUNT) for i in range(COUNT)]  # every slot 15 h later
    data = snapshots.snapshot_input(
        snapshot_body(2, moved, hours=40), role=role, clinic_ids=[persona_a.clinic.pk]
    )
    emr_client = EmrClient.objects.get(application__client_id=persona_a.client_id)
    snapshot, _retry = snapshots.snapshot_accept(emr_client=emr_client, data=data)
    ids = list(Slot.objects.filter(role=role).order_by("start").values_list("pk", flat=True))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def reconcile() -> None:
        try:
            barrier.wait(timeout=30)
            snapshots.snapshot_reconcile(snapshot.pk)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    def citizens() -> None:
        try:
            barrier.wait(timeout=30)
            for pk in ids[rounds::3]:
                try:
                    book(Slot.objects.get(pk=pk))
                except SlotUnavailable:
                    # Moved between our read and our compare-and-set: the citizen sees the new
                    # time and books it (never the old time on a moved slot).
                    book(Slot.objects.get(pk=pk))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=reconcile), threading.Thread(target=citizens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and not errors, errors

    snapshot.refresh_from_db()
    assert snapshot.status == "done", snapshot.error
    wanted = {e["identifier"][0]["value"]: e["start"] for e in moved}
    for slot in Slot.objects.filter(pk__in=ids[rounds::3]):
        assert slot.status == Slot.Status.BOOKED
        events = list(OutboxEvent.objects.filter(slot=slot).order_by("pk").values_list("kind", flat=True))
        booked_at = events.index("appointment.booked")
        # Nothing changed the slot after its booking.
        assert "slot.updated" not in events[booked_at:], events
        if _z(slot.start) != wanted[slot.external_id]:
            # Booked before the move: kept where the citizen chose it, and the clinic is told.
            assert SyncConflict.objects.filter(
                slot=slot, kind=SyncConflict.Kind.BOOKED_SLOT_CHANGED, status="open"
            ).exists()
    for slot in Slot.objects.filter(pk__in=ids).exclude(pk__in=ids[rounds::3]):
        assert (slot.status, _z(slot.start)) == (Slot.Status.FREE, wanted[slot.external_id])
    counts = snapshot.counts
    assert counts["updated"] + counts["conflicts"] == COUNT
    assert counts["conflicts"] == SyncConflict.objects.filter(snapshot=snapshot).count()
