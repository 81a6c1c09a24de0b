"""The official FHIR R4 (4.0.1) examples of Slot, Schedule and Appointment, adapted to our identifiers,
go through the API and come back equal in substance; where an example uses something we deliberately
refuse, the OperationOutcome we answer instead is asserted, with the reason.

The examples are stored verbatim in ``fhir_r4_examples/`` (source, version and licence in its
README.md; their hashes are checked below). Every adaptation is made here, in code, and listed in a
comment next to it. Adaptations common to all:

- dates: the examples are in 2013; each is moved to a day within our booking horizon, keeping its
  time of day (UTC) and its duration;
- references: ``Schedule/example`` → our practitioner role's ``Schedule``; ``Practitioner/example`` →
  its practitioner; ``Location/1`` → its clinic; ``Patient/example`` → our patient, identified by
  NAM in ``participant.actor.identifier`` (we never take a patient by a reference we did not give);
- identifiers: ours are required (Slot: ``…/clinic/<id>/slot``, Appointment: ``…/emr/<product>/appointment``);
  an example's own identifier keeps its value under our system;
- codes: we require our CodeSystems in ``Slot.serviceType`` (reason), ``Slot.appointmentType``
  (modality) and ``Appointment.appointmentType`` (reason); our coding is **added** to the example's
  concept, whose own codings stay in the body (we ignore codings of other systems).

Elements we do not keep, and so do not send back (asserted): ``Slot.comment``, ``Slot.overbooked``,
``Slot.serviceCategory``/``specialty``, ``Appointment.comment``/``description``/``priority``/
``serviceType``/``serviceCategory``/``specialty``/``basedOn``/``reasonReference``. They are accepted
and ignored (FHIR allows a server not to keep elements it does not support).
"""

import copy
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from booking.models import Appointment, Slot
from booking.services import appointment_book
from sync.models import EmrClient
from tests.factories import CitizenFactory

from .conftest import FHIR
from .test_fhir_examples import send

EXAMPLES = Path(__file__).parent / "fhir_r4_examples"
REASONS = "https://rdv-sante.quebec/fhir/CodeSystem/reason"
MODALITY = "https://rdv-sante.quebec/fhir/CodeSystem/modality"
NAM_SYSTEM = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-qc-patient-healthcare-id"
NOT_KEPT_SLOT = ("comment", "overbooked", "serviceCategory", "specialty", "text")
NOT_KEPT_APPOINTMENT = (
    "comment",
    "description",
    "priority",
    "serviceType",
    "serviceCategory",
    "specialty",
    "basedOn",
    "reasonReference",
    "supportingInformation",
    "created",
    "text",
)
SHA256 = {
    "Appointment-2docs.json": "3aa02fc84b867492ba9bfbec31d3fd26de7d650c5534caa82fa2120f3339c32a",
    "Appointment-example.json": "5bb8ab43044c648178d401852d53125d92f04c608f969754eeeb67ae59986905",
    "Appointment-examplereq.json": "90ab8ec8a7f6256cf7b54b0c9ff00b6c21467d4abf249fb791fa07221c5033ed",
    "Schedule-example.json": "4596b474f1f95d03a111915d78d86f6aa13b8e742d5d261e0930bd4262478d0a",
    "Schedule-exampleloc1.json": "51908e79dbb07c1faaf5117f74cd162bee35cdef32196b7b6eb804bf7eb68c11",
    "Schedule-exampleloc2.json": "a4ee72f392e9aa16a0fac09904474a4d32566727e1836bb1dbd0505c7243fe83",
    "Slot-1.json": "49833527a80fea1eb49d49c72847e815c21122e957974e61af2caeb959891e50",
    "Slot-2.json": "67e954cfd98d87265f640b0f66fa38975917febb23e56b188da81613434c275a",
    "Slot-3.json": "eb8dcde42729ca6e5541d1a2d5d4dc1f0499e1cc664ca1a4d82c37f1307a9fe7",
    "Slot-example.json": "c96be6b3e3aa52266a54d29161f34110d6c36e000affa38e13f249e7fb00ec39",
}


@pytest.fixture(autouse=True)
def _generous_rate(settings):
    settings.SYNC_API_RATE = "100000/m"


