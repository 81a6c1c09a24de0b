"""Signing in is throttled (ACCOUNT_RATE_LIMITS, allauth, counters in Redis): after five failed
passwords for one account, or five wrong second-factor codes, the next attempt is refused even with
the right secret, with a clear message in French and in English, until the window has passed."""

import time
from types import SimpleNamespace

import pytest
from allauth.core.internal import ratelimit as allauth_ratelimit
from django.test import Client
from django.urls import reverse

from clinics.models import ClinicMembership
from tests.clinics.conftest import PASSWORD, make_account, make_staff, secret_for, totp_code
from tests.factories import ClinicFactory

REFUSED = {
    "fr": "Trop de tentatives de connexion échouées. Veuillez réessayer ultérieurement.",
    "en": "Too many failed login attempts. Try again later.",
}
WRONG_PASSWORD = {
    "fr": "L’adresse e-mail ou le mot de passe sont incorrects.",  # allauth's own catalogue,
    "en": "The email address and/or password you specified are not correct.",
}


def later(monkeypatch, seconds: float) -> None:
    """allauth's rate-limit clock, moved forward (its counters are timestamps kept in Redis)."""
    clock = SimpleNamespace(time=lambda: time.time() + seconds, monotonic=time.monotonic)
    monkeypatch.setattr(allauth_ratelimit, "time", clock)


def post_login(client: Client, email: str, password: str, language: str):
    return client.post(
        reverse("account_login"), {"login": email, "password": password}, HTTP_ACCEPT_LANGUAGE=language
    )


@pytest.fixture
def staff(db):
    return make_staff(ClinicFactory(), ClinicMembership.Role.RECEPTIONIST)


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("persona", ["citizen account", "clinic staff"])
def test_the_sixth_failed_password_for_an_account_is_refused_even_when_right(db, staff, persona, language):
    user = staff if persona == "clinic staff" else make_account()
    client = Client()
    for _ in range(5):
        response = post_login(client, user.email, "not the password", language)
        assert response.status_code == 200
        assert WRONG_PASSWORD[language] in response.content.decode().replace("&#x27;", "’")
    response = post_login(client, user.email, PASSWORD, language)
    assert response.status_code == 200
    assert REFUSED[language] in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert 'lang="' + language in response.content.decode()


def test_the_limit_is_per_account_and_lifts_after_five_minutes(db, staff, monkeypatch):
    other = make_account()
    client = Client()
    for _ in range(5):
        post_login(client, staff.email, "not the password", "en")
    assert REFUSED["en"] in post_login(client, staff.email, PASSWORD, "en").content.decode()
    # Another account from the same address is not locked by someone else's failures.
    assert post_login(Client(), other.email, PASSWORD, "en").status_code == 302
    later(monkeypatch, 5 * 60 + 1)
    response = post_login(client, staff.email, PASSWORD, "en")
    assert response.status_code == 302  # on to the second factor
    assert response["Location"].startswith(reverse("mfa_authenticate"))


def test_one_address_cannot_try_more_than_ten_accounts_a_minute(db):
    accounts = [make_account() for _ in range(11)]
    client = Client()
    for account in accounts[:10]:
        assert REFUSED["en"] not in post_login(client, account.email, "wrong", "en").content.decode()
    assert REFUSED["en"] in post_login(client, accounts[10].email, PASSWORD, "en").content.decode()


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_sixth_second_factor_code_is_refused_even_when_right(staff, language):
    client = Client()
    response = post_login(client, staff.email, PASSWORD, language)
    assert response["Location"].startswith(reverse("mfa_authenticate"))
    wrong = f"{(int(totp_code(secret_for(staff))) + 1) % 1_000_000:06d}"
    incorrect = {"fr": "Code incorrect.", "en": "Incorrect code."}[language]
    for _ in range(5):
        response = client.post(reverse("mfa_authenticate"), {"code": wrong}, HTTP_ACCEPT_LANGUAGE=language)
        assert response.status_code == 200
        assert incorrect in response.content.decode()
    response = client.post(
        reverse("mfa_authenticate"), {"code": totp_code(secret_for(staff))}, HTTP_ACCEPT_LANGUAGE=language
    )
    assert response.status_code == 200
    assert REFUSED[language] in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_behind_the_load_balancer_the_address_limit_counts_each_client_not_the_balancer(db, settings):
    assert settings.ALLAUTH_TRUSTED_PROXY_COUNT == settings.TRUSTED_PROXY_COUNT
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = settings.TRUSTED_PROXY_COUNT = 1
    accounts = [make_account() for _ in range(11)]
    balancer = {"REMOTE_ADDR": "10.0.0.2"}
    for n, account in enumerate(accounts[:10]):
        client = Client(HTTP_X_FORWARDED_FOR=f"198.51.100.{n}", **balancer)
        post_login(client, account.email, "wrong", "en")
    someone_else = Client(HTTP_X_FORWARDED_FOR="203.0.113.7", **balancer)
    assert post_login(someone_else, accounts[10].email, PASSWORD, "en").status_code == 302
    # One client failing ten times is refused, whatever it writes further left in the header.
    attacker = Client(HTTP_X_FORWARDED_FOR="192.0.2.66", **balancer)
    for account in accounts[:10]:
        post_login(attacker, account.email, "wrong", "en")
    spoofing = Client(HTTP_X_FORWARDED_FOR="203.0.113.99, 192.0.2.66", **balancer)
    assert REFUSED["en"] in post_login(spoofing, accounts[10].email, PASSWORD, "en").content.decode()
