# ruff: noqa: E501 - long SQL and report strings read better unbroken
"""Booking through the real HTTP stack (issue 7, scenario 1): gunicorn, production settings,
PostgreSQL, Redis, rate limits on. Writes bench/results/booking_http.json.

    DATABASE_URL is set by the script (bench database rdv_bench, seeded by bench/run.sh).
    .venv/bin/python bench/booking_http.py [--sustained-seconds 60] [--race-clients 32,128]

Scenarios
- race: 500 free public slots released at once, raced by C concurrent clients (32, then 128). Each
  client is a citizen who picks a random slot among those still shown as free and POSTs
  /api/v1/appointments (no hold). The "board" every client reads is updated on every 201 and 409
  (the most up-to-date listing a citizen could have): collisions come only from requests in flight
  at the same moment, which is the race. On a 201 the client becomes the next citizen; on a 409 the
  same citizen tries another slot. Ends when all 500 are booked or after --race-timeout seconds.
- sustained: --sustained-clients clients (32) for --sustained-seconds (60), each booking its own
  pre-assigned list of distinct free slots with a new citizen each time: no contention, bookings/s.

Tokens: minted in this process with booking.api.auth.citizen_token_make (the same signed value
POST /api/v1/identify returns; gunicorn gets the same SECRET_KEY), so that the runs measure booking,
not identification. After each run the database is checked (double bookings, one appointment and
one outbox event per booked pool slot) and restored exactly (bench/booking_common.py).
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from booking_common import (  # noqa: E402
    BENCH_ENV,
    ROOT,
    django_setup,
    double_bookings,
    machine,
    percentiles,
    pool_consistency,
    restore,
    stage,
    write_json,
)

CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK


def vm_hwm_mib(pid: int) -> float:
    """A process's peak resident set size (VmHWM), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def postgres_cpu() -> float:
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(postgres)" in text:
            total += proc_cpu(int(stat.parent.name))
    return total


def system_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLK, sum(values) / CLK


class CpuMeter:
    """CPU used during a run by the client (this process), gunicorn (master + workers), PostgreSQL,
    and the whole machine, in cores (CPU seconds / wall seconds)."""

    def __init__(self, gunicorn_pid: int) -> None:
        self.gpids = [gunicorn_pid, *children(gunicorn_pid)]

    def __enter__(self) -> "CpuMeter":
        self.t0 = time.monotonic()
        self.c0 = time.process_time()
        self.g0 = sum(proc_cpu(p) for p in self.gpids)
        self.p0 = postgres_cpu()
        self.s0 = system_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self.t0
        s1 = system_cpu()
        self.result = {
            "client_cores": round((time.process_time() - self.c0) / wall, 2),
            "gunicorn_cores": round((sum(proc_cpu(p) for p in self.gpids) - self.g0) / wall, 2),
            "postgres_cores": round((postgres_cpu() - self.p0) / wall, 2),
            "machine_busy_cores": round((s1[0] - self.s0[0]) / wall, 2),
            "machine_cores": round((s1[1] - self.s0[1]) / wall, 2),
        }


