"""Searching free slots on the three paths: my doctor (mine), my GMF (gmf), a clinic near me (near).

Each path shows what the citizen may book online and nothing else: the audience, live holds of
other people, taken slots, the clinic's notice, the radius. Filters are in clinic local time.
"""

import math
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from booking.models import Appointment, Audience, Modality, SearchMiss, Slot, reasons_to_mask
from booking.selectors import PAGE_SIZE, SearchError, SlotQuery, slot_search
from booking.services import appointment_book, slot_hold
from tests.factories import (
    NOW,
    CitizenFactory,
    ClinicFactory,
    EnrolmentFactory,
    FsaFactory,
    PractitionerFactory,
    RegionFactory,
    RoleFactory,
    SlotFactory,
    slot_at,
)

# A Monday in winter: Toronto is UTC-5, so 15:00 UTC is 10:00 at the clinic.
H2X = (45.5145, -73.5733)
KM_PER_DEGREE_LAT = 111.195


def slot_on(role, local: datetime, **fields) -> Slot:
    """A slot at a wall-clock time of the role's clinic."""
    start = local.replace(tzinfo=role.clinic.tz).astimezone(UTC)
    return SlotFactory(role=role, start=start, end=start + timedelta(minutes=15), **fields)


def search(citizen=None, *, now=NOW, **query) -> "list[int]":
    return [item.slot.pk for item in slot_search(citizen=citizen, query=SlotQuery(**query), now=now).items]


def ids(*slots) -> list[int]:
    return [s.pk for s in slots]


@pytest.fixture(autouse=True)
def h2x(db):
    return FsaFactory(code="H2X", latitude=H2X[0], longitude=H2X[1])


@pytest.fixture
def patient(enrolled_citizen):
    """Enrolled with ``role``'s doctor and GMF; lives in H2X."""
    return enrolled_citizen


def role_at(km_north: float = 0.0, km_east: float = 0.0, **clinic_fields):
    latitude = H2X[0] + km_north / KM_PER_DEGREE_LAT
    longitude = H2X[1] + km_east / (KM_PER_DEGREE_LAT * math.cos(math.radians(H2X[0])))
    return RoleFactory(clinic=ClinicFactory(latitude=latitude, longitude=longitude, **clinic_fields))


# --- my doctor -----------------------------------------------------------------------------------


def test_my_doctor_shows_my_doctors_slots_for_own_gmf_and_public_audiences(role, patient):
    own = slot_at(role, hours=48, audience=Audience.OWN_PATIENTS)
    gmf = slot_at(role, hours=49, audience=Audience.GMF_PATIENTS)
    public = slot_at(role, hours=50, audience=Audience.PUBLIC)
    assert search(patient, path="mine") == ids(own, gmf, public)


def test_my_doctor_hides_slots_not_offered_online(role, patient):
    slot_at(role, audience=Audience.NOT_ONLINE)
    assert search(patient, path="mine") == []


def test_my_doctor_hides_other_doctors_even_of_my_gmf(role, colleague_role, other_gmf_role, patient):
    mine = slot_at(role, hours=50)
    slot_at(colleague_role, hours=48)
    slot_at(other_gmf_role, hours=49)
    assert search(patient, path="mine") == ids(mine)


def test_my_doctor_shows_my_doctors_slots_at_another_of_their_clinics(role, patient):
    elsewhere = RoleFactory(practitioner=role.practitioner, clinic=ClinicFactory(gmf=None))
    slot = slot_at(elsewhere, audience=Audience.OWN_PATIENTS)
    assert search(patient, path="mine") == ids(slot)


def test_my_doctor_needs_an_enrolment(role, citizen):
    slot_at(role)
    with pytest.raises(SearchError) as caught:
        search(citizen, path="mine")
    assert caught.value.code == "not_enrolled"


def test_my_doctor_ignores_an_ended_enrolment(role):
    former = EnrolmentFactory(practitioner=role.practitioner, gmf=role.clinic.gmf, is_active=False).citizen
    with pytest.raises(SearchError) as caught:
        search(former, path="mine")
    assert caught.value.code == "not_enrolled"


def test_my_doctor_needs_an_identified_citizen(role):
    with pytest.raises(SearchError) as caught:
        search(None, path="mine")
    assert caught.value.code == "identify"


# --- my GMF --------------------------------------------------------------------------------------


def test_my_gmf_shows_gmf_and_public_slots_of_every_doctor_of_my_gmf(role, colleague_role, patient):
    second_site = RoleFactory(clinic=ClinicFactory(gmf=role.clinic.gmf))
    a = slot_at(colleague_role, hours=48, audience=Audience.GMF_PATIENTS)
    b = slot_at(second_site, hours=49, audience=Audience.PUBLIC)
    c = slot_at(role, hours=50, audience=Audience.GMF_PATIENTS)
    assert search(patient, path="gmf") == ids(a, b, c)


