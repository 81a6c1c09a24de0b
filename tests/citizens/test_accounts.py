"""Optional accounts (django-allauth): sign up, verify the e-mail, link the card once, see my
appointments; booking without an account keeps working."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from booking.models import Reason
from booking.services import appointment_book
from citizens.models import Citizen
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, SlotFactory, UserFactory

pytestmark = pytest.mark.django_db


def _sign_up_and_verify(client, email="julie@example.org", password="un mot de passe solide 42"):
    client.post(reverse("account_signup"), {"email": email, "password1": password, "password2": password})
    body = mail.outbox[-1].body
    link = re.search(r"https?://[^\s]+/comptes/confirm-email/[^\s]+", body).group(0)
    path = re.sub(r"^https?://[^/]+", "", link)
    client.post(path)
    return client.post(reverse("account_login"), {"login": email, "password": password})


def test_a_citizen_signs_up_verifies_links_the_card_and_sees_appointments(client, citizen):
    slot = SlotFactory()
    appointment = appointment_book(
        slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal"
    )
    response = _sign_up_and_verify(client)
    assert response.status_code == 302
    # Signed in but no card yet: "my appointments" asks to link it.
    assert client.get(reverse("booking:mine"))["Location"] == reverse("citizens:link_card")
    response = client.post(reverse("citizens:link_card"), identify_payload(citizen))
    assert response["Location"] == reverse("booking:mine")
    assert Citizen.objects.get(pk=citizen.pk).account.email == "julie@example.org"
    # A new session: signing in is enough, no card details asked again.
    client.logout()
    client.post(
        reverse("account_login"), {"login": "julie@example.org", "password": "un mot de passe solide 42"}
    )
    assert appointment.reference in client.get(reverse("booking:mine")).content.decode()


def test_an_unverified_account_cannot_sign_in(client):
    password = "un mot de passe solide 42"
    client.post(
        reverse("account_signup"), {"email": "x@example.org", "password1": password, "password2": password}
    )
    client.logout()
    response = client.post(reverse("account_login"), {"login": "x@example.org", "password": password})
    assert response.status_code == 302
    assert "confirm" in response["Location"] or "verif" in response["Location"]
    assert not client.session.get("_auth_user_id")


def test_linking_needs_the_right_card_details(client, citizen):
    user = UserFactory()
    client.force_login(user)
    response = client.post(reverse("citizens:link_card"), identify_payload(citizen, card_sequence="77"))
    assert response.status_code == 400
    assert "811" in response.content.decode()
    assert Citizen.objects.get(pk=citizen.pk).account is None


def test_link_card_requires_an_account(client):
    response = client.get(reverse("citizens:link_card"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_a_card_belongs_to_one_account_and_an_account_to_one_card(client, citizen):
    other_card = CitizenFactory(first_name="Paul", last_name="Roy", sex="M")
    user = UserFactory()
    client.force_login(user)
    client.post(reverse("citizens:link_card"), identify_payload(citizen))
    client.post(reverse("citizens:link_card"), identify_payload(other_card))
    assert Citizen.objects.filter(account=user).get() == other_card


def test_another_account_does_not_see_my_appointments(client, citizen):
    slot = SlotFactory()
    appointment = appointment_book(
        slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal"
    )
    owner = UserFactory()
    Citizen.objects.filter(pk=citizen.pk).update(account=owner)
    stranger = UserFactory()
    CitizenFactory(first_name="Paul", last_name="Roy", sex="M", account=stranger)
    client.force_login(stranger)
    assert appointment.reference not in client.get(reverse("booking:mine")).content.decode()
    assert client.get(reverse("booking:appointment", args=[appointment.pk])).status_code == 404


def test_a_card_linked_to_another_account_is_never_moved_silently(client, citizen):
    owner = UserFactory()
    Citizen.objects.filter(pk=citizen.pk).update(account=owner)
    intruder = UserFactory()
    client.force_login(intruder)
    response = client.post(reverse("citizens:link_card"), identify_payload(citizen))
    assert response.status_code == 400
    assert "811" in response.content.decode()
    assert Citizen.objects.get(pk=citizen.pk).account == owner
