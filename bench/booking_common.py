# ruff: noqa: E501 - long SQL and report strings read better unbroken
"""Shared by the booking benchmarks (issue 7): settings, staging of slots and citizens, exact reset.

Every booking scenario works on a *pool*: slots that are free, public, bookable online (a few days
ahead, so no clinic's minimum notice refuses them) and citizens with no appointment at all (so that
neither the anti-hoarding limit nor the patient-overlap rule refuses them: the guards stay on, the
benchmark simply does not trip them). Before a scenario changes anything, ``stage`` records the pool
slots' columns in ``bench_booking_restore`` and the highest appointment, outbox and reminder ids in
``bench_booking_meta``; ``restore`` puts those slots back exactly as they were (status, version,
hold columns, updated_at) and deletes the appointments, outbox events and reminders created on them
since. A run that crashed half-way is restored by the next one (``stage`` restores first), so
``make bench`` can run again and again on the same database and start from the same state.

Usage as a command (bench/booking_pgbench.sh uses it):
    booking_common.py restore
    booking_common.py stage-pgbench --pool 150000
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("BENCH_RESULTS", ROOT / "bench" / "results"))
sys.path.insert(0, str(ROOT))

BENCH_DB = os.environ.get("BENCH_DB", "rdv_bench")
# Production settings, as gunicorn gets them (config/settings.py reads all of these). The secret is
# the benchmark's own: tokens minted here must verify in the gunicorn workers.
BENCH_ENV = {
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
    "DJANGO_DEBUG": "false",
    "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789abcdefghijkl",
    "EMAIL_URL": "dummymail://",
    "SITE_URL": "http://127.0.0.1:8088",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "false",
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/1"),
    "CACHE_KEY_PREFIX": "rdvbench",
    # Rate limits stay ON (RATE_LIMIT_ENABLED=true: every booking still counts in Redis). Each bench
    # citizen books once, but in a release race one citizen may meet several 409s within a minute,
    # more than the default 10 booking attempts a minute a citizen is allowed: the per-citizen book
    # limit is raised so the race measures the booking, not the limiter. The per-address identify
    # limits are raised too, for runs that identify through the API (the default mints tokens).
    "RATE_LIMIT_ENABLED": "true",
    "RATE_LIMIT_BOOK": os.environ.get("BENCH_RATE_LIMIT_BOOK", "1000/60"),
    "RATE_LIMIT_HOLD": os.environ.get("BENCH_RATE_LIMIT_HOLD", "1000/60"),
    "RATE_LIMIT_IDENTIFY_IP": os.environ.get("BENCH_RATE_LIMIT_IDENTIFY_IP", "100000/600"),
    # The load scenario (bench/load_locust.py) has each citizen search, hold, book and cancel about
    # once a second, where a real citizen would pause for minutes: the per-citizen limits are raised
    # so that the load measures the service; the limiter still counts every request in Redis.
    "RATE_LIMIT_SEARCH": os.environ.get("BENCH_RATE_LIMIT_SEARCH", "1000/60"),
    "RATE_LIMIT_CANCEL": os.environ.get("BENCH_RATE_LIMIT_CANCEL", "1000/60"),
    # The whole load comes from one address (loopback): the per-address limits are out of the way.
    "RATE_LIMIT_SEARCH_IP": os.environ.get("BENCH_RATE_LIMIT_SEARCH_IP", "10000000/60"),
    "RATE_LIMIT_HOLD_IP": os.environ.get("BENCH_RATE_LIMIT_HOLD_IP", "10000000/60"),
    "RATE_LIMIT_BOOK_IP": os.environ.get("BENCH_RATE_LIMIT_BOOK_IP", "10000000/60"),
}

OCCUPYING = ("booked", "arrived", "fulfilled", "noshow")


def django_setup() -> None:
    for key, value in BENCH_ENV.items():
        os.environ[key] = value
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


@dataclass(frozen=True)
class PoolSlot:
    id: int
    reason: str
    start: datetime


def _cursor():  # noqa: ANN202
    from django.db import connection

    return connection.cursor()


def restore() -> dict[str, int]:
    """Put the pool back exactly as ``stage`` found it; a no-op when nothing is staged."""
    from django.db import transaction

    with transaction.atomic(), _cursor() as cur:
        cur.execute("SELECT to_regclass('bench_booking_meta') IS NOT NULL")
        if not cur.fetchone()[0]:
            return {}
        cur.execute("SELECT appt_max, outbox_max, reminder_max FROM bench_booking_meta")
        appt_max, outbox_max, reminder_max = cur.fetchone()
        cur.execute(
            "CREATE TEMP TABLE bench_new_appt ON COMMIT DROP AS SELECT a.id FROM booking_appointment a "
            "JOIN bench_booking_restore r ON r.slot_id = a.slot_id WHERE a.id > %s",
            [appt_max],
        )
        cur.execute(
            "DELETE FROM booking_reminder WHERE id > %s AND appointment_id IN (SELECT id FROM bench_new_appt)",
            [reminder_max],
        )
        reminders = cur.rowcount
        cur.execute(
            "DELETE FROM booking_outboxevent WHERE id > %s AND (appointment_id IN (SELECT id FROM bench_new_appt)"
            " OR slot_id IN (SELECT slot_id FROM bench_booking_restore))",
            [outbox_max],
        )
        outbox = cur.rowcount
        cur.execute("DELETE FROM booking_appointment WHERE id IN (SELECT id FROM bench_new_appt)")
        appointments = cur.rowcount
        cur.execute(
            "UPDATE booking_slot s SET status = r.status, version = r.version, updated_at = r.updated_at, "
            "holder_id = r.holder_id, hold_expires = r.hold_expires, hold_token = r.hold_token "
            "FROM bench_booking_restore r WHERE s.id = r.slot_id AND (s.status, s.version, s.updated_at, "
            "s.holder_id, s.hold_expires, s.hold_token) IS DISTINCT FROM (r.status, r.version, r.updated_at, "
            "r.holder_id, r.hold_expires, r.hold_token)"
        )
        slots = cur.rowcount
        cur.execute("DROP TABLE bench_booking_restore, bench_booking_meta")
        cur.execute("DROP TABLE IF EXISTS bench_pgbench_pairs")
        cur.execute("DROP SEQUENCE IF EXISTS bench_pgbench_seq")
    _purge_celery_queue()
    return {"slots": slots, "appointments": appointments, "outbox": outbox, "reminders": reminders}


def _purge_celery_queue() -> None:
    # No Celery worker runs during the benchmark: each booking's notification task waits in the
    # benchmark's own Redis database; its events are deleted above, so the tasks go too.
    try:
        import redis

        redis.Redis.from_url(BENCH_ENV["REDIS_URL"]).delete("celery")
    except Exception:  # noqa: BLE001, S110 - Redis down: nothing queued there either
        pass


def stage(
    *, slots: int, citizens: int, min_days: int = 3, max_days: int = 50
) -> tuple[list[PoolSlot], list[int]]:
    """Pick ``slots`` free public slots and ``citizens`` citizens without appointments; record the
    slots for ``restore``. Deterministic for a given database and day: slots in md5(id) order (spread
    over the province, not one clinic's agenda), citizens by id."""
    from django.db import transaction

    from booking.models import mask_to_reasons

    restore()
    with transaction.atomic(), _cursor() as cur:
        cur.execute(
            "CREATE TABLE bench_booking_meta AS SELECT "
            "(SELECT coalesce(max(id), 0) FROM booking_appointment) AS appt_max, "
            "(SELECT coalesce(max(id), 0) FROM booking_outboxevent) AS outbox_max, "
            "(SELECT coalesce(max(id), 0) FROM booking_reminder) AS reminder_max, now() AS staged_at"
        )
        cur.execute(
            """
            CREATE TABLE bench_booking_restore AS
            SELECT s.id AS slot_id, s.status, s.version, s.updated_at, s.holder_id, s.hold_expires,
                   s.hold_token, s.reasons, s.start
            FROM booking_slot s JOIN clinics_clinic c ON c.id = s.clinic_id
            WHERE s.status = 'free' AND s.audience = 'public' AND c.is_active
              AND (s.hold_expires IS NULL OR s.hold_expires < now())
              AND s.start > now() + make_interval(days => %s) + c.min_notice
              AND s.start < now() + make_interval(days => %s)
            ORDER BY md5(s.id::text) LIMIT %s
            """,
            [min_days, max_days, slots],
        )
        cur.execute("ALTER TABLE bench_booking_restore ADD PRIMARY KEY (slot_id)")
        cur.execute("SELECT slot_id, reasons, start FROM bench_booking_restore ORDER BY md5(slot_id::text)")
        pool = [PoolSlot(id=r[0], reason=mask_to_reasons(r[1])[0], start=r[2]) for r in cur.fetchall()]
        cur.execute(
            "SELECT c.id FROM citizens_citizen c WHERE NOT EXISTS "
            "(SELECT 1 FROM booking_appointment a WHERE a.citizen_id = c.id) "
            "AND NOT EXISTS (SELECT 1 FROM booking_slot s WHERE s.holder_id = c.id) ORDER BY c.id LIMIT %s",
            [citizens],
        )
        people = [r[0] for r in cur.fetchall()]
    if len(pool) < slots or len(people) < citizens:
        raise SystemExit(f"pool too small: {len(pool)}/{slots} slots, {len(people)}/{citizens} citizens")
    return pool, people


def double_bookings() -> int:
    """Slots with more than one occupying appointment, in the whole database (must be 0)."""
    with _cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM (SELECT slot_id FROM booking_appointment WHERE status = ANY(%s) "
            "GROUP BY slot_id HAVING count(*) > 1) d",
            [list(OCCUPYING)],
        )
        return int(cur.fetchone()[0])


def pool_consistency() -> dict[str, int]:
    """Pool slots booked vs occupying appointments on them (each booked slot must have exactly one)."""
    with _cursor() as cur:
        cur.execute(
            "SELECT count(*) FILTER (WHERE s.status = 'booked'), "
            "(SELECT count(*) FROM booking_appointment a JOIN bench_booking_restore r ON r.slot_id = a.slot_id "
            " WHERE a.status = ANY(%s) AND a.id > (SELECT appt_max FROM bench_booking_meta)), "
            "(SELECT count(*) FROM booking_outboxevent o JOIN bench_booking_restore r ON r.slot_id = o.slot_id "
            " WHERE o.kind = 'appointment.booked' AND o.id > (SELECT outbox_max FROM bench_booking_meta)) "
            "FROM booking_slot s JOIN bench_booking_restore r ON r.slot_id = s.id",
            [list(OCCUPYING)],
        )
        booked, appts, events = cur.fetchone()
    return {"slots_booked": booked, "appointments_created": appts, "outbox_booked_events": events}


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99 (nearest rank) and max, in milliseconds from seconds."""
    if not values:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        index = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
        return round(ordered[index] * 1000, 2)

    return {
        "n": len(ordered),
        "p50_ms": rank(50),
        "p95_ms": rank(95),
        "p99_ms": rank(99),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def machine() -> dict[str, object]:
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pg = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atqc", "SHOW server_version"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "postgresql": pg,
        "python": platform.python_version(),
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def write_json(name: str, data: dict[str, object]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def stage_pgbench(pool: int) -> dict[str, int]:
    """The pgbench pool: ``pool`` (slot, citizen) pairs handed out in order by a sequence, so that
    every transaction books a different free slot (no contention, like the sustained HTTP run).

    Raw SQL has no anti-hoarding limit, so a citizen gets several slots; the slots of one citizen
    are ``len(citizens)`` positions apart in start order, hours apart, so the patient-overlap
    exclusion constraint (which the inserts do meet) never refuses one."""
    slots, people = stage(slots=pool, citizens=min(pool, 30000))
    by_start = sorted(slots, key=lambda s: (s.start, s.id))
    with _cursor() as cur:
        cur.execute(
            "CREATE TABLE bench_pgbench_pairs (n bigint PRIMARY KEY, slot_id bigint, citizen_id bigint, "
            'clinic_id bigint, start timestamptz, "end" timestamptz, reason varchar(20))'
        )
        rows = [(i + 1, s.id, people[i % len(people)], s.reason) for i, s in enumerate(by_start)]
        cur.execute(
            "CREATE TEMP TABLE bench_pairs_in (n bigint, slot_id bigint, citizen_id bigint, reason text)"
        )
        with cur.copy("COPY bench_pairs_in FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(
            'INSERT INTO bench_pgbench_pairs SELECT p.n, p.slot_id, p.citizen_id, s.clinic_id, s.start, s."end", '
            "p.reason FROM bench_pairs_in p JOIN booking_slot s ON s.id = p.slot_id"
        )
        cur.execute("DROP TABLE bench_pairs_in")
        cur.execute("DROP SEQUENCE IF EXISTS bench_pgbench_seq")
        cur.execute("CREATE SEQUENCE bench_pgbench_seq")
        cur.execute("ANALYZE bench_pgbench_pairs")
    return {"pairs": len(rows), "citizens": len(people)}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("restore")
    p = sub.add_parser("stage-pgbench")
    p.add_argument("--pool", type=int, default=150000)
    sub.add_parser("check")
    args = parser.parse_args()
    django_setup()
    started = time.monotonic()
    if args.cmd == "restore":
        print(json.dumps({"restored": restore(), "seconds": round(time.monotonic() - started, 2)}))
    elif args.cmd == "stage-pgbench":
        print(json.dumps(stage_pgbench(args.pool)))
    elif args.cmd == "check":
        print(json.dumps({**pool_consistency(), "double_bookings": double_bookings()}))


if __name__ == "__main__":
    main()
