"""The conformance kit (skeleton) and the simulated citizen stream of a sandbox.

A reference EMR client, written here against the real API with the sandbox's credentials, passes
every automated scenario; variants that skip one behaviour fail exactly that scenario. The
scenarios that need records not kept yet (412, 409, OperationOutcomes, signatures) stay ``manual``.
"""

import json
import random
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from booking.models import Appointment, OutboxEvent, Slot
from sync import conformance, feed, vendors
from sync.sandbox_stream import KEEP_BOOKED, sandbox_stream_step
from sync.tasks import sandbox_streams
from tests.clinics.conftest import client_as, world
from tests.factories import SlotFactory

from .conftest import FHIR
from .test_appointments import _post, booking_body
from .test_sandbox_isolation import _open_sandbox
from .test_slot_writes import _send, slot_body
from .test_snapshots import entry, post, snapshot_body

__all__ = ["client_as", "world"]
AUTOMATED = {s.code for s in conformance.SCENARIOS if s.check is not None}
NOT_AUTOMATED = {s.code for s in conformance.SCENARIOS if s.check is None}


@pytest.fixture(autouse=True)
def _generous_rate(settings, tmp_path):
    settings.SYNC_API_RATE = "100000/m"
    settings.SYNC_FEED_MIN_INTERVAL_SECONDS = 0
    settings.OPENDATA_ROOT = tmp_path / "opendata"


@pytest.fixture
def sandbox(db):
    return _open_sandbox("Logiciels Boréal inc.", "BorealDME")


def reference_client(sandbox, *, skip: str = "") -> None:
    """What a conforming EMR does in its sandbox; ``skip`` leaves one behaviour out."""
    fhir, persona = sandbox.fhir, sandbox.persona
    head = fhir.get(f"{FHIR}$feed").json()  # where to follow the feed from
    if skip != "publish-agenda":
        assert _send(fhir, "post", f"{FHIR}Slot", slot_body(persona, identifier="REF-1")).status_code == 201
    if skip != "conditional-update":
        url = f"{FHIR}Slot?identifier=https://rdv-sante.quebec/fhir/sid/clinic/{persona.clinic.pk}/slot|REF-2"
        assert _send(fhir, "put", url, slot_body(persona, identifier="REF-2", hours=96)).status_code == 201
        changed = slot_body(persona, identifier="REF-2", hours=96, minutes=30)
        assert _send(fhir, "put", url, changed).status_code == 200
    if skip != "snapshot" and skip != "publish-agenda":
        body = snapshot_body(1, [entry(persona, "SNAP-1", 0), entry(persona, "SNAP-2", 1)])
        response = post(fhir, persona.role, body)
        assert response.status_code == 200, response.json()
    if skip != "book":
        slot = SlotFactory(role=persona.role, start=timezone.now() + timedelta(days=5))
        created = _post(fhir, booking_body(persona, slot, sandbox.synthetic.nam, identifier="DESK-REF"))
        assert created.status_code == 201, created.json()
    # The citizen side moves: the stream books on a sandbox slot (an event the EMR did not cause).
    assert sandbox_stream_step(vendor=sandbox.vendor, rng=random.Random(1)).booked == 1
    feed.feed_relay()  # the beat's relay
    if skip != "feed":
        (following,) = [link["url"] for link in head["link"] if link["relation"] == "next"]
        response = fhir.get(following)
        assert response.status_code == 200, response.content
        assert response.json().get("entry"), response.json()


def _statuses(sandbox) -> dict[str, str]:
    return {r.code: r.status for r in conformance.conformance_report(vendor=sandbox.vendor)}


def test_nothing_is_passed_before_the_vendor_does_anything(sandbox):
    statuses = _statuses(sandbox)
    assert {statuses[c] for c in AUTOMATED} == {conformance.NOT_SEEN}
    assert {statuses[c] for c in NOT_AUTOMATED} == {conformance.MANUAL}


