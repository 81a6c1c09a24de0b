"""Open data in the SMART Scheduling Links format: the $bulk-publish manifest and its NDJSON files,
written by the task (never per request), served with Cache-Control; free public slots only."""

import io
import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import resolve
from django.utils import timezone

from booking.models import Audience, Reason
from booking.services import appointment_book, slot_hold
from booking.tasks import opendata_publish
from tests.factories import CitizenFactory, ClinicFactory, RegionFactory, RoleFactory, SlotFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _opendata_root(settings, tmp_path):
    settings.OPENDATA_ROOT = tmp_path / "opendata"


def _in(days: float, **fields):
    start = timezone.now().replace(second=0, microsecond=0) + timedelta(days=days)
    return SlotFactory(start=start, end=start + timedelta(minutes=15), **fields)


def _read(client, url: str):
    response = client.get(urlsplit(url).path)
    assert response.status_code == 200
    # Reading a streamed file to its end closes it (the test client's closing iterator).
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body.decode()


@pytest.fixture
def published(db):
    role = RoleFactory()
    other_region = RoleFactory(
        clinic=ClinicFactory(region=RegionFactory(code="03", name_fr="Capitale-Nationale"))
    )
    slots = {
        "public": _in(2, role=role),
        "public_other_region": _in(3, role=other_region),
        "gmf_only": _in(2.1, role=role, audience=Audience.GMF_PATIENTS),
        "booked": _in(2.2, role=role),
        "held": _in(2.3, role=role),
        "past": _in(-1, role=role),
        "too_soon": _in(0.01, role=role),  # inside the clinic's one-hour notice
        "too_far": _in(45, role=role),
        "blocked": _in(2.4, role=role, status="blocked"),
    }
    appointment_book(
        slot_id=slots["booked"].pk, citizen=CitizenFactory(), reason=Reason.FOLLOW_UP, channel="agenda"
    )
    slot_hold(slot_id=slots["held"].pk, citizen=CitizenFactory())
    counts = opendata_publish()
    return slots, counts


def test_the_manifest_lists_location_schedule_and_slot_files(client, published):
    _slots, counts = published
    assert counts == {"locations": 2, "schedules": 2, "slots": 2}
    response, body = _read(client, "/donnees-ouvertes/$bulk-publish")
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "public, max-age=300"
    manifest = json.loads(body)
    assert set(manifest) == {"transactionTime", "request", "output", "error"}
    assert manifest["request"] == "http://testserver/donnees-ouvertes/$bulk-publish"
    assert manifest["transactionTime"].endswith("Z")
    assert manifest["error"] == []
    types = [entry["type"] for entry in manifest["output"]]
    assert types == ["Location", "Schedule", "Slot", "Slot"]
    for entry in manifest["output"]:
        assert entry["url"].startswith("http://testserver/donnees-ouvertes/")
        assert entry["url"].endswith(".ndjson")


def _resources(client, manifest, kind):
    out = []
    for entry in manifest["output"]:
        if entry["type"] == kind:
            response, body = _read(client, entry["url"])
            assert response["Content-Type"] == "application/fhir+ndjson"
            assert response["Cache-Control"] == "public, max-age=300"
            out += [json.loads(line) for line in body.splitlines()]
    return out


def test_the_ndjson_files_hold_valid_location_schedule_and_slot_resources(client, published):
    slots, _counts = published
    manifest = json.loads(_read(client, "/donnees-ouvertes/$bulk-publish")[1])
    locations = _resources(client, manifest, "Location")
    schedules = _resources(client, manifest, "Schedule")
    slot_rows = _resources(client, manifest, "Slot")
    for location in locations:
        assert location["resourceType"] == "Location"
        assert {"id", "name", "address", "position", "telecom"} <= set(location)
        assert location["address"]["state"] == "QC"
        assert set(location["position"]) == {"latitude", "longitude"}
    location_ids = {loc["id"] for loc in locations}
    for schedule in schedules:
        assert schedule["resourceType"] == "Schedule"
        assert (
            schedule["serviceType"][0]["coding"][0]["system"]
            == "http://terminology.hl7.org/CodeSystem/service-type"
        )
        assert [a["reference"].split("/")[1] for a in schedule["actor"]] == [schedule["id"]]
        assert schedule["id"] in location_ids
    schedule_refs = {f"Schedule/{s['id']}" for s in schedules}
    assert {row["id"] for row in slot_rows} == {str(slots["public"].pk), str(slots["public_other_region"].pk)}
    for row in slot_rows:
        assert row["resourceType"] == "Slot"
        assert row["status"] == "free"
        assert row["schedule"]["reference"] in schedule_refs
        assert row["start"].endswith("Z") and row["end"].endswith("Z") and row["start"] < row["end"]
        link = next(e["valueUrl"] for e in row["extension"] if e["url"].endswith("/booking-deep-link"))
        parts = urlsplit(link)
        assert resolve(parts.path).view_name == "booking:search"
        assert parse_qs(parts.query)["path"] == ["near"]
    # No personal data and no practitioner in any file.
    everything = json.dumps([locations, schedules, slot_rows])
    assert slots["public"].practitioner.last_name not in everything


def test_slot_files_are_split_by_health_region(client, published):
    manifest = json.loads(_read(client, "/donnees-ouvertes/$bulk-publish")[1])
    urls = [entry["url"] for entry in manifest["output"] if entry["type"] == "Slot"]
    assert [u.rsplit("/", 1)[1] for u in urls] == ["slots-03.ndjson", "slots-06.ndjson"]


def test_the_files_are_written_by_the_task_not_per_request(client, published):
    slots, _counts = published
    appointment_book(
        slot_id=slots["public"].pk, citizen=CitizenFactory(), reason=Reason.FOLLOW_UP, channel="agenda"
    )
    manifest = json.loads(_read(client, "/donnees-ouvertes/$bulk-publish")[1])
    assert len(_resources(client, manifest, "Slot")) == 2  # still the published snapshot
    opendata_publish()
    manifest = json.loads(_read(client, "/donnees-ouvertes/$bulk-publish")[1])
    assert len(_resources(client, manifest, "Slot")) == 1
    # The region left without a public free slot has its file removed and left out of the manifest.
    assert client.get("/donnees-ouvertes/slots-06.ndjson").status_code == 404


def test_nothing_is_served_before_the_first_publication(client, db):
    assert client.get("/donnees-ouvertes/$bulk-publish").status_code == 404
    assert client.get("/donnees-ouvertes/locations.ndjson").status_code == 404


def test_the_refresh_command_aggregates_and_publishes(published, settings):
    from django.core.management import call_command

    from booking.models import WeekStat

    call_command("reporting_refresh", "--full", stdout=io.StringIO())
    assert WeekStat.objects.filter(clinic__isnull=True).exists()
    assert (settings.OPENDATA_ROOT / "manifest.json").exists()
