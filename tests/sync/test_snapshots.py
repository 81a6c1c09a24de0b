"""Agenda snapshots: POST Schedule/{id}/$snapshot, reconciliation, conflicts, the 202 path."""

import itertools
import json
from datetime import UTC, date, timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booking.models import OCCUPYING_STATUSES, Appointment, OutboxEvent, Reason, Slot
from booking.services import appointment_book
from sync import snapshots, tasks
from sync.models import AgendaSnapshot, SyncConflict
from tests.factories import CitizenFactory, RoleFactory, SlotFactory

from .conftest import FHIR, get_token

REASONS = "https://rdv-sante.quebec/fhir/CodeSystem/reason"
_citizens = itertools.count()


@pytest.fixture(autouse=True)
def _generous_rate(settings):
    settings.SYNC_API_RATE = "100000/m"


def _z(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _base():
    return (timezone.now() + timedelta(days=3)).replace(hour=8, minute=0, second=0, microsecond=0)


def entry(persona, identifier, position, *, minutes=20, role=None, base=None, system=None):
    """A free Slot at ``base + position × 30 min``."""
    start = (base or _base()) + timedelta(minutes=30 * position)
    role = role or persona.role
    return {
        "resourceType": "Slot",
        "schedule": {"reference": f"Schedule/{role.pk}"},
        "status": "free",
        "start": _z(start),
        "end": _z(start + timedelta(minutes=minutes)),
        "serviceType": [{"coding": [{"system": REASONS, "code": "follow_up"}]}],
        "identifier": [
            {
                "system": system or f"https://rdv-sante.quebec/fhir/sid/clinic/{persona.clinic.pk}/slot",
                "value": identifier,
            }
        ],
    }


def snapshot_body(generation, slots, *, base=None, hours=10):
    start = base or _base()
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "start", "valueInstant": _z(start)},
            {"name": "end", "valueInstant": _z(start + timedelta(hours=hours))},
            {"name": "generation", "valueInteger": generation},
            *({"name": "slot", "resource": slot} for slot in slots),
        ],
    }


def post(client, role, body, **headers):
    return client.post(
        f"{FHIR}Schedule/{role.pk}/$snapshot",
        json.dumps(body),
        content_type="application/fhir+json",
        **headers,
    )


def counts(response):
    return {
        p["name"]: p["valueInteger"]
        for p in response.json()["parameter"]
        if "valueInteger" in p and p["name"] != "slots"
    }


def param(response, name):
    return next(
        p.get("valueCode", p.get("valueString")) for p in response.json()["parameter"] if p["name"] == name
    )


def diagnostics(response):
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]["diagnostics"]


def emr_slots(role):
    return {
        s.external_id: (s.start, s.status, s.version)
        for s in Slot.objects.filter(role=role).exclude(status=Slot.Status.CANCELLED)
    }


