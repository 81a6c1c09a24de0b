"""Booking a slot (booking contract: "Booking"; invariants 1 to 5).

One short transaction: a compare-and-set on the slot, the appointment, the outbox event; e-mail
after commit. Online channels apply invariant 3; the clinic agenda and EMRs do not, but nobody
escapes invariants 1 and 2, which the database enforces as the last word.
"""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from booking import errors
from booking.models import Appointment, Audience, OutboxEvent, Slot, reasons_to_mask
from booking.services import appointment_book, appointment_cancel, slot_hold
from citizens.models import Citizen
from tests.factories import (
    NOW,
    CitizenFactory,
    ClinicFactory,
    EnrolmentFactory,
    RoleFactory,
    slot_at,
)

PORTAL = Appointment.Channel.PORTAL
AGENDA = Appointment.Channel.CLINIC_AGENDA


def book(slot, citizen, *, channel=PORTAL, reason="follow_up", now=NOW, **kwargs) -> Appointment:
    return appointment_book(
        slot_id=slot.pk, citizen=citizen, reason=reason, channel=channel, now=now, **kwargs
    )


@pytest.fixture(autouse=True)
def _booking_settings(settings):
    settings.BOOKING_HOLD_SECONDS = 300
    settings.BOOKING_MAX_ACTIVE_ONLINE = 2


# Personas, by their relation to ``role`` (doctor P1 at a clinic of GMF G1).
@pytest.fixture
def own_patient(enrolled_citizen):
    return enrolled_citizen


@pytest.fixture
def gmf_patient(colleague_role):
    return EnrolmentFactory(practitioner=colleague_role.practitioner, gmf=colleague_role.clinic.gmf).citizen


@pytest.fixture
def other_gmf_patient(other_gmf_role):
    return EnrolmentFactory(practitioner=other_gmf_role.practitioner, gmf=other_gmf_role.clinic.gmf).citizen


@pytest.fixture
def unenrolled(citizen):
    return citizen


@pytest.fixture
def free_slot(role):
    return slot_at(role)


# --- invariant 3: audience -----------------------------------------------------------------------

AUDIENCE_MATRIX = [
    (Audience.OWN_PATIENTS, "own_patient", True),
    (Audience.OWN_PATIENTS, "gmf_patient", False),
    (Audience.OWN_PATIENTS, "other_gmf_patient", False),
    (Audience.OWN_PATIENTS, "unenrolled", False),
    (Audience.GMF_PATIENTS, "own_patient", True),
    (Audience.GMF_PATIENTS, "gmf_patient", True),
    (Audience.GMF_PATIENTS, "other_gmf_patient", False),
    (Audience.GMF_PATIENTS, "unenrolled", False),
    (Audience.PUBLIC, "own_patient", True),
    (Audience.PUBLIC, "gmf_patient", True),
    (Audience.PUBLIC, "other_gmf_patient", True),
    (Audience.PUBLIC, "unenrolled", True),
    (Audience.NOT_ONLINE, "own_patient", False),
    (Audience.NOT_ONLINE, "gmf_patient", False),
    (Audience.NOT_ONLINE, "other_gmf_patient", False),
    (Audience.NOT_ONLINE, "unenrolled", False),
]


@pytest.mark.parametrize(("audience", "persona", "allowed"), AUDIENCE_MATRIX)
def test_online_booking_follows_the_slots_audience(request, role, audience, persona, allowed):
    slot = slot_at(role, audience=audience)
    who = request.getfixturevalue(persona)
    if allowed:
        assert book(slot, who).citizen_id == who.pk
    else:
        with pytest.raises(errors.NotEligible):
            book(slot, who)
        slot.refresh_from_db()
        assert slot.status == Slot.Status.FREE
        assert not Appointment.objects.exists()


def test_a_former_patient_whose_enrolment_ended_cannot_book_the_doctors_own_patients_slot(role):
    former = EnrolmentFactory(practitioner=role.practitioner, gmf=role.clinic.gmf, is_active=False).citizen
    with pytest.raises(errors.NotEligible):
        book(slot_at(role, audience=Audience.OWN_PATIENTS), former)