def test_my_gmf_hides_other_doctors_own_patients_slots_and_slots_not_online(role, colleague_role, patient):
    slot_at(colleague_role, hours=48, audience=Audience.OWN_PATIENTS)
    slot_at(colleague_role, hours=49, audience=Audience.NOT_ONLINE)
    assert search(patient, path="gmf") == []


def test_my_gmf_hides_another_gmf(other_gmf_role, patient):
    slot_at(other_gmf_role, audience=Audience.GMF_PATIENTS)
    slot_at(other_gmf_role, hours=49, audience=Audience.PUBLIC)
    assert search(patient, path="gmf") == []


def test_my_gmf_needs_an_enrolment_in_a_gmf(role):
    without_gmf = EnrolmentFactory(practitioner=role.practitioner, gmf=None).citizen
    with pytest.raises(SearchError) as caught:
        search(without_gmf, path="gmf")
    assert caught.value.code == "no_gmf"


# --- near me -------------------------------------------------------------------------------------


def test_near_me_shows_public_slots_within_the_radius_only(citizen):
    near = slot_at(role_at(km_north=10), hours=48)
    slot_at(role_at(km_north=30), hours=49)
    assert search(citizen, path="near", radius_km=25) == ids(near)


def test_a_wider_radius_shows_the_farther_clinic(citizen):
    near = slot_at(role_at(km_north=10), hours=48)
    far = slot_at(role_at(km_north=30), hours=49)
    assert search(citizen, path="near", radius_km=50) == ids(near, far)


def test_near_me_is_a_circle_not_a_box(citizen):
    corner = role_at(km_north=20, km_east=20)  # inside the 25 km box, 28 km away
    slot_at(corner)
    assert search(citizen, path="near", radius_km=25) == []
    assert search(citizen, path="near", radius_km=50) == ids(Slot.objects.get())


@pytest.mark.parametrize("audience", [Audience.OWN_PATIENTS, Audience.GMF_PATIENTS, Audience.NOT_ONLINE])
def test_near_me_hides_slots_reserved_to_patients_or_not_online(role, patient, audience):
    slot_at(role, audience=audience)
    assert search(patient, path="near") == []


def test_near_me_works_without_an_identified_citizen_given_a_postal_code(role):
    slot = slot_at(role)
    assert search(None, path="near", fsa="h2x") == ids(slot)


def test_near_me_uses_the_citizens_postal_code_by_default(role):
    slot = slot_at(role)
    quebec_city = CitizenFactory(postal_code="G1R 4P5")
    FsaFactory(
        code="G1R", latitude=46.81, longitude=-71.21, region=RegionFactory(code="03", name_fr="Capitale")
    )
    assert search(quebec_city, path="near") == []
    assert search(CitizenFactory(postal_code="H2X 3Y7"), path="near") == ids(slot)


def test_near_me_refuses_an_unknown_postal_code(role):
    with pytest.raises(SearchError) as caught:
        search(None, path="near", fsa="Z9Z")
    assert caught.value.code == "postal_code_unknown"


def test_near_me_needs_a_postal_code(role):
    with pytest.raises(SearchError) as caught:
        search(CitizenFactory(postal_code=""), path="near")
    assert caught.value.code == "postal_code"


def test_near_me_sorts_soonest_first_or_nearest_first(citizen):
    far_soon = slot_at(role_at(km_north=20), hours=24)
    near_late = slot_at(role_at(km_north=2), hours=72)
    middle = slot_at(role_at(km_north=10), hours=48)
    assert search(citizen, path="near", sort="soonest") == ids(far_soon, middle, near_late)
    assert search(citizen, path="near", sort="nearest") == ids(near_late, middle, far_soon)


def test_near_me_gives_the_distance_in_km(citizen):
    slot_at(role_at(km_north=10))
    (item,) = slot_search(citizen=citizen, query=SlotQuery(path="near"), now=NOW).items
    assert item.distance_km == pytest.approx(10, abs=0.1)


def test_an_unknown_path_is_refused(role, citizen):
    with pytest.raises(SearchError) as caught:
        search(citizen, path="everywhere")
    assert caught.value.code == "path"


# --- what no path shows --------------------------------------------------------------------------


def test_a_slot_held_by_someone_else_is_hidden_but_my_own_hold_is_shown(role, patient):
    mine = slot_at(role, hours=48)
    theirs = slot_at(role, hours=49)
    slot_hold(slot_id=mine.pk, citizen=patient, now=NOW)
    slot_hold(slot_id=theirs.pk, citizen=CitizenFactory(), now=NOW)
    for path in ("mine", "gmf", "near"):
        assert search(patient, path=path, now=NOW + timedelta(minutes=1)) == ids(mine), path


