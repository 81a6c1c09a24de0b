"""The phone channel: a receptionist finds a caller by NAM, books, moves and cancels for them, and
marks arrivals and no-shows, through the same booking services as every other channel."""

import logging
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from booking.models import Appointment, Reason, Slot
from booking.services import appointment_book
from clinics.models import ClinicMembership, PhoneBookingNote, StaffAuditEvent
from clinics.views import PHONE_CALLER_KEY
from tests.clinics.conftest import make_staff, sign_in
from tests.factories import CitizenFactory, ClinicFactory, RoleFactory, SlotFactory

pytestmark = pytest.mark.django_db


def phone_url(clinic) -> str:
    return reverse("clinics:phone", args=[clinic.pk])


def book_url(clinic) -> str:
    return reverse("clinics:phone_book", args=[clinic.pk])


def appointment_url(name: str, clinic, appointment) -> str:
    return reverse(f"clinics:{name}", args=[clinic.pk, appointment.pk])


@pytest.fixture
def caller():
    return CitizenFactory(first_name="Rosalie", last_name="Bouchard")


@pytest.fixture
def slots(world):
    return [SlotFactory(role=world.role_a) for _ in range(4)]


def find(client, clinic, nam):
    return client.post(phone_url(clinic), {"action": "find", "nam": nam})


def staff_book(slot, citizen, user=None, **kwargs) -> Appointment:
    return appointment_book(
        slot_id=slot.pk,
        citizen=citizen,
        reason=Reason.FOLLOW_UP,
        channel=Appointment.Channel.CLINIC_AGENDA,
        booked_by_user=user,
        **kwargs,
    )


# --- finding the caller ----------------------------------------------------------------------------


def test_a_valid_nam_finds_the_caller_and_shows_name_birth_date_and_appointments(
    world, client_as, caller, slots
):
    upcoming = staff_book(slots[0], caller)
    client = client_as("receptionist_a")
    response = find(client, world.clinic_a, caller.nam.lower()[:4] + " " + caller.nam[4:])
    assert response.status_code == 302
    assert response["Location"] == phone_url(world.clinic_a)
    page = client.get(response["Location"])
    html = page.content.decode()
    assert "Rosalie Bouchard" in html
    assert "14 mars 1985" in html
    assert upcoming.reference in html
    assert caller.nam not in html


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Entrez votre numéro d’assurance maladie"),
        ("TREM 5551", "4 lettres et 8 chiffres"),
        ("TREM 5513 3214", "chiffres de la date de naissance"),
    ],
)
def test_a_malformed_nam_gets_the_citizen_forms_message(world, client_as, typed, message):
    response = find(client_as("receptionist_a"), world.clinic_a, typed)
    assert response.status_code == 422
    assert message.replace("’", "'") in response.content.decode().replace("’", "'").replace("&#x27;", "'")
    assert PHONE_CALLER_KEY not in client_as("receptionist_a").session


def test_an_unknown_nam_gets_a_generic_message_and_nothing_is_kept(world, client_as):
    client = client_as("receptionist_a")
    response = find(client, world.clinic_a, "ZZZZ 8501 1499")
    assert response.status_code == 422
    assert "Aucune personne assurée" in response.content.decode()
    assert PHONE_CALLER_KEY not in client.session
    assert not StaffAuditEvent.objects.filter(purpose="phone").exists()


def test_each_page_that_shows_the_caller_writes_one_audit_row(world, client_as, caller):
    client = client_as("receptionist_a")
    find(client, world.clinic_a, caller.nam)
    client.get(phone_url(world.clinic_a))
    client.get(phone_url(world.clinic_a))
    rows = StaffAuditEvent.objects.filter(purpose="phone", resource_type="Citizen", resource_id=caller.pk)
    assert rows.count() == 2
    assert set(rows.values_list("user_id", "clinic_id")) == {(world.receptionist_a.pk, world.clinic_a.pk)}


