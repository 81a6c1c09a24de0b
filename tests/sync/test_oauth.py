"""OAuth 2.0 client credentials at /oauth/token/: secrets, scopes, lifetimes, inactive clients."""

import io

import pytest
from django.contrib.auth.hashers import check_password, identify_hasher
from django.core.management import CommandError, call_command
from oauth2_provider.models import AccessToken, Application

from sync.models import EmrClient
from tests.factories import ClinicFactory

from .conftest import FHIR, EmrPersona, create_client, get_token


def test_the_right_secret_gets_a_bearer_token_valid_one_hour_with_every_allowed_scope(client, persona_a):
    response = client.post(
        "/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=persona_a.basic()
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert "system/Slot.read" in body["scope"].split()
    assert "system/Appointment.write" in body["scope"].split()


def test_a_wrong_secret_gets_401_json_and_no_token(client, persona_a):
    response = client.post(
        "/oauth/token/",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=persona_a.basic(secret="not-the-secret"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert not AccessToken.objects.exists()


def test_the_secret_is_stored_hashed_and_the_token_only_as_a_checksum(client, persona_a):
    application = Application.objects.get(client_id=persona_a.client_id)
    assert application.client_secret != persona_a.secret
    identify_hasher(application.client_secret)  # raises if it is not a Django password hash
    assert check_password(persona_a.secret, application.client_secret)
    token = get_token(client, persona_a)
    stored = AccessToken.objects.get()
    assert stored.token != token


def test_a_client_may_ask_only_for_its_own_scopes(client, db):
    clinic = ClinicFactory(emr_product="ClinIQ")
    client_id, secret = create_client("Vendeur A|ClinIQ", clinic, scopes=["system/Slot.read"])
    persona = EmrPersona(client_id, secret, clinic, None)
    refused = client.post(
        "/oauth/token/",
        {"grant_type": "client_credentials", "scope": "system/Slot.read system/Slot.write"},
        HTTP_AUTHORIZATION=persona.basic(),
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"
    default = client.post(
        "/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=persona.basic()
    )
    assert default.json()["scope"] == "system/Slot.read"


def test_a_narrower_scope_can_be_requested(client, persona_a):
    token = get_token(client, persona_a, scope="system/Slot.read")
    assert AccessToken.objects.get().scope == "system/Slot.read"
    assert token


def test_an_inactive_client_gets_no_token_and_its_tokens_are_refused(client, persona_a):
    token = get_token(client, persona_a)
    EmrClient.objects.update(is_active=False)
    response = client.post(
        "/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=persona_a.basic()
    )
    assert response.status_code == 401
    read = client.get(f"{FHIR}Location/{persona_a.clinic.pk}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert read.status_code == 401
    assert read.json()["issue"][0]["code"] == "login"


def test_a_token_in_the_query_string_is_not_accepted(client, persona_a):
    token = get_token(client, persona_a)
    response = client.get(f"{FHIR}Location/{persona_a.clinic.pk}?access_token={token}")
    assert response.status_code in (400, 401)
    assert response.json()["resourceType"] == "OperationOutcome"


def test_the_command_refuses_a_clinic_that_uses_another_product(db):
    clinic = ClinicFactory(emr_product="Santexa")
    with pytest.raises(CommandError, match="uses 'Santexa'"):
        call_command("sync_client_create", "--product", "Vendeur A|ClinIQ", "--clinic", str(clinic.pk))
    assert not EmrClient.objects.exists()


def test_the_command_prints_the_secret_once_and_refuses_a_bad_product(db):
    out = io.StringIO()
    call_command("sync_client_create", "--product", "Vendeur A|ClinIQ", stdout=out)
    assert "client_secret=" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("sync_client_create", "--product", "ClinIQ")
