"""The clinic's EMR page: health panel, open conflicts, and each resolution (keep, move, cancel).

Conflicts are made the real way: clinic A's EMR client publishes an agenda snapshot, a citizen books
on the portal, the EMR's next snapshot drops or moves that slot. Staff sign in with password + TOTP.
"""

import json
from datetime import date, timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from booking.models import Appointment, OutboxEvent, Reason, Slot
from booking.services import appointment_book
from clinics.models import StaffAuditEvent
from sync import conflicts, feed
from sync.models import EmrClient, SyncConflict
from tests.clinics.conftest import client_as, sign_in, world
from tests.factories import CitizenFactory, SlotFactory

from .conftest import FHIR, EmrPersona, create_client, get_token
from .test_snapshots import _base, entry, snapshot_body


@pytest.fixture(autouse=True)
def _generous_rate(settings):
    settings.SYNC_API_RATE = "100000/m"
    settings.SYNC_FEED_MIN_INTERVAL_SECONDS = 0


@pytest.fixture
def emr(world):
    """Clinic A keeps its agenda in ClinIQ; its EMR client, with a token."""
    world.clinic_a.emr_product = "ClinIQ"
    world.clinic_a.save(update_fields=["emr_product"])
    client_id, secret = create_client("Vendeur A|ClinIQ", world.clinic_a)
    persona = EmrPersona(client_id, secret, world.clinic_a, world.role_a)
    fhir = Client()
    fhir.defaults["HTTP_AUTHORIZATION"] = f"Bearer {get_token(Client(), persona)}"
    return persona, fhir


def snapshot(emr, generation, entries):
    persona, fhir = emr
    response = fhir.post(
        f"{FHIR}Schedule/{persona.role.pk}/$snapshot",
        json.dumps(snapshot_body(generation, entries)),
        content_type="application/fhir+json",
    )
    assert response.status_code == 200, response.content
    return response


def conflict_made(emr, *, kind="removed", language="fr"):
    """E0 and E1 published; a citizen books E0 on the portal; the EMR then drops (or moves) E0."""
    persona, _fhir = emr
    snapshot(emr, 1, [entry(persona, "E0", 0), entry(persona, "E1", 1)])
    citizen = CitizenFactory(first_name="Ariane", last_name="Lebel", preferred_language=language)
    appointment = appointment_book(
        slot_id=Slot.objects.get(external_id="E0").pk,
        citizen=citizen,
        reason=Reason.FOLLOW_UP,
        channel="portal",
    )
    later = [entry(persona, "E1", 1)] + ([entry(persona, "E0", 4)] if kind == "changed" else [])
    snapshot(emr, 2, later)
    mail.outbox.clear()
    return SyncConflict.objects.get(status="open"), appointment


def emr_url(world):
    return reverse("sync_clinic:emr", args=[world.clinic_a.pk])


def conflict_url(world, conflict):
    return reverse("sync_clinic:conflict", args=[world.clinic_a.pk, conflict.pk])


def test_the_agenda_shows_a_notice_while_conflicts_are_open_and_the_emr_page_lists_them(
    world, emr, client_as
):
    agenda = reverse("clinics:agenda", args=[world.clinic_a.pk])
    receptionist = client_as("receptionist_a")
    assert "Résoudre les conflits" not in receptionist.get(agenda).content.decode()
    conflict, appointment = conflict_made(emr)

    page = receptionist.get(agenda).content.decode()
    assert "Résoudre les conflits" in page and emr_url(world) in page

    response = receptionist.get(emr_url(world))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Ariane Lebel" in body and conflict_url(world, conflict) in body
    health = response.context["health"]
    assert health.open_conflicts == 1 and health.clients == 1
    assert health.last_snapshot.generation == 2
    assert health.last_success_at == EmrClient.objects.get().last_success_at is not None
    # The page named the patient: one audit row for them.
    assert StaffAuditEvent.objects.filter(
        user=world.receptionist_a, purpose="emr-conflicts", resource_id=appointment.citizen_id
    ).exists()