def test_the_caller_is_kept_for_this_clinic_only_and_for_a_short_time(world, client_as, caller):
    other = ClinicFactory(name="Clinique C")
    ClinicMembership.objects.create(
        user=world.receptionist_a, clinic=other, role=ClinicMembership.Role.RECEPTIONIST
    )
    client = client_as("receptionist_a")
    find(client, world.clinic_a, caller.nam)
    assert "Rosalie" not in client.get(phone_url(other)).content.decode()
    assert client.session[PHONE_CALLER_KEY]["citizen"] == caller.pk
    session = client.session
    session[PHONE_CALLER_KEY] = {**session[PHONE_CALLER_KEY], "until": 0}
    session.save()
    assert "Rosalie" not in client.get(phone_url(world.clinic_a)).content.decode()


def test_no_nam_in_urls_locations_or_logs(world, client_as, caller, slots, caplog):
    client = client_as("receptionist_a")
    caplog.set_level(logging.DEBUG)
    responses = [find(client, world.clinic_a, caller.nam)]
    responses.append(client.post(book_url(world.clinic_a), {"slot": slots[0].pk, "reason": Reason.FOLLOW_UP}))
    appointment = Appointment.objects.get(citizen=caller)
    responses.append(
        client.post(appointment_url("appointment_move", world.clinic_a, appointment), {"slot": slots[1].pk})
    )
    moved = Appointment.objects.get(citizen=caller, status=Appointment.Status.BOOKED)
    responses.append(client.post(appointment_url("appointment_cancel", world.clinic_a, moved)))
    for response in responses:
        assert response.status_code == 302
        assert caller.nam not in response["Location"]
        assert caller.nam not in response.request["PATH_INFO"]
        assert caller.nam not in response.request.get("QUERY_STRING", "")
    assert caller.nam not in caplog.text


# --- booking for the caller -------------------------------------------------------------------------


def test_booking_for_the_caller_goes_through_the_clinic_agenda_channel(world, client_as, caller, slots):
    client = client_as("receptionist_a")
    find(client, world.clinic_a, caller.nam)
    response = client.post(book_url(world.clinic_a), {"slot": slots[0].pk, "reason": Reason.PERIODIC})
    assert response.status_code == 302
    appointment = Appointment.objects.get(citizen=caller)
    assert appointment.slot_id == slots[0].pk
    assert appointment.channel == Appointment.Channel.CLINIC_AGENDA
    assert appointment.booked_by_user == world.receptionist_a
    assert appointment.reason == Reason.PERIODIC
    assert Slot.objects.get(pk=slots[0].pk).status == Slot.Status.BOOKED
    assert not PhoneBookingNote.objects.exists()


def test_booking_needs_a_caller_found_first(world, client_as, slots):
    response = client_as("receptionist_a").post(
        book_url(world.clinic_a), {"slot": slots[0].pk, "reason": Reason.PERIODIC}
    )
    assert response.status_code == 302
    assert not Appointment.objects.exists()


def test_a_slot_of_another_clinic_cannot_be_booked_from_this_one(world, client_as, caller):
    other_slot = SlotFactory(role=world.role_b)
    client = client_as("receptionist_a")
    find(client, world.clinic_a, caller.nam)
    client.post(book_url(world.clinic_a), {"slot": other_slot.pk, "reason": Reason.PERIODIC})
    assert not Appointment.objects.exists()


def test_the_online_limit_does_not_block_staff_but_needs_a_reason_which_is_stored(
    world, client_as, caller, slots, settings
):
    settings.BOOKING_MAX_ACTIVE_ONLINE = 2
    for slot in slots[:2]:
        appointment_book(slot_id=slot.pk, citizen=caller, reason=Reason.FOLLOW_UP, channel="portal")
    client = client_as("receptionist_a")
    find(client, world.clinic_a, caller.nam)
    assert "Pourquoi dépasser la limite en ligne" in client.get(phone_url(world.clinic_a)).content.decode()
    client.post(book_url(world.clinic_a), {"slot": slots[2].pk, "reason": Reason.FOLLOW_UP})
    assert Appointment.objects.filter(citizen=caller).count() == 2  # refused without a reason
    client.post(
        book_url(world.clinic_a),
        {"slot": slots[2].pk, "reason": Reason.FOLLOW_UP, "over_limit_reason": "Suivi post-opératoire"},
    )
    appointment = Appointment.objects.get(slot=slots[2])
    note = PhoneBookingNote.objects.get(appointment=appointment)
    assert (note.reason, note.by, note.clinic) == (
        "Suivi post-opératoire",
        world.receptionist_a,
        world.clinic_a,
    )


