# ruff: noqa: E501 - long SQL and report strings read better unbroken
"""EMR synchronization at provincial size (issue 7, scenarios 4 and 5; issue 3's latency targets).

On the provincial bench database, a clinic of its own that uses an EMR (created here, removed at the
end, so every run starts from the same state), its EMR client with a real token, and:

1. **Reconciliation of a 10,000-slot snapshot, end to end** (target: under 2 s): ``POST
   Schedule/{id}/$snapshot`` through the Django stack (production settings; more than 200 slots go
   to the worker: 202), then a real Celery worker (prefork, production settings, Redis) applies it;
   timed from the POST until ``$snapshot-status`` says done. Three snapshots: the first (10,000 new
   slots), the same agenda again (nothing changes), and one with 10 % changed (500 moved, 250
   withdrawn, 250 new).
2. **Change feed and webhook latency**: with the worker and Celery beat running (the feed relay
   every second, as in production) and a webhook subscription to an HTTP endpoint on loopback, a
   citizen booking every 200 ms on the clinic's slots; for each booking, the time from its commit
   to the webhook POST that carries it (p50/p95/p99), and to its appearance in ``$feed``.
3. **Peak memory of a Celery worker** (VmHWM of each prefork child, MiB) over both.

Writes bench/results/sync.json. Usage (bench/run.sh runs it):
    .venv/bin/python bench/sync_bench.py [--slots 10000] [--bookings 50] [--out sync.json]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from booking_common import BENCH_ENV, ROOT, _cursor, django_setup, machine, percentiles, write_json  # noqa: E402
from booking_http import vm_hwm_mib  # noqa: E402

BENCH_ENV["SYNC_WEBHOOK_ALLOW_LOOPBACK"] = "true"
BENCH_ENV["SYNC_API_RATE"] = "1000000/m"
PRODUCT = ("Banc d'essai", "BenchEMR")
SLOT_MINUTES = 15
PER_DAY = 40  # 8:00 to 18:00, local time


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the bench clinic, its EMR client, and removing them ---------------------------------------


def cleanup() -> dict[str, int]:
    """Remove every clinic named like the bench's and all that hangs from it (a crashed run too)."""
    from django.db import transaction

    removed: dict[str, int] = {}
    with transaction.atomic(), _cursor() as cur:
        cur.execute("SELECT id FROM clinics_clinic WHERE name LIKE 'Banc d''essai EMR%%'")
        clinics = [r[0] for r in cur.fetchall()]
        if not clinics:
            return removed
        cur.execute(
            "SELECT c.id, c.application_id FROM sync_emrclient c JOIN sync_emrproduct p ON p.id = c.product_id "
            "WHERE p.vendor = %s AND p.name = %s",
            list(PRODUCT),
        )
        clients = cur.fetchall()
        client_ids = [c[0] for c in clients] or [0]
        app_ids = [c[1] for c in clients] or [0]
        steps = [
            ("webhooks", "DELETE FROM sync_webhooksubscription WHERE emr_client_id = ANY(%s)", [client_ids]),
            ("audit", "DELETE FROM sync_auditevent WHERE emr_client_id = ANY(%s)", [client_ids]),
            ("conflicts", "DELETE FROM sync_syncconflict WHERE clinic_id = ANY(%s)", [clinics]),
            (
                "snapshots",
                "DELETE FROM sync_agendasnapshot WHERE role_id IN (SELECT id FROM clinics_practitionerrole WHERE clinic_id = ANY(%s))",
                [clinics],
            ),
            (
                "reminders",
                "DELETE FROM booking_reminder WHERE appointment_id IN (SELECT id FROM booking_appointment WHERE clinic_id = ANY(%s))",
                [clinics],
            ),
            ("outbox", "DELETE FROM booking_outboxevent WHERE clinic_id = ANY(%s)", [clinics]),
            ("appointments", "DELETE FROM booking_appointment WHERE clinic_id = ANY(%s)", [clinics]),
            ("slots", "DELETE FROM booking_slot WHERE clinic_id = ANY(%s)", [clinics]),
            ("grants", "DELETE FROM sync_emrclinicgrant WHERE clinic_id = ANY(%s)", [clinics]),
            ("roles", "DELETE FROM clinics_practitionerrole WHERE clinic_id = ANY(%s)", [clinics]),
            (
                "practitioners",
                "DELETE FROM clinics_practitioner p WHERE p.ramq_number IN ('999999', '999998') AND NOT EXISTS (SELECT 1 FROM clinics_practitionerrole r WHERE r.practitioner_id = p.id)",
                [],
            ),
            ("clients", "DELETE FROM sync_emrclient WHERE id = ANY(%s)", [client_ids]),
            ("tokens", "DELETE FROM oauth2_provider_accesstoken WHERE application_id = ANY(%s)", [app_ids]),
            ("applications", "DELETE FROM oauth2_provider_application WHERE id = ANY(%s)", [app_ids]),
            ("clinics", "DELETE FROM clinics_clinic WHERE id = ANY(%s)", [clinics]),
        ]
        for name, sql, params in steps:
            cur.execute(sql, params)
            removed[name] = cur.rowcount
    return removed


