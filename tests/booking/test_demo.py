"""The demo-data generator: deterministic, realistic, and within every invariant the booking paths keep."""

import zoneinfo
from datetime import date, time, timedelta
from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import reverse

from booking.demo import DemoDataError, demo_seed, nam_for, name_letters
from booking.demo_families import demo_password
from booking.models import Appointment, Slot, mask_to_reasons
from citizens.models import Citizen, Dependant, Enrolment
from citizens.nam import nam_matches_birth_date, parse_nam
from clinics.models import Clinic, Gmf, Practitioner, PractitionerRole

pytestmark = pytest.mark.django_db

# 2026-03-08 is the Sunday on which Eastern and Atlantic time move to daylight time.
DST_WEEK = date(2026, 3, 5)
SMALL = {"clinics": 12, "days": 7, "seed": 7, "start_date": DST_WEEK}


def seed_small(**overrides):
    return demo_seed(**{**SMALL, **overrides})


def rows(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def delete_demo_data():
    for model in (Appointment, Slot, Enrolment, Citizen, PractitionerRole, Practitioner, Clinic, Gmf):
        model.objects.all().delete()


def snapshot():
    nams = list(Citizen.objects.order_by("nam").values_list("nam", "first_name", "last_name", "birth_date"))
    slots = list(
        Slot.objects.order_by("practitioner__ramq_number", "start").values_list(
            "practitioner__ramq_number",
            "clinic__name",
            "start",
            "end",
            "reasons",
            "audience",
            "modality",
            "status",
        )
    )
    return nams, slots


def test_counts_are_plausible_and_match_the_database():
    counts = seed_small()

    assert counts["clinics"] == Clinic.objects.count() == 12
    assert counts["practitioners"] == Practitioner.objects.count() == 60  # five per site
    assert counts["roles"] == PractitionerRole.objects.count()
    assert 60 <= counts["roles"] <= 70
    assert counts["citizens"] == Citizen.objects.count() == 60 * 20
    assert counts["enrolments"] == Enrolment.objects.count()
    assert 0.78 <= counts["enrolments"] / counts["citizens"] <= 0.92
    assert counts["gmfs"] == Gmf.objects.count() >= 1
    assert counts["slots"] == Slot.objects.count()
    assert 60 * 30 <= counts["slots"] <= 60 * 60  # 30 to 60 slots a week each
    assert counts["appointments"] == Appointment.objects.count()
    assert 0.05 <= counts["appointments"] / counts["slots"] <= 0.25
    assert Slot.objects.filter(status="booked").count() == counts["appointments"]
    assert counts["seconds"] >= 0
    assert Practitioner.objects.filter(kind="np").exists()
    assert Clinic.objects.exclude(emr_product="").exists() and Clinic.objects.filter(emr_product="").exists()
    for gmf in Gmf.objects.all():
        sites = list(gmf.clinics.all())
        assert 1 <= len(sites) <= 4
        assert len({site.time_zone for site in sites}) == 1


def test_the_same_seed_gives_the_same_people_and_slots_and_another_seed_does_not():
    seed_small()
    first = snapshot()
    delete_demo_data()

    seed_small()
    assert snapshot() == first

    delete_demo_data()
    seed_small(seed=8)
    other = snapshot()
    assert other[0] != first[0]
    assert other[1] != first[1]


def test_every_nam_is_valid_unique_and_agrees_with_the_person():
    seed_small()

    citizens = list(Citizen.objects.all())
    assert len({c.nam for c in citizens}) == len(citizens)
    for citizen in citizens:
        nam = parse_nam(citizen.nam)
        assert nam_matches_birth_date(nam, citizen.birth_date), citizen.nam
        assert nam.sex_marker == citizen.sex, citizen.nam
        assert citizen.nam[:3] == name_letters(citizen.last_name)[:3].ljust(3, "X")
        assert citizen.nam[3] == name_letters(citizen.first_name)[0]
        assert citizen.email.endswith("@example.org")
        assert citizen.postal_code[3] == " " and len(citizen.postal_code) == 7
        assert citizen.card_expires > DST_WEEK
        assert len(citizen.card_sequence) == 2


@pytest.mark.parametrize(
    ("last_name", "first_name", "birth", "sex", "expected"),
    [
        ("Bélanger", "Émilie", date(1984, 7, 9), "F", "BELE84570912"),
        ("Ng", "Louis", date(2003, 12, 31), "M", "NGXL03123112"),
        ("D'Amours", "Zoé", date(1950, 1, 2), "F", "DAMZ50510212"),
        ("St-Pierre", "Éric", date(2020, 2, 29), "M", "STPE20022912"),
    ],
)
def test_nam_letters_drop_accents_and_pad_short_names(last_name, first_name, birth, sex, expected):
    nam = nam_for(last_name=last_name, first_name=first_name, birth_date=birth, sex=sex, admin=12)

    assert nam == expected
    assert nam_matches_birth_date(parse_nam(nam), birth)


def test_slots_repeat_their_role_practitioner_and_clinic():
    seed_small()

    mismatched = rows(
        "SELECT count(*) FROM booking_slot s JOIN clinics_practitionerrole r ON r.id = s.role_id "
        "WHERE r.practitioner_id <> s.practitioner_id OR r.clinic_id <> s.clinic_id"
    )
    assert mismatched == [(0,)]
    assert Slot.objects.count() > 0


def test_no_practitioner_has_overlapping_slots_even_across_two_sites():
    # A bigger set, so that some practitioners work at two sites of their GMF.
    demo_seed(clinics=40, days=14, seed=3, start_date=DST_WEEK)

    overlaps = rows(
        "SELECT count(*) FROM booking_slot a JOIN booking_slot b ON a.practitioner_id = b.practitioner_id "
        "AND a.id < b.id AND a.start < b.end AND b.start < a.end "
        "WHERE a.status <> 'cancelled' AND b.status <> 'cancelled'"
    )
    assert overlaps == [(0,)]
    two_sites = rows(
        "SELECT count(*) FROM (SELECT practitioner_id FROM booking_slot GROUP BY practitioner_id "
        "HAVING count(DISTINCT clinic_id) > 1) x"
    )
    assert two_sites[0][0] > 0


def slot_table_schema():
    return rows(
        "SELECT 'index', indexdef FROM pg_indexes WHERE tablename = 'booking_slot' "
        "UNION ALL SELECT 'constraint', conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'booking_slot'::regclass ORDER BY 1, 2"
    )


def test_the_slot_indexes_and_constraints_are_back_in_force_after_the_bulk_load():
    before = slot_table_schema()
    seed_small()

    assert slot_table_schema() == before
    assert any("EXCLUDE USING gist" in definition for _, definition in before)
    slot = Slot.objects.filter(status="free").first()
    overlapping = {
        "role_id": slot.role_id,
        "practitioner_id": slot.practitioner_id,
        "clinic_id": slot.clinic_id,
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        Slot.objects.create(**overlapping, start=slot.start + timedelta(minutes=5), end=slot.end)
    with pytest.raises(IntegrityError), transaction.atomic():
        later = {"start": slot.start + timedelta(days=400), "end": slot.end + timedelta(days=400)}
        Slot.objects.create(**{**overlapping, "clinic_id": 999_999_999}, **later)
        with connection.cursor() as cursor:  # foreign keys are deferred: check now
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def share(queryset, **condition):
    return queryset.filter(**condition).count() / queryset.count()


def test_the_slot_mix_is_realistic():
    demo_seed(clinics=40, days=14, seed=3, start_date=DST_WEEK)
    slots = Slot.objects.all()

    assert 0.28 <= share(slots, audience="own_patients") <= 0.45
    assert 0.15 <= share(slots, audience="gmf_patients") <= 0.32
    assert 0.28 <= share(slots, audience="public") <= 0.45
    assert 0.02 <= share(slots, audience="not_online") <= 0.09
    assert not slots.filter(audience="gmf_patients", clinic__gmf__isnull=True).exists()
    assert 0.72 <= share(slots, modality="in_person") <= 0.88
    assert 0.10 <= share(slots, modality="phone") <= 0.20
    assert 0.02 <= share(slots, modality="video") <= 0.09
    assert slots.filter(reasons=1).exists()  # urgent-only walk-in slots
    assert set(slots.filter(source="emr").values_list("clinic__emr_product", flat=True)) - {""}
    assert not slots.filter(source="emr", clinic__emr_product="").exists()
    assert not slots.filter(source="web").exclude(clinic__emr_product="").exists()
    assert not slots.filter(source="emr", external_id="").exists()
    per_week = rows("SELECT count(*) / 2.0 FROM booking_slot GROUP BY practitioner_id")
    assert all(25 <= n <= 60 for (n,) in per_week)


def test_booked_slots_have_one_fitting_appointment_and_citizens_at_most_two():
    seed_small()

    for appointment in Appointment.objects.select_related("slot", "citizen"):
        slot = appointment.slot
        assert slot.status == "booked"
        assert (appointment.start, appointment.end, appointment.clinic_id) == (
            slot.start,
            slot.end,
            slot.clinic_id,
        )
        assert appointment.reason in mask_to_reasons(slot.reasons)
        if slot.audience == "own_patients":
            assert Enrolment.objects.filter(
                citizen=appointment.citizen, practitioner_id=slot.practitioner_id
            ).exists()
        if slot.audience == "gmf_patients":
            assert Enrolment.objects.filter(citizen=appointment.citizen, gmf_id=slot.clinic.gmf_id).exists()
        if slot.audience == "not_online":
            assert appointment.channel in ("agenda", "emr")
    assert rows("SELECT max(n) FROM (SELECT count(*) n FROM booking_appointment GROUP BY citizen_id) x") == [
        (2,)
    ]
    overlaps = rows(
        "SELECT count(*) FROM booking_appointment a JOIN booking_appointment b "
        "ON a.citizen_id = b.citizen_id AND a.id < b.id AND a.start < b.end AND b.start < a.end"
    )
    assert overlaps == [(0,)]


def test_enrolments_carry_the_gmf_of_the_practitioners_first_site():
    seed_small()

    for enrolment in Enrolment.objects.select_related("practitioner"):
        first_role = enrolment.practitioner.roles.order_by("id").select_related("clinic").first()
        assert enrolment.gmf_id == first_role.clinic.gmf_id


def test_there_is_always_a_clinic_on_the_magdalen_islands_in_atlantic_time():
    demo_seed(clinics=2, days=1, seed=99, start_date=DST_WEEK)

    islands = Clinic.objects.filter(postal_code__startswith="G0B").get()
    assert islands.time_zone == "America/Halifax"
    assert islands.region_id == "11"
    assert Clinic.objects.exclude(time_zone__in=["America/Halifax", "America/Blanc-Sablon"]).count() == 1


def test_slots_fall_on_the_clinic_wall_clock_on_both_sides_of_the_dst_change():
    seed_small()
    windows = {  # weekday -> local opening hours of the half-days
        **{day: [(time(8), time(12)), (time(13), time(17)), (time(18), time(21))] for day in range(4)},
        4: [(time(8), time(12)), (time(13), time(17))],
        5: [(time(9), time(12))],
    }
    seen_zones, seen_offsets, mornings = set(), set(), {}

    for slot in Slot.objects.select_related("clinic"):
        zone = zoneinfo.ZoneInfo(slot.clinic.time_zone)
        start, end = slot.start.astimezone(zone), slot.end.astimezone(zone)
        assert start.minute in (0, 15, 20, 30, 40, 45), slot.start
        assert end - start in (timedelta(minutes=15), timedelta(minutes=20), timedelta(minutes=30))
        assert start.date() == end.date()
        assert any(
            opens <= start.time() and end.time() <= closes
            for opens, closes in windows.get(start.weekday(), [])
        ), (slot.clinic.time_zone, start)
        seen_zones.add(slot.clinic.time_zone)
        seen_offsets.add((slot.clinic.time_zone, start.date() >= date(2026, 3, 8), start.utcoffset()))
        if start.time() < time(12) and start.weekday() < 5:
            key = (slot.practitioner_id, start.date())
            mornings[key] = min(mornings.get(key, start.time()), start.time())

    assert {"America/Toronto", "America/Halifax"} <= seen_zones
    # Slots exist before and after the change, at standard then daylight time.
    assert ("America/Toronto", False, timedelta(hours=-5)) in seen_offsets
    assert ("America/Toronto", True, timedelta(hours=-4)) in seen_offsets
    assert ("America/Halifax", True, timedelta(hours=-3)) in seen_offsets
    # Every weekday morning starts at 08:00 on the clinic's clock, whatever the UTC offset.
    assert mornings and set(mornings.values()) == {time(8)}


def test_if_empty_does_nothing_the_second_time_and_a_plain_second_run_is_refused():
    first = seed_small()
    slots = Slot.objects.count()

    again = seed_small(if_empty=True)

    assert again["skipped"] == 1
    assert again["clinics"] == again["slots"] == 0
    assert Slot.objects.count() == slots == first["slots"]
    with pytest.raises(DemoDataError):
        seed_small()


def test_the_command_reports_counts_and_honours_if_empty():
    out = StringIO()
    args = ["--clinics", "3", "--days", "2", "--seed", "5", "--start-date", "2026-05-04"]

    call_command("seed_demo", *args, stdout=out)
    call_command("seed_demo", *args, "--if-empty", stdout=out)

    text = out.getvalue()
    assert "3 clinics" in text and "15 practitioners" in text
    assert "nothing to do" in text
    assert Clinic.objects.count() == 3


def test_a_few_demo_parents_have_an_account_and_children_to_book_for(settings):
    settings.DEBUG = True  # demo_citizens prints demo cards only in development
    counts = seed_small()
    links = list(Dependant.objects.select_related("guardian__account", "citizen"))
    assert counts["dependants"] == len(links) and 3 <= len(links) <= 6
    parents = {link.guardian for link in links}
    assert len(parents) == 3
    start = SMALL["start_date"]
    for link in links:
        assert link.relationship == "parent" and link.added_by == link.guardian.account
        assert (start - link.citizen.birth_date).days < 18 * 365
        assert link.citizen.postal_code[:3] == link.guardian.postal_code[:3]
        assert link.citizen.account is None
    for parent in parents:
        assert parent.account.email == parent.email
        assert EmailAddress.objects.filter(user=parent.account, verified=True).exists()
        # The printed password signs in (allauth), and the search then asks who it is for.
        client = Client()
        response = client.post(
            reverse("account_login"), {"login": parent.email, "password": demo_password(parent.email)}
        )
        assert response.status_code == 302, response.content[:300]
        search = client.get(reverse("booking:search")).content.decode()
        assert all(link.citizen.first_name in search for link in links if link.guardian == parent)
    out = StringIO()
    call_command("demo_citizens", stdout=out)
    text = out.getvalue()
    for link in links:
        assert f"dependant id {link.pk}" in text and parse_nam(link.citizen.nam).formatted in text
    for parent in parents:
        assert f"account {parent.email} | password {demo_password(parent.email)}" in text
