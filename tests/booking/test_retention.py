"""Law 25 retention (booking.services.retention): with the clock moved, what has outlived its
retention is cleared or made coarse, and nothing younger is touched."""

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from booking.models import SearchMiss, Slot
from booking.services import appointment_book, slot_hold
from booking.services.retention import retention_apply
from booking.tasks import retention_apply as retention_task
from clinics.audit import audit_staff_read
from clinics.audit_chain import chain_for_model, chain_verify
from clinics.models import StaffAuditEvent
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, RegionFactory, SlotFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_an_expired_hold_loses_its_holder_a_day_after_expiry_and_a_live_one_never(settings):
    settings.RETENTION_EXPIRED_HOLD_HOURS = 24
    now = timezone.now()
    old, fresh, again = SlotFactory(), SlotFactory(), SlotFactory()
    slot_hold(slot_id=old.pk, citizen=CitizenFactory(), now=now - timedelta(days=2))
    slot_hold(slot_id=fresh.pk, citizen=CitizenFactory(), now=now - timedelta(hours=2))
    # Held two days ago, expired, then held again by someone else a minute ago: a live hold.
    slot_hold(slot_id=again.pk, citizen=CitizenFactory(), now=now - timedelta(days=2))
    live = slot_hold(slot_id=again.pk, citizen=CitizenFactory(), now=now - timedelta(minutes=1))

    report = retention_apply(now=now)

    assert report.holds_cleared == 1
    old.refresh_from_db()
    assert (old.holder_id, old.hold_expires, old.hold_token, old.status, old.version) == (
        None,
        None,
        "",
        "free",
        1,
    )
    assert Slot.objects.get(pk=fresh.pk).holder_id is not None  # expired less than a day ago
    again.refresh_from_db()
    assert (again.hold_token, again.hold_expires) == (live.token, live.expires)
    assert retention_apply(now=now).holds_cleared == 0  # a second run finds nothing


def test_a_booked_slot_is_left_alone():
    slot, citizen = SlotFactory(), CitizenFactory()
    appointment_book(slot_id=slot.pk, citizen=citizen, reason="follow_up", channel="portal")
    assert retention_apply(now=timezone.now() + timedelta(days=400)).holds_cleared == 0
    assert Slot.objects.get(pk=slot.pk).status == "booked"


def test_searches_without_result_keep_their_postal_area_for_180_days_then_only_the_region(settings):
    settings.RETENTION_SEARCH_DETAIL_DAYS = 180
    region = RegionFactory()
    now = timezone.now()
    old = SearchMiss.objects.create(path="near", reason="urgent", fsa="H2X", region=region, radius_km=10)
    recent = SearchMiss.objects.create(path="near", reason="urgent", fsa="H3Z", region=region, radius_km=5)
    SearchMiss.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=181))
    SearchMiss.objects.filter(pk=recent.pk).update(created_at=now - timedelta(days=179))

    assert retention_apply(now=now).searches_coarsened == 1
    old.refresh_from_db()
    assert (old.fsa, old.radius_km, old.region_id, old.reason, old.path) == (
        "",
        None,
        region.pk,
        "urgent",
        "near",
    )
    recent.refresh_from_db()
    assert (recent.fsa, recent.radius_km) == ("H3Z", 5)
    assert retention_apply(now=now).searches_coarsened == 0


def test_expired_sessions_are_deleted_and_live_ones_kept(client):
    citizen = CitizenFactory()
    response = client.post("/identification/", identify_payload(citizen))
    assert response.status_code == 302
    (session,) = Session.objects.all()
    assert retention_apply(now=timezone.now()).sessions_deleted == 0
    assert retention_apply(now=session.expire_date + timedelta(seconds=1)).sessions_deleted == 1
    assert not Session.objects.exists()


def test_the_daily_task_runs_it_and_the_audit_log_stays_verifiable():
    user, citizen = UserFactory(), CitizenFactory()
    audit_staff_read(user=user, clinic=None, purpose="agenda", citizen_ids=[citizen.pk])
    slot = SlotFactory()
    slot_hold(slot_id=slot.pk, citizen=citizen, now=timezone.now() - timedelta(days=3))
    retention_task.delay()
    assert Slot.objects.get(pk=slot.pk).holder_id is None
    assert chain_verify(chain_for_model(StaffAuditEvent)).ok
