"""The waitlist services: the fair order, one offer per slot, expiry and decline passing the slot on,
the single-use link, limits and matching, the dispatcher reading the outbox, the fill rate.

The clock is faked by passing ``now`` (``t0`` is the real time at the start of each test, because
outbox events are stamped by the database's clock); e-mail is Django's locmem outbox.
"""

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from booking import errors, sms
from booking.models import Appointment, Audience, OutboxEvent, Slot, WaitlistOffer, WaitlistRequest
from booking.selectors import QUEBEC_TZ
from booking.services import appointment_book, appointment_cancel, slot_create, slot_hold
from booking.waitlist.offers import waitlist_dispatch, waitlist_offer_next
from booking.waitlist.selectors import waitlist_active_count, waitlist_fill_rate, waitlist_offer_for_token
from booking.waitlist.services import (
    token_hash,
    waitlist_offer_accept,
    waitlist_offer_decline,
    waitlist_request_create,
    waitlist_request_withdraw,
)
from tests.factories import CitizenFactory, EnrolmentFactory, FsaFactory, SlotFactory

pytestmark = pytest.mark.django_db

OFFER = timedelta(minutes=15)


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.WAITLIST_OFFER_SECONDS = 15 * 60
    settings.WAITLIST_MAX_ACTIVE_REQUESTS = 3
    settings.BOOKING_MAX_ACTIVE_ONLINE = 2
    FsaFactory()


@pytest.fixture
def t0():
    return timezone.now().replace(microsecond=0)


def wait(citizen, t0, *, minutes_ago=0, **fields):
    """A near-me request (H2X, 25 km) for the next 30 days, made ``minutes_ago`` before ``t0``."""
    today = timezone.localdate(t0, QUEBEC_TZ)
    options = {
        "path": "near",
        "reason": "follow_up",
        "date_from": today,
        "date_to": today + timedelta(days=30),
        "fsa": "H2X",
        "radius_km": 25,
    }
    options.update(fields)
    return waitlist_request_create(citizen=citizen, now=t0 - timedelta(minutes=minutes_ago), **options)


def slot_in(role, t0, hours=48, **fields):
    start = (t0 + timedelta(hours=hours)).replace(second=0)
    return SlotFactory(role=role, start=start, end=start + timedelta(minutes=15), **fields)


@pytest.fixture
def three_waiting(t0):
    """Ana asked first, then Béa, then Chloé (made in another order, to show it is the time)."""
    ana, bea, chloe = (CitizenFactory(first_name=n) for n in ("Ana", "Bea", "Chloe"))
    wait(bea, t0, minutes_ago=30)
    wait(chloe, t0, minutes_ago=10)
    wait(ana, t0, minutes_ago=60)
    return ana, bea, chloe


# --- the fair order ----------------------------------------------------------------------------


def test_a_free_slot_is_offered_first_to_the_oldest_request_with_an_exclusive_hold(role, t0, three_waiting):
    ana, _, _ = three_waiting
    slot = slot_in(role, t0)

    made = waitlist_offer_next(slot_id=slot.pk, now=t0)

    assert made is not None and made.offer.citizen == ana
    slot.refresh_from_db()
    assert (slot.status, slot.holder, slot.hold_expires) == (Slot.Status.FREE, ana, t0 + OFFER)
    assert made.offer.hold_token == slot.hold_token
    # Only the hash of the link's token is kept.
    assert made.offer.token_hash == token_hash(made.token) != made.token
    assert not WaitlistOffer.objects.filter(token_hash=made.token).exists()


def test_while_offered_nobody_else_can_hold_or_book_the_slot(role, t0, three_waiting):
    slot = slot_in(role, t0)
    waitlist_offer_next(slot_id=slot.pk, now=t0)
    other = CitizenFactory()

    with pytest.raises(errors.SlotUnavailable):
        slot_hold(slot_id=slot.pk, citizen=other, now=t0 + timedelta(minutes=1))
    with pytest.raises(errors.SlotUnavailable):
        appointment_book(slot_id=slot.pk, citizen=other, reason="follow_up", channel="portal", now=t0)


