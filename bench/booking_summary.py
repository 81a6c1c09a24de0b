# ruff: noqa: E501 - long SQL and report strings read better unbroken
"""docs/benchmarks.md from bench/results/booking_*.json (run by bench/run.sh after the scenarios)."""

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("BENCH_RESULTS", ROOT / "bench" / "results"))
TARGET_HTTP = 333  # bookings/s sustained through HTTP (issue 7: 20,000 a minute)
TARGET_INPROCESS_RATIO = 0.5  # of the raw SQL rate


def load(name: str) -> dict:
    path = RESULTS / name
    if not path.exists():
        sys.exit(f"missing {path}: run bench/run.sh")
    return json.loads(path.read_text())


def lat(p: dict) -> str:
    if not p or not p.get("n"):
        return "–"
    return f"{p['p50_ms']:.0f} / {p['p95_ms']:.0f} / {p['p99_ms']:.0f}"


def pct(x: float, of: float) -> str:
    return f"{100 * x / of:.1f} %" if of else "–"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    pg, inproc, http = load("booking_pgbench.json"), load("booking_inprocess.json"), load("booking_http.json")
    m = http["machine"]
    pg_by = {r["clients_requested"]: r for r in pg["runs"]}
    pg32 = pg_by.get(32, pg["runs"][0])
    pg128 = pg_by.get(128, pg["runs"][-1])
    sus = http.get("sustained")
    races = http.get("race", [])
    L: list[str] = []
    add = L.append
    add("# Benchmarks")
    add("")
    add(
        "Made by `make bench` (bench/run.sh): its own database `rdv_bench` on the local PostgreSQL, seeded with"
    )
    add(
        "`seed_demo --clinics 2000 --days 60 --seed 1` (2,000 clinics, 10,000 practitioners, 200,000 citizens,"
    )
    add(
        "3,919,359 slots, 236,106 appointments), then each scenario; every scenario puts the database back exactly"
    )
    add("as it found it (`bench/booking_common.py restore`), so the next run starts from the same state. Raw")
    add(
        "results: `bench/results/booking_{pgbench,inprocess,http}.json`. Search plans: `docs/search-plan.md`."
    )
    add("")
    add(
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB RAM, PostgreSQL {m['postgresql']}, "
        f"Python {m['python']}, Redis 7; client, gunicorn, PostgreSQL and Redis on the same machine, loopback "
        f"only. Run of {m['date']}."
    )
    add("")
    add("## Booking: summary")
    add("")
    add(
        "| scenario | clients | bookings/s | latency p50 / p95 / p99 (ms) | errors | double bookings | vs raw SQL (32 clients) |"
    )
    add("| --- | --- | --- | --- | --- | --- | --- |")
    for r in pg["runs"]:
        asked = "" if r["clients"] == r["clients_requested"] else f" (asked {r['clients_requested']})"
        add(
            f"| raw SQL, pgbench (`bench/book.sql`) | {r['clients']}{asked} | {r['tps']:.0f} | avg {r['latency_avg_ms']:.1f} "
            f"(sd {r['latency_stddev_ms'] or 0:.1f}) | {r['failed']} | {r['check']['double_bookings']} | "
            f"{pct(r['tps'], pg32['tps'])} |"
        )
    for r in inproc["runs"]:
        add(
            f"| booking service in-process, {r['processes']} process(es) x {r['threads_per_process']} threads"
            f"{' (all ' + str(r['pool']) + ' booked in ' + str(r['seconds']) + ' s)' if r.get('pool_exhausted') else ''} | "
            f"{r['concurrency']} | {r['bookings_per_s']:.0f} | {lat(r['latency'])} | {sum(r['errors'].values())} | "
            f"{r['db_check']['double_bookings']} | {pct(r['bookings_per_s'], pg32['tps'])} |"
        )
    if sus:
        add(
            f"| HTTP sustained, {sus['seconds']:.0f} s, no contention | {sus['clients']} | {sus['bookings_per_s']:.0f} | "
            f"{lat(sus['latency_201'])} | {sus['errors']} | {sus['db_check']['double_bookings']} | "
            f"{pct(sus['bookings_per_s'], pg32['tps'])} |"
        )
    for r in races:
        ref = pg32 if r["clients"] <= 32 else pg128
        add(
            f"| HTTP release race, {r['slots']} slots (201s; 409s: {r['latency_409']['n']}, p50/p95/p99 "
            f"{lat(r['latency_409'])} ms) | {r['clients']} | {r['bookings_per_s']:.0f} (all booked in "
            f"{r['seconds_to_book_all']} s) | {lat(r['latency_201'])} | {r['errors']} | "
            f"{r['db_check']['double_bookings']} | {pct(r['bookings_per_s'], ref['tps'])}"
            f"{'' if ref is pg32 else ' of ' + str(ref['clients']) + '-client pgbench'} |"
        )
    add("")
    best_inproc = max(inproc["runs"], key=lambda r: r["bookings_per_s"]) if inproc["runs"] else None
    add("## Targets and the gap")
    add("")
    if sus:
        gap = TARGET_HTTP / sus["bookings_per_s"] if sus["bookings_per_s"] else float("inf")
        add(
            f"- **HTTP, sustained: target ≥ {TARGET_HTTP} bookings/s; measured {sus['bookings_per_s']:.0f}/s. "
            f"{'Met.' if sus['bookings_per_s'] >= TARGET_HTTP else f'Missed by a factor of {gap:.1f}.'}** "
            f"Zero double bookings in every run (counted from the database afterwards: slots with more than one "
            f"occupying appointment), and every booked pool slot has exactly one appointment and one outbox event."
        )
    if best_inproc:
        ratio = best_inproc["bookings_per_s"] / pg32["tps"]
        add(
            f"- **In-process service: target ≥ {TARGET_INPROCESS_RATIO:.0%} of raw SQL; measured "
            f"{best_inproc['bookings_per_s']:.0f}/s = {ratio:.1%} of pgbench's {pg32['tps']:.0f}/s at 32 clients. "
            f"{'Met.' if ratio >= TARGET_INPROCESS_RATIO else 'Missed.'}**"
        )
    add(
        '- The table above is this run, of the code as it is; "Fixes and their effect" below gives each fix'
        " measured before and after in one run of its own (on a medium database where so noted)."
    )
    add("")
    # Measured by hand, before and after each fix, in one run each (bench/fixes.md): kept across reruns.
    fixes = Path(__file__).resolve().parent / "fixes.md"
    if fixes.exists():
        L.extend(fixes.read_text().rstrip("\n").splitlines())
        add("")
    add("## Where a booking's time goes")
    add("")
    w = inproc.get("where_time_goes", {})
    if w:
        add(
            f"SQL statements per booking (Django's CaptureQueriesContext): the service alone "
            f"**{w['service_booking']['queries']}** (BEGIN; the citizen row lock with the lock timeout and the slot "
            f"read, one statement; the overlap and anti-hoarding reads, the compare-and-set UPDATE that also releases "
            f"the citizen's hold, the appointment INSERT and the outbox INSERT, one statement of data-modifying CTEs; "
            f"COMMIT; both prepared, `booking/services/_hot.py`); `POST /api/v1/appointments` through the "
            f"whole Django stack **{w['http_201']['queries']}** for a 201 and **{w['http_409']['queries']}** for a "
            f"409 (its answer carries the next free times: a search). Raw SQL does it in 5 (pair lookup, BEGIN, "
            f"CAS UPDATE, 2 INSERTs, COMMIT) with prepared statements."
        )
        add("")
    if sus:
        c = sus["cpu"]
        add(
            f"CPU during the sustained HTTP run, in cores (of {m['nproc']}): gunicorn {c['gunicorn_cores']}, "
            f"PostgreSQL {c['postgres_cores']}, the load client {c['client_cores']}, the whole machine busy "
            f"{c['machine_busy_cores']}. So gunicorn spends about "
            f"{1000 * c['gunicorn_cores'] / max(sus['bookings_per_s'], 1):.1f} ms of CPU per booking and PostgreSQL "
            f"{1000 * c['postgres_cores'] / max(sus['bookings_per_s'], 1):.1f} ms; the Python side, not the "
            f"database, is the bottleneck. The client is not: it uses {c['client_cores']} of a core."
        )
        other = c["machine_busy_cores"] - c["gunicorn_cores"] - c["postgres_cores"] - c["client_cores"]
        if other > 0.5:
            add("")
            add(
                f"**Caveat for this run:** about {other:.1f} of the {m['nproc']} cores were busy with work that is"
                f" not the benchmark's (other processes on this machine; load average {m.get('loadavg', '?')}"
                f" at the end). Every rate above is depressed by that, the Python-bound ones (in-process, HTTP)"
                f" most; pgbench less. Rerun `make bench` on an idle machine for clean figures; the ratios and"
                f" the per-booking costs are the robust part."
            )
        else:
            add("")
            add(
                f"The rest of the machine's busy time ({max(other, 0):.2f} of a core) is not counted as gunicorn's,"
                f" PostgreSQL's or the client's (Redis, the kernel's network stack, background daemons); the load"
                f" average ({m.get('loadavg', '?')} at the end) counts the client's 32 threads."
            )
        add("")
    if w:
        add(
            f"cProfile of {w['profile']['requests']} bookings through the Django stack in one thread (test client, no"
            f" socket; {w['profile']['ms_per_request_profiled']} ms each under the profiler), cumulative time:"
        )
        add("")
        add("```")
        add("\n".join(w["profile"]["top_cumulative"][:32]))
        add("```")
        add("")
    L.extend(search_and_sync())
    add(NOTES)
    Path(args.out).write_text("\n".join(L) + "\n")
    print(f"written {args.out}")


