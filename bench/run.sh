#!/usr/bin/env bash
# `make bench`: a provincial-size database of its own on the local PostgreSQL, then each scenario.
# The seed (timed, reused when present), the citizen search plans (docs/search-plan.md), then the
# booking scenarios of issue 7: raw SQL through pgbench (the physical limit), the booking service
# in-process, and the real HTTP stack (gunicorn); each restores the database exactly afterwards.
# Results: bench/results/booking_*.json; summary: docs/benchmarks.md. Durations: BENCH_PGBENCH_SECONDS
# (15), BENCH_INPROCESS_SECONDS (20), BENCH_SUSTAINED_SECONDS (60). Reconciliation, memory and load
# scenarios come later.
set -euo pipefail
cd "$(dirname "$0")/.."
DB=${BENCH_DB:-rdv_bench}
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/${DB}" DJANGO_DEBUG=true
mkdir -p bench/results
psql -h 127.0.0.1 -U postgres -Atqc "select 1 from pg_database where datname='${DB}'" | grep -q 1 \
  || createdb -h 127.0.0.1 -U postgres "${DB}"
.venv/bin/python manage.py migrate --no-input -v 0
start=$(date +%s)
.venv/bin/python manage.py seed_demo --clinics 2000 --days 60 --seed 1 --if-empty
echo "seed: $(( $(date +%s) - start )) s (0 when the database was already seeded)"
.venv/bin/python bench/explain_search.py --out docs/search-plan.md
echo "Search plans written to docs/search-plan.md"
bash bench/booking_pgbench.sh
.venv/bin/python bench/booking_inprocess.py
.venv/bin/python bench/booking_http.py
.venv/bin/python bench/booking_summary.py --out docs/benchmarks.md
echo "Booking benchmarks written to bench/results/booking_*.json and docs/benchmarks.md"
