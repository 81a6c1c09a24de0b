"""Real concurrent requests at one slot through the citizen API: exactly one citizen wins.

Each thread is one citizen with its own test client and its own database connection; a barrier
releases them together so that the requests overlap in PostgreSQL, not one after another.
"""

import json
import threading

import pytest
from django.db import connection

from booking.api.auth import citizen_token_make
from booking.models import OCCUPYING_STATUSES, Appointment, Slot
from tests.factories import CitizenFactory, SlotFactory

pytestmark = pytest.mark.django_db(transaction=True)

CITIZENS = 24


def _race(url: str, payload: dict, tokens: list[str]) -> list[tuple[int, dict]]:
    """POST ``payload`` to ``url`` once per token, all at the same moment; (status, body) each."""
    from django.test import Client

    barrier = threading.Barrier(len(tokens))
    results: list[tuple[int, dict]] = [(0, {})] * len(tokens)

    def attempt(index: int, token: str) -> None:
        try:
            client = Client()
            barrier.wait(timeout=30)
            response = client.post(
                url,
                data=json.dumps(payload),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {token}",
            )
            results[index] = (response.status_code, response.json())
        except Exception as exc:  # noqa: BLE001 - reported below as a failed attempt
            results[index] = (-1, {"exception": repr(exc)})
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i, t)) for i, t in enumerate(tokens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    return results


@pytest.fixture
def tokens(db):
    citizens = [
        CitizenFactory(first_name=f"Personne{i}", email=f"race{i}@example.org") for i in range(CITIZENS)
    ]
    return [citizen_token_make(c)[0] for c in citizens]


def test_24_citizens_holding_one_slot_at_once_one_gets_it_the_others_409(tokens):
    slot = SlotFactory()

    results = _race("/api/v1/holds", {"slot_id": slot.pk}, tokens)

    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * (CITIZENS - 1), results
    assert all(body["error"]["code"] == "slot_unavailable" for status, body in results if status == 409)
    winner = next(body for status, body in results if status == 201)
    slot.refresh_from_db()
    assert slot.hold_token == winner["hold_token"]
    assert slot.holder_id is not None
    assert slot.status == Slot.Status.FREE


def test_24_citizens_booking_one_slot_at_once_without_a_hold_one_wins(tokens):
    slot = SlotFactory()

    results = _race("/api/v1/appointments", {"slot_id": slot.pk, "reason": "urgent"}, tokens)

    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * (CITIZENS - 1), results
    assert all(body["error"]["code"] == "slot_unavailable" for status, body in results if status == 409)
    winner = next(body for status, body in results if status == 201)
    occupying = Appointment.objects.filter(slot=slot, status__in=OCCUPYING_STATUSES)
    assert list(occupying.values_list("pk", flat=True)) == [winner["id"]]
    assert Appointment.objects.filter(slot=slot).count() == 1
    slot.refresh_from_db()
    assert slot.status == Slot.Status.BOOKED
