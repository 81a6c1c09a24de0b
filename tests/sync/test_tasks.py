# ruff: noqa: F811 - pytest fixtures imported from other test modules
"""Agenda conflicts through the FHIR API: Task search and read, and POST Task/{id}/$resolve.

Conflicts are made the real way (tests/sync/test_conflict_pages.py): clinic A's EMR publishes a
snapshot, a citizen books, the EMR's next snapshot drops or moves that slot.
"""

import json
from datetime import date

import pytest
from django.core import mail
from django.test import Client

from booking.models import Appointment, Reason, Slot
from booking.services import appointment_book
from clinics.models import StaffAuditEvent
from sync.fhir import task as fhir_task
from sync.models import AuditEvent, EmrClient, SyncConflict
from tests.clinics.conftest import client_as, sign_in, world  # noqa: F401
from tests.factories import CitizenFactory, ClinicFactory, RoleFactory

from .conftest import FHIR, EmrPersona, create_client, get_token
from .test_conflict_pages import _generous_rate, conflict_made, conflict_url, emr  # noqa: F401
from .test_snapshots import snapshot_body


def resolve(fhir, conflict, resolution=None, slot=None, **extra):
    params = []
    if resolution is not None:
        params.append({"name": "resolution", "valueCode": resolution})
    if slot is not None:
        params.append({"name": "slot", "valueReference": {"reference": f"Slot/{slot}"}})
    body = {"resourceType": "Parameters", "parameter": params, **extra}
    return fhir.post(
        f"{FHIR}Task/{conflict.pk}/$resolve", json.dumps(body), content_type="application/fhir+json"
    )


def outcome(response):
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]


def test_an_open_conflict_is_a_requested_task_focused_on_the_kept_appointment(emr):
    conflict, appointment = conflict_made(emr, kind="changed")
    _persona, fhir = emr
    response = fhir.get(f"{FHIR}Task/{conflict.pk}")
    assert response.status_code == 200, response.content
    resource = response.json()
    assert resource["resourceType"] == "Task" and resource["id"] == str(conflict.pk)
    assert (resource["status"], resource["intent"]) == ("requested", "order")
    assert resource["code"]["coding"][0] == {
        "system": fhir_task.CONFLICT_SYSTEM,
        "code": "booked_slot_changed",
        "display": "Booked slot changed by the EMR",
    }
    assert resource["focus"] == {"reference": f"Appointment/{appointment.pk}"}
    assert resource["location"] == {"reference": f"Location/{conflict.clinic_id}"}
    inputs = {i["type"]["coding"][0]["code"]: i for i in resource["input"]}
    assert inputs["slot"]["valueReference"] == {"reference": f"Slot/{conflict.slot_id}"}
    assert inputs["snapshot-generation"]["valueString"] == "2"
    assert inputs["snapshot-start"]["valueDateTime"].endswith("Z")
    assert "businessStatus" not in resource and "output" not in resource
    assert resource["meta"]["versionId"] == "1"
    # No personal data: ids and times only.
    text = json.dumps(resource)
    assert appointment.citizen.last_name not in text and appointment.citizen.nam not in text


def test_the_emr_lists_its_open_conflicts_and_filters_by_status_code_and_focus(emr):
    conflict, appointment = conflict_made(emr)
    _persona, fhir = emr
    bundle = fhir.get(f"{FHIR}Task", {"status": "requested"}).json()
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    assert bundle["entry"][0]["resource"]["id"] == str(conflict.pk)
    assert fhir.get(f"{FHIR}Task", {"status": "completed"}).json()["total"] == 0
    code = f"{fhir_task.CONFLICT_SYSTEM}|booked_slot_removed"
    assert fhir.get(f"{FHIR}Task", {"code": code}).json()["total"] == 1
    assert fhir.get(f"{FHIR}Task", {"code": "booked_slot_changed"}).json()["total"] == 0
    assert fhir.get(f"{FHIR}Task", {"focus": f"Appointment/{appointment.pk}"}).json()["total"] == 1
    posted = fhir.post(
        f"{FHIR}Task/_search", "status=requested", content_type="application/x-www-form-urlencoded"
    )
    assert posted.status_code == 200 and posted.json()["total"] == 1
    bad = fhir.get(f"{FHIR}Task", {"status": "open"})
    assert bad.status_code == 400 and outcome(bad)["code"] == "code-invalid"
    assert fhir.get(f"{FHIR}Task", {"code": "no_such_kind"}).status_code == 400


