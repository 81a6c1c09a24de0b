# ruff: noqa: E501 - long SQL and report strings read better unbroken
"""The booking service called in-process, no HTTP (issue 7, scenario 2). Writes
bench/results/booking_inprocess.json.

    .venv/bin/python bench/booking_inprocess.py [--seconds 20] [--configs 1x32,2x16]

Each thread calls ``booking.services.appointment_book`` with ``channel=api`` (the citizen API's
channel: every online rule runs: audience, reason, minimum notice, anti-hoarding limit, overlap) on
its own pre-assigned distinct free public slots, a new citizen for each booking (the Citizen rows
are read before the clock starts; the HTTP path reads it in token authentication). A configuration
"PxT" is P processes of T threads: one Python process is held to one core by the GIL, so 2x16 is
the fair comparison on a 2-core machine (gunicorn runs 2 workers too).

It also records where a booking's time goes in SQL: the queries of one booking through the service,
and of one POST /api/v1/appointments through the whole Django stack (test client, in-process), for a
201 and for a 409 (whose answer carries alternatives, a search). The database is checked and
restored exactly after each run (bench/booking_common.py).
"""

import argparse
import cProfile
import io
import multiprocessing as mp
import os
import pstats
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from booking_common import (  # noqa: E402
    django_setup,
    double_bookings,
    machine,
    percentiles,
    pool_consistency,
    restore,
    stage,
    write_json,
)


def worker(
    jobs: list[tuple[int, int, str]], threads: int, seconds: float, start_at: float, out: mp.Queue
) -> None:
    from django.db import connections

    from booking import errors
    from booking.models import Appointment
    from booking.services import appointment_book
    from citizens.models import Citizen

    connections.close_all()  # never share the parent's connection after fork
    people = Citizen.objects.in_bulk([cid for _, cid, _ in jobs])
    connections.close_all()
    ok: list[float] = []
    other: dict[str, int] = {}
    finished: list[float] = []
    lock = threading.Lock()
    stop_at = start_at + seconds

    def run(mine: list[tuple[int, int, str]]) -> None:
        local_ok: list[float] = []
        local_other: dict[str, int] = {}
        while time.time() < start_at:
            time.sleep(0.001)
        for slot_id, cid, reason in mine:
            if time.time() >= stop_at:
                break
            t0 = time.perf_counter()
            try:
                appointment_book(
                    slot_id=slot_id,
                    citizen=people[cid],
                    reason=reason,
                    channel=Appointment.Channel.CITIZEN_API,
                )
                local_ok.append(time.perf_counter() - t0)
            except errors.ApplicationError as exc:
                name = type(exc).__name__
                local_other[name] = local_other.get(name, 0) + 1
        done = time.time()
        connections.close_all()
        with lock:
            finished.append(done)
            ok.extend(local_ok)
            for k, v in local_other.items():
                other[k] = other.get(k, 0) + v

    ts = [threading.Thread(target=run, args=(jobs[i::threads],)) for i in range(threads)]
    cpu0 = time.process_time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put({"ok": ok, "other": other, "cpu": time.process_time() - cpu0, "finished": max(finished)})


def run_config(procs: int, threads: int, seconds: float, pool_size: int) -> dict[str, object]:
    from django.db import connections

    pool, people = stage(slots=pool_size, citizens=pool_size)
    jobs = [(s.id, people[i], s.reason) for i, s in enumerate(pool)]
    connections.close_all()
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    start_at = time.time() + 3.0  # every process ready (citizens read) before the clock starts
    ps = [
        ctx.Process(target=worker, args=(jobs[p::procs], threads, seconds, start_at, out))
        for p in range(procs)
    ]
    for p in ps:
        p.start()
    parts = [out.get(timeout=seconds + 120) for _ in ps]
    for p in ps:
        p.join(timeout=30)
    # Every thread stops at start_at + seconds (a booking in flight finishes), or earlier when its
    # share of the pool is booked: then the rate is the pool over the time it took, not over
    # ``seconds`` (a pool booked in 12 s would otherwise read as pool / 20 s).
    last = max(part["finished"] for part in parts)
    exhausted = last < start_at + seconds
    elapsed = min(seconds, last - start_at) if exhausted else seconds
    ok = [x for part in parts for x in part["ok"]]
    other: dict[str, int] = {}
    for part in parts:
        for k, v in part["other"].items():
            other[k] = other.get(k, 0) + v
    check = {**pool_consistency(), "double_bookings": double_bookings()}
    result = {
        "processes": procs,
        "threads_per_process": threads,
        "concurrency": procs * threads,
        "seconds": round(elapsed, 3),
        "seconds_asked": seconds,
        "pool": len(pool),
        "pool_exhausted": exhausted,
        "booked": len(ok),
        "bookings_per_s": round(len(ok) / elapsed, 1),
        "latency": percentiles(ok),
        "errors": other,
        "client_cores": round(sum(part["cpu"] for part in parts) / elapsed, 2),
        "db_check": check,
        "consistent": check["slots_booked"] == check["appointments_created"] == len(ok)
        and check["outbox_booked_events"] == len(ok)
        and check["double_bookings"] == 0,
    }
    result["restored"] = restore()
    return result


