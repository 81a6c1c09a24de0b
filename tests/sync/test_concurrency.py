"""The portal and an EMR book the same slot at the same moment, through HTTP: exactly one wins."""

import json
import threading

import pytest
from django.db import connection
from django.test import Client

from booking.api.auth import citizen_token_make
from booking.models import OCCUPYING_STATUSES, Appointment, OutboxEvent, Slot
from tests.factories import CitizenFactory, SlotFactory

from .conftest import get_token
from .test_appointments import booking_body

pytestmark = pytest.mark.django_db(transaction=True)


def _race(requests):
    barrier = threading.Barrier(len(requests))
    results = [None] * len(requests)

    def attempt(index, send):
        try:
            client = Client()
            barrier.wait(timeout=30)
            response = send(client)
            results[index] = (response.status_code, response.json())
        except Exception as exc:  # noqa: BLE001 - reported as a failed attempt
            results[index] = (-1, {"exception": repr(exc)})
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i, r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a request hung"
    return results


@pytest.mark.parametrize("rounds", range(3))
def test_portal_and_emr_booking_one_slot_at_once_exactly_one_wins(client, persona_a, rounds):
    slot = SlotFactory(role=persona_a.role)
    portal_citizen = CitizenFactory(email="portal@example.org")
    desk_citizen = CitizenFactory(email="desk@example.org")
    citizen_token = citizen_token_make(portal_citizen)[0]
    emr_token = get_token(client, persona_a)
    emr_body = json.dumps(booking_body(persona_a, slot, desk_citizen.nam))

    def portal(c):
        return c.post(
            "/api/v1/appointments",
            data=json.dumps({"slot_id": slot.pk, "reason": "urgent"}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {citizen_token}",
        )

    def emr(c):
        return c.post(
            "/fhir/r4/Appointment",
            data=emr_body,
            content_type="application/fhir+json",
            HTTP_AUTHORIZATION=f"Bearer {emr_token}",
        )

    results = _race([portal, emr])

    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 409], results
    assert Appointment.objects.filter(slot=slot, status__in=OCCUPYING_STATUSES).count() == 1
    slot.refresh_from_db()
    assert (slot.status, slot.version) == (Slot.Status.BOOKED, 2)
    assert OutboxEvent.objects.filter(slot=slot, kind="appointment.booked").count() == 1
