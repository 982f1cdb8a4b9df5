#!/usr/bin/env bash
# chat-bench's Socket.IO protocol path (--proto socketio, used by peers-cb.sh) against a real
# Socket.IO 4 server speaking the peer harness's chat protocol (bench/socketio-smoke/server.mjs, no
# storage): W3 and W2, tiny and --strict. Part of `make bench-smoke`. Timings are not checked.
set -euo pipefail
. "$(dirname "$0")/smoke-lib.sh"

S=$B/socketio-smoke
build_chat_bench
[ -d "$S/node_modules/socket.io" ] || (cd "$S" && npm ci --no-audit --no-fund --loglevel=error)
PORT=$(free_port "${SOCKETIO_PORT:-19190}")
start_server "$PORT" env PORT="$PORT" node "$S/server.mjs"

common=(--proto socketio --server "127.0.0.1:$PORT" --server-pid "$SERVER_PID" --step 1 --drain 1 --strict)
timeout 60 "$BUILD/chat-bench" --workload w3 --groups 2 --group-size 10 --rates 20,50 "${common[@]}" >/dev/null
timeout 60 "$BUILD/chat-bench" --workload w2 --users 20 --rates 100,200 "${common[@]}" >/dev/null
smoke_log "chat-bench --proto socketio: w3 and w2 passed (no loss, no duplicates, no errors)"
