"""The vendor portal: an EMR vendor asks for a partner sandbox, the board decides, the vendor gets
its credentials (shown once, hashed at rest) and its own sandbox clinics and synthetic people.

Accounts sign in through allauth (password; board administrators with TOTP), as everywhere.
"""

import base64
import re
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import check_password
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from booking.models import Appointment, OutboxEvent, Slot
from citizens.models import Citizen
from clinics.models import Clinic, PractitionerRole, StaffAuditEvent
from sync import vendors
from sync.models import EmrClient, EmrClinicGrant, EmrVendor
from tests.clinics.conftest import client_as, make_account, sign_in, world
from tests.factories import SlotFactory

__all__ = ["client_as", "world"]

HOME = reverse("vendors:home")
REGISTER = reverse("vendors:register")
CREDENTIALS = reverse("vendors:credentials")
QUEUE = reverse("vendors:board_queue")


def _form(**overrides):
    return {
        "company": "Logiciels Boréal inc.",
        "product_name": "BorealDME",
        "technical_email": "tech@boreal.example",
        **overrides,
    }


@pytest.fixture
def vendor_user(db):
    return make_account(email="ventes@boreal.example")


@pytest.fixture
def vendor_client(vendor_user):
    return sign_in(Client(), vendor_user)


def _pending(user, language="fr", **fields):
    data = _form(**fields)
    return vendors.vendor_register(user=user, language=language, **data)


