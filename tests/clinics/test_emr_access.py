"""EMR access: the board's approval grants the product a clinic names; the clinic's administrator
or the board grants, revokes or changes product from the clinic's EMR access page; the old
product's clients lose the clinic at once; an EMR clinic's agenda is read-only here."""

import io
import threading

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from clinics.audit_chain import chain_for_model, chain_verify
from clinics.models import ClinicMembership, StaffAuditEvent
from clinics.services_onboarding import PractitionerEntry, registration_approve, registration_request_submit
from sync import grants
from sync.models import EmrClient, EmrClinicGrant
from sync.selectors import clinic_ids_for_emr_client
from tests.factories import ClinicFactory, FsaFactory
from tests.sync.conftest import EmrPersona, create_client, get_token

pytestmark = pytest.mark.django_db


def _client_of(product: str, *clinics, certified: bool = True) -> tuple[EmrClient, EmrPersona]:
    """A production client of ``product``, whose version 1.0 is certified unless said otherwise
    (only certified product versions are connected to production clinics: docs/vendors.md)."""
    if certified:
        call_command(
            "sync_version_certify",
            "--product",
            product,
            "--product-version",
            "1.0",
            "--note",
            "Test fixture.",
            stdout=io.StringIO(),
        )
    client_id, secret = create_client(product, *clinics)
    emr_client = EmrClient.objects.get(application__client_id=client_id)
    return emr_client, EmrPersona(client_id, secret, None, None)


def _approved_clinic(world, emr_product: str):
    FsaFactory()
    request = registration_request_submit(
        name="Clinique du Plateau",
        address="4100 rue Saint-Denis",
        city="Montréal",
        postal_code="H2X 1K4",
        phone="514 555-0199",
        time_zone="America/Toronto",
        gmf=None,
        emr_product=emr_product,
        admin_name="Sophie Gagnon",
        admin_email="sophie@clinique-plateau.example",
        practitioners=[PractitionerEntry("123456", "Marie", "Tremblay")],
        attested=True,
        language="fr",
    )
    return registration_approve(request_id=request.pk, by=world.board_admin)


def _url(clinic) -> str:
    return reverse("sync_clinic:emr_access", args=[clinic.pk])