def start_gunicorn(args: argparse.Namespace, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **BENCH_ENV}
    cmd = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{args.port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--backlog",
        "2048",
        "--keep-alive",
        "30",
        "--error-logfile",
        str(log),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            r = requests.get(f"{base(args)}/readyz", timeout=2)
            if r.status_code == 200:
                return proc
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited; see {log}")
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    raise SystemExit(f"gunicorn not ready in 30 s; see {log}")


def stop_gunicorn(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def base(args: argparse.Namespace) -> str:
    return f"http://127.0.0.1:{args.port}"


def tokens_for(citizen_ids: list[int]) -> list[str]:
    from booking.api.auth import citizen_token_make
    from citizens.models import Citizen

    return [citizen_token_make(Citizen(pk=cid))[0] for cid in citizen_ids]


def session() -> requests.Session:
    s = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
    s.mount("http://", adapter)
    return s


def warm_up(args: argparse.Namespace, token: str, clients: int) -> None:
    """Every client's keep-alive connection and every gunicorn thread's database connection opened
    with a read (the list of the citizen's appointments), not a write."""

    def one() -> None:
        s = session()
        for _ in range(3):
            s.get(
                f"{base(args)}/api/v1/appointments", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok: list[float] = []
        self.conflict: list[float] = []
        self.other: list[float] = []
        self.codes: Counter[str] = Counter()
        self.first_ok = 0.0
        self.last_ok = 0.0

    def add(self, status: int, code: str, latency: float, at: float) -> None:
        with self.lock:
            self.codes[f"{status} {code}".strip()] += 1
            if status == 201:
                self.ok.append(latency)
                self.last_ok = max(self.last_ok, at)
            elif status == 409:
                self.conflict.append(latency)
            else:
                self.other.append(latency)


def post_booking(
    s: requests.Session, url: str, token: str, slot_id: int, reason: str
) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    try:
        r = s.post(
            url,
            json={"slot_id": slot_id, "reason": reason},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except requests.RequestException as exc:
        return 0, type(exc).__name__, time.perf_counter() - t0
    latency = time.perf_counter() - t0
    code = ""
    if r.status_code != 201:
        try:
            code = r.json().get("error", {}).get("code", "")
        except ValueError:
            code = "not-json"
    return r.status_code, code, latency


def run_race(args: argparse.Namespace, gunicorn: subprocess.Popen[bytes], clients: int) -> dict[str, object]:
    n_slots = args.race_slots
    pool, people = stage(slots=n_slots, citizens=n_slots + clients + 10)
    tokens = tokens_for(people)
    warm_up(args, tokens[-1], clients)
    url = f"{base(args)}/api/v1/appointments"
    board = list(pool)  # what every client sees as still free
    where = {s.id: i for i, s in enumerate(board)}
    board_lock = threading.Lock()
    next_citizen = iter(range(len(tokens) - 1))
    tally = Tally()
    max_attempts = n_slots * args.race_attempts_factor
    attempts = [0]
    start_gate = threading.Barrier(clients + 1)
    stop = threading.Event()

    def take_off(slot_id: int) -> None:
        with board_lock:
            i = where.pop(slot_id, None)
            if i is None:
                return
            last = board.pop()
            if last.id != slot_id:
                board[i] = last
                where[last.id] = i

    def client(seed: int) -> None:
        rng = random.Random(seed)
        s = session()
        with board_lock:
            citizen = next(next_citizen)
        start_gate.wait()
        while not stop.is_set():
            with board_lock:
                if not board or attempts[0] >= max_attempts:
                    stop.set()
                    return
                attempts[0] += 1
                slot = board[rng.randrange(len(board))]
            status, code, latency = post_booking(s, url, tokens[citizen], slot.id, slot.reason)
            tally.add(status, code, latency, time.perf_counter())
            if status in (201, 409):
                take_off(slot.id)
            if status == 201:
                with board_lock:
                    citizen = next(next_citizen)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    with CpuMeter(gunicorn.pid) as cpu:
        start_gate.wait()
        t0 = time.perf_counter()
        stop.wait(args.race_timeout)
        stop.set()
        for t in threads:
            t.join(timeout=60)
    elapsed = time.perf_counter() - t0
    sold_out = (tally.last_ok - t0) if tally.ok else None
    check = {**pool_consistency(), "double_bookings": double_bookings()}
    result = {
        "clients": clients,
        "slots": n_slots,
        "booked": len(tally.ok),
        "all_booked": len(tally.ok) == n_slots,
        "seconds_to_book_all": round(sold_out, 3) if sold_out and len(tally.ok) == n_slots else None,
        "seconds": round(elapsed, 3),
        "bookings_per_s": round(len(tally.ok) / sold_out, 1) if sold_out else 0,
        "requests": attempts[0],
        "requests_per_s": round(attempts[0] / elapsed, 1),
        "latency_201": percentiles(tally.ok),
        "latency_409": percentiles(tally.conflict),
        "errors": len(tally.other),
        "responses": dict(tally.codes),
        "cpu": cpu.result,
        "db_check": check,
        "consistent": check["slots_booked"] == check["appointments_created"] == len(tally.ok)
        and check["outbox_booked_events"] == len(tally.ok)
        and check["double_bookings"] == 0,
    }
    result["restored"] = restore()
    return result


def run_sustained(args: argparse.Namespace, gunicorn: subprocess.Popen[bytes]) -> dict[str, object]:
    clients, seconds = args.sustained_clients, args.sustained_seconds
    pool, people = stage(slots=args.sustained_pool, citizens=args.sustained_pool)
    tokens = tokens_for(people)
    warm_up(args, tokens[-1], clients)
    url = f"{base(args)}/api/v1/appointments"
    tally = Tally()
    start_gate = threading.Barrier(clients + 1)
    stop = threading.Event()
    exhausted = [0]
    sent = [0]

    def client(i: int) -> None:
        s = session()
        mine = list(range(i, len(pool) - 1, clients))  # disjoint slots; citizen k books slot k
        start_gate.wait()
        for k in mine:
            if stop.is_set():
                return
            status, code, latency = post_booking(s, url, tokens[k], pool[k].id, pool[k].reason)
            tally.add(status, code, latency, time.perf_counter())
            with tally.lock:
                sent[0] += 1
        with tally.lock:
            exhausted[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    with CpuMeter(gunicorn.pid) as cpu:
        start_gate.wait()
        t0 = time.perf_counter()
        stop.wait(seconds)
        stop.set()
        for t in threads:
            t.join(timeout=60)
    elapsed = time.perf_counter() - t0
    check = {**pool_consistency(), "double_bookings": double_bookings()}
    result = {
        "clients": clients,
        "seconds": round(elapsed, 3),
        "pool": len(pool),
        "clients_out_of_slots": exhausted[0],
        "booked": len(tally.ok),
        "bookings_per_s": round(len(tally.ok) / elapsed, 1),
        "latency_201": percentiles(tally.ok),
        "errors": len(tally.other) + len(tally.conflict),
        "responses": dict(tally.codes),
        "cpu": cpu.result,
        "db_check": check,
        "consistent": check["slots_booked"] == check["appointments_created"] == len(tally.ok)
        and check["outbox_booked_events"] == len(tally.ok)
        and check["double_bookings"] == 0,
    }
    result["restored"] = restore()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_HTTP_PORT", 8088)))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_GUNICORN_WORKERS", 2)))
    parser.add_argument("--worker-class", default=os.environ.get("BENCH_GUNICORN_CLASS", "gthread"))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_GUNICORN_THREADS", 4)))
    parser.add_argument("--race-slots", type=int, default=int(os.environ.get("BENCH_RACE_SLOTS", 500)))
    parser.add_argument("--race-clients", default=os.environ.get("BENCH_RACE_CLIENTS", "32,128"))
    parser.add_argument("--race-timeout", type=float, default=60)
    parser.add_argument("--race-attempts-factor", type=int, default=20, help="at most slots × this requests")
    parser.add_argument(
        "--sustained-seconds", type=float, default=float(os.environ.get("BENCH_SUSTAINED_SECONDS", 60))
    )
    parser.add_argument(
        "--sustained-clients", type=int, default=int(os.environ.get("BENCH_SUSTAINED_CLIENTS", 32))
    )
    parser.add_argument(
        "--sustained-pool", type=int, default=int(os.environ.get("BENCH_SUSTAINED_POOL", 30000))
    )
    parser.add_argument("--skip-sustained", action="store_true")
    parser.add_argument("--skip-race", action="store_true")
    parser.add_argument("--out", default="booking_http.json")
    args = parser.parse_args()

    django_setup()
    if os.environ.get("BENCH_SKIP_COLLECTSTATIC") != "1":
        # Production settings serve hashed, compressed static files: collected once (about a minute
        # of brotli). The smoke run skips it: the API under test renders no page.
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
            cwd=ROOT,
            env={**os.environ, **BENCH_ENV},
            check=True,
        )
    restore()  # a crashed earlier run leaves its pool staged
    log = Path(tempfile.gettempdir()) / f"bench-gunicorn-{os.getpid()}.log"
    gunicorn = start_gunicorn(args, log)
    results: dict[str, object] = {
        "scenario": "booking through HTTP: POST /api/v1/appointments (no hold), gunicorn + PostgreSQL + Redis",
        "machine": machine(),
        "server": {
            "gunicorn": f"{args.workers} workers x {args.threads} threads ({args.worker_class})",
            "settings": {k: v for k, v in BENCH_ENV.items() if k != "SECRET_KEY"},
        },
        "client": "Python threads, one requests.Session (keep-alive) each, on the same machine",
    }
    try:
        if not args.skip_race:
            races = []
            for c in [int(x) for x in args.race_clients.split(",") if x]:
                print(f"race: {args.race_slots} slots, {c} clients ...", flush=True)
                r = run_race(args, gunicorn, c)
                print(
                    f"  {r['booked']} booked in {r['seconds_to_book_all']} s: {r['bookings_per_s']} bookings/s; "
                    f"201 p50/p95/p99 {r['latency_201']['p50_ms']}/{r['latency_201']['p95_ms']}/"
                    f"{r['latency_201']['p99_ms']} ms; 409 {r['latency_409']['n']} "
                    f"p50/p95 {r['latency_409']['p50_ms']}/{r['latency_409']['p95_ms']} ms; "
                    f"errors {r['errors']}; double bookings {r['db_check']['double_bookings']}; cpu {r['cpu']}",
                    flush=True,
                )
                races.append(r)
            results["race"] = races
        if not args.skip_sustained:
            print(f"sustained: {args.sustained_clients} clients, {args.sustained_seconds} s ...", flush=True)
            r = run_sustained(args, gunicorn)
            print(
                f"  {r['booked']} booked: {r['bookings_per_s']} bookings/s; p50/p95/p99 "
                f"{r['latency_201']['p50_ms']}/{r['latency_201']['p95_ms']}/{r['latency_201']['p99_ms']} ms; "
                f"errors {r['errors']}; double bookings {r['db_check']['double_bookings']}; cpu {r['cpu']}",
                flush=True,
            )
            results["sustained"] = r
        # Scenario 5: peak resident memory (VmHWM) of each gunicorn worker over the whole load.
        results["gunicorn_worker_peak_rss_mib"] = [vm_hwm_mib(pid) for pid in children(gunicorn.pid)]
        print(f"gunicorn workers' peak RSS (MiB): {results['gunicorn_worker_peak_rss_mib']}", flush=True)
    finally:
        stop_gunicorn(gunicorn)
        restore()
    path = write_json(args.out, results)
    print(f"written {path}")


if __name__ == "__main__":
    main()