def test_the_clinic_can_book_a_slot_not_offered_online(role, unenrolled):
    slot = slot_at(role, audience=Audience.NOT_ONLINE)
    assert book(slot, unenrolled, channel=AGENDA).channel == AGENDA


# --- invariant 3: reason -------------------------------------------------------------------------


def test_a_reason_the_slot_accepts_can_be_booked(role, citizen):
    slot = slot_at(role, reasons=reasons_to_mask(["follow_up", "periodic"]))
    assert book(slot, citizen, reason="periodic").reason == "periodic"


@pytest.mark.parametrize("reason", ["urgent", "child_0_5", "banana", ""])
def test_a_reason_the_slot_does_not_accept_cannot_be_booked_online(role, citizen, reason):
    slot = slot_at(role, reasons=reasons_to_mask(["follow_up", "periodic"]))
    with pytest.raises(errors.ReasonNotAccepted):
        book(slot, citizen, reason=reason)
    assert not Appointment.objects.exists()


def test_an_unknown_reason_cannot_be_booked_by_the_clinic_either(free_slot, citizen):
    with pytest.raises(errors.ReasonNotAccepted):
        book(free_slot, citizen, channel=AGENDA, reason="banana")


# --- invariant 3: minimum notice -----------------------------------------------------------------


def test_a_slot_starting_exactly_at_the_minimum_notice_can_be_booked(role, citizen):
    assert book(slot_at(role, hours=1), citizen).pk  # the clinic's notice is one hour


def test_a_slot_starting_within_the_minimum_notice_cannot_be_booked_online(role, citizen):
    slot = slot_at(role, hours=1)
    with pytest.raises(errors.TooSoon):
        book(slot, citizen, now=NOW + timedelta(seconds=1))


def test_the_minimum_notice_is_each_clinics_own(role, citizen):
    role.clinic.min_notice = timedelta(hours=24)
    role.clinic.save()
    with pytest.raises(errors.TooSoon):
        book(slot_at(role, hours=23), citizen)
    assert book(slot_at(role, hours=24), citizen).pk


def test_the_clinic_can_book_a_slot_within_the_minimum_notice(role, citizen):
    assert book(slot_at(role, hours=0.25), citizen, channel=AGENDA).pk


# --- invariant 3: anti-hoarding limit ------------------------------------------------------------


def test_a_citizen_can_book_online_up_to_the_limit_and_not_beyond(role, citizen):
    book(slot_at(role, hours=48), citizen)
    book(slot_at(role, hours=72), citizen, channel=Appointment.Channel.CITIZEN_API)
    with pytest.raises(errors.LimitReached):
        book(slot_at(role, hours=96), citizen)
    assert Appointment.objects.filter(citizen=citizen).count() == 2


def test_the_limit_is_a_setting(role, citizen, settings):
    settings.BOOKING_MAX_ACTIVE_ONLINE = 3
    for hours in (48, 72, 96):
        book(slot_at(role, hours=hours), citizen)
    with pytest.raises(errors.LimitReached):
        book(slot_at(role, hours=120), citizen)


def test_the_clinic_agenda_is_not_limited(role, citizen):
    for hours in (48, 72, 96, 120):
        book(slot_at(role, hours=hours), citizen, channel=AGENDA)
    assert Appointment.objects.filter(citizen=citizen).count() == 4


def test_appointments_booked_by_the_clinic_do_not_count_toward_the_online_limit(role, citizen):
    book(slot_at(role, hours=48), citizen, channel=AGENDA)
    book(slot_at(role, hours=72), citizen, channel=AGENDA)
    book(slot_at(role, hours=96), citizen)
    book(slot_at(role, hours=120), citizen)
    with pytest.raises(errors.LimitReached):
        book(slot_at(role, hours=144), citizen)


def test_a_cancelled_appointment_no_longer_counts_toward_the_limit(role, citizen):
    first = book(slot_at(role, hours=48), citizen)
    book(slot_at(role, hours=72), citizen)
    appointment_cancel(appointment=first, reason="better_time", now=NOW)
    assert book(slot_at(role, hours=96), citizen).pk


