"""The change feed to the EMR: relay numbering, scope, exclusion of the EMR's own changes, paging,
retention (410), polling budget (429), audit, and the CapabilityStatement."""

import time
from datetime import timedelta

from django.test import override_settings
from django.utils import timezone

from booking.models import Appointment, OutboxEvent
from booking.services import appointment_book, appointment_cancel, slot_withdraw
from sync import feed
from sync.models import AuditEvent
from sync.tasks import feed_prune as feed_prune_task
from sync.tasks import feed_relay as feed_relay_task
from tests.factories import CitizenFactory, SlotFactory

from .conftest import FHIR, get_token

NO_BUDGET = override_settings(SYNC_FEED_MIN_INTERVAL_SECONDS=0)


def book(slot, *, channel=Appointment.Channel.CLINIC_AGENDA):
    return appointment_book(slot_id=slot.pk, citizen=CitizenFactory(), reason="follow_up", channel=channel)


def follow(fhir, cursor, *, count=100):
    """Every entry after ``cursor``, following next links until a page that is not full."""
    entries = []
    while True:
        response = fhir.get(f"{FHIR}$feed", {"cursor": cursor, "_count": count})
        assert response.status_code == 200, response.json()
        body = response.json()
        entries += body.get("entry", [])
        next_url = next(link["url"] for link in body["link"] if link["relation"] == "next")
        cursor = int(next_url.split("cursor=")[1].split("&")[0])
        if len(body.get("entry", [])) < count:
            return entries, cursor


def seq_of(entry):
    (event,) = entry["extension"]
    return int(next(e["valueString"] for e in event["extension"] if e["url"] == "seq"))


def appointment_ids(entries):
    return [
        int(e["resource"]["id"])
        for e in entries
        if e.get("resource", {}).get("resourceType") == "Appointment"
    ]


@NO_BUDGET
def test_an_event_enters_the_feed_only_once_the_relay_has_numbered_it(fhir_a, persona_a):
    head = fhir_a.get(f"{FHIR}$feed").json()
    assert head["type"] == "history"
    assert head["entry"] == []
    cursor = int(head["meta"]["extension"][0]["valueString"])
    appointment = book(SlotFactory(role=persona_a.role))
    assert OutboxEvent.objects.get(appointment=appointment).feed_seq is None
    assert follow(fhir_a, cursor)[0] == []

    assert feed_relay_task() == 1

    entries, _ = follow(fhir_a, cursor)
    (entry,) = entries
    assert entry["resource"]["resourceType"] == "Appointment"
    assert entry["resource"]["id"] == str(appointment.pk)
    assert entry["request"] == {"method": "POST", "url": "Appointment"}
    assert entry["response"]["status"] == "201"
    assert entry["response"]["etag"] == 'W/"1"'
    assert entry["fullUrl"].endswith(f"/fhir/r4/Appointment/{appointment.pk}")


@NO_BUDGET
def test_a_client_sees_its_clinics_events_and_not_another_clinics(fhir_a, persona_a, persona_b):
    mine = book(SlotFactory(role=persona_a.role))
    book(SlotFactory(role=persona_b.role))
    feed.feed_relay()
    entries, _ = follow(fhir_a, 0)
    assert appointment_ids(entries) == [mine.pk]


@NO_BUDGET
def test_changes_the_emr_made_itself_are_not_sent_back(fhir_a, persona_a):
    by_emr = book(SlotFactory(role=persona_a.role), channel=Appointment.Channel.EMR)
    by_desk = book(SlotFactory(role=persona_a.role))
    appointment_cancel(appointment=by_emr, reason="other", by_clinic=True, channel=Appointment.Channel.EMR)
    appointment_cancel(appointment=by_desk, reason="other", by_clinic=True, channel="agenda")
    feed.feed_relay()
    entries, _ = follow(fhir_a, 0)
    assert appointment_ids(entries) == [by_desk.pk, by_desk.pk]
    assert [e["request"]["method"] for e in entries] == ["POST", "PUT"]
    assert entries[1]["resource"]["status"] == "cancelled"


@NO_BUDGET
def test_slot_events_come_with_the_slot_scope_and_a_withdrawn_slot_has_no_resource(client, persona_a):
    slot = SlotFactory(role=persona_a.role)
    slot_withdraw(slot_id=slot.pk, channel="web")
    book(SlotFactory(role=persona_a.role))
    feed.feed_relay()
    both = get_token(client, persona_a)
    entries = client.get(f"{FHIR}$feed", {"cursor": 0}, HTTP_AUTHORIZATION=f"Bearer {both}").json()["entry"]
    assert [e["request"]["method"] for e in entries] == ["DELETE", "POST"]
    assert entries[0]["request"]["url"] == f"Slot/{slot.pk}"
    assert "resource" not in entries[0]
    only_appointments = get_token(client, persona_a, scope="system/Appointment.read")
    entries = client.get(
        f"{FHIR}$feed", {"cursor": 0}, HTTP_AUTHORIZATION=f"Bearer {only_appointments}"
    ).json()["entry"]
    assert [e["request"]["url"] for e in entries] == ["Appointment"]


