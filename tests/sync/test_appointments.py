"""Appointments through the FHIR API: read and search (audited), desk bookings, status updates."""

import json
import logging

import pytest
from django.core import mail

from booking.models import Appointment, OutboxEvent, Slot
from booking.services import appointment_book
from sync.models import AuditEvent, EmrClient
from tests.factories import CitizenFactory, SlotFactory

from .conftest import FHIR, get_token

NAM_SYSTEM = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-qc-patient-healthcare-id"
REASONS = "https://rdv-sante.quebec/fhir/CodeSystem/reason"


def _issue(response):
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]


def _client_of(persona):
    return EmrClient.objects.get(application__client_id=persona.client_id)


def booking_body(persona, slot, nam, *, identifier="DESK-1", **overrides):
    body = {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot.pk}"}],
        "start": slot.start.isoformat(),
        "end": slot.end.isoformat(),
        "appointmentType": {"coding": [{"system": REASONS, "code": "follow_up"}]},
        "participant": [
            {
                "actor": {"type": "Patient", "identifier": {"system": NAM_SYSTEM, "value": nam}},
                "status": "accepted",
            },
            {"actor": {"reference": f"PractitionerRole/{persona.role.pk}"}, "status": "accepted"},
        ],
        "identifier": [
            {
                "system": f"https://rdv-sante.quebec/fhir/sid/emr/{_client_of(persona).product_id}/appointment",
                "value": identifier,
            }
        ],
    }
    body.update(overrides)
    return body


def _post(client, body, **headers):
    return client.post(
        f"{FHIR}Appointment", json.dumps(body), content_type="application/fhir+json", **headers
    )


def _put(client, pk, body, **headers):
    return client.put(
        f"{FHIR}Appointment/{pk}", json.dumps(body), content_type="application/fhir+json", **headers
    )


@pytest.fixture
def citizen(db):
    return CitizenFactory(email="patient@example.org")


@pytest.fixture
def booked_a(persona_a, citizen):
    slot = SlotFactory(role=persona_a.role)
    return appointment_book(
        slot_id=slot.pk, citizen=citizen, reason="urgent", channel=Appointment.Channel.PORTAL
    )


def test_an_appointment_reads_minimal_with_its_version_and_one_audit_row(
    fhir_a, persona_a, booked_a, citizen
):
    response = fhir_a.get(f"{FHIR}Appointment/{booked_a.pk}")
    assert response.status_code == 200
    body = response.json()
    assert response["ETag"] == 'W/"1"'
    assert body["status"] == "booked"
    assert body["slot"] == [{"reference": f"Slot/{booked_a.slot_id}"}]
    assert body["identifier"] == [
        {"system": "https://rdv-sante.quebec/fhir/sid/appointment", "value": booked_a.reference}
    ]
    actors = [p["actor"]["reference"] for p in body["participant"]]
    assert actors == [
        f"PractitionerRole/{persona_a.role.pk}",
        f"Practitioner/{persona_a.role.practitioner_id}",
        f"Location/{persona_a.clinic.pk}",
        f"Patient/{citizen.pk}",
    ]
    assert all("display" not in p["actor"] for p in body["participant"])
    text = response.content.decode()
    for secret in (citizen.nam, citizen.last_name, citizen.first_name, citizen.email):
        assert secret not in text
    assert body["appointmentType"]["coding"][0]["code"] == "urgent"
    (audit,) = AuditEvent.objects.all()
    assert (audit.action, audit.resource_type, audit.resource_id, audit.purpose) == (
        "read",
        "Appointment",
        booked_a.pk,
        "emr-sync",
    )
    assert audit.emr_client == _client_of(persona_a)


def test_client_b_cannot_read_or_find_client_as_appointment(client, persona_b, booked_a):
    token = get_token(client, persona_b)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get(f"{FHIR}Appointment/{booked_a.pk}", **auth).status_code == 404
    assert client.get(f"{FHIR}Appointment", **auth).json()["total"] == 0
    assert not AuditEvent.objects.exists()


