"""Recurring templates: the preview, and publishing all of it or nothing (invariants 2, 5 and 6)."""

from datetime import UTC, date, datetime, time

import pytest
from django.urls import reverse

from booking import errors
from booking.models import Audience, Modality, OutboxEvent, Reason, Slot
from booking.services import slots_publish
from clinics.models import AgendaChange
from clinics.slot_plans import template_plan
from tests.factories import NOW, ClinicFactory, RoleFactory, SlotFactory, UserFactory

pytestmark = pytest.mark.django_db

REASONS = [Reason.FOLLOW_UP, Reason.PERIODIC]


def _publish(role, starts, *, minutes=15, user=None, now=NOW):
    return slots_publish(
        role=role,
        starts_local=starts,
        minutes=minutes,
        reasons=REASONS,
        audience=Audience.GMF_PATIENTS,
        modality=Modality.IN_PERSON,
        created_by=user or UserFactory(),
        now=now,
    )


def _plan(role, **overrides):
    args = {
        "weekdays": [0, 1, 2, 3, 4],
        "time_from": time(8),
        "time_to": time(12),
        "minutes": 15,
        "date_from": date(2027, 3, 22),
        "date_to": date(2027, 4, 2),
        "open_on": set(),
        "now": NOW,
    }
    args.update(overrides)
    return template_plan(role=role, **args)


# --- the preview ---------------------------------------------------------------------------------


def test_the_preview_counts_slots_and_skips_good_friday_and_easter_monday(role):
    plan = _plan(role)

    assert len(plan.slots) == 10 * 16
    assert {s.local_start.date() for s in plan.skipped} == {date(2027, 3, 26), date(2027, 3, 29)}
    assert len(plan.skipped) == 32
    assert len(plan.new) == 128
    assert plan.refused == []


def test_a_holiday_the_clinic_opens_is_published(role):
    plan = _plan(role, open_on={date(2027, 3, 29)})

    assert len(plan.new) == 144
    assert {s.local_start.date() for s in plan.skipped} == {date(2027, 3, 26)}


def test_the_preview_refuses_the_times_the_spring_forward_night_skips(role):
    # Sundays 01:30–03:00: on 2027-03-14 the clocks jump from 02:00 to 03:00 in Toronto.
    plan = _plan(
        role,
        weekdays=[6],
        time_from=time(1, 30),
        time_to=time(3),
        minutes=30,
        date_from=date(2027, 3, 7),
        date_to=date(2027, 3, 14),
    )

    refused = [s.local_start for s in plan.refused]
    assert refused == [datetime(2027, 3, 14, 2, 0), datetime(2027, 3, 14, 2, 30)]
    assert [s.local_start.time() for s in plan.new if s.local_start.date() == date(2027, 3, 14)] == [
        time(1, 30)
    ]


def test_the_preview_refuses_times_overlapping_the_same_doctors_slot_in_another_clinic(role):
    elsewhere = RoleFactory(practitioner=role.practitioner, clinic=ClinicFactory())
    SlotFactory(
        role=elsewhere,
        start=datetime(2027, 3, 22, 13, 0, tzinfo=UTC),
        end=datetime(2027, 3, 22, 13, 30, tzinfo=UTC),
    )

    plan = _plan(role)

    assert [s.local_start for s in plan.refused] == [
        datetime(2027, 3, 22, 9, 0),
        datetime(2027, 3, 22, 9, 15),
    ]
    assert "another clinic" in str(plan.refused[0].note) or "autre clinique" in str(plan.refused[0].note)


def test_the_preview_refuses_past_times(role):
    plan = _plan(
        role,
        date_from=date(2027, 2, 1),
        date_to=date(2027, 2, 1),
        now=datetime(2027, 2, 1, 15, 0, tzinfo=UTC),
    )

    # 10:00 local is 15:00 UTC: 08:00–09:45 are past, 10:00 onwards are not.
    assert len(plan.refused) == 8
    assert plan.new[0].local_start == datetime(2027, 2, 1, 10, 0)


# --- the service ---------------------------------------------------------------------------------


def test_publishing_across_the_march_2027_change_gives_the_right_utc_instants(role):
    slots = _publish(role, [datetime(2027, 3, 12, 9, 0), datetime(2027, 3, 15, 9, 0)])

    assert [s.start for s in slots] == [
        datetime(2027, 3, 12, 14, 0, tzinfo=UTC),  # EST, UTC−5
        datetime(2027, 3, 15, 13, 0, tzinfo=UTC),  # EDT, UTC−4
    ]
    assert all(s.status == Slot.Status.FREE and s.version == 1 for s in slots)
    assert all(s.audience == Audience.GMF_PATIENTS and set(s.reason_codes) == set(REASONS) for s in slots)
    events = OutboxEvent.objects.filter(kind="slot.created")
    assert sorted(e.slot_id for e in events) == sorted(s.pk for s in slots)
    assert all(e.payload == {"version": 1} for e in events)
    change = AgendaChange.objects.get()
    assert (change.kind, change.slots_count, change.practitioner_id) == ("publish", 2, role.practitioner_id)


def test_a_0230_slot_on_march_14_2027_is_refused_and_nothing_is_created(role):
    with pytest.raises(errors.NonexistentLocalTime) as caught:
        _publish(
            role, [datetime(2027, 3, 13, 2, 30), datetime(2027, 3, 14, 2, 30), datetime(2027, 3, 15, 9, 0)]
        )

    assert caught.value.extra["local_start"] == "2027-03-14T02:30"
    assert not Slot.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_a_repeated_hour_in_november_is_refused(role):
    with pytest.raises(errors.AmbiguousLocalTime) as caught:
        _publish(role, [datetime(2027, 11, 7, 1, 30)])
    assert caught.value.extra["local_start"] == "2027-11-07T01:30"


