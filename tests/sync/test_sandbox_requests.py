"""The record of sandbox API requests the conformance kit reads (sync.sandbox_requests).

One row per answered request of a sandbox client, refused ones included; nothing for a production
client; never a body nor a person's data; pruned after SYNC_SANDBOX_REQUEST_DAYS.
"""

from datetime import timedelta

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from sync.models import SandboxRequest
from sync.sandbox_requests import sandbox_requests_prune
from sync.tasks import sandbox_streams

from .conftest import FHIR
from .test_patient_search import NAM_SYSTEM, form_post
from .test_sandbox_isolation import _open_sandbox
from .test_slot_writes import _send, slot_body


@pytest.fixture(autouse=True)
def _generous_rate(settings):
    settings.SYNC_API_RATE = "100000/m"
    settings.SYNC_FEED_MIN_INTERVAL_SECONDS = 0


def test_a_production_client_leaves_no_record(fhir_a, persona_a, slot_a):
    assert fhir_a.get(f"{FHIR}Slot/{slot_a.pk}").status_code == 200
    assert fhir_a.get(f"{FHIR}Slot/999999999").status_code == 404
    assert _send(fhir_a, "post", f"{FHIR}Slot", slot_body(persona_a, identifier="P-1")).status_code == 201
    assert not SandboxRequest.objects.exists()


def test_each_sandbox_request_is_one_row_with_what_was_asked_and_answered(db):
    sandbox = _open_sandbox("Logiciels Boréal inc.", "BorealDME")
    fhir, persona = sandbox.fhir, sandbox.persona
    url = f"{FHIR}Slot?identifier=https://rdv-sante.quebec/fhir/sid/clinic/{persona.clinic.pk}/slot|C-1"
    created = _send(fhir, "put", url, slot_body(persona, identifier="C-1"))
    assert created.status_code == 201
    stale = _send(
        fhir,
        "put",
        f"{FHIR}Slot/{created.json()['id']}",
        slot_body(persona, identifier="C-1") | {"id": created.json()["id"]},
        HTTP_IF_MATCH='W/"9"',
    )
    assert stale.status_code == 412
    head = fhir.get(f"{FHIR}$feed")
    assert head.status_code == 200

    rows = list(SandboxRequest.objects.order_by("pk"))
    assert [(r.method, r.interaction, r.status, r.outcome_code, r.if_match) for r in rows] == [
        ("PUT", "conditional-update", 201, "", False),
        ("PUT", "update", 412, "conflict", True),
        ("GET", "feed", 200, "", False),
    ]
    assert rows[0].identifier == "C-1" and rows[0].resource_id == int(created.json()["id"])
    assert rows[1].resource_id == int(created.json()["id"])
    assert rows[2].cursor is None and rows[2].next_cursor is not None and rows[2].entries == 0


def test_a_patient_lookup_by_nam_leaves_no_nam_in_the_record(db):
    sandbox = _open_sandbox("Logiciels Boréal inc.", "BorealDME")
    nam = sandbox.synthetic.nam
    response = form_post(sandbox.fhir, f"{FHIR}Patient/_search", {"identifier": f"{NAM_SYSTEM}|{nam}"})
    assert response.status_code == 200
    sandbox.fhir.get(f"{FHIR}Patient", {"identifier": f"{NAM_SYSTEM}|{nam}"})  # refused, NAM in the URL
    rows = SandboxRequest.objects.all()
    assert rows.count() == 2
    assert all(nam not in str(model_to_dict(r)) for r in rows)


def test_records_past_their_days_are_pruned_by_the_beat_task(db, settings):
    sandbox = _open_sandbox("Logiciels Boréal inc.", "BorealDME")
    sandbox.fhir.get(f"{FHIR}Slot/999999999")
    sandbox.fhir.get(f"{FHIR}Slot/999999998")
    old, recent = SandboxRequest.objects.order_by("pk")
    settings.SYNC_SANDBOX_REQUEST_DAYS = 30
    SandboxRequest.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=31))
    SandboxRequest.objects.filter(pk=recent.pk).update(at=timezone.now() - timedelta(days=29))

    sandbox_streams()

    assert list(SandboxRequest.objects.values_list("pk", flat=True)) == [recent.pk]
    assert sandbox_requests_prune() == 0