def test_search_filters_and_writes_one_audit_row_per_appointment_returned(fhir_a, persona_a, booked_a):
    other = appointment_book(
        slot_id=SlotFactory(role=persona_a.role).pk,
        citizen=CitizenFactory(),
        reason="follow_up",
        channel=Appointment.Channel.PORTAL,
    )
    bundle = fhir_a.get(f"{FHIR}Appointment", {"_count": "1"}).json()
    assert bundle["total"] == 2
    assert AuditEvent.objects.filter(action="search").count() == 1
    assert fhir_a.get(f"{FHIR}Appointment", {"slot": f"Slot/{other.slot_id}"}).json()["entry"][0]["resource"][
        "id"
    ] == str(other.pk)
    ref = f"https://rdv-sante.quebec/fhir/sid/appointment|{booked_a.reference}"
    assert fhir_a.get(f"{FHIR}Appointment", {"identifier": ref}).json()["total"] == 1
    assert fhir_a.get(f"{FHIR}Appointment", {"status": "cancelled"}).json()["total"] == 0
    assert AuditEvent.objects.filter(action="search").count() == 1 + 1 + 1
    assert fhir_a.get(f"{FHIR}Appointment", {"status": "open"}).status_code == 400


def test_search_by_patient_is_not_supported(fhir_a, booked_a):
    response = fhir_a.get(f"{FHIR}Appointment", {"patient": "Patient/1"})
    assert response.status_code == 400
    assert _issue(response)["code"] == "not-supported"


def test_an_emr_books_at_the_desk_and_a_retry_returns_the_first_appointment(
    fhir_a, persona_a, citizen, caplog
):
    slot = SlotFactory(role=persona_a.role)
    caplog.set_level(logging.DEBUG)
    first = _post(fhir_a, booking_body(persona_a, slot, citizen.nam))
    assert first.status_code == 201, first.json()
    assert first["Location"].endswith("/_history/1")
    body = first.json()
    appointment = Appointment.objects.get()
    assert (appointment.channel, appointment.external_id, appointment.citizen) == ("emr", "DESK-1", citizen)
    assert body["identifier"][1]["value"] == "DESK-1"
    retry = _post(fhir_a, booking_body(persona_a, slot, citizen.nam))
    assert retry.status_code == 200
    assert retry.json()["id"] == body["id"]
    assert Appointment.objects.count() == 1
    assert OutboxEvent.objects.filter(kind="appointment.booked", channel="emr").count() == 1
    assert AuditEvent.objects.filter(action="create").count() == 2
    for response in (first, retry):
        assert citizen.nam not in response.content.decode()
    assert citizen.nam not in caplog.text
    slot.refresh_from_db()
    assert (slot.status, slot.version) == (Slot.Status.BOOKED, 2)


def test_an_emr_booking_of_a_taken_slot_is_409(fhir_a, persona_a, booked_a):
    other = CitizenFactory()
    response = _post(fhir_a, booking_body(persona_a, booked_a.slot, other.nam))
    assert response.status_code == 409
    assert _issue(response)["code"] == "conflict"
    assert Appointment.objects.count() == 1


def test_an_unknown_nam_is_422_without_repeating_it(fhir_a, persona_a):
    slot = SlotFactory(role=persona_a.role)
    response = _post(fhir_a, booking_body(persona_a, slot, "ZZZZ99123199"))
    assert response.status_code == 422
    assert "ZZZZ" not in response.content.decode()
    assert not Appointment.objects.exists()


def test_client_b_cannot_book_client_as_slot(client, persona_a, persona_b, citizen):
    slot = SlotFactory(role=persona_a.role)
    token = get_token(client, persona_b)
    response = _post(client, booking_body(persona_b, slot, citizen.nam), HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 422
    assert not Appointment.objects.exists()


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"status": "confirmed"}, 400),
        ({"status": "proposed"}, 422),
        ({"participant": [{"status": "accepted"}]}, 422),  # app-1
        ({"end": None}, 422),  # app-2 (end removed below)
        ({"cancelationReason": {"text": "x"}}, 422),  # app-4
        ({"identifier": []}, 422),
        ({"appointmentType": {"coding": [{"system": REASONS, "code": "spa"}]}}, 400),
        ({"slot": [{"reference": "Schedule/1"}]}, 400),
    ],
)
def test_bad_bookings_are_refused_with_an_operation_outcome(fhir_a, persona_a, citizen, change, status):
    slot = SlotFactory(role=persona_a.role)
    body = booking_body(persona_a, slot, citizen.nam)
    body.update(change)
    if change.get("end", "") is None:
        del body["end"]
    response = _post(fhir_a, body)
    assert response.status_code == status, response.json()
    assert response.json()["resourceType"] == "OperationOutcome"
    assert not Appointment.objects.exists()