def test_one_offer_per_slot_at_a_time_running_twice_changes_nothing(role, t0, three_waiting):
    slot = slot_in(role, t0)
    first = waitlist_offer_next(slot_id=slot.pk, now=t0)
    assert first is not None

    assert waitlist_offer_next(slot_id=slot.pk, now=t0) is None
    assert waitlist_offer_next(slot_id=slot.pk, now=t0 + timedelta(minutes=5)) is None
    assert WaitlistOffer.objects.filter(slot=slot).count() == 1


def test_the_database_refuses_a_second_live_offer_of_one_slot(role, t0, three_waiting):
    _, bea, _ = three_waiting
    slot = slot_in(role, t0)
    first = waitlist_offer_next(slot_id=slot.pk, now=t0)
    assert first is not None
    with pytest.raises(IntegrityError, match="waitlist_one_live_offer_per_slot"), transaction.atomic():
        WaitlistOffer.objects.create(
            request=bea.waitlist_requests.get(),
            citizen=bea,
            slot=slot,
            token_hash="x" * 64,
            hold_token="y",
            created_at=t0,
            expires_at=t0 + OFFER,
        )


def test_an_unanswered_offer_expires_and_passes_to_the_next_in_order(role, t0, three_waiting):
    ana, bea, chloe = three_waiting
    slot = slot_in(role, t0)
    waitlist_offer_next(slot_id=slot.pk, now=t0)

    assert waitlist_dispatch(now=t0 + timedelta(minutes=14), send=False).made == []  # not yet
    second = waitlist_dispatch(now=t0 + timedelta(minutes=15), send=False)
    third = waitlist_dispatch(now=t0 + timedelta(minutes=30), send=False)
    last = waitlist_dispatch(now=t0 + timedelta(minutes=45), send=False)

    assert [m.offer.citizen for m in second.made + third.made] == [bea, chloe]
    assert last.made == [] and last.offers_expired == 1
    statuses = list(
        WaitlistOffer.objects.filter(slot=slot).order_by("created_at").values_list("status", flat=True)
    )
    assert statuses == ["expired", "expired", "expired"]
    slot.refresh_from_db()
    assert (slot.status, slot.holder_id) == (Slot.Status.FREE, None)  # free for anyone again
    assert WaitlistRequest.objects.filter(status="active").count() == 3  # they keep waiting


def test_a_declined_offer_passes_on_at_once(role, t0, three_waiting, django_capture_on_commit_callbacks):
    ana, bea, _ = three_waiting
    slot = slot_in(role, t0)
    made = waitlist_offer_next(slot_id=slot.pk, now=t0)

    with django_capture_on_commit_callbacks(execute=True):
        waitlist_offer_decline(token=made.token, now=t0 + timedelta(minutes=1))

    offers = WaitlistOffer.objects.filter(slot=slot).order_by("created_at", "id")
    assert [(o.citizen, o.status) for o in offers] == [(ana, "declined"), (bea, "offered")]
    slot.refresh_from_db()
    assert slot.holder == bea
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [bea.email]


def test_a_citizen_is_offered_one_slot_at_a_time(role, t0, three_waiting):
    ana, bea, _ = three_waiting
    first, second = slot_in(role, t0), slot_in(role, t0, hours=50)
    assert waitlist_offer_next(slot_id=first.pk, now=t0).offer.citizen == ana
    assert waitlist_offer_next(slot_id=second.pk, now=t0).offer.citizen == bea


# --- the link: one step, single use --------------------------------------------------------------


def test_the_offer_books_through_the_booking_service_once(role, t0, three_waiting):
    ana, _, _ = three_waiting
    slot = slot_in(role, t0)
    made = waitlist_offer_next(slot_id=slot.pk, now=t0)

    appointment = waitlist_offer_accept(token=made.token, now=t0 + timedelta(minutes=3))

    assert (appointment.citizen, appointment.slot, appointment.channel) == (
        ana,
        slot,
        Appointment.Channel.WAITLIST,
    )
    made.offer.refresh_from_db()
    assert (made.offer.status, made.offer.appointment) == ("accepted", appointment)
    assert ana.waitlist_requests.get().status == "booked"
    with pytest.raises(errors.OfferUsed):
        waitlist_offer_accept(token=made.token, now=t0 + timedelta(minutes=4))
    with pytest.raises(errors.OfferUsed):
        waitlist_offer_decline(token=made.token, now=t0 + timedelta(minutes=4))
    assert Appointment.objects.filter(slot=slot).count() == 1


