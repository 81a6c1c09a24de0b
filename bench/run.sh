#!/usr/bin/env bash
# `make bench`: a provincial-size database of its own on the local PostgreSQL, then each scenario.
# The seed (timed, reused when present), the citizen search plans (docs/search-plan.md), then the
# booking scenarios of issue 7: raw SQL through pgbench (the physical limit), the booking service
# in-process, and the real HTTP stack (gunicorn); each restores the database exactly afterwards.
# Then the citizen search (bench/search_bench.py) and EMR synchronization (bench/sync_bench.py:
# 10,000-slot snapshot, feed and webhook latency, worker memory), and citizen journeys under Locust
# in growing stages past saturation (bench/load_locust.py).
# Results: bench/results/*.json; summary: docs/benchmarks.md. Durations: BENCH_PGBENCH_SECONDS
# (15), BENCH_INPROCESS_SECONDS (20), BENCH_SUSTAINED_SECONDS (60). tests/bench/test_smoke.py runs all
# of it in seconds on a tiny database (BENCH_DB, BENCH_CLINICS, BENCH_RESULTS, ... below).
set -euo pipefail
cd "$(dirname "$0")/.."
DB=${BENCH_DB:-rdv_bench}
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/${DB}" DJANGO_DEBUG=true
mkdir -p bench/results
psql -h 127.0.0.1 -U postgres -Atqc "select 1 from pg_database where datname='${DB}'" | grep -q 1 \
  || createdb -h 127.0.0.1 -U postgres "${DB}"
.venv/bin/python manage.py migrate --no-input -v 0
start=$(date +%s)
.venv/bin/python manage.py seed_demo --clinics "${BENCH_CLINICS:-2000}" --days "${BENCH_DAYS:-60}" --seed 1 --if-empty
echo "seed: $(( $(date +%s) - start )) s (0 when the database was already seeded)"
.venv/bin/python bench/explain_search.py --out "${BENCH_SEARCH_PLAN:-docs/search-plan.md}"
bash bench/booking_pgbench.sh
.venv/bin/python bench/booking_inprocess.py
.venv/bin/python bench/booking_http.py
.venv/bin/python bench/search_bench.py
.venv/bin/python bench/sync_bench.py
.venv/bin/python bench/load_locust.py
.venv/bin/python bench/booking_summary.py --out "${BENCH_SUMMARY:-docs/benchmarks.md}"
echo "Benchmarks written to ${BENCH_RESULTS:-bench/results}/*.json and ${BENCH_SUMMARY:-docs/benchmarks.md}"
