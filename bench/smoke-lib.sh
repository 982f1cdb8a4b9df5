# Shared by nats-smoke.sh and socketio-smoke.sh (source it): builds chat-bench, starts a peer
# server on loopback, stops it on exit.
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$B")
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench}
SMOKE_WORK=$(mktemp -d /tmp/chatd-peer-smoke.XXXXXX)
SERVER_PID=

smoke_log() { echo "[$(basename "$0" .sh) $(date -u +%H:%M:%S)] $*" >&2; }

build_chat_bench() {
  cmake -S "$B" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" >&2
}

# free_port FIRST [STRIDE]: the first port from FIRST (FIRST, FIRST+STRIDE, ...) with nothing on it
# nor on the port after it.
free_port() {
  local p=$1 stride=${2:-2}
  while ss -Htan "( sport = :$p or sport = :$((p + 1)) )" 2>/dev/null | grep -q .; do p=$((p + stride)); done
  echo "$p"
}

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$SMOKE_WORK"
}
trap stop_server EXIT

# start_server PORT COMMAND...: runs the command in the background (log in $SMOKE_WORK/server.log)
# and waits until PORT accepts connections; SERVER_PID is its PID.
start_server() {
  local port=$1 i
  shift
  "$@" >"$SMOKE_WORK/server.log" 2>&1 </dev/null &
  SERVER_PID=$!
  for ((i = 0; i < 100; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  smoke_log "the server did not start on $port:"
  cat "$SMOKE_WORK/server.log" >&2
  return 1
}
