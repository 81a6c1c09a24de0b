"""The clinic administrator's settings page: booking rules that the booking services read."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from clinics.models import StaffAuditEvent
from clinics.services_settings import clinic_settings_update

pytestmark = pytest.mark.django_db

VALID = {
    "phone": "(418) 555-0123",
    "min_notice": "120",
    "cancel_cutoff_hours": "12",
    "reminder_three_days": "on",
}

ACCESS = {
    "admin_a": 200,
    "receptionist_a": 404,
    "practitioner_a": 404,
    "admin_b": 404,
    "board_admin": 404,
    "citizen_user": 403,
    "anonymous": 302,
}


def _valid(world, **languages):
    """VALID, with each practitioner's languages as they are (or as given: ``languages_<pk>``)."""
    data = dict(VALID)
    data[f"languages_{world.role_a.practitioner_id}"] = world.role_a.practitioner.language_codes
    data.update(languages)
    return data


def _url(world):
    return reverse("clinics:settings", args=[world.clinic_a.pk])


@pytest.mark.parametrize(("persona", "expected"), ACCESS.items())
def test_only_clinic_a_administrator_opens_or_changes_its_settings(world, client_as, persona, expected):
    client = client_as(persona)

    assert client.get(_url(world)).status_code == expected
    posted = client.post(_url(world), _valid(world))

    world.clinic_a.refresh_from_db()
    if persona == "admin_a":
        assert posted.status_code == 302
        assert world.clinic_a.cancel_cutoff_hours == 12
    else:
        assert posted.status_code == expected
        assert world.clinic_a.cancel_cutoff_hours == 2  # unchanged
        assert world.clinic_a.phone == "514 555-0100"


def test_the_administrator_saves_the_settings_and_the_change_is_audited(world, client_as):
    client = client_as("admin_a")

    response = client.post(_url(world), _valid(world), follow=True)

    assert "Paramètres enregistrés." in response.content.decode()
    world.clinic_a.refresh_from_db()
    assert world.clinic_a.phone == "418 555-0123"
    assert world.clinic_a.min_notice == timedelta(hours=2)
    assert world.clinic_a.cancel_cutoff_hours == 12
    assert world.clinic_a.reminder_three_days is True
    audit = StaffAuditEvent.objects.get(action="update")
    assert (audit.user, audit.clinic, audit.resource_type, audit.resource_id, audit.purpose) == (
        world.admin_a,
        world.clinic_a,
        "Clinic",
        world.clinic_a.pk,
        "settings",
    )
    # The page shows the saved values.
    html = client.get(_url(world)).content.decode()
    assert 'value="418 555-0123"' in html
    assert '<option value="120" selected>' in html


def test_saving_the_same_values_writes_no_audit_row(world, client_as):
    client = client_as("admin_a")
    client.post(_url(world), _valid(world))

    response = client.post(_url(world), _valid(world), follow=True)

    assert "Rien n’a changé." in response.content.decode().replace("&#x27;", "'")
    assert StaffAuditEvent.objects.filter(action="update").count() == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("phone", "555", "Enter a 10-digit phone number"),
        ("phone", "", "Enter the clinic's phone number."),
        ("min_notice", "7", "Choose a minimum notice from the list."),
        ("cancel_cutoff_hours", "25", "Enter a number of hours between 0 and 24."),
        ("cancel_cutoff_hours", "-1", "Enter a number of hours between 0 and 24."),
        ("cancel_cutoff_hours", "deux", "Enter a number of hours between 0 and 24."),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(world, client_as, field, value, message):
    client = client_as("admin_a")
    client.post(reverse("set_language"), {"language": "en"})

    response = client.post(_url(world), {**_valid(world), field: value})

    assert response.status_code == 422
    html = response.content.decode().replace("&#x27;", "'")
    assert message in html
    assert f'href="#id_{field}"' in html
    assert (
        f'aria-describedby="id_{field}_helptext id_{field}_error"' in html or f'id="id_{field}_error"' in html
    )
    world.clinic_a.refresh_from_db()
    assert world.clinic_a.cancel_cutoff_hours == 2
    assert not StaffAuditEvent.objects.exists()


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_page_is_labelled_in_both_languages(world, client_as, language):
    client = client_as("admin_a")
    client.post(reverse("set_language"), {"language": language})

    html = client.get(_url(world)).content.decode()

    assert f'<html lang="{language}">' in html
    assert ("Paramètres" if language == "fr" else "Settings") in html
    for name in ("phone", "min_notice", "cancel_cutoff_hours", "reminder_three_days"):
        assert f'for="id_{name}"' in html


def test_the_service_refuses_a_receptionist_and_another_clinic_admin(world):
    for user in (world.receptionist_a, world.admin_b):
        with pytest.raises(PermissionDenied):
            clinic_settings_update(
                clinic=world.clinic_a,
                by=user,
                phone="514 555-0100",
                min_notice=timedelta(0),
                cancel_cutoff_hours=1,
                reminder_three_days=False,
            )
    world.clinic_a.refresh_from_db()
    assert world.clinic_a.cancel_cutoff_hours == 2


def test_the_home_page_links_the_settings_for_administrators_only(world, client_as):
    url = _url(world)

    assert url in client_as("admin_a").get(reverse("clinics:home")).content.decode()
    assert url not in client_as("receptionist_a").get(reverse("clinics:home")).content.decode()


def test_the_administrator_sets_the_languages_each_practitioner_speaks(world, client_as):
    client = client_as("admin_a")
    practitioner = world.role_a.practitioner
    field = f"languages_{practitioner.pk}"
    assert "Langues parlées" in client.get(_url(world)).content.decode()

    response = client.post(_url(world), _valid(world, **{field: ["es", "fr"]}))

    assert response.status_code == 302
    practitioner.refresh_from_db()
    assert practitioner.languages == "fr,es"  # stored in a fixed order, as the search reads it
    audit = StaffAuditEvent.objects.get(resource_type="Practitioner")
    assert (audit.user, audit.clinic, audit.resource_id) == (world.admin_a, world.clinic_a, practitioner.pk)


def test_no_language_ticked_is_refused_beside_the_practitioner(world, client_as):
    data = _valid(world)
    del data[f"languages_{world.role_a.practitioner_id}"]

    response = client_as("admin_a").post(_url(world), data)

    assert response.status_code == 422
    assert "Cochez au moins une langue." in response.content.decode()
    world.role_a.practitioner.refresh_from_db()
    assert world.role_a.practitioner.languages == "fr,en"


def test_another_clinics_practitioner_is_not_changed_through_this_clinic(world):
    other = world.role_b.practitioner
    clinic_settings_update(
        clinic=world.clinic_a,
        by=world.admin_a,
        phone="514 555-0100",
        min_notice=timedelta(hours=1),
        cancel_cutoff_hours=2,
        reminder_three_days=False,
        practitioner_languages={other.pk: "es"},
    )
    other.refresh_from_db()
    assert other.languages == "fr,en"