def test_a_slot_taken_meanwhile_answers_409_with_the_next_free_times(world, client_as, caller, slots):
    client = client_as("receptionist_a")
    find(client, world.clinic_a, caller.nam)
    staff_book(slots[0], CitizenFactory(first_name="Autre"))  # the portal was first
    response = client.post(book_url(world.clinic_a), {"slot": slots[0].pk, "reason": Reason.FOLLOW_UP})
    assert response.status_code == 409
    html = response.content.decode()
    for slot in slots[1:]:
        assert f'name="slot" value="{slot.pk}"' in html
    assert f'name="slot" value="{slots[0].pk}"' not in html
    assert not Appointment.objects.filter(citizen=caller).exists()


# --- moving and cancelling --------------------------------------------------------------------------


def test_moving_cancels_the_old_and_books_the_new_in_one_step(
    world, client_as, caller, slots, django_capture_on_commit_callbacks
):
    old = staff_book(slots[0], caller)
    mail.outbox.clear()
    client = client_as("receptionist_a")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            appointment_url("appointment_move", world.clinic_a, old), {"slot": slots[2].pk}
        )
    assert response.status_code == 302
    old.refresh_from_db()
    assert old.status == Appointment.Status.CANCELLED_BY_CLINIC
    assert old.cancel_reason == Appointment.CancelReason.RESCHEDULED
    new = Appointment.objects.get(citizen=caller, status=Appointment.Status.BOOKED)
    assert (new.slot_id, new.rescheduled_from_id, new.channel) == (slots[2].pk, old.pk, "agenda")
    assert new.booked_by_user == world.receptionist_a
    assert Slot.objects.get(pk=slots[0].pk).status == Slot.Status.FREE
    assert len(mail.outbox) == 1  # one confirmation of the new time
    assert mail.outbox[0].to == [caller.email]


def test_a_failed_move_leaves_the_old_appointment(world, client_as, caller, slots):
    old = staff_book(slots[0], caller)
    staff_book(slots[1], CitizenFactory(first_name="Autre"))
    response = client_as("receptionist_a").post(
        appointment_url("appointment_move", world.clinic_a, old), {"slot": slots[1].pk}
    )
    assert response.status_code == 409
    old.refresh_from_db()
    assert old.status == Appointment.Status.BOOKED
    assert Slot.objects.get(pk=slots[0].pk).status == Slot.Status.BOOKED
    assert Appointment.objects.filter(citizen=caller).count() == 1


def test_the_move_page_names_the_patient_and_audits_it(world, client_as, caller, slots):
    old = staff_book(slots[0], caller)
    response = client_as("receptionist_a").get(appointment_url("appointment_move", world.clinic_a, old))
    assert response.status_code == 200
    assert "Rosalie" in response.content.decode()
    assert StaffAuditEvent.objects.filter(purpose="phone", resource_id=caller.pk).count() == 1


def test_cancelling_by_the_clinic_emails_the_citizen(
    world, client_as, caller, slots, django_capture_on_commit_callbacks
):
    appointment = staff_book(slots[0], caller)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_as("receptionist_a").post(
            appointment_url("appointment_cancel", world.clinic_a, appointment), {"back": "phone"}
        )
    assert response["Location"] == phone_url(world.clinic_a)
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_CLINIC
    assert Slot.objects.get(pk=slots[0].pk).status == Slot.Status.FREE
    assert [m.to for m in mail.outbox] == [[caller.email]]


# --- arrived and no-show ----------------------------------------------------------------------------


