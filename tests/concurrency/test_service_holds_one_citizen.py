"""One citizen, many parallel holds: at most one live hold remains (a hold is one slot at a time)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from booking.models import Slot
from booking.services import slot_hold
from tests.factories import CitizenFactory, RoleFactory, SlotFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_parallel_holds_by_one_citizen_leave_one_live_hold(concurrently):
    role = RoleFactory()
    slots = [SlotFactory(role=role) for _ in range(8)]
    citizen = CitizenFactory()
    outcomes = concurrently([lambda s=s: slot_hold(slot_id=s.pk, citizen=citizen) for s in slots])
    assert len(outcomes.winners) == 8  # each call succeeds in turn, releasing the previous hold
    live = Slot.objects.filter(holder=citizen, hold_expires__gt=timezone.now())
    assert live.count() == 1


def test_re_holding_never_extends_a_hold_under_concurrency(concurrently):
    slot = SlotFactory()
    citizen = CitizenFactory()
    first = slot_hold(slot_id=slot.pk, citizen=citizen)
    later = timezone.now() + timedelta(minutes=3)
    outcomes = concurrently(
        [lambda: slot_hold(slot_id=slot.pk, citizen=citizen, now=later) for _ in range(6)]
    )
    assert {o.value.expires for o in outcomes.winners} == {first.expires}
    slot.refresh_from_db()
    assert slot.hold_expires == first.expires
