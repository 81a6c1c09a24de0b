"""Law 25 for the citizen (booking.views_privacy, booking.privacy): "my data" (the page and its JSON
file, the read audited) and closing the account (future appointments cancelled through the booking
service, waitlist withdrawn, links ended, personal data erased, signed out, a confirmation e-mail)."""

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from booking.models import Appointment, CitizenDataEvent, OutboxEvent, Reminder, Slot
from booking.privacy import account_close
from booking.services import appointment_book
from booking.waitlist.models import WaitlistRequest
from booking.waitlist.services import waitlist_request_create
from citizens.models import Citizen, Dependant, User
from clinics.audit_chain import chain_for_model, chain_verify
from tests.concurrency.conftest import run_concurrently
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, FsaFactory, SlotFactory, UserFactory

MY_DATA = "/mes-donnees/"
CLOSE = "/fermer-mon-compte/"


@pytest.fixture
def family(db):
    """A holder with an account (card linked), her child in her care, each with an appointment."""
    user = UserFactory(email="parent@example.org")
    parent = CitizenFactory(account=user, email="parent@example.org", mobile="514 555 0101")
    kid = CitizenFactory(
        first_name="Léa", birth_date=timezone.localdate() - timedelta(days=365 * 6), email=""
    )
    link = Dependant.objects.create(
        guardian=parent, citizen=kid, relationship="parent", attested_at=timezone.now(), added_by=user
    )
    own = appointment_book(slot_id=SlotFactory().pk, citizen=parent, reason="follow_up", channel="portal")
    kids = appointment_book(
        slot_id=SlotFactory().pk, citizen=kid, reason="child_0_5", channel="portal", booked_by_user=user
    )
    Reminder.objects.create(
        appointment=own,
        kind="day_before",
        channel="email",
        due_at=own.start - timedelta(days=1),
        state="sent",
        sent_at=timezone.now(),
        idempotency_key=f"r-{own.pk}",
    )
    return parent, kid, link, own, kids


def _signed_in(family) -> Client:
    client = Client()
    client.force_login(family[0].account)
    return client


def _identified(citizen) -> Client:
    client = Client()
    assert client.post("/identification/", identify_payload(citizen)).status_code == 302
    return client


# --- my data -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_page_shows_everything_and_the_post_downloads_it_as_json(family):
    parent, kid, _link, own, kids = family
    client = _signed_in(family)
    page = client.get(MY_DATA)
    html = page.content.decode()
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    assert parent.nam in html and own.reference in html and kids.reference in html and "Léa" in html
    assert "Télécharger mes données" in html

    response = client.post(MY_DATA)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"] == 'attachment; filename="rendez-vous-sante-mes-donnees.json"'
    assert "no-store" in response["Cache-Control"]
    data = json.loads(response.content)
    assert data["format"] == "rdv-sante-quebec/citizen-data"
    assert data["account"]["email"] == "parent@example.org"
    me = data["you"]
    assert me["identity"]["health_insurance_number"] == parent.nam
    assert me["notification_preferences"] == {
        "language": "fr",
        "email": parent.email,
        "mobile": "514 555 0101",
    }
    (appointment,) = me["appointments"]
    assert appointment["reference"] == own.reference and appointment["status"]["code"] == "booked"
    assert appointment["reminders"][0]["kind"]["code"] == "day_before"
    (child,) = data["dependants"]
    assert child["relationship"]["code"] == "parent"
    assert [a["reference"] for a in child["appointments"]] == [kids.reference]
    # Audited, ids only: the page read, then the download, each for both people, in the citizen chain.
    rows = list(CitizenDataEvent.objects.order_by("pk").values_list("action", "actor_id", "resource_id"))
    assert rows == [
        ("view", parent.pk, parent.pk),
        ("view", parent.pk, kid.pk),
        ("export", parent.pk, parent.pk),
        ("export", parent.pk, kid.pk),
    ]
    assert chain_verify(chain_for_model(CitizenDataEvent)).ok


@pytest.mark.django_db
def test_another_citizen_gets_only_their_own_data(family):
    parent, _kid, _link, own, kids = family
    stranger = CitizenFactory(first_name="Paul", birth_date=parent.birth_date - timedelta(days=900))
    data = json.loads(_identified(stranger).post(MY_DATA).content)
    text = json.dumps(data)
    assert data["you"]["identity"]["health_insurance_number"] == stranger.nam
    assert parent.nam not in text and own.reference not in text and kids.reference not in text
    assert data["dependants"] == [] and data["account"] is None


