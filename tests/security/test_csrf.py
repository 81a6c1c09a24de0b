"""CSRF: every form that posts carries Django's token, and the writes refuse a POST without it.

Each HTML page with a form is rendered as the person who uses it (a visitor, an identified citizen
holding a slot, clinic A's administrator signed in with TOTP), and every ``<form method="post">`` on
it must contain a ``csrfmiddlewaretoken`` input. Then the identify, hold, confirm, cancel and staff
deactivation views are posted to by a client that enforces CSRF checks, as a browser on another
site would: 403, and nothing changed; the same POST with the token is accepted.
"""

from html.parser import HTMLParser

import pytest
from django.test import Client

from booking.models import Appointment, Reason, Slot
from booking.notifications import cancel_token_make
from booking.services import appointment_book
from clinics.models import ClinicMembership
from tests.clinics.conftest import sign_in
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, ClinicFactory, FsaFactory, SlotFactory


class _Forms(HTMLParser):
    """Collects each POST form with the names of the inputs inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form" and (attributes.get("method") or "get").lower() == "post":
            self._open = {"action": attributes.get("action"), "inputs": set()}
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None:
            self._open["inputs"].add(attributes.get("name"))

    def handle_endtag(self, tag):
        if tag == "form":
            self._open = None


def post_forms(html: str) -> list[dict]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


@pytest.fixture
def scene(world):
    FsaFactory()
    citizen = CitizenFactory()
    slot = SlotFactory(role=world.role_a)
    booked = SlotFactory(role=world.role_a)
    appointment = appointment_book(
        slot_id=booked.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal"
    )
    web_a = ClinicFactory(name="Clinique A sans DME")
    ClinicMembership.objects.create(user=world.admin_a, clinic=web_a, role=ClinicMembership.Role.CLINIC_ADMIN)
    return {
        "citizen": citizen,
        "slot": slot,
        "appointment": appointment,
        "web_a": web_a,
        "membership": world.membership(world.receptionist_a),
    }


def identified(citizen) -> Client:
    client = Client()
    assert client.post("/identification/", identify_payload(citizen)).status_code == 302
    return client


def enforcing(like: Client) -> Client:
    """A client that enforces CSRF checks, carrying ``like``'s session cookie but sending no token."""
    client = Client(enforce_csrf_checks=True)
    client.cookies = like.cookies
    return client


def _pages_with_forms(client: Client, paths: list[str]) -> list[str]:
    problems = []
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        forms = post_forms(response.content.decode())
        assert forms, f"{path}: no POST form found (every page has the language switch)"
        problems += [
            f"{path}: form to {form['action']!r} has no csrfmiddlewaretoken"
            for form in forms
            if "csrfmiddlewaretoken" not in form["inputs"]
        ]
    return problems


def test_every_post_form_of_the_visitor_and_account_pages_carries_the_token(client):
    paths = [
        "/",
        "/identification/",
        "/rendez-vous/retrouver/",
        "/comptes/login/",
        "/comptes/signup/",
        "/comptes/password/reset/",
        "/gestion/login/",
    ]
    assert _pages_with_forms(client, paths) == []


def test_every_post_form_of_the_citizen_pages_carries_the_token(scene):
    citizen, slot, appointment = scene["citizen"], scene["slot"], scene["appointment"]
    client = identified(citizen)
    search = f"/recherche/?path=near&reason={Reason.FOLLOW_UP}&postal_code=H2X&radius_km=25&sort=soonest"
    assert f"/plages/{slot.pk}/retenir/" in client.get(search).content.decode()  # the hold forms
    assert client.post(f"/plages/{slot.pk}/retenir/").status_code == 302
    paths = [
        search,
        f"/plages/{slot.pk}/confirmer/",
        "/rendez-vous/",
        f"/rendez-vous/{appointment.pk}/",
        f"/rendez-vous/{appointment.pk}/annuler/",
        f"/rendez-vous/{appointment.pk}/changer/",
        f"/annulation/{cancel_token_make(appointment)}/",
    ]
    assert _pages_with_forms(client, paths) == []


def test_every_post_form_of_the_clinic_and_account_pages_carries_the_token(world, scene):
    client = sign_in(Client(), world.admin_a)
    clinic, web_a = world.clinic_a.pk, scene["web_a"].pk
    paths = [
        "/clinique/",
        f"/clinique/{clinic}/agenda/",
        f"/clinique/{clinic}/agenda/feuille/?practitioner={world.role_a.practitioner_id}",
        f"/clinique/{clinic}/personnel/",
        f"/clinique/{clinic}/personnel/{scene['membership'].pk}/desactiver/",
        f"/clinique/{web_a}/plages/modele/",
        f"/clinique/{web_a}/plages/bloquer/",
        f"/clinique/{web_a}/plages/modifier/",
        "/comptes/2fa/",
        "/comptes/2fa/reauthenticate/",
        "/comptes/email/",
        "/comptes/password/change/",
        "/comptes/logout/",
        "/compte/carte/",
    ]
    assert _pages_with_forms(client, paths) == []


def test_identifying_without_the_token_is_refused(scene):
    citizen = scene["citizen"]
    response = Client(enforce_csrf_checks=True).post("/identification/", identify_payload(citizen))
    assert response.status_code == 403
    # With the token (as the page's form sends it), the same card identifies.
    client = Client(enforce_csrf_checks=True)
    client.get("/identification/")
    data = {**identify_payload(citizen), "csrfmiddlewaretoken": client.cookies["csrftoken"].value}
    assert client.post("/identification/", data).status_code == 302


def test_holding_confirming_and_cancelling_without_the_token_are_refused(scene):
    citizen, slot, appointment = scene["citizen"], scene["slot"], scene["appointment"]
    session = identified(citizen)
    attacker = enforcing(session)

    assert attacker.post(f"/plages/{slot.pk}/retenir/").status_code == 403
    assert Slot.objects.get(pk=slot.pk).holder_id is None

    assert session.post(f"/plages/{slot.pk}/retenir/").status_code == 302  # the citizen's own hold
    response = attacker.post(f"/plages/{slot.pk}/confirmer/", {"email": "julie@example.org"})
    assert response.status_code == 403
    assert Slot.objects.get(pk=slot.pk).status == Slot.Status.FREE

    response = attacker.post(f"/rendez-vous/{appointment.pk}/annuler/", {"reason": "other"})
    assert response.status_code == 403
    assert Appointment.objects.get(pk=appointment.pk).status == Appointment.Status.BOOKED

    token = cancel_token_make(appointment)
    assert attacker.post(f"/annulation/{token}/", {"reason": "other"}).status_code == 403
    assert Appointment.objects.get(pk=appointment.pk).status == Appointment.Status.BOOKED


def test_deactivating_a_staff_member_without_the_token_is_refused(world, scene):
    admin = sign_in(Client(), world.admin_a)
    membership = scene["membership"]
    path = f"/clinique/{world.clinic_a.pk}/personnel/{membership.pk}/desactiver/"
    assert enforcing(admin).post(path).status_code == 403
    assert ClinicMembership.objects.get(pk=membership.pk).is_active
    # The administrator's own form (with the token) does deactivate.
    with_token = enforcing(admin)
    with_token.get(path)
    assert (
        with_token.post(path, {"csrfmiddlewaretoken": with_token.cookies["csrftoken"].value}).status_code
        == 302
    )
    assert not ClinicMembership.objects.get(pk=membership.pk).is_active
