"""Booking for a dependant on the pages: who the appointment is for, the dependant's own enrolment
and limits, "my appointments" grouped by person, cancel and reschedule for them; a stranger never
reaches someone else's dependants. The no-show reminder on the confirmation step."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from booking.models import Appointment, Audience, Reason, Slot
from booking.services import appointment_book, appointment_set_status
from citizens.models import Citizen, Dependant
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, EnrolmentFactory, FsaFactory, SlotFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def family(db):
    """A holder signed in with an account (card linked) and their child."""
    user = UserFactory()
    parent = CitizenFactory(account=user, email="parent@example.org")
    kid = CitizenFactory(
        first_name="Léa", birth_date=timezone.localdate() - timedelta(days=365 * 6), email=""
    )
    link = Dependant.objects.create(
        guardian=parent, citizen=kid, relationship="parent", attested_at=timezone.now(), added_by=user
    )
    return parent, kid, link


@pytest.fixture
def holder_client(client, family):
    client.force_login(family[0].account)
    return client


def hold_and_confirm(client, slot, *, patient="", reason=Reason.FOLLOW_UP, **headers):
    data = {"reason": reason, **({"patient": patient} if patient != "" else {})}
    response = client.post(reverse("booking:hold", args=[slot.pk]), data, **headers)
    assert response["Location"] == reverse("booking:confirm", args=[slot.pk]), response.content[:300]
    page = client.get(response["Location"], **headers)
    token = page.context["form"].initial["hold_token"]
    email = page.context["form"].initial["email"]
    posted = client.post(
        reverse("booking:confirm", args=[slot.pk]),
        {"reason": reason, "email": email, "language": "fr", "hold_token": token},
        **headers,
    )
    return page, posted


def test_the_search_offers_to_choose_who_the_appointment_is_for(holder_client, family):
    html = holder_client.get(reverse("booking:search")).content.decode()
    assert "Pour qui est le rendez-vous?" in html
    assert "Moi-même (Julie)" in html and "Léa Gagnon" in html


def test_without_dependants_the_search_asks_nothing_more(client, citizen):
    client.post(reverse("booking:identify"), identify_payload(citizen))
    assert "Pour qui" not in client.get(reverse("booking:search")).content.decode()


def test_the_search_uses_the_dependants_own_family_doctor(holder_client, family, role):
    _, kid, link = family
    EnrolmentFactory(citizen=kid, practitioner=role.practitioner, gmf=role.clinic.gmf)
    own = SlotFactory(role=role, audience=Audience.OWN_PATIENTS)
    query = {"path": "mine", "reason": Reason.FOLLOW_UP, "radius_km": 25, "sort": "soonest"}
    mine = holder_client.get(reverse("booking:search"), query).content.decode()
    assert "pas inscrit" in mine  # the holder has no family doctor
    response = holder_client.get(reverse("booking:search"), {**query, "patient": link.pk})
    html = response.content.decode()
    assert response.status_code == 200
    assert reverse("booking:hold", args=[own.pk]) in html
    assert f'name="patient" value="{link.pk}"' in html  # the hold is for her too
    assert "Médecin de famille de Léa" in html


def test_a_holder_books_for_their_child_who_is_the_patient(holder_client, family, settings):
    parent, kid, link = family
    settings.BOOKING_MAX_ACTIVE_ONLINE = 1
    Citizen.objects.filter(pk=parent.pk).update(preferred_language="en")
    appointment_book(slot_id=SlotFactory().pk, citizen=parent, reason=Reason.FOLLOW_UP, channel="portal")
    slot = SlotFactory()
    page, posted = hold_and_confirm(holder_client, slot, patient=link.pk)
    assert "Pour Léa Gagnon" in page.content.decode()
    assert page.context["form"].initial["email"] == "parent@example.org"  # a child has no address
    assert page.context["form"].initial["language"] == "en"  # and the holder's language
    appointment = Appointment.objects.get(slot=slot)
    assert posted["Location"] == reverse("booking:appointment", args=[appointment.pk])
    # The child is the patient; the holder booked it; the holder's own limit did not count.
    assert appointment.citizen == kid
    assert appointment.booked_by_user == parent.account
    kid.refresh_from_db()
    assert kid.email == "parent@example.org"  # confirmations and reminders reach the holder
    detail = holder_client.get(posted["Location"]).content.decode()
    assert "Léa Gagnon" in detail and appointment.reference in detail


def test_limits_apply_per_person(holder_client, family, settings):
    parent, kid, link = family
    settings.BOOKING_MAX_ACTIVE_ONLINE = 1
    hold_and_confirm(holder_client, SlotFactory(), patient=link.pk)
    assert Appointment.objects.filter(citizen=kid).count() == 1
    # The child is at her limit: refused, with a word saying whose limit it is.
    refused = holder_client.post(
        reverse("booking:hold", args=[SlotFactory().pk]), {"reason": Reason.FOLLOW_UP, "patient": link.pk}
    )
    assert refused.status_code == 422
    assert "Pour Léa Gagnon" in refused.content.decode()
    # The time is still free: the heading says she may not take it, not that it is gone.
    assert "<h1>Vous ne pouvez pas réserver cette plage horaire</h1>" in refused.content.decode()
    # The holder's own limit is untouched by the child's appointment.
    hold_and_confirm(holder_client, SlotFactory())
    assert Appointment.objects.filter(citizen=parent).count() == 1


def test_a_parent_and_child_may_be_booked_at_the_same_time(holder_client, family, role):
    parent, kid, link = family
    first = SlotFactory(role=role)
    twin = SlotFactory(start=first.start, end=first.end)  # another doctor, same time
    hold_and_confirm(holder_client, first)
    hold_and_confirm(holder_client, twin, patient=link.pk)
    assert {a.citizen for a in Appointment.objects.all()} == {parent, kid}


def test_my_appointments_are_grouped_by_person(holder_client, family):
    parent, kid, _ = family
    own = appointment_book(
        slot_id=SlotFactory().pk, citizen=parent, reason=Reason.FOLLOW_UP, channel="portal"
    )
    hers = appointment_book(slot_id=SlotFactory().pk, citizen=kid, reason=Reason.CHILD, channel="portal")
    html = holder_client.get(reverse("booking:mine")).content.decode()
    assert "Julie (vous)" in html
    mine_at, hers_at = html.index("Julie (vous)"), html.index("Léa Gagnon</h2>")
    assert mine_at < html.index(own.reference) < hers_at < html.index(hers.reference)
    english = holder_client.get(reverse("booking:mine"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Julie (you)" in english and "People in my care" in english


def test_the_holder_cancels_and_reschedules_for_the_child(holder_client, family):
    _, kid, _ = family
    first = appointment_book(slot_id=SlotFactory().pk, citizen=kid, reason=Reason.CHILD, channel="portal")
    start = holder_client.post(reverse("booking:reschedule", args=[first.pk]), {"action": "start"})
    assert start["Location"] == reverse("booking:search")
    new_slot = SlotFactory()
    hold_and_confirm(holder_client, new_slot, reason=Reason.CHILD)
    first.refresh_from_db()
    moved = Appointment.objects.get(slot=new_slot)
    assert first.status == Appointment.Status.CANCELLED_BY_CITIZEN
    assert moved.citizen == kid and moved.rescheduled_from == first
    response = holder_client.post(reverse("booking:cancel", args=[moved.pk]), {"reason": "feeling_better"})
    assert response.status_code == 302
    moved.refresh_from_db()
    assert moved.status == Appointment.Status.CANCELLED_BY_CITIZEN
    assert moved.cancel_reason == "feeling_better"
    assert Slot.objects.get(pk=new_slot.pk).status == Slot.Status.FREE


def test_a_holder_identified_by_card_only_also_acts_for_the_child(client, family):
    parent, kid, link = family
    client.post(reverse("booking:identify"), identify_payload(parent))
    hold_and_confirm(client, SlotFactory(), patient=link.pk)
    appointment = Appointment.objects.get()
    assert appointment.citizen == kid and appointment.booked_by_user == parent.account


def test_another_citizen_never_reaches_someone_elses_dependant(client, family):
    _, kid, link = family
    theirs = appointment_book(slot_id=SlotFactory().pk, citizen=kid, reason=Reason.CHILD, channel="portal")
    stranger = CitizenFactory(first_name="Paul", last_name="Roy", sex="M", account=UserFactory())
    Dependant.objects.create(
        guardian=stranger,
        citizen=CitizenFactory(first_name="Max", sex="M"),
        relationship="caregiver",
        attested_at=timezone.now(),
    )
    client.force_login(stranger.account)
    for name in ("appointment", "cancel", "reschedule", "calendar"):
        assert client.get(reverse(f"booking:{name}", args=[theirs.pk])).status_code == 404, name
    assert client.post(reverse("booking:cancel", args=[theirs.pk]), {"reason": "other"}).status_code == 404
    assert client.get(reverse("booking:search"), {"patient": link.pk}).status_code == 404
    slot = SlotFactory()
    held = client.post(reverse("booking:hold", args=[slot.pk]), {"reason": Reason.CHILD, "patient": link.pk})
    assert held.status_code == 404
    assert Slot.objects.get(pk=slot.pk).holder_id is None
    assert theirs.reference not in client.get(reverse("booking:mine")).content.decode()
    theirs.refresh_from_db()
    assert theirs.status == Appointment.Status.BOOKED


def test_a_removed_dependant_is_no_longer_reachable(holder_client, family):
    _, kid, link = family
    theirs = appointment_book(slot_id=SlotFactory().pk, citizen=kid, reason=Reason.CHILD, channel="portal")
    link.delete()
    assert holder_client.get(reverse("booking:appointment", args=[theirs.pk])).status_code == 404


# --- the no-show reminder ------------------------------------------------------------------------


def noshow(citizen, *, days_ago: int):
    start = timezone.now() - timedelta(days=days_ago)
    slot = SlotFactory(start=start, end=start + timedelta(minutes=15))
    appointment = appointment_book(
        slot_id=slot.pk,
        citizen=citizen,
        reason=Reason.FOLLOW_UP,
        channel="agenda",
        now=start - timedelta(days=1),
    )
    appointment_set_status(appointment_id=appointment.pk, status="noshow")


def confirm_page(client, slot, **extra):
    data = {"reason": Reason.FOLLOW_UP, **extra}
    client.post(reverse("booking:hold", args=[slot.pk]), data)
    return client.get(reverse("booking:confirm", args=[slot.pk])).content.decode()


def test_two_recent_no_shows_bring_a_reminder_of_the_rules_not_a_block(client, citizen, settings):
    settings.BOOKING_NOSHOW_REMINDER_COUNT = 2
    FsaFactory()
    client.post(reverse("booking:identify"), identify_payload(citizen))
    noshow(citizen, days_ago=400)  # more than 12 months ago: not counted
    noshow(citizen, days_ago=30)
    assert "Un rappel avant de réserver" not in confirm_page(client, SlotFactory())
    noshow(citizen, days_ago=10)
    html = confirm_page(client, SlotFactory())
    assert "Un rappel avant de réserver" in html
    assert "annulez le plus tôt possible" in html
    slot = SlotFactory()
    hold_and_confirm(client, slot)
    assert Appointment.objects.get(slot=slot).status == Appointment.Status.BOOKED  # never a block
    # The same reminder in English.
    slot = SlotFactory()
    client.post(reverse("booking:hold", args=[slot.pk]), {"reason": Reason.FOLLOW_UP})
    english = client.get(reverse("booking:confirm", args=[slot.pk]), HTTP_ACCEPT_LANGUAGE="en")
    assert "A reminder before you book" in english.content.decode()


def test_the_reminder_follows_the_patient_not_the_holder(holder_client, family):
    parent, kid, link = family
    noshow(kid, days_ago=20)
    noshow(kid, days_ago=40)
    assert "Un rappel avant de réserver" not in confirm_page(holder_client, SlotFactory())
    html = confirm_page(holder_client, SlotFactory(), patient=link.pk)
    assert "Certains rendez-vous récents de Léa" in html
