#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1 for the tests: reuse them when they
# run, start them with this machine's commands where those exist, else stop with a clear
# message. Also creates the `platform` database the test settings point at.
set -euo pipefail

PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
export PGHOST PGPORT PGUSER

pg_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

wait_for() { # wait_for <check> <name>
  for _ in $(seq 1 50); do "$1" && return 0; sleep 0.2; done
  echo "ensure-services: $2 did not come up on 127.0.0.1" >&2; return 1
}

if ! command -v pg_isready >/dev/null; then
  echo "ensure-services: PostgreSQL client tools are missing; install PostgreSQL (apt-get install postgresql)." >&2
  exit 1
fi
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "ensure-services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    wait_for pg_up PostgreSQL
  else
    echo "ensure-services: PostgreSQL is not answering on $PGHOST:$PGPORT and cannot be started here." >&2
    echo "Start it, or point DATABASE_URL at one (trust or password auth, a user that may CREATE DATABASE)." >&2
    exit 1
  fi
fi
if ! psql -tAc "SELECT 1 FROM pg_database WHERE datname='platform'" postgres | grep -q 1; then
  createdb platform
fi

if ! command -v redis-cli >/dev/null; then
  echo "ensure-services: Redis is missing; install it (apt-get install redis-server)." >&2
  exit 1
fi
if ! redis_up; then
  if command -v redis-server >/dev/null; then
    echo "ensure-services: starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    wait_for redis_up Redis
  else
    echo "ensure-services: Redis is not answering on 127.0.0.1:6379 and cannot be started here." >&2
    exit 1
  fi
fi
echo "ensure-services: PostgreSQL and Redis are up"
