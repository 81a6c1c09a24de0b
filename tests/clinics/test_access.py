"""The staff gate: signed in, staff, a second factor set up and proven in this session."""

import pytest
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY
from django.test import Client
from django.urls import reverse

from clinics.models import ClinicMembership

from .conftest import make_staff, secret_for, sign_in, totp_code

pytestmark = pytest.mark.django_db

HOME = "/clinique/"


def test_an_anonymous_visitor_is_sent_to_sign_in_and_back(client):
    response = client.get(HOME)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?next=/clinique/"


def test_a_citizen_account_cannot_enter_the_staff_area(world, client_as):
    response = client_as("citizen_user").get(HOME)

    assert response.status_code == 403
    assert "clinics/not_staff.html" in [t.name for t in response.templates]
    assert "Clinique A" not in response.content.decode()


def test_staff_without_a_second_factor_are_sent_to_set_up_totp(world):
    newcomer = make_staff(world.clinic_a, ClinicMembership.Role.RECEPTIONIST, with_totp=False)
    client = sign_in(Client(), newcomer)

    response = client.get(reverse("clinics:agenda", args=[world.clinic_a.pk]))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("mfa_activate_totp") + "?next=")
    # allauth asks for the password again before adding an authenticator, then shows the QR code.
    follow = client.get(response["Location"])
    assert follow["Location"].startswith(reverse("account_reauthenticate"))
    client.post(reverse("account_reauthenticate"), {"password": "correct horse battery"})
    setup = client.get(reverse("mfa_activate_totp"))
    assert setup.status_code == 200
    assert client.session[SECRET_SESSION_KEY] in setup.content.decode()  # typed in if not scanned


def test_a_password_alone_does_not_sign_staff_in(world):
    client = Client()
    response = client.post(
        reverse("account_login"), {"login": world.receptionist_a.email, "password": "correct horse battery"}
    )

    assert response["Location"].startswith(reverse("mfa_authenticate"))
    assert "_auth_user_id" not in client.session
    assert client.get(HOME).status_code == 302


def test_a_wrong_totp_code_does_not_sign_staff_in(world):
    client = Client()
    client.post(
        reverse("account_login"), {"login": world.receptionist_a.email, "password": "correct horse battery"}
    )
    right = totp_code(secret_for(world.receptionist_a))
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    response = client.post(reverse("mfa_authenticate"), {"code": wrong})

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_staff_signed_in_with_password_and_totp_get_in(world, client_as):
    response = client_as("receptionist_a").get(HOME)

    assert response.status_code == 200
    assert "Clinique A" in response.content.decode()
    assert "Clinique B" not in response.content.decode()
    assert response["Cache-Control"] == "no-store, private"


def test_setting_up_totp_after_signing_in_opens_the_staff_area(world):
    newcomer = make_staff(world.clinic_a, ClinicMembership.Role.RECEPTIONIST, with_totp=False)
    client = sign_in(Client(), newcomer)
    assert client.get(HOME).status_code == 302

    client.post(reverse("account_reauthenticate"), {"password": "correct horse battery"})
    client.get(reverse("mfa_activate_totp"))  # shows the QR code; the secret waits in the session
    secret = client.session[SECRET_SESSION_KEY]
    response = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})

    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_view_recovery_codes")  # recovery codes come with it
    assert client.get(reverse("mfa_view_recovery_codes")).status_code == 200
    assert client.get(HOME).status_code == 200


def test_a_session_that_skipped_the_second_factor_must_prove_it(world):
    client = Client()
    client.force_login(world.receptionist_a)  # as any sign-in path other than allauth's would

    response = client.get(HOME)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('mfa_reauthenticate')}?next=%2Fclinique%2F"
    response = client.post(
        reverse("mfa_reauthenticate"), {"code": totp_code(secret_for(world.receptionist_a)), "next": HOME}
    )
    assert response.status_code == 302
    assert client.get(HOME).status_code == 200


def test_a_deactivated_membership_no_longer_opens_the_staff_area(world, client_as):
    client = client_as("practitioner_a")
    ClinicMembership.objects.filter(user=world.practitioner_a).update(
        is_active=False, deactivated_at="2027-01-01T00:00Z"
    )

    assert client.get(HOME).status_code == 403
    assert client.get(reverse("clinics:agenda", args=[world.clinic_a.pk])).status_code == 403


def test_a_board_administrator_enters_the_staff_area_but_sees_no_clinic(world, client_as):
    client = client_as("board_admin")

    response = client.get(HOME)

    assert response.status_code == 200
    assert "Clinique A" not in response.content.decode()
    assert client.get(reverse("clinics:agenda", args=[world.clinic_a.pk])).status_code == 404


def test_webauthn_security_keys_can_be_added(world, client_as):
    client = client_as("admin_a")
    client.post(reverse("account_reauthenticate"), {"password": "correct horse battery"})

    response = client.get(reverse("mfa_add_webauthn"))

    assert response.status_code == 200
    assert "mfa/js/webauthn" in response.content.decode()  # allauth's own script, served as is
