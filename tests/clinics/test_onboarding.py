"""Onboarding: a clinic asks to join, the board reviews and decides, the administrator accepts."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clinics.models import (
    Clinic,
    ClinicMembership,
    Practitioner,
    PractitionerRole,
    RegistrationRequest,
    StaffAuditEvent,
    StaffInvitation,
)
from clinics.services_onboarding import PractitionerEntry, registration_approve, registration_request_submit
from sync.models import EmrProduct
from tests.factories import ClinicFactory, FsaFactory, PractitionerFactory, RegionFactory

from .conftest import make_account, sign_in

pytestmark = pytest.mark.django_db

NEW_URL = "/clinique/inscription/"


def _form(**overrides):
    data = {
        "name": "Clinique  du Plateau",
        "address": "4100 rue Saint-Denis",
        "city": "Montréal",
        "postal_code": "h2x1k4",
        "phone": "(514) 555-0199",
        "time_zone": "America/Toronto",
        "gmf": "",
        "emr_product": "",
        "practitioners": "123456, Marie, Tremblay\n\n234567 , Jean-Luc, D'Amour\n",
        "admin_name": "Sophie Gagnon",
        "admin_email": "sophie@clinique-plateau.example",
        "attestation": "on",
    }
    data.update(overrides)
    return data


def _request(language="fr", **fields):
    FsaFactory()
    values = {
        "name": "Clinique du Plateau",
        "address": "4100 rue Saint-Denis",
        "city": "Montréal",
        "postal_code": "H2X 1K4",
        "phone": "514 555-0199",
        "time_zone": "America/Toronto",
        "gmf": None,
        "emr_product": "",
        "admin_name": "Sophie Gagnon",
        "admin_email": "sophie@clinique-plateau.example",
        "practitioners": [
            PractitionerEntry("123456", "Marie", "Tremblay"),
            PractitionerEntry("234567", "Jean-Luc", "D'Amour"),
        ],
        "attested": True,
        "language": language,
    }
    values.update(fields)
    return registration_request_submit(**values)


# --- the public request form ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "heading"), [("fr", "Inscrire une clinique"), ("en", "Register a clinic")]
)
def test_the_request_form_is_public_and_in_both_languages(client, language, heading):
    client.cookies.load({"django_language": language})

    html = client.get(NEW_URL, HTTP_ACCEPT_LANGUAGE=language).content.decode()

    assert f'<html lang="{language}">' in html
    assert heading in html
    # Every input has a label tied to it (accessibility).
    for input_id in re.findall(r'<(?:input|select|textarea)[^>]*\bid="(id_[a-z_0-9]+)"', html):
        assert f'for="{input_id}"' in html, input_id


def test_a_valid_request_is_recorded_with_its_region_and_practitioners(client, world):
    FsaFactory()
    EmrProduct.objects.create(vendor="Vendeur A", name="ClinIQ")

    response = client.post(NEW_URL, _form(emr_product="ClinIQ", gmf=str(world.clinic_a.gmf_id)))

    assert response.status_code == 302
    assert response["Location"] == reverse("clinics:registration_sent")
    request = RegistrationRequest.objects.get()
    assert request.status == RegistrationRequest.Status.PENDING
    assert (request.name, request.postal_code, request.phone) == (
        "Clinique du Plateau",
        "H2X 1K4",
        "514 555-0199",
    )
    assert request.region_id == "06"
    assert request.emr_product == "ClinIQ"
    assert request.gmf == world.clinic_a.gmf
    assert request.language == "fr"
    assert [(p.ramq_number, p.first_name, p.last_name) for p in request.practitioners.all()] == [
        ("123456", "Marie", "Tremblay"),
        ("234567", "Jean-Luc", "D'Amour"),
    ]
    assert client.get(response["Location"]).status_code == 200


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "Enter the clinic's name."),
        ("postal_code", "12345", "Enter the postal code in the format A1A 1A1."),
        ("postal_code", "K1A 0B1", "K1A 0B1 is not a Quebec postal code we know"),
        ("phone", "555-0199", "Enter a 10-digit phone number"),
        ("time_zone", "Europe/Paris", "Select a valid choice"),
        ("gmf", "999999", "Choose a GMF from the list, or none."),
        ("emr_product", "Unknown EMR", "Choose an EMR product from the list, or none."),
        (
            "practitioners",
            "12345, Marie, Tremblay",
            "Line 1: a RAMQ practitioner number has exactly 6 digits.",
        ),
        (
            "practitioners",
            "123456 Marie Tremblay",
            "Line 1: write the RAMQ number, the first name and the last",
        ),
        ("practitioners", "123456, Marie, Tremblay\n123456, Luc, Roy", "Line 2: this RAMQ number is already"),
        ("practitioners", "123456, M4rie, Tremblay", "Line 1: check the first and last names"),
        ("practitioners", "\n\n", "Name at least one practitioner."),
        ("admin_email", "sophie@", "Enter an e-mail address such as name@example.ca."),
        ("attestation", "", "Check the attestation to send the request."),
    ],
)
def test_each_field_is_checked_with_a_helpful_message(client, field, value, message):
    FsaFactory()
    client.cookies.load({"django_language": "en"})

    response = client.post(NEW_URL, _form(**{field: value}), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 422
    html = response.content.decode().replace("&#x27;", "'")
    assert message in html
    assert 'id="error-summary"' in html
    assert f'href="#id_{field}' in html
    assert not RegistrationRequest.objects.exists()


def test_messages_are_in_french_by_default(client):
    FsaFactory()

    response = client.post(NEW_URL, _form(postal_code="12345", practitioners="1, A, B"))

    html = response.content.decode()
    assert "Entrez le code postal au format A1A 1A1." in html
    assert "Ligne 1 : un numéro de praticien de la RAMQ a exactement 6 chiffres." in html


# --- the board's queue and review ----------------------------------------------------------------


QUEUE_ACCESS = {
    "board_admin": 200,
    "admin_a": 404,
    "receptionist_a": 404,
    "practitioner_a": 404,
    "admin_b": 404,
    "citizen_user": 403,
    "anonymous": 302,
}


@pytest.mark.parametrize(("persona", "expected"), QUEUE_ACCESS.items())
def test_only_board_administrators_see_the_queue_and_the_requests(world, client_as, persona, expected):
    request = _request()
    client = client_as(persona)

    queue = client.get(reverse("clinics:registration_queue"))
    review = client.get(reverse("clinics:registration_review", args=[request.pk]))

    assert (queue.status_code, review.status_code) == (expected, expected)
    if expected == 200:
        assert "Clinique du Plateau" in queue.content.decode()
        assert "sophie@clinique-plateau.example" in review.content.decode()


@pytest.mark.parametrize("persona", ["admin_a", "receptionist_a", "admin_b"])
def test_clinic_staff_cannot_approve_or_reject(world, client_as, persona):
    request = _request()
    client = client_as(persona)
    url = reverse("clinics:registration_review", args=[request.pk])

    assert client.post(url, {"action": "approve"}).status_code == 404
    assert client.post(url, {"action": "reject", "reason": "Non."}).status_code == 404

    request.refresh_from_db()
    assert request.status == RegistrationRequest.Status.PENDING
    assert Clinic.objects.count() == 2


def test_the_board_approves_a_request_the_clinic_is_created_and_its_administrator_invited(
    world, client_as, django_capture_on_commit_callbacks
):
    known = PractitionerFactory(ramq_number="123456", first_name="Marie", last_name="Tremblay")
    request = _request(language="en")
    client = client_as("board_admin")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("clinics:registration_review", args=[request.pk]), {"action": "approve"}
        )

    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == RegistrationRequest.Status.APPROVED
    assert request.decided_by == world.board_admin
    clinic = request.clinic
    assert (clinic.name, clinic.region_id, clinic.postal_code, clinic.emr_product) == (
        "Clinique du Plateau",
        "06",
        "H2X 1K4",
        "",
    )
    assert (clinic.latitude, clinic.longitude) == (45.5145, -73.5733)  # the FSA's centroid
    # The known practitioner is reused by RAMQ number; the other is created.
    assert Practitioner.objects.filter(ramq_number="123456").get() == known
    assert set(
        PractitionerRole.objects.filter(clinic=clinic).values_list("practitioner__ramq_number", flat=True)
    ) == {
        "123456",
        "234567",
    }
    invitation = StaffInvitation.objects.get(clinic=clinic)
    assert invitation.role == ClinicMembership.Role.CLINIC_ADMIN
    assert invitation.email == "sophie@clinique-plateau.example"
    audit = StaffAuditEvent.objects.get(action="approve")
    assert (audit.user, audit.clinic, audit.resource_type, audit.resource_id) == (
        world.board_admin,
        clinic,
        "RegistrationRequest",
        request.pk,
    )
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["sophie@clinique-plateau.example"]
    assert "is approved" in message.subject  # the requester wrote in English
    link = re.search(r"http://testserver(/clinique/invitation/[^/\s]+/)", message.body).group(1)
    assert Client().get(link).status_code == 200


def test_approving_twice_creates_one_clinic(world, client_as):
    request = _request()
    client = client_as("board_admin")
    url = reverse("clinics:registration_review", args=[request.pk])

    client.post(url, {"action": "approve"})
    response = client.post(url, {"action": "approve"}, follow=True)

    assert "Cette demande a déjà été tranchée." in response.content.decode()
    assert Clinic.objects.filter(name="Clinique du Plateau").count() == 1
    assert StaffAuditEvent.objects.filter(action="approve").count() == 1


def test_a_rejection_needs_a_reason_and_tells_the_requester_in_their_language(
    world, client_as, django_capture_on_commit_callbacks
):
    request = _request(language="fr")
    client = client_as("board_admin")
    url = reverse("clinics:registration_review", args=[request.pk])

    missing = client.post(url, {"action": "reject", "reason": "  "})
    assert missing.status_code == 422
    assert "Donnez le motif du refus" in missing.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"action": "reject", "reason": "Adresse introuvable au registre."})

    request.refresh_from_db()
    assert request.status == RegistrationRequest.Status.REJECTED
    assert request.decision_reason == "Adresse introuvable au registre."
    assert request.clinic is None
    assert Clinic.objects.count() == 2
    assert StaffAuditEvent.objects.filter(action="reject", resource_id=request.pk).count() == 1
    (message,) = mail.outbox
    assert "Votre demande d’inscription" in message.subject
    assert "Adresse introuvable au registre." in message.body


def test_duplicates_are_flagged_to_the_reviewer(world, client_as):
    ClinicFactory(name="Clinique existante", address="4100 rue Saint-Denis", postal_code="H2X 1K4")
    PractitionerRole.objects.create(
        practitioner=PractitionerFactory(ramq_number="234567", first_name="Jean-Luc", last_name="Damour"),
        clinic=world.clinic_b,
    )
    first = _request()
    _request(name="Autre demande", practitioners=[PractitionerEntry("123456", "Marie", "Tremblay")])

    html = (
        client_as("board_admin").get(reverse("clinics:registration_review", args=[first.pk])).content.decode()
    )
    queue = client_as("board_admin").get(reverse("clinics:registration_queue")).content.decode()

    assert "Une clinique active est déjà à cette adresse : Clinique existante." in html
    assert "Le praticien 234567 exerce déjà à Clinique B." in html
    assert "Le praticien 234567 est connu du service sous le nom de Jean-Luc Damour" in html
    assert "123456 est connu" not in html  # not known yet: nothing to compare
    assert "Le praticien 123456 figure aussi dans la demande en attente de Autre demande." in html
    assert "doublons possibles" in queue


def test_the_board_sees_its_link_on_the_staff_home(world, client_as):
    board = client_as("board_admin").get(reverse("clinics:home")).content.decode()
    admin = client_as("admin_a").get(reverse("clinics:home")).content.decode()

    assert reverse("clinics:registration_queue") in board
    assert reverse("clinics:registration_queue") not in admin


# --- the invitation ------------------------------------------------------------------------------


def _approved_link(world, django_capture_on_commit_callbacks, **fields):
    request = _request(**fields)
    with django_capture_on_commit_callbacks(execute=True):
        clinic = registration_approve(request_id=request.pk, by=world.board_admin)
    link = re.search(r"http://testserver(/clinique/invitation/[^/\s]+/)", mail.outbox[-1].body).group(1)
    return clinic, link


def test_accepting_creates_the_account_and_leads_to_the_second_factor_setup(
    world, django_capture_on_commit_callbacks
):
    clinic, link = _approved_link(world, django_capture_on_commit_callbacks)
    client = Client()

    weak = client.post(link, {"password1": "short", "password2": "short"})
    assert weak.status_code == 422
    response = client.post(link, {"password1": "Plateau-2027-clinique", "password2": "Plateau-2027-clinique"})

    assert response.status_code == 302
    user = ClinicMembership.objects.get(clinic=clinic).user
    assert user.email == "sophie@clinique-plateau.example"
    membership = ClinicMembership.objects.get(user=user)
    assert (membership.clinic, membership.role, membership.is_active) == (
        clinic,
        ClinicMembership.Role.CLINIC_ADMIN,
        True,
    )
    home = client.get(response["Location"])
    assert home.status_code == 302
    assert home["Location"].startswith(reverse("mfa_activate_totp"))  # staff need a second factor
    assert StaffAuditEvent.objects.filter(action="accept", user=user).count() == 1
    # Single use: the link is now refused, for anyone.
    assert Client().get(link).status_code == 404
    assert Client().post(link, {"password1": "x", "password2": "x"}).status_code == 404


def test_an_expired_invitation_is_refused(world, django_capture_on_commit_callbacks):
    clinic, link = _approved_link(world, django_capture_on_commit_callbacks)
    past = timezone.now() - timedelta(days=8)
    StaffInvitation.objects.filter(clinic=clinic).update(created_at=past, expires_at=past + timedelta(days=7))

    response = Client().post(
        link, {"password1": "Plateau-2027-clinique", "password2": "Plateau-2027-clinique"}
    )

    assert response.status_code == 404
    assert not ClinicMembership.objects.filter(clinic=clinic).exists()


def test_an_existing_account_signs_in_then_accepts(world, django_capture_on_commit_callbacks):
    existing = make_account(email="sophie@clinique-plateau.example", with_totp=True)
    clinic, link = _approved_link(world, django_capture_on_commit_callbacks)

    anonymous = Client().get(link).content.decode()
    assert reverse("account_login") in anonymous
    assert Client().post(link, {"password1": "a", "password2": "a"}).status_code == 200  # no account made
    client = sign_in(Client(), existing)
    response = client.post(link, {"action": "accept"})

    assert response.status_code == 302
    assert ClinicMembership.objects.get(clinic=clinic).user == existing
    assert client.get(reverse("clinics:agenda", args=[clinic.pk])).status_code == 200


def test_another_signed_in_account_cannot_use_the_invitation(
    world, client_as, django_capture_on_commit_callbacks
):
    clinic, link = _approved_link(world, django_capture_on_commit_callbacks)
    client = client_as("admin_a")

    response = client.post(link, {"action": "accept"})

    assert response.status_code == 200
    assert "Vous êtes connecté avec un autre compte" in response.content.decode()
    assert not ClinicMembership.objects.filter(clinic=clinic).exists()
    assert StaffInvitation.objects.get(clinic=clinic).accepted_at is None


def test_a_made_up_invitation_link_is_a_404(client):
    assert client.get(reverse("clinics:invitation", args=["not-a-token"])).status_code == 404


def test_region_comes_from_the_postal_code(db):
    RegionFactory(code="09", name_fr="Côte-Nord")
    FsaFactory(code="G0G", region_id="09", place_name="Basse-Côte-Nord", latitude=51.4, longitude=-57.2)

    request = _request(postal_code="G0G 2T0", time_zone="America/Blanc-Sablon")

    assert request.region_id == "09"


def test_one_address_cannot_flood_the_board_queue(client, settings):
    FsaFactory()
    settings.RATE_LIMIT_ENABLED = True
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "clinic_registration": "2/3600"}

    statuses = [client.post(NEW_URL, _form(name=f"Clinique {n}")).status_code for n in range(3)]
    corrected = client.post(NEW_URL, _form(postal_code="bad")).status_code  # an invalid form is not counted

    assert statuses == [302, 302, 429]
    assert corrected == 422
    assert RegistrationRequest.objects.count() == 2


def test_a_former_staff_member_whose_account_was_closed_is_reopened_by_the_invitation(
    world, django_capture_on_commit_callbacks
):
    former = make_account(email="sophie@clinique-plateau.example")
    former.is_active = False
    former.save(update_fields=["is_active"])
    clinic, link = _approved_link(world, django_capture_on_commit_callbacks)
    client = Client()

    assert 'name="password1"' in client.get(link).content.decode()
    response = client.post(link, {"password1": "Plateau-2027-clinique", "password2": "Plateau-2027-clinique"})

    assert response.status_code == 302
    former.refresh_from_db()
    assert former.is_active
    assert former.check_password("Plateau-2027-clinique")
    assert ClinicMembership.objects.get(clinic=clinic).user == former