def test_an_offer_whose_hold_the_citizen_gave_up_on_the_portal_still_books_if_nobody_took_it(
    role, t0, three_waiting
):
    ana, _, _ = three_waiting
    slot = slot_in(role, t0)
    made = waitlist_offer_next(slot_id=slot.pk, now=t0)
    slot_hold(slot_id=slot_in(role, t0, hours=60).pk, citizen=ana, now=t0)  # one hold per citizen
    slot.refresh_from_db()
    assert slot.holder_id is None

    appointment = waitlist_offer_accept(token=made.token, now=t0 + timedelta(minutes=2))
    assert (appointment.slot, appointment.citizen) == (slot, ana)


def test_an_expired_offer_cannot_be_accepted(role, t0, three_waiting):
    slot = slot_in(role, t0)
    made = waitlist_offer_next(slot_id=slot.pk, now=t0)
    with pytest.raises(errors.OfferExpired):
        waitlist_offer_accept(token=made.token, now=t0 + OFFER)
    with pytest.raises(errors.OfferNotFound):
        waitlist_offer_accept(token="not-a-token", now=t0)
    assert not Appointment.objects.exists()


def test_a_booking_refused_at_confirmation_ends_the_offer_and_passes_on(
    role, t0, three_waiting, django_capture_on_commit_callbacks
):
    ana, bea, _ = three_waiting
    slot = slot_in(role, t0)
    made = waitlist_offer_next(slot_id=slot.pk, now=t0)
    # Meanwhile Ana booked two other times: she has reached the limit of appointments online.
    for hours in (60, 70):
        appointment_book(
            slot_id=slot_in(role, t0, hours).pk, citizen=ana, reason="follow_up", channel="portal", now=t0
        )

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(errors.LimitReached):
        waitlist_offer_accept(token=made.token, now=t0 + timedelta(minutes=2))

    made.offer.refresh_from_db()
    assert (made.offer.status, made.offer.last_error) == ("failed", "limit_reached")
    assert WaitlistOffer.objects.get(slot=slot, status="offered").citizen == bea


# --- who is offered what ---------------------------------------------------------------------------


def test_matching_follows_reason_window_time_of_day_audience_and_area(role, t0):
    slot = slot_in(role, t0, reasons=2**2)  # follow-up only; 48 h ahead
    local = slot.start.astimezone(QUEBEC_TZ)
    other_part = "evening" if local.hour < 12 else "morning"
    today = timezone.localdate(t0, QUEBEC_TZ)
    wait(CitizenFactory(), t0, minutes_ago=50, reason="periodic")
    wait(CitizenFactory(), t0, minutes_ago=40, time_of_day=other_part)
    wait(CitizenFactory(), t0, minutes_ago=30, date_to=today + timedelta(days=1))
    assert waitlist_offer_next(slot_id=slot.pk, now=t0) is None
    matching = CitizenFactory()
    wait(matching, t0, minutes_ago=5)
    assert waitlist_offer_next(slot_id=slot.pk, now=t0).offer.citizen == matching


def test_own_doctor_requests_match_only_that_doctors_slots(role, colleague_role, t0):
    patient = EnrolmentFactory(practitioner=role.practitioner, gmf=role.clinic.gmf).citizen
    wait(patient, t0, path="mine")
    assert waitlist_offer_next(slot_id=slot_in(colleague_role, t0).pk, now=t0) is None
    own = slot_in(role, t0, hours=52, audience=Audience.OWN_PATIENTS)
    assert waitlist_offer_next(slot_id=own.pk, now=t0).offer.citizen == patient


