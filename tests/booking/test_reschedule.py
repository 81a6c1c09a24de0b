"""Reschedule in one step: the new slot is booked and the old one released together, never both and
never neither; on the service, the pages and the citizen API."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse

from booking import errors
from booking.api.auth import citizen_token_make
from booking.models import OCCUPYING_STATUSES, Appointment, OutboxEvent, Reason, Slot
from booking.services import appointment_book, appointment_reschedule, slot_hold
from tests.conftest import identify_payload
from tests.factories import NOW, CitizenFactory, RoleFactory, SlotFactory, slot_at

pytestmark = pytest.mark.django_db


def _book(slot, citizen, now=NOW):
    return appointment_book(
        slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal", now=now
    )


def _occupying(citizen):
    return list(Appointment.objects.filter(citizen=citizen, status__in=OCCUPYING_STATUSES))


def test_rescheduling_books_the_new_slot_and_frees_the_old_one_together(role, citizen):
    old_slot, new_slot = slot_at(role, hours=48), slot_at(role, hours=72)
    old = _book(old_slot, citizen)
    new = appointment_reschedule(appointment=old, new_slot_id=new_slot.pk, channel="portal", now=NOW)
    old.refresh_from_db()
    assert (old.status, old.cancel_reason) == (Appointment.Status.CANCELLED_BY_CITIZEN, "rescheduled")
    assert new.rescheduled_from_id == old.pk
    assert new.reason == old.reason
    assert Slot.objects.get(pk=old_slot.pk).status == Slot.Status.FREE
    assert Slot.objects.get(pk=new_slot.pk).status == Slot.Status.BOOKED
    assert _occupying(citizen) == [new]
    kinds = list(OutboxEvent.objects.filter(appointment__in=[old, new]).values_list("kind", flat=True))
    assert sorted(kinds) == ["appointment.booked", "appointment.booked", "appointment.cancelled"]


def test_when_the_new_slot_is_taken_the_old_appointment_stands(role, citizen):
    old_slot, new_slot = slot_at(role, hours=48), slot_at(role, hours=72)
    old = _book(old_slot, citizen)
    _book(new_slot, CitizenFactory(first_name="Paul", last_name="Roy", sex="M"))
    with pytest.raises(errors.SlotUnavailable):
        appointment_reschedule(appointment=old, new_slot_id=new_slot.pk, channel="portal", now=NOW)
    old.refresh_from_db()
    assert old.status == Appointment.Status.BOOKED
    assert Slot.objects.get(pk=old_slot.pk).status == Slot.Status.BOOKED
    assert _occupying(citizen) == [old]


def test_a_refused_new_slot_rolls_everything_back(role, citizen):
    from booking.models import Audience

    old_slot = slot_at(role, hours=48)
    other_clinic_slot = SlotFactory(
        role=RoleFactory(), audience=Audience.OWN_PATIENTS, start=NOW + timedelta(days=3)
    )
    old = _book(old_slot, citizen)
    with pytest.raises(errors.NotEligible):
        appointment_reschedule(appointment=old, new_slot_id=other_clinic_slot.pk, channel="portal", now=NOW)
    assert _occupying(citizen) == [old]
    assert not OutboxEvent.objects.filter(kind="appointment.cancelled").exists()


def test_a_citizen_at_the_limit_can_still_reschedule(role, citizen, settings):
    settings.BOOKING_MAX_ACTIVE_ONLINE = 2
    a, b, target = slot_at(role, hours=48), slot_at(role, hours=60), slot_at(role, hours=72)
    first, _second = _book(a, citizen), _book(b, citizen)
    hold = slot_hold(slot_id=target.pk, citizen=citizen, now=NOW, to_reschedule=first)
    new = appointment_reschedule(
        appointment=first, new_slot_id=target.pk, channel="portal", hold_token=hold.token, now=NOW
    )
    assert new.slot_id == target.pk
    assert len(_occupying(citizen)) == 2


def test_without_a_reschedule_the_limit_refuses_the_hold(role, citizen, settings):
    settings.BOOKING_MAX_ACTIVE_ONLINE = 2
    _book(slot_at(role, hours=48), citizen)
    _book(slot_at(role, hours=60), citizen)
    with pytest.raises(errors.LimitReached):
        slot_hold(slot_id=slot_at(role, hours=72).pk, citizen=citizen, now=NOW)


def test_another_citizens_appointment_does_not_lift_the_limit_on_a_hold(role, citizen, settings):
    settings.BOOKING_MAX_ACTIVE_ONLINE = 1
    _book(slot_at(role, hours=48), citizen)
    stranger = _book(slot_at(role, hours=50), CitizenFactory(first_name="Paul", last_name="Roy", sex="M"))
    with pytest.raises(errors.LimitReached):
        slot_hold(slot_id=slot_at(role, hours=72).pk, citizen=citizen, now=NOW, to_reschedule=stranger)


def test_rescheduling_to_the_same_slot_or_after_the_cut_off_is_refused(role, citizen):
    slot = slot_at(role, hours=48)
    old = _book(slot, citizen)
    with pytest.raises(errors.SameSlot):
        appointment_reschedule(appointment=old, new_slot_id=slot.pk, channel="portal", now=NOW)
    late = NOW + timedelta(hours=47)  # the clinic's cut-off is 2 hours
    with pytest.raises(errors.CancelTooLate):
        appointment_reschedule(
            appointment=old, new_slot_id=slot_at(role, hours=72).pk, channel="portal", now=late
        )
    assert _occupying(citizen) == [old]


def test_a_retried_reschedule_returns_the_same_new_appointment(role, citizen):
    old = _book(slot_at(role, hours=48), citizen)
    target = slot_at(role, hours=72)
    hold = slot_hold(slot_id=target.pk, citizen=citizen, now=NOW, to_reschedule=old)
    first = appointment_reschedule(
        appointment=old, new_slot_id=target.pk, channel="portal", hold_token=hold.token, now=NOW
    )
    again = appointment_reschedule(
        appointment=old, new_slot_id=target.pk, channel="portal", hold_token=hold.token, now=NOW
    )
    assert again.pk == first.pk
    assert Appointment.objects.filter(citizen=citizen).count() == 2


def test_the_citizen_gets_one_confirmation_of_the_new_time(role, citizen, django_capture_on_commit_callbacks):
    old = _book(slot_at(role, hours=48), citizen)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        new = appointment_reschedule(
            appointment=old, new_slot_id=slot_at(role, hours=72).pk, channel="portal", now=NOW
        )
    assert len(mail.outbox) == 1
    assert new.reference in mail.outbox[0].subject
    assert "remplace" in mail.outbox[0].body


def test_the_whole_reschedule_journey_on_the_pages(client, role, citizen):
    old_slot = SlotFactory(role=role)
    old = appointment_book(slot_id=old_slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal")
    target = SlotFactory(role=role)
    client.post(reverse("booking:identify"), identify_payload(citizen))
    page = client.get(reverse("booking:appointment", args=[old.pk])).content.decode()
    assert reverse("booking:reschedule", args=[old.pk]) in page
    response = client.post(reverse("booking:reschedule", args=[old.pk]), {"action": "start"})
    assert response["Location"] == reverse("booking:search")
    banner = "reste réservé jusqu’à ce que vous confirmiez"
    assert banner in client.get(reverse("booking:search")).content.decode()
    client.post(reverse("booking:hold", args=[target.pk]), {"reason": Reason.FOLLOW_UP})
    token = client.get(reverse("booking:confirm", args=[target.pk])).context["form"].initial["hold_token"]
    response = client.post(
        reverse("booking:confirm", args=[target.pk]),
        {"reason": Reason.FOLLOW_UP, "email": "", "language": "fr", "hold_token": token},
    )
    new = Appointment.objects.get(rescheduled_from=old)
    assert response["Location"] == reverse("booking:appointment", args=[new.pk])
    old.refresh_from_db()
    assert old.status == Appointment.Status.CANCELLED_BY_CITIZEN
    # Reschedule mode ends with the confirmation: the next booking is an ordinary one.
    assert "reschedule" not in client.session


def test_reschedule_pages_refuse_another_citizens_appointment(client, role, citizen):
    old = appointment_book(
        slot_id=SlotFactory(role=role).pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal"
    )
    client.post(
        reverse("booking:identify"),
        identify_payload(CitizenFactory(first_name="Paul", last_name="Roy", sex="M")),
    )
    assert client.get(reverse("booking:reschedule", args=[old.pk])).status_code == 404
    assert client.post(reverse("booking:reschedule", args=[old.pk]), {"action": "start"}).status_code == 404


def test_the_api_reschedules_in_one_call(client, role, citizen):
    old = appointment_book(
        slot_id=SlotFactory(role=role).pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="api"
    )
    target = SlotFactory(role=role)
    token, _expires = citizen_token_make(citizen)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    hold = client.post(
        "/api/v1/holds",
        {"slot_id": target.pk, "reschedule_appointment_id": old.pk},
        content_type="application/json",
        **auth,
    ).json()
    response = client.post(
        f"/api/v1/appointments/{old.pk}/reschedule",
        {"slot_id": target.pk, "hold_token": hold["hold_token"]},
        content_type="application/json",
        **auth,
    )
    assert response.status_code == 201, response.json()
    assert response.json()["id"] == Appointment.objects.get(rescheduled_from=old).pk
    again = client.post(
        f"/api/v1/appointments/{old.pk}/reschedule",
        {"slot_id": target.pk, "hold_token": hold["hold_token"]},
        content_type="application/json",
        **auth,
    )
    assert again.status_code == 200
    assert again.json()["id"] == response.json()["id"]
    stranger_token, _ = citizen_token_make(CitizenFactory(first_name="Paul", last_name="Roy", sex="M"))
    refused = client.post(
        f"/api/v1/appointments/{old.pk}/reschedule",
        {"slot_id": SlotFactory(role=role).pk},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {stranger_token}",
    )
    assert refused.status_code == 404
