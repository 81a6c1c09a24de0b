"""The waitlist in the citizen API, and waitlist requests for dependants (API and pages): ask, list,
withdraw, answer an offer with its single-use token. Same rules and limits as the web form; a
guardian acts for their own dependants only; limits count per person."""

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from booking import errors
from booking.api.waitlist import WaitlistRequestSerializer
from booking.models import Appointment, Reason, WaitlistOffer, WaitlistRequest
from booking.selectors import QUEBEC_TZ
from booking.services.retention import waitlist_anonymize
from booking.waitlist.offers import waitlist_offer_next, waitlist_offer_send
from booking.waitlist.selectors import waitlist_offer_for_token
from citizens.models import Dependant
from tests.booking.test_api import bearer, error, post
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, FsaFactory, SlotFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.WAITLIST_MAX_ACTIVE_REQUESTS = 3
    FsaFactory()


@pytest.fixture
def api():
    return Client()


@pytest.fixture
def family(db):
    parent = CitizenFactory(account=UserFactory(), email="marc@example.org")
    kid = CitizenFactory(first_name="Léa", email="")
    link = Dependant.objects.create(
        guardian=parent, citizen=kid, relationship="parent", attested_at=timezone.now()
    )
    return parent, kid, link


def ask(**overrides):
    today = timezone.localdate(timezone.now(), QUEBEC_TZ)
    data = {
        "path": "near",
        "reason": Reason.FOLLOW_UP,
        "postal_code": "H2X 1K4",
        "radius_km": 25,
        "date_from": today.isoformat(),
        "date_to": (today + timedelta(days=20)).isoformat(),
        "channel": "email",
    }
    data.update(overrides)
    return data


def create(api, citizen, **overrides):
    return post(api, "/api/v1/waitlist", ask(**overrides), **bearer(citizen))


def offer_token(slot) -> str:
    made = waitlist_offer_next(slot_id=slot.pk)
    assert made is not None
    return made.token


# --- the citizen's own requests ----------------------------------------------------------------


def test_a_citizen_asks_lists_and_withdraws_through_the_api(api, citizen):
    created = create(api, citizen, time_of_day="morning", language="en")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["patient"] == {"dependant_id": None, "first_name": citizen.first_name}
    assert (body["path"], body["postal_code"], body["radius_km"], body["time_of_day"]) == (
        "near",
        "H2X",
        25,
        "morning",
    )
    assert (body["status"], body["offer"], body["language"]) == ("active", None, "en")
    request = WaitlistRequest.objects.get(pk=body["id"])
    assert request.citizen == citizen and request.requested_by is None

    listed = api.get("/api/v1/waitlist", **bearer(citizen)).json()
    assert [r["id"] for r in listed] == [request.pk]
    assert api.get("/api/v1/waitlist", **bearer(CitizenFactory(first_name="Paul"))).json() == []

    # Somebody else cannot withdraw it (not found), its owner can.
    other = post(
        api, f"/api/v1/waitlist/{request.pk}/withdraw", {}, **bearer(CitizenFactory(first_name="Paul"))
    )
    assert (other.status_code, error(other)["code"]) == (404, "waitlist_request_not_found")
    withdrawn = post(api, f"/api/v1/waitlist/{request.pk}/withdraw", {}, **bearer(citizen))
    assert (withdrawn.status_code, withdrawn.json()["status"]) == (200, "withdrawn")
    assert api.get("/api/v1/waitlist", **bearer(citizen)).json() == []


def test_an_anonymized_request_is_nobodys_so_not_found(api, citizen):
    request_id = create(api, citizen).json()["id"]
    assert post(api, f"/api/v1/waitlist/{request_id}/withdraw", {}, **bearer(citizen)).status_code == 200
    assert waitlist_anonymize(WaitlistRequest.objects.filter(pk=request_id)) == 1

    assert api.get("/api/v1/waitlist", **bearer(citizen)).json() == []
    again = post(api, f"/api/v1/waitlist/{request_id}/withdraw", {}, **bearer(citizen))
    assert (again.status_code, error(again)["code"]) == (404, "waitlist_request_not_found")
    # Shown anyway, it is not found either: an explicit answer that `python -O` keeps.
    anonymized = WaitlistRequest.objects.get(pk=request_id)
    with pytest.raises(errors.WaitlistRequestNotFound):
        _ = WaitlistRequestSerializer(anonymized, context={"caller": citizen}).data


