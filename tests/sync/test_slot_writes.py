"""Slot writes by an EMR: create, update (If-Match), conditional update by identifier, withdraw."""

import json
from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from booking.models import OutboxEvent, Slot
from tests.factories import SlotFactory

from .conftest import FHIR

REASONS = "https://rdv-sante.quebec/fhir/CodeSystem/reason"
MODALITY = "https://rdv-sante.quebec/fhir/CodeSystem/modality"
AUDIENCE = "https://rdv-sante.quebec/fhir/StructureDefinition/slot-audience"


def _z(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def slot_body(persona, *, identifier="EMR-9", hours=72, minutes=20, **overrides):
    start = (timezone.now() + timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
    body = {
        "resourceType": "Slot",
        "schedule": {"reference": f"Schedule/{persona.role.pk}"},
        "status": "free",
        "start": _z(start),
        "end": _z(start + timedelta(minutes=minutes)),
        "serviceType": [{"coding": [{"system": REASONS, "code": "follow_up"}]}],
        "appointmentType": {"coding": [{"system": MODALITY, "code": "phone"}]},
        "extension": [{"url": AUDIENCE, "valueCode": "gmf_patients"}],
        "identifier": [
            {
                "system": f"https://rdv-sante.quebec/fhir/sid/clinic/{persona.clinic.pk}/slot",
                "value": identifier,
            }
        ],
    }
    body.update(overrides)
    return body


def _send(client, method, url, body, **headers):
    return getattr(client, method)(url, json.dumps(body), content_type="application/fhir+json", **headers)


def _issue(response):
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]


def test_an_emr_creates_a_slot_201_with_location_etag_and_one_outbox_event(fhir_a, persona_a):
    response = _send(fhir_a, "post", f"{FHIR}Slot", slot_body(persona_a))
    assert response.status_code == 201, response.json()
    slot = Slot.objects.get(external_id="EMR-9")
    assert response["Location"].endswith(f"{FHIR}Slot/{slot.pk}/_history/1")
    assert response["ETag"] == 'W/"1"'
    assert (slot.source, slot.modality, slot.audience, slot.reason_codes) == (
        "emr",
        "phone",
        "gmf_patients",
        ["follow_up"],
    )
    assert slot.end - slot.start == timedelta(minutes=20)
    events = OutboxEvent.objects.filter(slot=slot)
    assert [(e.kind, e.channel) for e in events] == [("slot.created", "emr")]


def test_client_b_cannot_create_a_slot_on_a_schedule_of_clinic_a(client, persona_a, persona_b, fhir_a):
    from .conftest import get_token

    token_b = get_token(client, persona_b)
    response = _send(
        client, "post", f"{FHIR}Slot", slot_body(persona_a), HTTP_AUTHORIZATION=f"Bearer {token_b}"
    )
    assert response.status_code == 422
    assert "not a schedule of your clinics" in _issue(response)["diagnostics"]
    assert not Slot.objects.exists()


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"resourceType": "Schedule"}, 400, "invalid"),
        ({"status": "open"}, 400, "code-invalid"),
        ({"status": "busy-unavailable"}, 422, "business-rule"),
        ({"serviceType": [{"coding": [{"system": REASONS, "code": "cosmetic"}]}]}, 400, "code-invalid"),
        ({"appointmentType": {"coding": [{"system": MODALITY, "code": "telepathy"}]}}, 400, "code-invalid"),
        ({"extension": [{"url": AUDIENCE, "valueCode": "vip"}]}, 400, "code-invalid"),
        ({"start": "2027-03-01T10:00:00"}, 400, "invalid"),
        ({"start": "tomorrow"}, 400, "invalid"),
        ({"identifier": []}, 422, "business-rule"),
        ({"identifier": [{"system": "https://elsewhere.example/slot", "value": "X"}]}, 422, "business-rule"),
        ({"schedule": {"reference": "Schedule/999999"}}, 422, "business-rule"),
    ],
)
def test_bad_slot_bodies_are_refused_with_an_operation_outcome(fhir_a, persona_a, change, status, code):
    body = slot_body(persona_a)
    body.update(change)
    response = _send(fhir_a, "post", f"{FHIR}Slot", body)
    assert response.status_code == status, response.json()
    assert _issue(response)["code"] == code
    assert not Slot.objects.exists()


def test_start_not_before_end_is_422(fhir_a, persona_a):
    body = slot_body(persona_a)
    body["end"] = body["start"]
    response = _send(fhir_a, "post", f"{FHIR}Slot", body)
    assert response.status_code == 422
    assert "before" in _issue(response)["diagnostics"]


def test_a_body_over_one_megabyte_is_413(fhir_a, persona_a):
    body = slot_body(persona_a, text={"div": "x" * (1024 * 1024)})
    response = _send(fhir_a, "post", f"{FHIR}Slot", body)
    assert response.status_code == 413
    assert _issue(response)["code"] == "too-costly"


def test_an_overlapping_slot_of_the_practitioner_is_409(fhir_a, persona_a):
    assert _send(fhir_a, "post", f"{FHIR}Slot", slot_body(persona_a)).status_code == 201
    response = _send(fhir_a, "post", f"{FHIR}Slot", slot_body(persona_a, identifier="EMR-10"))
    assert response.status_code == 409
    assert _issue(response)["code"] == "conflict"


def _conditional(persona):
    return f"{FHIR}Slot?identifier=https://rdv-sante.quebec/fhir/sid/clinic/{persona.clinic.pk}/slot|EMR-9"


