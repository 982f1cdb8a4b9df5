#!/usr/bin/env bash
# chat-bench's NATS protocol path (--proto nats, used by peers-cb.sh) against a private nats-server
# on loopback: W3 and W2, tiny and --strict (exit 1 on loss, duplicates, errors). Part of
# `make bench-smoke`. Timings are not checked. Needs nats-server (scripts/install-deps.sh --test).
set -euo pipefail
. "$(dirname "$0")/smoke-lib.sh"

command -v nats-server >/dev/null || { smoke_log "nats-server not installed (scripts/install-deps.sh --test)"; exit 1; }
build_chat_bench
PORT=$(free_port "${NATS_WS_PORT:-19180}")
cat >"$SMOKE_WORK/nats.conf" <<CONF
listen: 127.0.0.1:$((PORT + 1))
authorization { token: "bench-token" }
websocket { listen: "127.0.0.1:$PORT", no_tls: true, compression: false }
CONF
start_server "$PORT" nats-server -c "$SMOKE_WORK/nats.conf"

common=(--proto nats --server "127.0.0.1:$PORT" --server-pid "$SERVER_PID" --step 1 --drain 1 --strict)
timeout 60 "$BUILD/chat-bench" --workload w3 --groups 2 --group-size 10 --rates 20,50 "${common[@]}" >/dev/null
timeout 60 "$BUILD/chat-bench" --workload w2 --users 20 --rates 100,200 "${common[@]}" >/dev/null
smoke_log "chat-bench --proto nats: w3 and w2 passed (no loss, no duplicates, no errors)"
