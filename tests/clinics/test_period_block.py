"""Blocking a period (a doctor is ill) and changing the offer of future free slots."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse

from booking import errors
from booking.models import Appointment, Audience, OutboxEvent, Reason, Slot
from booking.services import appointment_book, period_block, slots_change_offer
from clinics.models import AgendaChange, StaffAuditEvent
from tests.factories import NOW, CitizenFactory, UserFactory, slot_at

pytestmark = pytest.mark.django_db


def _book(slot, citizen):
    return appointment_book(
        slot_id=slot.pk,
        citizen=citizen,
        reason=Reason.FOLLOW_UP,
        channel=Appointment.Channel.CLINIC_AGENDA,
        now=NOW,
    )


@pytest.fixture
def agenda(role, colleague_role):
    """Day 2 after NOW: a free slot, two booked ones (a French and an English patient), a blocked one;
    outside the period, one free slot; and a colleague's free slot inside it."""
    free = slot_at(role, hours=48)
    booked_fr = slot_at(role, hours=48.25)
    booked_en = slot_at(role, hours=48.5)
    already_blocked = slot_at(role, hours=48.75, status=Slot.Status.BLOCKED)
    later = slot_at(role, hours=96)
    colleague = slot_at(colleague_role, hours=48)
    fr = _book(
        booked_fr, CitizenFactory(first_name="Élise", preferred_language="fr", email="elise@example.org")
    )
    en = _book(
        booked_en, CitizenFactory(first_name="John", preferred_language="en", email="john@example.org")
    )
    OutboxEvent.objects.all().delete()
    return {
        "free": free,
        "booked": [booked_fr, booked_en],
        "appointments": [fr, en],
        "already_blocked": already_blocked,
        "later": later,
        "colleague": colleague,
    }


def _block(role, **kwargs):
    return period_block(
        role=role,
        start=NOW + timedelta(hours=24),
        end=NOW + timedelta(hours=72),
        by=kwargs.pop("by", None) or UserFactory(),
        note="Congé de maladie",
        now=NOW,
        **kwargs,
    )


