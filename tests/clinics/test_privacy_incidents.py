"""The board's incident register in Django's admin (/gestion/): board administrators who proved their
second factor only; every create and change leaves a row in the staff audit chain."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import translation

from clinics.audit_chain import chain_for_model, chain_verify
from clinics.models import PrivacyIncident, StaffAuditEvent

from .conftest import PASSWORD, sign_in

TZ = ZoneInfo("America/Toronto")
LIST = reverse("admin:clinics_privacyincident_changelist")
ADD = reverse("admin:clinics_privacyincident_add")


def form_data(**overrides):
    data = {
        "occurred_at_0": "2026-11-01",
        "occurred_at_1": "08:00:00",
        "discovered_at_0": "2026-11-03",
        "discovered_at_1": "14:30:00",
        "reported_by_role": "Receptionist",
        "description": "A reminder e-mail batch went to the wrong addresses.",
        "categories": ["contact", "appointment"],
        "people_affected": "12",
        "risk_reasoning": "Appointment times only, no reason; low sensitivity.",
        "measures": "Batch stopped; recipients asked to delete.",
        "status": "open",
    }
    data.update(overrides)
    return data


def make_incident(user, **fields) -> PrivacyIncident:
    values = {
        "occurred_at": datetime(2026, 11, 1, 8, tzinfo=TZ),
        "discovered_at": datetime(2026, 11, 3, 14, tzinfo=TZ),
        "reported_by_role": "Practitioner",
        "description": "A printed agenda left in a waiting room.",
        "categories": ["identity", "appointment"],
        "people_affected": 20,
        "serious_injury_risk": False,
        "risk_reasoning": "Names and times only.",
        "created_by": user,
    }
    values.update(fields)
    return PrivacyIncident.objects.create(**values)


@pytest.fixture
def board(world, db):
    return sign_in(Client(), world.board_admin)  # no is_staff needed: the board role and the second factor


def test_a_board_administrator_lists_creates_and_changes_incidents(world, board):
    assert board.get(LIST).status_code == 200
    assert board.get(ADD).status_code == 200

    response = board.post(ADD, form_data())
    assert response.status_code == 302, response.content.decode()[:2000]
    incident = PrivacyIncident.objects.get()
    assert incident.created_by == world.board_admin
    assert incident.categories == ["contact", "appointment"]
    assert incident.serious_injury_risk is False

    change = reverse("admin:clinics_privacyincident_change", args=[incident.pk])
    response = board.post(
        change,
        form_data(serious_injury_risk="on", cai_notified="on", cai_notified_on="2026-11-04", status="closed"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    incident.refresh_from_db()
    assert (incident.cai_notified, incident.cai_notified_on, incident.status) == (
        True,
        date(2026, 11, 4),
        "closed",
    )

    listing = board.get(LIST, {"q": "wrong addresses", "status__exact": "closed"})
    assert listing.status_code == 200
    assert f"/gestion/clinics/privacyincident/{incident.pk}/change/" in listing.content.decode()

    audit = list(StaffAuditEvent.objects.filter(resource_type="PrivacyIncident").order_by("pk"))
    assert [(row.action, row.resource_id, row.user_id, row.clinic_id) for row in audit] == [
        ("create", incident.pk, world.board_admin.pk, None),
        ("update", incident.pk, world.board_admin.pk, None),
    ]
    assert chain_verify(chain_for_model(StaffAuditEvent)).ok


def test_incidents_are_never_deleted_through_the_admin(world, board):
    incident = make_incident(world.board_admin)
    delete = reverse("admin:clinics_privacyincident_delete", args=[incident.pk])
    assert board.get(delete).status_code == 403
    assert PrivacyIncident.objects.filter(pk=incident.pk).exists()


def test_an_inconsistent_entry_is_refused_by_the_admin_form(world, board):
    response = board.post(ADD, form_data(persons_notified_on="2026-11-05"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["persons_notified_on"]
    assert not PrivacyIncident.objects.exists()
    assert not StaffAuditEvent.objects.filter(resource_type="PrivacyIncident").exists()


@pytest.mark.parametrize("persona", ["admin_a", "receptionist_a", "citizen_user"])
def test_other_accounts_are_sent_to_the_admin_sign_in(world, persona):
    user = getattr(world, persona)
    user.is_staff = True  # even with Django's staff flag: not a board administrator
    user.save(update_fields=["is_staff"])
    client = Client()
    if persona == "citizen_user":
        assert client.login(email=user.email, password=PASSWORD)
    else:
        sign_in(client, user)
    for url in (LIST, ADD):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    assert client.post(ADD, form_data()).status_code == 302
    assert not PrivacyIncident.objects.exists()


def test_anonymous_visitors_are_sent_to_the_admin_sign_in(world):
    response = Client().get(LIST)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_a_board_administrator_without_a_proven_second_factor_is_refused(world):
    # With Django's staff flag (its admin sign-in needs it), signed in with the password only: no
    # second factor proven in the session, so the admin stays closed.
    world.board_admin.is_staff = True
    world.board_admin.save(update_fields=["is_staff"])
    client = Client()
    response = client.post(
        reverse("admin:login"), {"username": world.board_admin.email, "password": PASSWORD, "next": LIST}
    )
    assert "_auth_user_id" in client.session, response.status_code
    assert client.get(LIST).status_code == 302
    assert sign_in(Client(), world.board_admin, step_offset=1).get(LIST).status_code == 200


def test_the_model_refuses_obvious_inconsistencies_in_both_languages(world):
    incident = PrivacyIncident(
        occurred_at=datetime(2026, 11, 3, tzinfo=TZ),
        discovered_at=datetime(2026, 11, 3, tzinfo=TZ) - timedelta(days=1),
        reported_by_role="Board",
        description="x",
        categories=["other"],
        people_affected=1,
        serious_injury_risk=False,
        risk_reasoning="x",
        cai_notified_on=date(2026, 11, 4),
        persons_notified_on=date(2026, 11, 4),
        created_by=world.board_admin,
    )
    for language, expected, cai in [
        (
            "en",
            "An incident cannot be discovered before it happened.",
            "Commission d'accès à l'information notified",
        ),
        (
            "fr",
            "Un incident ne peut pas être découvert avant d’avoir eu lieu.",
            "Commission d’accès à l’information avisée",
        ),
    ]:
        with translation.override(language):
            with pytest.raises(ValidationError) as caught:
                incident.full_clean()
            errors = {
                field: [str(message) for message in messages]
                for field, messages in caught.value.message_dict.items()
            }
        assert errors["discovered_at"] == [expected]
        assert cai in errors["cai_notified_on"][0]
        assert set(errors) >= {"discovered_at", "cai_notified_on", "persons_notified_on"}