def test_the_api_checks_the_request_as_the_web_form_does(api, citizen):
    today = timezone.localdate(timezone.now(), QUEBEC_TZ)
    past = create(api, citizen, date_from=(today - timedelta(days=1)).isoformat())
    assert past.status_code == 400
    assert error(past)["fields"]["date_from"] == [
        "Cette date est passée. Choisissez aujourd’hui ou une date à venir."
    ]
    backwards = create(
        api, citizen, date_to=(today - timedelta(days=1)).isoformat(), date_from=today.isoformat()
    )
    assert "date_to" in error(backwards)["fields"]
    too_far = create(api, citizen, date_to=(today + timedelta(days=200)).isoformat())
    assert "date_to" in error(too_far)["fields"]
    unknown_area = create(api, citizen, postal_code="K1A 0B1")
    assert "postal_code" in error(unknown_area)["fields"]
    no_mail = CitizenFactory(first_name="Paul", email="")
    nowhere = create(api, no_mail)
    assert "email" in error(nowhere)["fields"]
    # Given in the request, the address is saved to the file, as the web form does.
    assert create(api, no_mail, email="paul@example.org").status_code == 201
    no_mail.refresh_from_db()
    assert no_mail.email == "paul@example.org"
    # The own-doctor path needs a family doctor: the service's rule, through the API.
    unenrolled = create(api, citizen, path="mine")
    assert (unenrolled.status_code, error(unenrolled)["code"]) == (422, "waitlist_scope_unknown")
    assert WaitlistRequest.objects.filter(citizen=citizen).count() == 0


def test_the_number_of_waiting_requests_is_limited_per_person(api, citizen):
    for _ in range(3):
        assert create(api, citizen).status_code == 201
    fourth = create(api, citizen)
    assert (fourth.status_code, error(fourth)["code"]) == (422, "waitlist_limit_reached")


def test_asking_is_rate_limited_as_a_search(api, citizen, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "search": "2/60"}
    settings.WAITLIST_MAX_ACTIVE_REQUESTS = 10
    assert [create(api, citizen).status_code for _ in range(3)] == [201, 201, 429]


def test_an_offer_is_seen_in_the_list_and_booked_with_its_token_once(api, citizen, role):
    assert create(api, citizen).status_code == 201
    slot = SlotFactory(role=role)
    token = offer_token(slot)
    listed = api.get("/api/v1/waitlist", **bearer(citizen)).json()
    assert listed[0]["offer"]["slot"]["id"] == slot.pk
    # Another citizen holding the token (a forwarded message) cannot use it with their own token.
    stranger = post(
        api, "/api/v1/waitlist/offers/accept", {"token": token}, **bearer(CitizenFactory(first_name="Paul"))
    )
    assert (stranger.status_code, error(stranger)["code"]) == (404, "offer_not_found")
    assert post(api, "/api/v1/waitlist/offers/accept", {"token": token}).status_code == 401
    booked = post(api, "/api/v1/waitlist/offers/accept", {"token": token}, **bearer(citizen))
    assert booked.status_code == 201, booked.content
    appointment = Appointment.objects.get(pk=booked.json()["id"])
    assert (appointment.slot_id, appointment.citizen, appointment.channel) == (slot.pk, citizen, "waitlist")
    again = post(api, "/api/v1/waitlist/offers/accept", {"token": token}, **bearer(citizen))
    assert (again.status_code, error(again)["code"]) == (409, "offer_used")
    assert Appointment.objects.filter(slot=slot).count() == 1
    unknown = post(api, "/api/v1/waitlist/offers/accept", {"token": "x" * 43}, **bearer(citizen))
    assert error(unknown)["code"] == "offer_not_found"


def test_declining_through_the_api_passes_the_slot_on(api, citizen, role):
    assert create(api, citizen).status_code == 201
    token = offer_token(SlotFactory(role=role))
    declined = post(api, "/api/v1/waitlist/offers/decline", {"token": token}, **bearer(citizen))
    assert declined.status_code == 204
    assert waitlist_offer_for_token(token).status == WaitlistOffer.Status.DECLINED
    closed = post(api, "/api/v1/waitlist/offers/accept", {"token": token}, **bearer(citizen))
    assert (closed.status_code, error(closed)["code"]) == (410, "offer_closed")
    assert api.get("/api/v1/waitlist", **bearer(citizen)).json()[0]["status"] == "active"


# --- dependants --------------------------------------------------------------------------------


def test_a_guardian_puts_a_dependant_on_the_waitlist_and_the_offer_comes_to_the_guardian(api, family, role):
    parent, kid, link = family
    created = create(api, parent, patient=link.pk)
    assert created.status_code == 201, created.content
    assert created.json()["patient"] == {"dependant_id": link.pk, "first_name": "Léa"}
    request = WaitlistRequest.objects.get(pk=created.json()["id"])
    assert (request.citizen, request.requested_by) == (kid, parent)  # the child has no e-mail: the parent's

    slot = SlotFactory(role=role)
    made = waitlist_offer_next(slot_id=slot.pk)
    assert made is not None and made.offer.citizen == kid  # the hold and the live offer are the child's
    assert waitlist_offer_send(made)
    (message,) = mail.outbox
    assert message.to == ["marc@example.org"]
    assert "Léa" in message.body
    token = made.token
    booked = post(api, "/api/v1/waitlist/offers/accept", {"token": token}, **bearer(parent))
    assert booked.status_code == 201, booked.content
    assert booked.json()["patient"] == {"dependant_id": link.pk, "first_name": "Léa"}
    appointment = Appointment.objects.get(pk=booked.json()["id"])
    assert (appointment.slot_id, appointment.citizen, appointment.booked_by_user) == (
        slot.pk,
        kid,
        parent.account,
    )