def test_blocking_a_period_blocks_free_slots_and_cancels_booked_appointments(
    role, agenda, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        result = _block(role, expected=(1, 2))

    assert sorted(result.blocked_slot_ids) == sorted([agenda["free"].pk, *(s.pk for s in agenda["booked"])])
    for slot in [agenda["free"], *agenda["booked"]]:
        slot.refresh_from_db()
        assert slot.status == Slot.Status.BLOCKED
    agenda["free"].refresh_from_db()
    assert agenda["free"].version == 2
    for appointment in agenda["appointments"]:
        appointment.refresh_from_db()
        assert appointment.status == Appointment.Status.CANCELLED_BY_CLINIC
        assert appointment.cancel_reason == Appointment.CancelReason.OTHER
    for untouched in ("later", "colleague", "already_blocked"):
        before = agenda[untouched]
        before.refresh_from_db()
        assert before.version == 1
    assert sorted(OutboxEvent.objects.values_list("kind", flat=True)) == sorted(
        ["slot.blocked"] * 3 + ["appointment.cancelled"] * 2
    )
    blocked_event = OutboxEvent.objects.get(kind="slot.blocked", slot=agenda["free"])
    assert blocked_event.payload == {"version": 2}
    assert "Congé" not in str(list(OutboxEvent.objects.values_list("payload", flat=True)))  # staff-only
    change = AgendaChange.objects.get()
    assert (change.kind, change.slots_count, change.appointments_count, change.note) == (
        "block",
        3,
        2,
        "Congé de maladie",
    )


def test_each_citizen_is_emailed_in_their_language_with_a_link_to_book_again(
    role, agenda, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _block(role)

    by_address = {message.to[0]: message for message in mail.outbox}
    assert set(by_address) == {"elise@example.org", "john@example.org"}
    french, english = by_address["elise@example.org"], by_address["john@example.org"]
    assert "La clinique a dû annuler votre rendez-vous" in french.body
    assert "The clinic had to cancel your appointment" in english.body
    search_url = "http://testserver" + reverse("booking:search")
    assert search_url in french.body and search_url in english.body


def test_a_different_agenda_than_the_preview_changes_nothing(role, agenda):
    with pytest.raises(errors.AgendaChanged):
        _block(role, expected=(1, 1))

    assert (
        not Slot.objects.filter(status=Slot.Status.BLOCKED).exclude(pk=agenda["already_blocked"].pk).exists()
    )
    assert Appointment.objects.filter(status=Appointment.Status.BOOKED).count() == 2
    assert not OutboxEvent.objects.exists()


def test_a_period_that_ends_before_it_starts_is_refused(role):
    with pytest.raises(errors.InvalidPeriod):
        period_block(
            role=role, start=NOW + timedelta(days=2), end=NOW + timedelta(days=1), by=UserFactory(), now=NOW
        )


def test_past_slots_in_the_period_are_left_alone(role):
    past = slot_at(role, hours=-2)
    period_block(
        role=role, start=NOW - timedelta(hours=5), end=NOW + timedelta(hours=5), by=UserFactory(), now=NOW
    )
    past.refresh_from_db()
    assert past.status == Slot.Status.FREE


# --- changing the offer of free slots --------------------------------------------------------------


def test_changing_the_audience_of_future_free_slots(role, agenda):
    changed = slots_change_offer(
        role=role,
        start=NOW,
        end=NOW + timedelta(days=7),
        by=UserFactory(),
        audience=Audience.OWN_PATIENTS,
        expected_count=2,
        now=NOW,
    )

    assert sorted(changed) == sorted([agenda["free"].pk, agenda["later"].pk])
    for slot in (agenda["free"], agenda["later"]):
        slot.refresh_from_db()
        assert (slot.audience, slot.version) == (Audience.OWN_PATIENTS, 2)
    for booked in agenda["booked"]:
        booked.refresh_from_db()
        assert booked.audience == Audience.PUBLIC
    assert OutboxEvent.objects.filter(kind="slot.updated").count() == 2
    assert AgendaChange.objects.get().kind == "change"


def test_changing_the_reasons_ends_a_citizens_hold_on_the_slot(role, agenda):
    free = agenda["free"]
    Slot.objects.filter(pk=free.pk).update(
        holder=CitizenFactory(), hold_expires=NOW + timedelta(minutes=5), hold_token="t"
    )

    slots_change_offer(
        role=role, start=NOW, end=NOW + timedelta(days=3), by=UserFactory(), reasons=[Reason.URGENT], now=NOW
    )

    free.refresh_from_db()
    assert free.reason_codes == [Reason.URGENT]
    assert free.holder_id is None


def test_slots_that_already_have_the_new_offer_are_not_touched(role, agenda):
    changed = slots_change_offer(
        role=role, start=NOW, end=NOW + timedelta(days=7), by=UserFactory(), audience=Audience.PUBLIC, now=NOW
    )
    assert changed == []
    assert not OutboxEvent.objects.exists()


def test_a_changed_count_since_the_preview_changes_nothing(role, agenda):
    with pytest.raises(errors.AgendaChanged):
        slots_change_offer(
            role=role,
            start=NOW,
            end=NOW + timedelta(days=7),
            by=UserFactory(),
            audience=Audience.OWN_PATIENTS,
            expected_count=5,
            now=NOW,
        )
    agenda["free"].refresh_from_db()
    assert agenda["free"].audience == Audience.PUBLIC


# --- the pages -------------------------------------------------------------------------------------


def _block_form(world):
    # NOW + 2 days is 2027-02-03 15:00 UTC, 10:00 in Toronto.
    return {
        "practitioner": str(world.role_a.practitioner_id),
        "start": "2027-02-03T08:00",
        "end": "2027-02-03T18:00",
        "note": "Congé de maladie",
    }


def test_the_block_preview_names_the_patients_and_audits_it(world, client_as):
    slot_at(world.role_a, hours=48)
    appointment = _book(
        slot_at(world.role_a, hours=48.25), CitizenFactory(first_name="Élise", last_name="Bouchard")
    )

    response = client_as("receptionist_a").get(
        reverse("clinics:period_block", args=[world.clinic_a.pk]), _block_form(world)
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "Élise Bouchard" in html and appointment.reference in html
    assert 'name="expected_free" value="1"' in html and 'name="expected_booked" value="1"' in html
    audit = StaffAuditEvent.objects.get()
    assert (audit.user_id, audit.resource_id, audit.purpose) == (
        world.receptionist_a.pk,
        appointment.citizen_id,
        "block-period",
    )
    assert Slot.objects.filter(status=Slot.Status.BLOCKED).count() == 0


def test_confirming_the_block_page_blocks_and_cancels(world, client_as, django_capture_on_commit_callbacks):
    free = slot_at(world.role_a, hours=48)
    appointment = _book(slot_at(world.role_a, hours=48.25), CitizenFactory(email="elise@example.org"))

    with django_capture_on_commit_callbacks(execute=True):
        response = client_as("admin_a").post(
            reverse("clinics:period_block", args=[world.clinic_a.pk]),
            {**_block_form(world), "action": "block", "expected_free": "1", "expected_booked": "1"},
        )

    assert response.status_code == 302
    free.refresh_from_db()
    appointment.refresh_from_db()
    assert free.status == Slot.Status.BLOCKED
    assert appointment.status == Appointment.Status.CANCELLED_BY_CLINIC
    assert [m.to for m in mail.outbox] == [["elise@example.org"]]
    assert AgendaChange.objects.get().by == world.admin_a


def test_the_offer_page_previews_a_count_then_changes_the_slots(world, client_as):
    slots = [slot_at(world.role_a, hours=48 + i) for i in range(3)]
    url = reverse("clinics:offer_change", args=[world.clinic_a.pk])
    form = {
        "practitioner": str(world.role_a.practitioner_id),
        "date_from": "2027-02-01",
        "date_to": "2027-02-07",
        "audience": "gmf_patients",
    }
    client = client_as("receptionist_a")

    preview = client.get(url, form).content.decode()
    assert 'name="expected" value="3"' in preview

    response = client.post(url, {**form, "action": "apply", "expected": "3"})

    assert response.status_code == 302
    assert {s.audience for s in Slot.objects.filter(pk__in=[s.pk for s in slots])} == {Audience.GMF_PATIENTS}


def test_the_offer_page_needs_a_change(world, client_as):
    response = client_as("receptionist_a").get(
        reverse("clinics:offer_change", args=[world.clinic_a.pk]),
        {
            "practitioner": str(world.role_a.practitioner_id),
            "date_from": "2027-02-01",
            "date_to": "2027-02-07",
        },
    )
    assert "error-summary" in response.content.decode()
