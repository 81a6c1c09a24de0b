"""Personas for the clinic pages, signed in the real way: password, then a TOTP code.

Admin A, receptionist A and practitioner A work at clinic A; admin B at clinic B; a board
administrator; a citizen with an ordinary account; an anonymous visitor. Each staff persona has a
TOTP authenticator whose secret the tests know, so they compute real codes with allauth's own
HOTP function, as a phone would.
"""

import time
from dataclasses import dataclass

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.test import Client
from django.urls import reverse

from clinics.models import BoardRole, ClinicMembership
from tests.factories import ClinicFactory, RoleFactory, UserFactory

PASSWORD = "correct horse battery"  # UserFactory's


def totp_code(secret: str, *, step_offset: int = 0) -> str:
    """The code an authenticator app shows now (``step_offset`` 30-second steps later).

    allauth refuses a code used twice; a second sign-in of one person in one test passes a
    different step, which the one-step tolerance (MFA_TOTP_TOLERANCE) accepts.
    """
    counter = int(time.time()) // mfa_settings.TOTP_PERIOD
    return format_hotp_value(hotp_value(secret, counter + step_offset))


# Each account's TOTP secret, as its authenticator app knows it after scanning the QR code. Random:
# parallel test workers share Redis, where allauth remembers used codes by user id and code.
_SECRETS: dict[int, str] = {}


def secret_for(user) -> str:
    return _SECRETS[user.pk]


def make_account(*, email_verified: bool = True, with_totp: bool = False, **fields):
    user = UserFactory(**fields)
    user.save()
    EmailAddress.objects.create(user=user, email=user.email, verified=email_verified, primary=True)
    if with_totp:
        _SECRETS[user.pk] = generate_totp_secret()
        TOTP.activate(user, _SECRETS[user.pk])
    return user


def make_staff(clinic, role, *, with_totp: bool = True, practitioner=None, **fields):
    user = make_account(with_totp=with_totp, **fields)
    ClinicMembership.objects.create(user=user, clinic=clinic, role=role, practitioner=practitioner)
    return user


def sign_in(client: Client, user, *, step_offset: int = 0) -> Client:
    """allauth's sign-in: e-mail and password, then the TOTP code when the account has one."""
    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    if response["Location"].startswith(reverse("mfa_authenticate")):
        code = totp_code(secret_for(user), step_offset=step_offset)
        response = client.post(reverse("mfa_authenticate"), {"code": code})
        assert response.status_code == 302, response.content[:500]
    assert "_auth_user_id" in client.session
    return client


@dataclass
class World:
    clinic_a: object
    clinic_b: object
    role_a: object
    role_b: object
    admin_a: object
    receptionist_a: object
    practitioner_a: object
    admin_b: object
    board_admin: object
    citizen_user: object

    def membership(self, user, clinic=None):
        return ClinicMembership.objects.get(user=user, clinic=clinic or self.clinic_a)


@pytest.fixture
def world(db) -> World:
    clinic_a = ClinicFactory(name="Clinique A")
    clinic_b = ClinicFactory(name="Clinique B")
    role_a = RoleFactory(clinic=clinic_a)
    role_b = RoleFactory(clinic=clinic_b)
    board_admin = make_account(with_totp=True)
    BoardRole.objects.create(user=board_admin, role=BoardRole.Role.BOARD_ADMIN)
    return World(
        clinic_a=clinic_a,
        clinic_b=clinic_b,
        role_a=role_a,
        role_b=role_b,
        admin_a=make_staff(clinic_a, ClinicMembership.Role.CLINIC_ADMIN),
        receptionist_a=make_staff(clinic_a, ClinicMembership.Role.RECEPTIONIST),
        practitioner_a=make_staff(
            clinic_a, ClinicMembership.Role.PRACTITIONER, practitioner=role_a.practitioner
        ),
        admin_b=make_staff(clinic_b, ClinicMembership.Role.CLINIC_ADMIN),
        board_admin=board_admin,
        citizen_user=make_account(),
    )


@pytest.fixture
def client_as(world):
    """A client signed in as a persona by name ("anonymous" stays signed out); one per persona per
    test, as one browser each (a TOTP code cannot be used twice)."""
    clients: dict[str, Client] = {}

    def make(persona: str) -> Client:
        if persona not in clients:
            client = Client()
            clients[persona] = client if persona == "anonymous" else sign_in(client, getattr(world, persona))
        return clients[persona]

    return make


__all__ = ["Authenticator", "World", "make_account", "make_staff", "secret_for", "sign_in", "totp_code"]
