""" "Soonest near a place" has two plans (booking.selectors, docs/search-plan.md): few clinics in the
radius, each clinic's first slots from the (clinic, start) index; many, the start-ordered walk. Both
must give the same pages, in the same order, with the same rules."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from booking import selectors
from booking.models import Audience
from booking.selectors import PAGE_SIZE, SlotQuery, slot_search
from booking.services import slot_hold
from tests.factories import NOW, CitizenFactory, ClinicFactory, FsaFactory, RoleFactory, SlotFactory

pytestmark = pytest.mark.django_db


def pages(citizen=None) -> list[list[int]]:
    out = []
    for page in (1, 2, 3):
        query = SlotQuery(path="near", fsa="H2X", radius_km=25, page=page)
        out.append([item.slot.pk for item in slot_search(citizen=citizen, query=query, now=NOW).items])
    return out


@pytest.fixture
def area():
    FsaFactory(code="H2X")
    roles = [RoleFactory(clinic=ClinicFactory(latitude=45.5145 + i * 0.01)) for i in range(3)]
    far = RoleFactory(clinic=ClinicFactory(latitude=47.0))  # 165 km north: out of the radius
    slots = []
    for n in range(14):  # interleaved across the clinics, two at the same minute
        role = roles[n % 3]
        start = NOW + timedelta(hours=30 + n // 2)
        slots.append(SlotFactory(role=role, start=start, end=start + timedelta(minutes=15)))
    SlotFactory(role=far, start=NOW + timedelta(hours=29), end=NOW + timedelta(hours=29, minutes=15))
    SlotFactory(role=roles[0], audience=Audience.GMF_PATIENTS, start=NOW + timedelta(hours=28))
    return slots


def test_both_plans_give_the_same_pages_in_start_order(settings, area, monkeypatch):
    expected = sorted(area, key=lambda s: (s.start, s.pk))
    per_clinic = pages()
    assert per_clinic == [[s.pk for s in expected[:PAGE_SIZE]], [s.pk for s in expected[PAGE_SIZE:]], []]
    monkeypatch.setattr(selectors, "NEAR_PER_CLINIC_MAX", 2)  # three clinics: the start-ordered walk
    assert pages() == per_clinic


def test_the_per_clinic_plan_keeps_the_hold_rules(area):
    holder, other = CitizenFactory(), CitizenFactory()
    first = sorted(area, key=lambda s: (s.start, s.pk))[0]
    slot_hold(slot_id=first.pk, citizen=holder, now=NOW)
    assert first.pk not in pages(other)[0]
    assert pages(holder)[0][0] == first.pk


def test_the_per_clinic_plan_runs_a_bounded_number_of_queries(area):
    with CaptureQueriesContext(connection) as queries:
        slot_search(citizen=None, query=SlotQuery(path="near", fsa="H2X", radius_km=25), now=NOW)
    # The origin, the clinics in the radius, their first slots, the page.
    assert len(queries.captured_queries) == 4


def test_no_lone_clinic_index_on_slots_to_mislead_the_planner():
    """With an index on clinic_id alone, PostgreSQL read and sorted each clinic's whole agenda for the
    per-clinic probes (about 1 ms per clinic at provincial size, 110–240 ms a search) instead of walking
    its soonest free public slots in the (clinic, start) index (0.04 ms): docs/benchmarks.md."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE tablename = 'booking_slot' AND indexdef LIKE %s",
            ["%(clinic_id%"],
        )
        found = dict(cursor.fetchall())
    lone = [name for name, definition in found.items() if definition.endswith("(clinic_id)")]
    assert lone == []
    assert found["slot_clinic_start"].endswith("(clinic_id, start)")