def setup_clinic() -> tuple[object, object, str, str]:
    """A clinic using the bench EMR, one practitioner role, an EMR client for it: (clinic, role, id, secret)."""
    import io

    from django.core.management import call_command

    from clinics.models import Clinic, Practitioner, PractitionerRole

    model = Clinic.objects.filter(is_active=True, emr_product="").order_by("pk").first()
    clinic = Clinic.objects.get(pk=model.pk)
    clinic.pk = None
    clinic.name = "Banc d'essai EMR"
    clinic.emr_product = PRODUCT[1]
    clinic.save()
    practitioner_model = Practitioner.objects.order_by("pk").first()
    practitioner = Practitioner.objects.get(pk=practitioner_model.pk)
    practitioner.pk = None
    practitioner.ramq_number = "999999"
    practitioner.save()
    role = PractitionerRole.objects.create(practitioner=practitioner, clinic=clinic)
    out = io.StringIO()
    product = "|".join(PRODUCT)
    # Only certified product versions reach production clinics (docs/vendors.md).
    call_command(
        "sync_version_certify",
        "--product",
        product,
        "--product-version",
        "bench",
        "--note",
        "Benchmark.",
        stdout=out,
    )
    call_command(
        "sync_client_create",
        "--product",
        product,
        "--product-version",
        "bench",
        "--clinic",
        str(clinic.pk),
        stdout=out,
    )
    values = dict(line.split("=", 1) for line in out.getvalue().splitlines() if "=" in line)
    return clinic, role, values["client_id"], values["client_secret"]


