"""A lost second factor: a clinic administrator resets their staff's, the board resets clinic
administrators'. The person's authenticators are removed, their sessions end, they enrol again at
their next sign-in, and they are told by e-mail."""

import pytest
from allauth.mfa.models import Authenticator
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from clinics.models import BoardRole, ClinicMembership, StaffAuditEvent
from clinics.services_settings import staff_mfa_reset

from .conftest import PASSWORD, sign_in

pytestmark = pytest.mark.django_db


def _clinic_url(world, user, clinic=None):
    membership = world.membership(user, clinic)
    return reverse("clinics:membership_mfa_reset", args=[(clinic or world.clinic_a).pk, membership.pk])


def _board_url(world, user, clinic=None):
    return reverse("clinics:board_mfa_reset", args=[world.membership(user, clinic).pk])


def test_a_clinic_administrator_resets_a_receptionist_who_then_enrols_again(
    world, client_as, django_capture_on_commit_callbacks
):
    world.receptionist_a.preferred_language = "en"
    world.receptionist_a.save(update_fields=["preferred_language"])
    receptionist = client_as("receptionist_a")
    admin = client_as("admin_a")
    url = _clinic_url(world, world.receptionist_a)

    assert admin.get(url).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(url)

    assert response.status_code == 302
    assert response["Location"] == reverse("clinics:staff", args=[world.clinic_a.pk])
    assert not Authenticator.objects.filter(user=world.receptionist_a).exists()
    assert Authenticator.objects.filter(user=world.admin_a).exists()  # nobody else's
    # Signed out everywhere at once.
    assert receptionist.get(reverse("clinics:agenda", args=[world.clinic_a.pk])).status_code == 302
    audit = StaffAuditEvent.objects.get(action="mfa-reset")
    assert (audit.user, audit.clinic, audit.resource_type, audit.resource_id) == (
        world.admin_a,
        world.clinic_a,
        "User",
        world.receptionist_a.pk,
    )
    (message,) = mail.outbox
    assert message.to == [world.receptionist_a.email]
    assert message.subject == "Your second factor was reset"
    assert "Clinique A" in message.body
    # Next sign-in: the password alone, then straight to enrolling a new second factor.
    again = Client()
    signed = again.post(reverse("account_login"), {"login": world.receptionist_a.email, "password": PASSWORD})
    assert signed.status_code == 302
    page = again.get(reverse("clinics:agenda", args=[world.clinic_a.pk]))
    assert page.status_code == 302
    assert page["Location"].startswith(reverse("mfa_activate_totp"))


PAGE_ACCESS = {
    "admin_a": 200,
    "receptionist_a": 404,
    "practitioner_a": 404,
    "admin_b": 404,
    "board_admin": 404,
    "citizen_user": 403,
    "anonymous": 302,
}


@pytest.mark.parametrize(("persona", "expected"), PAGE_ACCESS.items())
def test_who_can_reset_a_practitioner_of_clinic_a(world, client_as, persona, expected):
    url = _clinic_url(world, world.practitioner_a)
    client = client_as(persona)

    assert client.get(url).status_code == expected
    if persona != "admin_a":
        assert client.post(url).status_code == expected
        assert Authenticator.objects.filter(user=world.practitioner_a).exists()
        assert not StaffAuditEvent.objects.filter(action="mfa-reset").exists()


def test_a_clinic_administrator_cannot_reset_another_administrator_or_themselves(world, client_as):
    second_admin = ClinicMembership.objects.create(
        user=world.admin_b, clinic=world.clinic_a, role=ClinicMembership.Role.CLINIC_ADMIN
    )
    client = client_as("admin_a")

    own = reverse(
        "clinics:membership_mfa_reset", args=[world.clinic_a.pk, world.membership(world.admin_a).pk]
    )
    other = reverse("clinics:membership_mfa_reset", args=[world.clinic_a.pk, second_admin.pk])
    assert client.post(own).status_code == 404
    assert client.post(other).status_code == 404
    assert Authenticator.objects.filter(user__in=[world.admin_a, world.admin_b]).count() == 2