def test_an_overlap_with_the_same_doctors_slot_in_another_clinic_creates_nothing(role):
    elsewhere = RoleFactory(practitioner=role.practitioner, clinic=ClinicFactory())
    SlotFactory(
        role=elsewhere,
        start=datetime(2027, 3, 15, 13, 0, tzinfo=UTC),
        end=datetime(2027, 3, 15, 13, 15, tzinfo=UTC),
    )

    with pytest.raises(errors.PractitionerOverlap) as caught:
        _publish(
            role, [datetime(2027, 3, 15, 8, 45), datetime(2027, 3, 15, 9, 0), datetime(2027, 3, 15, 9, 15)]
        )

    assert caught.value.extra["local_start"] == "2027-03-15T09:00"
    assert not Slot.objects.filter(role=role).exists()
    assert not OutboxEvent.objects.exists()


def test_a_colleague_at_the_same_time_is_no_overlap(role, colleague_role):
    _publish(colleague_role, [datetime(2027, 3, 15, 9, 0)])
    assert len(_publish(role, [datetime(2027, 3, 15, 9, 0)])) == 1


def test_a_past_time_is_refused(role):
    with pytest.raises(errors.SlotInPast):
        _publish(role, [datetime(2027, 2, 1, 9, 0)])  # 14:00 UTC, an hour before NOW
    assert not Slot.objects.exists()


def test_an_emr_clinic_is_refused(role):
    role.clinic.emr_product = "Myle"
    role.clinic.save()
    with pytest.raises(errors.ClinicUsesEmr):
        _publish(role, [datetime(2027, 3, 15, 9, 0)])
    assert not Slot.objects.exists()


def test_an_inactive_role_is_refused(role):
    role.is_active = False
    role.save()
    with pytest.raises(errors.PractitionerNotAttached):
        _publish(role, [datetime(2027, 3, 15, 9, 0)])


# --- the page ------------------------------------------------------------------------------------

FORM = {
    "weekdays": ["0", "1", "2", "3", "4"],
    "time_from": "08:00",
    "time_to": "12:00",
    "minutes": "15",
    "date_from": "2027-03-22",
    "date_to": "2027-04-02",
    "reasons": ["follow_up", "periodic"],
    "audience": "public",
    "modality": "in_person",
    "open_on": "",
}


def _form(world, **overrides):
    return {**FORM, "practitioner": str(world.role_a.practitioner_id), **overrides}


def _url(world, clinic=None):
    return reverse("clinics:slot_template", args=[(clinic or world.clinic_a).pk])


def test_the_receptionist_previews_a_template(world, client_as):
    response = client_as("receptionist_a").get(_url(world), _form(world))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'value="publish"' in html
    assert 'name="expected" value="128"' in html
    assert html.count('class="plan-holiday"') == 32
    assert html.count('class="plan-new"') == 128
    assert not Slot.objects.exists()  # a preview writes nothing


def test_publishing_creates_exactly_the_previewed_slots(world, client_as):
    client = client_as("receptionist_a")
    role = world.role_a
    previewed = {s.start for s in _plan(role, now=datetime.now(UTC)).new}

    response = client.post(_url(world), {**_form(world), "action": "publish", "expected": "128"})

    assert response.status_code == 302
    assert "/agenda/?date=2027-03-22" in response["Location"]
    assert set(Slot.objects.filter(role=role).values_list("start", flat=True)) == previewed
    assert OutboxEvent.objects.filter(kind="slot.created").count() == 128
    assert AgendaChange.objects.get().by == world.receptionist_a


def test_a_template_with_a_refused_time_publishes_nothing(world, client_as):
    SlotFactory(
        role=world.role_b,
        practitioner=world.role_a.practitioner,
        clinic=world.clinic_b,
        start=datetime(2027, 3, 24, 14, 0, tzinfo=UTC),
        end=datetime(2027, 3, 24, 14, 15, tzinfo=UTC),
    )

    response = client_as("admin_a").post(
        _url(world), {**_form(world), "action": "publish", "expected": "127"}
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "error-summary" in html
    assert 'value="publish"' not in html
    assert not Slot.objects.filter(role=world.role_a).exists()


def test_a_changed_count_since_the_preview_publishes_nothing(world, client_as):
    response = client_as("admin_a").post(
        _url(world), {**_form(world), "action": "publish", "expected": "130"}
    )

    assert response.status_code == 200
    assert "error-summary" in response.content.decode()
    assert not Slot.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("date_from", "2020-01-06"), ("date_to", "2027-07-30"), ("time_to", "08:10"), ("open_on", "2027-13-01")],
)
def test_bad_input_is_tied_to_its_field(world, client_as, field, value):
    response = client_as("receptionist_a").get(_url(world), _form(world, **{field: value}))

    html = response.content.decode()
    assert response.status_code == 200
    assert f'href="#id_{field}"' in html
    assert f'id="id_{field}_error"' in html
    assert 'value="publish"' not in html


def test_a_practitioner_of_another_clinic_cannot_be_chosen(world, client_as):
    response = client_as("receptionist_a").get(
        _url(world), _form(world, practitioner=str(world.role_b.practitioner_id))
    )

    assert 'id="id_practitioner_error"' in response.content.decode()


def test_the_page_renders_in_french_by_default_and_in_english_when_asked(world, client_as):
    client = client_as("receptionist_a")
    french = client.get(_url(world), _form(world)).content.decode()
    english = client.get(_url(world), _form(world), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "Plages à partir d’un modèle" in french and "Vendredi saint" in french
    assert "Slots from a template" in english and "Good Friday" in english