def _status_body(appointment, status, **extra):
    return {
        "resourceType": "Appointment",
        "id": str(appointment.pk),
        "status": status,
        "start": appointment.start.isoformat(),
        "end": appointment.end.isoformat(),
        "participant": [{"actor": {"reference": f"Patient/{appointment.citizen_id}"}, "status": "accepted"}],
        **extra,
    }


def test_valid_status_transitions_bump_the_version_once_each(fhir_a, booked_a):
    for status, version in (("arrived", 2), ("fulfilled", 3)):
        response = _put(
            fhir_a, booked_a.pk, _status_body(booked_a, status), HTTP_IF_MATCH=f'W/"{version - 1}"'
        )
        assert response.status_code == 200, response.json()
        assert response["ETag"] == f'W/"{version}"'
    again = _put(fhir_a, booked_a.pk, _status_body(booked_a, "fulfilled"))
    assert again.status_code == 200
    booked_a.refresh_from_db()
    assert (booked_a.status, booked_a.version) == ("fulfilled", 3)
    kinds = list(
        OutboxEvent.objects.filter(appointment=booked_a, channel="emr").values_list("kind", flat=True)
    )
    assert sorted(kinds) == ["appointment.arrived", "appointment.fulfilled"]
    assert AuditEvent.objects.filter(action="update").count() == 3


def test_invalid_transitions_are_422_and_a_stale_if_match_is_412(fhir_a, booked_a):
    assert _put(fhir_a, booked_a.pk, _status_body(booked_a, "fulfilled")).status_code == 422
    assert _put(fhir_a, booked_a.pk, _status_body(booked_a, "proposed")).status_code == 422
    stale = _put(fhir_a, booked_a.pk, _status_body(booked_a, "arrived"), HTTP_IF_MATCH='W/"9"')
    assert stale.status_code == 412
    booked_a.refresh_from_db()
    assert (booked_a.status, booked_a.version) == ("booked", 1)


def test_client_b_cannot_update_client_as_appointment(client, persona_b, booked_a):
    token = get_token(client, persona_b)
    response = _put(
        client, booked_a.pk, _status_body(booked_a, "arrived"), HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 404
    booked_a.refresh_from_db()
    assert booked_a.status == "booked"


def test_a_cancellation_by_the_clinic_frees_the_slot_and_emails_the_citizen(
    fhir_a, booked_a, citizen, django_capture_on_commit_callbacks
):
    body = _status_body(
        booked_a,
        "cancelled",
        cancelationReason={
            "coding": [{"system": "https://rdv-sante.quebec/fhir/CodeSystem/cancel-reason", "code": "other"}]
        },
    )
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = _put(fhir_a, booked_a.pk, body, HTTP_IF_MATCH='W/"1"')
    assert response.status_code == 200, response.json()
    resource = response.json()
    assert resource["status"] == "cancelled"
    assert {c["code"] for c in resource["cancelationReason"]["coding"]} == {"other", "prov"}
    booked_a.refresh_from_db()
    assert booked_a.status == Appointment.Status.CANCELLED_BY_CLINIC
    booked_a.slot.refresh_from_db()
    assert booked_a.slot.status == Slot.Status.FREE
    assert [m.to for m in mail.outbox] == [[citizen.email]]
    assert OutboxEvent.objects.get(kind="appointment.cancelled").channel == "emr"


def test_appointment_writes_need_the_write_scope(client, persona_a, booked_a):
    token = get_token(client, persona_a, scope="system/Appointment.read")
    response = _put(
        client, booked_a.pk, _status_body(booked_a, "arrived"), HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 403
