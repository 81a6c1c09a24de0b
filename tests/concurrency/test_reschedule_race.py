"""A reschedule racing other citizens for the target slot: never both appointments, never neither."""

import pytest

from booking.models import OCCUPYING_STATUSES, Appointment, Reason
from booking.services import appointment_book, appointment_reschedule
from tests.factories import CitizenFactory, RoleFactory, SlotFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("round_", range(3))
def test_a_reschedule_racing_bookings_for_the_target_keeps_exactly_one_appointment(concurrently, round_):
    role = RoleFactory()
    mover = CitizenFactory(first_name="Julie", email="mover@example.org")
    old = appointment_book(
        slot_id=SlotFactory(role=role).pk, citizen=mover, reason=Reason.FOLLOW_UP, channel="portal"
    )
    target = SlotFactory(role=role)
    others = [CitizenFactory(first_name=f"Autre{i}", email=f"o{i}@example.org") for i in range(10)]
    calls = [lambda: appointment_reschedule(appointment=old, new_slot_id=target.pk, channel="portal")] + [
        lambda c=c: appointment_book(slot_id=target.pk, citizen=c, reason=Reason.FOLLOW_UP, channel="portal")
        for c in others
    ]
    outcomes = concurrently(calls)
    assert Appointment.objects.filter(slot=target, status__in=OCCUPYING_STATUSES).count() == 1
    mover_occupying = Appointment.objects.filter(citizen=mover, status__in=OCCUPYING_STATUSES)
    assert mover_occupying.count() == 1  # never both, never neither
    if outcomes[0].ok:
        assert mover_occupying.get().slot_id == target.pk
    else:
        assert mover_occupying.get().pk == old.pk
    assert len(outcomes.winners) == 1
