"""In-process timing of a 10,000-slot agenda snapshot (not collected by pytest: run it by name).

Times ``snapshot_input``, ``snapshot_accept`` and ``snapshot_reconcile`` for the bench's three
snapshots (the first, the same agenda again, 10 % changed), on the test database, without HTTP or
Celery. To compare with an earlier version in the same run (the machine is shared: compare ratios),
copy that version's ``sync/snapshots.py`` to ``sync/_old_snapshots.py`` (not committed) first:

    DATABASE_URL=... REDIS_URL=... .venv/bin/python -m pytest tests/sync/profile_snapshot.py -s -q

Environment: ``N`` (slots, 10000), ``ONLY`` (old or new), ``PROF`` (``new:10pct``: a cProfile of that
reconciliation), ``QUERIES`` (the slowest statements of each reconciliation), ``NOGC`` (Python's cyclic
garbage collector off for the whole run, to see what it costs).
"""

import cProfile
import gc
import importlib
import importlib.util
import json
import os
import pstats
import time
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sync import snapshots as new
from sync.models import EmrClient

N = int(os.environ.get("N", "10000"))
REASONS = "https://rdv-sante.quebec/fhir/CodeSystem/reason"


def _z(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def agenda(persona, base, count, prefix="S"):
    """``count`` 15-minute slots, 40 a day from ``base``."""
    system = f"https://rdv-sante.quebec/fhir/sid/clinic/{persona.clinic.pk}/slot"
    slots = []
    for i in range(count):
        day, k = divmod(i, 40)
        start = base + timedelta(days=day, minutes=15 * k)
        slots.append(
            {
                "resourceType": "Slot",
                "schedule": {"reference": f"Schedule/{persona.role.pk}"},
                "status": "free",
                "start": _z(start),
                "end": _z(start + timedelta(minutes=15)),
                "serviceType": [{"coding": [{"system": REASONS, "code": "follow_up"}]}],
                "identifier": [{"system": system, "value": f"{prefix}{i}"}],
            }
        )
    return slots


def changed(persona, slots, base):
    """As bench/sync_bench.py: 5 % moved 10 h 15 later, 2.5 % dropped, 2.5 % new before ``base``."""
    n = len(slots)
    out = [dict(s) for s in slots]
    for k in range(n // 20):
        s = out[k * 20]
        start = datetime.fromisoformat(s["start"].replace("Z", "+00:00")) + timedelta(hours=10, minutes=15)
        s["start"], s["end"] = _z(start), _z(start + timedelta(minutes=15))
    drop = {k * 40 + 7 for k in range(n // 40)}
    out = [s for i, s in enumerate(out) if i not in drop]
    extra = agenda(persona, base, n // 40, prefix="N")
    for i, s in enumerate(extra):
        day, k = divmod(i, 12)
        start = base + timedelta(days=day, hours=-3, minutes=15 * k)
        s["start"], s["end"] = _z(start), _z(start + timedelta(minutes=15))
    return out + extra


def body(generation, slots, base, days):
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "start", "valueInstant": _z(base - timedelta(days=1))},
            {"name": "end", "valueInstant": _z(base + timedelta(days=days + 2))},
            {"name": "generation", "valueInteger": generation},
            *({"name": "slot", "resource": s} for s in slots),
        ],
    }


def run(module, persona, snapshot_body, profile=None):
    emr = EmrClient.objects.get(application__client_id=persona.client_id)
    t0 = time.perf_counter()
    data = module.snapshot_input(snapshot_body, role=persona.role, clinic_ids=[persona.clinic.pk])
    t1 = time.perf_counter()
    snapshot, _retry = module.snapshot_accept(emr_client=emr, data=data)
    t2 = time.perf_counter()
    if profile:
        profile.enable()
    with CaptureQueriesContext(connection) as queries:
        snapshot = module.snapshot_reconcile(snapshot.pk)
    if profile:
        profile.disable()
    t3 = time.perf_counter()
    assert snapshot.status == "done", snapshot.error
    if os.environ.get("QUERIES"):
        for q in sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[:4]:
            print("  Q", q["time"], q["sql"][:300])
    counts = {k: v for k, v in snapshot.counts.items() if k != "refusals"}
    return {
        "input": round(t1 - t0, 3),
        "accept": round(t2 - t1, 3),
        "reconcile": round(t3 - t2, 3),
        "total": round(t3 - t0, 3),
        "counts": counts,
    }


def test_profile(persona_a, persona_b):
    if os.environ.get("NOGC"):  # to see what the cyclic garbage collector costs
        gc.disable()
    base = (timezone.now() + timedelta(days=2)).replace(hour=12, minute=0, second=0, microsecond=0)
    days = -(-N // 40)
    impls = [("new", new, persona_b)]
    if importlib.util.find_spec("sync._old_snapshots"):
        impls.insert(0, ("old", importlib.import_module("sync._old_snapshots"), persona_a))
    if os.environ.get("ONLY"):
        impls = [i for i in impls if i[0] == os.environ["ONLY"]]
    results = {}
    for generation, label in ((1, "first"), (2, "same"), (3, "10pct")):
        for name, module, persona in impls:
            slots = agenda(persona, base, N)
            if label == "10pct":
                slots = changed(persona, slots, base)
            profile = cProfile.Profile() if os.environ.get("PROF") == f"{name}:{label}" else None
            results[name, label] = run(module, persona, body(generation, slots, base, days), profile)
            print(name, label, json.dumps(results[name, label]), flush=True)
            if profile:
                pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
    if len(impls) == 2:
        for label in ("first", "same", "10pct"):
            old, now = results["old", label], results["new", label]
            print(
                f"RATIO {label}: reconcile {old['reconcile']} → {now['reconcile']} s "
                f"(×{old['reconcile'] / now['reconcile']:.2f}); input+accept+reconcile {old['total']} → "
                f"{now['total']} s (×{old['total'] / now['total']:.2f})"
            )
