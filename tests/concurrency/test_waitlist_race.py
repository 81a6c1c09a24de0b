"""Waitlist offers under real concurrency (PostgreSQL, real threads): workers offering the same slots
at once, and a citizen booking through an offer while others try to book the same time.

Each slot is offered to one person at a time and booked at most once, whatever the interleaving."""

from datetime import timedelta

import pytest
from django.utils import timezone

from booking.models import Appointment, Slot, WaitlistOffer, WaitlistRequest
from booking.services import appointment_book, appointment_cancel, slot_hold
from booking.waitlist.offers import waitlist_dispatch, waitlist_offer_next
from booking.waitlist.services import waitlist_offer_accept, waitlist_request_create
from citizens.models import Dependant
from tests.factories import CitizenFactory, FsaFactory, SlotFactory

pytestmark = pytest.mark.django_db(transaction=True)

WAITING = 10


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.WAITLIST_OFFER_SECONDS = 900
    settings.BOOKING_MAX_ACTIVE_ONLINE = 2


@pytest.fixture
def waiting(db):
    """Ten citizens waiting near H2X, in a known order (the first asked first)."""
    FsaFactory()
    now = timezone.now()
    today = timezone.localdate()
    people = []
    for i in range(WAITING):
        citizen = CitizenFactory(email=f"w{i}@example.org")
        waitlist_request_create(
            citizen=citizen,
            path="near",
            reason="follow_up",
            date_from=today,
            date_to=today + timedelta(days=30),
            fsa="H2X",
            now=now - timedelta(minutes=WAITING - i),
        )
        people.append(citizen)
    return people


def _freed_slot(role, hours: int) -> Slot:
    slot = SlotFactory(role=role, start=timezone.now().replace(second=0) + timedelta(hours=hours))
    booked = appointment_book(slot_id=slot.pk, citizen=CitizenFactory(), reason="follow_up", channel="portal")
    appointment_cancel(appointment=booked, reason="cannot_attend")
    return slot


def test_many_workers_offering_one_slot_at_once_make_exactly_one_offer(role, waiting, concurrently):
    slot = SlotFactory(role=role)

    outcomes = concurrently([lambda: waitlist_offer_next(slot_id=slot.pk) for _ in range(8)])

    assert not [o.error for o in outcomes if not o.ok]
    made = [o.value for o in outcomes if o.value is not None]
    assert len(made) == 1
    offer = WaitlistOffer.objects.get(slot=slot)
    assert offer.citizen == waiting[0]  # still the fair order: the first who asked
    slot.refresh_from_db()
    assert (slot.holder_id, slot.hold_token) == (waiting[0].pk, offer.hold_token)


def test_two_freed_slots_many_waiting_many_dispatchers_one_offer_per_slot_and_never_booked_twice(
    role, waiting, concurrently
):
    slots = [_freed_slot(role, 48), _freed_slot(role, 50)]

    outcomes = concurrently([lambda: waitlist_dispatch(send=False) for _ in range(6)])

    assert not [o.error for o in outcomes if not o.ok]
    live = WaitlistOffer.objects.filter(status="offered").order_by("slot__start")
    assert [o.slot_id for o in live] == [s.pk for s in slots]  # one live offer for each slot
    assert {o.citizen_id for o in live} == {waiting[0].pk, waiting[1].pk}  # the two who asked first
    tokens = [m.token for o in outcomes for m in o.value.made]
    assert len(tokens) == 2

    # Everyone tries at once: the two offered citizens through their links, the other eight by the
    # portal on both slots, each slot twice over.
    tries = [lambda t=t: waitlist_offer_accept(token=t) for t in tokens] + [
        lambda c=c, s=s: appointment_book(slot_id=s.pk, citizen=c, reason="follow_up", channel="portal")
        for c in waiting[2:]
        for s in slots
    ]
    outcomes = concurrently(tries)

    assert len(outcomes.winners) == 2
    assert all(o.ok for o in outcomes[:2])  # the holds kept the slots for the offered citizens
    for slot in slots:
        (appointment,) = Appointment.objects.filter(slot=slot, status="booked")
        assert appointment.channel == Appointment.Channel.WAITLIST
    assert set(outcomes.errors_by_type()) == {"SlotUnavailable"}


def test_the_offered_citizen_and_another_citizen_racing_for_the_slot_exactly_one_wins(
    role, waiting, concurrently
):
    """Decided by the hold: while the offer is live only its citizen can book; once it has expired
    (the clock moved past it) everyone competes and still exactly one books."""
    slot = SlotFactory(role=role)
    made = waitlist_offer_next(slot_id=slot.pk)
    other = CitizenFactory()
    later = made.offer.expires_at + timedelta(seconds=1)

    def offered():
        return waitlist_offer_accept(token=made.token, now=later)

    def portal():
        held = slot_hold(slot_id=slot.pk, citizen=other, now=later)
        return appointment_book(
            slot_id=slot.pk,
            citizen=other,
            reason="follow_up",
            channel="portal",
            hold_token=held.token,
            now=later,
        )

    outcomes = concurrently([offered, portal])

    assert len(outcomes.winners) == 1
    assert Appointment.objects.filter(slot=slot).count() == 1
    # The offered citizen is past their time: the portal citizen is the one who may win.
    assert outcomes[1].ok and type(outcomes[0].error).__name__ == "OfferExpired"


def test_during_the_offer_the_offered_citizen_wins_against_many_portal_attempts(role, waiting, concurrently):
    slot = SlotFactory(role=role)
    made = waitlist_offer_next(slot_id=slot.pk)
    others = [CitizenFactory() for _ in range(6)]

    outcomes = concurrently(
        [lambda: waitlist_offer_accept(token=made.token), lambda: waitlist_offer_accept(token=made.token)]
        + [
            lambda c=c: appointment_book(slot_id=slot.pk, citizen=c, reason="follow_up", channel="portal")
            for c in others
        ]
    )

    assert len(outcomes.winners) == 1 and outcomes.winners[0] in outcomes[:2]
    (appointment,) = Appointment.objects.filter(slot=slot)
    assert appointment.citizen == waiting[0]
    # The same link posted twice at once: one books, the other is told it was used.
    assert outcomes.errors_by_type() == {"OfferUsed": 1, "SlotUnavailable": 6}


def test_two_guardians_asking_for_one_child_at_once_stay_within_the_childs_limit(db, settings, concurrently):
    """The limit of waiting requests is per patient: the child's row is locked while counting, so two
    parents asking at the same moment for the child's last place get one request, not two."""
    settings.WAITLIST_MAX_ACTIVE_REQUESTS = 3
    FsaFactory()
    today = timezone.localdate()
    kid = CitizenFactory(first_name="Léa", email="")
    parents = [CitizenFactory(first_name=name, email=f"{name}@example.org") for name in ("Marc", "Anne")]
    for parent in parents:
        Dependant.objects.create(
            guardian=parent, citizen=kid, relationship="parent", attested_at=timezone.now()
        )

    def ask(parent):
        return waitlist_request_create(
            citizen=kid,
            requested_by=parent,
            path="near",
            reason="child_0_5",
            date_from=today,
            date_to=today + timedelta(days=10),
            fsa="H2X",
        )

    ask(parents[0])
    ask(parents[1])
    outcomes = concurrently([lambda p=p: ask(p) for p in parents * 3])

    assert len(outcomes.winners) == 1
    assert outcomes.errors_by_type() == {"WaitlistLimitReached": 5}
    assert WaitlistRequest.objects.filter(citizen=kid, status="active").count() == 3