def http_memory() -> str:
    path = RESULTS / "booking_http.json"
    values = json.loads(path.read_text()).get("gunicorn_worker_peak_rss_mib") if path.exists() else None
    return ", ".join(f"{m} MiB" for m in values) if values else "not measured in this run"


def search_and_sync() -> list[str]:
    """The search (bench/search_bench.py) and synchronization (bench/sync_bench.py) sections, when run."""
    out: list[str] = []
    search_path, sync_path = RESULTS / "search.json", RESULTS / "sync.json"
    if search_path.exists():
        search = json.loads(search_path.read_text())
        out += [
            "## Search at provincial size",
            "",
            f"`GET /api/v1/slots` in-process (the whole Django stack, production settings, no socket), by"
            f" different citizens, reasons and places (`bench/search_bench.py`; run of {search['machine']['date']},"
            f" load average {search['machine']['loadavg']}). Target: p95 under {search['target_p95_ms']} ms,"
            " queries bounded.",
            "",
            "| path | searches | latency p50 / p95 / p99 (ms) | SQL queries per search | with a result | p95 target met |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, label in (("mine", "my family doctor"), ("gmf", "my GMF"), ("near", "near a place")):
            r = search["paths"].get(name)
            if r:
                p95 = r["latency"]["p95_ms"]
                met = "yes" if p95 is not None and p95 < search["target_p95_ms"] else "**no**"
                out.append(
                    f"| {label} | {r['searches']} | {lat(r['latency'])} | {r['queries_min']}–{r['queries_max']} |"
                    f" {100 * r['with_results']:.0f} % | {met} |"
                )
        out.append("")
    load_path = RESULTS / "load.json"
    if load_path.exists():
        load = json.loads(load_path.read_text())
        out += [
            "## Citizen journeys past saturation (Locust)",
            "",
            f"`bench/load_locust.py` (run of {load['machine']['date']}, load average {load['machine']['loadavg']}): Locust"
            f" citizens search near a place, hold, book and cancel through gunicorn ({load['gunicorn']}), the number of"
            f" citizens growing in stages of {load['stage_seconds']:.0f} s; a think time of 0.2–0.6 s between journeys."
            f" Double bookings afterwards: {load['double_bookings']}. CPU over the run, in cores: gunicorn"
            f" {load['cpu']['gunicorn_cores']}, PostgreSQL {load['cpu']['postgres_cores']}, Locust"
            f" {load['cpu']['locust_cores']}, whole machine {load['cpu']['machine_busy_cores']} of {load['cpu']['machine_cores']}.",
            "",
            "| citizens | requests/s | booked/s | search p50 / p95 / p99 (ms) | book p50 / p95 / p99 (ms) | status codes | errors (5xx, 429, refused) |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for s in load["stages"]:
            codes = ", ".join(f"{k}: {v}" for k, v in s["status_codes"].items())
            share = "–" if s["error_share"] is None else f"{100 * s['error_share']:.1f} %"
            out.append(
                f"| {s['users']} | {s['requests_per_s']} | {s['booked_per_s']} | {lat(s['latency'].get('search', {}))} |"
                f" {lat(s['latency'].get('book', {}))} | {codes} | {share} |"
            )
        out.append("")
    if sync_path.exists():
        sync = json.loads(sync_path.read_text())
        out += [
            "## EMR synchronization: snapshot reconciliation and change-feed latency",
            "",
            f"`bench/sync_bench.py` (run of {sync['machine']['date']}, load average {sync['machine']['loadavg']}"
            + (
                f"; database `{sync['database']['name']}`, {sync['database']['slots']:,} slots"
                if sync.get("database")
                else ""
            )
            + "): a"
            f" {sync['snapshot_slots']:,}-slot agenda snapshot `POST Schedule/{{id}}/$snapshot` through the Django"
            " stack, applied by a real Celery worker (prefork, 2 processes) with beat running; end to end is from"
            " the POST until the snapshot is done. Target: a 10,000-slot reconciliation under"
            f" {sync['target_reconcile_seconds']} s.",
            "",
            "| snapshot | POST (s) | accepted → done (s) | end to end (s) | created / updated / withdrawn / unchanged |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in sync["reconciliation"]:
            c = r["counts"]
            out.append(
                f"| {r['snapshot']} | {r['post_seconds']} | {r['accepted_to_done_seconds']} |"
                f" {r['end_to_end_seconds']} | {c['created']} / {c['updated']} / {c['withdrawn']} / {c['unchanged']} |"
            )
        raw, ratio = sync.get("raw_sql_baseline"), sync.get("ratio_to_raw_sql")
        if raw and ratio:
            first = sync["reconciliation"][0]
            out += [
                "",
                f"Raw-SQL baseline, same run and database: the first snapshot's writes ({raw['slots']:,} slot INSERTs"
                " with the same columns and their outbox events, one transaction, `INSERT … SELECT FROM unnest(arrays)`"
                f" through psycopg with binary arrays, committed then deleted; best of {len(raw['runs_seconds'])}:"
                f" {', '.join(str(t) for t in raw['runs_seconds'])} s) take **{raw['seconds']} s**. The first snapshot"
                f" end to end ({first['end_to_end_seconds']} s) is **{ratio['end_to_end']} ×** that; its reconciliation"
                f" alone (accepted → done, {first['accepted_to_done_seconds']} s) **{ratio['reconcile_only']} ×**.",
            ]
        feed = sync["feed"]
        mem = sync["celery_worker_peak_rss_mib"]["worker_processes"]
        web = http_memory()
        out += [
            "",
            f"Change feed, {feed['bookings']} bookings one every 200 ms, beat's relay every second: booking commit →"
            f" feed number p50 / p95 / p99 {lat(feed['booking_to_feed'])} ms; → webhook POST received"
            f" {lat(feed['booking_to_webhook'])} ms; webhooks missing: {feed['webhooks_missing']}.",
            "",
            f"Peak memory (VmHWM) of the Celery worker's processes over the run: {', '.join(f'{m} MiB' for m in mem)};"
            f" of each gunicorn worker over the HTTP booking runs: {web}.",
            "",
        ]
    # Measured by hand, before and after each change (bench/sync_fixes.md): kept across reruns.
    sync_fixes = Path(__file__).resolve().parent / "sync_fixes.md"
    if sync_fixes.exists():
        out += [*sync_fixes.read_text().rstrip("\n").splitlines(), ""]
    return out


NOTES = """Reading of the profile (by hand): the last session's profile found two thirds of a booking's
wall time in its 11 round trips to PostgreSQL through the ORM; a booking is now 4 statements, two of
them prepared (see "Fixes and their effect"). What is left in-process is psycopg's send and wait on
threads sharing the GIL (about 0.6 ms of Python per booking) beside about 0.6 ms of PostgreSQL, which
is what pgbench's own transaction costs; through HTTP, gunicorn's request handling, DRF and the
middleware (about 3 ms of CPU per booking) are the largest share, then PostgreSQL and the load client.

## How the benchmarks run

- **Raw SQL** (`bench/booking_pgbench.sh`, `bench/book.sql`): pgbench, prepared statements, 2 threads,
  `BENCH_PGBENCH_SECONDS` (15) per run. Each transaction takes the next (slot, citizen) pair from a staged
  table through a sequence (disjoint free public slots, no contention), does the compare-and-set
  `UPDATE booking_slot SET status='booked', version=version+1 … WHERE id=… AND status='free' AND (no live
  hold)`, and only when it changed the row inserts the appointment (every NOT NULL column; a unique
  reference starting with `0`, a character the application's references never use) and the outbox event,
  then commits. The database's own guards stay on (partial unique index, exclusion constraints, foreign
  keys). PostgreSQL here has `max_connections = 100`, so 128 pgbench connections do not fit: the script
  runs the largest count that does (recorded as `clients`, with `clients_requested`). The HTTP runs are
  not limited that way: gunicorn holds one connection per thread.
- **In-process** (`bench/booking_inprocess.py`): threads calling `booking.services.appointment_book` with
  the citizen API's channel (every online rule runs), each on its own distinct slots, a new citizen for
  each booking (citizens with no appointment, so the anti-hoarding limit and overlap rule pass without
  being switched off). 1 process x 32 threads (the GIL holds it to one core) and 2 x 16 (both cores, like
  gunicorn's 2 workers), `BENCH_INPROCESS_SECONDS` (20) each.
- **HTTP** (`bench/booking_http.py`): gunicorn with production settings (`DJANGO_DEBUG=false`, a bench
  `SECRET_KEY`, `EMAIL_URL=dummymail://`, `SITE_URL`, `ALLOWED_HOSTS=127.0.0.1`, `SECURE_SSL_REDIRECT=false`
  because there is no TLS proxy on loopback, `REDIS_URL=redis://127.0.0.1:6379/1`), static files
  collected, on 127.0.0.1:8088, 2 workers x 4 threads (gthread). Chosen by measurement on this machine
  (10 s sustained, 32 clients): gthread 2x4 120/s, gthread 2x8 78/s, sync x4 70/s, sync x2 45/s (the
  machine was shared with other work during those trials; the order, not the figures, is the result).
  The client: Python threads with one `requests.Session` each (keep-alive), on the same machine; its CPU
  is measured and recorded (`cpu.client_cores`).
  - Tokens are minted in the preparing process with `booking.api.auth.citizen_token_make` (exactly what
    `POST /api/v1/identify` returns; gunicorn has the same `SECRET_KEY`), so the runs measure booking,
    not identification.
  - **Rate limits stay on** (`RATE_LIMIT_ENABLED=true`: every booking still increments its counter in
    Redis). The documented setting is `RATE_LIMITS` through the environment: `RATE_LIMIT_BOOK=1000/60`
    (a racing citizen may meet more than the default 10 attempts a minute in 409s),
    `RATE_LIMIT_HOLD=1000/60`, `RATE_LIMIT_IDENTIFY_IP=100000/600` (the whole load comes from one address;
    unused while tokens are minted). Override with `BENCH_RATE_LIMIT_BOOK` and friends.
  - Release race: the 500 slots are shown to every client on one board, updated on every 201 and 409
    (the freshest listing a citizen could have); each client picks a random slot still on it and POSTs
    `/api/v1/appointments` without a hold; a 201 moves the client to the next citizen, a 409 makes it
    try another slot. Collisions come only from requests in flight at once. It ends when the 500 are
    booked (at most 60 s and 10,000 requests). bookings/s = 500 / time to the last 201.
  - Sustained: 32 clients, `BENCH_SUSTAINED_SECONDS` (60), each on its own pre-assigned distinct free
    slots (the slots are released before the run rather than during it; no contention), a new citizen for
    each booking.
- **Checks and reset**: after each run, double bookings are counted in the whole database (`SELECT
  slot_id FROM booking_appointment WHERE status IN occupying GROUP BY slot_id HAVING count(*) > 1`), and
  the pool's booked slots, appointments and outbox events are compared with the 201s. Then the pool
  slots get their recorded columns back (status, version, hold, updated_at), and the appointments,
  outbox events and reminders created on them are deleted (`bench/booking_common.py`; a crashed run is
  restored by the next one). Celery tasks queued by the bookings (no worker runs) are dropped from the
  benchmark's Redis database.
- No worker or beat runs during the benchmarks; the machine is a shared 2-core box, so other work
  running at the same time shows up as noise (`cpu.machine_busy_cores` above the sum of ours).
"""


if __name__ == "__main__":
    main()