def test_approving_a_clinic_that_names_a_known_product_grants_that_products_clients(world, client):
    existing = ClinicFactory(emr_product="ClinIQ")
    emr_client, persona = _client_of("Vendeur A|ClinIQ", existing)

    clinic = _approved_clinic(world, "ClinIQ")

    grant = EmrClinicGrant.objects.get(clinic=clinic)
    assert (grant.product.name, grant.granted_by, grant.revoked_at) == ("ClinIQ", world.board_admin, None)
    assert clinic_ids_for_emr_client(emr_client) == {existing.pk, clinic.pk}
    audit = StaffAuditEvent.objects.get(action="grant")
    assert (audit.user, audit.clinic, audit.resource_type, audit.resource_id) == (
        world.board_admin,
        clinic,
        "EmrClinicGrant",
        grant.pk,
    )
    # Through the API: the product's existing client reads the new clinic at once.
    token = get_token(client, persona)
    response = client.get(f"/fhir/r4/Location/{clinic.pk}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200


def test_approving_a_clinic_without_an_emr_or_with_an_unknown_product_grants_nothing(world):
    _approved_clinic(world, "")
    assert not EmrClinicGrant.objects.exists()


def test_an_unknown_product_gets_its_grant_from_the_page_once_its_vendor_is_connected(world, client_as):
    clinic = world.clinic_a
    clinic.emr_product = "Nouveau DME"
    clinic.save(update_fields=["emr_product"])
    admin = client_as("admin_a")

    page = admin.get(_url(clinic))
    refused = admin.post(_url(clinic), {"action": "grant"}, follow=True)

    assert "n’est pas encore relié au service" in page.content.decode()
    assert "n’est encore relié au service" in refused.content.decode()
    assert not EmrClinicGrant.objects.exists()

    emr_client, _persona = _client_of("Vendeur N|Nouveau DME")  # the vendor connects, no clinic yet
    assert clinic_ids_for_emr_client(emr_client) == set()
    response = admin.post(_url(clinic), {"action": "grant"})

    assert response.status_code == 302
    assert clinic_ids_for_emr_client(emr_client) == {clinic.pk}
    assert EmrClinicGrant.objects.get().granted_by == world.admin_a


def test_the_clinic_administrator_revokes_and_grants_again(world, client_as):
    clinic = world.clinic_a
    clinic.emr_product = "ClinIQ"
    clinic.save(update_fields=["emr_product"])
    emr_client, _persona = _client_of("Vendeur A|ClinIQ", clinic)
    admin = client_as("admin_a")
    assert "Révoquer l’accès du DME" in admin.get(_url(clinic)).content.decode()

    admin.post(_url(clinic), {"action": "revoke"})

    assert clinic_ids_for_emr_client(emr_client) == set()
    assert EmrClinicGrant.objects.get().revoked_at is not None
    assert StaffAuditEvent.objects.filter(action="revoke", user=world.admin_a, clinic=clinic).count() == 1
    # Revoking again changes nothing.
    admin.post(_url(clinic), {"action": "revoke"})
    assert StaffAuditEvent.objects.filter(action="revoke").count() == 1

    admin.post(_url(clinic), {"action": "grant"})

    assert clinic_ids_for_emr_client(emr_client) == {clinic.pk}
    assert EmrClinicGrant.objects.filter(revoked_at__isnull=True).count() == 1


def test_changing_product_revokes_the_old_products_access_at_once(world, client_as):
    clinic = world.clinic_a
    clinic.emr_product = "ClinIQ"
    clinic.save(update_fields=["emr_product"])
    old_client, _ = _client_of("Vendeur A|ClinIQ", clinic)
    new_client, _ = _client_of("Santexa inc.|Santexa")

    response = client_as("admin_a").post(
        _url(clinic), {"action": "change", "product": "Santexa", "grant": "on"}
    )

    assert response.status_code == 302
    clinic.refresh_from_db()
    assert clinic.emr_product == "Santexa"
    assert clinic_ids_for_emr_client(old_client) == set()
    assert clinic_ids_for_emr_client(new_client) == {clinic.pk}
    old_grant = EmrClinicGrant.objects.get(product__name="ClinIQ")
    assert old_grant.revoked_at is not None  # revoked, not only out of scope


def test_leaving_the_emr_opens_the_web_agenda_and_choosing_one_makes_it_read_only(world, client_as):
    clinic = world.clinic_a
    clinic.emr_product = "ClinIQ"
    clinic.save(update_fields=["emr_product"])
    emr_client, _ = _client_of("Vendeur A|ClinIQ", clinic)
    admin = client_as("admin_a")
    planner = reverse("clinics:slot_template", args=[clinic.pk])
    assert admin.get(planner).status_code == 403  # the EMR is the master

    admin.post(_url(clinic), {"action": "change", "product": "-"})

    clinic.refresh_from_db()
    assert clinic.emr_product == ""
    assert not EmrClinicGrant.objects.filter(revoked_at__isnull=True).exists()
    assert clinic_ids_for_emr_client(emr_client) == set()
    assert admin.get(planner).status_code == 200

    # Back to ClinIQ, without granting yet: read-only here, and the EMR not in scope until granted.
    admin.post(_url(clinic), {"action": "change", "product": "ClinIQ"})

    assert admin.get(planner).status_code == 403
    assert clinic_ids_for_emr_client(emr_client) == set()
    assert "Donner l’accès à ClinIQ" in admin.get(_url(clinic)).content.decode()


def test_an_unknown_product_is_refused_with_a_message(world, client_as):
    response = client_as("admin_a").post(_url(world.clinic_a), {"action": "change", "product": "Inconnu"})

    assert response.status_code == 422
    assert "Choisissez un DME dans la liste" in response.content.decode()
    world.clinic_a.refresh_from_db()
    assert world.clinic_a.emr_product == ""


ACCESS = {
    "admin_a": 200,
    "board_admin": 200,
    "receptionist_a": 404,
    "practitioner_a": 404,
    "admin_b": 404,
    "citizen_user": 403,
    "anonymous": 302,
}


@pytest.mark.parametrize(("persona", "expected"), ACCESS.items())
def test_only_the_clinics_administrators_and_the_board_manage_its_emr_access(
    world, client_as, persona, expected
):
    clinic = world.clinic_a
    clinic.emr_product = "ClinIQ"
    clinic.save(update_fields=["emr_product"])
    emr_client, _ = _client_of("Vendeur A|ClinIQ", clinic)
    client = client_as(persona)

    assert client.get(_url(clinic)).status_code == expected
    posted = client.post(_url(clinic), {"action": "revoke"})

    if expected == 200:
        assert posted.status_code == 302
        assert clinic_ids_for_emr_client(emr_client) == set()
    else:
        assert posted.status_code == expected
        assert clinic_ids_for_emr_client(emr_client) == {clinic.pk}


def test_services_refuse_a_receptionist(world):
    world.clinic_a.emr_product = "ClinIQ"
    world.clinic_a.save(update_fields=["emr_product"])
    _client_of("Vendeur A|ClinIQ")
    with pytest.raises(grants.PermissionDenied):
        grants.emr_access_grant(clinic=world.clinic_a, by=world.receptionist_a)
    assert world.receptionist_a.memberships.get().role == ClinicMembership.Role.RECEPTIONIST


@pytest.mark.django_db(transaction=True)
def test_two_administrators_granting_at_once_make_one_grant(world):
    world.clinic_a.emr_product = "ClinIQ"
    world.clinic_a.save(update_fields=["emr_product"])
    _client_of("Vendeur A|ClinIQ")
    barrier = threading.Barrier(2)
    results: list[object] = []

    def grant(by):
        try:
            barrier.wait()
            results.append(grants.emr_access_grant(clinic=world.clinic_a, by=by))
        except Exception as exc:  # noqa: BLE001 - reported below
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=grant, args=(u,)) for u in (world.admin_a, world.board_admin)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [0, 1]
    assert EmrClinicGrant.objects.filter(clinic=world.clinic_a, revoked_at__isnull=True).count() == 1
    assert StaffAuditEvent.objects.filter(action="grant").count() == 1