def test_keep_closes_the_conflict_and_leaves_the_appointment_as_it_is(world, emr, client_as):
    conflict, appointment = conflict_made(emr)
    before = Appointment.objects.values().get(pk=appointment.pk)
    response = client_as("receptionist_a").post(conflict_url(world, conflict), {"resolution": "keep"})
    assert response.status_code == 302 and response["Location"] == emr_url(world)
    conflict.refresh_from_db()
    assert (conflict.status, conflict.resolution, conflict.resolved_by) == (
        "resolved",
        "keep",
        world.receptionist_a,
    )
    assert conflict.resolved_at is not None and conflict.moved_to is None
    assert Appointment.objects.values().get(pk=appointment.pk) == before
    assert mail.outbox == []
    assert StaffAuditEvent.objects.filter(
        action="resolve", purpose="emr-conflict-keep", resource_id=appointment.pk
    ).exists()
    assert conflicts.conflicts_open_count(clinic_id=world.clinic_a.pk) == 0
    # Until the EMR has it back, its next agenda disagrees again: a new conflict, not the old one.
    persona, _fhir = emr
    snapshot(emr, 3, [entry(persona, "E1", 1)])
    assert SyncConflict.objects.filter(status="open").exclude(pk=conflict.pk).count() == 1


def test_cancel_with_notice_tells_the_citizen_in_their_language_and_the_emr_through_the_feed(
    world, emr, client_as, django_capture_on_commit_callbacks
):
    conflict, appointment = conflict_made(emr, language="en")
    _persona, fhir = emr
    feed.feed_relay()
    head = fhir.get(f"{FHIR}$feed").json()
    cursor = int(head["meta"]["extension"][0]["valueString"])

    admin = client_as("admin_a")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(conflict_url(world, conflict), {"resolution": "cancel"})
    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_CLINIC
    conflict.refresh_from_db()
    assert (conflict.resolution, conflict.resolved_by) == ("cancel", world.admin_a)
    # The clinic's cancellation notice, in English, with the link to book another time.
    (message,) = mail.outbox
    assert message.to == [appointment.citizen.email]
    assert "cancelled" in message.subject.lower()
    assert "The clinic had to cancel your appointment" in message.body
    assert "/recherche/" in message.body
    # The slot the EMR dropped is not offered again: withdrawn, on the EMR's own channel.
    assert Slot.objects.get(pk=conflict.slot_id).status == Slot.Status.CANCELLED
    # The EMR reads the cancellation in its change feed (the clinic made it, not the EMR).
    feed.feed_relay()
    page = fhir.get(f"{FHIR}$feed", {"cursor": cursor}).json()
    cancelled = [
        e["resource"] for e in page["entry"] if e.get("resource", {}).get("resourceType") == "Appointment"
    ]
    assert [(r["id"], r["status"]) for r in cancelled] == [(str(appointment.pk), "cancelled")]


def test_move_books_the_proposed_slot_and_the_changed_slot_takes_the_emrs_times(
    world, emr, client_as, django_capture_on_commit_callbacks
):
    conflict, appointment = conflict_made(emr, kind="changed")
    assert conflict.kind == "booked_slot_changed"
    target = Slot.objects.get(external_id="E1")
    receptionist = client_as("receptionist_a")
    page = receptionist.get(conflict_url(world, conflict))
    assert page.status_code == 200
    assert f'name="slot" value="{target.pk}"' in page.content.decode()  # proposed: a free time

    with django_capture_on_commit_callbacks(execute=True):
        response = receptionist.post(conflict_url(world, conflict), {"resolution": "move", "slot": target.pk})
    assert response.status_code == 302
    conflict.refresh_from_db()
    new = conflict.moved_to
    assert (conflict.resolution, new.slot_id, new.citizen_id) == ("move", target.pk, appointment.citizen_id)
    assert new.status == Appointment.Status.BOOKED and new.rescheduled_from_id == appointment.pk
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_CLINIC
    # The old slot is free again, at the time the EMR gave it (2 h later), without echo to the EMR.
    old = Slot.objects.get(pk=conflict.slot_id)
    assert (old.status, old.start) == (Slot.Status.FREE, _base() + timedelta(hours=2))
    assert OutboxEvent.objects.filter(slot=old, kind="slot.updated", channel="emr").exists()
    # The citizen gets the new time (one e-mail).
    (message,) = mail.outbox
    assert message.to == [appointment.citizen.email]


