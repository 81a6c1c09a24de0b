"""``POST Schedule/{id}/$snapshot`` and ``GET Schedule/{id}/$snapshot-status/{snapshot}``.

The Schedule is a practitioner role of the client's clinics (else 404). A snapshot of at most
``snapshots.SYNC_LIMIT`` slots is reconciled in the request (200 with the counts); a larger one is
answered 202 with ``Content-Location`` (the status URL) and reconciled by the Celery task
``sync.tasks.snapshot_reconcile``. Scope: ``system/Slot.write`` to send, ``system/Slot.read`` to poll.
"""

import logging

from django.db import transaction
from django.urls import reverse
from rest_framework.request import Request
from rest_framework.response import Response

from booking import errors as booking_errors
from clinics.models import PractitionerRole

from . import snapshots
from .fhir import writes
from .fhir.errors import FhirError
from .fhir.renderers import FhirJSONParser, PlainJSONParser
from .fhir.search import RESOURCES
from .models import AgendaSnapshot
from .selectors import role_queryset
from .views import FhirView

logger = logging.getLogger(__name__)


class SnapshotBaseView(FhirView):
    resource = RESOURCES["Slot"]  # the scope: system/Slot.write (send) and system/Slot.read (status)
    interaction = "$snapshot"

    def role(self, pk: str) -> PractitionerRole:
        row = role_queryset(self.clinic_ids()).filter(pk=int(pk)).first() if pk.isdigit() else None
        if row is None:
            raise FhirError(404, "not-found", f"Schedule/{pk} is not known.")
        return row

    def status_url(self, snapshot: AgendaSnapshot) -> str:
        path = reverse("sync:snapshot-status", kwargs={"pk": snapshot.role_id, "snapshot": snapshot.pk})
        return self.request.build_absolute_uri(path)

    def summary(self, snapshot: AgendaSnapshot) -> Response:
        done = snapshot.status in (AgendaSnapshot.Status.DONE, AgendaSnapshot.Status.FAILED)
        return Response(
            snapshots.snapshot_summary(snapshot),
            status=200 if done else 202,
            headers={"Content-Location": self.status_url(snapshot)},
        )


class SnapshotFhirParser(FhirJSONParser):
    max_bytes = snapshots.MAX_BODY_BYTES


class SnapshotPlainParser(PlainJSONParser):
    max_bytes = snapshots.MAX_BODY_BYTES


class SnapshotView(SnapshotBaseView):
    parser_classes = [SnapshotFhirParser, SnapshotPlainParser]

    def post(self, request: Request, pk: str) -> Response:
        role = self.role(pk)
        with snapshots.gc_paused():  # parsing and checking 10,000 slots (see gc_paused)
            data = snapshots.snapshot_input(self.body(), role=role, clinic_ids=self.clinic_ids())
            snapshot, _retry = snapshots.snapshot_accept(emr_client=self.emr_client, data=data)
        if snapshot.status in (AgendaSnapshot.Status.DONE, AgendaSnapshot.Status.FAILED):
            return self.summary(snapshot)  # a retry of a snapshot already applied: its outcome
        if len(snapshot.entries) > snapshots.SYNC_LIMIT:
            snapshot_id = snapshot.pk
            transaction.on_commit(lambda: _enqueue(snapshot_id))
            return self.summary(snapshot)
        try:
            snapshot = snapshots.snapshot_reconcile(snapshot.pk)
        except booking_errors.Busy as exc:
            raise writes.from_booking_error(exc) from exc
        return self.summary(snapshot)


class SnapshotStatusView(SnapshotBaseView):
    def get(self, request: Request, pk: str, snapshot: str) -> Response:
        role = self.role(pk)
        row = (
            AgendaSnapshot.objects.filter(role=role, pk=int(snapshot)).first() if snapshot.isdigit() else None
        )
        if row is None:
            raise FhirError(404, "not-found", f"Snapshot {snapshot} of Schedule/{pk} is not known.")
        return self.summary(row)


def _enqueue(snapshot_id: int) -> None:
    from .tasks import snapshot_reconcile

    try:
        snapshot_reconcile.delay(snapshot_id)
    except Exception:  # noqa: BLE001 - broker down: the snapshot stays received (see docs/sync-api.md)
        logger.warning("snapshot reconciliation not enqueued", extra={"snapshot_id": snapshot_id})
