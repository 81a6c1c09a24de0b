"""Personas for the FHIR API: EMR client A (clinic A, product ClinIQ), EMR client B (clinic B, Santexa).

Clients are created with the real management command and get real tokens from /oauth/token/.
"""

import base64
import io
from dataclasses import dataclass

import pytest
from django.core.management import call_command

from tests.factories import ClinicFactory, RoleFactory, SlotFactory

FHIR = "/fhir/r4/"


@dataclass
class EmrPersona:
    client_id: str
    secret: str
    clinic: object
    role: object

    def basic(self, secret: str | None = None) -> str:
        raw = f"{self.client_id}:{secret or self.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def create_client(product: str, *clinics, scopes=(), version: str = "1.0") -> tuple[str, str]:
    """A production client of ``product`` ("Vendor|Product") declaring ``version``, certified first
    when clinics are given (only certified versions reach production clinics)."""
    if clinics:
        call_command(
            "sync_version_certify",
            "--product",
            product,
            "--product-version",
            version,
            "--note",
            "Test fixture.",
            stdout=io.StringIO(),
        )
    out = io.StringIO()
    args = ["sync_client_create", "--product", product, "--product-version", version]
    for clinic in clinics:
        args += ["--clinic", str(clinic.pk)]
    for scope in scopes:
        args += ["--scope", scope]
    call_command(*args, stdout=out)
    values = dict(line.split("=", 1) for line in out.getvalue().splitlines() if "=" in line)
    return values["client_id"], values["client_secret"]


def get_token(django_client, persona: EmrPersona, scope: str | None = None) -> str:
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    response = django_client.post("/oauth/token/", data, HTTP_AUTHORIZATION=persona.basic())
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


@pytest.fixture
def persona_a(db):
    clinic = ClinicFactory(emr_product="ClinIQ")
    role = RoleFactory(clinic=clinic)
    client_id, secret = create_client("Vendeur A|ClinIQ", clinic)
    return EmrPersona(client_id, secret, clinic, role)


@pytest.fixture
def persona_b(db):
    clinic = ClinicFactory(emr_product="Santexa")
    role = RoleFactory(clinic=clinic)
    client_id, secret = create_client("Vendeur B|Santexa", clinic)
    return EmrPersona(client_id, secret, clinic, role)


@pytest.fixture
def fhir_a(client, persona_a):
    """A Django test client carrying EMR client A's bearer token."""
    token = get_token(client, persona_a)
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


@pytest.fixture
def slot_a(persona_a):
    return SlotFactory(role=persona_a.role, external_id="A-1")


@pytest.fixture
def slot_b(persona_b):
    return SlotFactory(role=persona_b.role, external_id="B-1")
