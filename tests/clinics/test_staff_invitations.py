"""Inviting more staff from the Staff page: invite by e-mail with a role, the link expires, accepting
creates the membership behind a second factor, sending again replaces the link, withdrawing kills
it; every action is audited in the staff hash chain; only the clinic's administrators act."""

import re
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clinics.audit_chain import chain_for_model, chain_verify
from clinics.models import ClinicMembership, StaffAuditEvent, StaffInvitation
from clinics.services_onboarding import _digest, invitation_accept
from clinics.services_staff import staff_invitation_revoke, staff_invite

from .conftest import make_account

pytestmark = pytest.mark.django_db

EMAIL = "nouvelle@clinique-a.example"


def _staff_url(world) -> str:
    return reverse("clinics:staff", args=[world.clinic_a.pk])


def _invite_url(world) -> str:
    return reverse("clinics:staff_invite", args=[world.clinic_a.pk])


def _link(message) -> str:
    return re.search(r"http://testserver(/clinique/invitation/[^/\s]+/)", message.body).group(1)


def _invite(client, world, **overrides):
    data = {"email": EMAIL, "role": "receptionist", "practitioner": "", "language": "fr"}
    data.update(overrides)
    return client.post(_invite_url(world), data)


def test_an_administrator_invites_a_receptionist_who_accepts_and_must_set_up_a_second_factor(
    world, client_as, django_capture_on_commit_callbacks
):
    admin = client_as("admin_a")
    page = admin.get(_staff_url(world)).content.decode()
    assert "Inviter un membre du personnel" in page and "Aucune invitation n’attend de réponse." in page

    with django_capture_on_commit_callbacks(execute=True):
        response = _invite(admin, world, language="en")

    assert response.status_code == 302
    invitation = StaffInvitation.objects.get(email=EMAIL)
    assert (invitation.clinic, invitation.role, invitation.invited_by) == (
        world.clinic_a,
        "receptionist",
        world.admin_a,
    )
    assert invitation.expires_at - invitation.created_at == timedelta(days=7)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [EMAIL]
    assert "Invitation to join the staff of Clinique A" in mail.outbox[0].subject
    assert "Receptionist" in mail.outbox[0].body
    assert EMAIL in admin.get(_staff_url(world)).content.decode()  # listed as pending
    audit = StaffAuditEvent.objects.get(action="invite")
    assert (audit.user, audit.clinic, audit.resource_id) == (world.admin_a, world.clinic_a, invitation.pk)

    # The invited person chooses a password: signed in, then sent to set up TOTP first.
    newcomer = Client()
    link = _link(mail.outbox[0])
    response = newcomer.post(
        link, {"password1": "un mot de passe solide 42", "password2": "un mot de passe solide 42"}
    )
    assert response.status_code == 302
    membership = ClinicMembership.objects.get(user__email=EMAIL)
    assert (membership.clinic, membership.role, membership.is_active) == (
        world.clinic_a,
        "receptionist",
        True,
    )
    agenda = newcomer.get(reverse("clinics:agenda", args=[world.clinic_a.pk]))
    assert agenda.status_code == 302 and agenda["Location"].startswith(reverse("mfa_activate_totp"))
    # Used once: the link is dead, and no longer pending.
    assert Client().get(link).status_code == 404
    assert EMAIL not in admin.get(_staff_url(world)).content.decode().split("Invitations en attente")[-1]


def test_a_practitioners_invitation_links_the_account_to_their_doctor(world):
    invitation = staff_invite(
        clinic=world.clinic_a,
        by=world.admin_a,
        email=EMAIL,
        role="practitioner",
        language="fr",
        practitioner=world.role_a.practitioner,
    )
    user = make_account(email=EMAIL)
    token_digest = invitation.token_digest
    # The token is only in the e-mail; accept through the service with a fresh known token instead.
    known = StaffInvitation.objects.filter(token_digest=token_digest)
    known.update(token_digest=_digest("jeton-de-test"))

    membership = invitation_accept(token="jeton-de-test", user=user)

    assert (membership.role, membership.practitioner) == ("practitioner", world.role_a.practitioner)