def test_a_citizen_at_the_booking_limit_is_passed_over(role, t0, three_waiting):
    ana, bea, _ = three_waiting
    for hours in (60, 70):
        appointment_book(
            slot_id=slot_in(role, t0, hours).pk, citizen=ana, reason="follow_up", channel="portal", now=t0
        )
    assert waitlist_offer_next(slot_id=slot_in(role, t0).pk, now=t0).offer.citizen == bea


def test_a_slot_too_soon_for_the_whole_offer_time_is_not_offered(role, t0, three_waiting):
    # The clinic's notice is one hour: a slot 70 minutes away could not be booked at the offer's end.
    assert waitlist_offer_next(slot_id=slot_in(role, t0, hours=70 / 60).pk, now=t0) is None


def test_requests_are_limited_per_person_and_withdrawn_ones_free_a_place(t0, citizen):
    requests = [wait(citizen, t0, reason=r) for r in ("follow_up", "periodic", "urgent")]
    with pytest.raises(errors.WaitlistLimitReached):
        wait(citizen, t0, reason="semi_urgent")
    waitlist_request_withdraw(citizen=citizen, request_id=requests[0].pk, now=t0)
    assert wait(citizen, t0, reason="semi_urgent").status == "active"
    stranger = CitizenFactory()
    with pytest.raises(errors.WaitlistRequestNotFound):
        waitlist_request_withdraw(citizen=stranger, request_id=requests[1].pk, now=t0)


def test_the_own_doctor_path_needs_an_enrolment_and_a_window_in_the_future(t0, citizen):
    with pytest.raises(errors.WaitlistScopeUnknown):
        wait(citizen, t0, path="mine")
    with pytest.raises(errors.InvalidPeriod):
        wait(citizen, t0, date_from=timezone.localdate(t0, QUEBEC_TZ) - timedelta(days=1))
    with pytest.raises(errors.WaitlistNoContact):
        wait(CitizenFactory(email=""), t0)


def test_withdrawing_a_request_ends_its_live_offer_and_passes_the_slot_on(
    role, t0, three_waiting, django_capture_on_commit_callbacks
):
    ana, bea, _ = three_waiting
    slot = slot_in(role, t0)
    waitlist_offer_next(slot_id=slot.pk, now=t0)
    waitlist_request_withdraw(citizen=ana, request_id=ana.waitlist_requests.get().pk, now=t0)
    assert WaitlistOffer.objects.get(citizen=ana).status == "withdrawn"
    assert waitlist_dispatch(now=t0 + timedelta(seconds=20), send=False).made[0].offer.citizen == bea


def test_a_request_ends_at_the_end_of_its_window(t0, citizen):
    request = wait(citizen, t0, date_to=timezone.localdate(t0, QUEBEC_TZ))
    assert waitlist_active_count(now=t0) == 1
    waitlist_dispatch(now=request.expires_at)
    request.refresh_from_db()
    assert request.status == "expired"
    assert waitlist_active_count(now=request.expires_at) == 0


# --- the dispatcher: freed and published slots from the outbox -------------------------------------


def test_a_cancellation_is_offered_by_the_dispatcher_with_a_link_by_email(role, t0, three_waiting):
    ana, _, _ = three_waiting
    slot = slot_in(role, t0)
    booked = appointment_book(slot_id=slot.pk, citizen=CitizenFactory(), reason="follow_up", channel="portal")
    assert waitlist_dispatch(now=t0).made == []
    appointment_cancel(appointment=booked, reason="cannot_attend")
    mail.outbox.clear()

    result = waitlist_dispatch()

    assert [m.offer.citizen for m in result.made] == [ana]
    (message,) = mail.outbox
    assert message.to == [ana.email]
    link = re.search(r"http://testserver/offre/([\w-]+)/", message.body)
    assert link and waitlist_offer_for_token(link.group(1)) == result.made[0].offer
    assert ana.nam not in message.body and ana.nam not in link.group(0)
    assert "Réservez-la ou refusez-la avant" in message.body


