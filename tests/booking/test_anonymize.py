"""Law 25: appointments older than RETENTION_APPOINTMENT_DAYS are anonymized by the daily retention
task (booking.services.retention): the link to the person goes, what reporting counts stays, the
audit chains still verify, and a second run (or two at once) changes nothing more."""

from datetime import timedelta

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from booking.models import Appointment, OutboxEvent, Reminder, Slot
from booking.reporting.aggregate import reporting_aggregate
from booking.reporting.models import WeekStat
from booking.services import appointment_book, appointment_cancel, appointment_set_status
from booking.services.retention import retention_apply
from booking.waitlist.models import WaitlistOffer, WaitlistRequest
from booking.waitlist.selectors import waitlist_fill_rate, waitlist_length_at
from booking.waitlist.services import waitlist_request_create, waitlist_request_withdraw
from clinics.audit import audit_staff_read
from clinics.audit_chain import chain_verify, chains
from clinics.models import PhoneBookingNote
from tests.concurrency.conftest import run_concurrently
from tests.factories import CitizenFactory, FsaFactory, RoleFactory, SlotFactory, UserFactory
from tests.sync.conftest import fhir_a, persona_a  # noqa: F401 - fixtures: EMR client A and its token

DAYS = 730
KEPT = (
    "clinic",
    "slot",
    "start",
    "end",
    "reason",
    "status",
    "channel",
    "reference",
    "cancel_reason",
    "version",
)


def _figures():
    """Every reporting figure, recomputed from scratch: weekly stats per clinic and region."""
    reporting_aggregate(now=timezone.now(), full=True)
    return sorted(
        (
            {k: v for k, v in model_to_dict(row).items() if k not in ("id", "computed_at")}
            for row in WeekStat.objects.all()
        ),
        key=repr,
    )


def _history(role, staff):
    """Three weeks of one clinic: attended, no-show, cancelled, booked by staff with a note, with
    reminders sent, a staff read audited, and a waitlist request that ended."""
    people = [CitizenFactory(mobile="514 555 0199") for _ in range(4)]
    slots = [
        SlotFactory(role=role, start=timezone.now() + timedelta(days=3 + 7 * i, hours=i)) for i in range(4)
    ]
    booked = []
    for person, slot in zip(people, slots, strict=True):
        booked.append(appointment_book(slot_id=slot.pk, citizen=person, reason="follow_up", channel="portal"))
    Appointment.objects.filter(pk=booked[0].pk).update(idempotency_key="api-retry-key")
    phone = booked[3]
    Appointment.objects.filter(pk=phone.pk).update(channel="agenda", booked_by_user=staff)
    PhoneBookingNote.objects.create(
        clinic=role.clinic,
        appointment=phone,
        by=staff,
        reason="Mme G. rappelle, malentendante",
        at=timezone.now(),
    )
    Reminder.objects.create(
        appointment=booked[0],
        kind="day_before",
        channel="sms",
        due_at=booked[0].start - timedelta(days=1),
        state="sent",
        idempotency_key=f"r-{booked[0].pk}",
        provider_id="SM-provider-42",
    )
    appointment_cancel(appointment=booked[2], reason="feeling_better")
    later = booked[0].start + timedelta(hours=1)
    appointment_set_status(appointment_id=booked[0].pk, status="arrived", now=later)
    appointment_set_status(appointment_id=booked[0].pk, status="fulfilled", now=later)
    appointment_set_status(
        appointment_id=booked[1].pk, status="noshow", now=booked[1].start + timedelta(hours=1)
    )
    audit_staff_read(user=staff, clinic=role.clinic, purpose="agenda", citizen_ids=[p.pk for p in people])
    FsaFactory()
    request = waitlist_request_create(
        citizen=people[1],
        path="near",
        reason="follow_up",
        fsa="H2X",
        date_from=timezone.localdate(),
        date_to=timezone.localdate() + timedelta(days=10),
    )
    waitlist_request_withdraw(
        citizen=people[1], request_id=request.pk, now=request.created_at + timedelta(hours=1)
    )
    return people, booked, request


