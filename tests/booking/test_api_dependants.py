"""The citizen API acting for a dependant: ``GET /dependants`` and the ``patient`` parameter of the
search, hold, booking and list calls. A caller never reaches someone else's dependant."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from booking.models import Appointment, Audience, Reason
from booking.services import appointment_book, appointment_set_status
from citizens.models import Dependant
from tests.booking.test_api import bearer, error, post
from tests.factories import CitizenFactory, EnrolmentFactory, SlotFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    return Client()


@pytest.fixture
def family(db):
    parent = CitizenFactory(account=UserFactory())
    kid = CitizenFactory(first_name="Léa", email="")
    link = Dependant.objects.create(
        guardian=parent, citizen=kid, relationship="parent", attested_at=timezone.now()
    )
    return parent, kid, link


def book(api, citizen, slot, **extra):
    hold = post(api, "/api/v1/holds", {"slot_id": slot.pk, **extra}, **bearer(citizen))
    assert hold.status_code == 201, hold.content
    data = {"slot_id": slot.pk, "hold_token": hold.json()["hold_token"], "reason": Reason.FOLLOW_UP, **extra}
    return post(api, "/api/v1/appointments", data, **bearer(citizen))


def test_the_caller_lists_their_own_dependants_only(api, family):
    parent, _, link = family
    body = api.get("/api/v1/dependants", **bearer(parent)).json()
    assert body == [{"id": link.pk, "first_name": "Léa", "last_name": "Gagnon", "relationship": "parent"}]
    assert api.get("/api/v1/dependants", **bearer(CitizenFactory(first_name="Paul"))).json() == []


def test_the_search_for_a_dependant_uses_their_own_family_doctor(api, family, role):
    parent, kid, link = family
    EnrolmentFactory(citizen=kid, practitioner=role.practitioner, gmf=role.clinic.gmf)
    own = SlotFactory(role=role, audience=Audience.OWN_PATIENTS)
    mine = api.get("/api/v1/slots", {"path": "mine"}, **bearer(parent))
    assert error(mine)["code"] == "not_enrolled"
    hers = api.get("/api/v1/slots", {"path": "mine", "patient": link.pk}, **bearer(parent))
    assert [s["id"] for s in hers.json()["results"]] == [own.pk]


def test_booking_for_a_dependant_records_the_patient_and_who_booked(api, family, settings):
    parent, kid, link = family
    settings.BOOKING_MAX_ACTIVE_ONLINE = 1
    appointment_book(slot_id=SlotFactory().pk, citizen=parent, reason=Reason.FOLLOW_UP, channel="api")
    response = book(api, parent, SlotFactory(), patient=link.pk)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["patient"] == {"dependant_id": link.pk, "first_name": "Léa"}
    appointment = Appointment.objects.get(pk=body["id"])
    assert appointment.citizen == kid and appointment.booked_by_user == parent.account
    # Per person: the child is now at her limit, the holder at his, each independently.
    refused = post(api, "/api/v1/holds", {"slot_id": SlotFactory().pk, "patient": link.pk}, **bearer(parent))
    assert error(refused)["code"] == "limit_reached"
    listed = api.get("/api/v1/appointments", {"patient": link.pk}, **bearer(parent)).json()
    assert [a["id"] for a in listed["upcoming"]] == [appointment.pk]
    own = api.get("/api/v1/appointments", **bearer(parent)).json()
    assert appointment.pk not in [a["id"] for a in own["upcoming"]]
    assert own["upcoming"][0]["patient"] == {"dependant_id": None, "first_name": "Julie"}


def test_the_holder_reads_moves_and_cancels_the_dependants_appointment(api, family):
    parent, kid, link = family
    first = appointment_book(slot_id=SlotFactory().pk, citizen=kid, reason=Reason.CHILD, channel="api")
    detail = api.get(f"/api/v1/appointments/{first.pk}", **bearer(parent))
    assert detail.json()["patient"]["dependant_id"] == link.pk
    new_slot = SlotFactory()
    hold = post(
        api,
        "/api/v1/holds",
        {"slot_id": new_slot.pk, "reschedule_appointment_id": first.pk},
        **bearer(parent),
    )
    assert hold.status_code == 201
    moved = post(
        api,
        f"/api/v1/appointments/{first.pk}/reschedule",
        {"slot_id": new_slot.pk, "hold_token": hold.json()["hold_token"]},
        **bearer(parent),
    )
    assert moved.status_code == 201, moved.content
    new_id = moved.json()["id"]
    assert Appointment.objects.get(pk=new_id).citizen == kid
    cancelled = post(
        api, f"/api/v1/appointments/{new_id}/cancel", {"reason": "cannot_attend"}, **bearer(parent)
    )
    assert cancelled.json()["status"] == "cancelled_by_citizen"


def test_another_citizen_gets_404_for_someone_elses_dependant(api, family):
    _, kid, link = family
    theirs = appointment_book(slot_id=SlotFactory().pk, citizen=kid, reason=Reason.CHILD, channel="api")
    stranger = CitizenFactory(first_name="Paul", last_name="Roy", sex="M")
    slot = SlotFactory()
    for response in (
        api.get("/api/v1/slots", {"path": "near", "patient": link.pk}, **bearer(stranger)),
        api.get("/api/v1/appointments", {"patient": link.pk}, **bearer(stranger)),
        post(api, "/api/v1/holds", {"slot_id": slot.pk, "patient": link.pk}, **bearer(stranger)),
        post(
            api,
            "/api/v1/appointments",
            {"slot_id": slot.pk, "reason": "child_0_5", "patient": link.pk},
            **bearer(stranger),
        ),
    ):
        assert response.status_code == 404, response.content
        assert error(response)["code"] == "patient_not_found"
    for response in (
        api.get(f"/api/v1/appointments/{theirs.pk}", **bearer(stranger)),
        post(api, f"/api/v1/appointments/{theirs.pk}/cancel", {"reason": "other"}, **bearer(stranger)),
    ):
        assert error(response)["code"] == "appointment_not_found"
    assert not Appointment.objects.filter(citizen=kid).exclude(pk=theirs.pk).exists()
    theirs.refresh_from_db()
    assert theirs.status == "booked"


def test_the_schema_documents_the_patient_parameter_and_the_dependants_list():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    for request in ("HoldRequest", "BookRequest"):
        assert "patient" in components[request]["properties"], request
    assert "patient" in components["Appointment"]["properties"]
    assert "/api/v1/dependants" in schema["paths"]
    search = schema["paths"]["/api/v1/slots"]["get"]["parameters"]
    listing = schema["paths"]["/api/v1/appointments"]["get"]["parameters"]
    assert "patient" in {p["name"] for p in search} and "patient" in {p["name"] for p in listing}
    json.dumps(schema, default=str)  # serializable as served


def test_the_hold_carries_the_no_show_reminder_of_the_patient_in_the_requests_language(api, family):
    parent, kid, link = family
    for days_ago in (10, 40):
        start = timezone.now() - timedelta(days=days_ago)
        slot = SlotFactory(start=start, end=start + timedelta(minutes=15))
        missed = appointment_book(
            slot_id=slot.pk, citizen=kid, reason=Reason.CHILD, channel="agenda", now=start - timedelta(days=1)
        )
        appointment_set_status(appointment_id=missed.pk, status="noshow")
    own = post(api, "/api/v1/holds", {"slot_id": SlotFactory().pk}, **bearer(parent))
    assert own.json()["notice"] is None  # the holder's own record is clean
    hers = post(api, "/api/v1/holds", {"slot_id": SlotFactory().pk, "patient": link.pk}, **bearer(parent))
    assert hers.status_code == 201  # a reminder, never a refusal
    assert hers.json()["notice"].startswith("Des rendez-vous récents ont été manqués")
    english = post(
        api,
        "/api/v1/holds",
        {"slot_id": SlotFactory().pk, "patient": link.pk},
        **bearer(parent),
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert english.json()["notice"].startswith("Some recent appointments were missed")