def test_the_reference_client_passes_every_automated_mandatory_scenario(sandbox):
    reference_client(sandbox)
    results = {r.code: r for r in conformance.conformance_report(vendor=sandbox.vendor)}
    mandatory = {c for c in AUTOMATED if results[c].mandatory}
    assert {c: results[c].status for c in mandatory} == dict.fromkeys(mandatory, conformance.PASSED)
    # Evidence names the requests seen, by id, never a person.
    assert any("create Appointment/" in line for line in results["book"].evidence)
    assert any("slot.updated" in line for line in results["conditional-update"].evidence)
    text = json.dumps([r.as_json() for r in results.values()])
    assert sandbox.synthetic.nam not in text and sandbox.synthetic.last_name not in text


@pytest.mark.parametrize("broken", ["conditional-update", "snapshot", "book", "feed"])
def test_a_client_that_skips_one_behaviour_fails_exactly_that_scenario(sandbox, broken):
    reference_client(sandbox, skip=broken)
    statuses = _statuses(sandbox)
    failing = {c for c in AUTOMATED if statuses[c] != conformance.PASSED}
    assert failing - {"webhook", "patient-search"} == {broken}


def test_activity_of_production_or_of_another_sandbox_counts_for_nothing(sandbox, fhir_a, persona_a, db):
    other = _open_sandbox("Autre éditeur", "AutreDME")
    reference_client(other)
    assert _send(fhir_a, "post", f"{FHIR}Slot", slot_body(persona_a, identifier="PROD-1")).status_code == 201
    statuses = _statuses(sandbox)
    assert {statuses[c] for c in AUTOMATED} == {conformance.NOT_SEEN}


def test_the_report_goes_with_a_certification_request_and_the_board_sees_it(sandbox, world, client_as):
    reference_client(sandbox)
    version = vendors.version_declare(vendor=sandbox.vendor, version="7.0")
    vendors.version_request_certification(vendor=sandbox.vendor, version_id=version.pk)
    version.refresh_from_db()
    stored = {r["code"]: r["status"] for r in version.evidence["results"]}
    assert stored["book"] == conformance.PASSED and stored["desk-booking-409"] == conformance.MANUAL

    page = client_as("board_admin").get(reverse("vendors:board_version", args=[version.pk])).content.decode()
    assert "Réserver un rendez-vous à partir du DME" in page and "create Appointment/" in page


# --- the simulated citizen stream ----------------------------------------------------------------------


def test_the_stream_books_public_sandbox_slots_for_synthetic_citizens_through_the_outbox(sandbox):
    for i in range(6):
        SlotFactory(role=sandbox.persona.role, start=timezone.now() + timedelta(days=4, hours=i))
    production = SlotFactory(start=timezone.now() + timedelta(days=4))

    steps = [sandbox_stream_step(vendor=sandbox.vendor, rng=random.Random(i)) for i in range(KEEP_BOOKED + 2)]

    assert sum(s.booked for s in steps) == KEEP_BOOKED + 2
    assert sum(s.cancelled for s in steps) == 2  # past KEEP_BOOKED, the oldest is cancelled
    rows = Appointment.objects.all()
    assert all(a.citizen.is_synthetic and a.clinic.is_sandbox and a.channel == "portal" for a in rows)
    assert rows.filter(status="booked").count() == KEEP_BOOKED
    booked_events = OutboxEvent.objects.filter(kind="appointment.booked", clinic=sandbox.persona.clinic)
    assert booked_events.count() == KEEP_BOOKED + 2
    assert rows.filter(status="cancelled_by_citizen").count() == 2
    production.refresh_from_db()
    assert production.status == Slot.Status.FREE


def test_the_beat_task_runs_every_approved_sandbox_and_nothing_else(sandbox, db):
    SlotFactory(role=sandbox.persona.role, start=timezone.now() + timedelta(days=4))
    SlotFactory(start=timezone.now() + timedelta(days=4))
    assert sandbox_streams() >= 1
    assert {a.clinic_id for a in Appointment.objects.all()} <= set(
        sandbox.vendor.sandbox_clinics.values_list("pk", flat=True)
    )
