#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1: start them if installed but stopped, install
# them with apt-get when missing and we are root, otherwise say plainly what to do.
set -uo pipefail

pg_ok() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_ok() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
as_root() { [ "$(id -u)" = 0 ]; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then
  if as_root; then
    echo "Installing PostgreSQL and Redis with apt-get…"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >/dev/null
  fi
fi

if ! pg_ok; then
  if command -v pg_lsclusters >/dev/null 2>&1; then
    version=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1{print $1}')
    if [ -n "$version" ]; then
      echo "Starting PostgreSQL $version…"
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    fi
  fi
  for _ in $(seq 1 30); do pg_ok && break; sleep 1; done
fi
if ! pg_ok; then
  echo "PostgreSQL does not answer on 127.0.0.1:5432. Install and start it (trust auth for user postgres)." >&2
  exit 1
fi
# Trust auth for local tests: the postgres role must log in without a password.
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  echo "PostgreSQL answers but user postgres cannot log in without a password on 127.0.0.1." >&2
  exit 1
fi

if ! redis_ok; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "Starting Redis…"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  fi
  for _ in $(seq 1 20); do redis_ok && break; sleep 0.5; done
fi
if ! redis_ok; then
  echo "Redis does not answer on 127.0.0.1:6379. Install and start redis-server." >&2
  exit 1
fi
echo "PostgreSQL and Redis are up."