def _token(client_id: str, secret: str) -> int:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return (
        Client()
        .post("/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=f"Basic {raw}")
        .status_code
    )


# --- the request ---------------------------------------------------------------------------------


def test_the_portal_needs_an_account(db):
    for url in (HOME, REGISTER):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize(
    ("language", "heading"), [("fr", "Demander un accès au bac à sable"), ("en", "Ask for sandbox access")]
)
def test_the_request_form_is_in_both_languages(vendor_client, language, heading):
    vendor_client.cookies["django_language"] = language
    page = vendor_client.get(REGISTER, HTTP_ACCEPT_LANGUAGE=language).content.decode()
    assert heading in page
    assert 'name="technical_email"' in page and "ventes@boreal.example" in page  # the account's e-mail


def test_a_request_is_recorded_pending_and_the_portal_says_so(vendor_client, vendor_user):
    response = vendor_client.post(REGISTER, _form())

    assert response.status_code == 302
    vendor = EmrVendor.objects.get()
    assert (vendor.user, vendor.status, vendor.company, vendor.product_name, vendor.technical_email) == (
        vendor_user,
        EmrVendor.Status.PENDING,
        "Logiciels Boréal inc.",
        "BorealDME",
        "tech@boreal.example",
    )
    assert vendor.language == "fr"
    assert "attend l’examen du conseil" in vendor_client.get(HOME).content.decode()
    # A second request from the same account goes back to the portal, and records nothing.
    assert vendor_client.post(REGISTER, _form(product_name="Autre")).status_code == 302
    assert EmrVendor.objects.count() == 1


def test_each_field_is_checked_with_a_helpful_message_in_french(vendor_client):
    response = vendor_client.post(REGISTER, _form(company="", technical_email="pas-un-courriel"))

    assert response.status_code == 422
    page = response.content.decode()
    assert "Inscrivez le nom de votre entreprise." in page
    assert "Inscrivez une adresse courriel comme nom@exemple.com." in page
    assert EmrVendor.objects.count() == 0


def test_a_product_name_of_another_vendor_is_refused(vendor_client, db):
    _pending(make_account(), company="Autre éditeur", product_name="BorealDME")

    response = vendor_client.post(REGISTER, _form(product_name="borealdme"))

    assert response.status_code == 422
    assert "Un autre fournisseur utilise déjà ce nom de produit." in response.content.decode()


# --- the board's review -----------------------------------------------------------------------------


QUEUE_ACCESS = {"board_admin": 200, "admin_a": 404, "admin_b": 404, "citizen_user": 403, "anonymous": 302}


@pytest.mark.parametrize(("persona", "expected"), QUEUE_ACCESS.items())
def test_only_board_administrators_see_and_decide_vendor_requests(world, client_as, persona, expected):
    vendor = _pending(make_account())
    client = client_as(persona)
    review = reverse("vendors:board_review", args=[vendor.pk])

    assert client.get(QUEUE).status_code == expected
    assert client.get(review).status_code == expected
    if expected == 200:
        assert "Logiciels Boréal inc." in client.get(QUEUE).content.decode()
    else:
        assert client.post(review, {"action": "approve"}).status_code == expected
        vendor.refresh_from_db()
        assert vendor.status == EmrVendor.Status.PENDING


def test_approval_opens_an_isolated_sandbox_and_tells_the_technical_contact(
    world, client_as, django_capture_on_commit_callbacks
):
    vendor = _pending(make_account(), language="en")
    clinics_before = set(Clinic.objects.values_list("pk", flat=True))

    with django_capture_on_commit_callbacks(execute=True):
        response = client_as("board_admin").post(
            reverse("vendors:board_review", args=[vendor.pk]), {"action": "approve"}
        )

    assert response.status_code == 302
    vendor.refresh_from_db()
    assert (vendor.status, vendor.decided_by) == (EmrVendor.Status.APPROVED, world.board_admin)
    assert (vendor.product.vendor, vendor.product.name) == ("Logiciels Boréal inc.", "BorealDME")
    client = vendor.sandbox_client
    assert client.is_sandbox and client.product == vendor.product and client.is_active
    sandbox = list(vendor.sandbox_clinics.all())
    assert len(sandbox) == vendors.SANDBOX_CLINICS
    assert {c.pk for c in sandbox}.isdisjoint(clinics_before)
    assert all(c.is_sandbox and c.emr_product == "BorealDME" for c in sandbox)
    roles = PractitionerRole.objects.filter(clinic__in=sandbox)
    assert roles.count() == vendors.SANDBOX_CLINICS * vendors.SANDBOX_PRACTITIONERS_PER_CLINIC
    assert all(r.practitioner.ramq_number.startswith("9") for r in roles)
    assert set(EmrClinicGrant.objects.filter(product=vendor.product).values_list("clinic_id", flat=True)) == {
        c.pk for c in sandbox
    }
    people = list(vendor.synthetic_citizens.all())
    assert len(people) == vendors.SANDBOX_CITIZENS and all(p.is_synthetic for p in people)
    assert Citizen.objects.filter(is_synthetic=False).count() == 0  # nobody real was touched
    audit = StaffAuditEvent.objects.get(action="approve", resource_type="EmrVendor")
    assert (audit.user, audit.resource_id) == (world.board_admin, vendor.pk)
    (message,) = mail.outbox
    assert message.to == ["tech@boreal.example"]
    assert "sandbox for BorealDME is open" in message.subject  # the vendor wrote in English
    assert "http://testserver/fournisseurs/" in message.body


def test_approving_twice_opens_one_sandbox(world, client_as):
    vendor = _pending(make_account())
    client = client_as("board_admin")
    url = reverse("vendors:board_review", args=[vendor.pk])

    client.post(url, {"action": "approve"})
    response = client.post(url, {"action": "approve"}, follow=True)

    assert "Cette demande a déjà été tranchée." in response.content.decode()
    assert EmrClient.objects.filter(is_sandbox=True).count() == 1
    assert Clinic.objects.filter(is_sandbox=True).count() == vendors.SANDBOX_CLINICS


def test_a_rejection_needs_a_reason_and_tells_the_vendor_in_its_language(
    world, client_as, django_capture_on_commit_callbacks
):
    vendor = _pending(make_account())
    client = client_as("board_admin")
    url = reverse("vendors:board_review", args=[vendor.pk])

    missing = client.post(url, {"action": "reject", "reason": " "})
    assert missing.status_code == 422
    assert "Donnez le motif du refus" in missing.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"action": "reject", "reason": "Produit inconnu du ministère."})

    vendor.refresh_from_db()
    assert (vendor.status, vendor.decision_reason, vendor.sandbox_client) == (
        EmrVendor.Status.REJECTED,
        "Produit inconnu du ministère.",
        None,
    )
    assert not Clinic.objects.filter(is_sandbox=True).exists()
    (message,) = mail.outbox
    assert "Votre demande de bac à sable pour BorealDME" in message.subject
    assert "Produit inconnu du ministère." in message.body


def test_a_rejected_vendor_may_ask_again(vendor_client, vendor_user, world):
    vendor = _pending(vendor_user)
    vendors.vendor_reject(vendor_id=vendor.pk, by=world.board_admin, reason="Incomplet.")

    assert "Incomplet." in vendor_client.get(HOME).content.decode()
    assert vendor_client.post(REGISTER, _form()).status_code == 302
    assert EmrVendor.objects.filter(user=vendor_user, status=EmrVendor.Status.PENDING).count() == 1


# --- credentials ----------------------------------------------------------------------------------------


@pytest.fixture
def approved(vendor_user, world):
    vendor = _pending(vendor_user)
    return vendors.vendor_approve(vendor_id=vendor.pk, by=world.board_admin)


def _secret(page: str) -> str:
    found = re.search(r"<p><code>([^<]+)</code></p>", page)
    assert found, page
    return found.group(1)


