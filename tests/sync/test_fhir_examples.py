"""The technical kit's example payloads (static/fhir-examples/, linked from docs/sync-api.md) are
accepted by the API as written, once the placeholder ids and the date are replaced with a sandbox's.

Placeholders: Schedule and PractitionerRole 1001, clinic (Location) 2001, Slot 3001, EMR product
4001, Task 5001, the patient's NAM, and the day 2030-03-04.
"""

import json
import random
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.staticfiles import finders
from django.utils import timezone

from sync.models import EmrClient, SyncConflict
from sync.sandbox_stream import sandbox_stream_step

from .conftest import FHIR
from .test_sandbox_isolation import _open_sandbox

EXAMPLES = Path(django_settings.BASE_DIR) / "static" / "fhir-examples"
DAY = "2030-03-04"


@pytest.fixture(autouse=True)
def _generous_rate(settings):
    settings.SYNC_API_RATE = "100000/m"


def example(name: str, sandbox, **ids: int) -> dict:
    text = (EXAMPLES / name).read_text()
    client = EmrClient.objects.get(pk=sandbox.vendor.sandbox_client_id)
    day = (timezone.now() + timedelta(days=4)).date().isoformat()
    replacements = {
        "Schedule/1001": f"Schedule/{sandbox.persona.role.pk}",
        "PractitionerRole/1001": f"PractitionerRole/{sandbox.persona.role.pk}",
        "clinic/2001/": f"clinic/{sandbox.persona.clinic.pk}/",
        "emr/4001/": f"emr/{client.product_id}/",
        "NAM-OF-A-SYNTHETIC-PATIENT": sandbox.synthetic.nam,
        DAY: day,
        **{
            f"{kind}/{placeholder}": f"{kind}/{ids[kind]}"
            for kind, placeholder in (("Slot", 3001), ("Task", 5001))
            if kind in ids
        },
    }
    for old, new in replacements.items():
        text = text.replace(old, new)
    return json.loads(text)


def send(fhir, url, body):
    return fhir.post(url, json.dumps(body), content_type="application/fhir+json")


def test_every_example_is_served_as_a_static_file():
    names = sorted(p.name for p in EXAMPLES.glob("*.json"))
    assert names == [
        "appointment.json",
        "operation-outcome-409.json",
        "schedule.json",
        "slot.json",
        "snapshot-parameters.json",
        "task-resolve-parameters.json",
    ]
    assert all(finders.find(f"fhir-examples/{name}") for name in names)
    assert all(json.loads((EXAMPLES / name).read_text())["resourceType"] for name in names)


def test_the_examples_are_accepted_by_the_api(db):
    sandbox = _open_sandbox("Logiciels Boréal inc.", "BorealDME")
    fhir = sandbox.fhir

    created = send(fhir, f"{FHIR}Slot", example("slot.json", sandbox))
    assert created.status_code == 201, created.json()
    slot_id = int(created.json()["id"])

    booked = send(fhir, f"{FHIR}Appointment", example("appointment.json", sandbox, Slot=slot_id))
    assert booked.status_code == 201, booked.json()

    snapshot = send(
        fhir,
        f"{FHIR}Schedule/{sandbox.persona.role.pk}/$snapshot",
        example("snapshot-parameters.json", sandbox),
    )
    assert snapshot.status_code == 200, snapshot.json()

    schedule = fhir.get(f"{FHIR}Schedule/{sandbox.persona.role.pk}").json()
    shown = example("schedule.json", sandbox)
    assert set(shown) <= set(schedule) and schedule["resourceType"] == "Schedule"
    assert [a["reference"].split("/")[0] for a in shown["actor"]] == [
        a["reference"].split("/")[0] for a in schedule["actor"]
    ]

    # A slot the portal took: the desk booking gets the 409 of the example, then the Task is resolved.
    taken = send(
        fhir,
        f"{FHIR}Slot",
        example("slot.json", sandbox)
        | {
            "identifier": [
                {
                    "system": f"https://rdv-sante.quebec/fhir/sid/clinic/{sandbox.persona.clinic.pk}/slot",
                    "value": "AGENDA-45",
                }
            ],
            "start": created.json()["start"].replace("T14:00", "T16:00"),
            "end": created.json()["end"].replace("T14:20", "T16:20"),
        },
    )
    assert taken.status_code == 201, taken.json()
    taken_id = int(taken.json()["id"])
    assert sandbox_stream_step(vendor=sandbox.vendor, rng=random.Random(1), slot_id=taken_id).booked == 1
    desk = example("appointment.json", sandbox, Slot=taken_id)
    desk |= {"start": taken.json()["start"], "end": taken.json()["end"]}
    desk["identifier"][0]["value"] = "DESK-7782"  # another booking (the same identifier is a retry: 200)
    refused = send(fhir, f"{FHIR}Appointment", desk)
    assert refused.status_code == 409
    outcome, shown = refused.json(), example("operation-outcome-409.json", sandbox)
    assert outcome["resourceType"] == shown["resourceType"] == "OperationOutcome"
    assert set(outcome["issue"][0]) == set(shown["issue"][0])
    assert outcome["issue"][0]["code"] == shown["issue"][0]["code"] == "conflict"

    conflict = SyncConflict.objects.get(slot_id=taken_id)
    resolved = send(
        fhir,
        f"{FHIR}Task/{conflict.pk}/$resolve",
        example("task-resolve-parameters.json", sandbox, Task=conflict.pk),
    )
    assert resolved.status_code == 200, resolved.json()