def test_a_past_appointment_no_longer_counts_toward_the_limit(role, citizen):
    book(slot_at(role, hours=2), citizen)
    book(slot_at(role, hours=72), citizen)
    later = NOW + timedelta(hours=3)  # the first appointment is over
    assert book(slot_at(role, hours=96), citizen, now=later).pk


# --- invariant 2: the patient's overlapping appointments -----------------------------------------


def test_a_patient_cannot_book_an_overlapping_appointment_online(role, colleague_role, citizen):
    book(slot_at(role, hours=48), citizen)
    overlapping = slot_at(colleague_role, hours=48 + 5 / 60)
    with pytest.raises(errors.PatientOverlap):
        book(overlapping, citizen)
    overlapping.refresh_from_db()
    assert overlapping.status == Slot.Status.FREE


def test_a_patient_cannot_be_booked_into_an_overlapping_appointment_even_by_the_clinic(
    role, colleague_role, citizen
):
    book(slot_at(role, hours=48), citizen, channel=AGENDA)
    with pytest.raises(errors.PatientOverlap):
        book(slot_at(colleague_role, hours=48), citizen, channel=AGENDA)
    assert Appointment.objects.filter(citizen=citizen).count() == 1


def test_a_patient_can_book_back_to_back_appointments(role, colleague_role, citizen):
    book(slot_at(role, hours=48), citizen)
    assert book(slot_at(colleague_role, hours=48.25), citizen).pk  # starts when the first ends


def test_a_cancelled_appointment_does_not_block_an_overlapping_booking(role, colleague_role, citizen):
    first = book(slot_at(role, hours=48), citizen)
    appointment_cancel(appointment=first, reason="better_time", now=NOW)
    assert book(slot_at(colleague_role, hours=48), citizen).pk


# --- holds and idempotency (invariant 4) ---------------------------------------------------------


def test_booking_consumes_the_hold(free_slot, citizen):
    hold = slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW)
    appointment = book(free_slot, citizen, hold_token=hold.token, now=NOW + timedelta(minutes=1))
    free_slot.refresh_from_db()
    assert free_slot.status == Slot.Status.BOOKED
    assert (free_slot.holder_id, free_slot.hold_expires, free_slot.hold_token) == (None, None, "")
    assert appointment.idempotency_key == hold.token


def test_a_retry_with_the_same_hold_token_returns_the_same_appointment(free_slot, citizen):
    hold = slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW)
    first = book(free_slot, citizen, hold_token=hold.token, now=NOW + timedelta(minutes=1))
    retry = book(free_slot, citizen, hold_token=hold.token, now=NOW + timedelta(minutes=10))
    assert retry.pk == first.pk
    assert Appointment.objects.count() == 1
    assert OutboxEvent.objects.filter(kind="appointment.booked").count() == 1
    free_slot.refresh_from_db()
    assert free_slot.version == 2


def test_someone_elses_hold_token_does_not_return_their_appointment(free_slot, citizen):
    hold = slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW)
    book(free_slot, citizen, hold_token=hold.token, now=NOW)
    stranger = CitizenFactory()
    with pytest.raises(errors.ApplicationError):
        book(free_slot, stranger, hold_token=hold.token, now=NOW)
    assert Appointment.objects.get().citizen_id == citizen.pk


def test_an_expired_hold_on_a_slot_someone_else_then_booked_raises_hold_expired(free_slot, citizen):
    hold = slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW)
    someone = CitizenFactory()
    book(free_slot, someone, now=NOW + timedelta(minutes=6))
    with pytest.raises(errors.HoldExpired):
        book(free_slot, citizen, hold_token=hold.token, now=NOW + timedelta(minutes=7))
    assert Appointment.objects.get().citizen_id == someone.pk


def test_an_expired_hold_on_a_slot_someone_else_now_holds_raises_hold_expired(free_slot, citizen):
    hold = slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW)
    slot_hold(slot_id=free_slot.pk, citizen=CitizenFactory(), now=NOW + timedelta(minutes=6))
    with pytest.raises(errors.HoldExpired):
        book(free_slot, citizen, hold_token=hold.token, now=NOW + timedelta(minutes=7))


