"""Cancellation reasons: the clinic chooses one of its own when it cancels (phone page and agenda),
the citizen one of theirs; each is recorded on the appointment."""

import pytest
from django.urls import reverse

from booking.models import Appointment
from tests.clinics.test_phone import appointment_url, find, phone_url, staff_book
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, SlotFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def caller():
    return CitizenFactory(first_name="Rosalie", last_name="Bouchard")


@pytest.fixture
def slots(world):
    return [SlotFactory(role=world.role_a) for _ in range(2)]


def cancel(client, world, appointment, **data):
    return client.post(appointment_url("appointment_cancel", world.clinic_a, appointment), data)


def test_the_phone_page_offers_the_clinics_reasons_and_records_the_one_chosen(
    world, client_as, caller, slots
):
    appointment = staff_book(slots[0], caller)
    client = client_as("receptionist_a")
    find(client, world.clinic_a, caller.nam)
    html = client.get(phone_url(world.clinic_a)).content.decode()
    assert f'id="cancel-reason-{appointment.pk}"' in html
    assert "Le professionnel n’est pas disponible" in html
    assert 'value="better_time"' not in html  # the citizen's reasons are theirs
    response = cancel(client, world, appointment, reason="practitioner_away", back="phone")
    assert response["Location"] == phone_url(world.clinic_a)
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_CLINIC
    assert appointment.cancel_reason == "practitioner_away"


def test_the_agenda_offers_the_same_reasons(world, client_as, caller, slots):
    appointment = staff_book(slots[0], caller)
    day = appointment.start.astimezone(world.clinic_a.tz).date().isoformat()
    html = client_as("admin_a").get(reverse("clinics:agenda", args=[world.clinic_a.pk]), {"date": day})
    assert f'id="cancel-reason-{appointment.pk}"' in html.content.decode()
    assert "La clinique est fermée" in html.content.decode()


def test_without_a_reason_the_clinic_records_other_and_a_citizens_reason_is_refused(
    world, client_as, caller, slots
):
    client = client_as("receptionist_a")
    refused = staff_book(slots[0], caller)
    cancel(client, world, refused, reason="better_time")
    refused.refresh_from_db()
    assert refused.status == Appointment.Status.BOOKED
    plain = staff_book(slots[1], caller)
    cancel(client, world, plain)
    plain.refresh_from_db()
    assert (plain.status, plain.cancel_reason) == (Appointment.Status.CANCELLED_BY_CLINIC, "other")


def test_the_citizen_chooses_among_their_own_reasons_only(client, caller, slots):
    appointment = staff_book(slots[0], caller)
    client.post(reverse("booking:identify"), identify_payload(caller))
    page = client.get(reverse("booking:cancel", args=[appointment.pk])).content.decode()
    assert "Autre raison" in page and 'value="seen_elsewhere"' in page
    assert 'value="clinic_closed"' not in page
    response = client.post(reverse("booking:cancel", args=[appointment.pk]), {"reason": "clinic_closed"})
    assert response.status_code == 400
    response = client.post(reverse("booking:cancel", args=[appointment.pk]), {"reason": "seen_elsewhere"})
    assert response.status_code == 302
    appointment.refresh_from_db()
    assert appointment.cancel_reason == "seen_elsewhere"
