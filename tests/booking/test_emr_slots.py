"""EMR slots in batches (an agenda snapshot's new and dropped slots): the same rules as one by one."""

from datetime import timedelta

import pytest
from django.utils import timezone

from booking import errors
from booking.models import OutboxEvent, Reason, Slot
from booking.services import (
    EmrSlot,
    EmrSlotMove,
    appointment_book,
    emr_slots_create,
    emr_slots_rearrange,
    emr_slots_update,
    emr_slots_withdraw,
    slot_hold,
)
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


def _made(role, *specs):
    ids, _ = emr_slots_create(role=role, specs=list(specs))
    return {s.external_id: s for s in Slot.objects.filter(pk__in=ids)}


def _move(slot, minutes_from_base, **overrides):
    return EmrSlotMove(
        slot_id=slot.pk, version=slot.version, spec=spec(slot.external_id, minutes_from_base, **overrides)
    )


def test_a_batch_moves_free_slots_with_a_version_bump_one_event_each_and_ends_holds():
    role = RoleFactory(clinic=ClinicFactory(emr_product="ClinIQ"))
    slots = _made(role, spec("A", 0), spec("B", 15), spec("C", 30))
    slot_hold(slot_id=slots["B"].pk, citizen=CitizenFactory())
    changed, left = emr_slots_update(
        role=role,
        moves=[
            _move(slots["A"], 120),
            _move(slots["B"], 135),
            _move(slots["C"], 30, audience="gmf_patients"),
        ],
    )
    assert left == [] and sorted(changed) == sorted(s.pk for s in slots.values())
    after = {s.external_id: s for s in Slot.objects.filter(role=role)}
    assert after["A"].start == _base() + timedelta(minutes=120)
    assert after["B"].start == _base() + timedelta(minutes=135)
    assert (after["C"].start, after["C"].audience) == (_base() + timedelta(minutes=30), "gmf_patients")
    assert {s.version for s in after.values()} == {2}
    assert (after["B"].holder_id, after["B"].hold_expires, after["B"].hold_token) == (None, None, "")
    events = OutboxEvent.objects.filter(kind="slot.updated", slot__role=role)
    assert sorted((e.slot_id, e.payload["version"], e.channel) for e in events) == sorted(
        (s.pk, 2, "emr") for s in slots.values()
    )


def test_a_slot_booked_or_changed_since_it_was_read_is_left_untouched():
    # Compare-and-set: the moves carry the versions read before the citizen booked B and before
    # C changed; neither is written, both go back to the caller (who records the conflict).
    role = RoleFactory(clinic=ClinicFactory(emr_product="ClinIQ"))
    slots = _made(role, spec("A", 0), spec("B", 15), spec("C", 30))
    moves = [_move(slots["A"], 120), _move(slots["B"], 135), _move(slots["C"], 150)]
    appointment_book(
        slot_id=slots["B"].pk, citizen=CitizenFactory(), reason=Reason.FOLLOW_UP, channel="agenda"
    )
    Slot.objects.filter(pk=slots["C"].pk).update(version=5)
    changed, left = emr_slots_update(role=role, moves=moves)
    assert changed == [slots["A"].pk]
    assert sorted(m.slot_id for m in left) == sorted([slots["B"].pk, slots["C"].pk])
    booked = Slot.objects.get(pk=slots["B"].pk)
    assert (booked.start, booked.status, booked.version) == (slots["B"].start, "booked", 2)
    assert Slot.objects.get(pk=slots["C"].pk).start == slots["C"].start
    assert not OutboxEvent.objects.filter(kind="slot.updated", slot_id__in=[slots["B"].pk, slots["C"].pk])


def test_a_chain_of_moves_or_an_overlap_is_left_to_the_caller():
    # A moves into the time B still has (B moves later in the same batch): made in one statement,
    # the exclusion constraint could see A and B overlap half-way, so A is left; D would overlap
    # the practitioner's slot at another clinic, E another move of the batch.
    role = RoleFactory(clinic=ClinicFactory(emr_product="ClinIQ"))
    elsewhere = RoleFactory(practitioner=role.practitioner)
    SlotFactory(role=elsewhere, start=_base() + timedelta(minutes=300), end=_base() + timedelta(minutes=315))
    slots = _made(role, spec("A", 0), spec("B", 15), spec("D", 60), spec("E", 75))
    changed, left = emr_slots_update(
        role=role,
        moves=[
            _move(slots["A"], 15),
            _move(slots["B"], 200),
            _move(slots["D"], 305),
            _move(slots["E"], 200, length=30),
        ],
    )
    assert changed == [slots["B"].pk]
    assert sorted(m.slot_id for m in left) == sorted(slots[k].pk for k in "ADE")
    assert Slot.objects.get(pk=slots["A"].pk).start == _base()


