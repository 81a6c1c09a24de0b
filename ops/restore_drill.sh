#!/usr/bin/env bash
# Restore drill (docs/backups.md): dump a database (or take an existing dump), restore it into a
# scratch database on the same server, compare every table's row count, check the booking invariants
# (ops/restore_verify.sql), and drop the scratch database whatever happens.
#
#   ops/restore_drill.sh [SOURCE_DATABASE_URL]         # default: $DATABASE_URL; dump it now
#   ops/restore_drill.sh --dump FILE [SERVER_URL]      # restore last night's pg_dump -Fc file instead
#
# Row counts are compared with the source only when the script made the dump itself and
# RESTORE_DRILL_EXACT=1 (the default): run it on a quiet database or a replica, or set it to 0 on a
# busy primary (counts then only printed). Needs pg_dump, pg_restore and psql of the server's version.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dump_file=""
if [[ "${1:-}" == "--dump" ]]; then
  dump_file="$2"
  shift 2
fi
source_url="${1:-${DATABASE_URL:?set DATABASE_URL or pass a database URL}}"
exact="${RESTORE_DRILL_EXACT:-1}"

# postgres://user@host:port/name?options → the same server, another database name.
query=""
[[ "$source_url" == *\?* ]] && query="?${source_url#*\?}"
base="${source_url%%\?*}"
scratch="rdv_restore_drill_$(date +%s)_$$"
scratch_url="${base%/*}/${scratch}${query}"

workdir="$(mktemp -d)"
cleanup() {
  psql "$source_url" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap cleanup EXIT

counts_sql="SELECT table_name || ' ' || (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I', table_name), false, true, '')))[1]::text
  FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"

started=$SECONDS
if [[ -z "$dump_file" ]]; then
  dump_file="$workdir/drill.dump"
  pg_dump --format=custom --no-owner --no-acl --file="$dump_file" "$source_url"
  if [[ "$exact" == 1 ]]; then psql "$source_url" -At -c "$counts_sql" >"$workdir/source.counts"; fi
fi
echo "dump: $(du -h "$dump_file" | cut -f1) in $((SECONDS - started)) s"

started=$SECONDS
psql "$source_url" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE ${scratch}" >/dev/null
pg_restore --no-owner --no-acl --exit-on-error --jobs="${RESTORE_DRILL_JOBS:-2}" --dbname="$scratch_url" "$dump_file"
echo "restore into ${scratch}: $((SECONDS - started)) s"

psql "$scratch_url" -At -c "$counts_sql" >"$workdir/restored.counts"
tables=$(wc -l <"$workdir/restored.counts")
rows=$(awk '{s += $2} END {print s + 0}' "$workdir/restored.counts")
echo "restored: ${tables} tables, ${rows} rows"
if [[ -f "$workdir/source.counts" ]]; then
  if ! diff -u "$workdir/source.counts" "$workdir/restored.counts"; then
    echo "restore drill: FAILED, row counts differ (above: - source, + restored)" >&2
    exit 1
  fi
  echo "row counts: identical to the source"
fi

psql "$scratch_url" -q -v ON_ERROR_STOP=1 -f "$here/restore_verify.sql"
echo "restore drill: OK"
