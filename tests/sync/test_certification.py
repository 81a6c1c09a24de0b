"""Certification: only certified product versions reach production clinics (docs/vendors.md).

Enforced where grants are made (``grant_create``, the ``sync_client_create`` command) and on every
API call (``clinic_ids_for_emr_client``: a client whose declared version is not certified has no
production clinic, so every production resource is 404, as another clinic's data).
"""

import importlib
import io

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from clinics.models import StaffAuditEvent
from sync import vendors
from sync.models import EmrClient, EmrProduct, EmrProductVersion, EmrVendor
from sync.selectors import clinic_ids_for_emr_client
from tests.clinics.conftest import client_as, make_account, sign_in, world
from tests.factories import ClinicFactory

from .conftest import FHIR, create_client, get_token

__all__ = ["client_as", "world"]


def _client(persona) -> EmrClient:
    return EmrClient.objects.get(application__client_id=persona.client_id)


def _version(persona) -> EmrProductVersion:
    version = _client(persona).product_version
    assert version is not None
    return version


# --- the API -----------------------------------------------------------------------------------------


def test_revoking_a_version_takes_every_production_clinic_from_its_clients_at_once(
    client, persona_a, slot_a, world
):
    token = get_token(client, persona_a)
    read = lambda: client.get(f"{FHIR}Slot/{slot_a.pk}", HTTP_AUTHORIZATION=f"Bearer {token}")  # noqa: E731
    assert read().status_code == 200

    vendors.version_revoke(version_id=_version(persona_a).pk, by=world.board_admin, note="Faille trouvée.")

    assert read().status_code == 404  # the same answer as another clinic's slot
    assert clinic_ids_for_emr_client(_client(persona_a)) == set()


