# ruff: noqa: E501 - report strings read better unbroken
"""Citizen journeys under a real load tool past saturation (issue 7, scenario 6): how the service degrades.

Locust (bench/locustfile.py) drives citizens through the API of a real gunicorn (production
settings, PostgreSQL, Redis, rate limits on): search near a place, hold one of the first results,
book it, cancel it. The number of citizens grows in stages (10, 25, 50, 100, 200 by default,
``BENCH_LOCUST_STAGE_SECONDS`` = 20 s each), past the point where the two cores are busy. Reported per
stage: requests/s, journeys booked/s, latency p50/p95/p99 per step, status codes (409s are the
expected answer when two citizens want the same time; 429s, 5xx and connection errors are not).

Before the run every free public slot 3 to 50 days ahead is recorded (searches ask from 4 days ahead)
and the database is put back exactly afterwards (bench/booking_common.py restore). Writes
bench/results/load.json. Usage (bench/run.sh runs it):
    .venv/bin/python bench/load_locust.py
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from booking_common import ROOT, _cursor, django_setup, machine, percentiles, restore, write_json  # noqa: E402
from booking_http import CpuMeter, children, start_gunicorn, stop_gunicorn, vm_hwm_mib  # noqa: E402


def stage_all(citizens: int) -> list[int]:
    """Record every free public slot 3–50 days ahead for ``restore``; citizens with no appointment."""
    from django.db import transaction

    restore()
    with transaction.atomic(), _cursor() as cur:
        cur.execute(
            "CREATE TABLE bench_booking_meta AS SELECT "
            "(SELECT coalesce(max(id), 0) FROM booking_appointment) AS appt_max, "
            "(SELECT coalesce(max(id), 0) FROM booking_outboxevent) AS outbox_max, "
            "(SELECT coalesce(max(id), 0) FROM booking_reminder) AS reminder_max, now() AS staged_at"
        )
        cur.execute(
            "CREATE TABLE bench_booking_restore AS SELECT s.id AS slot_id, s.status, s.version, s.updated_at, "
            "s.holder_id, s.hold_expires, s.hold_token, s.reasons, s.start FROM booking_slot s "
            "WHERE s.status = 'free' AND s.audience = 'public' "
            "AND s.start > now() + interval '3 days' AND s.start < now() + interval '50 days'"
        )
        cur.execute("ALTER TABLE bench_booking_restore ADD PRIMARY KEY (slot_id)")
        cur.execute(
            "SELECT c.id FROM citizens_citizen c WHERE NOT EXISTS "
            "(SELECT 1 FROM booking_appointment a WHERE a.citizen_id = c.id) "
            "AND NOT EXISTS (SELECT 1 FROM booking_slot s WHERE s.holder_id = c.id) ORDER BY c.id LIMIT %s",
            [citizens],
        )
        return [r[0] for r in cur.fetchall()]


def users_file(citizen_ids: list[int], path: Path) -> None:
    """Tokens (as POST /api/v1/identify returns them) and a postal code per citizen: their own FSA
    when it has a clinic within 50 km, else a city's."""
    from booking.api.auth import citizen_token_make
    from citizens.models import Citizen

    people = []
    for citizen in Citizen.objects.filter(pk__in=citizen_ids).order_by("pk"):
        token, _expires = citizen_token_make(citizen)
        people.append({"id": citizen.pk, "token": token, "postal_code": (citizen.postal_code or "H2X")[:3]})
    path.write_text(json.dumps({"users": people}))