def test_an_expired_hold_on_a_slot_still_free_can_still_be_booked(free_slot, citizen):
    hold = slot_hold(slot_id=free_slot.pk, citizen=citizen, now=NOW)
    appointment = book(free_slot, citizen, hold_token=hold.token, now=NOW + timedelta(minutes=30))
    assert appointment.citizen_id == citizen.pk


def test_a_slot_taken_by_someone_else_cannot_be_booked(free_slot, citizen):
    book(free_slot, CitizenFactory())
    with pytest.raises(errors.SlotUnavailable):
        book(free_slot, citizen)
    with pytest.raises(errors.SlotUnavailable):
        book(free_slot, citizen, channel=AGENDA)


@pytest.mark.parametrize("status", [Slot.Status.BLOCKED, Slot.Status.CANCELLED])
def test_a_blocked_or_withdrawn_slot_cannot_be_booked_on_any_channel(role, citizen, status):
    slot = slot_at(role, status=status)
    for channel in (PORTAL, AGENDA, Appointment.Channel.EMR):
        with pytest.raises(errors.SlotUnavailable):
            book(slot, citizen, channel=channel)


# --- invariant 5: version and outbox in the same transaction -------------------------------------


def test_booking_bumps_the_slot_version_and_writes_one_outbox_event(free_slot, citizen):
    appointment = book(free_slot, citizen)

    free_slot.refresh_from_db()
    assert free_slot.status == Slot.Status.BOOKED
    assert free_slot.version == 2
    event = OutboxEvent.objects.get()
    assert event.kind == "appointment.booked"
    assert (event.slot_id, event.appointment_id, event.clinic_id) == (
        free_slot.pk,
        appointment.pk,
        free_slot.clinic_id,
    )
    assert event.channel == PORTAL
    assert event.payload == {"slot_version": 2, "appointment_version": 1}
    assert event.notify_state == OutboxEvent.NotifyState.PENDING


def test_a_refused_booking_changes_nothing_and_writes_no_event(role, citizen):
    slot = slot_at(role, audience=Audience.OWN_PATIENTS)
    with pytest.raises(errors.NotEligible):
        book(slot, citizen)
    slot.refresh_from_db()
    assert (slot.status, slot.version) == (Slot.Status.FREE, 1)
    assert not OutboxEvent.objects.exists()
    assert not Appointment.objects.exists()


def test_the_appointment_and_its_event_are_in_one_transaction_with_the_slot_change(free_slot, citizen):
    with transaction.atomic():
        book(free_slot, citizen)
        assert OutboxEvent.objects.filter(kind="appointment.booked").exists()
        transaction.set_rollback(True)
    free_slot.refresh_from_db()
    assert (free_slot.status, free_slot.version) == (Slot.Status.FREE, 1)
    assert not Appointment.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_an_appointment_booked_by_the_clinic_also_writes_an_event(free_slot, citizen):
    book(free_slot, citizen, channel=AGENDA)
    assert OutboxEvent.objects.get().channel == AGENDA


# --- e-mail after commit -------------------------------------------------------------------------