def test_the_emr_page_links_to_access_for_administrators_only(world, client_as):
    world.clinic_a.emr_product = "ClinIQ"
    world.clinic_a.save(update_fields=["emr_product"])
    emr_page = reverse("sync_clinic:emr", args=[world.clinic_a.pk])

    assert _url(world.clinic_a) in client_as("admin_a").get(emr_page).content.decode()
    assert _url(world.clinic_a) not in client_as("receptionist_a").get(emr_page).content.decode()


def test_staff_decisions_are_links_of_the_staff_audit_chain(world, client_as):
    """Approving, granting, revoking: each decision's audit row is chained, not just inserted."""
    _client_of("Vendeur A|ClinIQ")
    clinic = _approved_clinic(world, "ClinIQ")
    grants.emr_access_revoke(clinic=clinic, by=world.board_admin)

    assert StaffAuditEvent.objects.filter(action__in=["approve", "grant", "revoke"]).count() == 3
    report = chain_verify(chain_for_model(StaffAuditEvent))
    assert report.ok and report.rows_checked == StaffAuditEvent.objects.count()


def test_a_product_without_a_certified_version_gets_no_grant(world, client):
    """Approval and the EMR access page connect only certified product versions (docs/vendors.md)."""
    _client_of("Vendeur U|NonCertifié", certified=False)
    clinic = _approved_clinic(world, "NonCertifié")
    assert not EmrClinicGrant.objects.filter(clinic=clinic).exists()
    with pytest.raises(ValidationError):
        grants.emr_access_grant(clinic=clinic, by=world.board_admin)
    assert not EmrClinicGrant.objects.filter(clinic=clinic).exists()
