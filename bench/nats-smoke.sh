#!/usr/bin/env bash
# chat-bench's NATS protocol path (--proto nats, used by peers-cb.sh) against a private nats-server
# on loopback: W3 and W2, tiny and --strict (exit 1 on loss, duplicates, errors). Part of
# `make bench-smoke`. Timings are not checked. Needs nats-server (scripts/install-deps.sh --test).
set -euo pipefail
B=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$B")
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench}
WORK=$(mktemp -d /tmp/chatd-nats-smoke.XXXXXX)
log() { echo "[nats-smoke $(date -u +%H:%M:%S)] $*" >&2; }

command -v nats-server >/dev/null || { log "nats-server not installed (scripts/install-deps.sh --test)"; exit 1; }
cmake -S "$B" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" >&2

port_free() { ! ss -Htan "( sport = :$1 )" 2>/dev/null | grep -q .; }
WS_PORT=${NATS_WS_PORT:-19180}
while ! port_free "$WS_PORT" || ! port_free $((WS_PORT + 1)); do WS_PORT=$((WS_PORT + 2)); done
cat >"$WORK/nats.conf" <<EOF
listen: 127.0.0.1:$((WS_PORT + 1))
authorization { token: "bench-token" }
websocket { listen: "127.0.0.1:$WS_PORT", no_tls: true, compression: false }
EOF
nats-server -c "$WORK/nats.conf" >"$WORK/nats.log" 2>&1 </dev/null &
PID=$!
cleanup() {
  kill -TERM "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for ((i = 0; i < 100; i++)); do
  (exec 3<>"/dev/tcp/127.0.0.1/$WS_PORT") 2>/dev/null && break
  kill -0 "$PID" 2>/dev/null || { log "nats-server exited:"; cat "$WORK/nats.log" >&2; exit 1; }
  sleep 0.1
done

common=(--proto nats --server "127.0.0.1:$WS_PORT" --server-pid "$PID" --step 1 --drain 1 --strict)
timeout 60 "$BUILD/chat-bench" --workload w3 --groups 2 --group-size 10 --rates 20,50 "${common[@]}" \
  --out "$WORK/w3.json" >/dev/null
timeout 60 "$BUILD/chat-bench" --workload w2 --users 20 --rates 100,200 "${common[@]}" \
  --out "$WORK/w2.json" >/dev/null
log "chat-bench --proto nats: w3 and w2 passed (no loss, no duplicates, no errors)"