def original(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def moved(value: str, days: int) -> str:
    """An instant of 2013 moved ``days`` ahead of today, same time of day (UTC)."""
    old = datetime.fromisoformat(value.replace("Z", "+00:00"))
    day = (timezone.now() + timedelta(days=days)).astimezone(UTC).date()
    return _z(datetime.combine(day, old.timetz()))


def slot_system(persona) -> str:
    return f"https://rdv-sante.quebec/fhir/sid/clinic/{persona.clinic.pk}/slot"


def adapt_slot(name: str, persona, *, days: int = 5) -> dict:
    body = original(name)
    body.pop("id")  # the server gives ids
    body["schedule"] = {"reference": f"Schedule/{persona.role.pk}"}  # Schedule/example → ours
    body["start"], body["end"] = moved(body["start"], days), moved(body["end"], days)
    # serviceType: our reason added to the example's first concept ("57 Immunization" has no system);
    # Slot-1/2/3 have none (we require the reasons a slot accepts): ours is the only concept.
    body.setdefault("serviceType", [{"coding": []}])[0]["coding"].append(
        {"system": REASONS, "code": "periodic"}
    )
    if "appointmentType" in body:  # v2-0276 WALKIN: our modality added next to it
        body["appointmentType"]["coding"].append({"system": MODALITY, "code": "in_person"})
    # identifier: the example's value kept under our system (Slot-example has none: its id is used).
    value = body.get("identifier", [{"value": f"r4-{name}"}])[0]["value"]
    body["identifier"] = [{"system": slot_system(persona), "value": value}]
    return body


def test_the_examples_are_the_published_ones():
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in EXAMPLES.glob("*.json")} == SHA256
    assert {original(n)["resourceType"] for n in SHA256} == {"Slot", "Schedule", "Appointment"}


# --- Slot ------------------------------------------------------------------------------------------


def test_slot_example_free_goes_through_and_comes_back(fhir_a, persona_a):
    body = adapt_slot("Slot-example.json", persona_a)
    created = send(fhir_a, f"{FHIR}Slot", body)
    assert created.status_code == 201, created.json()
    back = fhir_a.get(f"{FHIR}Slot/{created.json()['id']}").json()
    example = original("Slot-example.json")
    assert back["status"] == example["status"] == "free"
    assert (back["start"], back["end"]) == (body["start"], body["end"])
    assert back["end"] > back["start"] and back["start"].endswith("T09:15:00Z")
    assert back["schedule"] == {"reference": f"Schedule/{persona_a.role.pk}"}
    assert [c["code"] for c in back["serviceType"][0]["coding"]] == ["periodic"]
    assert back["appointmentType"]["coding"][0]["code"] == "in_person"
    assert back["identifier"] == body["identifier"]
    assert not set(NOT_KEPT_SLOT) & set(back)  # comment, specialty…: accepted, not kept

    # The same example as a conditional update (the EMR's idempotent upsert): 200, same version.
    url = f"{FHIR}Slot?identifier={slot_system(persona_a)}|{body['identifier'][0]['value']}"
    again = fhir_a.put(url, json.dumps(body), content_type="application/fhir+json")
    assert again.status_code == 200 and again.json()["meta"]["versionId"] == back["meta"]["versionId"]


def test_slot_example_busy_is_refused_on_create_and_shown_busy_once_booked(fhir_a, persona_a):
    body = adapt_slot("Slot-1.json", persona_a)
    assert body["identifier"][0]["value"] == "123132"  # the example's identifier, under our system
    # We refuse: an EMR publishes free slots only; a slot is busy here because someone booked it,
    # through the compare-and-set that decides who gets it (docs/sync-api.md, "Publishing slots").
    refused = send(fhir_a, f"{FHIR}Slot", body)
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["code"] == "business-rule"
    assert "free" in refused.json()["issue"][0]["diagnostics"]
    assert not Slot.objects.filter(external_id="123132").exists()

    # Adaptation for the round trip: published free, then booked by a citizen: it reads busy.
    created = send(fhir_a, f"{FHIR}Slot", body | {"status": "free"})
    assert created.status_code == 201, created.json()
    appointment_book(
        slot_id=int(created.json()["id"]),
        citizen=CitizenFactory(),
        reason="periodic",
        channel=Appointment.Channel.PORTAL,
    )
    back = fhir_a.get(f"{FHIR}Slot/{created.json()['id']}").json()
    assert back["status"] == original("Slot-1.json")["status"] == "busy"
    assert (back["start"], back["end"]) == (body["start"], body["end"])
    assert "overbooked" not in back  # we never overbook: a slot holds one appointment