def test_a_client_declaring_an_uncertified_version_reaches_no_production_clinic(persona_a, client, slot_a):
    client_a = _client(persona_a)
    sandbox_version = EmrProductVersion.objects.create(product=client_a.product, version="2.0-beta")
    EmrClient.objects.filter(pk=client_a.pk).update(product_version=sandbox_version)
    token = get_token(client, persona_a)

    assert client.get(f"{FHIR}Slot/{slot_a.pk}", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 404
    EmrClient.objects.filter(pk=client_a.pk).update(product_version=None)
    assert clinic_ids_for_emr_client(EmrClient.objects.get(pk=client_a.pk)) == set()


def test_a_version_of_another_product_certifies_nothing(persona_a, persona_b):
    """A client pointing at a certified version of another product still has no clinic."""
    client_a = _client(persona_a)
    EmrClient.objects.filter(pk=client_a.pk).update(product_version=_version(persona_b))
    assert clinic_ids_for_emr_client(EmrClient.objects.get(pk=client_a.pk)) == set()


# --- where grants are made ------------------------------------------------------------------------------


def test_a_grant_needs_a_certified_version_and_a_production_clinic(db, world):
    product = EmrProduct.objects.create(vendor="Boréal", name="BorealDME")
    clinic = ClinicFactory(emr_product="BorealDME")
    with pytest.raises(ValidationError, match="version certifiée"):
        vendors.grant_create(product=product, clinic=clinic)
    version = EmrProductVersion.objects.create(product=product, version="1.0", status="requested")
    with pytest.raises(ValidationError):
        vendors.grant_create(product=product, clinic=clinic)

    vendors.version_certify(version_id=version.pk, by=world.board_admin, note="Trousse réussie.")
    grant = vendors.grant_create(product=product, clinic=clinic)
    assert grant.clinic == clinic and grant.revoked_at is None
    clinic.is_sandbox = True
    clinic.save()
    with pytest.raises(ValidationError, match="bac à sable"):
        vendors.grant_create(product=product, clinic=clinic)


def test_the_command_refuses_production_clinics_without_a_certified_version(db):
    clinic = ClinicFactory(emr_product="BorealDME")
    for extra in ([], ["--product-version", "3.1"]):
        with pytest.raises(CommandError, match="certified"):
            call_command(
                "sync_client_create",
                "--product",
                "Boréal|BorealDME",
                "--clinic",
                str(clinic.pk),
                *extra,
                stdout=io.StringIO(),
            )
    assert not EmrClient.objects.exists()
    create_client("Boréal|BorealDME", clinic, version="3.1")  # certifies 3.1 first
    assert clinic_ids_for_emr_client(EmrClient.objects.get()) == {clinic.pk}


def test_clients_made_before_certification_keep_their_clinics_through_a_legacy_version(persona_a):
    client_a = _client(persona_a)
    EmrClient.objects.filter(pk=client_a.pk).update(product_version=None)
    migration = importlib.import_module("sync.migrations.0010_vendors")

    migration.grandfather_clients(django_apps, None)

    client_a.refresh_from_db()
    legacy = client_a.product_version
    assert (legacy.version, legacy.status, legacy.product_id) == ("legacy", "certified", client_a.product_id)
    assert clinic_ids_for_emr_client(client_a) == {persona_a.clinic.pk}
    migration.ungrandfather_clients(django_apps, None)
    client_a.refresh_from_db()
    assert (
        client_a.product_version is None and not EmrProductVersion.objects.filter(version="legacy").exists()
    )


# --- the vendor asks, the board decides -----------------------------------------------------------------


@pytest.fixture
def vendor(world):
    user = make_account(email="tech@boreal.example")
    request = vendors.vendor_register(
        user=user,
        company="Boréal",
        product_name="BorealDME",
        technical_email="tech@boreal.example",
        language="fr",
    )
    return vendors.vendor_approve(vendor_id=request.pk, by=world.board_admin), sign_in(Client(), user)


@pytest.fixture
def conforming(vendor, settings):
    """The vendor, once its sandbox client passed every automated scenario (the reference EMR)."""
    from .test_conformance import reference_client
    from .test_sandbox_isolation import sandbox_for

    settings.SYNC_FEED_MIN_INTERVAL_SECONDS = 0  # the reference client polls the feed back to back
    settings.SYNC_WEBHOOK_ALLOW_LOOPBACK = True  # and its webhook endpoint runs in the test
    reference_client(sandbox_for(vendor[0]))
    return vendor


def test_a_version_cannot_be_submitted_before_every_mandatory_scenario_passes(vendor):
    approved, page = vendor
    version = vendors.version_declare(vendor=approved, version="4.2.1")
    with pytest.raises(ValidationError, match="Publier un agenda"):
        vendors.version_request_certification(vendor=approved, version_id=version.pk)
    response = page.post(reverse("vendors:version_request", args=[version.pk]), follow=True)
    assert "Chaque scénario de conformité obligatoire doit d’abord réussir" in response.content.decode()
    version.refresh_from_db()
    assert version.status == EmrProductVersion.Status.SANDBOX and not version.evidence


def test_the_vendor_declares_a_version_and_asks_for_its_certification(conforming):
    approved, page = conforming
    assert page.post(reverse("vendors:version_new"), {"version": " "}).status_code == 422
    assert page.post(reverse("vendors:version_new"), {"version": "4.2.1"}).status_code == 302
    duplicate = page.post(reverse("vendors:version_new"), {"version": "4.2.1"})
    assert duplicate.status_code == 422 and "Cette version est déjà déclarée." in duplicate.content.decode()
    version = EmrProductVersion.objects.get(product=approved.product)
    assert version.status == EmrProductVersion.Status.SANDBOX

    page.post(reverse("vendors:version_request", args=[version.pk]))
    version.refresh_from_db()
    assert version.status == EmrProductVersion.Status.REQUESTED and version.requested_at is not None
    home = page.get(reverse("vendors:home")).content.decode()
    assert "Certification demandée" in home


def test_a_vendor_cannot_ask_for_another_products_version(vendor, persona_b):
    _approved, page = vendor
    other = _version(persona_b)
    EmrProductVersion.objects.filter(pk=other.pk).update(status="sandbox")
    page.post(reverse("vendors:version_request", args=[other.pk]))
    assert EmrProductVersion.objects.get(pk=other.pk).status == "sandbox"


def test_the_board_certifies_with_a_note_and_the_version_then_connects(conforming, world, client_as):
    approved, page = conforming
    version = vendors.version_declare(vendor=approved, version="4.2.1")
    vendors.version_request_certification(vendor=approved, version_id=version.pk)
    board = client_as("board_admin")
    url = reverse("vendors:board_version", args=[version.pk])
    assert "4.2.1" in board.get(reverse("vendors:board_versions")).content.decode()

    missing = board.post(url, {"action": "certify", "note": ""})
    assert missing.status_code == 422 and "Rédigez une note" in missing.content.decode()
    assert board.post(url, {"action": "certify", "note": "Tous les scénarios réussis."}).status_code == 302

    version.refresh_from_db()
    assert (version.status, version.note, version.decided_by) == (
        EmrProductVersion.Status.CERTIFIED,
        "Tous les scénarios réussis.",
        world.board_admin,
    )
    assert (
        StaffAuditEvent.objects.filter(resource_type="EmrProductVersion", resource_id=version.pk).count() == 1
    )
    assert "Tous les scénarios réussis." in page.get(reverse("vendors:home")).content.decode()
    # Now a production clinic can be connected to the product.
    clinic = ClinicFactory(emr_product="BorealDME")
    assert vendors.grant_create(product=approved.product, clinic=clinic).clinic == clinic


@pytest.mark.parametrize("persona", ["admin_a", "citizen_user"])
def test_only_the_board_certifies(conforming, world, client_as, persona):
    approved, _page = conforming
    version = vendors.version_declare(vendor=approved, version="4.2.1")
    vendors.version_request_certification(vendor=approved, version_id=version.pk)
    response = client_as(persona).post(
        reverse("vendors:board_version", args=[version.pk]), {"action": "certify", "note": "Oui."}
    )
    assert response.status_code in (403, 404)
    with pytest.raises(PermissionDenied, match="administrateur du conseil"):
        vendors.version_certify(version_id=version.pk, by=getattr(world, persona), note="Oui.")
    assert EmrProductVersion.objects.get(pk=version.pk).status == EmrProductVersion.Status.REQUESTED


def test_a_version_still_in_sandbox_cannot_be_certified(vendor, world):
    approved, _page = vendor
    version = vendors.version_declare(vendor=approved, version="4.2.1")
    with pytest.raises(ValidationError):
        vendors.version_certify(version_id=version.pk, by=world.board_admin, note="Trop tôt.")
    assert EmrVendor.objects.get(pk=approved.pk).status == EmrVendor.Status.APPROVED
