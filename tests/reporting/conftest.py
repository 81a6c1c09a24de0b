"""A small hand-computed week of one clinic, the figures of docs/metrics.md worked out by hand.

Clinic "Clinique Fixture" (Montréal, America/Toronto, region 06), ISO week of Monday 2027-02-08:

    slot  audience      modality   source  reasons   outcome
    S1    public        in person  EMR     all       booked (EMR), arrived then fulfilled; lead 2 h
    S2    public        in person  EMR     all       booked (EMR), arrived; lead 5 h
    S3    public        in person  EMR     all       booked (agenda), no-show; lead 30 h
    S4    public        in person  EMR     all       booked (agenda); lead 77 h (bin 3 days)
    S5    public        in person  web     all       booked (agenda); lead 10 days
    S6    public        in person  web     all       booked, cancelled by the clinic 3 h before ("other")
    S7    gmf_patients  in person  web     all       booked, cancelled by the citizen 3 days before
    S8    gmf_patients  in person  web     all       free
    S9    own_patients  phone      web     all       free
    S10   not_online    phone      web     urgent    free
    S11   public        in person  web     all       blocked (not offered)
    S12   public        in person  web     all       withdrawn (not offered)
    S13   public        in person  web     all       free, Sunday 23:30 local = Monday 04:30 UTC

Offered 11 (S1–S10, S13), booked 5 (S1–S5): fill rate 45.5 %; EMR share 4/11 = 36.4 %.
Lead times 2, 5, 30, 77, 240 h: median (3rd of 5) 30 h, 90th percentile (5th of 5) 240 h.
No-show rate 1 / (2 attended + 1 no-show) = 33.3 %. Cancellations 2: one "other" by the clinic under
24 h before, one "feeling_better" by the citizen 1–7 days before.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from booking.models import Appointment, Audience, Modality, Reason, SearchMiss, Slot, reasons_to_mask
from booking.services import appointment_book, appointment_cancel, appointment_set_status
from tests.clinics.conftest import client_as, world
from tests.factories import CitizenFactory, ClinicFactory, RoleFactory, SlotFactory

WEEK = date(2027, 2, 8)
TUESDAY_9H = datetime(2027, 2, 9, 14, 0, tzinfo=UTC)  # 09:00 in Montréal


@dataclass
class Fixture:
    clinic: object
    slots: list
    appointments: dict


def _at(i: int) -> datetime:
    return TUESDAY_9H + timedelta(minutes=15 * i)


def build_fixture_week(clinic=None) -> Fixture:
    clinic = clinic or ClinicFactory(name="Clinique Fixture")
    role = RoleFactory(clinic=clinic)
    specs = [
        ("public", "in_person", "emr", None, "free"),
        ("public", "in_person", "emr", None, "free"),
        ("public", "in_person", "emr", None, "free"),
        ("public", "in_person", "emr", None, "free"),
        ("public", "in_person", "web", None, "free"),
        ("public", "in_person", "web", None, "free"),
        ("gmf_patients", "in_person", "web", None, "free"),
        ("gmf_patients", "in_person", "web", None, "free"),
        ("own_patients", "phone", "web", None, "free"),
        ("not_online", "phone", "web", [Reason.URGENT], "free"),
        ("public", "in_person", "web", None, "blocked"),
        ("public", "in_person", "web", None, "cancelled"),
    ]
    slots = []
    for i, (audience, modality, source, reasons, status) in enumerate(specs):
        fields = {
            "audience": Audience(audience),
            "modality": Modality(modality),
            "source": source,
            "status": status,
        }
        if reasons:
            fields["reasons"] = reasons_to_mask(reasons)
        slots.append(SlotFactory(role=role, start=_at(i), end=_at(i) + timedelta(minutes=15), **fields))
    sunday_late = datetime(2027, 2, 15, 4, 30, tzinfo=UTC)
    slots.append(SlotFactory(role=role, start=sunday_late, end=sunday_late + timedelta(minutes=15)))
    booked_at = TUESDAY_9H - timedelta(days=20)
    appointments = {}
    channels = ["emr", "emr", "agenda", "agenda", "agenda", "agenda", "agenda"]
    for i, channel in enumerate(channels):
        appointments[i + 1] = appointment_book(
            slot_id=slots[i].pk,
            citizen=CitizenFactory(),
            reason=Reason.FOLLOW_UP,
            channel=channel,
            now=booked_at,
        )
    leads_h = {1: 2, 2: 5, 3: 30, 4: 77, 5: 240, 6: 100, 7: 100}
    for n, hours in leads_h.items():
        a = appointments[n]
        Appointment.objects.filter(pk=a.pk).update(created_at=a.start - timedelta(hours=hours))
    appointment_set_status(appointment_id=appointments[1].pk, status="arrived", now=_at(0))
    appointment_set_status(appointment_id=appointments[1].pk, status="fulfilled", now=_at(1))
    appointment_set_status(appointment_id=appointments[2].pk, status="arrived", now=_at(1))
    appointment_set_status(appointment_id=appointments[3].pk, status="noshow", now=_at(3))
    appointment_cancel(
        appointment=appointments[6],
        reason="other",
        by_clinic=True,
        now=appointments[6].start - timedelta(hours=3),
    )
    appointment_cancel(
        appointment=appointments[7], reason="feeling_better", now=appointments[7].start - timedelta(days=3)
    )
    return Fixture(clinic=clinic, slots=slots, appointments=appointments)


def add_misses(*, region, fsa: str, reason: str, count: int, at: datetime) -> None:
    for _ in range(count):
        miss = SearchMiss.objects.create(path="near", fsa=fsa, reason=reason, region=region)
        SearchMiss.objects.filter(pk=miss.pk).update(created_at=at)


@pytest.fixture
def fixture_week(db) -> Fixture:
    return build_fixture_week()


__all__ = ["WEEK", "Fixture", "Slot", "add_misses", "build_fixture_week", "client_as", "world"]
