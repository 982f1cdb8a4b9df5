#!/usr/bin/env bash
# A throwaway redis-server for the cluster-state conformance tests. Nothing here is for production.
#   scripts/redis-test-server.sh start   start it if it is not running, wait until it answers PING,
#                                        print its URL (idempotent)
#   scripts/redis-test-server.sh stop    stop it (by pid; idempotent)
#   scripts/redis-test-server.sh url     print the URL
# Loopback only, no persistence. Port: CHATD_REDIS_TEST_PORT (default 56380).
set -euo pipefail

PORT=${CHATD_REDIS_TEST_PORT:-56380}
ROOT=/tmp/chatd-redis-$(id -u)-$PORT
URL="redis://127.0.0.1:${PORT}"

running() { [[ -f "$ROOT/redis.pid" ]] && kill -0 "$(cat "$ROOT/redis.pid")" 2>/dev/null; }

case "${1:-}" in
  start)
    command -v redis-server >/dev/null || { echo "redis-server not found (apt-get install redis-server)" >&2; exit 1; }
    mkdir -p "$ROOT"
    if ! running; then
      redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no --daemonize yes \
        --pidfile "$ROOT/redis.pid" --logfile "$ROOT/redis.log" --dir "$ROOT" >/dev/null
    fi
    for _ in $(seq 1 100); do
      if [[ "$(redis-cli -p "$PORT" ping 2>/dev/null)" == PONG ]]; then echo "$URL"; exit 0; fi
      sleep 0.1
    done
    echo "redis-server did not answer on 127.0.0.1:$PORT (see $ROOT/redis.log)" >&2
    exit 1
    ;;
  stop)
    if running; then
      pid=$(cat "$ROOT/redis.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$ROOT/redis.pid"
    ;;
  url) echo "$URL" ;;
  *)
    echo "usage: $0 start|stop|url" >&2
    exit 2
    ;;
esac