def book(slot):
    n = next(_citizens)
    citizen = CitizenFactory(
        first_name=f"Julie{chr(65 + n % 26)}", birth_date=date(1960, 1, 1) + timedelta(n)
    )
    return appointment_book(slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal")


def test_a_snapshot_creates_updates_withdraws_and_leaves_the_rest(fhir_a, persona_a):
    role = persona_a.role
    response = post(fhir_a, role, snapshot_body(1, [entry(persona_a, f"E{i}", i) for i in range(4)]))
    assert response.status_code == 200, response.json()
    assert counts(response)["created"] == 4
    assert param(response, "status") == "done"
    assert response["Content-Location"].endswith(
        f"{FHIR}Schedule/{role.pk}/$snapshot-status/{param(response, 'snapshot')}"
    )
    # E0 unchanged, E1 moved, E2 gone, E3 unchanged, E9 new.
    body = snapshot_body(
        2,
        [
            entry(persona_a, "E0", 0),
            entry(persona_a, "E1", 5),
            entry(persona_a, "E3", 3),
            entry(persona_a, "E9", 7),
        ],
    )
    response = post(fhir_a, role, body)
    assert response.status_code == 200, response.json()
    assert counts(response) == {
        "created": 1,
        "updated": 1,
        "withdrawn": 1,
        "unchanged": 2,
        "conflicts": 0,
        "kept": 0,
        "refused": 0,
    }
    slots = emr_slots(role)
    assert set(slots) == {"E0", "E1", "E3", "E9"}
    assert slots["E0"][2] == 1 and slots["E1"][2] == 2
    assert Slot.objects.get(external_id="E2").status == Slot.Status.CANCELLED
    snapshot = AgendaSnapshot.objects.get(role=role, generation=2)
    assert snapshot.status == "done" and snapshot.counts["withdrawn"] == 1


def test_web_agenda_slots_in_the_window_are_left_alone(fhir_a, persona_a):
    web = SlotFactory(
        role=persona_a.role, start=_base() + timedelta(hours=9), end=_base() + timedelta(hours=9, minutes=15)
    )
    response = post(fhir_a, persona_a.role, snapshot_body(1, [entry(persona_a, "E0", 0)]))
    assert response.status_code == 200
    web.refresh_from_db()
    assert (web.status, web.version) == ("free", 1)


def test_the_same_snapshot_twice_changes_nothing(fhir_a, persona_a):
    role = persona_a.role
    slots = [entry(persona_a, f"E{i}", i) for i in range(3)]
    assert post(fhir_a, role, snapshot_body(1, slots)).status_code == 200
    before = (emr_slots(role), OutboxEvent.objects.count())
    # A retry of the very same request: its first answer, nothing applied again.
    retry = post(fhir_a, role, snapshot_body(1, slots))
    assert retry.status_code == 200 and counts(retry)["created"] == 3
    # The same agenda under a new generation: applied, and nothing changes.
    again = post(fhir_a, role, snapshot_body(2, slots))
    assert again.status_code == 200 and counts(again)["unchanged"] == 3
    assert (emr_slots(role), OutboxEvent.objects.count()) == before
    # The reconciliation itself, run again on a done snapshot: nothing.
    snapshots.snapshot_reconcile(AgendaSnapshot.objects.get(role=role, generation=2).pk)
    assert (emr_slots(role), OutboxEvent.objects.count()) == before


def test_a_stale_generation_is_409_and_cannot_bring_a_withdrawn_slot_back(fhir_a, persona_a):
    role = persona_a.role
    assert (
        post(
            fhir_a, role, snapshot_body(5, [entry(persona_a, "E0", 0), entry(persona_a, "E1", 1)])
        ).status_code
        == 200
    )
    assert post(fhir_a, role, snapshot_body(7, [entry(persona_a, "E0", 0)])).status_code == 200
    late = post(fhir_a, role, snapshot_body(6, [entry(persona_a, "E0", 0), entry(persona_a, "E1", 1)]))
    assert late.status_code == 409
    assert late.json()["issue"][0]["code"] == "conflict"
    same = post(fhir_a, role, snapshot_body(7, [entry(persona_a, "E0", 2)]))  # same generation, other content
    assert same.status_code == 409
    assert set(emr_slots(role)) == {"E0"}


def test_a_booked_slot_removed_is_kept_with_a_conflict(fhir_a, persona_a):
    role = persona_a.role
    assert (
        post(
            fhir_a, role, snapshot_body(1, [entry(persona_a, "E0", 0), entry(persona_a, "E1", 1)])
        ).status_code
        == 200
    )
    appointment = book(Slot.objects.get(external_id="E0"))
    before = Appointment.objects.values().get(pk=appointment.pk)
    response = post(fhir_a, role, snapshot_body(2, [entry(persona_a, "E1", 1)]))
    assert response.status_code == 200
    assert counts(response)["conflicts"] == 1 and counts(response)["kept"] == 1
    slot = Slot.objects.get(external_id="E0")
    assert slot.status == Slot.Status.BOOKED
    assert Appointment.objects.values().get(pk=appointment.pk) == before
    conflict = SyncConflict.objects.get()
    assert (
        conflict.kind,
        conflict.slot_id,
        conflict.appointment_id,
        conflict.clinic_id,
        conflict.status,
    ) == (
        "booked_slot_removed",
        slot.pk,
        appointment.pk,
        persona_a.clinic.pk,
        "open",
    )
    assert set(conflict.detail) <= {
        "slot_id",
        "identifier",
        "appointment_id",
        "generation",
        "store",
        "snapshot",
    }
    # Sent again (new generation): still one open conflict, nothing else.
    assert counts(post(fhir_a, role, snapshot_body(3, [entry(persona_a, "E1", 1)])))["conflicts"] == 0
    assert SyncConflict.objects.count() == 1


def test_a_booked_slot_moved_is_kept_with_a_conflict(fhir_a, persona_a):
    role = persona_a.role
    assert post(fhir_a, role, snapshot_body(1, [entry(persona_a, "E0", 0)])).status_code == 200
    slot = Slot.objects.get(external_id="E0")
    book(slot)
    version = Slot.objects.get(pk=slot.pk).version
    response = post(fhir_a, role, snapshot_body(2, [entry(persona_a, "E0", 4)]))
    assert response.status_code == 200
    assert counts(response)["conflicts"] == 1
    slot.refresh_from_db()
    assert (slot.start, slot.status, slot.version) == (_base(), "booked", version)
    conflict = SyncConflict.objects.get()
    assert conflict.kind == "booked_slot_changed"
    assert conflict.detail["snapshot"]["start"] == (_base() + timedelta(hours=2)).isoformat()


def test_a_new_slot_over_a_kept_booking_is_refused_and_the_rest_applied(fhir_a, persona_a):
    role = persona_a.role
    assert post(fhir_a, role, snapshot_body(1, [entry(persona_a, "E0", 0)])).status_code == 200
    book(Slot.objects.get(external_id="E0"))
    response = post(fhir_a, role, snapshot_body(2, [entry(persona_a, "N0", 0), entry(persona_a, "N1", 1)]))
    assert response.status_code == 200
    assert counts(response)["refused"] == 1 and counts(response)["created"] == 1
    assert set(emr_slots(role)) == {"E0", "N1"}


def test_two_free_slots_swapping_places_are_both_moved(fhir_a, persona_a):
    role = persona_a.role
    body = [entry(persona_a, "A", 0, minutes=60), entry(persona_a, "B", 2, minutes=60)]
    assert post(fhir_a, role, snapshot_body(1, body)).status_code == 200
    # A moves onto B's old time, B moves later: B must move first.
    response = post(
        fhir_a,
        role,
        snapshot_body(2, [entry(persona_a, "A", 2, minutes=60), entry(persona_a, "B", 4, minutes=60)]),
    )
    assert counts(response)["updated"] == 2, response.json()


def _events_since(pk, role):
    """The slot events written after outbox event ``pk`` for ``role``: [(identifier, kind, version)]."""
    return sorted(
        (e.slot.external_id, e.kind, e.payload["version"])
        for e in OutboxEvent.objects.filter(pk__gt=pk, slot__role=role).select_related("slot")
    )


def _last_event():
    return OutboxEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param({"A": 0, "B": 2, "C": 6}, {"A": 2, "B": 0, "C": 6}, id="swap of two"),
        pytest.param({"A": 0, "B": 1, "C": 6}, {"A": 1, "B": 0, "C": 6}, id="swap of two, adjacent"),
        pytest.param(
            {"A": 0, "B": 2, "C": 4, "D": 6}, {"A": 2, "B": 4, "C": 0, "D": 6}, id="rotation of three"
        ),
        pytest.param(
            {"A": 0, "B": 2, "C": 4, "D": 6}, {"A": 1, "B": 3, "C": 0, "D": 6}, id="rotation, shifted times"
        ),
    ],
)
def test_free_slots_trading_times_all_move_once(fhir_a, persona_a, first, second):
    # Slots trading times form a cycle of moves that no order of single moves can make (the
    # practitioner's overlap constraint refuses the first one): all are moved, each with one
    # version bump and one outbox event; the unchanged one (D or C) is not touched.
    role = persona_a.role

    def agenda(positions):
        return [entry(persona_a, ident, pos, minutes=30) for ident, pos in positions.items()]

    assert post(fhir_a, role, snapshot_body(1, agenda(first))).status_code == 200
    mark = _last_event()
    response = post(fhir_a, role, snapshot_body(2, agenda(second)))
    assert response.status_code == 200, response.json()
    moved = {ident for ident in second if second[ident] != first[ident]}
    assert counts(response) == {
        "created": 0,
        "updated": len(moved),
        "withdrawn": 0,
        "unchanged": len(second) - len(moved),
        "conflicts": 0,
        "kept": 0,
        "refused": 0,
    }
    assert emr_slots(role) == {
        ident: (_base() + timedelta(minutes=30 * pos), "free", 2 if ident in moved else 1)
        for ident, pos in second.items()
    }
    assert _events_since(mark, role) == sorted((ident, "slot.updated", 2) for ident in moved)
    # The same agenda again: nothing.
    again = post(fhir_a, role, snapshot_body(3, agenda(second)))
    assert counts(again)["unchanged"] == len(second) and _events_since(mark, role) == sorted(
        (ident, "slot.updated", 2) for ident in moved
    )