BAD_INPUT = [
    ({"email": "pas-un-courriel"}, "email", "Entrez une adresse courriel"),
    ({"email": ""}, "email", "Entrez l’adresse courriel de la personne."),
    ({"role": "chef"}, "role", "Choisissez un rôle."),
    ({"role": "receptionist", "practitioner": "__role_a__"}, "practitioner", "Seul le compte d’un"),
    ({"role": "practitioner", "practitioner": "__role_b__"}, "practitioner", "Choisissez un professionnel"),
]


@pytest.mark.parametrize(("overrides", "field", "message"), BAD_INPUT)
def test_bad_input_is_explained_beside_its_field_and_nothing_is_sent(
    world, client_as, overrides, field, message
):
    overrides = {
        k: {
            "__role_a__": str(world.role_a.practitioner_id),
            "__role_b__": str(world.role_b.practitioner_id),
        }.get(v, v)
        for k, v in overrides.items()
    }
    response = _invite(client_as("admin_a"), world, **overrides)

    assert response.status_code == 422
    body = response.content.decode()
    assert f'id="field-{field}"' in body and message in body
    assert not StaffInvitation.objects.exists() and not mail.outbox


def test_someone_already_on_staff_is_not_invited_again(world, client_as):
    response = _invite(client_as("admin_a"), world, email=world.receptionist_a.email.upper())

    assert response.status_code == 422
    assert "Cette personne a déjà accès à la clinique." in response.content.decode()
    assert not StaffInvitation.objects.exists()


def test_sending_again_replaces_the_link_and_withdrawing_kills_it(
    world, client_as, django_capture_on_commit_callbacks
):
    admin = client_as("admin_a")
    with django_capture_on_commit_callbacks(execute=True):
        _invite(admin, world)
    first = StaffInvitation.objects.get()
    first_link = _link(mail.outbox[0])

    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(reverse("clinics:staff_invitation_resend", args=[world.clinic_a.pk, first.pk]))

    assert response.status_code == 302
    first.refresh_from_db()
    assert first.revoked_at is not None
    second = StaffInvitation.objects.get(revoked_at__isnull=True)
    second_link = _link(mail.outbox[1])
    assert Client().get(first_link).status_code == 404
    assert Client().get(second_link).status_code == 200

    admin.post(reverse("clinics:staff_invitation_revoke", args=[world.clinic_a.pk, second.pk]))

    assert Client().get(second_link).status_code == 404
    assert not StaffInvitation.objects.filter(revoked_at__isnull=True).exists()
    # Withdrawing twice: a message, nothing changes.
    again = admin.post(
        reverse("clinics:staff_invitation_revoke", args=[world.clinic_a.pk, second.pk]), follow=True
    )
    assert "Cette invitation a déjà été acceptée ou retirée." in again.content.decode()
    actions = list(
        StaffAuditEvent.objects.filter(resource_type="StaffInvitation")
        .order_by("pk")
        .values_list("action", "resource_id")
    )
    assert actions == [
        ("invite", first.pk),
        ("revoke", first.pk),
        ("invite", second.pk),
        ("revoke", second.pk),
    ]
    assert chain_verify(chain_for_model(StaffAuditEvent)).ok


def test_an_expired_invitation_is_refused_and_can_be_sent_again(
    world, client_as, django_capture_on_commit_callbacks
):
    admin = client_as("admin_a")
    with django_capture_on_commit_callbacks(execute=True):
        _invite(admin, world)
    invitation = StaffInvitation.objects.get()
    past = timezone.now() - timedelta(days=8)
    StaffInvitation.objects.filter(pk=invitation.pk).update(
        created_at=past, expires_at=past + timedelta(days=7)
    )

    assert Client().get(_link(mail.outbox[0])).status_code == 404
    assert "Expirée le" in admin.get(_staff_url(world)).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        admin.post(reverse("clinics:staff_invitation_resend", args=[world.clinic_a.pk, invitation.pk]))
    assert Client().get(_link(mail.outbox[1])).status_code == 200


ACCESS = {
    "admin_a": 200,
    "receptionist_a": 404,
    "practitioner_a": 404,
    "admin_b": 404,
    "board_admin": 404,
    "citizen_user": 403,
    "anonymous": 302,
}


