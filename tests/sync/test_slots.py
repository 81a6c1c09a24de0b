"""Slot read and search: mapping, versions as ETags, filters, paging, includes, query budget."""

import datetime as dt
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from booking.models import Audience, Modality, Slot, reasons_to_mask
from tests.factories import CitizenFactory, RoleFactory, SlotFactory

from .conftest import FHIR


def _ids(bundle):
    return [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"]


def test_a_slot_reads_as_fhir_with_its_version_as_etag(fhir_a, persona_a):
    slot = SlotFactory(
        role=persona_a.role,
        external_id="EMR-42",
        reasons=reasons_to_mask(["urgent", "follow_up"]),
        audience=Audience.GMF_PATIENTS,
        modality=Modality.PHONE,
        version=3,
    )
    response = fhir_a.get(f"{FHIR}Slot/{slot.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["meta"]["versionId"] == "3"
    assert response["ETag"] == 'W/"3"'
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert body["schedule"] == {"reference": f"Schedule/{persona_a.role.pk}"}
    assert body["status"] == "free"
    assert body["start"] == slot.start.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    assert body["identifier"] == [
        {"system": f"https://rdv-sante.quebec/fhir/sid/clinic/{persona_a.clinic.pk}/slot", "value": "EMR-42"}
    ]
    assert [c["coding"][0]["code"] for c in body["serviceType"]] == ["urgent", "follow_up"]
    assert {c["coding"][0]["system"] for c in body["serviceType"]} == {
        "https://rdv-sante.quebec/fhir/CodeSystem/reason"
    }
    modality = body["appointmentType"]["coding"][0]
    assert (modality["system"], modality["code"]) == (
        "https://rdv-sante.quebec/fhir/CodeSystem/modality",
        "phone",
    )
    assert modality["display"]
    assert body["extension"] == [
        {
            "url": "https://rdv-sante.quebec/fhir/StructureDefinition/slot-audience",
            "valueCode": "gmf_patients",
        }
    ]


@pytest.mark.parametrize(
    ("status", "fhir_status"),
    [(Slot.Status.FREE, "free"), (Slot.Status.BOOKED, "busy"), (Slot.Status.BLOCKED, "busy-unavailable")],
)
def test_slot_statuses_map_to_fhir(fhir_a, persona_a, status, fhir_status):
    slot = SlotFactory(role=persona_a.role, status=status)
    assert fhir_a.get(f"{FHIR}Slot/{slot.pk}").json()["status"] == fhir_status
    assert _ids(fhir_a.get(f"{FHIR}Slot", {"status": fhir_status}).json()) == [str(slot.pk)]


def test_a_withdrawn_slot_is_gone_and_left_out_of_searches(fhir_a, persona_a):
    slot = SlotFactory(role=persona_a.role, status=Slot.Status.CANCELLED)
    response = fhir_a.get(f"{FHIR}Slot/{slot.pk}")
    assert response.status_code == 410
    assert response.json()["issue"][0]["code"] == "deleted"
    assert fhir_a.get(f"{FHIR}Slot").json()["total"] == 0


def test_a_held_slot_shows_no_trace_of_its_hold(fhir_a, persona_a):
    slot = SlotFactory(
        role=persona_a.role,
        holder=CitizenFactory(),
        hold_expires=timezone.now() + timedelta(minutes=5),
        hold_token="secret-hold-token",
    )
    for body in (fhir_a.get(f"{FHIR}Slot/{slot.pk}").json(), fhir_a.get(f"{FHIR}Slot").json()):
        text = str(body)
        assert "secret-hold-token" not in text
        assert "hold" not in text.lower()
    assert fhir_a.get(f"{FHIR}Slot/{slot.pk}").json()["status"] == "free"


@pytest.fixture
def day_of_slots(persona_a):
    """Eight 15-minute slots from 10:00 UTC, three days from now."""
    start = (timezone.now() + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    return [
        SlotFactory(
            role=persona_a.role,
            start=start + timedelta(minutes=15 * i),
            end=start + timedelta(minutes=15 * (i + 1)),
        )
        for i in range(8)
    ]


def _instant(value):
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_start_prefixes_bound_the_search(fhir_a, day_of_slots):
    third, sixth = day_of_slots[2], day_of_slots[5]
    cases = {
        ("ge", "lt"): day_of_slots[2:5],
        ("gt", "le"): day_of_slots[3:6],
    }
    for (low, high), expected in cases.items():
        bundle = fhir_a.get(
            f"{FHIR}Slot", {"start": [f"{low}{_instant(third.start)}", f"{high}{_instant(sixth.start)}"]}
        ).json()
        assert _ids(bundle) == [str(s.pk) for s in expected], (low, high)
        assert bundle["total"] == len(expected)


def test_start_accepts_an_offset_and_a_date(fhir_a, day_of_slots):
    first = day_of_slots[0].start
    local = first.astimezone(timezone.get_fixed_timezone(-300)).isoformat()
    assert fhir_a.get(f"{FHIR}Slot", {"start": f"gt{local}"}).json()["total"] == 7
    day_after = (first + timedelta(days=1)).date().isoformat()
    assert fhir_a.get(f"{FHIR}Slot", {"start": f"ge{day_after}"}).json()["total"] == 0


def test_status_schedule_and_identifier_filters(fhir_a, persona_a, day_of_slots):
    day_of_slots[1].status = Slot.Status.BOOKED
    day_of_slots[1].external_id = "EMR-2"
    day_of_slots[1].save()
    other_role = RoleFactory(clinic=persona_a.clinic)
    other = SlotFactory(role=other_role, status=Slot.Status.BLOCKED)

    assert fhir_a.get(f"{FHIR}Slot", {"status": "free"}).json()["total"] == 7
    assert _ids(fhir_a.get(f"{FHIR}Slot", {"status": "busy,busy-unavailable"}).json()) == sorted(
        [str(day_of_slots[1].pk), str(other.pk)], key=lambda pk: Slot.objects.get(pk=pk).start
    )
    assert _ids(fhir_a.get(f"{FHIR}Slot", {"schedule": f"Schedule/{other_role.pk}"}).json()) == [
        str(other.pk)
    ]
    assert fhir_a.get(f"{FHIR}Slot", {"schedule": str(persona_a.role.pk)}).json()["total"] == 8
    system = f"https://rdv-sante.quebec/fhir/sid/clinic/{persona_a.clinic.pk}/slot"
    assert _ids(fhir_a.get(f"{FHIR}Slot", {"identifier": f"{system}|EMR-2"}).json()) == [
        str(day_of_slots[1].pk)
    ]
    assert _ids(fhir_a.get(f"{FHIR}Slot", {"identifier": "EMR-2"}).json()) == [str(day_of_slots[1].pk)]
    assert (
        fhir_a.get(f"{FHIR}Slot", {"identifier": "https://elsewhere.example/slot|EMR-2"}).json()["total"] == 0
    )


def test_last_updated_finds_recent_changes(fhir_a, day_of_slots):
    Slot.objects.filter(pk=day_of_slots[0].pk).update(updated_at=timezone.now() - timedelta(days=2))
    since = _instant(timezone.now() - timedelta(days=1))
    assert fhir_a.get(f"{FHIR}Slot", {"_lastUpdated": f"ge{since}"}).json()["total"] == 7


def test_following_next_links_returns_every_slot_exactly_once(fhir_a, persona_a, day_of_slots):
    # Two slots at the same start (two roles): the keyset must not skip or repeat either.
    twin = SlotFactory(
        role=RoleFactory(clinic=persona_a.clinic), start=day_of_slots[3].start, end=day_of_slots[3].end
    )
    expected = {str(s.pk) for s in [*day_of_slots, twin]}
    url, seen, pages = f"{FHIR}Slot?_count=2", [], 0
    while url:
        bundle = fhir_a.get(url).json()
        assert bundle["total"] == 9
        assert len(bundle["entry"]) <= 2
        seen += _ids(bundle)
        pages += 1
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert "_count=2" in links["self"]
        next_url = links.get("next")
        url = urlsplit(next_url)._replace(scheme="", netloc="").geturl() if next_url else None
    assert pages == 5
    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(set(seen))


def test_count_defaults_to_50_and_is_capped_at_500(fhir_a, day_of_slots):
    links = fhir_a.get(f"{FHIR}Slot").json()["link"]
    assert "_count=50" in links[0]["url"]
    bundle = fhir_a.get(f"{FHIR}Slot", {"_count": "10000"}).json()
    assert "_count=500" in bundle["link"][0]["url"]
    assert len(bundle["entry"]) == 8
    empty = fhir_a.get(f"{FHIR}Slot", {"_count": "0"}).json()
    assert empty["total"] == 8
    assert empty["entry"] == []


def test_include_schedule_adds_each_schedule_once(fhir_a, persona_a, day_of_slots):
    bundle = fhir_a.get(f"{FHIR}Slot", {"_include": "Slot:schedule", "_count": "3"}).json()
    included = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert [e["resource"]["resourceType"] for e in included] == ["Schedule"]
    assert included[0]["resource"]["id"] == str(persona_a.role.pk)
    assert included[0]["fullUrl"].endswith(f"{FHIR}Schedule/{persona_a.role.pk}")
    assert bundle["total"] == 8  # includes are not counted


def test_a_search_page_runs_a_bounded_number_of_queries(fhir_a, persona_a, django_assert_max_num_queries):
    for index in range(5):
        role = RoleFactory(clinic=persona_a.clinic)
        for _ in range(10):
            SlotFactory(role=role, start=timezone.now() + timedelta(days=4 + index, minutes=15 * _))
    # The first 2xx of the minute also marks the client as seen (the clinic's EMR health panel).
    fhir_a.get(f"{FHIR}Slot", {"_count": "0"})
    # Token, EMR client, its clinics, total, the page, the included schedules: whatever the page size.
    with django_assert_max_num_queries(6):
        bundle = fhir_a.get(f"{FHIR}Slot", {"_include": "Slot:schedule", "_count": "40"}).json()
    assert len([e for e in bundle["entry"] if e["search"]["mode"] == "match"]) == 40
    assert len([e for e in bundle["entry"] if e["search"]["mode"] == "include"]) == 4