def test_a_swap_with_a_booked_slot_keeps_the_booking_and_reports_the_free_one(fhir_a, persona_a):
    # A is booked, B free; the EMR swaps them. A keeps the citizen's time (conflict); B's new time
    # is A's, held by the kept booking: B is not left on offer at a time the EMR no longer gives
    # it, it is withdrawn and its entry refused (as for any move onto a kept booking's time).
    role = persona_a.role
    first = [entry(persona_a, "A", 0, minutes=30), entry(persona_a, "B", 2, minutes=30)]
    assert post(fhir_a, role, snapshot_body(1, first)).status_code == 200
    appointment = book(Slot.objects.get(role=role, external_id="A"))
    booked_version = Slot.objects.get(role=role, external_id="A").version
    mark = _last_event()
    swapped = [entry(persona_a, "A", 2, minutes=30), entry(persona_a, "B", 0, minutes=30)]
    response = post(fhir_a, role, snapshot_body(2, swapped))
    assert response.status_code == 200, response.json()
    assert counts(response) == {
        "created": 0,
        "updated": 0,
        "withdrawn": 1,
        "unchanged": 0,
        "conflicts": 1,
        "kept": 1,
        "refused": 1,
    }
    refusal = next(p for p in response.json()["parameter"] if p["name"] == "refusal")
    assert refusal["part"][0]["valueString"] == "B" and "kept booking" in refusal["part"][1]["valueString"]
    a = Slot.objects.get(role=role, external_id="A")
    assert (a.start, a.status, a.version) == (_base(), "booked", booked_version)
    assert Appointment.objects.get(pk=appointment.pk).status in OCCUPYING_STATUSES
    conflict = SyncConflict.objects.get()
    assert (conflict.slot_id, conflict.kind) == (a.pk, "booked_slot_changed")
    assert Slot.objects.get(role=role, external_id="B").status == Slot.Status.CANCELLED
    assert _events_since(mark, role) == [("B", "slot.withdrawn", 2)]