def test_no_email_is_sent_before_the_booking_commits(free_slot, citizen, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        book(free_slot, citizen)
    assert len(callbacks) == 1
    assert mail.outbox == []


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_confirmation_email_is_sent_after_commit_to_the_citizen_with_an_ics(
    free_slot, django_capture_on_commit_callbacks, language
):
    citizen = CitizenFactory(preferred_language=language, email=f"julie.{language}@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        appointment = book(free_slot, citizen)
        assert mail.outbox == []  # nothing leaves before commit

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [citizen.email]
    assert message.subject
    assert appointment.reference in message.body
    assert [mimetype for _, mimetype in message.alternatives] == ["text/html"]
    ((filename, content, mimetype),) = message.attachments
    assert filename.endswith(".ics")
    assert mimetype == "text/calendar"
    ics = content.decode() if isinstance(content, bytes) else content
    assert "BEGIN:VEVENT" in ics
    assert f"UID:{appointment.reference}@" in ics
    assert "DTSTART:20270203T150000Z" in ics
    assert OutboxEvent.objects.get().notify_state == OutboxEvent.NotifyState.SENT


def test_the_confirmation_email_is_written_in_the_citizens_language(
    free_slot, citizen, django_capture_on_commit_callbacks
):
    # The same citizen books the same slot twice, first in French then in English: everything but
    # the language (and the reference and signed links) is equal, so any difference is the language.
    def without_variable_parts(text: str, appointment: Appointment) -> str:
        return re.sub(r"https?://\S+", "", text.replace(appointment.reference, ""))

    Citizen.objects.filter(pk=citizen.pk).update(preferred_language="fr")
    with django_capture_on_commit_callbacks(execute=True):
        in_french = book(free_slot, citizen)
    appointment_cancel(appointment=in_french, reason="better_time", now=NOW)  # its e-mail is not sent
    Citizen.objects.filter(pk=citizen.pk).update(preferred_language="en")
    with django_capture_on_commit_callbacks(execute=True):
        in_english = book(free_slot, citizen)

    assert len(mail.outbox) == 2
    fr, en = mail.outbox
    assert without_variable_parts(fr.subject, in_french) != without_variable_parts(en.subject, in_english)
    assert without_variable_parts(fr.body, in_french) != without_variable_parts(en.body, in_english)


def test_a_citizen_without_an_email_address_gets_no_email_and_the_event_is_closed(
    free_slot, django_capture_on_commit_callbacks
):
    citizen = CitizenFactory(email="")
    with django_capture_on_commit_callbacks(execute=True):
        book(free_slot, citizen)
    assert mail.outbox == []
    assert OutboxEvent.objects.get().notify_state == OutboxEvent.NotifyState.SKIPPED


# --- the database constraints themselves (invariants 1 and 2) ------------------------------------


def make_appointment(slot, citizen, status=Appointment.Status.BOOKED) -> Appointment:
    return Appointment.objects.create(
        slot=slot,
        citizen=citizen,
        clinic=slot.clinic,
        start=slot.start,
        end=slot.end,
        reason="follow_up",
        channel=AGENDA,
        status=status,
    )


def test_the_database_refuses_a_second_occupying_appointment_for_a_slot(free_slot, citizen):
    make_appointment(free_slot, citizen)
    with pytest.raises(IntegrityError, match="appt_one_occupying_per_slot"), transaction.atomic():
        make_appointment(free_slot, CitizenFactory())


@pytest.mark.parametrize("status", ["cancelled_by_citizen", "cancelled_by_clinic", "entered_in_error"])
def test_the_database_accepts_a_new_appointment_beside_one_that_no_longer_occupies_the_slot(
    free_slot, citizen, status
):
    make_appointment(free_slot, citizen, status=status)
    assert make_appointment(free_slot, CitizenFactory()).pk


def test_the_database_refuses_two_overlapping_occupying_appointments_for_one_patient(
    role, colleague_role, citizen
):
    make_appointment(slot_at(role, hours=48), citizen)
    with pytest.raises(IntegrityError, match="appt_no_overlap_per_citizen"), transaction.atomic():
        make_appointment(slot_at(colleague_role, hours=48 + 10 / 60), citizen)


def test_the_database_accepts_back_to_back_appointments_for_one_patient(role, colleague_role, citizen):
    make_appointment(slot_at(role, hours=48), citizen)
    assert make_appointment(slot_at(colleague_role, hours=48.25), citizen).pk


def test_the_database_refuses_overlapping_slots_of_one_practitioner_in_two_clinics(role):
    elsewhere = RoleFactory(practitioner=role.practitioner, clinic=ClinicFactory())
    slot_at(role, hours=48)
    with pytest.raises(IntegrityError, match="slot_no_overlap_per_practitioner"), transaction.atomic():
        slot_at(elsewhere, hours=48 + 10 / 60)


def test_the_database_accepts_back_to_back_slots_and_a_withdrawn_one_under_a_new_slot(role):
    elsewhere = RoleFactory(practitioner=role.practitioner, clinic=ClinicFactory())
    slot_at(role, hours=48)
    assert slot_at(elsewhere, hours=48.25).pk
    slot_at(role, hours=72, status=Slot.Status.CANCELLED)
    assert slot_at(elsewhere, hours=72).pk


def test_the_database_accepts_two_practitioners_at_the_same_time(role, colleague_role):
    slot_at(role, hours=48)
    assert slot_at(colleague_role, hours=48).pk
