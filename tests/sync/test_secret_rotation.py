"""Client secret rotation with an overlap: the old secret works until the overlap ends, then never.

The clock is faked by moving ``django.utils.timezone.now`` (the token endpoint and the rotation
read it), never by touching our code or the database.
"""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.hashers import check_password, identify_hasher
from django.core.management import CommandError, call_command
from django.utils import timezone
from oauth2_provider.models import Application

from sync.credentials import client_secret_overlap_end, client_secret_rotate
from sync.models import EmrClient, EmrClientRetiredSecret

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch):
    """``clock.at(moment)`` sets the application clock."""

    class Clock:
        now = T0

        def at(self, moment):
            self.now = moment

    fake = Clock()
    monkeypatch.setattr(timezone, "now", lambda: fake.now)
    return fake


def token_status(client, persona, secret):
    response = client.post(
        "/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=persona.basic(secret=secret)
    )
    return response.status_code


def rotate(persona, *args):
    out = io.StringIO()
    call_command("sync_client_rotate_secret", "--client-id", persona.client_id, *args, stdout=out)
    return dict(line.split("=", 1) for line in out.getvalue().splitlines() if "=" in line)


def test_both_secrets_work_during_the_overlap_and_only_the_new_one_after(client, persona_a, clock):
    old = persona_a.secret
    values = rotate(persona_a)  # default: 7 days
    new = values["client_secret"]
    assert new != old
    assert datetime.fromisoformat(values["old_secret_valid_until"]) == T0 + timedelta(days=7)

    clock.at(T0 + timedelta(days=6, hours=23))
    assert token_status(client, persona_a, old) == 200
    assert token_status(client, persona_a, new) == 200

    clock.at(T0 + timedelta(days=7))
    assert token_status(client, persona_a, old) == 401
    assert token_status(client, persona_a, new) == 200


def test_secrets_stay_hashed_at_rest(persona_a, clock):
    new = rotate(persona_a)["client_secret"]
    application = Application.objects.get(client_id=persona_a.client_id)
    identify_hasher(application.client_secret)
    assert check_password(new, application.client_secret)
    retired = EmrClientRetiredSecret.objects.get()
    identify_hasher(retired.secret_hash)
    assert check_password(persona_a.secret, retired.secret_hash)
    assert persona_a.secret not in retired.secret_hash and new not in application.client_secret


def test_an_overlap_of_zero_refuses_the_old_secret_at_once(client, persona_a, clock):
    new = rotate(persona_a, "--overlap-days", "0")["client_secret"]
    assert token_status(client, persona_a, persona_a.secret) == 401
    assert token_status(client, persona_a, new) == 200
    assert not EmrClientRetiredSecret.objects.exists()


def test_ending_the_overlap_early_refuses_the_old_secret(client, persona_a, clock):
    new = rotate(persona_a)["client_secret"]
    clock.at(T0 + timedelta(days=1))
    out = io.StringIO()
    call_command("sync_client_rotate_secret", "--client-id", persona_a.client_id, "--end-overlap", stdout=out)
    assert "1 old secret" in out.getvalue()
    assert token_status(client, persona_a, persona_a.secret) == 401
    assert token_status(client, persona_a, new) == 200


def test_a_second_rotation_keeps_each_old_secret_to_its_own_expiry(client, persona_a, clock):
    client_a = EmrClient.objects.get(application__client_id=persona_a.client_id)
    first, _until = client_secret_rotate(emr_client=client_a, overlap=timedelta(days=7))
    clock.at(T0 + timedelta(days=2))
    second, _until = client_secret_rotate(emr_client=client_a, overlap=timedelta(days=1))
    assert token_status(client, persona_a, persona_a.secret) == 200  # until T0 + 7 days
    assert token_status(client, persona_a, first) == 200  # until T0 + 3 days
    clock.at(T0 + timedelta(days=3))
    assert token_status(client, persona_a, first) == 401
    assert token_status(client, persona_a, persona_a.secret) == 200
    assert token_status(client, persona_a, second) == 200
    assert client_secret_overlap_end(emr_client=client_a) == 1
    assert token_status(client, persona_a, persona_a.secret) == 401


def test_an_old_secret_of_one_client_never_opens_another(client, persona_a, persona_b, clock):
    rotate(persona_a)
    assert token_status(client, persona_b, persona_a.secret) == 401


def test_an_inactive_client_gets_no_token_even_with_an_old_secret(client, persona_a, clock):
    rotate(persona_a)
    EmrClient.objects.filter(application__client_id=persona_a.client_id).update(is_active=False)
    assert token_status(client, persona_a, persona_a.secret) == 401


def test_the_command_refuses_an_unknown_client_and_a_bad_overlap(persona_a):
    with pytest.raises(CommandError, match="client_id"):
        call_command("sync_client_rotate_secret", "--client-id", "nobody", stdout=io.StringIO())
    with pytest.raises(CommandError, match="0 to 90"):
        rotate(persona_a, "--overlap-days", "365")
    assert not EmrClientRetiredSecret.objects.exists()