@pytest.mark.parametrize(
    ("slots", "status", "named"),
    [
        (
            lambda p: [entry(p, "E0", 0, minutes=40), entry(p, "E1", 1)],
            422,
            "slot[0] ('E0') and slot[1] ('E1') overlap",
        ),
        (lambda p: [entry(p, "E0", 0), entry(p, "E1", 30)], 422, "slot[1] ('E1'): the slot is outside"),
        (lambda p: [entry(p, "E0", -1)], 422, "slot[0] ('E0'): the slot is outside"),
        (
            lambda p: [entry(p, "E0", 0, system="https://elsewhere.example/slot")],
            422,
            "slot[0]: Slot.identifier",
        ),
        (
            lambda p: [entry(p, "E0", 0), entry(p, "E0", 1)],
            422,
            "slot[1] ('E0'): the identifier is also used",
        ),
        (lambda p: [{**entry(p, "E0", 0), "status": "bogus"}], 400, "slot[0] ('E0')"),
    ],
)
def test_invalid_snapshots_are_refused_whole_naming_the_entries(fhir_a, persona_a, slots, status, named):
    response = post(fhir_a, persona_a.role, snapshot_body(1, slots(persona_a)))
    assert response.status_code == status, response.json()
    assert named in diagnostics(response)
    assert not Slot.objects.exists() and not AgendaSnapshot.objects.exists()


