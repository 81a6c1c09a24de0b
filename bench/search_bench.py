# ruff: noqa: E501 - report strings read better unbroken
"""The citizen search at provincial size (issue 7, scenario 3): latency and SQL queries per search.

For each of the three paths (my family doctor, my GMF, near a place), ``--searches`` searches by
different citizens (enrolled ones for the first two) and, for "near", from different FSAs spread over
Quebec with the radius a citizen would pick (25 km in cities, 100 km elsewhere), each with a reason
drawn in turn; every search goes through ``GET /api/v1/slots`` in-process (the whole Django stack,
production settings, no socket), as a citizen's app calls it. Reported per path: p50/p95/p99 latency,
SQL queries per search (min/max: must be bounded, whatever the result), share of searches with a
result. Target: p95 under 50 ms with a bounded number of queries.

Writes bench/results/search.json. Usage (bench/run.sh runs it):
    .venv/bin/python bench/search_bench.py [--searches 300] [--out search.json]
"""

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from booking_common import BENCH_ENV, django_setup, machine, percentiles, write_json  # noqa: E402

REASONS = ("follow_up", "urgent", "semi_urgent", "periodic")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--searches", type=int, default=int(os.environ.get("BENCH_SEARCHES", 300)))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="search.json")
    args = parser.parse_args()
    BENCH_ENV["RATE_LIMIT_SEARCH"] = "1000000/60"  # one load source: the limiter stays on, not in the way
    BENCH_ENV["RATE_LIMIT_SEARCH_IP"] = "1000000/60"
    django_setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from booking.api.auth import citizen_token_make
    from booking.models import Reason
    from citizens.models import Citizen
    from clinics.models import Fsa

    rng = random.Random(args.seed)
    reasons = [r for r in REASONS if r in Reason.values] or list(Reason.values)[:1]
    enrolled = list(
        Citizen.objects.filter(enrolments__is_active=True, enrolments__gmf__isnull=False)
        .order_by("pk")
        .values_list("pk", flat=True)[: args.searches * 10]
    )
    anyone = list(Citizen.objects.order_by("pk").values_list("pk", flat=True)[: args.searches * 10])
    fsas = list(Fsa.objects.order_by("code").values_list("code", flat=True))
    if not enrolled or not fsas:
        raise SystemExit("seed the database first (seed_demo)")
    client = Client(SERVER_NAME="127.0.0.1")

    def search(citizen_id: int, params: dict[str, object]) -> tuple[float, int, int, int]:
        token, _expires = citizen_token_make(Citizen.objects.get(pk=citizen_id))
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get("/api/v1/slots", params, HTTP_AUTHORIZATION=f"Bearer {token}")
            elapsed = time.perf_counter() - started
        body = response.json() if response.status_code == 200 else {}
        return elapsed, len(ctx.captured_queries), response.status_code, len(body.get("results", []))

    paths: dict[str, list[tuple[int, dict[str, object]]]] = {"mine": [], "gmf": [], "near": []}
    for i in range(args.searches):
        reason = reasons[i % len(reasons)]
        paths["mine"].append((rng.choice(enrolled), {"path": "mine", "reason": reason}))
        paths["gmf"].append((rng.choice(enrolled), {"path": "gmf", "reason": reason}))
        fsa = rng.choice(fsas)
        radius = 25 if fsa[0] in "HJ" else 100  # Montréal and its crown: cities; elsewhere: far
        paths["near"].append(
            (rng.choice(anyone), {"path": "near", "postal_code": fsa, "radius_km": radius, "reason": reason})
        )
    for cases in paths.values():  # warm up: connections, caches, plans
        for citizen_id, params in cases[:5]:
            search(citizen_id, params)

    report: dict[str, object] = {}
    for path, cases in paths.items():
        times, queries, statuses, found = [], [], {}, 0
        for citizen_id, params in cases:
            elapsed, n, status, results = search(citizen_id, params)
            times.append(elapsed)
            queries.append(n)
            statuses[status] = statuses.get(status, 0) + 1
            found += results > 0
        report[path] = {
            "searches": len(cases),
            "latency": percentiles(times),
            "queries_min": min(queries),
            "queries_max": max(queries),
            "statuses": statuses,
            "with_results": round(found / len(cases), 3),
        }
        print(path, json.dumps(report[path]))
    data = {
        "scenario": "citizen search, GET /api/v1/slots in-process (Django test client, production settings)",
        "machine": machine(),
        "paths": report,
        "target_p95_ms": 50,
    }
    print(f"written to {write_json(args.out, data)}")


if __name__ == "__main__":
    main()
