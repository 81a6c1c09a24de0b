"""The waitlist pages, in French and in English: asking from an empty search, seeing and withdrawing
requests on "my appointments", and the offer's one-step confirmation page (GET shows, POST books)."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from booking.models import Appointment, Reason, Slot, WaitlistOffer, WaitlistRequest
from booking.waitlist.offers import waitlist_offer_next
from booking.waitlist.services import waitlist_request_create
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, FsaFactory, SlotFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fsa(db):
    FsaFactory()


def _identify(client, citizen):
    assert client.post(reverse("booking:identify"), identify_payload(citizen)).status_code == 302


def _valid(**overrides):
    today = timezone.localdate()
    data = {
        "path": "near",
        "reason": Reason.FOLLOW_UP,
        "postal_code": "H2X",
        "radius_km": "25",
        "date_from": today.isoformat(),
        "date_to": (today + timedelta(days=20)).isoformat(),
        "time_of_day": "",
        "channel": "email",
        "email": "julie@example.org",
        "mobile": "",
        "language": "fr",
    }
    data.update(overrides)
    return data


@pytest.fixture
def offer(citizen, role):
    today = timezone.localdate()
    waitlist_request_create(
        citizen=citizen,
        path="near",
        reason="follow_up",
        date_from=today,
        date_to=today + timedelta(days=9),
        fsa="H2X",
    )
    # Inside the request's window whatever the factory's sequence has reached in this session.
    start = (timezone.now() + timedelta(days=3)).replace(second=0, microsecond=0)
    slot = SlotFactory(role=role, start=start, end=start + timedelta(minutes=15))
    made = waitlist_offer_next(slot_id=slot.pk)
    assert made is not None
    return made


def test_an_empty_search_offers_to_be_told_with_the_same_choices(client, citizen):
    _identify(client, citizen)
    response = client.get(
        reverse("booking:search"),
        {"path": "near", "reason": "periodic", "postal_code": "H2X", "radius_km": 10, "sort": "soonest"},
    )
    html = response.content.decode()
    assert "Prévenez-moi quand une plage horaire se libère" in html
    link = re.search(r'href="(/liste-attente/demande/\?[^"]+)"', html).group(1).replace("&amp;", "&")
    form = client.get(link).content.decode()
    assert re.search(r'<option value="periodic" selected', form)
    assert 'value="H2X"' in form


def test_a_citizen_asks_to_be_told_then_sees_and_withdraws_the_request(client, citizen):
    _identify(client, citizen)
    response = client.post(reverse("booking:waitlist_new"), _valid())
    assert response.status_code == 302 and response["Location"] == reverse("booking:mine")
    request = WaitlistRequest.objects.get(citizen=citizen)
    assert (request.path, request.fsa, request.radius_km, request.channel) == ("near", "H2X", 25, "email")

    mine = client.get(reverse("booking:mine")).content.decode()
    assert "Liste d’attente" in mine and "Retirer cette demande" in mine
    assert reverse("booking:waitlist_withdraw", args=[request.pk]) in mine

    client.post(reverse("booking:waitlist_withdraw", args=[request.pk]))
    request.refresh_from_db()
    assert request.status == "withdrawn"
    assert (
        "Vous n’êtes inscrit à aucune liste d’attente" in client.get(reverse("booking:mine")).content.decode()
    )


def test_another_citizen_cannot_withdraw_a_request(client, citizen):
    request = waitlist_request_create(
        citizen=citizen,
        path="near",
        reason="follow_up",
        date_from=timezone.localdate(),
        date_to=timezone.localdate(),
        fsa="H2X",
    )
    _identify(client, CitizenFactory(first_name="Paul"))
    assert client.post(reverse("booking:waitlist_withdraw", args=[request.pk])).status_code == 404
    request.refresh_from_db()
    assert request.status == "active"


def test_the_request_form_is_accessible_and_explains_errors_in_english(client, citizen):
    _identify(client, citizen)
    page = client.get(reverse("booking:waitlist_new"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="en">' in page
    assert "<h1>Tell me when a time opens</h1>" in page
    assert "first come, first offered" in page
    for field in ("id_reason", "id_postal_code", "id_date_from", "id_date_to", "id_email", "id_mobile"):
        assert f'<label for="{field}"' in page
    response = client.post(
        reverse("booking:waitlist_new"), _valid(email="", date_to="2000-01-01"), HTTP_ACCEPT_LANGUAGE="en"
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert 'role="alert"' in html and 'href="#id_email"' in html
    assert "Enter the e-mail address where we should write to you." in html
    assert 'aria-describedby="id_email_error"' in html
    assert not WaitlistRequest.objects.exists()


def test_the_limit_of_requests_is_explained(client, citizen, settings):
    settings.WAITLIST_MAX_ACTIVE_REQUESTS = 1
    _identify(client, citizen)
    client.post(reverse("booking:waitlist_new"), _valid())
    response = client.post(reverse("booking:waitlist_new"), _valid(reason="periodic"))
    assert response.status_code == 400
    assert "nombre maximal de demandes en liste d’attente" in response.content.decode()


def test_the_offer_link_shows_the_time_and_changes_nothing_on_get(client, offer):
    url = reverse("booking:waitlist_offer", args=[offer.token])
    html = client.get(url).content.decode()
    assert "Une plage horaire pour vous" in html
    assert offer.offer.slot.clinic.name in html
    assert 'name="action" value="accept"' in html and 'name="action" value="decline"' in html
    assert "csrfmiddlewaretoken" in html
    assert offer.offer.citizen.nam not in html
    offer.offer.refresh_from_db()
    assert offer.offer.status == "offered"
    assert not Appointment.objects.exists()


def test_booking_from_the_offer_link_is_one_post_and_the_second_post_is_refused(client, offer):
    url = reverse("booking:waitlist_offer", args=[offer.token])
    response = client.post(url, {"action": "accept"})
    appointment = Appointment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("booking:appointment", args=[appointment.pk])
    assert appointment.channel == Appointment.Channel.WAITLIST
    assert client.get(response["Location"]).status_code == 200  # reachable from this browser

    again = client.post(url, {"action": "accept"})
    assert again.status_code == 409
    assert "Cette offre a déjà été utilisée" in again.content.decode()
    english = client.post(url, {"action": "accept"}, HTTP_ACCEPT_LANGUAGE="en")
    assert "This offer was already used" in english.content.decode()
    assert Appointment.objects.count() == 1


def test_declining_from_the_link_frees_the_time(client, offer):
    url = reverse("booking:waitlist_offer", args=[offer.token])
    response = client.post(url, {"action": "decline"}, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    html = response.content.decode()
    assert '<html lang="en">' in html
    assert "You declined this time" in html
    assert WaitlistOffer.objects.get().status == "declined"
    slot = Slot.objects.get(pk=offer.offer.slot_id)
    assert slot.holder_id is None and slot.status == Slot.Status.FREE


def test_an_unknown_offer_link_gets_a_clear_page(client):
    response = client.get(reverse("booking:waitlist_offer", args=["nope"]), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 404
    assert "This link does not match any offer" in response.content.decode()
