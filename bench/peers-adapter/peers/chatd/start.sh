#!/bin/bash
# Start chatd on 127.0.0.1:18400 with a fresh data dir. If prepare.sh saved a template (users,
# groups and direct conversations already registered), the fresh dir is a copy of it, so every run
# starts with the same users and an empty history.
set -euo pipefail
D=$(cd "$(dirname "$0")" && pwd)
. "$D/../common.sh"
[ -f "$D/env.sh" ] && . "$D/env.sh"   # written by bench/peers.sh: CHATD_BIN
CHATD_BIN=${CHATD_BIN:-/work/main/build/release/chatd}
PORT=${CHATD_PORT:-18400}
RUN=$D/run
PIDF=$RUN/server.pid
if pid_alive "$PIDF"; then echo "chatd already running (pid $(cat "$PIDF"))"; exit 0; fi
# The previous run's 2000 connections linger in TIME-WAIT for up to 60 s, and the harness's port
# check counts them as in use (a repeated run then did not start): wait for them to go. Anything
# else on the port (a listener, live connections) is left to require_ports to report.
for ((i = 0; i < 90; i++)); do
  states=$(ss -Htan "( sport = :$PORT )" | awk '{print $1}' | sort -u)
  [ "$states" = "TIME-WAIT" ] || break
  sleep 1
done
require_ports "$PORT"
mkdir -p "$RUN"
rm -rf "$RUN/data" && mkdir -p "$RUN/data"
if [ -f "$RUN/template/map.json" ]; then
  cp -a "$RUN/template/data/." "$RUN/data/"
  cp "$RUN/template/map.json" "$RUN/map.json"
else
  rm -f "$RUN/map.json"
fi
ulimit -n "$(ulimit -Hn)"
setsid nohup "$CHATD_BIN" --listen "127.0.0.1:$PORT" --data-dir "$RUN/data" \
  --rate-auth-ip-per-min 10000000 --rate-auth-account-per-min 10000000 --rate-send-per-sec 100000 \
  --log-level warn > "$RUN/server.log" 2>&1 < /dev/null &
echo $! > "$PIDF"
wait_tcp 127.0.0.1 "$PORT" 30
echo "chatd started: pid $(cat "$PIDF"), ws://127.0.0.1:$PORT/ws"
