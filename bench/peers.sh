#!/usr/bin/env bash
# Run the shared peer harness (/work/shared/peers: same Node driver, same workloads W1-W3) against
# chatd and the peers, side by side:
#   bench/peers.sh [PEERS] [WORKLOADS]      default: "chatd socketio nats ejabberd" "w1 w2 w3"
# Copies the read-only harness to $PEERS_DIR (/tmp/peers) and runs its install.sh the first time,
# installs our adapter (peers-adapter/driver/adapters/chatd.js) and peer directory
# (peers-adapter/peers/chatd/) into the copy, then runs `./run.sh <peer> <workload>` for each.
# The harness's knobs pass through: REPEAT, W1_CONNS, HOLD, W2_USERS, W2_DURATION, W3_RATES,
# W3_STEP, W3_DRAIN, W3_REFINE, QUIET_WAIT, ... (see /work/shared/peers/README.md).
# Results: $PEERS_DIR/results/ (copied to bench/results/peers/).
set -euo pipefail
B=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$B")
SRC=${PEERS_SRC:-/work/shared/peers}
DST=${PEERS_DIR:-/tmp/peers}
CHATD=${CHATD:-$ROOT/build/release/chatd}
PEERS=${1:-"chatd socketio nats ejabberd"}
WLS=${2:-"w1 w2 w3"}

if [ ! -d "$DST/node_modules" ] || [ "${FRESH:-0}" = 1 ]; then
  rm -rf "$DST"
  cp -r "$SRC" "$DST"
  (cd "$DST" && ./install.sh)
fi
[ -x "$CHATD" ] || make -C "$ROOT" build
install -m 0644 "$B/peers-adapter/driver/adapters/chatd.js" "$DST/driver/adapters/chatd.js"
mkdir -p "$DST/peers/chatd"
for f in peer.json prepare.js; do install -m 0644 "$B/peers-adapter/peers/chatd/$f" "$DST/peers/chatd/$f"; done
for f in start.sh stop.sh prepare.sh; do install -m 0755 "$B/peers-adapter/peers/chatd/$f" "$DST/peers/chatd/$f"; done
echo "CHATD_BIN=$CHATD" > "$DST/peers/chatd/env.sh"
# a template from an older chatd binary is not reused
T=$DST/peers/chatd/run/template
if [ -d "$T" ] && [ "$CHATD" -nt "$T/map.json" ]; then rm -rf "$T"; fi

cd "$DST"
rc=0
for p in $PEERS; do
  for w in $WLS; do
    ./run.sh "$p" "$w" || rc=1
  done
done
node driver/summarize.js --table results/SUMMARY.md || true
mkdir -p "$B/results/peers"
mkdir -p "$B/results/peers/raw"
cp results/*.json results/SUMMARY.md "$B/results/peers/" 2>/dev/null || true
cp results/raw/*.json "$B/results/peers/raw/" 2>/dev/null || true
echo "peers: results in $DST/results and $B/results/peers" >&2
exit $rc