@pytest.mark.parametrize(("persona", "expected"), ACCESS.items())
def test_only_the_clinics_administrators_invite(world, client_as, persona, expected):
    pending = staff_invite(
        clinic=world.clinic_a, by=world.admin_a, email=EMAIL, role="receptionist", language="fr"
    )
    client = client_as(persona)

    assert client.get(_invite_url(world)).status_code == expected
    invited = _invite(client, world, email="autre@exemple.example")
    withdrawn = client.post(reverse("clinics:staff_invitation_revoke", args=[world.clinic_a.pk, pending.pk]))

    pending.refresh_from_db()
    if expected == 200:
        assert (invited.status_code, withdrawn.status_code) == (302, 302)
        assert pending.revoked_at is not None
    else:
        assert (invited.status_code, withdrawn.status_code) == (expected, expected)
        assert pending.revoked_at is None
        assert not StaffInvitation.objects.filter(email="autre@exemple.example").exists()


def test_an_administrator_of_clinic_b_cannot_touch_clinic_as_invitations(world, client_as):
    pending = staff_invite(
        clinic=world.clinic_a, by=world.admin_a, email=EMAIL, role="receptionist", language="fr"
    )
    # Clinic B's URL with clinic A's invitation id: not found in clinic B.
    client_as("admin_b").post(
        reverse("clinics:staff_invitation_revoke", args=[world.clinic_b.pk, pending.pk])
    )
    pending.refresh_from_db()
    assert pending.revoked_at is None
    with pytest.raises(PermissionDenied):
        staff_invitation_revoke(clinic=world.clinic_a, by=world.admin_b, invitation_id=pending.pk)
    with pytest.raises(ValidationError):
        staff_invitation_revoke(clinic=world.clinic_b, by=world.admin_b, invitation_id=pending.pk)


def test_a_withdrawn_invitation_cannot_be_accepted(world):
    invitation = staff_invite(
        clinic=world.clinic_a, by=world.admin_a, email=EMAIL, role="receptionist", language="fr"
    )
    StaffInvitation.objects.filter(pk=invitation.pk).update(token_digest=_digest("jeton"))
    staff_invitation_revoke(clinic=world.clinic_a, by=world.admin_a, invitation_id=invitation.pk)

    with pytest.raises(ValidationError):
        invitation_accept(token="jeton", user=make_account(email=EMAIL))
    assert not ClinicMembership.objects.filter(user__email=EMAIL).exists()


def _accept_or_withdraw_at_once(world, person) -> None:
    StaffInvitation.objects.all().delete()
    ClinicMembership.objects.filter(user__email=EMAIL).delete()
    invitation = staff_invite(
        clinic=world.clinic_a, by=world.admin_a, email=EMAIL, role="receptionist", language="fr"
    )
    StaffInvitation.objects.filter(pk=invitation.pk).update(token_digest=_digest("jeton"))
    barrier = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def accept():
        try:
            barrier.wait()
            outcome["accept"] = invitation_accept(token="jeton", user=person)
        except ValidationError as exc:
            outcome["accept"] = exc
        finally:
            connection.close()

    def withdraw():
        try:
            barrier.wait()
            staff_invitation_revoke(clinic=world.clinic_a, by=world.admin_a, invitation_id=invitation.pk)
            outcome["withdraw"] = True
        except ValidationError as exc:
            outcome["withdraw"] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=accept), threading.Thread(target=withdraw)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    accepted = isinstance(outcome["accept"], ClinicMembership)
    withdrawn = outcome["withdraw"] is True
    assert accepted != withdrawn, outcome  # exactly one wins
    invitation.refresh_from_db()
    assert (invitation.accepted_at is not None) == accepted
    assert (invitation.revoked_at is not None) == withdrawn
    assert ClinicMembership.objects.filter(user__email=EMAIL).exists() == accepted


@pytest.mark.django_db(transaction=True)
def test_withdrawing_while_the_person_accepts_one_wins(world):
    person = make_account(email=EMAIL)
    for _round in range(5):
        _accept_or_withdraw_at_once(world, person)
