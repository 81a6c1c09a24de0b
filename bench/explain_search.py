"""EXPLAIN (ANALYZE, BUFFERS) of the citizen search on a seeded database; writes docs/search-plan.md.

Usage (on a provincial-size database made with seed_demo --clinics 2000 --days 60):
    DATABASE_URL=postgres://postgres@127.0.0.1/rdv_bench DJANGO_DEBUG=true \\
        .venv/bin/python bench/explain_search.py [--out docs/search-plan.md]
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from booking import selectors  # noqa: E402
from booking.models import Slot  # noqa: E402
from citizens.models import Citizen  # noqa: E402
from clinics.models import Clinic  # noqa: E402

CASES = [
    (
        "near H2X (Montréal), 25 km, soonest",
        {"path": "near", "fsa": "H2X", "radius_km": 25, "sort": "soonest"},
    ),
    (
        "near H2X (Montréal), 25 km, nearest",
        {"path": "near", "fsa": "H2X", "radius_km": 25, "sort": "nearest"},
    ),
    ("near G0B (Îles-de-la-Madeleine), 100 km, soonest", {"path": "near", "fsa": "G0B", "radius_km": 100}),
    (
        "near G0G (Schefferville), 100 km: no clinic, a recorded miss",
        {"path": "near", "fsa": "G0G", "radius_km": 100},
    ),
    ("near G8L (Dolbeau-Mistassini), 25 km, soonest", {"path": "near", "fsa": "G8L", "radius_km": 25}),
    ("my family doctor", {"path": "mine"}),
    ("my GMF", {"path": "gmf"}),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs" / "search-plan.md"))
    args = parser.parse_args()
    citizen = (
        Citizen.objects.filter(enrolments__is_active=True, enrolments__gmf__isnull=False)
        .order_by("pk")
        .first()
    )
    counts = {
        "clinics": Clinic.objects.count(),
        "slots": Slot.objects.count(),
        "free public slots": Slot.objects.filter(status="free", audience="public").count(),
    }
    out = [
        "# The citizen search on provincial-size data",
        "",
        "Made by `bench/explain_search.py` on a database seeded with",
        "`manage.py seed_demo --clinics 2000 --days 60 --seed 1` (PostgreSQL "
        + connection.cursor().connection.info.parameter_status("server_version")
        + ", 2 cores). "
        + ", ".join(f"{v:,} {k}" for k, v in counts.items())
        + ".",
        "",
        "Each case runs `booking.selectors.slot_search` once to warm the cache, then again to count its SQL",
        "queries and time it; every SELECT on slots or clinics is then explained with ANALYZE and BUFFERS.",
        "Reason filter: follow-up. Page size 10 (+1 row to know whether there is a next page).",
        "",
        "| case | queries | results | wall time (ms) |",
        "| --- | --- | --- | --- |",
    ]
    details = []
    for title, params in CASES:
        query = selectors.SlotQuery(reason="follow_up", **params)
        selectors.slot_search(citizen=citizen, query=query)
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            result = selectors.slot_search(citizen=citizen, query=query)
            elapsed = (time.perf_counter() - started) * 1000
        out.append(f"| {title} | {len(ctx.captured_queries)} | {len(result.items)} | {elapsed:.1f} |")
        details.append(f"## {title}\n")
        for captured in ctx.captured_queries:
            sql = captured["sql"]
            if not sql.startswith("SELECT") or ("booking_slot" not in sql and "clinics_clinic" not in sql):
                continue
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                plan = "\n".join(row[0] for row in cursor.fetchall())
            details.append("```\n" + plan + "\n```\n")
    out.append("")
    out.extend(details)
    Path(args.out).write_text("\n".join(out) + "\n")
    print("\n".join(out[: 16 + len(CASES)]))


if __name__ == "__main__":
    main()