def test_keep_through_the_api_closes_the_conflict_audited_on_the_emr_chain(emr, world):
    conflict, appointment = conflict_made(emr)
    persona, fhir = emr
    response = resolve(fhir, conflict, "keep")
    assert response.status_code == 200, response.content
    resource = response.json()
    assert resource["status"] == "completed" and resource["meta"]["versionId"] == "2"
    assert resource["businessStatus"]["coding"][0]["code"] == "keep"
    assert response["ETag"] == 'W/"2"'
    conflict.refresh_from_db()
    client = EmrClient.objects.get(application__client_id=persona.client_id)
    assert (conflict.status, conflict.resolution, conflict.resolved_by, conflict.resolved_by_client) == (
        "resolved",
        "keep",
        None,
        client,
    )
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED and mail.outbox == []
    assert AuditEvent.objects.filter(
        emr_client=client, action="update", resource_type="Appointment", resource_id=appointment.pk
    ).exists()
    assert not StaffAuditEvent.objects.filter(purpose__startswith="emr-conflict").exists()
    assert fhir.get(f"{FHIR}Task", {"status": "requested"}).json()["total"] == 0


def test_the_clinic_page_says_the_emr_resolved_it(emr, world, client_as):  # noqa: F811
    conflict, _appointment = conflict_made(emr)
    _persona, fhir = emr
    assert resolve(fhir, conflict, "keep").status_code == 200
    page = client_as("admin_a").get(conflict_url(world, conflict))
    assert page.status_code == 200
    assert "Vendeur A" in page.content.decode() or "ClinIQ" in page.content.decode()


def test_cancel_through_the_api_tells_the_citizen(emr, django_capture_on_commit_callbacks):
    conflict, appointment = conflict_made(emr, language="en")
    _persona, fhir = emr
    with django_capture_on_commit_callbacks(execute=True):
        response = resolve(fhir, conflict, "cancel")
    assert response.status_code == 200, response.content
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_CLINIC
    (message,) = mail.outbox
    assert message.to == [appointment.citizen.email]
    assert "The clinic had to cancel your appointment" in message.body
    # The slot the EMR dropped is not offered again.
    assert Slot.objects.get(pk=conflict.slot_id).status == Slot.Status.CANCELLED


def test_move_through_the_api_books_the_given_slot_and_tells_the_citizen(
    emr, django_capture_on_commit_callbacks
):
    conflict, appointment = conflict_made(emr, kind="changed")
    _persona, fhir = emr
    target = Slot.objects.get(external_id="E1")
    with django_capture_on_commit_callbacks(execute=True):
        response = resolve(fhir, conflict, "move", slot=target.pk)
    assert response.status_code == 200, response.content
    conflict.refresh_from_db()
    new = conflict.moved_to
    assert (new.slot_id, new.citizen_id, new.status) == (target.pk, appointment.citizen_id, "booked")
    output = response.json()["output"][0]
    assert output["valueReference"] == {"reference": f"Appointment/{new.pk}"}
    (message,) = mail.outbox
    assert message.to == [appointment.citizen.email]


def test_a_move_to_a_taken_slot_is_409_and_changes_nothing(emr):
    conflict, appointment = conflict_made(emr)
    _persona, fhir = emr
    target = Slot.objects.get(external_id="E1")
    appointment_book(
        slot_id=target.pk,
        citizen=CitizenFactory(first_name="Autre", birth_date=date(1970, 5, 5)),
        reason=Reason.FOLLOW_UP,
        channel="portal",
    )
    response = resolve(fhir, conflict, "move", slot=target.pk)
    assert response.status_code == 409 and outcome(response)["code"] == "conflict"
    conflict.refresh_from_db()
    appointment.refresh_from_db()
    assert conflict.status == "open" and appointment.status == Appointment.Status.BOOKED


def test_a_conflict_resolved_by_staff_is_409_for_the_emr(emr, world, client_as):  # noqa: F811
    conflict, appointment = conflict_made(emr)
    _persona, fhir = emr
    assert client_as("admin_a").post(conflict_url(world, conflict), {"resolution": "keep"}).status_code == 302
    response = resolve(fhir, conflict, "cancel")
    assert response.status_code == 409 and outcome(response)["code"] == "conflict"
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED
    # And the other way round: resolved by the EMR, the page refuses a second resolution.
    second, _ = conflict_made_again(emr)
    assert resolve(fhir, second, "keep").status_code == 200
    assert client_as("admin_a").post(conflict_url(world, second), {"resolution": "cancel"}).status_code == 409


