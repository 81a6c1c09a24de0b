"""The booking's 201 answer is written out (``appointment_data``) instead of going through
``AppointmentSerializer`` (issue 7: half a millisecond of CPU per booking): both must give the
same body, key for key and in the same order, for every kind of appointment."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from booking.api.serializers import AppointmentSerializer, appointment_data
from booking.models import Appointment, Reason
from booking.services import appointment_book, appointment_cancel
from citizens.models import Dependant
from tests.booking.test_api import bearer, post
from tests.factories import NOW, CitizenFactory, UserFactory, slot_at

pytestmark = pytest.mark.django_db


def same(appointment: Appointment, caller) -> dict:
    expected = AppointmentSerializer(appointment, context={"caller": caller}).data
    got = appointment_data(appointment, caller=caller)
    assert list(got) == list(expected)
    assert json.loads(json.dumps(got)) == json.loads(json.dumps(expected))
    return got


def book(slot, citizen, **kwargs) -> Appointment:
    kwargs.setdefault("now", NOW)
    return appointment_book(
        slot_id=slot.pk,
        citizen=citizen,
        reason=Reason.FOLLOW_UP,
        channel=Appointment.Channel.CITIZEN_API,
        **kwargs,
    )


def test_the_instance_the_service_returns(role, citizen):
    appointment = book(slot_at(role), citizen)
    body = same(appointment, citizen)
    assert body["clinic"]["id"] == role.clinic_id and body["cancellable"] is True
    # and as read back from the database, with microseconds in the times
    stored = Appointment.objects.select_related("clinic", "slot__practitioner", "citizen").get(
        pk=appointment.pk
    )
    same(stored, citizen)


def test_a_dependants_appointment_cancelled_and_one_of_another_citizen(role, citizen):
    parent = CitizenFactory(account=UserFactory())
    kid = CitizenFactory(first_name="Léa", email="")
    link = Dependant.objects.create(
        guardian=parent, citizen=kid, relationship="parent", attested_at=timezone.now()
    )
    appointment = book(slot_at(role, hours=50), kid)
    assert same(appointment, parent)["patient"] == {"dependant_id": link.pk, "first_name": "Léa"}
    same(appointment, None)
    cancelled = appointment_cancel(appointment=appointment, reason="other", now=NOW)
    assert same(cancelled, parent)["cancellable"] is False
    same(book(slot_at(role, hours=30, minutes=7), citizen, now=NOW - timedelta(seconds=1)), CitizenFactory())


def test_an_anonymized_appointment(role, citizen):
    appointment = book(slot_at(role), citizen)
    Appointment.objects.filter(pk=appointment.pk).update(citizen=None)
    appointment.refresh_from_db()
    assert same(appointment, citizen)["patient"] == {"dependant_id": None, "first_name": ""}


def test_the_api_201_body_is_the_serializers(role, citizen):
    slot = slot_at(role, hours=24 * 5)
    api_client = Client()
    response = post(
        api_client,
        "/api/v1/appointments",
        {"slot_id": slot.pk, "reason": Reason.FOLLOW_UP},
        **bearer(citizen),
    )
    assert response.status_code == 201, response.content
    appointment = Appointment.objects.get(pk=response.json()["id"])
    expected = AppointmentSerializer(appointment, context={"caller": citizen}).data
    assert response.json() == json.loads(json.dumps(expected))
