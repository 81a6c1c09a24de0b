"""A deterministic simulation of the waitlist over one morning, to measure the fill rate of freed
slots (docs/waitlist.md). Cancellations free 30 slots; 40 people wait with different windows and
parts of day; each person offered a time books it, declines it or ignores it (seeded). The
dispatcher runs every 5 simulated minutes; answers come a few minutes after the offer.

The fill rate is printed (``pytest -s``) and bounded below; the invariants are checked on the way."""

import random
from datetime import datetime, timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from booking import errors
from booking.models import Appointment, WaitlistOffer
from booking.selectors import QUEBEC_TZ
from booking.services import appointment_book, appointment_cancel
from booking.waitlist.offers import waitlist_dispatch
from booking.waitlist.selectors import waitlist_fill_rate
from booking.waitlist.services import (
    waitlist_offer_accept,
    waitlist_offer_decline,
    waitlist_request_create,
)
from tests.factories import CitizenFactory, FsaFactory, RoleFactory, SlotFactory

pytestmark = pytest.mark.django_db

SLOTS, WAITING, STEPS = 30, 40, 36  # 36 steps of 5 minutes: three hours
BEHAVIOUR = {"book": 0.55, "decline": 0.2, "ignore": 0.25}


def test_simulated_fill_rate_of_freed_slots(clinic, settings):
    settings.WAITLIST_OFFER_SECONDS = 15 * 60
    settings.BOOKING_MAX_ACTIVE_ONLINE = 3
    rng = random.Random(20270201)
    FsaFactory()
    t0 = timezone.now().replace(microsecond=0)
    today = timezone.localdate(t0, QUEBEC_TZ)
    roles = [RoleFactory(clinic=clinic) for _ in range(3)]
    slots = []
    for i in range(SLOTS):
        start = (t0 + timedelta(days=1 + i % 10, hours=rng.randint(0, 8))).replace(minute=0, second=0)
        slot = SlotFactory(role=roles[i % 3], start=start, end=start + timedelta(minutes=15))
        booked = appointment_book(
            slot_id=slot.pk, citizen=CitizenFactory(), reason="follow_up", channel="portal"
        )
        slots.append((slot, booked))
    for i in range(WAITING):
        window = rng.choice([3, 7, 14])
        waitlist_request_create(
            citizen=CitizenFactory(),
            path="near",
            reason="follow_up",
            date_from=today,
            date_to=today + timedelta(days=window),
            time_of_day=rng.choice(["", "", "morning", "afternoon"]),
            fsa="H2X",
            now=t0 - timedelta(minutes=WAITING - i),
        )
    behaviour = {}
    pending: list[tuple[datetime, str, str]] = []  # (answer time, action, token)
    for _slot, booked in slots:
        appointment_cancel(appointment=booked, reason="cannot_attend")
    begin = timezone.now()  # the outbox is stamped by the real clock: the simulated one starts after it

    for step in range(STEPS):
        now = begin + timedelta(minutes=5 * step)
        for made in waitlist_dispatch(now=now, send=False).made:
            person = made.offer.citizen_id
            action = behaviour.setdefault(person, rng.choices(list(BEHAVIOUR), weights=BEHAVIOUR.values())[0])
            if action != "ignore":
                pending.append((now + timedelta(minutes=rng.randint(1, 12)), action, made.token))
        due = [p for p in pending if p[0] <= now + timedelta(minutes=5)]
        pending = [p for p in pending if p not in due]
        for at, action, token in due:
            try:
                if action == "book":
                    waitlist_offer_accept(token=token, now=at)
                else:
                    waitlist_offer_decline(token=token, now=at)
            except errors.ApplicationError:
                pass
        # Invariants on the way: one live offer per slot, one occupying appointment per slot.
        assert (
            not WaitlistOffer.objects.filter(status="offered")
            .values("slot")
            .annotate(n=Count("pk"))
            .filter(n__gt=1)
        )
    assert (
        not Appointment.objects.filter(status="booked").values("slot").annotate(n=Count("pk")).filter(n__gt=1)
    )

    report = waitlist_fill_rate(start=t0 - timedelta(minutes=1), end=begin + timedelta(minutes=5 * STEPS))
    print(
        f"\nwaitlist simulation: freed {report.freed}, offered {report.offered}, "
        f"booked via waitlist {report.booked_via_waitlist}, fill rate {report.fill_rate:.1%}; "
        f"offers {report.offers} (accepted {report.offers_accepted}, declined {report.offers_declined}, "
        f"expired {report.offers_expired})"
    )
    assert report.freed == SLOTS
    assert report.booked_via_waitlist == Appointment.objects.filter(channel="waitlist").count()
    assert report.fill_rate is not None and report.fill_rate >= 0.5