def where_time_goes(profile_requests: int) -> dict[str, object]:
    """SQL per booking (service, and full HTTP stack in-process), and a cProfile of the HTTP path."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from booking.api.auth import citizen_token_make
    from booking.models import Appointment
    from booking.services import appointment_book
    from citizens.models import Citizen

    pool, people = stage(slots=profile_requests + 3, citizens=profile_requests + 4)
    citizens = Citizen.objects.in_bulk(people)
    result: dict[str, object] = {}
    with CaptureQueriesContext(connection) as q:
        appointment_book(
            slot_id=pool[0].id,
            citizen=citizens[people[0]],
            reason=pool[0].reason,
            channel=Appointment.Channel.CITIZEN_API,
        )
    result["service_booking"] = {"queries": len(q), "sql": [x["sql"][:160] for x in q.captured_queries]}
    client = Client(HTTP_HOST="127.0.0.1")

    def post(slot_index: int, citizen_index: int) -> tuple[int, int, list[str]]:
        token = citizen_token_make(citizens[people[citizen_index]])[0]
        with CaptureQueriesContext(connection) as q:
            r = client.post(
                "/api/v1/appointments",
                {"slot_id": pool[slot_index].id, "reason": pool[slot_index].reason},
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {token}",
            )
        return r.status_code, len(q), [x["sql"][:160] for x in q.captured_queries]

    status, n, sql = post(1, 1)
    result["http_201"] = {"status": status, "queries": n, "sql": sql}
    status, n, sql = post(1, 2)  # the same slot again, another citizen: the 409 with alternatives
    result["http_409"] = {"status": status, "queries": n, "sql": sql}
    # cProfile of many 201s through the whole stack, one thread, in-process (no gunicorn, no socket).
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    statuses = [post(i, i + 1)[0] for i in range(3, profile_requests + 3)]
    profiler.disable()
    wall = time.perf_counter() - t0
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
    result["profile"] = {
        "requests": profile_requests,
        "statuses": {str(s): statuses.count(s) for s in set(statuses)},
        "ms_per_request_profiled": round(wall / profile_requests * 1000, 2),
        "top_cumulative": [line for line in text.getvalue().splitlines() if line.strip()][:45],
    }
    result["restored"] = restore()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_INPROCESS_SECONDS", 20)))
    parser.add_argument("--configs", default=os.environ.get("BENCH_INPROCESS_CONFIGS", "1x32,2x16"))
    parser.add_argument("--pool", type=int, default=int(os.environ.get("BENCH_INPROCESS_POOL", 40000)))
    parser.add_argument(
        "--profile-requests", type=int, default=int(os.environ.get("BENCH_PROFILE_REQUESTS", 200))
    )
    parser.add_argument("--out", default="booking_inprocess.json")
    args = parser.parse_args()
    django_setup()
    # Production logs one INFO line per booking to the console; keep that cost, not the screenful.
    import logging

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
    restore()
    runs = []
    try:
        for config in [c for c in args.configs.split(",") if c]:
            procs, threads = (int(x) for x in config.split("x"))
            print(f"in-process: {procs} process(es) x {threads} threads, {args.seconds} s ...", flush=True)
            r = run_config(procs, threads, args.seconds, args.pool)
            print(
                f"  {r['booked']} booked: {r['bookings_per_s']} bookings/s; p50/p95/p99 {r['latency']['p50_ms']}/"
                f"{r['latency']['p95_ms']}/{r['latency']['p99_ms']} ms; errors {r['errors']}; "
                f"double bookings {r['db_check']['double_bookings']}",
                flush=True,
            )
            runs.append(r)
        profile = where_time_goes(args.profile_requests)
        print(
            f"SQL per booking: service {profile['service_booking']['queries']}, HTTP 201 "
            f"{profile['http_201']['queries']}, HTTP 409 {profile['http_409']['queries']}; "
            f"{profile['profile']['ms_per_request_profiled']} ms/request under cProfile",
            flush=True,
        )
    finally:
        restore()
    path = write_json(
        args.out,
        {
            "scenario": "booking.services.appointment_book called in-process (channel api), distinct free slots",
            "machine": machine(),
            "runs": runs,
            "where_time_goes": profile,
        },
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
