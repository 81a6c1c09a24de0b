"""EMR slots in batches (an agenda snapshot's new and dropped slots): the same rules as one by one."""

from datetime import timedelta

import pytest
from django.utils import timezone

from booking import errors
from booking.models import OutboxEvent, Reason, Slot
from booking.services import EmrSlot, appointment_book, emr_slots_create, emr_slots_withdraw
from tests.factories import CitizenFactory, ClinicFactory, RoleFactory, SlotFactory

pytestmark = pytest.mark.django_db


def _base():
    return (timezone.now() + timedelta(days=4)).replace(hour=13, minute=0, second=0, microsecond=0)


def spec(identifier, minutes_from_base, length=15, **overrides):
    start = _base() + timedelta(minutes=minutes_from_base)
    fields = {
        "start": start,
        "end": start + timedelta(minutes=length),
        "reasons": ["follow_up"],
        "audience": "public",
        "modality": "in_person",
        "external_id": identifier,
    }
    return EmrSlot(**{**fields, **overrides})


def test_a_batch_creates_its_slots_with_one_outbox_event_each():
    role = RoleFactory(clinic=ClinicFactory(emr_product="ClinIQ"))
    ids, left_out = emr_slots_create(role=role, specs=[spec("B", 15), spec("A", 0), spec("C", 30)])
    assert left_out == []
    slots = list(Slot.objects.filter(pk__in=ids).order_by("start"))
    assert [s.external_id for s in slots] == ["A", "B", "C"]
    assert all(s.source == "emr" and s.status == "free" and s.version == 1 for s in slots)
    assert all(s.practitioner_id == role.practitioner_id and s.clinic_id == role.clinic_id for s in slots)
    events = OutboxEvent.objects.filter(slot_id__in=ids)
    assert sorted(e.slot_id for e in events) == sorted(ids)
    assert {(e.kind, e.channel, e.payload["version"]) for e in events} == {("slot.created", "emr", 1)}


def test_a_slot_overlapping_the_practitioner_elsewhere_or_an_earlier_one_is_left_out():
    role = RoleFactory(clinic=ClinicFactory(emr_product="ClinIQ"))
    other_clinic = RoleFactory(practitioner=role.practitioner)
    SlotFactory(role=other_clinic, start=_base() + timedelta(minutes=30), end=_base() + timedelta(minutes=45))
    ids, left_out = emr_slots_create(
        role=role,
        specs=[spec("A", 0, length=20), spec("B", 10), spec("C", 35), spec("D", 45)],
    )
    assert [s.external_id for s in left_out] == ["B", "C"]  # B overlaps A; C the other clinic's slot
    assert sorted(Slot.objects.filter(pk__in=ids).values_list("external_id", flat=True)) == ["A", "D"]


def test_a_malformed_spec_creates_nothing():
    role = RoleFactory(clinic=ClinicFactory(emr_product="ClinIQ"))
    with pytest.raises(errors.InvalidSlot):
        emr_slots_create(role=role, specs=[spec("A", 0), spec("B", 15, reasons=["no_such_reason"])])
    assert not Slot.objects.filter(role=role).exists()


def test_withdrawing_a_batch_leaves_a_booked_slot_alone():
    role = RoleFactory(clinic=ClinicFactory(emr_product="ClinIQ"))
    ids, _ = emr_slots_create(role=role, specs=[spec("A", 0), spec("B", 15), spec("C", 30)])
    booked = Slot.objects.get(pk__in=ids, external_id="B")
    appointment_book(slot_id=booked.pk, citizen=CitizenFactory(), reason=Reason.FOLLOW_UP, channel="agenda")
    withdrawn = emr_slots_withdraw(clinic_id=role.clinic_id, slot_ids=ids)
    assert sorted(withdrawn) == sorted(set(ids) - {booked.pk})
    states = dict(Slot.objects.filter(pk__in=ids).values_list("external_id", "status"))
    assert states == {"A": "cancelled", "B": "booked", "C": "cancelled"}
    events = OutboxEvent.objects.filter(kind="slot.withdrawn", slot_id__in=ids)
    assert sorted(e.slot_id for e in events) == sorted(withdrawn)
    assert {e.payload["version"] for e in events} == {2}
    assert emr_slots_withdraw(clinic_id=role.clinic_id, slot_ids=ids) == []  # again: nothing


def test_withdrawing_never_touches_another_clinics_slots():
    role = RoleFactory(clinic=ClinicFactory(emr_product="ClinIQ"))
    foreign = SlotFactory()
    assert emr_slots_withdraw(clinic_id=role.clinic_id, slot_ids=[foreign.pk]) == []
    foreign.refresh_from_db()
    assert foreign.status == "free"
