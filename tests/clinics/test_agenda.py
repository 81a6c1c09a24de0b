"""The clinic agenda and the day sheet: local times, contents, and one audit row per citizen shown."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.urls import reverse

from booking.models import Appointment, Audience, Reason, Slot
from booking.services import appointment_book
from clinics.models import StaffAuditEvent
from clinics.selectors import agenda_for_clinic, local_day_bounds
from tests.factories import NOW, CitizenFactory, ClinicFactory, RoleFactory, SlotFactory

pytestmark = pytest.mark.django_db

DAY = date(2027, 2, 10)  # a Wednesday, standard time (UTC−5 in Toronto)


def _slot(role, hour_utc: float, *, day: date = DAY, **fields) -> Slot:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hour_utc)
    return SlotFactory(role=role, start=start, end=start + timedelta(minutes=15), **fields)


def _book(slot: Slot, citizen, user=None) -> Appointment:
    return appointment_book(
        slot_id=slot.pk,
        citizen=citizen,
        reason=Reason.FOLLOW_UP,
        channel=Appointment.Channel.CLINIC_AGENDA,
        booked_by_user=user,
        now=NOW,
    )


def _agenda(client, clinic, **params):
    return client.get(reverse("clinics:agenda", args=[clinic.pk]), {"date": DAY.isoformat(), **params})


def _times(html: str) -> list[str]:
    return re.findall(r"<th scope=\"row\"><time[^>]*>(\d\d:\d\d)</time>", html)


def test_the_day_view_shows_slots_in_local_time_with_status_audience_and_patient(world, client_as):
    free = _slot(world.role_a, 14, audience=Audience.GMF_PATIENTS)  # 09:00 EST
    booked = _slot(world.role_a, 15)  # 10:00 EST
    _book(booked, CitizenFactory(first_name="Élise", last_name="Bouchard"))

    html = _agenda(client_as("receptionist_a"), world.clinic_a).content.decode()

    assert _times(html) == ["09:00", "10:00"]
    assert "Élise Bouchard" in html
    assert "Patients du GMF" in html or "Patients of the GMF" in html
    assert free.start == datetime(2027, 2, 10, 14, tzinfo=UTC)
    assert 'datetime="2027-02-10T09:00:00-05:00"' in html  # machine-readable, with the offset
    assert "<caption" in html and 'scope="col"' in html


def test_clinic_b_slots_never_appear_in_clinic_a_agenda(world, client_as):
    _slot(world.role_a, 14)
    other = _slot(world.role_b, 15)
    _book(other, CitizenFactory(first_name="Zoé", last_name="Secrète"))

    html = _agenda(client_as("admin_a"), world.clinic_a).content.decode()

    assert _times(html) == ["09:00"]
    assert "Secrète" not in html


def test_withdrawn_slots_are_left_out_and_blocked_ones_shown(world, client_as):
    _slot(world.role_a, 14, status=Slot.Status.CANCELLED)
    _slot(world.role_a, 15, status=Slot.Status.BLOCKED)

    html = _agenda(client_as("admin_a"), world.clinic_a).content.decode()

    assert _times(html) == ["10:00"]
    assert "status-blocked" in html


def test_one_audit_row_per_citizen_shown(world, client_as):
    julie, marc = CitizenFactory(first_name="Julie"), CitizenFactory(first_name="Marc")
    _book(_slot(world.role_a, 14), julie)
    _book(_slot(world.role_a, 15), marc)
    colleague = RoleFactory(clinic=world.clinic_a)
    _book(_slot(colleague, 17), julie)  # the same citizen twice on the page: one row
    _slot(world.role_a, 16)  # free: nobody shown

    _agenda(client_as("receptionist_a"), world.clinic_a)

    rows = StaffAuditEvent.objects.order_by("resource_id")
    assert [(r.resource_type, r.resource_id) for r in rows] == [("Citizen", julie.pk), ("Citizen", marc.pk)]
    assert {(r.user_id, r.clinic_id, r.purpose, r.action) for r in rows} == {
        (world.receptionist_a.pk, world.clinic_a.pk, "agenda", "read")
    }


def test_no_audit_row_when_no_booked_slot_is_shown(world, client_as):
    _slot(world.role_a, 14)
    _slot(world.role_a, 15, status=Slot.Status.BLOCKED)

    assert _agenda(client_as("receptionist_a"), world.clinic_a).status_code == 200
    assert not StaffAuditEvent.objects.exists()


def test_a_cancelled_appointment_shows_no_patient_and_writes_no_row(world, client_as):
    from booking.services import appointment_cancel

    appointment = _book(_slot(world.role_a, 14), CitizenFactory(last_name="Annulée"))
    appointment_cancel(appointment=appointment, reason="other", by_clinic=True, now=NOW)

    html = _agenda(client_as("admin_a"), world.clinic_a).content.decode()

    assert "Annulée" not in html
    assert not StaffAuditEvent.objects.exists()


def test_the_week_view_shows_seven_days_from_monday(world, client_as):
    _slot(world.role_a, 14, day=date(2027, 2, 8))  # Monday
    _slot(world.role_a, 14, day=date(2027, 2, 14))  # Sunday
    _slot(world.role_a, 14, day=date(2027, 2, 15))  # next Monday: not this week
    citizen = CitizenFactory()
    _book(_slot(world.role_a, 15, day=date(2027, 2, 12)), citizen)

    html = _agenda(client_as("admin_a"), world.clinic_a, view="week").content.decode()

    assert html.count("<caption") == 7
    assert len(_times(html)) == 3
    assert StaffAuditEvent.objects.get().resource_id == citizen.pk


def test_filtering_by_practitioner(world, client_as):
    colleague = RoleFactory(clinic=world.clinic_a)
    _slot(world.role_a, 14)
    _slot(colleague, 15)

    html = _agenda(
        client_as("admin_a"), world.clinic_a, practitioner=colleague.practitioner_id
    ).content.decode()

    assert _times(html) == ["10:00"]


def test_a_practitioner_of_another_clinic_is_refused_and_shows_nothing(world, client_as):
    _slot(world.role_b, 14)

    response = _agenda(client_as("admin_a"), world.clinic_a, practitioner=world.role_b.practitioner_id)

    assert response.status_code == 200
    assert response.context["form"].errors["practitioner"]
    assert _times(response.content.decode()) == []


def test_a_bad_date_is_explained_and_today_shown(world, client_as):
    response = client_as("admin_a").get(
        reverse("clinics:agenda", args=[world.clinic_a.pk]), {"date": "2027-02-30"}
    )

    assert response.status_code == 200
    assert response.context["form"].errors["date"]
    assert "error-summary" in response.content.decode()


def test_dst_start_day_in_toronto_shows_local_times(world, client_as):
    # 2027-03-14: clocks go from 02:00 EST to 03:00 EDT. The local day runs 05:00Z to 04:00Z (23 h).
    day = date(2027, 3, 14)
    _slot(world.role_a, -0.5, day=day)  # 23:30 EST on the 13th: not this day
    _slot(world.role_a, 6.5, day=day)  # 01:30 EST
    _slot(world.role_a, 7.5, day=day)  # 03:30 EDT (02:30 does not exist)
    _slot(world.role_a, 14, day=day)  # 10:00 EDT
    _slot(world.role_a, 27.5, day=day)  # 04:30Z on the 15th = 23:30 EDT on the 14th
    _slot(world.role_a, 28.5, day=day)  # 00:30 EDT on the 15th: not this day (a +5 h day would take it)

    html = (
        client_as("receptionist_a")
        .get(reverse("clinics:agenda", args=[world.clinic_a.pk]), {"date": "2027-03-14"})
        .content.decode()
    )

    assert _times(html) == ["01:30", "03:30", "10:00", "23:30"]
    start, end = local_day_bounds(day, world.clinic_a)
    assert (end - start) == timedelta(hours=23)


def test_a_halifax_clinic_shows_atlantic_time(world, client_as):
    world.clinic_a.time_zone = "America/Halifax"
    world.clinic_a.save()
    _slot(world.role_a, 14)  # 10:00 AST (09:00 in Toronto)

    html = _agenda(client_as("admin_a"), world.clinic_a).content.decode()

    assert _times(html) == ["10:00"]


def test_the_day_sheet_lists_one_practitioner_and_audits_its_patients(world, client_as):
    colleague = RoleFactory(clinic=world.clinic_a)
    mine = _book(_slot(world.role_a, 14), CitizenFactory(last_name="Lavoie"))
    _book(_slot(colleague, 15), CitizenFactory(last_name="Autrepatient"))
    client = client_as("practitioner_a")

    response = client.get(
        reverse("clinics:day_sheet", args=[world.clinic_a.pk]),
        {"date": DAY.isoformat(), "practitioner": world.role_a.practitioner_id},
    )

    html = response.content.decode()
    assert "Lavoie" in html and mine.reference in html
    assert "Autrepatient" not in html
    assert "clinics/print.js" in html and "clinics/clinic.css" in html
    row = StaffAuditEvent.objects.get()
    assert (row.resource_id, row.purpose, row.user_id) == (
        mine.citizen_id,
        "day-sheet",
        world.practitioner_a.pk,
    )


def test_the_day_sheet_without_a_practitioner_asks_for_one_and_shows_no_patient(world, client_as):
    _book(_slot(world.role_a, 14), CitizenFactory(last_name="Lavoie"))

    response = client_as("receptionist_a").get(
        reverse("clinics:day_sheet", args=[world.clinic_a.pk]), {"date": DAY.isoformat()}
    )

    assert response.status_code == 200
    assert "Lavoie" not in response.content.decode()
    assert 'name="practitioner"' in response.content.decode()
    assert not StaffAuditEvent.objects.exists()


def test_the_agenda_selector_keeps_local_days_apart(world):
    clinic = ClinicFactory(time_zone="America/Toronto")
    role = RoleFactory(clinic=clinic)
    _slot(role, 4.5, day=date(2027, 3, 15))  # 00:30 EDT on the 15th

    days = agenda_for_clinic(clinic=clinic, first_day=date(2027, 3, 14), days=2)

    assert [len(d.rows) for d in days] == [0, 1]