@pytest.mark.django_db
def test_old_appointments_lose_the_person_and_keep_what_reporting_counts(settings):
    settings.RETENTION_APPOINTMENT_DAYS = DAYS
    role, staff = RoleFactory(), UserFactory()
    people, booked, request = _history(role, staff)
    # Asked for her by the account holder who has her in their care: that link is personal too.
    WaitlistRequest.objects.filter(pk=request.pk).update(requested_by=people[2])
    recent_slot = SlotFactory(role=role, start=booked[-1].start + timedelta(days=30))
    recent = appointment_book(slot_id=recent_slot.pk, citizen=people[0], reason="urgent", channel="portal")
    before = {a.pk: model_to_dict(Appointment.objects.get(pk=a.pk), fields=KEPT) for a in booked}
    figures = _figures()
    waiting_at = request.created_at + timedelta(minutes=30)
    waiting = waitlist_length_at(waiting_at)
    assert sum(waiting.values()) == 1  # she was waiting then
    window = {"start": timezone.now() - timedelta(days=1), "end": timezone.now() + timedelta(days=1)}
    fill = waitlist_fill_rate(**window)
    events, slots = OutboxEvent.objects.count(), list(Slot.objects.order_by("pk").values())

    # The clock: two years after the last of the four, before the recent one.
    now = booked[-1].start + timedelta(days=DAYS, hours=1)
    report = retention_apply(now=now)

    assert report.appointments_anonymized == 4
    assert report.waitlist_requests_anonymized == 1
    for a in booked:
        row = Appointment.objects.get(pk=a.pk)
        assert (row.citizen_id, row.booked_by_user_id, row.idempotency_key) == (None, None, None)
        assert model_to_dict(row, fields=KEPT) == before[a.pk]  # counts, dates, status, clinic, reason
    assert Appointment.objects.get(pk=recent.pk).citizen_id == people[0].pk  # younger: kept
    assert Reminder.objects.get().provider_id == ""
    assert PhoneBookingNote.objects.get().reason == ""
    assert (WaitlistRequest.objects.get().citizen_id, WaitlistRequest.objects.get().requested_by_id) == (
        None,
        None,
    )
    assert not WaitlistOffer.objects.exclude(citizen=None).exists()
    # Not a booking change: no event for the feed, no slot touched.
    assert OutboxEvent.objects.count() == events
    assert list(Slot.objects.order_by("pk").values()) == slots
    # Reporting recounts the same figures from the anonymized rows.
    assert _figures() == figures
    assert waitlist_length_at(waiting_at) == waiting
    assert waitlist_fill_rate(**window) == fill
    # The audit logs hold ids only: every chain still verifies, and its rows are untouched.
    assert all(chain_verify(chain).ok for chain in chains())
    # Idempotent: a second run finds nothing.
    again = retention_apply(now=now)
    assert (again.appointments_anonymized, again.waitlist_requests_anonymized) == (0, 0)


@pytest.mark.django_db
def test_nothing_younger_than_the_period_is_touched(settings):
    settings.RETENTION_APPOINTMENT_DAYS = DAYS
    role = RoleFactory()
    slot, citizen = SlotFactory(role=role), CitizenFactory()
    appointment = appointment_book(slot_id=slot.pk, citizen=citizen, reason="follow_up", channel="portal")
    assert retention_apply(now=appointment.start + timedelta(days=DAYS - 1)).appointments_anonymized == 0
    assert Appointment.objects.get(pk=appointment.pk).citizen_id == citizen.pk
    assert retention_apply(now=appointment.start + timedelta(days=DAYS + 1)).appointments_anonymized == 1


@pytest.mark.django_db
def test_an_anonymized_appointment_reaches_nobody(client, settings):
    """The citizen's pages no longer list it, and an e-mail for it has no one to go to."""
    from booking.notifications import send_appointment_email
    from tests.conftest import identify_payload

    settings.RETENTION_APPOINTMENT_DAYS = DAYS
    slot, citizen = SlotFactory(), CitizenFactory()
    appointment = appointment_book(slot_id=slot.pk, citizen=citizen, reason="follow_up", channel="portal")
    retention_apply(now=appointment.start + timedelta(days=DAYS + 1))
    client.post("/identification/", identify_payload(citizen))
    assert appointment.reference not in client.get("/rendez-vous/").content.decode()
    assert client.get(f"/rendez-vous/{appointment.pk}/").status_code == 404
    assert send_appointment_email(Appointment.objects.get(pk=appointment.pk), "cancelled") is False


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_anonymize_each_appointment_once(settings):
    settings.RETENTION_APPOINTMENT_DAYS = DAYS
    role = RoleFactory()
    booked = [
        appointment_book(
            slot_id=SlotFactory(role=role).pk, citizen=CitizenFactory(), reason="follow_up", channel="portal"
        )
        for _ in range(6)
    ]
    now = max(a.start for a in booked) + timedelta(days=DAYS + 1)
    outcomes = run_concurrently([lambda: retention_apply(now=now) for _ in range(4)])
    assert not outcomes.errors_by_type()
    assert sum(o.value.appointments_anonymized for o in outcomes) == 6
    assert not Appointment.objects.exclude(citizen=None).exists()


@pytest.mark.django_db
def test_the_emr_reads_an_anonymized_appointment_without_a_patient(settings, fhir_a, persona_a):  # noqa: F811
    from sync.models import AuditEvent

    settings.RETENTION_APPOINTMENT_DAYS = DAYS
    slot = SlotFactory(role=persona_a.role)
    appointment = appointment_book(
        slot_id=slot.pk, citizen=CitizenFactory(), reason="urgent", channel="portal"
    )
    retention_apply(now=appointment.start + timedelta(days=DAYS + 1))
    response = fhir_a.get(f"/fhir/r4/Appointment/{appointment.pk}")
    assert response.status_code == 200
    actors = [p["actor"]["reference"] for p in response.json()["participant"]]
    assert actors and not [a for a in actors if a.startswith("Patient/")]
    assert response.json()["status"] == "booked"
    search = fhir_a.get(f"/fhir/r4/Appointment?_id={appointment.pk}")
    assert search.status_code == 200, search.content[:300]
    assert AuditEvent.objects.filter(resource_type="Appointment", resource_id=appointment.pk).exists()
    assert all(chain_verify(chain).ok for chain in chains())