def conflict_made_again(emr):
    """Another conflict on the same agenda: E1 booked, then dropped by generation 3 (empty)."""
    persona, fhir = emr
    appointment = appointment_book(
        slot_id=Slot.objects.get(external_id="E1").pk,
        citizen=CitizenFactory(first_name="Bruno", birth_date=date(1971, 3, 3)),
        reason=Reason.FOLLOW_UP,
        channel="portal",
    )
    response = fhir.post(
        f"{FHIR}Schedule/{persona.role.pk}/$snapshot",
        json.dumps(snapshot_body(3, [])),
        content_type="application/fhir+json",
    )
    assert response.status_code == 200, response.content
    return SyncConflict.objects.get(status="open", appointment=appointment), appointment


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ([], 400, "required"),
        ([{"name": "resolution", "valueCode": "drop"}], 400, "code-invalid"),
        ([{"name": "resolution", "valueCode": "move"}], 400, "required"),
        (
            [
                {"name": "resolution", "valueCode": "keep"},
                {"name": "slot", "valueReference": {"reference": "Slot/1"}},
            ],
            400,
            "invalid",
        ),
        ([{"name": "resolution", "valueCode": "keep"}, {"name": "why", "valueString": "x"}], 400, "invalid"),
    ],
)
def test_bad_resolve_bodies_are_400_and_change_nothing(emr, params, status, code):
    conflict, _appointment = conflict_made(emr)
    _persona, fhir = emr
    response = fhir.post(
        f"{FHIR}Task/{conflict.pk}/$resolve",
        json.dumps({"resourceType": "Parameters", "parameter": params}),
        content_type="application/fhir+json",
    )
    assert response.status_code == status and outcome(response)["code"] == code
    conflict.refresh_from_db()
    assert conflict.status == "open"


def test_a_move_to_another_clinics_slot_is_refused(emr):
    conflict, _appointment = conflict_made(emr)
    _persona, fhir = emr
    foreign = Slot.objects.create(
        role=(role := RoleFactory(clinic=ClinicFactory())),
        practitioner_id=role.practitioner_id,
        clinic_id=role.clinic_id,
        start=conflict.slot.start,
        end=conflict.slot.end,
        reasons=1,
    )
    response = resolve(fhir, conflict, "move", slot=foreign.pk)
    assert response.status_code in (404, 422) and response.json()["resourceType"] == "OperationOutcome"
    conflict.refresh_from_db()
    assert conflict.status == "open"


def test_another_clients_conflicts_are_not_found(emr, world):
    conflict, _appointment = conflict_made(emr)
    world.clinic_b.emr_product = "Santexa"
    world.clinic_b.save(update_fields=["emr_product"])
    other = EmrPersona(*create_client("Vendeur B|Santexa", world.clinic_b), world.clinic_b, world.role_b)
    fhir_b = Client()
    fhir_b.defaults["HTTP_AUTHORIZATION"] = f"Bearer {get_token(Client(), other)}"
    assert fhir_b.get(f"{FHIR}Task/{conflict.pk}").status_code == 404
    assert fhir_b.get(f"{FHIR}Task").json()["total"] == 0
    assert resolve(fhir_b, conflict, "cancel").status_code == 404
    conflict.refresh_from_db()
    assert conflict.status == "open"


def test_resolving_needs_the_task_write_scope(emr):
    conflict, _appointment = conflict_made(emr)
    persona, _fhir = emr
    reader = Client()
    reader.defaults["HTTP_AUTHORIZATION"] = f"Bearer {get_token(Client(), persona, 'system/Task.read')}"
    assert reader.get(f"{FHIR}Task/{conflict.pk}").status_code == 200
    response = resolve(reader, conflict, "keep")
    assert response.status_code == 403 and "system/Task.write" in outcome(response)["diagnostics"]
    nothing = Client()
    nothing.defaults["HTTP_AUTHORIZATION"] = f"Bearer {get_token(Client(), persona, 'system/Slot.read')}"
    assert nothing.get(f"{FHIR}Task").status_code == 403
    conflict.refresh_from_db()
    assert conflict.status == "open"


def test_the_capability_statement_lists_task_and_resolve(client, db):
    statement = client.get(f"{FHIR}metadata").json()
    (entry,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "Task"]
    assert {i["code"] for i in entry["interaction"]} == {"read", "search-type"}
    assert {p["name"] for p in entry["searchParam"]} >= {"_id", "status", "code", "focus"}
    assert [o["name"] for o in entry["operation"]] == ["resolve"]