@pytest.mark.parametrize(
    ("name", "status"), [("Slot-2.json", "busy-tentative"), ("Slot-3.json", "busy-unavailable")]
)
def test_slot_examples_tentative_and_unavailable_are_refused_on_create(fhir_a, persona_a, name, status):
    body = adapt_slot(name, persona_a)
    assert body["status"] == status
    # Refused: only free slots are published; time the clinic takes out is not sent as a slot (our
    # busy-unavailable is a slot blocked in our web agenda), and we do not keep tentative holds of
    # an EMR (a portal hold is ours, and is never exposed).
    refused = send(fhir_a, f"{FHIR}Slot", body)
    assert refused.status_code == 422, refused.json()
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert refused.json()["issue"][0]["code"] == "business-rule"
    assert "Slot.status = free" in refused.json()["issue"][0]["diagnostics"]
    assert not Slot.objects.filter(clinic=persona_a.clinic).exists()


# --- Schedule --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Schedule-example.json", "Schedule-exampleloc1.json", "Schedule-exampleloc2.json"]
)
def test_schedule_examples_match_our_read_only_schedules(fhir_a, persona_a, name):
    example = original(name)
    body = copy.deepcopy(example)
    body.pop("id")
    # Adaptation: the actors become our practitioner and clinic (Practitioner/1, Location/1 …).
    kinds = [a["reference"].split("/")[0] for a in body["actor"]]
    ours = {"Practitioner": persona_a.role.practitioner_id, "Location": persona_a.clinic.pk}
    body["actor"] = [{"reference": f"{k}/{ours[k]}"} for k in kinds]
    # Refused: a Schedule is one per practitioner role, made by our store, never written by an EMR.
    refused = send(fhir_a, f"{FHIR}Schedule", body)
    assert refused.status_code == 405
    assert refused.json()["issue"][0]["code"] == "not-supported"

    # In substance, our Schedule of that role is the example's: active, the same actors (plus the
    # PractitionerRole that FHIR R4 also allows as an actor).
    back = fhir_a.get(f"{FHIR}Schedule/{persona_a.role.pk}").json()
    assert back["resourceType"] == "Schedule"
    assert back["active"] is example.get("active", True)
    assert {a["reference"] for a in body["actor"]} <= {a["reference"] for a in back["actor"]}
    found = fhir_a.get(f"{FHIR}Schedule", {"actor": f"Location/{persona_a.clinic.pk}"}).json()
    assert str(persona_a.role.pk) in [e["resource"]["id"] for e in found["entry"]]


# --- Appointment -----------------------------------------------------------------------------------


def _slot_for(fhir, persona, start: str, end: str, value: str) -> dict:
    slot = {
        "resourceType": "Slot",
        "schedule": {"reference": f"Schedule/{persona.role.pk}"},
        "status": "free",
        "start": start,
        "end": end,
        "serviceType": [{"coding": [{"system": REASONS, "code": "follow_up"}]}],
        "identifier": [{"system": slot_system(persona), "value": value}],
    }
    created = send(fhir, f"{FHIR}Slot", slot)
    assert created.status_code == 201, created.json()
    return created.json()


def adapt_appointment(name: str, fhir, persona, nam: str, *, days: int) -> dict:
    body = original(name)
    body.pop("id")
    body["start"], body["end"] = moved(body["start"], days), moved(body["end"], days)
    # slot: we book slots only (a desk booking takes exactly one): one is published at that time.
    slot = _slot_for(fhir, persona, body["start"], body["end"], f"r4-{name}")
    body["slot"] = [{"reference": f"Slot/{slot['id']}"}]
    # appointmentType: our reason added next to the example's v2-0276 code.
    body["appointmentType"]["coding"].append({"system": REASONS, "code": "follow_up"})
    product_id = EmrClient.objects.get(application__client_id=persona.client_id).product_id
    body["identifier"] = [
        {"system": f"https://rdv-sante.quebec/fhir/sid/emr/{product_id}/appointment", "value": f"R4-{name}"}
    ]
    participants = []
    for participant in body["participant"]:
        reference = participant.get("actor", {}).get("reference", "")
        if reference.startswith("Patient/"):  # the patient by NAM, never a reference of the EMR's
            participant["actor"] = {"type": "Patient", "identifier": {"system": NAM_SYSTEM, "value": nam}}
        elif reference == "Practitioner/example":
            participant["actor"] = {"reference": f"Practitioner/{persona.role.practitioner_id}"}
        elif reference.startswith("Location/"):
            participant["actor"] = {"reference": f"Location/{persona.clinic.pk}"}
        else:
            continue  # dropped: a second practitioner, a "Phone Call" (one practitioner per slot)
        participants.append(participant)
    body["participant"] = participants
    return body


