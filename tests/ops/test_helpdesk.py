"""The board's help desk: finds an appointment by confirmation reference or NAM, only with a recorded
reason, shows the minimum, audits every lookup; nobody else may use it."""

import pytest
from django.urls import reverse

from booking.models import HelpdeskLookup, Reason
from booking.services import appointment_book
from clinics.models import StaffAuditEvent
from tests.factories import CitizenFactory, SlotFactory

URL = "/soutien/"


@pytest.fixture
def booked(world):
    citizen = CitizenFactory(first_name="Zéphirine", last_name="Quimperlé", mobile="514-555-0199")
    appointment = appointment_book(
        slot_id=SlotFactory(role=world.role_a).pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal"
    )
    return appointment


def search(client, **data):
    payload = {"by": "reference", "value": "", "why": "citizen_call", "details": "Ticket 4411", **data}
    return client.post(URL, payload)


def test_by_reference_with_a_reason_shows_the_minimum_and_is_audited(client_as, world, booked):
    board = client_as("board_admin")
    assert board.get(URL).status_code == 200
    response = search(board, value=booked.reference.lower())
    assert response.status_code == 200
    html = response.content.decode()
    assert booked.reference in html and booked.clinic.name in html
    citizen = booked.citizen
    for private in (citizen.nam, citizen.first_name, citizen.last_name, citizen.email, citizen.mobile):
        assert private not in html
    lookup = HelpdeskLookup.objects.get()
    assert (lookup.user, lookup.by, lookup.why, lookup.details) == (
        world.board_admin,
        "reference",
        "citizen_call",
        "Ticket 4411",
    )
    assert lookup.appointment_ids == [booked.pk]
    audit = StaffAuditEvent.objects.get()
    assert (audit.user, audit.resource_type, audit.resource_id, audit.purpose) == (
        world.board_admin,
        "Citizen",
        citizen.pk,
        "helpdesk",
    )


def test_by_nam_lists_the_citizens_appointments(client_as, booked):
    nam = booked.citizen.nam
    response = search(
        client_as("board_admin"), by="nam", value=f"{nam[:4]} {nam[4:8]} {nam[8:]}", why="clinic_call"
    )
    assert response.status_code == 200
    assert booked.reference in response.content.decode()
    assert HelpdeskLookup.objects.get().by == "nam"
    assert nam not in str(HelpdeskLookup.objects.values().get())  # the value itself is never stored


def test_without_a_reason_nothing_is_searched_and_nothing_is_shown(client_as, booked):
    response = search(client_as("board_admin"), value=booked.reference, details="")
    assert response.status_code == 400
    assert booked.reference not in response.content.decode().replace(f'value="{booked.reference}"', "")
    assert not HelpdeskLookup.objects.exists() and not StaffAuditEvent.objects.exists()


def test_a_lookup_that_finds_nothing_is_audited_too(client_as):
    response = search(client_as("board_admin"), value="ZZZZZZZZZZ")
    assert response.status_code == 200
    assert "Aucun rendez-vous ne correspond." in response.content.decode()
    assert HelpdeskLookup.objects.get().appointment_ids == []
    assert not StaffAuditEvent.objects.exists()


@pytest.mark.parametrize("persona", ["admin_a", "receptionist_a", "admin_b", "citizen_user"])
def test_clinic_staff_and_citizen_accounts_cannot_use_it(client_as, booked, persona):
    client = client_as(persona)
    assert client.get(URL).status_code in (302, 403)
    assert search(client, value=booked.reference).status_code in (302, 403)
    assert not HelpdeskLookup.objects.exists()


def test_signed_out_visitors_are_sent_to_sign_in(client, booked):
    response = search(client, value=booked.reference)
    assert response.status_code == 302 and reverse("account_login") in response["Location"]
    assert not HelpdeskLookup.objects.exists()
