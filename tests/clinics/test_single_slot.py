"""One slot from the agenda: through the booking service, never overlapping the practitioner's
other slots, in this clinic or another (invariant 2), at the clinic's local time (invariant 6)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from booking.models import Audience, Modality, OutboxEvent, Reason, Slot, reasons_to_mask
from clinics.models import AgendaChange, PractitionerRole
from tests.factories import SlotFactory

pytestmark = pytest.mark.django_db

ACCESS = {
    "admin_a": 200,
    "receptionist_a": 200,
    "practitioner_a": 404,
    "admin_b": 404,
    "board_admin": 404,
    "citizen_user": 403,
    "anonymous": 302,
}


def _day(days=10):
    return (timezone.now() + timedelta(days=days)).date()


def _form(world, **overrides):
    data = {
        "practitioner": str(world.role_a.practitioner_id),
        "date": _day().isoformat(),
        "time": "09:30",
        "minutes": "20",
        "reasons": [Reason.FOLLOW_UP, Reason.URGENT],
        "audience": Audience.OWN_PATIENTS,
        "modality": Modality.PHONE,
    }
    data.update(overrides)
    return data


def _url(clinic):
    return reverse("clinics:slot_new", args=[clinic.pk])


def test_a_receptionist_publishes_one_slot_at_clinic_time(world, client_as):
    response = client_as("receptionist_a").post(_url(world.clinic_a), _form(world))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("clinics:agenda", args=[world.clinic_a.pk]))
    slot = Slot.objects.get()
    local = slot.start.astimezone(world.clinic_a.tz)
    assert (local.date(), local.hour, local.minute) == (_day(), 9, 30)
    assert slot.end - slot.start == timedelta(minutes=20)
    assert slot.role == world.role_a
    assert slot.reasons == reasons_to_mask([Reason.FOLLOW_UP, Reason.URGENT])
    assert (slot.audience, slot.modality, slot.status, slot.source) == (
        Audience.OWN_PATIENTS,
        Modality.PHONE,
        Slot.Status.FREE,
        Slot.Source.WEB_AGENDA,
    )
    assert OutboxEvent.objects.filter(kind="slot.created", slot_id=slot.pk).count() == 1
    change = AgendaChange.objects.get()
    assert (change.by, change.kind, change.slots_count) == (
        world.receptionist_a,
        AgendaChange.Kind.PUBLISH,
        1,
    )
    agenda = client_as("receptionist_a").get(response["Location"]).content.decode()
    assert "Plage horaire publiée pour" in agenda


def test_an_overlap_in_another_clinic_is_refused_with_a_clear_message(world, client_as):
    elsewhere = PractitionerRole.objects.create(practitioner=world.role_a.practitioner, clinic=world.clinic_b)
    start = datetime.combine(_day(), datetime.min.time().replace(hour=9, minute=40), tzinfo=world.clinic_a.tz)
    SlotFactory(
        role=elsewhere, start=start.astimezone(UTC), end=(start + timedelta(minutes=15)).astimezone(UTC)
    )

    response = client_as("receptionist_a").post(_url(world.clinic_a), _form(world))

    assert response.status_code == 422
    html = response.content.decode()
    assert "Ce professionnel a déjà une plage horaire à ce moment, dans cette clinique ou une autre." in html
    assert "à 09:30" in html  # the message names the clinic-local time refused
    assert 'id="error-summary"' in html
    assert Slot.objects.count() == 1
    assert not AgendaChange.objects.exists()


def test_an_exact_repeat_is_refused_too(world, client_as):
    client = client_as("admin_a")
    assert client.post(_url(world.clinic_a), _form(world)).status_code == 302

    assert client.post(_url(world.clinic_a), _form(world, time="09:40")).status_code == 422
    assert Slot.objects.count() == 1


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"reasons": []}, "reasons", "Choose at least one reason."),
        ({"time": "9h"}, "time", "Enter a time as HH:MM."),
        ({"date": "2027-02-30"}, "date", "Enter a real date in the format YYYY-MM-DD."),
        ({"date": "2020-01-06"}, "date", "This day is past: choose today or a later day."),
        ({"minutes": "7"}, "minutes", "Select a valid choice."),
        ({"practitioner": ""}, "practitioner", "Choose a practitioner."),
    ],
)
def test_bad_input_is_refused_field_by_field(world, client_as, overrides, field, message):
    client = client_as("receptionist_a")
    client.post(reverse("set_language"), {"language": "en"})

    response = client.post(_url(world.clinic_a), _form(world, **overrides))

    assert response.status_code == 422
    html = response.content.decode()
    assert message in html
    assert f'href="#id_{field}' in html
    assert not Slot.objects.exists()


def test_a_time_that_does_not_exist_on_the_daylight_saving_night_is_refused(world, client_as):
    # 2027-03-14: clocks go from 02:00 to 03:00 in America/Toronto.
    if timezone.now().date() >= datetime(2027, 3, 14).date():
        pytest.skip("the daylight-saving night of 2027 is past")
    client = client_as("receptionist_a")
    client.post(reverse("set_language"), {"language": "en"})

    response = client.post(_url(world.clinic_a), _form(world, date="2027-03-14", time="02:30"))

    assert response.status_code == 422
    assert "14 March 2027" in response.content.decode() or "March 14" in response.content.decode()
    assert not Slot.objects.exists()


@pytest.mark.parametrize(("persona", "expected"), ACCESS.items())
def test_who_can_add_a_slot_at_clinic_a(world, client_as, persona, expected):
    client = client_as(persona)

    assert client.get(_url(world.clinic_a)).status_code == expected
    posted = client.post(_url(world.clinic_a), _form(world))

    assert posted.status_code == (302 if expected == 200 else expected)
    assert Slot.objects.count() == (1 if expected == 200 else 0)


def test_clinic_b_cannot_publish_for_a_practitioner_of_clinic_a(world, client_as):
    response = client_as("admin_b").post(_url(world.clinic_b), _form(world))

    assert response.status_code == 422
    assert "Choisissez un professionnel de cette clinique." in response.content.decode()
    assert not Slot.objects.exists()


def test_a_clinic_with_an_emr_refuses_single_slots(world, client_as):
    world.clinic_a.emr_product = "ClinIQ"
    world.clinic_a.save(update_fields=["emr_product"])

    assert client_as("admin_a").post(_url(world.clinic_a), _form(world)).status_code == 403
    assert not Slot.objects.exists()


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_page_is_labelled_in_both_languages(world, client_as, language):
    client = client_as("receptionist_a")
    client.post(reverse("set_language"), {"language": language})

    html = client.get(_url(world.clinic_a) + f"?date={_day()}").content.decode()

    assert f'<html lang="{language}">' in html
    assert ("Ajouter une plage horaire" if language == "fr" else "Add one slot") in html
    for name in ("practitioner", "date", "time", "minutes"):
        assert f'for="id_{name}"' in html
    assert f'value="{_day().isoformat()}"' in html
    agenda = client.get(reverse("clinics:agenda", args=[world.clinic_a.pk])).content.decode()
    assert _url(world.clinic_a) in agenda