def token(client, client_id: str, secret: str) -> str:
    import base64

    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    response = client.post(
        "/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=f"Basic {basic}"
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


# --- processes ----------------------------------------------------------------------------------


def start_celery(kind: str, workdir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **BENCH_ENV}
    args = [str(ROOT / ".venv" / "bin" / "celery"), "-A", "config"]
    if kind == "worker":
        args += ["worker", "--concurrency", "2", "--without-gossip", "--without-mingle", "-l", "info"]
    else:
        args += ["beat", "-s", str(workdir / "beat-schedule"), "-l", "info"]
    log = open(workdir / f"{kind}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(  # noqa: S603 - our own celery, fixed arguments
        args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_for_log(workdir: Path, kind: str, text: str, timeout: float = 120) -> None:
    """Wait until the process's log shows ``text`` (the worker's "ready.", beat's first relay)."""
    deadline = time.monotonic() + timeout
    path = workdir / f"{kind}.log"
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise SystemExit(f"celery {kind} not ready after {timeout} s: see {path}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def process_tree(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout  # noqa: S603,S607
    kids = [int(p) for p in out.split()]
    return [pid] + [q for k in kids for q in process_tree(k)]


# --- 1. reconciliation --------------------------------------------------------------------------


def agenda(clinic, role, count: int, first_day: datetime) -> list[dict[str, object]]:
    """``count`` 15-minute slots, 40 a day from 8:00 clinic time, identifiers S0..S(count-1)."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(clinic.time_zone)
    system = f"https://rdv-sante.quebec/fhir/sid/clinic/{clinic.pk}/slot"
    entries = []
    for i in range(count):
        day, n = divmod(i, PER_DAY)
        local = datetime.combine(first_day.date() + timedelta(days=day), datetime.min.time(), tz)
        start = local.replace(hour=8) + timedelta(minutes=SLOT_MINUTES * n)
        entries.append(
            {
                "resourceType": "Slot",
                "schedule": {"reference": f"Schedule/{role.pk}"},
                "status": "free",
                "start": _z(start),
                "end": _z(start + timedelta(minutes=SLOT_MINUTES)),
                "serviceType": [
                    {
                        "coding": [
                            {"system": "https://rdv-sante.quebec/fhir/CodeSystem/reason", "code": "follow_up"}
                        ]
                    }
                ],
                "identifier": [{"system": system, "value": f"S{i}"}],
            }
        )
    return entries


def snapshot_body(entries: list[dict[str, object]], start: datetime, end: datetime, generation: int) -> bytes:
    return json.dumps(
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "start", "valueInstant": _z(start)},
                {"name": "end", "valueInstant": _z(end)},
                {"name": "generation", "valueInteger": generation},
                *({"name": "slot", "resource": e} for e in entries),
            ],
        }
    ).encode()


def run_snapshot(client, role, body: bytes, label: str) -> dict[str, object]:
    from sync.models import AgendaSnapshot

    started = time.monotonic()
    response = client.post(
        f"/fhir/r4/Schedule/{role.pk}/$snapshot", body, content_type="application/fhir+json"
    )
    posted = time.monotonic() - started
    assert response.status_code in (200, 202), response.content[:500]
    snapshot_id = next(p["valueString"] for p in response.json()["parameter"] if p["name"] == "snapshot")
    status_url = f"/fhir/r4/Schedule/{role.pk}/$snapshot-status/{snapshot_id}"
    deadline = started + 300
    # The status alone: loading the row would decode its 10,000 entries at every poll (0.1 s each,
    # on the database and in this process), which delayed and slowed what it measured.
    while True:
        state = AgendaSnapshot.objects.filter(pk=snapshot_id).values_list("status", flat=True).get()
        if state in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    total = time.monotonic() - started
    snapshot = AgendaSnapshot.objects.get(pk=snapshot_id)
    status = client.get(status_url)
    assert status.status_code == 200 and snapshot.status == "done", (snapshot.status, snapshot.error)
    applied = (snapshot.finished_at - snapshot.received_at).total_seconds() if snapshot.finished_at else None
    result = {
        "snapshot": label,
        "http_status": response.status_code,
        "request_bytes": len(body),
        "post_seconds": round(posted, 3),
        "end_to_end_seconds": round(total, 3),
        "accepted_to_done_seconds": round(applied, 3) if applied is not None else None,
        "counts": {k: v for k, v in snapshot.counts.items() if k != "refusals"},
        "refused": len(snapshot.counts.get("refusals", [])),
    }
    print(json.dumps(result))
    return result


def changed_agenda(
    clinic, role, entries: list[dict[str, object]], first_day: datetime
) -> list[dict[str, object]]:
    """The same agenda with 10 % changed: 5 % moved into the evening (18:15 or 23:15), 2.5 %
    withdrawn, 2.5 % new (early mornings, where the agenda has nothing)."""
    n = len(entries)
    moved, withdrawn, new = n // 20, n // 40, n // 40
    changed = [dict(e) for e in entries]
    for k in range(moved):
        e = changed[k * 20]
        start = datetime.fromisoformat(str(e["start"]).replace("Z", "+00:00")) + timedelta(
            hours=10, minutes=15
        )
        e["start"], e["end"] = _z(start), _z(start + timedelta(minutes=SLOT_MINUTES))
    drop = {k * 40 + 7 for k in range(withdrawn)}
    changed = [e for i, e in enumerate(changed) if i not in drop]
    extra = agenda(clinic, role, new, first_day)
    for i, e in enumerate(extra):
        # Early mornings (5:00 to 7:45, 12 a day), where the agenda has nothing yet.
        day, n = divmod(i, 12)
        first = datetime.fromisoformat(
            str(agenda(clinic, role, 1, first_day)[0]["start"]).replace("Z", "+00:00")
        )
        start = first + timedelta(days=day, hours=-3, minutes=SLOT_MINUTES * n)
        e["start"], e["end"] = _z(start), _z(start + timedelta(minutes=SLOT_MINUTES))
        e["identifier"] = [{**e["identifier"][0], "value": f"N{i}"}]  # type: ignore[index]
    return changed + extra


def reconciliation(client, clinic, role, slots: int, first_day: datetime) -> list[dict[str, object]]:
    days = -(-slots // PER_DAY)
    window_start = first_day.replace(hour=0, minute=0, second=0, microsecond=0)
    window_end = window_start + timedelta(days=days + 2)
    entries = agenda(clinic, role, slots, first_day)
    results = [
        run_snapshot(
            client, role, snapshot_body(entries, window_start, window_end, 1), f"first: {slots} new slots"
        )
    ]
    results.append(
        run_snapshot(
            client, role, snapshot_body(entries, window_start, window_end, 2), "the same agenda again"
        )
    )
    changed = changed_agenda(clinic, role, entries, first_day)
    results.append(
        run_snapshot(
            client,
            role,
            snapshot_body(changed, window_start, window_end, 3),
            "10 % changed (5 % moved, 2.5 % withdrawn, 2.5 % new)",
        )
    )
    return results


# --- 1b. the raw-SQL baseline ---------------------------------------------------------------------

RAW_SQL_SLOTS = """
    INSERT INTO booking_slot (role_id, practitioner_id, clinic_id, start, "end", reasons, audience, modality,
        source, external_id, status, version, hold_token, created_at, updated_at)
    SELECT %s, %s, %s, u.start, u.finish, %s, 'public', 'in_person', 'emr', u.external_id, 'free', 1, '',
        now(), now()
    FROM unnest(%s::timestamptz[], %s::timestamptz[], %s::text[]) WITH ORDINALITY AS u(start, finish, external_id, n)
    ORDER BY u.n
    RETURNING id
"""
RAW_SQL_EVENTS = """
    INSERT INTO booking_outboxevent (created_at, kind, channel, payload, notify_state, clinic_id, slot_id)
    SELECT now(), 'slot.created', 'emr', '{"version": 1}'::jsonb, 'skipped', %s, u.id FROM unnest(%s::bigint[]) AS u(id)
"""


def raw_sql_baseline(clinic, role, slots: int, first_day: datetime, repeats: int = 3) -> dict[str, object]:
    """The writes of the first snapshot (its slot INSERTs, same columns and values, and one outbox
    event each), in one transaction of raw SQL on a connection of its own (psycopg, server-side
    binding, arrays sent in binary: no ORM, no Python per row), committed like the reconciliation's,
    then deleted. On a second practitioner of the bench clinic (the first one's agenda is the
    snapshots'), with identifiers of their own; the same times. The best of ``repeats``."""
    import psycopg

    from booking.models import reasons_to_mask
    from clinics.models import Practitioner, PractitionerRole

    practitioner = Practitioner.objects.get(pk=role.practitioner_id)
    practitioner.pk = None
    practitioner.ramq_number = "999998"
    practitioner.save()
    other = PractitionerRole.objects.create(practitioner=practitioner, clinic=clinic)
    entries = agenda(clinic, other, slots, first_day)
    starts = [datetime.fromisoformat(str(e["start"]).replace("Z", "+00:00")) for e in entries]
    ends = [datetime.fromisoformat(str(e["end"]).replace("Z", "+00:00")) for e in entries]
    identifiers = [f"R{i}" for i in range(slots)]
    mask = reasons_to_mask(["follow_up"])
    times = []
    dsn = BENCH_ENV["DATABASE_URL"].replace("postgres://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        for _ in range(repeats):
            started = time.perf_counter()
            with conn.transaction(), conn.cursor(binary=True) as cur:
                cur.execute(
                    RAW_SQL_SLOTS,
                    [other.pk, practitioner.pk, clinic.pk, mask, starts, ends, identifiers],
                    prepare=False,
                )
                ids = [r[0] for r in cur.fetchall()]
                cur.execute(RAW_SQL_EVENTS, [clinic.pk, ids])
            times.append(time.perf_counter() - started)
            with conn.transaction(), conn.cursor() as cur:  # as found (the cleanup would do it too)
                cur.execute("DELETE FROM booking_outboxevent WHERE slot_id = ANY(%s)", [ids])
                cur.execute("DELETE FROM booking_slot WHERE id = ANY(%s)", [ids])
            assert len(ids) == slots
    other.delete()
    practitioner.delete()
    result = {
        "slots": slots,
        "seconds": round(min(times), 3),
        "runs_seconds": [round(t, 3) for t in times],
        "note": "one transaction: INSERT … SELECT FROM unnest(arrays) RETURNING id for the slots (same columns"
        " and values as the first snapshot's, exclusion constraint and indexes on), then one INSERT for their"
        " outbox events; psycopg, binary arrays; committed then deleted; best of the runs",
    }
    print(json.dumps({"raw_sql": result}))
    return result


# --- 2. feed and webhook latency ----------------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    received: dict[int, float] = {}  # noqa: RUF012 - appointment id -> monotonic receive time
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802
        now = time.monotonic()
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            bundle = json.loads(body)
            for entry in bundle.get("entry", []):
                resource = entry.get("resource", {})
                if resource.get("resourceType") == "Appointment":
                    with self.lock:
                        self.received.setdefault(int(resource["id"]), now)
        except (ValueError, KeyError, TypeError):
            pass
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def feed_latency(client, clinic, role, emr_client_id: str, bookings: int) -> dict[str, object]:
    from booking.models import OutboxEvent, Slot
    from booking.services import appointment_book
    from citizens.models import Citizen
    from sync import webhooks
    from sync.models import EmrClient

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    emr = EmrClient.objects.get(application__client_id=emr_client_id)
    webhooks.subscription_create(
        emr_client=emr, endpoint=f"http://127.0.0.1:{server.server_port}/hook", criteria="Appointment"
    )
    slots = list(
        Slot.objects.filter(role=role, status=Slot.Status.FREE)
        .order_by("start")
        .values_list("pk", flat=True)[: bookings * 3 : 3]
    )
    people = list(
        Citizen.objects.filter(appointments__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)[:bookings]
    )
    committed: dict[int, float] = {}
    in_feed: dict[int, float] = {}
    done = threading.Event()

    def watch_feed() -> None:
        # Its own connection: every 20 ms, which of the committed bookings have their feed number.
        from django.db import connection

        while not done.is_set():
            for event in OutboxEvent.objects.filter(
                appointment_id__in=list(committed), kind="appointment.booked", feed_seq__isnull=False
            ).values("appointment_id"):
                in_feed.setdefault(event["appointment_id"], time.monotonic())
            time.sleep(0.02)
        connection.close()

    watcher = threading.Thread(target=watch_feed, daemon=True)
    watcher.start()
    for slot_id, citizen_id in zip(slots, people, strict=False):
        appointment = appointment_book(
            slot_id=slot_id, citizen=Citizen.objects.get(pk=citizen_id), reason="follow_up", channel="agenda"
        )
        committed[appointment.pk] = time.monotonic()
        time.sleep(0.2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        len(Receiver.received) < len(committed) or len(in_feed) < len(committed)
    ):
        time.sleep(0.05)
    done.set()
    watcher.join()
    server.shutdown()
    webhook = [Receiver.received[a] - t for a, t in committed.items() if a in Receiver.received]
    feed = [in_feed[a] - t for a, t in committed.items() if a in in_feed]
    return {
        "bookings": len(committed),
        "booking_to_feed": percentiles(feed),
        "booking_to_webhook": percentiles(webhook),
        "webhooks_missing": len(committed) - len(webhook),
        "note": "booking commit to its feed number (the relay runs every second from Celery beat; read every 20 ms here) and to the webhook POST received by an endpoint on loopback",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slots", type=int, default=int(os.environ.get("BENCH_SNAPSHOT_SLOTS", 10000)))
    parser.add_argument("--bookings", type=int, default=int(os.environ.get("BENCH_FEED_BOOKINGS", 50)))
    parser.add_argument("--out", default="sync.json")
    args = parser.parse_args()
    django_setup()
    from django.test import Client
    from django.utils import timezone

    print(json.dumps({"cleanup": cleanup()}))
    clinic, role, client_id, secret = setup_clinic()
    http = Client(SERVER_NAME="127.0.0.1")
    http.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token(http, client_id, secret)}"
    workdir = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    from booking_common import _purge_celery_queue

    _purge_celery_queue()
    # Worker and beat run throughout, as in production (the feed relay every second competes with
    # the reconciliation for the two cores, as it would).
    worker = start_celery("worker", workdir)
    beat = start_celery("beat", workdir)
    try:
        wait_for_log(workdir, "worker", " ready.")
        wait_for_log(workdir, "beat", "sync.tasks.feed_relay")
        first_day = timezone.now() + timedelta(days=2)
        raw = raw_sql_baseline(clinic, role, args.slots, first_day)
        results = reconciliation(http, clinic, role, args.slots, first_day)
        latency = feed_latency(http, clinic, role, client_id, args.bookings)
        memory = {"worker_processes": [vm_hwm_mib(p) for p in process_tree(worker.pid)]}
    finally:
        stop(beat)
        stop(worker)
        print(json.dumps({"cleanup": cleanup()}))
    with _cursor() as cur:  # the size the reconciliation's indexes and exclusion constraint work at
        cur.execute("SELECT current_database(), (SELECT count(*) FROM booking_slot)")
        name, slot_count = cur.fetchone()
    data = {
        "scenario": "sync",
        "machine": machine(),
        "database": {"name": name, "slots": slot_count},
        "snapshot_slots": args.slots,
        "reconciliation": results,
        "raw_sql_baseline": raw,
        # The first snapshot (10,000 new slots) against raw SQL doing its writes, same run, same database.
        "ratio_to_raw_sql": {
            "end_to_end": round(results[0]["end_to_end_seconds"] / raw["seconds"], 1),
            "reconcile_only": round(results[0]["accepted_to_done_seconds"] / raw["seconds"], 1),
        },
        "feed": latency,
        "celery_worker_peak_rss_mib": memory,
        "target_reconcile_seconds": 2.0,
    }
    print(json.dumps({k: v for k, v in data.items() if k != "machine"}, indent=2))
    print(f"written to {write_json(args.out, data)}")


if __name__ == "__main__":
    main()