def test_a_receptionist_who_administers_another_clinic_is_left_to_the_board(world):
    ClinicMembership.objects.create(
        user=world.receptionist_a, clinic=world.clinic_b, role=ClinicMembership.Role.CLINIC_ADMIN
    )

    with pytest.raises(PermissionDenied):
        staff_mfa_reset(by=world.admin_a, target=world.receptionist_a, clinic=world.clinic_a)
    assert Authenticator.objects.filter(user=world.receptionist_a).exists()


def test_admin_b_cannot_reset_staff_of_clinic_a_even_through_clinic_b(world, client_as):
    membership = world.membership(world.receptionist_a)
    url = reverse("clinics:membership_mfa_reset", args=[world.clinic_b.pk, membership.pk])

    assert client_as("admin_b").post(url).status_code == 404
    with pytest.raises(PermissionDenied):
        staff_mfa_reset(by=world.admin_b, target=world.receptionist_a, clinic=world.clinic_a)
    assert Authenticator.objects.filter(user=world.receptionist_a).exists()


def test_the_board_resets_a_clinic_administrator(world, client_as, django_capture_on_commit_callbacks):
    board = client_as("board_admin")
    found = board.get(reverse("clinics:board_admins") + "?clinic=Clinique A").content.decode()
    assert world.admin_a.email in found and world.admin_b.email not in found
    url = _board_url(world, world.admin_a)

    with django_capture_on_commit_callbacks(execute=True):
        assert board.post(url).status_code == 302

    assert not Authenticator.objects.filter(user=world.admin_a).exists()
    audit = StaffAuditEvent.objects.get(action="mfa-reset")
    assert (audit.user, audit.clinic, audit.resource_id) == (world.board_admin, None, world.admin_a.pk)
    (message,) = mail.outbox
    assert message.subject == "Votre deuxième facteur a été réinitialisé"
    assert "Le conseil a réinitialisé votre deuxième facteur" in message.body


@pytest.mark.parametrize("persona", ["admin_a", "admin_b", "receptionist_a"])
def test_only_the_board_sees_the_administrators_and_resets_them(world, client_as, persona):
    client = client_as(persona)

    assert client.get(reverse("clinics:board_admins") + "?clinic=Clinique").status_code == 404
    assert client.post(_board_url(world, world.admin_a)).status_code == 404
    assert Authenticator.objects.filter(user=world.admin_a).exists()


def test_the_board_page_does_not_reset_receptionists_or_board_members(world, client_as):
    board = client_as("board_admin")
    BoardRole.objects.create(user=world.admin_b, role=BoardRole.Role.ANALYST)

    assert board.post(_board_url(world, world.receptionist_a)).status_code == 404
    assert board.post(_board_url(world, world.admin_b, world.clinic_b)).status_code == 404
    assert Authenticator.objects.filter(user__in=[world.receptionist_a, world.admin_b]).count() == 2


def test_the_staff_list_links_the_reset_for_non_administrators(world, client_as):
    html = client_as("admin_a").get(reverse("clinics:staff", args=[world.clinic_a.pk])).content.decode()

    assert _clinic_url(world, world.receptionist_a) in html
    assert _clinic_url(world, world.admin_a) not in html


def test_the_reset_page_is_in_both_languages(world, client_as):
    client = sign_in(Client(), world.admin_a, step_offset=1)
    url = _clinic_url(world, world.receptionist_a)

    french = client.get(url).content.decode()
    client.post(reverse("set_language"), {"language": "en"})
    english = client.get(url).content.decode()

    assert '<html lang="fr">' in french and "Réinitialiser un deuxième facteur perdu" in french
    assert '<html lang="en">' in english and "Reset a lost second factor" in english