def past_appointment(world, citizen, minutes_ago: int) -> Appointment:
    start = timezone.now() - timedelta(minutes=minutes_ago)
    slot = SlotFactory(role=world.role_a, start=start, end=start + timedelta(minutes=15))
    return staff_book(slot, citizen)


def test_arrived_and_noshow_from_the_agenda(world, client_as, caller):
    arrived = past_appointment(world, caller, 30)
    missed = past_appointment(world, CitizenFactory(first_name="Absent"), 60)
    client = client_as("receptionist_a")
    agenda = client.get(reverse("clinics:agenda", args=[world.clinic_a.pk])).content.decode()
    assert appointment_url("appointment_status", world.clinic_a, arrived) in agenda
    client.post(appointment_url("appointment_status", world.clinic_a, arrived), {"status": "arrived"})
    client.post(appointment_url("appointment_status", world.clinic_a, missed), {"status": "noshow"})
    arrived.refresh_from_db()
    missed.refresh_from_db()
    assert arrived.status == Appointment.Status.ARRIVED
    assert missed.status == Appointment.Status.NOSHOW
    client.post(appointment_url("appointment_status", world.clinic_a, arrived), {"status": "noshow"})
    arrived.refresh_from_db()
    assert arrived.status == Appointment.Status.ARRIVED  # arrived → no-show is not a transition


def test_a_future_appointment_cannot_be_marked_arrived(world, client_as, caller, slots):
    appointment = staff_book(slots[0], caller)
    client_as("receptionist_a").post(
        appointment_url("appointment_status", world.clinic_a, appointment), {"status": "arrived"}
    )
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED


# --- who can and cannot -----------------------------------------------------------------------------


def test_a_practitioner_cannot_use_the_phone_channel(world, client_as, caller, slots):
    appointment = staff_book(slots[0], caller)
    client = client_as("practitioner_a")
    assert client.get(phone_url(world.clinic_a)).status_code == 404
    assert find(client, world.clinic_a, caller.nam).status_code == 404
    assert client.post(appointment_url("appointment_cancel", world.clinic_a, appointment)).status_code == 404
    assert client.get(appointment_url("appointment_move", world.clinic_a, appointment)).status_code == 404
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED


def test_an_admin_of_clinic_b_reaches_neither_clinic_as_callers_nor_its_appointments(
    world, client_as, caller, slots
):
    appointment = staff_book(slots[0], caller)
    client = client_as("admin_b")
    assert find(client, world.clinic_a, caller.nam).status_code == 404
    assert PHONE_CALLER_KEY not in client.session
    for name in ("appointment_cancel", "appointment_move", "appointment_status"):
        # Through clinic B's own URLs too: the appointment belongs to clinic A.
        for clinic in (world.clinic_a, world.clinic_b):
            response = client.post(appointment_url(name, clinic, appointment), {"status": "arrived"})
            assert response.status_code == 404, (name, clinic)
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED
    assert not StaffAuditEvent.objects.filter(resource_id=caller.pk).exists()


def test_a_clinic_with_an_emr_gets_the_refusal_page(world, client_as, caller):
    world.clinic_a.emr_product = "ClinIQ"
    world.clinic_a.save(update_fields=["emr_product"])
    response = find(client_as("admin_a"), world.clinic_a, caller.nam)
    assert response.status_code == 403
    assert "clinics/emr_refused.html" in [t.name for t in response.templates]


def test_an_anonymous_visitor_is_sent_to_sign_in(world, client_as):
    response = client_as("anonymous").get(phone_url(world.clinic_a))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_an_admin_of_a_clinic_without_emr_may_book(world, caller):
    clinic = ClinicFactory(name="Clinique D")
    role = RoleFactory(clinic=clinic)
    admin = make_staff(clinic, ClinicMembership.Role.CLINIC_ADMIN)
    client = sign_in(Client(), admin)
    find(client, clinic, caller.nam)
    slot = SlotFactory(role=role)
    assert client.post(book_url(clinic), {"slot": slot.pk, "reason": Reason.URGENT}).status_code == 302
    assert Appointment.objects.get(citizen=caller).booked_by_user == admin