def test_a_move_to_a_slot_taken_meanwhile_changes_nothing(world, emr, client_as):
    conflict, appointment = conflict_made(emr)
    target = Slot.objects.get(external_id="E1")
    appointment_book(
        slot_id=target.pk,
        citizen=CitizenFactory(first_name="Autre", birth_date=date(1970, 5, 5)),
        reason=Reason.FOLLOW_UP,
        channel="portal",
    )
    response = client_as("receptionist_a").post(
        conflict_url(world, conflict), {"resolution": "move", "slot": target.pk}
    )
    assert response.status_code == 409
    conflict.refresh_from_db()
    appointment.refresh_from_db()
    assert conflict.status == "open" and appointment.status == Appointment.Status.BOOKED
    assert Slot.objects.get(pk=conflict.slot_id).status == Slot.Status.BOOKED


def test_a_conflict_is_resolved_once(world, emr, client_as):
    conflict, appointment = conflict_made(emr)
    assert client_as("admin_a").post(conflict_url(world, conflict), {"resolution": "keep"}).status_code == 302
    second = client_as("receptionist_a").post(conflict_url(world, conflict), {"resolution": "cancel"})
    assert second.status_code == 409
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED
    conflict.refresh_from_db()
    assert (conflict.resolution, conflict.resolved_by) == ("keep", world.admin_a)


def test_practitioners_see_conflicts_but_do_not_resolve_them(world, emr, client_as):
    conflict, appointment = conflict_made(emr)
    practitioner = client_as("practitioner_a")
    page = practitioner.get(conflict_url(world, conflict))
    assert page.status_code == 200 and 'value="keep"' not in page.content.decode()
    assert practitioner.post(conflict_url(world, conflict), {"resolution": "cancel"}).status_code == 403
    conflict.refresh_from_db()
    appointment.refresh_from_db()
    assert conflict.status == "open" and appointment.status == Appointment.Status.BOOKED


def test_another_clinics_staff_cannot_see_or_resolve_clinic_as_conflicts(world, emr, client_as):
    conflict, _appointment = conflict_made(emr)
    admin_b = client_as("admin_b")
    assert admin_b.get(emr_url(world)).status_code == 404
    assert admin_b.get(conflict_url(world, conflict)).status_code == 404
    assert admin_b.post(conflict_url(world, conflict), {"resolution": "keep"}).status_code == 404
    # Nor through their own clinic's address.
    own = reverse("sync_clinic:conflict", args=[world.clinic_b.pk, conflict.pk])
    assert admin_b.get(own).status_code == 404
    assert admin_b.post(own, {"resolution": "keep"}).status_code == 404
    conflict.refresh_from_db()
    assert conflict.status == "open"


def test_a_past_appointment_can_only_be_kept(world, emr, client_as):
    conflict, appointment = conflict_made(emr)
    Appointment.objects.filter(pk=appointment.pk).update(status=Appointment.Status.FULFILLED)
    receptionist = client_as("receptionist_a")
    page = receptionist.get(conflict_url(world, conflict)).content.decode()
    assert 'value="cancel"' not in page and 'value="keep"' in page
    assert receptionist.post(conflict_url(world, conflict), {"resolution": "cancel"}).status_code == 409
    assert receptionist.post(conflict_url(world, conflict), {"resolution": "keep"}).status_code == 302


def test_signed_out_visitors_are_sent_to_sign_in(world, emr):
    conflict, _appointment = conflict_made(emr)
    response = Client().get(conflict_url(world, conflict))
    assert response.status_code == 302 and "/comptes/login/" in response["Location"]
    staff_without_second_factor = Client()
    sign_in(staff_without_second_factor, world.citizen_user)
    assert staff_without_second_factor.get(emr_url(world)).status_code == 403


def test_a_free_slot_elsewhere_is_untouched_by_the_page(world, emr, client_as):
    """Reading the page changes nothing (GET is safe)."""
    conflict, _appointment = conflict_made(emr)
    other = SlotFactory(role=world.role_a, start=_base() + timedelta(days=1))
    version = other.version
    client_as("receptionist_a").get(conflict_url(world, conflict))
    other.refresh_from_db()
    assert other.version == version
    conflict.refresh_from_db()
    assert conflict.status == "open"


__all__ = ["client_as", "world"]  # the clinic personas, reused as fixtures
