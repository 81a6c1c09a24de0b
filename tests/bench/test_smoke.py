"""The benchmarks keep working: ``bench/run.sh`` end to end, in seconds, on a tiny database.

Issue 7: benchmarks never run inside ``make test``, but a seconds-long version of each does. Every
scenario runs for real (pgbench, the booking service in-process, gunicorn with production settings,
the search, a Celery worker and beat reconciling a snapshot and delivering a webhook), only smaller
and shorter; the results go to a temporary directory, not to ``bench/results`` or ``docs/``. The
database is the benchmark's own (``rdv_bench_smoke``), made and dropped here.
"""

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Its own database, dropped and created by this module: set BENCH_SMOKE_DB when several runs share
# one PostgreSQL (each engineer's test run would otherwise drop the other's mid-run).
DB = os.environ.get("BENCH_SMOKE_DB", "rdv_bench_smoke_ci")


def _psql(sql: str) -> None:
    subprocess.run(  # noqa: S603 - fixed arguments
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-Atqc", sql],  # noqa: S607
        check=True,
        capture_output=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    if shutil.which("pgbench") is None:
        pytest.fail("pgbench is missing: install postgresql-client (make services does)")
    out = tmp_path_factory.mktemp("bench")
    _psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    env = {
        **os.environ,
        "BENCH_DB": DB,
        "BENCH_CLINICS": "6",
        "BENCH_DAYS": "12",
        "BENCH_RESULTS": str(out),
        "BENCH_SUMMARY": str(out / "benchmarks.md"),
        "BENCH_SEARCH_PLAN": str(out / "search-plan.md"),
        "BENCH_REDIS_URL": os.environ.get("BENCH_SMOKE_REDIS_URL", "redis://127.0.0.1:6379/14"),
        "BENCH_PGBENCH_SECONDS": "1",
        "BENCH_PGBENCH_TRANSACTIONS": "50",
        "BENCH_PGBENCH_POOL": "200",
        "BENCH_PGBENCH_CLIENTS": "2",
        "BENCH_INPROCESS_SECONDS": "1",
        "BENCH_INPROCESS_CONFIGS": "1x2",
        "BENCH_INPROCESS_POOL": "60",
        "BENCH_PROFILE_REQUESTS": "5",
        "BENCH_HTTP_PORT": str(_free_port()),
        "BENCH_GUNICORN_WORKERS": "1",
        "BENCH_GUNICORN_THREADS": "2",
        "BENCH_RACE_SLOTS": "10",
        "BENCH_RACE_CLIENTS": "4",
        "BENCH_SUSTAINED_SECONDS": "2",
        "BENCH_SUSTAINED_CLIENTS": "2",
        "BENCH_SUSTAINED_POOL": "60",
        "BENCH_SEARCHES": "6",
        "BENCH_SNAPSHOT_SLOTS": "300",
        "BENCH_FEED_BOOKINGS": "3",
        "BENCH_SKIP_COLLECTSTATIC": "1",
        "BENCH_LOCUST_STAGES": "2,4",
        "BENCH_LOCUST_STAGE_SECONDS": "3",
    }
    for key in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "REDIS_URL"):
        env.pop(key, None)
    try:
        done = subprocess.run(  # noqa: S603 - our own script
            ["bash", "bench/run.sh"],  # noqa: S607
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1500,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        yield out
    finally:
        _psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def load(out: Path, name: str) -> dict:
    return json.loads((out / name).read_text())


def test_raw_sql_and_in_process_booking_run_without_double_bookings(bench_run):
    pgbench = load(bench_run, "booking_pgbench.json")
    assert pgbench["runs"] and all(r["transactions"] > 0 for r in pgbench["runs"])
    assert all(r["check"]["double_bookings"] == 0 for r in pgbench["runs"])
    inprocess = load(bench_run, "booking_inprocess.json")
    assert json.dumps(inprocess).count('"double_bookings": 0') >= 1


def test_http_booking_race_and_sustained_run_with_memory_measured(bench_run):
    http = load(bench_run, "booking_http.json")
    race = http["race"][0]
    assert race["db_check"]["double_bookings"] == 0
    assert http["sustained"]["db_check"]["double_bookings"] == 0 and http["sustained"]["booked"] > 0
    assert http["gunicorn_worker_peak_rss_mib"] and min(http["gunicorn_worker_peak_rss_mib"]) > 10


def test_search_answers_every_path_with_bounded_queries(bench_run):
    search = load(bench_run, "search.json")
    for path in ("mine", "gmf", "near"):
        r = search["paths"][path]
        assert r["statuses"] == {"200": r["searches"]}, r
        assert 1 <= r["queries_min"] <= r["queries_max"] <= 6


def test_snapshot_reconciliation_and_webhooks_run_through_a_real_worker(bench_run):
    sync = load(bench_run, "sync.json")
    first, same, changed = sync["reconciliation"]
    assert first["counts"]["created"] == 300 and first["refused"] == 0
    assert same["counts"]["unchanged"] == 300
    assert changed["counts"]["created"] > 0 and changed["counts"]["withdrawn"] > 0
    assert changed["counts"]["updated"] > 0 and changed["refused"] == 0
    assert sync["feed"]["webhooks_missing"] == 0 and sync["feed"]["booking_to_webhook"]["n"] == 3
    assert sync["celery_worker_peak_rss_mib"]["worker_processes"]
    raw = sync["raw_sql_baseline"]
    assert raw["slots"] == 300 and raw["seconds"] > 0
    assert sync["ratio_to_raw_sql"]["end_to_end"] > 0 and sync["ratio_to_raw_sql"]["reconcile_only"] > 0


def test_citizen_journeys_under_locust_book_and_never_double_book(bench_run):
    load_run = load(bench_run, "load.json")
    assert [s["users"] for s in load_run["stages"]] == [2, 4]
    assert sum(s["booked_per_s"] for s in load_run["stages"]) > 0
    assert all(s["error_share"] == 0 for s in load_run["stages"]), load_run["stages"]
    assert load_run["double_bookings"] == 0


def test_the_summary_is_written_with_every_section(bench_run):
    text = (bench_run / "benchmarks.md").read_text()
    for heading in (
        "## Booking: summary",
        "## Search at provincial size",
        "## Citizen journeys past saturation",
        "## EMR synchronization",
    ):
        assert heading in text
    plan = (bench_run / "search-plan.md").read_text()
    assert "| case | queries | results | wall time (ms) |" in plan
    assert "Index" in plan or "Seq Scan" in plan  # the plans themselves