def test_a_published_slot_is_offered_by_text_message_in_english(role, t0, settings):
    settings.SMS_BACKEND = "booking.sms.LocmemSmsBackend"
    sms.outbox.clear()
    citizen = CitizenFactory(mobile="514 555-0123")
    wait(citizen, t0, channel="sms", language="en")
    start = (t0 + timedelta(days=2)).replace(second=0)
    slot_create(role=role, start=start, end=start + timedelta(minutes=20), reasons=["follow_up"])

    (made,) = waitlist_dispatch().made

    (text,) = sms.outbox
    assert text.to == "+15145550123"
    assert "a time opened" in text.body and f"/offre/{made.token}/" in text.body
    made.offer.refresh_from_db()
    assert (made.offer.notify_state, made.offer.channel) == ("sent", "sms")


# --- reporting ---------------------------------------------------------------------------------------


def test_the_fill_rate_counts_freed_slots_and_those_the_waitlist_filled(role, t0, three_waiting):
    ana, _, _ = three_waiting
    freed = [slot_in(role, t0, hours=h) for h in (48, 50, 52)]
    for slot in freed:
        appointment = appointment_book(
            slot_id=slot.pk, citizen=CitizenFactory(), reason="follow_up", channel="portal"
        )
        appointment_cancel(appointment=appointment, reason="cannot_attend")
    made = waitlist_dispatch(send=False).made  # three waiting people: one offer for each slot
    assert len(made) == 3
    waitlist_offer_accept(token=made[0].token)
    waitlist_offer_decline(token=made[1].token)

    report = waitlist_fill_rate(start=t0 - timedelta(hours=1), end=timezone.now() + timedelta(hours=1))

    assert (report.freed, report.offered, report.booked_via_waitlist) == (3, 3, 1)
    assert report.fill_rate == pytest.approx(1 / 3)
    assert (report.offers, report.offers_accepted, report.offers_declined) == (3, 1, 1)
    out = StringIO()
    call_command(
        "waitlist_fill_rate",
        "--from",
        (t0 - timedelta(days=1)).date().isoformat(),
        "--to",
        (t0 + timedelta(days=1)).date().isoformat(),
        stdout=out,
    )
    assert "freed slots: 3" in out.getvalue() and "fill rate: 33.3 %" in out.getvalue()


def test_the_dispatcher_command_runs_one_pass_with_a_longer_look_back(role, t0, three_waiting, settings):
    settings.WAITLIST_LOOKBACK_SECONDS = 1
    slot = slot_in(role, t0)
    booked = appointment_book(slot_id=slot.pk, citizen=CitizenFactory(), reason="follow_up", channel="portal")
    appointment_cancel(appointment=booked, reason="cannot_attend")
    out = StringIO()
    call_command("waitlist_dispatch", "--lookback-seconds", "3600", stdout=out)
    assert "offers made: 1" in out.getvalue()
    assert WaitlistOffer.objects.get(slot=slot).citizen == three_waiting[0]


def _next_local(after, hour):
    local = after.astimezone(QUEBEC_TZ)
    moment = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    return moment if moment > local else moment + timedelta(days=1)


def test_no_offer_at_night_the_slot_is_offered_from_8_in_the_morning(role, t0, three_waiting, settings):
    settings.WAITLIST_QUIET_HOURS = True
    ana, _, _ = three_waiting
    night = _next_local(t0, 23)
    morning = _next_local(night, 8)
    slot = slot_in(role, t0, hours=60)
    booked = appointment_book(slot_id=slot.pk, citizen=CitizenFactory(), reason="follow_up", channel="portal")
    appointment_cancel(appointment=booked, reason="cannot_attend")
    # The outbox is stamped by the database's clock: move the cancellation to the night.
    OutboxEvent.objects.filter(kind="appointment.cancelled", slot=slot).update(created_at=night)

    assert waitlist_dispatch(now=night + timedelta(minutes=1), send=False).made == []
    assert waitlist_dispatch(now=_next_local(night, 7), send=False).made == []
    (made,) = waitlist_dispatch(now=morning + timedelta(minutes=5), send=False).made  # 9 h later
    assert made.offer.citizen == ana