def test_a_slot_whose_hold_expired_is_shown_again(role, patient):
    slot = slot_at(role)
    slot_hold(slot_id=slot.pk, citizen=CitizenFactory(), now=NOW)
    assert search(patient, path="near", now=NOW + timedelta(minutes=4)) == []
    assert search(patient, path="near", now=NOW + timedelta(minutes=5)) == ids(slot)


def test_an_anonymous_search_hides_every_live_hold(role):
    slot = slot_at(role)
    slot_hold(slot_id=slot.pk, citizen=CitizenFactory(), now=NOW)
    assert search(None, path="near", fsa="H2X") == []


def test_a_booked_slot_is_hidden(role, patient):
    free = slot_at(role, hours=48)
    taken = slot_at(role, hours=49)
    appointment_book(
        slot_id=taken.pk,
        citizen=CitizenFactory(),
        reason="follow_up",
        channel=Appointment.Channel.PORTAL,
        now=NOW,
    )
    assert search(patient, path="mine") == ids(free)


@pytest.mark.parametrize("status", [Slot.Status.BLOCKED, Slot.Status.CANCELLED])
def test_a_blocked_or_withdrawn_slot_is_hidden(role, patient, status):
    slot_at(role, status=status)
    assert search(patient, path="mine") == []


def test_a_slot_within_the_clinics_minimum_notice_is_hidden(citizen):
    careful = role_at(min_notice=timedelta(hours=24))
    relaxed = role_at(min_notice=timedelta(minutes=30))
    slot_at(careful, hours=23)
    later = slot_at(careful, hours=24)
    soon = slot_at(relaxed, hours=0.5)
    slot_at(relaxed, hours=0.25)
    assert search(citizen, path="near") == ids(soon, later)


def test_a_past_slot_is_hidden(role, citizen):
    slot_at(role, hours=-2)
    assert search(citizen, path="near") == []


def test_a_closed_clinics_slots_are_hidden(citizen):
    slot_at(role_at(is_active=False))
    assert search(citizen, path="near") == []


def test_slots_beyond_ninety_days_are_not_searched_by_default(role, citizen):
    near = slot_at(role, hours=24 * 89)
    far = slot_at(role, hours=24 * 92)
    assert search(citizen, path="near") == ids(near)
    assert search(citizen, path="near", date_to=date(2027, 5, 31)) == ids(near, far)


# --- filters -------------------------------------------------------------------------------------


def test_the_reason_filter_shows_slots_that_accept_the_reason_only(role, citizen):
    follow_up = slot_at(role, hours=48, reasons=reasons_to_mask(["follow_up", "periodic"]))
    slot_at(role, hours=49, reasons=reasons_to_mask(["urgent"]))
    assert search(citizen, path="near", reason="periodic") == ids(follow_up)
    assert len(search(citizen, path="near")) == 2


def test_the_modality_filter(role, citizen):
    slot_at(role, hours=48, modality=Modality.IN_PERSON)
    phone = slot_at(role, hours=49, modality=Modality.PHONE)
    assert search(citizen, path="near", modality=Modality.PHONE) == ids(phone)


def test_the_language_filter_uses_the_practitioners_languages(clinic, citizen):
    french_only = RoleFactory(clinic=clinic, practitioner=PractitionerFactory(languages="fr"))
    bilingual = RoleFactory(clinic=clinic, practitioner=PractitionerFactory(languages="fr,en"))
    slot_at(french_only, hours=48)
    english = slot_at(bilingual, hours=49)
    assert search(citizen, path="near", language="en") == ids(english)
    assert len(search(citizen, path="near", language="fr")) == 2


@pytest.mark.parametrize(
    ("time_of_day", "expected"),
    [("morning", ["11:45"]), ("afternoon", ["12:00", "16:45"]), ("evening", ["17:00"])],
)
def test_the_time_of_day_filter_uses_the_clinics_local_hour(role, citizen, time_of_day, expected):
    # In February Toronto is UTC-5: a slot at 11:45 local is 16:45 UTC, afternoon in UTC.
    by_local = {
        hhmm: slot_on(role, datetime(2027, 2, 3, int(hhmm[:2]), int(hhmm[3:])))
        for hhmm in ("11:45", "12:00", "16:45", "17:00")
    }
    assert search(citizen, path="near", time_of_day=time_of_day) == [by_local[t].pk for t in expected]


def test_the_date_range_is_in_local_days(role, citizen):
    slot_on(role, datetime(2027, 2, 9, 23, 30))
    first = slot_on(role, datetime(2027, 2, 10, 0, 0))
    last = slot_on(role, datetime(2027, 2, 10, 23, 30))  # 04:30 UTC on 11 February
    slot_on(role, datetime(2027, 2, 11, 0, 0))
    day = date(2027, 2, 10)
    assert search(citizen, path="near", date_from=day, date_to=day) == ids(first, last)


