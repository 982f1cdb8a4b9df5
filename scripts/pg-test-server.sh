#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the store conformance tests. Nothing here is for production.
#   scripts/pg-test-server.sh start   initdb if needed, start, wait until it accepts connections,
#                                     print the DSN (idempotent: a running cluster is left as it is)
#   scripts/pg-test-server.sh stop    stop it (idempotent); the data directory stays for next time
#   scripts/pg-test-server.sh dsn     print the DSN
# The cluster listens on 127.0.0.1 only, with trust authentication for loopback: the `chatd` role
# (CREATEDB, so each test can create its own database) and the `chatd` database. fsync stays on, as in
# production, so the durability tests mean something. As root, the server runs as `postgres`.
# CHATD_PG_PORT (default 55432) picks the port, and with it the data directory.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PORT=${CHATD_PG_PORT:-55432}
# One data directory per port, so two clusters can run side by side (the cluster drills stop theirs
# while the conformance suite uses the default one). The default port keeps its historical directory.
if [[ $PORT == 55432 ]]; then
  ROOT=/tmp/chatd-pg-$(id -u)
else
  ROOT=/tmp/chatd-pg-$(id -u)-$PORT
fi
DATA=$ROOT/data
LOG=$ROOT/server.log
DSN="postgresql://chatd@127.0.0.1:${PORT}/chatd"

# Runs a command as the cluster's owner: `postgres` when we are root (the server refuses to run as
# root), else ourselves.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

psql_admin() {
  as_owner "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$ROOT" -p "$PORT" -U postgres -d postgres "$@"
}

running() {
  [[ -f "$DATA/PG_VERSION" ]] && as_owner "$PG_BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

start() {
  if [[ ! -x "$PG_BIN/initdb" ]]; then
    echo "PostgreSQL 15 server binaries not found in $PG_BIN (apt-get install postgresql-15)" >&2
    exit 1
  fi
  mkdir -p "$ROOT"
  if [[ $(id -u) -eq 0 ]]; then chown postgres: "$ROOT"; fi
  chmod 700 "$ROOT"
  if [[ ! -f "$DATA/PG_VERSION" ]]; then
    as_owner "$PG_BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
      >"$ROOT/initdb.log" 2>&1 || {
      cat "$ROOT/initdb.log" >&2
      exit 1
    }
    # Loopback only: TCP on 127.0.0.1 and the socket in our own directory.
    cat >"$ROOT/pg_hba.conf.new" <<EOF
local all all trust
host all all 127.0.0.1/32 trust
EOF
    as_owner cp "$ROOT/pg_hba.conf.new" "$DATA/pg_hba.conf"
    rm -f "$ROOT/pg_hba.conf.new"
  fi
  if ! running; then
    as_owner "$PG_BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$ROOT -c fsync=on \
          -c synchronous_commit=on -c max_connections=300" >/dev/null || {
      tail -n 30 "$LOG" >&2
      exit 1
    }
  fi
  # pg_ctl -w waits for startup; wait for TCP too (what the tests use).
  for _ in $(seq 1 100); do
    if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres; then break; fi
    sleep 0.1
  done
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres || {
    echo "PostgreSQL on 127.0.0.1:$PORT does not accept connections" >&2
    exit 1
  }
  psql_admin <<'EOF'
SELECT 'CREATE ROLE chatd LOGIN CREATEDB' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chatd')
\gexec
SELECT 'CREATE DATABASE chatd OWNER chatd' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'chatd')
\gexec
EOF
  echo "$DSN"
}

stop() {
  if running; then as_owner "$PG_BIN/pg_ctl" -D "$DATA" -w -m fast stop >/dev/null; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  dsn) echo "$DSN" ;;
  *)
    echo "usage: $0 start|stop|dsn" >&2
    exit 2
    ;;
esac