def test_the_secret_is_shown_once_hashed_at_rest_and_rotation_keeps_the_old_one_a_while(
    vendor_client, approved
):
    client_id = approved.sandbox_client.application.client_id
    home = vendor_client.get(HOME)
    assert client_id in home.content.decode()
    assert home["Cache-Control"] == "no-store, private"
    assert _token(client_id, "not-the-secret") == 401

    first = vendor_client.post(CREDENTIALS)
    assert first.status_code == 200 and first["Cache-Control"].startswith("no-store")
    secret = _secret(first.content.decode())
    assert _token(client_id, secret) == 200
    stored = approved.sandbox_client.application.__class__.objects.get(client_id=client_id).client_secret
    assert stored != secret and check_password(secret, stored)
    assert secret not in vendor_client.get(HOME).content.decode()  # never shown again

    second = _secret(vendor_client.post(CREDENTIALS).content.decode())
    assert second != secret
    assert (_token(client_id, second), _token(client_id, secret)) == (200, 200)  # the overlap
    assert approved.sandbox_client.retired_secrets.count() == 1


def test_only_an_approved_vendor_gets_credentials(vendor_client, vendor_user):
    _pending(vendor_user)
    assert vendor_client.post(CREDENTIALS).status_code == 404
    assert Client().post(CREDENTIALS).status_code == 302


def test_the_portal_shows_the_sandbox_to_its_vendor_only(vendor_client, approved, world):
    page = vendor_client.get(HOME).content.decode()
    clinic = approved.sandbox_clinics.first()
    citizen = approved.synthetic_citizens.first()
    assert clinic.name in page and citizen.nam in page

    other = sign_in(Client(), make_account())
    other_page = other.get(HOME).content.decode()
    assert clinic.name not in other_page and citizen.nam not in other_page
    assert other.post(CREDENTIALS).status_code == 404


def test_the_board_finds_the_vendor_pages_on_its_staff_home(world, client_as):
    board = client_as("board_admin").get(reverse("clinics:home")).content.decode()
    assert QUEUE in board and reverse("vendors:board_versions") in board
    staff = client_as("admin_a").get(reverse("clinics:home")).content.decode()
    assert QUEUE not in staff


# --- taking a sandbox slot on demand (the desk-booking scenario's citizen side) ------------------------

TAKE = reverse("vendors:sandbox_take")


def _sandbox_slot(vendor, **fields):
    role = PractitionerRole.objects.filter(clinic__in=vendor.sandbox_clinics.all()).order_by("pk").first()
    start = (timezone.now() + timedelta(days=7)).replace(hour=14, minute=0, second=0, microsecond=0)
    return SlotFactory(role=role, start=start, **fields)


def test_a_vendor_has_a_synthetic_citizen_take_its_slot_on_the_portal_now(vendor_client, approved):
    slot = _sandbox_slot(approved)
    response = vendor_client.post(TAKE, {"slot": str(slot.pk)})
    assert response.status_code == 302 and response["Location"].endswith("#conformance")
    slot.refresh_from_db()
    assert slot.status == Slot.Status.BOOKED
    appointment = Appointment.objects.get(slot=slot)
    assert appointment.citizen.is_synthetic and appointment.channel == "portal"
    assert OutboxEvent.objects.filter(kind="appointment.booked", appointment=appointment).count() == 1
    assert f"Slot/{slot.pk}" in vendor_client.get(HOME).content.decode()  # the confirmation message


@pytest.mark.parametrize("language", ["fr", "en"])
def test_only_a_free_public_slot_of_its_own_sandbox_can_be_taken(vendor_client, approved, world, language):
    vendor_client.cookies["django_language"] = language
    other_vendor = vendors.vendor_approve(
        vendor_id=_pending(make_account(), product_name="AutreDME", company="Autre inc.").pk,
        by=world.board_admin,
    )
    refused = [
        SlotFactory(),  # a production clinic's slot
        _sandbox_slot(other_vendor),  # another vendor's sandbox
        _sandbox_slot(approved, audience="gmf_patients"),  # not public
    ]
    for slot in refused:
        response = vendor_client.post(TAKE, {"slot": str(slot.pk)})
        assert response.status_code == 422
        expected = (
            "Aucun citoyen fictif n’a pu réserver" if language == "fr" else "No synthetic citizen could"
        )
        assert expected in response.content.decode()
        slot.refresh_from_db()
        assert slot.status == Slot.Status.FREE
    assert not Appointment.objects.exists()
    for bad in ("", "abc", "0"):
        response = vendor_client.post(TAKE, {"slot": bad})
        assert response.status_code == 422
        assert ("numéro" if language == "fr" else "slot") in response.content.decode()


def test_taking_a_slot_needs_an_approved_vendor(vendor_client, vendor_user, db):
    _pending(vendor_user)
    assert vendor_client.post(TAKE, {"slot": "1"}).status_code == 404
    assert Client().post(TAKE, {"slot": "1"}).status_code == 302
    assert vendor_client.get(TAKE).status_code == 405