def summarize(raw: dict[str, object], seconds: float) -> list[dict[str, object]]:
    stages: list[int] = raw["stages"]  # type: ignore[assignment]
    out = []
    for index, users in enumerate(stages):
        names: dict[str, list[list[float]]] = raw["records"].get(str(index), {})  # type: ignore[union-attr]
        total = sum(len(v) for v in names.values())
        codes: dict[str, int] = {}
        for rows in names.values():
            for _ms, code in rows:
                codes[str(int(code))] = codes.get(str(int(code)), 0) + 1
        booked = sum(1 for _ms, code in names.get("book", []) if code == 201)
        bad = sum(n for code, n in codes.items() if code == "0" or code.startswith("5") or code == "429")
        out.append(
            {
                "users": users,
                "requests_per_s": round(total / seconds, 1),
                "booked_per_s": round(booked / seconds, 1),
                "latency": {
                    name: percentiles([ms / 1000 for ms, _code in rows])
                    for name, rows in sorted(names.items())
                },
                "median_search_ms": round(statistics.median([ms for ms, _ in names["search"]]), 1)
                if names.get("search")
                else None,
                "status_codes": dict(sorted(codes.items())),
                "error_share": round(bad / total, 4) if total else None,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_HTTP_PORT", 8088)) + 1)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_GUNICORN_WORKERS", 2)))
    parser.add_argument("--worker-class", default=os.environ.get("BENCH_GUNICORN_CLASS", "gthread"))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_GUNICORN_THREADS", 4)))
    parser.add_argument("--stages", default=os.environ.get("BENCH_LOCUST_STAGES", "10,25,50,100,200"))
    parser.add_argument(
        "--stage-seconds", type=float, default=float(os.environ.get("BENCH_LOCUST_STAGE_SECONDS", 20))
    )
    parser.add_argument("--out", default="load.json")
    args = parser.parse_args()
    django_setup()
    from django.utils import timezone

    stages = [int(n) for n in args.stages.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-locust-"))
    citizens = stage_all(max(stages))
    users_file(citizens, work / "users.json")
    gunicorn = start_gunicorn(args, work / "gunicorn.log")
    env = {
        **os.environ,
        "BENCH_LOCUST_USERS": str(work / "users.json"),
        "BENCH_LOCUST_OUT": str(work / "raw.json"),
        "BENCH_LOCUST_STAGES": args.stages,
        "BENCH_LOCUST_STAGE_SECONDS": str(args.stage_seconds),
        "BENCH_LOCUST_DATE_FROM": (timezone.localdate() + timedelta(days=4)).isoformat(),
    }
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with CpuMeter(gunicorn.pid) as cpu:
            started = time.monotonic()
            done = subprocess.run(  # noqa: S603 - our own locustfile
                [
                    str(ROOT / ".venv" / "bin" / "locust"),
                    "-f",
                    str(ROOT / "bench" / "locustfile.py"),
                    "--headless",
                    "--host",
                    f"http://127.0.0.1:{args.port}",
                    "--only-summary",
                    "--loglevel",
                    "WARNING",
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=len(stages) * args.stage_seconds + 120,
                check=False,
            )
            wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        locust_cores = round((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / wall, 2)
        memory = [vm_hwm_mib(pid) for pid in children(gunicorn.pid)]
    finally:
        stop_gunicorn(gunicorn)
        restored = restore()
    if not (work / "raw.json").exists():
        raise SystemExit(
            f"locust wrote nothing (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    raw = json.loads((work / "raw.json").read_text())
    from booking_common import double_bookings

    data = {
        "scenario": "citizen journeys (search, hold, book, cancel) through gunicorn under Locust, in growing stages",
        "machine": machine(),
        "gunicorn": f"{args.workers} workers x {args.threads} threads ({args.worker_class})",
        "stage_seconds": args.stage_seconds,
        "wall_seconds": round(wall, 1),
        "stages": summarize(raw, args.stage_seconds),
        "cpu": {**cpu.result, "locust_cores": locust_cores},
        "gunicorn_worker_peak_rss_mib": memory,
        "double_bookings": double_bookings(),
        "restored": restored,
        "locust_exit": done.returncode,
    }
    for s in data["stages"]:  # type: ignore[union-attr]
        print(
            json.dumps(
                {
                    k: s[k]
                    for k in (
                        "users",
                        "requests_per_s",
                        "booked_per_s",
                        "median_search_ms",
                        "status_codes",
                        "error_share",
                    )
                }
            )
        )
    print(f"written to {write_json(args.out, data)}")


if __name__ == "__main__":
    main()
