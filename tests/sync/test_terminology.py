"""CodeSystem and ValueSet: our vocabularies, public and read-only, and every code the API sends
is in the CodeSystem it names."""

import pytest

from booking.models import Appointment, Audience, Modality, Reason
from sync.fhir import resources, task

from .conftest import FHIR

SYSTEMS = {
    "reason": (resources.REASON_SYSTEM, set(Reason.values)),
    "modality": (resources.MODALITY_SYSTEM, set(Modality.values)),
    "audience": (resources.AUDIENCE_SYSTEM, set(Audience.values)),
    "cancel-reason": (resources.CANCEL_REASON_SYSTEM, set(Appointment.CancelReason.values)),
    "sync-conflict": (
        task.CONFLICT_SYSTEM,
        {"booked_slot_removed", "booked_slot_changed", "desk_booking_refused"},
    ),
    "sync-conflict-resolution": (task.RESOLUTION_SYSTEM, {"keep", "move", "cancel"}),
}


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_each_code_system_is_complete_and_bilingual(client, db, name):
    url, codes = SYSTEMS[name]
    response = client.get(f"{FHIR}CodeSystem/{name}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    assert (body["resourceType"], body["id"], body["url"], body["content"]) == (
        "CodeSystem",
        name,
        url,
        "complete",
    )
    assert {c["code"] for c in body["concept"]} == codes and body["count"] == len(codes)
    for concept in body["concept"]:
        languages = {d["language"]: d["value"] for d in concept["designation"]}
        assert set(languages) == {"fr-CA", "en"} and all(languages.values())
        assert concept["display"] == languages["fr-CA"]
    value_set = client.get(f"{FHIR}ValueSet/{name}").json()
    assert value_set["resourceType"] == "ValueSet" and value_set["url"] == body["valueSet"]
    assert value_set["compose"] == {"include": [{"system": url}]}


def test_reason_labels_are_translated(client, db):
    body = client.get(f"{FHIR}CodeSystem/reason").json()
    concept = next(c for c in body["concept"] if c["code"] == Reason.FOLLOW_UP)
    languages = {d["language"]: d["value"] for d in concept["designation"]}
    assert languages["fr-CA"] != languages["en"]


def test_search_by_url_and_id_and_unknown_parameters_refused(client, db):
    everything = client.get(f"{FHIR}CodeSystem").json()
    assert everything["type"] == "searchset" and everything["total"] >= len(SYSTEMS)
    by_url = client.get(f"{FHIR}CodeSystem", {"url": resources.AUDIENCE_SYSTEM}).json()
    assert [e["resource"]["id"] for e in by_url["entry"]] == ["audience"]
    value_sets = client.get(f"{FHIR}ValueSet", {"url": f"{resources.BASE}/ValueSet/modality"}).json()
    assert [e["resource"]["id"] for e in value_sets["entry"]] == ["modality"]
    assert client.get(f"{FHIR}ValueSet", {"_id": "reason,audience"}).json()["total"] == 2
    refused = client.get(f"{FHIR}CodeSystem", {"code": "urgent"})
    assert refused.status_code == 400 and refused.json()["issue"][0]["code"] == "not-supported"
    missing = client.get(f"{FHIR}CodeSystem/nothing")
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"


def test_every_slot_code_sent_is_published(fhir_a, slot_a, client):
    slot = fhir_a.get(f"{FHIR}Slot/{slot_a.pk}").json()
    published = {}
    for entry in client.get(f"{FHIR}CodeSystem").json()["entry"]:
        published[entry["resource"]["url"]] = {c["code"] for c in entry["resource"]["concept"]}
    codings = [c for s in slot["serviceType"] for c in s["coding"]] + slot["appointmentType"]["coding"]
    for coding in codings:
        assert coding["code"] in published[coding["system"]]
    (audience,) = [e for e in slot["extension"] if e["url"] == resources.AUDIENCE_EXTENSION]
    assert audience["valueCode"] in published[resources.AUDIENCE_SYSTEM]


def test_the_capability_statement_lists_them_read_only(client, db):
    statement = client.get(f"{FHIR}metadata").json()
    entries = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for kind in ("CodeSystem", "ValueSet"):
        assert {i["code"] for i in entries[kind]["interaction"]} == {"read", "search-type"}
        assert {p["name"] for p in entries[kind]["searchParam"]} == {"url", "_id"}