def test_bad_snapshot_envelopes_are_400(fhir_a, persona_a):
    role = persona_a.role
    assert post(fhir_a, role, {"resourceType": "Bundle"}).status_code == 400
    body = snapshot_body(1, [])
    body["parameter"] = body["parameter"][:2]
    assert "generation" in diagnostics(post(fhir_a, role, body))
    body = snapshot_body(1, [])
    body["parameter"][2] = {"name": "generation", "valueInteger": 0}
    assert post(fhir_a, role, body).status_code == 400
    wrong_schedule = entry(persona_a, "E0", 0, role=RoleFactory(clinic=persona_a.clinic))
    assert post(fhir_a, role, snapshot_body(1, [wrong_schedule])).status_code == 422


def test_a_withdrawn_identifier_cannot_come_back(fhir_a, persona_a):
    role = persona_a.role
    post(fhir_a, role, snapshot_body(1, [entry(persona_a, "E0", 0)]))
    post(fhir_a, role, snapshot_body(2, []))
    response = post(fhir_a, role, snapshot_body(3, [entry(persona_a, "E0", 0)]))
    assert response.status_code == 422
    assert "withdrawn" in diagnostics(response)


def test_a_large_snapshot_answers_202_and_the_worker_reconciles_it(fhir_a, persona_a):
    role = persona_a.role
    count = snapshots.SYNC_LIMIT + 1
    base = _base()
    slots = [
        entry(persona_a, f"L{i}", 0, minutes=5, base=base + timedelta(minutes=5 * i)) for i in range(count)
    ]
    response = post(fhir_a, role, snapshot_body(1, slots, hours=24))
    assert response.status_code == 202, response.json()
    status_url = response["Content-Location"]
    snapshot = AgendaSnapshot.objects.get()
    assert status_url.endswith(f"{FHIR}Schedule/{role.pk}/$snapshot-status/{snapshot.pk}")
    assert not Slot.objects.exists()
    pending = fhir_a.get(status_url)
    assert pending.status_code == 202 and param(pending, "status") == "received"
    assert tasks.snapshot_reconcile.run(snapshot.pk) == "done"
    done = fhir_a.get(status_url)
    assert done.status_code == 200 and param(done, "status") == "done"
    assert counts(done)["created"] == count
    before = OutboxEvent.objects.count()
    assert tasks.snapshot_reconcile.run(snapshot.pk) == "done"  # a redelivered task: nothing
    assert OutboxEvent.objects.count() == before and Slot.objects.count() == count


def test_an_older_snapshot_reconciled_after_a_newer_one_is_not_applied(fhir_a, persona_a):
    role = persona_a.role
    base = _base()
    big = [entry(persona_a, f"L{i}", 0, minutes=5, base=base + timedelta(minutes=5 * i)) for i in range(201)]
    assert post(fhir_a, role, snapshot_body(1, big, hours=24)).status_code == 202
    assert post(fhir_a, role, snapshot_body(2, [entry(persona_a, "S0", 0)], hours=24)).status_code == 200
    old = AgendaSnapshot.objects.get(generation=1)
    assert tasks.snapshot_reconcile.run(old.pk) == "failed"
    assert set(emr_slots(role)) == {"S0"}