def test_a_slot_of_another_role_is_never_moved():
    role = RoleFactory(clinic=ClinicFactory(emr_product="ClinIQ"))
    foreign = SlotFactory()
    changed, left = emr_slots_update(
        role=role,
        moves=[EmrSlotMove(slot_id=foreign.pk, version=foreign.version, spec=spec("X", 500))],
    )
    assert changed == [] and [m.slot_id for m in left] == [foreign.pk]
    foreign.refresh_from_db()
    assert foreign.version == 1


def test_a_malformed_move_changes_nothing():
    role = RoleFactory(clinic=ClinicFactory(emr_product="ClinIQ"))
    slots = _made(role, spec("A", 0), spec("B", 15))
    with pytest.raises(errors.InvalidSlot):
        emr_slots_update(
            role=role, moves=[_move(slots["A"], 120), _move(slots["B"], 135, reasons=["no_such_reason"])]
        )
    assert set(Slot.objects.filter(role=role).values_list("version", flat=True)) == {1}


def test_a_rotation_of_times_is_made_at_once_with_one_bump_and_one_event_each():
    role = RoleFactory(clinic=ClinicFactory(emr_product="ClinIQ"))
    slots = _made(role, spec("A", 0), spec("B", 15), spec("C", 30))
    slot_hold(slot_id=slots["A"].pk, citizen=CitizenFactory())
    done = emr_slots_rearrange(
        role=role, moves=[_move(slots["A"], 15), _move(slots["B"], 30), _move(slots["C"], 0)]
    )
    assert sorted(done.changed) == sorted(s.pk for s in slots.values())
    assert done.withdrawn == [] and done.stale == []
    after = {s.external_id: s for s in Slot.objects.filter(role=role)}
    assert {k: (s.start, s.status, s.version) for k, s in after.items()} == {
        "A": (_base() + timedelta(minutes=15), "free", 2),
        "B": (_base() + timedelta(minutes=30), "free", 2),
        "C": (_base(), "free", 2),
    }
    assert (after["A"].holder_id, after["A"].hold_token) == (None, "")
    events = OutboxEvent.objects.filter(slot__role=role, kind__in=["slot.updated", "slot.withdrawn"])
    assert sorted((e.slot_id, e.kind, e.payload["version"]) for e in events) == sorted(
        (s.pk, "slot.updated", 2) for s in slots.values()
    )


def test_a_rearrangement_never_moves_a_slot_booked_since_it_was_read_and_withdraws_a_move_onto_it():
    # The versions were read before a citizen booked A: A is handed back untouched (the caller
    # records the conflict); B's new time is A's, held by the booking that stays: B is withdrawn
    # (one event), never left on offer at a time the EMR no longer gives it; C moves elsewhere.
    role = RoleFactory(clinic=ClinicFactory(emr_product="ClinIQ"))
    elsewhere = RoleFactory(practitioner=role.practitioner)
    SlotFactory(role=elsewhere, start=_base() + timedelta(minutes=300), end=_base() + timedelta(minutes=315))
    slots = _made(role, spec("A", 0), spec("B", 15), spec("C", 30), spec("D", 45))
    moves = [_move(slots["A"], 15), _move(slots["B"], 0), _move(slots["C"], 45), _move(slots["D"], 300)]
    appointment_book(
        slot_id=slots["A"].pk, citizen=CitizenFactory(), reason=Reason.FOLLOW_UP, channel="agenda"
    )
    done = emr_slots_rearrange(role=role, moves=moves)
    assert [m.slot_id for m in done.stale] == [slots["A"].pk]
    assert sorted(m.slot_id for m in done.withdrawn) == sorted([slots["B"].pk, slots["D"].pk])
    assert done.changed == [slots["C"].pk]
    after = {s.external_id: s for s in Slot.objects.filter(role=role)}
    assert (after["A"].start, after["A"].status, after["A"].version) == (_base(), "booked", 2)
    assert (after["B"].status, after["B"].version) == ("cancelled", 2)
    assert (after["C"].start, after["C"].status) == (_base() + timedelta(minutes=45), "free")
    assert (after["D"].status, after["D"].start) == ("cancelled", _base() + timedelta(minutes=45))
    events = OutboxEvent.objects.filter(slot__role=role, kind__in=["slot.updated", "slot.withdrawn"])
    assert sorted((e.slot_id, e.kind) for e in events) == sorted(
        [
            (slots["B"].pk, "slot.withdrawn"),
            (slots["D"].pk, "slot.withdrawn"),
            (slots["C"].pk, "slot.updated"),
        ]
    )