def test_a_guardian_cannot_act_for_someone_elses_dependant(api, family, role):
    parent, kid, link = family
    other_parent = CitizenFactory(first_name="Paul", account=UserFactory())
    refused = create(api, other_parent, patient=link.pk)
    assert (refused.status_code, error(refused)["code"]) == (404, "patient_not_found")
    assert create(api, parent, patient=link.pk).status_code == 201
    request = WaitlistRequest.objects.get(citizen=kid)
    # The other holder neither sees, withdraws nor books it.
    assert api.get("/api/v1/waitlist", **bearer(other_parent)).json() == []
    withdraw = post(api, f"/api/v1/waitlist/{request.pk}/withdraw", {}, **bearer(other_parent))
    assert withdraw.status_code == 404
    token = offer_token(SlotFactory(role=role))
    stolen = post(api, "/api/v1/waitlist/offers/accept", {"token": token}, **bearer(other_parent))
    assert (stolen.status_code, error(stolen)["code"]) == (404, "offer_not_found")
    declined = post(api, "/api/v1/waitlist/offers/decline", {"token": token}, **bearer(other_parent))
    assert declined.status_code == 404
    assert waitlist_offer_for_token(token).status == WaitlistOffer.Status.OFFERED
    # The holder withdraws it.
    assert post(api, f"/api/v1/waitlist/{request.pk}/withdraw", {}, **bearer(parent)).status_code == 200
    assert waitlist_offer_for_token(token).status == WaitlistOffer.Status.WITHDRAWN


def test_waitlist_limits_count_per_person(api, family):
    parent, kid, link = family
    for _ in range(3):
        assert create(api, parent, patient=link.pk).status_code == 201
    fourth = create(api, parent, patient=link.pk)
    assert (fourth.status_code, error(fourth)["code"]) == (422, "waitlist_limit_reached")
    # The holder's own place on the list is theirs, not spent by the child's requests...
    assert create(api, parent).status_code == 201
    # ...and a second guardian of the same child shares the child's limit.
    mother = CitizenFactory(first_name="Anne", account=UserFactory())
    second = Dependant.objects.create(
        guardian=mother, citizen=kid, relationship="parent", attested_at=timezone.now()
    )
    refused = create(api, mother, patient=second.pk)
    assert error(refused)["code"] == "waitlist_limit_reached"
    listed = api.get("/api/v1/waitlist", **bearer(parent)).json()
    assert sorted(r["patient"]["dependant_id"] or 0 for r in listed) == [0, link.pk, link.pk, link.pk]


def test_a_dependant_removed_from_care_is_no_longer_offered_nor_booked(api, family, role):
    parent, kid, link = family
    assert create(api, parent, patient=link.pk).status_code == 201
    token = offer_token(SlotFactory(role=role))
    link.delete()
    refused = post(api, "/api/v1/waitlist/offers/accept", {"token": token}, **bearer(parent))
    assert (refused.status_code, error(refused)["code"]) == (404, "patient_not_found")
    assert not Appointment.objects.filter(citizen=kid).exists()
    assert waitlist_offer_for_token(token).status == WaitlistOffer.Status.FAILED
    # The link's page (the token alone) cannot book it any more either.
    page = Client().post(reverse("booking:waitlist_offer", args=[token]), {"action": "accept"})
    assert page.status_code == 410
    assert not Appointment.objects.filter(citizen=kid).exists()
    assert waitlist_offer_next(slot_id=SlotFactory(role=role).pk) is None


def test_the_page_puts_a_dependant_on_the_waitlist_for_their_guardian_only(family):
    parent, kid, link = family
    client = Client()
    assert client.post(reverse("booking:identify"), identify_payload(parent)).status_code == 302
    url = reverse("booking:waitlist_new") + f"?patient={link.pk}"
    page = client.get(url)
    assert page.status_code == 200 and "Léa" in page.content.decode()
    today = timezone.localdate()
    form = {
        "path": "near",
        "reason": Reason.FOLLOW_UP,
        "postal_code": "H2X",
        "radius_km": "25",
        "date_from": today.isoformat(),
        "date_to": (today + timedelta(days=10)).isoformat(),
        "time_of_day": "",
        "channel": "email",
        "email": "marc@example.org",
        "mobile": "",
        "language": "fr",
    }
    assert client.post(url, form).status_code == 302
    request = WaitlistRequest.objects.get()
    assert (request.citizen, request.requested_by) == (kid, parent)
    mine = client.get(reverse("booking:mine")).content.decode()
    assert "Léa" in mine

    stranger = Client()
    other = CitizenFactory(first_name="Paul")
    assert stranger.post(reverse("booking:identify"), identify_payload(other)).status_code == 302
    assert stranger.get(url).status_code == 404
    assert stranger.post(url, form).status_code == 404
    withdraw = stranger.post(reverse("booking:waitlist_withdraw", args=[request.pk]))
    assert withdraw.status_code == 404
    assert WaitlistRequest.objects.count() == 1
