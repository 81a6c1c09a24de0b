"""Offboarding: a clinic administrator deactivates a membership; the person's access ends at once."""

import pytest
from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse

from clinics.models import BoardRole, ClinicMembership
from clinics.selectors import clinic_ids_for_staff
from clinics.services import membership_deactivate

from .conftest import sign_in

pytestmark = pytest.mark.django_db


def _sessions_of(user) -> int:
    return sum(1 for s in Session.objects.all() if s.get_decoded().get("_auth_user_id") == str(user.pk))


def test_a_deactivated_receptionist_is_signed_out_on_the_next_request(world, client_as):
    receptionist = client_as("receptionist_a")
    other_browser = sign_in(Client(), world.receptionist_a, step_offset=1)
    citizen = client_as("citizen_user")
    assert receptionist.get(reverse("clinics:agenda", args=[world.clinic_a.pk])).status_code == 200
    assert _sessions_of(world.receptionist_a) == 2

    client_as("admin_a").post(
        reverse(
            "clinics:membership_deactivate",
            args=[world.clinic_a.pk, world.membership(world.receptionist_a).pk],
        )
    )

    for browser in (receptionist, other_browser):
        response = browser.get(reverse("clinics:agenda", args=[world.clinic_a.pk]))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))
    assert _sessions_of(world.receptionist_a) == 0
    world.receptionist_a.refresh_from_db()
    assert not world.receptionist_a.is_active  # no other clinic: the account is closed too
    # Nobody else is signed out.
    assert citizen.get(reverse("clinics:home")).status_code == 403
    assert client_as("admin_a").get(reverse("clinics:home")).status_code == 200


def test_a_deactivated_account_cannot_sign_in_again(world, client_as):
    membership_deactivate(by=world.admin_a, membership=world.membership(world.receptionist_a))

    client = Client()
    client.post(
        reverse("account_login"), {"login": world.receptionist_a.email, "password": "correct horse battery"}
    )

    assert "_auth_user_id" not in client.session
    assert client.get(reverse("clinics:home")).status_code == 302


def test_staff_of_two_clinics_keep_their_account_and_the_other_clinic(world, client_as):
    ClinicMembership.objects.create(
        user=world.receptionist_a, clinic=world.clinic_b, role=ClinicMembership.Role.RECEPTIONIST
    )
    client = client_as("receptionist_a")

    membership_deactivate(by=world.admin_a, membership=world.membership(world.receptionist_a))

    assert client.get(reverse("clinics:home")).status_code == 302  # sessions ended all the same
    world.receptionist_a.refresh_from_db()
    assert world.receptionist_a.is_active
    assert clinic_ids_for_staff(world.receptionist_a) == {world.clinic_b.pk}
    again = sign_in(Client(), world.receptionist_a, step_offset=1)
    assert again.get(reverse("clinics:agenda", args=[world.clinic_b.pk])).status_code == 200
    assert again.get(reverse("clinics:agenda", args=[world.clinic_a.pk])).status_code == 404


def test_a_staff_member_with_a_board_role_keeps_the_account(world):
    BoardRole.objects.create(user=world.practitioner_a, role=BoardRole.Role.ANALYST)

    membership_deactivate(by=world.admin_a, membership=world.membership(world.practitioner_a))

    world.practitioner_a.refresh_from_db()
    assert world.practitioner_a.is_active
    assert clinic_ids_for_staff(world.practitioner_a) == set()


def test_an_admin_of_clinic_b_cannot_deactivate_staff_of_clinic_a(world):
    target = world.membership(world.receptionist_a)

    with pytest.raises(PermissionDenied):
        membership_deactivate(by=world.admin_b, membership=target)

    target.refresh_from_db()
    assert target.is_active


def test_a_receptionist_cannot_deactivate_anyone(world):
    for target in (world.membership(world.practitioner_a), world.membership(world.admin_a)):
        with pytest.raises(PermissionDenied):
            membership_deactivate(by=world.receptionist_a, membership=target)
        target.refresh_from_db()
        assert target.is_active


def test_an_admin_cannot_deactivate_their_own_membership(world):
    with pytest.raises(ValidationError):
        membership_deactivate(by=world.admin_a, membership=world.membership(world.admin_a))


def test_a_deactivated_admin_can_no_longer_deactivate_anyone(world):
    second_admin = ClinicMembership.objects.create(
        user=world.admin_b, clinic=world.clinic_a, role=ClinicMembership.Role.CLINIC_ADMIN
    )
    membership_deactivate(by=world.admin_a, membership=second_admin)

    with pytest.raises(PermissionDenied):
        membership_deactivate(by=world.admin_b, membership=world.membership(world.receptionist_a))


def test_deactivating_twice_changes_nothing(world):
    target = world.membership(world.receptionist_a)
    assert membership_deactivate(by=world.admin_a, membership=target) is True
    first = ClinicMembership.objects.get(pk=target.pk).deactivated_at

    assert membership_deactivate(by=world.admin_a, membership=target) is False
    assert ClinicMembership.objects.get(pk=target.pk).deactivated_at == first