def test_conditional_update_creates_then_the_same_payload_changes_nothing(fhir_a, persona_a):
    body = slot_body(persona_a)
    first = _send(fhir_a, "put", _conditional(persona_a), body)
    assert first.status_code == 201
    second = _send(fhir_a, "put", _conditional(persona_a), body)
    assert second.status_code == 200
    assert second["ETag"] == 'W/"1"'
    slot = Slot.objects.get()
    assert slot.version == 1
    assert OutboxEvent.objects.filter(slot=slot).count() == 1


def test_conditional_update_of_an_existing_slot_bumps_the_version_once(fhir_a, persona_a):
    _send(fhir_a, "put", _conditional(persona_a), slot_body(persona_a))
    response = _send(fhir_a, "put", _conditional(persona_a), slot_body(persona_a, minutes=30))
    assert response.status_code == 200
    assert response.json()["meta"]["versionId"] == "2"
    slot = Slot.objects.get()
    assert slot.version == 2
    assert slot.end - slot.start == timedelta(minutes=30)
    assert [e.kind for e in OutboxEvent.objects.filter(slot=slot).order_by("pk")] == [
        "slot.created",
        "slot.updated",
    ]
    assert OutboxEvent.objects.filter(slot=slot, kind="slot.updated").get().channel == "emr"


def test_conditional_update_of_another_clinics_identifier_is_refused(fhir_a, persona_a, persona_b):
    url = f"{FHIR}Slot?identifier=https://rdv-sante.quebec/fhir/sid/clinic/{persona_b.clinic.pk}/slot|B-1"
    response = _send(fhir_a, "put", url, slot_body(persona_a))
    assert response.status_code == 422
    assert not Slot.objects.exists()


def test_update_with_a_stale_if_match_is_412_and_changes_nothing(fhir_a, slot_a, persona_a):
    url = f"{FHIR}Slot/{slot_a.pk}"
    body = slot_body(persona_a, identifier="A-1", id=str(slot_a.pk))
    stale = _send(fhir_a, "put", url, body, HTTP_IF_MATCH='W/"7"')
    assert stale.status_code == 412
    slot_a.refresh_from_db()
    assert slot_a.version == 1
    fresh = _send(fhir_a, "put", url, body, HTTP_IF_MATCH='W/"1"')
    assert fresh.status_code == 200
    assert fresh["ETag"] == 'W/"2"'
    slot_a.refresh_from_db()
    assert slot_a.version == 2
    assert slot_a.modality == "phone"


def test_changing_a_booked_slot_is_409_and_nothing_changes(fhir_a, persona_a):
    slot = SlotFactory(role=persona_a.role, external_id="A-2", status=Slot.Status.BOOKED)
    before = (slot.start, slot.end, slot.version)
    body = slot_body(persona_a, identifier="A-2", status="busy")
    response = _send(fhir_a, "put", f"{FHIR}Slot/{slot.pk}", body)
    assert response.status_code == 409
    assert _issue(response)["code"] == "conflict"
    slot.refresh_from_db()
    assert (slot.start, slot.end, slot.version) == before
    assert not OutboxEvent.objects.exists()


def test_client_a_cannot_update_or_withdraw_client_bs_slot(fhir_a, persona_a, slot_b):
    assert _send(fhir_a, "put", f"{FHIR}Slot/{slot_b.pk}", slot_body(persona_a)).status_code == 404
    assert fhir_a.delete(f"{FHIR}Slot/{slot_b.pk}").status_code == 404
    slot_b.refresh_from_db()
    assert (slot_b.status, slot_b.version) == (Slot.Status.FREE, 1)


def test_withdrawing_a_free_slot_keeps_it_and_its_read_is_410(fhir_a, slot_a):
    response = fhir_a.delete(f"{FHIR}Slot/{slot_a.pk}")
    assert response.status_code == 204
    slot_a.refresh_from_db()
    assert (slot_a.status, slot_a.version) == (Slot.Status.CANCELLED, 2)
    assert fhir_a.get(f"{FHIR}Slot/{slot_a.pk}").status_code == 410
    assert [(e.kind, e.channel) for e in OutboxEvent.objects.filter(slot=slot_a)] == [
        ("slot.withdrawn", "emr")
    ]
    assert fhir_a.delete(f"{FHIR}Slot/{slot_a.pk}").status_code == 204  # again: nothing more
    assert OutboxEvent.objects.filter(slot=slot_a).count() == 1


def test_withdrawing_a_booked_slot_is_409(fhir_a, persona_a):
    slot = SlotFactory(role=persona_a.role, status=Slot.Status.BOOKED)
    response = fhir_a.delete(f"{FHIR}Slot/{slot.pk}")
    assert response.status_code == 409
    slot.refresh_from_db()
    assert slot.status == Slot.Status.BOOKED


def test_withdraw_with_a_stale_if_match_is_412(fhir_a, slot_a):
    assert fhir_a.delete(f"{FHIR}Slot/{slot_a.pk}", HTTP_IF_MATCH='W/"5"').status_code == 412
    slot_a.refresh_from_db()
    assert slot_a.status == Slot.Status.FREE


def test_a_write_needs_the_slot_write_scope(client, persona_a, slot_a):
    from .conftest import get_token

    token = get_token(client, persona_a, scope="system/Slot.read")
    response = client.delete(f"{FHIR}Slot/{slot_a.pk}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403
    slot_a.refresh_from_db()
    assert slot_a.status == Slot.Status.FREE