def test_a_date_range_starting_today_never_shows_the_past(role, citizen):
    slot_on(role, datetime(2027, 2, 1, 9, 0))  # before NOW (10:00 local)
    later = slot_on(role, datetime(2027, 2, 1, 16, 0))
    assert search(citizen, path="near", date_from=date(2027, 2, 1), date_to=date(2027, 2, 1)) == ids(later)


# --- pages ---------------------------------------------------------------------------------------


def test_a_full_page_with_more_behind_says_so(role, citizen):
    slots = [slot_at(role, hours=48 + i) for i in range(PAGE_SIZE + 1)]
    first = slot_search(citizen=citizen, query=SlotQuery(path="near"), now=NOW)
    second = slot_search(citizen=citizen, query=SlotQuery(path="near", page=2), now=NOW)
    assert [i.slot.pk for i in first.items] == ids(*slots[:PAGE_SIZE])
    assert first.has_next
    assert [i.slot.pk for i in second.items] == ids(slots[PAGE_SIZE])
    assert not second.has_next


def test_a_page_with_exactly_page_size_results_has_no_next(role, citizen):
    for i in range(PAGE_SIZE):
        slot_at(role, hours=48 + i)
    result = slot_search(citizen=citizen, query=SlotQuery(path="near"), now=NOW)
    assert len(result.items) == PAGE_SIZE
    assert not result.has_next


# --- unmet demand --------------------------------------------------------------------------------


def test_a_search_near_me_without_result_records_a_miss_and_suggests_what_to_try(role, citizen):
    result = slot_search(
        citizen=citizen, query=SlotQuery(path="near", reason="urgent", radius_km=10), now=NOW
    )
    assert result.items == []
    miss = SearchMiss.objects.get()
    assert (miss.path, miss.reason, miss.fsa, miss.region_id, miss.radius_km) == (
        "near",
        "urgent",
        "H2X",
        "06",
        10,
    )
    assert result.suggestions == ["wider_radius", "fewer_filters", "info_sante"]


def test_a_search_of_my_doctor_without_result_records_a_miss_with_my_fsa(role, patient):
    result = slot_search(citizen=patient, query=SlotQuery(path="mine"), now=NOW)
    miss = SearchMiss.objects.get()
    assert (miss.path, miss.reason, miss.fsa, miss.radius_km) == ("mine", "", "H2X", None)
    assert result.suggestions == ["near", "info_sante"]


def test_a_miss_records_no_personal_data(role, patient):
    slot_search(citizen=patient, query=SlotQuery(path="mine"), now=NOW)
    values = [str(v) for v in SearchMiss.objects.values().get().values()]
    for personal in (patient.nam, patient.first_name, patient.last_name, patient.postal_code):
        assert personal not in values


def test_a_search_with_results_records_no_miss(role, citizen):
    slot_at(role)
    result = slot_search(citizen=citizen, query=SlotQuery(path="near", reason="urgent"), now=NOW)
    assert len(result.items) == 1
    assert result.suggestions == []
    assert not SearchMiss.objects.exists()


# --- bounded queries -----------------------------------------------------------------------------


def read_everything_a_page_shows(result) -> None:
    for item in result.items:
        _ = (item.local_start, item.local_end, item.distance_km)
        _ = (item.slot.clinic.name, item.slot.clinic.city, item.slot.practitioner.display_name)


@pytest.mark.parametrize("path", ["mine", "gmf", "near"])
def test_the_number_of_queries_does_not_grow_with_the_number_of_results(
    path, patient, django_assert_max_num_queries
):
    # Every result at its own clinic (and, off the "mine" path, with its own practitioner), so that a
    # relation read lazily would cost one query per result.
    enrolment = patient.enrolments.get()
    roles = [
        RoleFactory(
            clinic=ClinicFactory(gmf=enrolment.gmf),
            **({"practitioner": enrolment.practitioner} if path == "mine" else {}),
        )
        for _ in range(10)
    ]
    audience = Audience.GMF_PATIENTS if path == "gmf" else Audience.PUBLIC
    slots = [slot_at(r, hours=48 + i, audience=audience) for i, r in enumerate(roles)]

    counts = {}
    for visible in (3, 10):
        Slot.objects.filter(pk__in=ids(*slots[visible:])).update(status=Slot.Status.BLOCKED)
        Slot.objects.filter(pk__in=ids(*slots[:visible])).update(status=Slot.Status.FREE)
        with django_assert_max_num_queries(4), CaptureQueriesContext(connection) as queries:
            result = slot_search(citizen=patient, query=SlotQuery(path=path), now=NOW)
            read_everything_a_page_shows(result)
        assert len(result.items) == visible
        counts[visible] = len(queries)
    assert counts[3] == counts[10], counts