@pytest.mark.django_db
def test_a_dependant_sees_their_own_data_and_who_acts_for_them_not_the_guardians(family):
    parent, kid, _link, own, kids = family
    data = json.loads(_identified(kid).post(MY_DATA).content)
    text = json.dumps(data)
    assert [a["reference"] for a in data["you"]["appointments"]] == [kids.reference]
    assert parent.nam not in text and own.reference not in text and parent.email not in text
    assert [link["relationship"]["code"] for link in data["acting_for_you"]] == ["parent"]


@pytest.mark.django_db
def test_nobody_identified_is_sent_to_identify_and_nothing_is_audited(client):
    assert client.get(MY_DATA)["Location"].startswith(reverse("booking:identify"))
    assert client.post(MY_DATA).status_code == 302
    assert not CitizenDataEvent.objects.exists()


@pytest.mark.django_db
def test_the_page_is_in_english_for_an_english_speaker(family):
    client = _signed_in(family)
    html = client.get(MY_DATA, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Download my data (JSON file)" in html
    data = json.loads(client.post(MY_DATA, HTTP_ACCEPT_LANGUAGE="en").content)
    assert data["you"]["appointments"][0]["reason"]["label"] == "Follow-up"


# --- closing -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_confirmation_page_says_what_will_happen(family):
    _parent, _kid, _link, own, _kids = family
    html = _signed_in(family).get(CLOSE).content.decode()
    assert "Fermer mon compte" in html and own.clinic.name in html
    assert 'name="password"' in html and 'name="confirm"' in html


@pytest.mark.django_db
def test_closing_needs_the_box_and_the_password(family):
    parent, *_ = family
    client = _signed_in(family)
    assert client.post(CLOSE, {"password": "correct horse battery"}).status_code == 400
    assert client.post(CLOSE, {"confirm": "on", "password": "wrong"}).status_code == 400
    parent.refresh_from_db()
    assert parent.account_id is not None and parent.email
    assert Appointment.objects.filter(citizen=parent, status="booked").count() == 1


@pytest.mark.django_db
def test_closing_cancels_frees_erases_ends_links_and_signs_out_everywhere(
    family, django_capture_on_commit_callbacks
):
    parent, kid, _link, own, kids = family
    user = parent.account
    elsewhere = _signed_in(family)  # another browser signed in to the same account
    FsaFactory()
    waiting = waitlist_request_create(
        citizen=parent,
        path="near",
        reason="follow_up",
        fsa="H2X",
        date_from=timezone.localdate(),
        date_to=timezone.localdate() + timedelta(days=10),
    )
    slot_version = Slot.objects.get(pk=own.slot_id).version
    client = _signed_in(family)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(CLOSE, {"confirm": "on", "password": "correct horse battery"})
    assert response.status_code == 302 and response["Location"] == "/"

    # The future appointment is cancelled by the booking service: slot free once, one event.
    own.refresh_from_db()
    assert own.status == "cancelled_by_citizen" and own.cancel_reason == "other"
    slot = Slot.objects.get(pk=own.slot_id)
    assert (slot.status, slot.version) == ("free", slot_version + 1)
    (event,) = OutboxEvent.objects.filter(appointment=own, kind="appointment.cancelled")
    assert event.payload["slot_freed"] is True
    # ...and no longer linked to her; the waitlist request is withdrawn and anonymized.
    assert own.citizen_id is None
    assert WaitlistRequest.objects.get(pk=waiting.pk).status == "withdrawn"
    assert WaitlistRequest.objects.get(pk=waiting.pk).citizen_id is None
    # The child's appointment stays booked (hers, not the holder's); the link ends.
    kids.refresh_from_db()
    assert (kids.status, kids.citizen_id, kids.booked_by_user_id) == ("booked", kid.pk, None)
    assert not Dependant.objects.exists()
    # Contact erased, account emptied and inactive; the registry's identity copy stays.
    parent.refresh_from_db()
    assert (parent.email, parent.mobile, parent.account_id) == ("", "", None)
    user = User.objects.get(pk=user.pk)
    assert not user.is_active and not user.has_usable_password() and "parent" not in user.email
    # Signed out here and in the other browser.
    assert client.get("/rendez-vous/")["Location"].startswith(reverse("booking:identify"))
    assert elsewhere.get("/rendez-vous/")["Location"].startswith(reverse("booking:identify"))
    # One confirmation, in her language, to the address she had.
    (message,) = [m for m in mail.outbox if "fermé" in m.subject]
    assert message.to == ["parent@example.org"] and own.reference in message.body
    assert CitizenDataEvent.objects.filter(action="close", resource_id=parent.pk).count() == 1
    assert chain_verify(chain_for_model(CitizenDataEvent)).ok


@pytest.mark.django_db
def test_an_english_speaker_gets_the_confirmation_in_english(django_capture_on_commit_callbacks):
    citizen = CitizenFactory(preferred_language="en", email="jo@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        account_close(citizen=citizen, user=None)
    (message,) = mail.outbox
    assert message.subject == "Your account is closed" and message.to == ["jo@example.org"]


@pytest.mark.django_db
def test_a_card_identified_citizen_closes_with_the_box_only(family):
    _parent, kid, _link, _own, kids = family
    client = _identified(kid)
    assert 'name="password"' not in client.get(CLOSE).content.decode()
    assert client.post(CLOSE, {"confirm": "on"}).status_code == 302
    kids.refresh_from_db()
    assert (kids.status, kids.citizen_id) == ("cancelled_by_citizen", None)
    assert not Dependant.objects.exists()  # her guardian no longer acts for her


@pytest.mark.django_db
def test_an_appointment_past_the_cutoff_stops_the_closing(family):
    parent, *_ = family
    soon = SlotFactory(start=timezone.now() + timedelta(hours=3))
    appointment_book(slot_id=soon.pk, citizen=parent, reason="urgent", channel="agenda")
    soon.clinic.cancel_cutoff_hours = 24
    soon.clinic.save()
    client = _signed_in(family)
    page = client.get(CLOSE)
    assert page.status_code == 200 and "Appelez la clinique" in page.content.decode()
    assert client.post(CLOSE, {"confirm": "on", "password": "correct horse battery"}).status_code == 409
    parent.refresh_from_db()
    assert (
        parent.account_id is not None
        and Appointment.objects.filter(citizen=parent, status="booked").count() == 2
    )


@pytest.mark.django_db
def test_a_staff_account_cannot_be_closed_here(family):
    from clinics.models import ClinicMembership

    parent, _kid, _link, own, _kids = family
    ClinicMembership.objects.create(user=parent.account, clinic=own.clinic, role="receptionist")
    client = _signed_in(family)
    assert client.post(CLOSE, {"confirm": "on", "password": "correct horse battery"}).status_code == 409
    assert User.objects.get(pk=parent.account_id).is_active


@pytest.mark.django_db(transaction=True)
def test_two_closings_at_once_free_the_slot_exactly_once():
    citizen = CitizenFactory()
    slot = SlotFactory()
    appointment = appointment_book(slot_id=slot.pk, citizen=citizen, reason="follow_up", channel="portal")
    version = Slot.objects.get(pk=slot.pk).version
    outcomes = run_concurrently(
        [lambda: account_close(citizen=Citizen.objects.get(pk=citizen.pk), user=None) for _ in range(4)]
    )
    assert not outcomes.errors_by_type(), outcomes
    assert sum(len(o.value.cancelled) for o in outcomes) == 1
    assert Slot.objects.get(pk=slot.pk).version == version + 1
    assert Slot.objects.get(pk=slot.pk).status == "free"
    assert OutboxEvent.objects.filter(appointment=appointment, kind="appointment.cancelled").count() == 1
    assert Appointment.objects.get(pk=appointment.pk).citizen_id is None
    # The address is read under the lock: only the first closing has one to write to.
    assert [m.to for m in mail.outbox if m.subject == "Votre compte est fermé"] == [[citizen.email]]


@pytest.mark.django_db
def test_an_arrived_patient_cannot_close_before_the_visit(family):
    parent, _kid, _link, own, _kids = family
    Appointment.objects.filter(pk=own.pk).update(status="arrived")
    client = _signed_in(family)
    assert client.post(CLOSE, {"confirm": "on", "password": "correct horse battery"}).status_code == 409
    assert Appointment.objects.get(pk=own.pk).citizen_id == parent.pk


@pytest.mark.django_db
def test_an_appointment_booked_while_closing_stops_the_erasing_step(family):
    """Bookings lock the citizen row, as the erasing step does: one committed after the
    cancellations is found there, and nothing is erased (an occupying appointment keeps its patient)."""
    from booking.privacy import ClosedAccount, CloseRefused, _close_in_transaction

    parent, _kid, _link, own, _kids = family
    with pytest.raises(CloseRefused) as refused:
        _close_in_transaction(citizen=parent, user=parent.account, now=timezone.now(), result=ClosedAccount())
    assert refused.value.code == "changed" and refused.value.appointments == [own]
    parent.refresh_from_db()
    assert parent.email and parent.account_id and Dependant.objects.exists()
    assert Appointment.objects.get(pk=own.pk).citizen_id == parent.pk
    assert not CitizenDataEvent.objects.exists()


@pytest.mark.django_db
def test_a_card_alone_does_not_close_an_account(family):
    parent, *_ = family
    client = _identified(parent)  # her card, not her account
    page = client.get(CLOSE).content.decode()
    assert "connectez-vous" in page.lower() and 'name="confirm"' not in page
    assert client.post(CLOSE, {"confirm": "on"}).status_code == 409
    parent.refresh_from_db()
    assert parent.account_id is not None and User.objects.get(pk=parent.account_id).is_active
