"""``manage.py create_board_user``: a board administrator or analyst from the command line, then the
product's own first sign-in (password from the one-time link, TOTP set-up before any board page)."""

import io
import logging
import re

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from citizens.models import User
from clinics.models import BoardRole, StaffAuditEvent
from tests.clinics.conftest import PASSWORD, make_account, totp_code

NEW_PASSWORD = "Une phrase de passe assez longue 42"
LINK = re.compile(r"https?://\S+(/comptes/password/reset/key/\S+/)")

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("create_board_user", *args, stdout=out)
    return out.getvalue()


def test_a_new_board_administrator_chooses_a_password_from_the_link_then_must_enrol_totp(caplog):
    caplog.set_level(logging.DEBUG)
    out = run("--email", "Nadia.Admin@Sante.example", "--role", "admin")

    user = User.objects.get(email__iexact="nadia.admin@sante.example")
    assert not user.has_usable_password()  # nothing to print, nothing to leak
    assert EmailAddress.objects.get(user=user).verified  # sign-in requires a verified address
    assert BoardRole.objects.filter(user=user, role=BoardRole.Role.BOARD_ADMIN, is_active=True).count() == 1
    assert StaffAuditEvent.objects.filter(resource_type="BoardRole", action="grant", user=user).count() == 1
    assert "Second factor: not enrolled yet" in out
    assert "/clinique/" in out
    assert "Nadia.Admin" not in caplog.text and "sante.example" not in caplog.text.lower()

    # The one-time link, as the person opens it: allauth's password-set page.
    path = LINK.search(out).group(1)
    client = Client()
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200
    set_url = form_page.redirect_chain[-1][0] if form_page.redirect_chain else path
    done = client.post(set_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302, done.content[:500]
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    # Dead once used.
    again = Client().get(path, follow=True)
    assert "password1" not in again.content.decode()

    # First sign-in: no board page opens before a second factor is set up.
    client = Client()
    signed = client.post(reverse("account_login"), {"login": user.email, "password": NEW_PASSWORD})
    assert signed.status_code == 302
    for page in ("/clinique/", "/soutien/"):
        response = client.get(page)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("mfa_activate_totp"))
    client.post(reverse("account_reauthenticate"), {"password": NEW_PASSWORD})
    client.get(reverse("mfa_activate_totp"))
    secret = client.session[SECRET_SESSION_KEY]
    assert client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)}).status_code == 302
    assert client.get("/clinique/").status_code == 200
    assert client.get("/soutien/").status_code == 200
    assert client.get("/analyses/").status_code == 403  # an administrator is not an analyst

    assert "Second factor: already enrolled." in run("--email", user.email, "--role", "admin")


def test_running_it_again_changes_nothing_and_prints_a_fresh_link_until_a_password_is_chosen():
    first = run("--email", "analyste@sante.example", "--role", "analyst")
    second = run("--email", "ANALYSTE@sante.example", "--role", "analyst")

    assert User.objects.filter(email__iexact="analyste@sante.example").count() == 1
    assert BoardRole.objects.filter(role=BoardRole.Role.ANALYST).count() == 1
    assert StaffAuditEvent.objects.filter(resource_type="BoardRole").count() == 1
    assert "already had this role: nothing changed" in second
    assert LINK.search(first) and LINK.search(second)
    assert "/analyses/" in second


def test_an_existing_account_is_promoted_and_keeps_its_password():
    person = make_account(with_totp=True)
    out = run("--email", person.email, "--role", "analyst")

    person.refresh_from_db()
    assert person.check_password(PASSWORD)
    assert not LINK.search(out)  # a password exists: no link is minted
    assert "Second factor: already enrolled." in out
    assert BoardRole.objects.get(user=person).role == BoardRole.Role.ANALYST
    # Both roles may be held; the second is added beside the first.
    run("--email", person.email, "--role", "admin")
    assert set(BoardRole.objects.filter(user=person).values_list("role", flat=True)) == {
        "analyst",
        "board_admin",
    }


def test_an_inactive_role_is_reactivated_and_audited_again():
    person = make_account()
    role = BoardRole.objects.create(user=person, role=BoardRole.Role.BOARD_ADMIN, is_active=False)
    out = run("--email", person.email, "--role", "admin")
    role.refresh_from_db()
    assert role.is_active
    assert "role granted" in out
    assert StaffAuditEvent.objects.filter(resource_type="BoardRole", resource_id=role.pk).count() == 1


def test_a_deactivated_account_needs_reactivate_and_nothing_changes_without_it():
    person = make_account(is_active=False)
    with pytest.raises(CommandError, match="deactivated"):
        run("--email", person.email, "--role", "admin")
    assert not BoardRole.objects.filter(user=person).exists()

    run("--email", person.email, "--role", "admin", "--reactivate")
    person.refresh_from_db()
    assert person.is_active
    assert BoardRole.objects.filter(user=person, is_active=True).exists()


def test_a_bad_address_is_refused():
    with pytest.raises(CommandError, match="not an e-mail address"):
        run("--email", "not-an-address", "--role", "admin")
    assert not User.objects.exists()


def test_set_password_prompts_and_validates_without_echoing(monkeypatch, capsys):
    answers = iter(["short", "short"])
    monkeypatch.setattr("clinics.management.commands.create_board_user.getpass", lambda prompt: next(answers))
    with pytest.raises(CommandError, match="Password refused"):
        run("--email", "chef@sante.example", "--role", "admin", "--set-password")
    assert not User.objects.exists()  # all or nothing

    answers = iter([NEW_PASSWORD, NEW_PASSWORD])
    out = run("--email", "chef@sante.example", "--role", "admin", "--set-password")
    user = User.objects.get(email="chef@sante.example")
    assert user.check_password(NEW_PASSWORD)
    assert NEW_PASSWORD not in out and NEW_PASSWORD not in capsys.readouterr().out
    assert not LINK.search(out)

    answers = iter([NEW_PASSWORD, NEW_PASSWORD + "!"])
    with pytest.raises(CommandError, match="differ"):
        run("--email", "autre@sante.example", "--role", "admin", "--set-password")
