#!/usr/bin/env bash
# The physical limit (issue 7, scenario 2): the booking's writes as raw SQL through pgbench
# (bench/book.sql: compare-and-set slot update with version bump, appointment insert, outbox insert),
# with 32 and 128 clients for BENCH_PGBENCH_SECONDS (default 15) each, on disjoint free slots.
# The database is put back exactly as it was after each run (bench/booking_common.py restore).
# Writes bench/results/booking_pgbench.json.
set -euo pipefail
cd "$(dirname "$0")/.."
DB=${BENCH_DB:-rdv_bench}
SECONDS_PER_RUN=${BENCH_PGBENCH_SECONDS:-15}
POOL=${BENCH_PGBENCH_POOL:-150000}
CLIENTS=${BENCH_PGBENCH_CLIENTS:-"32 128"}
PY=.venv/bin/python
PSQL=(psql -h 127.0.0.1 -U postgres -d "$DB" -Atq)
mkdir -p bench/results
tmp=$(mktemp -d)
trap '$PY bench/booking_common.py restore >/dev/null; rm -rf "$tmp"' EXIT

runs=()
for c in $CLIENTS; do
  $PY bench/booking_common.py stage-pgbench --pool "$POOL" > "$tmp/stage.json"
  # PostgreSQL here allows max_connections (100): 128 pgbench connections do not fit. Run the
  # largest count that does (a margin is left for other sessions) and record both numbers.
  free=$("${PSQL[@]}" -c "select current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int - (select count(*) from pg_stat_activity) - 8")
  run=$c; [ "$run" -gt "$free" ] && run=$free
  echo "pgbench: $c clients requested, $run run, ${SECONDS_PER_RUN} s"
  # BENCH_PGBENCH_TRANSACTIONS (per client) instead of a duration: the smoke run's small pool
  # would be used up within the second on an idle machine.
  if [ -n "${BENCH_PGBENCH_TRANSACTIONS:-}" ]; then length=(-t "$BENCH_PGBENCH_TRANSACTIONS"); else length=(-T "$SECONDS_PER_RUN"); fi
  pgbench -n -h 127.0.0.1 -U postgres -M prepared -f bench/book.sql -c "$run" -j 2 "${length[@]}" -P 5 "$DB" \
    > "$tmp/out.txt" 2> "$tmp/err.txt" || { cat "$tmp/out.txt" "$tmp/err.txt"; exit 1; }
  cat "$tmp/out.txt"
  $PY bench/booking_common.py check > "$tmp/check.json"
  cat "$tmp/check.json"
  $PY - "$c" "$run" "$SECONDS_PER_RUN" "$tmp/out.txt" "$tmp/err.txt" "$tmp/check.json" "$tmp/stage.json" >> "$tmp/runs.jsonl" <<'PYEOF'
import json, re, sys
requested, run, secs, out, err, check, stage = sys.argv[1:]
text = open(out).read()
def num(pattern):
    m = re.search(pattern, text)
    return float(m.group(1)) if m else None
print(json.dumps({
    "clients_requested": int(requested),
    "clients": int(run),
    "seconds": int(secs),
    "transactions": int(num(r"number of transactions actually processed: (\d+)") or 0),
    "failed": int(num(r"number of failed transactions: (\d+)") or 0),
    "tps": num(r"tps = ([\d.]+) \(without initial connection time\)"),
    "latency_avg_ms": num(r"latency average = ([\d.]+) ms"),
    "latency_stddev_ms": num(r"latency stddev = ([\d.]+) ms"),
    "check": json.load(open(check)),
    "stage": json.load(open(stage)),
    "stderr_tail": open(err).read()[-500:],
}))
PYEOF
  $PY bench/booking_common.py restore
done

$PY - "$tmp/runs.jsonl" <<'PYEOF'
import json, sys
sys.path.insert(0, "bench")
from booking_common import machine, write_json
runs = [json.loads(line) for line in open(sys.argv[1])]
path = write_json("booking_pgbench.json", {
    "scenario": "booking as raw SQL through pgbench (bench/book.sql), disjoint free slots",
    "machine": machine(),
    "runs": runs,
})
for r in runs:
    print(f"pgbench c={r['clients']} (asked {r['clients_requested']}): {r['tps']} bookings/s, "
          f"avg {r['latency_avg_ms']} ms, double bookings {r['check']['double_bookings']}")
print(f"written {path}")
PYEOF