@pytest.mark.parametrize(("name", "days"), [("Appointment-example.json", 6), ("Appointment-2docs.json", 7)])
def test_appointment_examples_are_desk_bookings_that_come_back(fhir_a, persona_a, name, days):
    citizen = CitizenFactory()
    body = adapt_appointment(name, fhir_a, persona_a, citizen.nam, days=days)
    created = send(fhir_a, f"{FHIR}Appointment", body)
    assert created.status_code == 201, created.json()
    back = fhir_a.get(f"{FHIR}Appointment/{created.json()['id']}").json()
    example = original(name)

    assert back["status"] == example["status"] == "booked"
    assert (back["start"], back["end"]) == (body["start"], body["end"])
    duration = datetime.fromisoformat(example["end"].replace("Z", "+00:00")) - datetime.fromisoformat(
        example["start"].replace("Z", "+00:00")
    )
    assert datetime.fromisoformat(back["end"]) - datetime.fromisoformat(back["start"]) == duration
    assert back["slot"] == body["slot"]
    assert [c["code"] for c in back["appointmentType"]["coding"]] == ["follow_up"]
    assert body["identifier"][0] in back["identifier"]
    statuses = {p["actor"]["reference"].split("/")[0]: p["status"] for p in back["participant"]}
    wanted = {"Patient": "accepted", "Practitioner": "accepted"}
    if name == "Appointment-example.json":
        wanted["Location"] = "accepted"
    assert wanted.items() <= statuses.items()
    assert f"Practitioner/{persona_a.role.practitioner_id}" in [
        p["actor"]["reference"] for p in back["participant"]
    ]
    patient = next(p for p in back["participant"] if p["actor"]["reference"].startswith("Patient/"))
    assert citizen.nam not in json.dumps(back) and "identifier" not in patient["actor"]
    assert not set(NOT_KEPT_APPOINTMENT) & set(back)

    # The same example sent again (a retry): the first result, 200, never a duplicate or a 409.
    again = send(fhir_a, f"{FHIR}Appointment", body)
    assert again.status_code == 200 and again.json()["id"] == back["id"]
    assert Appointment.objects.filter(external_id=f"R4-{name}").count() == 1


def test_appointment_example_request_is_refused(fhir_a, persona_a):
    body = original("Appointment-examplereq.json")
    body.pop("id")
    # Adaptations: our identifier system (value 123 kept), our reason, our patient by NAM, our slot.
    product_id = EmrClient.objects.get(application__client_id=persona_a.client_id).product_id
    body["identifier"][0]["system"] = f"https://rdv-sante.quebec/fhir/sid/emr/{product_id}/appointment"
    body["appointmentType"]["coding"].append({"system": REASONS, "code": "follow_up"})
    body["participant"][0]["actor"] = {
        "type": "Patient",
        "identifier": {"system": NAM_SYSTEM, "value": CitizenFactory().nam},
    }
    body["participant"][2]["actor"] = {"reference": f"Location/{persona_a.clinic.pk}"}
    start = _z(timezone.now() + timedelta(days=8))
    slot = _slot_for(fhir_a, persona_a, start, _z(timezone.now() + timedelta(days=8, minutes=15)), "r4-req")
    body["slot"] = [{"reference": f"Slot/{slot['id']}"}]
    # Refused: a "proposed" appointment (a request with requestedPeriod and no time yet) is not a
    # booking; we take only bookings of a published slot, status booked (the first committed wins).
    refused = send(fhir_a, f"{FHIR}Appointment", body)
    assert refused.status_code == 422
    issue = refused.json()["issue"][0]
    assert issue["code"] == "business-rule" and "booked" in issue["diagnostics"]
    assert not Appointment.objects.exists()