def test_another_clients_schedule_is_404(client, persona_a, persona_b, fhir_a):
    token_b = get_token(client, persona_b)
    response = post(
        client,
        persona_a.role,
        snapshot_body(1, [entry(persona_a, "E0", 0)]),
        HTTP_AUTHORIZATION=f"Bearer {token_b}",
    )
    assert response.status_code == 404
    ok = post(fhir_a, persona_a.role, snapshot_body(1, [entry(persona_a, "E0", 0)]))
    snapshot_id = param(ok, "snapshot")
    status = client.get(
        f"{FHIR}Schedule/{persona_a.role.pk}/$snapshot-status/{snapshot_id}",
        HTTP_AUTHORIZATION=f"Bearer {token_b}",
    )
    assert status.status_code == 404
    assert fhir_a.get(f"{FHIR}Schedule/{persona_a.role.pk}/$snapshot-status/999999").status_code == 404


def test_the_snapshot_needs_the_slot_write_scope(client, persona_a):
    token = get_token(client, persona_a, scope="system/Slot.read")
    response = post(client, persona_a.role, snapshot_body(1, []), HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403


# --- property: random sequences of snapshots, retries and portal bookings --------------------------

IDENTS = [f"P{i}" for i in range(6)]
_examples = itertools.count()

agendas = st.lists(
    st.tuples(st.sampled_from(IDENTS), st.integers(0, 7)),
    max_size=5,
    unique_by=(lambda t: t[0], lambda t: t[1]),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("snapshot"), agendas),
        # The last agenda with its slots trading times (swaps, rotations), as an EMR reorders a day.
        st.tuples(st.just("permute"), st.permutations(range(5))),
        st.tuples(st.just("retry"), st.none()),
        st.tuples(st.just("book"), st.integers(0, 10)),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_property_the_last_accepted_snapshot_wins_and_no_booking_is_dropped(fhir_a, persona_a, steps):
    role = RoleFactory(clinic=persona_a.clinic)  # a fresh schedule per example
    prefix = f"x{next(_examples)}-"
    base = _base()
    generation = 0
    last_body = None
    last_agenda: list[tuple[str, int]] | None = None
    last_refused: set[str] = set()
    booked: dict[int, int] = {}  # appointment id -> slot id
    for action, arg in steps:
        if action == "permute":
            if not last_agenda:
                continue
            order = [k for k in arg if k < len(last_agenda)]
            action, arg = (
                "snapshot",
                [(ident, last_agenda[k][1]) for (ident, _pos), k in zip(last_agenda, order, strict=True)],
            )
        if action == "snapshot":
            generation += 1
            slots = [entry(persona_a, prefix + ident, pos, role=role, base=base) for ident, pos in arg]
            body = snapshot_body(generation, slots, base=base)
            before = {s.external_id: (s.start, s.status, s.version) for s in Slot.objects.filter(role=role)}
            mark = _last_event()
            response = post(fhir_a, role, body)
            if response.status_code == 422:
                assert "withdrawn" in diagnostics(response)
                continue
            assert response.status_code == 200, response.json()
            last_body, last_agenda = body, arg
            refusals = {
                part["part"][0]["valueString"]: part["part"][1]["valueString"]
                for part in response.json()["parameter"]
                if part["name"] == "refusal"
            }
            last_refused = set(refusals)
            # Each change exactly one event; a slot that did not change keeps its version.
            done = counts(response)
            events = list(
                OutboxEvent.objects.filter(pk__gt=mark, slot__role=role).values_list("slot_id", flat=True)
            )
            assert len(events) == len(set(events)) == done["created"] + done["updated"] + done["withdrawn"]
            for slot in Slot.objects.filter(role=role):
                if slot.external_id in before and slot.pk not in events:
                    assert (slot.start, slot.status, slot.version) == before[slot.external_id]
        elif action == "retry" and last_body is not None:
            assert post(fhir_a, role, last_body).status_code == 200
        elif action == "book":
            free = list(Slot.objects.filter(role=role, status=Slot.Status.FREE).order_by("start"))
            if free:
                slot = free[arg % len(free)]
                booked[book(slot).pk] = slot.pk
    # No booking was ever dropped: each appointment still occupies its slot, which is still booked.
    for appointment_id, slot_id in booked.items():
        appointment = Appointment.objects.get(pk=appointment_id)
        assert appointment.status in OCCUPYING_STATUSES and appointment.slot_id == slot_id
        assert Slot.objects.get(pk=slot_id).status == Slot.Status.BOOKED
    if last_agenda is None:
        return
    # The free EMR slots are the last accepted agenda minus the booked ones (and minus entries refused
    # because a kept booking holds their time).
    booked_idents = set(
        Slot.objects.filter(role=role, status=Slot.Status.BOOKED).values_list("external_id", flat=True)
    )
    expected = {
        (prefix + ident, base + timedelta(minutes=30 * pos))
        for ident, pos in last_agenda
        if prefix + ident not in booked_idents and prefix + ident not in last_refused
    }
    free = set(Slot.objects.filter(role=role, status=Slot.Status.FREE).values_list("external_id", "start"))
    assert free == expected
    for ident in last_refused:  # only ever a kept booking's time; never on offer elsewhere
        assert not Slot.objects.filter(role=role, external_id=ident, status=Slot.Status.FREE).exists()
        assert any(
            Slot.objects.filter(
                role=role, status=Slot.Status.BOOKED, start=base + timedelta(minutes=30 * pos)
            ).exists()
            for i, pos in last_agenda
            if prefix + i == ident
        )


def test_the_capability_statement_lists_the_snapshot_operation(client, db):
    (rest,) = client.get(f"{FHIR}metadata").json()["rest"]
    operation = next(op for op in rest["operation"] if op["name"] == "snapshot")
    assert "$snapshot-status" in operation["documentation"]
    assert "$snapshot" in rest["documentation"]


def test_a_snapshot_that_never_finishes_is_failed_instead_of_coming_back_forever(fhir_a, persona_a, settings):
    """A worker killed on every attempt makes the broker deliver the message again and again (no
    retry count sees it): past SNAPSHOT_MAX_DELIVERIES starts the snapshot fails, nothing applied."""
    settings.SNAPSHOT_MAX_DELIVERIES = 3
    role = persona_a.role
    base = _base()
    big = [entry(persona_a, f"L{i}", 0, minutes=5, base=base + timedelta(minutes=5 * i)) for i in range(201)]
    assert post(fhir_a, role, snapshot_body(1, big, hours=24)).status_code == 202
    snapshot = AgendaSnapshot.objects.get()
    for _ in range(3):  # three starts that died before finishing: only the counter is left of them
        tasks._deliveries(snapshot.pk)
    assert tasks.snapshot_reconcile.run(snapshot.pk) == "failed"
    snapshot.refresh_from_db()
    assert snapshot.status == AgendaSnapshot.Status.FAILED and "smaller windows" in snapshot.error
    assert not Slot.objects.exists()
    # Below the limit, the same kind of snapshot is reconciled as usual.
    assert post(fhir_a, role, snapshot_body(2, big, hours=24)).status_code == 202
    second = AgendaSnapshot.objects.get(generation=2)
    assert tasks.snapshot_reconcile.run(second.pk) == "done"
    assert Slot.objects.count() == 201


def test_the_digest_is_the_one_of_earlier_versions(persona_a):
    """A retry sent across a deployment is still recognised: the digest is computed over the text
    stored for the worker, byte for byte the JSON of earlier versions' formula."""
    import hashlib

    base = _base()
    slots = [entry(persona_a, f"E{i}", i) for i in (3, 1, 2)]
    data = snapshots.snapshot_input(
        snapshot_body(1, slots, base=base), role=persona_a.role, clinic_ids=[persona_a.clinic.pk]
    )
    content = {
        "start": data.window_start.isoformat(),
        "end": data.window_end.isoformat(),
        "entries": sorted(
            ({k: v for k, v in e.items() if k != "index"} for e in data.entries),
            key=lambda e: e["identifier"],
        ),
    }
    assert data.digest == hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    assert json.loads(data.stored) == content["entries"]