def test_the_feed_needs_the_appointment_read_scope(client, persona_a):
    token = get_token(client, persona_a, scope="system/Slot.read")
    response = client.get(f"{FHIR}$feed", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403
    assert client.get(f"{FHIR}$feed").status_code == 401


@NO_BUDGET
def test_paging_by_cursor_returns_every_event_exactly_once(fhir_a, persona_a):
    booked = [book(SlotFactory(role=persona_a.role)).pk for _ in range(7)]
    feed.feed_relay()
    entries, cursor = follow(fhir_a, 0, count=3)
    assert appointment_ids(entries) == booked
    seqs = [seq_of(e) for e in entries]
    assert seqs == sorted(set(seqs))
    more = book(SlotFactory(role=persona_a.role))
    feed.feed_relay()
    entries, _ = follow(fhir_a, cursor, count=3)
    assert appointment_ids(entries) == [more.pk]


@NO_BUDGET
def test_history_since_an_instant_lists_the_appointments_changed_since_and_continues_by_cursor(
    fhir_a, persona_a
):
    book(SlotFactory(role=persona_a.role))
    since = timezone.now()
    later = book(SlotFactory(role=persona_a.role))
    feed.feed_relay()
    response = fhir_a.get(f"{FHIR}Appointment/_history", {"_since": since.isoformat(), "_count": 10})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["type"] == "history"
    assert appointment_ids(body["entry"]) == [later.pk]
    next_url = next(link["url"] for link in body["link"] if link["relation"] == "next")
    assert "Appointment/_history?cursor=" in next_url
    assert fhir_a.get(f"{FHIR}Appointment/_history", {"_since": "yesterday"}).status_code == 400
    assert fhir_a.get(f"{FHIR}Appointment/_history", {"patient": "1"}).status_code == 400


@NO_BUDGET
def test_every_appointment_sent_by_the_feed_is_audited(fhir_a, persona_a):
    appointment = book(SlotFactory(role=persona_a.role))
    feed.feed_relay()
    follow(fhir_a, 0)
    audit = AuditEvent.objects.get(action="feed")
    assert (audit.resource_type, audit.resource_id) == ("Appointment", appointment.pk)


@NO_BUDGET
def test_a_cursor_older_than_the_retention_gets_410_and_the_resync(fhir_a, persona_a):
    for _ in range(3):
        book(SlotFactory(role=persona_a.role))
    feed.feed_relay()
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(days=31), notify_state="sent")
    recent = book(SlotFactory(role=persona_a.role))
    feed.feed_relay()
    assert feed_prune_task() == 3

    response = fhir_a.get(f"{FHIR}$feed", {"cursor": 0})
    assert response.status_code == 410
    issue = response.json()["issue"][0]
    assert issue["code"] == "expired"
    assert "resync" in issue["diagnostics"].lower()
    head = int(fhir_a.get(f"{FHIR}$feed").json()["meta"]["extension"][0]["valueString"])
    assert fhir_a.get(f"{FHIR}$feed", {"cursor": head}).status_code == 200
    assert appointment_ids(follow(fhir_a, head - 1)[0]) == [recent.pk]
    assert fhir_a.get(f"{FHIR}$feed", {"cursor": head + 5}).status_code == 400


def test_pruning_keeps_the_newest_event_so_that_numbers_never_restart(persona_a):
    book(SlotFactory(role=persona_a.role))
    book(SlotFactory(role=persona_a.role))
    feed.feed_relay()
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(days=60), notify_state="sent")
    assert feed.feed_prune() == 1
    assert feed.feed_head() == 2
    book(SlotFactory(role=persona_a.role))
    feed.feed_relay()
    assert feed.feed_head() == 3


@override_settings(SYNC_FEED_MIN_INTERVAL_SECONDS=1)
def test_polling_faster_than_the_budget_gets_429_with_retry_after_then_ok(fhir_a, persona_a):
    assert fhir_a.get(f"{FHIR}$feed").status_code == 200
    response = fhir_a.get(f"{FHIR}$feed", {"cursor": 0})
    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    assert response.json()["issue"][0]["code"] == "throttled"
    assert fhir_a.get(f"{FHIR}Appointment/_history").status_code == 429
    time.sleep(1.1)
    assert fhir_a.get(f"{FHIR}$feed", {"cursor": 0}).status_code == 200


@override_settings(SYNC_FEED_MIN_INTERVAL_SECONDS=60)
def test_a_full_page_lets_the_client_fetch_the_next_one_at_once(fhir_a, persona_a):
    for _ in range(3):
        book(SlotFactory(role=persona_a.role))
    feed.feed_relay()
    first = fhir_a.get(f"{FHIR}$feed", {"cursor": 0, "_count": 2})
    assert len(first.json()["entry"]) == 2
    second = fhir_a.get(f"{FHIR}$feed", {"cursor": seq_of(first.json()["entry"][-1]), "_count": 2})
    assert second.status_code == 200
    assert len(second.json()["entry"]) == 1
    assert fhir_a.get(f"{FHIR}$feed", {"cursor": 3, "_count": 2}).status_code == 429


def test_bad_feed_parameters_are_400(fhir_a):
    assert fhir_a.get(f"{FHIR}$feed", {"cursor": "abc"}).status_code == 400
    assert fhir_a.get(f"{FHIR}$feed", {"_count": "0"}).status_code == 400
    assert fhir_a.get(f"{FHIR}$feed", {"since": "x"}).status_code == 400


def test_the_capability_statement_lists_the_feed_and_its_budget(client, db):
    statement = client.get(f"{FHIR}metadata").json()
    (rest,) = statement["rest"]
    appointment = next(r for r in rest["resource"] if r["type"] == "Appointment")
    assert "history-type" in [i["code"] for i in appointment["interaction"]]
    assert [op["name"] for op in rest["operation"]] == ["feed", "snapshot"]
    assert rest["extension"][0]["valueInteger"] == 10
    assert "one feed poll per 10 s" in rest["documentation"]
