"""Real concurrent requests at one slot through the citizen pages: exactly one citizen holds it,
and exactly one confirmation books it."""

import pytest
from django.test import Client
from django.urls import reverse

from booking.models import OCCUPYING_STATUSES, Appointment, Reason, Slot
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, SlotFactory

pytestmark = pytest.mark.django_db(transaction=True)

CITIZENS = 20


def _identified_clients() -> list[Client]:
    clients = []
    for i in range(CITIZENS):
        citizen = CitizenFactory(first_name=f"Personne{i}", email=f"page{i}@example.org")
        client = Client()
        assert client.post(reverse("booking:identify"), identify_payload(citizen)).status_code == 302
        clients.append(client)
    return clients


def test_20_citizens_choosing_one_slot_on_the_pages_at_once_one_holds_it(concurrently):
    slot = SlotFactory()
    clients = _identified_clients()
    url = reverse("booking:hold", args=[slot.pk])
    outcomes = concurrently(
        [lambda c=c: c.post(url, {"reason": Reason.FOLLOW_UP}).status_code for c in clients]
    )
    statuses = sorted(o.value for o in outcomes)
    assert statuses == [302] + [409] * (CITIZENS - 1), outcomes.errors_by_type()


def test_the_holder_confirms_while_everyone_else_tries_to_hold_and_one_appointment_exists(concurrently):
    slot = SlotFactory()
    clients = _identified_clients()
    holder, others = clients[0], clients[1:]
    holder.post(reverse("booking:hold", args=[slot.pk]), {"reason": Reason.FOLLOW_UP})
    token = holder.get(reverse("booking:confirm", args=[slot.pk])).context["form"].initial["hold_token"]
    confirm = reverse("booking:confirm", args=[slot.pk])
    data = {"reason": Reason.FOLLOW_UP, "email": "", "language": "fr", "hold_token": token}
    calls = [lambda: holder.post(confirm, data).status_code] + [
        lambda c=c: c.post(reverse("booking:hold", args=[slot.pk]), {"reason": Reason.FOLLOW_UP}).status_code
        for c in others
    ]
    outcomes = concurrently(calls)
    assert outcomes[0].value == 302
    assert all(o.value == 409 for o in outcomes[1:]), [o.value for o in outcomes[1:]]
    assert Appointment.objects.filter(slot=slot, status__in=OCCUPYING_STATUSES).count() == 1
    assert Slot.objects.get(pk=slot.pk).status == Slot.Status.BOOKED
