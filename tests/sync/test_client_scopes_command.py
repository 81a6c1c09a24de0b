"""``manage.py sync_client_scopes``: scopes added to (or removed from) existing EMR clients, checked
against the known set, idempotent, printed, audited in the staff hash chain; a removal revokes the
client's tokens at once."""

import io

import pytest
from django.core.management import CommandError, call_command
from oauth2_provider.models import AccessToken

from clinics.audit_chain import chain_for_model, chain_verify
from clinics.models import StaffAuditEvent
from sync.models import EmrClient
from tests.factories import ClinicFactory, RoleFactory, UserFactory

from .conftest import EmrPersona, create_client, get_token

OLD_SCOPES = ("system/Slot.read", "system/Slot.write", "system/Appointment.read")


@pytest.fixture
def operator(db):
    return UserFactory(email="operateur@example.org", is_staff=True)


@pytest.fixture
def old_client(db):
    """A client made before the Task scopes existed: its list lacks them."""
    clinic = ClinicFactory(emr_product="ClinIQ")
    role = RoleFactory(clinic=clinic)
    client_id, secret = create_client("Vendeur A|ClinIQ", clinic, scopes=OLD_SCOPES)
    return EmrPersona(client_id, secret, clinic, role)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("sync_client_scopes", *args, stdout=out)
    return out.getvalue()


def scopes_of(persona) -> list[str]:
    return EmrClient.objects.get(application__client_id=persona.client_id).scopes.split()


def test_adding_the_task_scopes_lets_the_client_ask_for_them_and_is_audited(client, old_client, operator):
    refused = client.post(
        "/oauth/token/",
        {"grant_type": "client_credentials", "scope": "system/Task.read"},
        HTTP_AUTHORIZATION=old_client.basic(),
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"

    out = run(
        "--client", old_client.client_id, "--add", "system/Task.read", "system/Task.write",
        "--by", operator.email,
    )  # fmt: skip
    assert f"client_id={old_client.client_id} changed: added system/Task.read system/Task.write" in out
    assert scopes_of(old_client) == [*OLD_SCOPES, "system/Task.read", "system/Task.write"]
    assert get_token(client, old_client, scope="system/Task.read system/Task.write")

    row = EmrClient.objects.get(application__client_id=old_client.client_id)
    (audit,) = StaffAuditEvent.objects.filter(resource_type="EmrClient", resource_id=row.pk)
    assert (audit.user, audit.action, audit.purpose) == (operator, "scopes", "emr-client")
    assert chain_verify(chain_for_model(StaffAuditEvent)).ok

    # Idempotent: the same command again changes nothing and records nothing.
    again = run("--client", old_client.client_id, "--add", "system/Task.read", "--by", operator.email)
    assert "unchanged" in again and "0 client(s) changed." in again
    assert StaffAuditEvent.objects.filter(resource_type="EmrClient").count() == 1


def test_all_clients_and_a_dry_run_that_writes_nothing(old_client, persona_b, operator):
    out = run("--all", "--add", "system/Task.read", "--dry-run")
    assert f"client_id={old_client.client_id} would change: added system/Task.read" in out
    assert f"client_id={persona_b.client_id} unchanged" in out  # made with every scope
    assert "system/Task.read" not in scopes_of(old_client)
    assert not StaffAuditEvent.objects.exists()

    run("--all", "--add", "system/Task.read", "--by", operator.email)
    assert "system/Task.read" in scopes_of(old_client)


def test_a_removal_revokes_the_tokens_at_once(client, old_client, operator):
    token = get_token(client, old_client)
    assert client.get("/fhir/r4/Slot", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    out = run("--client", old_client.client_id, "--remove", "system/Slot.write", "--by", operator.email)
    assert "removed system/Slot.write" in out
    assert scopes_of(old_client) == ["system/Slot.read", "system/Appointment.read"]
    assert not AccessToken.objects.filter(token=token).exists()
    assert client.get("/fhir/r4/Slot", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--add", "system/Task.admin"],
            "Unknown scopes: system/Task.admin. Known scopes: system/Location.read",
        ),
        (["--remove", "Slot.read"], "Unknown scopes: Slot.read"),
        ([], "Give --add and/or --remove."),
        (["--add", "system/Task.read", "--remove", "system/Task.read"], "Both added and removed"),
        (["--add", "system/Task.read"], "--by must be the e-mail of an active staff account"),
        (["--add", "system/Task.read", "--by", "nobody@example.org"], "--by must be"),
    ],
)
def test_refusals_are_clear_and_change_nothing(old_client, args, message):
    with pytest.raises(CommandError, match=message.replace(".", r"\.").replace("+", r"\+")):
        run("--client", old_client.client_id, *args)
    assert scopes_of(old_client) == list(OLD_SCOPES)


def test_an_unknown_client_id_is_refused(db, operator):
    with pytest.raises(CommandError, match="No EMR client has the client_id nope"):
        run("--client", "nope", "--add", "system/Task.read", "--by", operator.email)
