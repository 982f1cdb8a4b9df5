#!/usr/bin/env bash
# chat-bench against chatd and two peers of /work/shared/peers, NATS and Socket.IO, side by side:
# the same C++ driver, the same workloads, so the comparison is not bounded by the peers' Node
# driver (which saturates near 1.3 cores, about where chatd and NATS both stop in bench/peers.sh).
#   bench/peers-cb.sh [PEERS] [WORKLOADS]      default: "chatd nats socketio" "w3 w2"
# chatd runs through run.sh (fresh data dir per run, SQLite, every ack after an fsync'd commit);
# each peer run starts a fresh instance with the harness's own start.sh/stop.sh (copied to
# $PEERS_DIR as bench/peers.sh does) and runs `chat-bench --proto nats|socketio`.
# ejabberd is not here: chat-bench has no XMPP client, and the Node driver is not its limit (it
# holds ~5-10k deliveries/s there), so bench/peers.sh's figure stands for it.
# Knobs (environment): REPEAT (3), W3_RATES, W3_REFINE (2), W2_USERS (1000), W2_RATES,
#   STEP_SECONDS (10), DRAIN_SECONDS (2), PEERS_DIR (/tmp/peers), OUT (bench/results/peers-cb).
# Results: $OUT/<peer>/raw/*.json, $OUT/<peer>/SUMMARY.md (medians), $OUT/SUMMARY.md (side by side).
set -euo pipefail
B=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$B")
SRC=${PEERS_SRC:-/work/shared/peers}
DST=${PEERS_DIR:-/tmp/peers}
OUT=${OUT:-$B/results/peers-cb}
PEERS=${1:-"chatd nats socketio"}
WLS=${2:-"w3 w2"}
REPEAT=${REPEAT:-3}
W3_RATES=${W3_RATES:-250,500,1000,2000,3000,4000,6000,8000,12000}
W3_REFINE=${W3_REFINE:-2}
W2_USERS=${W2_USERS:-1000}
W2_RATES=${W2_RATES:-500,1000,2000,4000,8000,12000,16000,24000,32000}
STEP_SECONDS=${STEP_SECONDS:-10}
DRAIN_SECONDS=${DRAIN_SECONDS:-2}
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench}

log() { echo "[peers-cb $(date -u +%H:%M:%S)] $*" >&2; }

cmake -S "$B" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" >&2
BENCH=$BUILD/chat-bench
if [ ! -d "$DST/node_modules" ] || [ "${FRESH:-0}" = 1 ]; then
  rm -rf "$DST"
  cp -r "$SRC" "$DST"
  (cd "$DST" && ./install.sh)
fi
ulimit -n "$(ulimit -Hn)"

# The previous run's connections linger in TIME-WAIT and the harness's start.sh refuses a port
# with any socket on it: wait (up to 90 s) until only TIME-WAIT is gone.
wait_port_quiet() {
  local i states
  for ((i = 0; i < 90; i++)); do
    states=$(ss -Htan "( sport = :$1 )" | awk '{print $1}' | sort -u)
    [ -z "$states" ] && return 0
    [ "$states" = "TIME-WAIT" ] || return 0
    sleep 1
  done
}

rc=0
for p in $PEERS; do
  mkdir -p "$OUT/$p/raw"
  if [ "$p" = chatd ]; then
    RESULTS=$OUT/chatd REPEAT=$REPEAT WORKLOADS="$WLS" W3_RATES=$W3_RATES W3_REFINE=$W3_REFINE \
      W2_USERS=$W2_USERS W2_RATES=$W2_RATES STEP_SECONDS=$STEP_SECONDS DRAIN_SECONDS=$DRAIN_SECONDS \
      "$B/run.sh" || rc=1
    continue
  fi
  case $p in
    nats) port=8080 ;;
    socketio) port=3000 ;;
    *) log "unknown peer $p (chat-bench speaks chatd, nats, socketio)"; rc=1; continue ;;
  esac
  raws=()
  for w in $WLS; do
    for ((r = 1; r <= REPEAT; r++)); do
      wait_port_quiet "$port"
      "$DST/peers/$p/start.sh" >&2
      pid=$(cat "$DST/peers/$p/run/server.pid")
      out=$OUT/$p/raw/$w-r$r-$(date -u +%Y%m%dT%H%M%S).json
      if [ "$w" = w3 ]; then
        args=(--rates "$W3_RATES" --refine "$W3_REFINE")
      else
        args=(--users "$W2_USERS" --rates "$W2_RATES")
      fi
      log "$p $w run $r/$REPEAT"
      timeout 1200 "$BENCH" --proto "$p" --workload "$w" --server "127.0.0.1:$port" --server-pid "$pid" \
        --step "$STEP_SECONDS" --drain "$DRAIN_SECONDS" "${args[@]}" --out "$out" || true
      "$DST/peers/$p/stop.sh" >&2
      [ -s "$out" ] && raws+=("$out")
    done
  done
  if [ ${#raws[@]} -gt 0 ]; then
    python3 "$B/summarize.py" --results "$OUT/$p" "${raws[@]}"
  fi
done
python3 "$B/summarize.py" --side-by-side "$OUT" > "$OUT/SUMMARY.md" || rc=1
log "results in $OUT (side by side: $OUT/SUMMARY.md)"
exit $rc
