#!/usr/bin/env bash
# `make bench`: a provincial-size database of its own on the local PostgreSQL, then each scenario.
# Today: the seed (timed) and the citizen search plans (docs/search-plan.md). The benchmarks issue
# adds the booking, reconciliation, memory and load scenarios here.
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
