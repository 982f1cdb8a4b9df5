#!/usr/bin/env bash
# Benchmark chatd with chat-bench: builds chat-bench, starts a fresh chatd for every measured run
# (its own data dir), runs W1..W5 REPEAT times, writes results/raw/*.json, results/<wl>.json
# (medians) and results/SUMMARY.md.
#
#   bench/run.sh            full run (REPEAT=3)
#   bench/run.sh --smoke    every workload tiny, < 60 s, exit 1 on any loss/duplicate/error (CI)
#
# Knobs (environment, defaults in brackets):
#   REPEAT [3]  WORKLOADS ["w1 w2 w3 w4 w5"]  PORT [18080]  CHATD [build/release/chatd]
#   W1_CONNS ["1000"] (several: "1000 19000")  W1_USERS [min(N,1000)]  W1_HOLD [30]
#   W2_USERS [1000]  W2_RATES [500,1000,2000,4000,8000,16000]
#   W3_GROUPS [20]  W3_GROUP_SIZE [100]  W3_RATES [250,500,1000,2000,3000,4000,6000]  W3_REFINE [0]
#   STEP_SECONDS [10]  DRAIN_SECONDS [2]
#   W4_MESSAGES [100000] (W4_BIG=1: 1000000)  W4_REQUESTS [1000]
#   W5_SENDERS [32]  W5_WINDOW [32]  W5_SECONDS [10]
#   TARGET [single]: `cluster` runs every workload against a 3-node cluster on loopback
#     (scripts/cluster.sh: PostgreSQL, Redis, 3 chatd nodes, nginx on PORT); chat-bench talks to nginx
#     and its server figures (CPU, RSS) are the sum of the three chatd nodes. Each run gets a fresh
#     PostgreSQL database copied from a template database.
#   TEMPLATE_MAX_AGE_MIN [45]: users/conversations are registered once per workload into a template
#     data dir (argon2id makes registration ~25/s per core) that every run copies; a template older
#     than this is rebuilt (access tokens live 1 h).
set -euo pipefail
B=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$B")
SMOKE=0
[ "${1:-}" = --smoke ] && SMOKE=1
CHATD=${CHATD:-$ROOT/build/release/chatd}
BUILD=${BENCH_BUILD_DIR:-$ROOT/build/bench}
TARGET=${TARGET:-single}
LABEL=chatd
[ "$TARGET" = cluster ] && LABEL=chatd-cluster3
RESULTS=${RESULTS:-$B/results$([ "$TARGET" = cluster ] && echo /cluster || true)}
WORK=${BENCH_WORK:-/tmp/chatd-bench}
PORT=${PORT:-18080}
WORKLOADS=${WORKLOADS:-"w1 w2 w3 w4 w5"}
if [ $SMOKE = 1 ]; then
  REPEAT=${REPEAT:-1}
  W1_CONNS=${W1_CONNS:-50}; W1_HOLD=${W1_HOLD:-2}
  W2_USERS=${W2_USERS:-20}; W2_RATES=${W2_RATES:-100,200}
  W3_GROUPS=${W3_GROUPS:-2}; W3_GROUP_SIZE=${W3_GROUP_SIZE:-10}; W3_RATES=${W3_RATES:-20,50}
  STEP_SECONDS=${STEP_SECONDS:-1}; DRAIN_SECONDS=${DRAIN_SECONDS:-1}
  W4_MESSAGES=${W4_MESSAGES:-2000}; W4_REQUESTS=${W4_REQUESTS:-200}
  W5_SENDERS=${W5_SENDERS:-8}; W5_SECONDS=${W5_SECONDS:-2}
  RESULTS=${SMOKE_RESULTS:-$WORK/smoke-results}
  TIMEOUT=${RUN_TIMEOUT:-60}
  STRICT=--strict
else
  REPEAT=${REPEAT:-3}
  TIMEOUT=${RUN_TIMEOUT:-1200}
  STRICT=
fi
W1_CONNS=${W1_CONNS:-1000}; W1_HOLD=${W1_HOLD:-30}; W1_USERS=${W1_USERS:-}
W2_USERS=${W2_USERS:-1000}; W2_RATES=${W2_RATES:-500,1000,2000,4000,8000,16000}
W3_GROUPS=${W3_GROUPS:-20}; W3_GROUP_SIZE=${W3_GROUP_SIZE:-100}
W3_RATES=${W3_RATES:-250,500,1000,2000,3000,4000,6000}; W3_REFINE=${W3_REFINE:-0}
STEP_SECONDS=${STEP_SECONDS:-10}; DRAIN_SECONDS=${DRAIN_SECONDS:-2}
W4_MESSAGES=${W4_MESSAGES:-100000}; W4_REQUESTS=${W4_REQUESTS:-1000}
[ "${W4_BIG:-0}" = 1 ] && W4_MESSAGES=1000000
W5_SENDERS=${W5_SENDERS:-32}; W5_WINDOW=${W5_WINDOW:-32}; W5_SECONDS=${W5_SECONDS:-10}
TEMPLATE_MAX_AGE_MIN=${TEMPLATE_MAX_AGE_MIN:-45}

log() { echo "[run.sh $(date -u +%H:%M:%S)] $*" >&2; }

# ---- build ----
if [ ! -x "$CHATD" ]; then
  log "chatd not found at $CHATD: building it (make build)"
  make -C "$ROOT" build >&2
fi
cmake -S "$B" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" >&2
BENCH=$BUILD/chat-bench

mkdir -p "$RESULTS/raw" "$WORK"
ulimit -n "$(ulimit -Hn)"

# ---- chatd lifecycle (by PID only) ----
CHATD_PID=
port_free() { ! ss -Htan "( sport = :$1 )" 2>/dev/null | grep -q .; }
start_chatd() {  # start_chatd DATA_DIR
  local dd=$1 i
  for ((i = 0; i < 50; i++)); do port_free "$PORT" && break; PORT=$((PORT + 1)); done
  "$CHATD" --listen "127.0.0.1:$PORT" --data-dir "$dd" --rate-auth-ip-per-min 10000000 \
    --rate-auth-account-per-min 10000000 --rate-send-per-sec 100000 --log-level warn \
    >"$dd.log" 2>&1 </dev/null &
  CHATD_PID=$!
  for ((i = 0; i < 100; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    kill -0 "$CHATD_PID" 2>/dev/null || { log "chatd exited at start:"; cat "$dd.log" >&2; return 1; }
    sleep 0.1
  done
  log "chatd did not listen on $PORT"; return 1
}
stop_chatd() {
  local i
  [ -n "$CHATD_PID" ] || return 0
  kill -TERM "$CHATD_PID" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do kill -0 "$CHATD_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$CHATD_PID" 2>/dev/null; then log "chatd $CHATD_PID ignored TERM, killing"; kill -KILL "$CHATD_PID" 2>/dev/null || true; fi
  wait "$CHATD_PID" 2>/dev/null || true
  CHATD_PID=
}
# ---- cluster lifecycle (TARGET=cluster): same interface, CHATD_PID becomes "pid1,pid2,pid3" ----
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
CLUSTER_RUN=
pg_admin() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$("$ROOT/scripts/pg-test-server.sh" start)" "$@"; }
db_name() { echo "bench_$(echo "$1" | md5sum | cut -c1-16)"; }  # one database per data dir path
db_exists() { [ "$(pg_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$1'")" = 1 ]; }
CLUSTER_DBNAME=
start_cluster() {  # start_cluster DATA_DIR [TEMPLATE_DB]
  local dd=$1 tpl_db=${2:-} db i
  db=$(db_name "$dd")
  CLUSTER_DBNAME=$db
  mkdir -p "$dd"
  for ((i = 0; i < 50; i++)); do
    port_free "$PORT" && port_free $((PORT + 1)) && port_free $((PORT + 2)) && port_free $((PORT + 3)) && break
    PORT=$((PORT + 10))
  done
  pg_admin -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db ${tpl_db:+TEMPLATE $tpl_db}" >/dev/null
  CLUSTER_RUN=/tmp/chatd-cluster-$(id -u)-$PORT
  rm -rf "$CLUSTER_RUN"
  CHATD_BIN=$CHATD CLUSTER_DB=$db CLUSTER_PORT_BASE=$PORT CLUSTER_REDIS_PORT=$((PORT + 7)) \
    CLUSTER_EXTRA="--log-level warn --rate-auth-ip-per-min 10000000 --rate-auth-account-per-min 10000000 --rate-send-per-sec 100000" \
    "$ROOT/scripts/cluster.sh" start >"$dd.log" 2>&1 || { cat "$dd.log" >&2; return 1; }
  CHATD_PID=$(cat "$CLUSTER_RUN/node1.pid"),$(cat "$CLUSTER_RUN/node2.pid"),$(cat "$CLUSTER_RUN/node3.pid")
}
stop_cluster() {
  [ -n "$CLUSTER_RUN" ] || return 0
  CHATD_BIN=$CHATD CLUSTER_PORT_BASE=$PORT CLUSTER_REDIS_PORT=$((PORT + 7)) "$ROOT/scripts/cluster.sh" stop >/dev/null 2>&1 || true
  cat "$CLUSTER_RUN"/node*.log >>"$WORK/cluster-nodes.log" 2>/dev/null || true
  CLUSTER_RUN=
  CHATD_PID=
}
drop_run_db() {  # the run's database, not a template's
  [ -n "$CLUSTER_DBNAME" ] && pg_admin -c "DROP DATABASE IF EXISTS $CLUSTER_DBNAME" >/dev/null 2>&1 || true
  CLUSTER_DBNAME=
}
if [ "$TARGET" = cluster ]; then
  start_chatd() { start_cluster "$@"; }
  stop_chatd() { stop_cluster; }
elif [ "$TARGET" != single ]; then
  log "TARGET must be single or cluster"; exit 2
fi
trap 'stop_chatd' EXIT
trap 'echo interrupted >&2; exit 130' INT TERM

# workload arguments of chat-bench (the setup part must be identical for template and runs)
w1_users() { local n=$1; echo "${W1_USERS:-$((n < 1000 ? n : 1000))}"; }
setup_args() {
  case $1 in
    w1) echo "--conns $2 --users $(w1_users "$2")" ;;
    w2) echo "--users $W2_USERS" ;;
    w3) echo "--groups $W3_GROUPS --group-size $W3_GROUP_SIZE" ;;
    w4) echo "" ;;
    w5) echo "--senders $W5_SENDERS" ;;
  esac
}
run_args() {
  case $1 in
    w1) echo "--hold $W1_HOLD" ;;
    w2) echo "--rates $W2_RATES --step $STEP_SECONDS --drain $DRAIN_SECONDS" ;;
    w3) echo "--rates $W3_RATES --step $STEP_SECONDS --drain $DRAIN_SECONDS --refine $W3_REFINE" ;;
    w4) echo "--messages $W4_MESSAGES --requests $W4_REQUESTS" ;;
    w5) echo "--window $W5_WINDOW --duration $W5_SECONDS --drain $DRAIN_SECONDS" ;;
  esac
}

# template: a data dir holding the workload's users and conversations, with the cache chat-bench
# reads instead of registering again. Built once, copied for every run.
ensure_template() {  # ensure_template WL TAG -> prints the template dir ("" = none: setup inline)
  local wl=$1 tag=$2
  [ $SMOKE = 1 ] && { echo ""; return; }
  [ "$wl" = w4 ] && { echo ""; return; }
  local key
  local what
  what=$(setup_args "$wl" "$tag")
  [ "$wl" = w1 ] && what="--users $(w1_users "$tag")"   # W1 templates differ only by users
  key=$(echo "$TARGET $wl $what $(stat -c %Y "$CHATD")" | md5sum | cut -c1-10)
  local t=$WORK/template-$wl-$key
  if [ -f "$t/setup.json" ] && [ -z "$(find "$t/setup.json" -mmin +"$TEMPLATE_MAX_AGE_MIN")" ] &&
    { [ "$TARGET" = single ] || db_exists "$(db_name "$t/data")"; }; then echo "$t"; return; fi
  rm -rf "$t"; mkdir -p "$t"
  log "building template for $wl $tag in $t"
  start_chatd "$t/data" >&2 || return 1
  # shellcheck disable=SC2046
  if ! timeout -k 5 1800 "$BENCH" --workload "$wl" --server "127.0.0.1:$PORT" --server-pid "$CHATD_PID" \
    $(setup_args "$wl" "$tag") --setup-cache "$t/setup.json" --setup-only >&2; then
    stop_chatd
    rm -rf "$t"
    log "setup of the $wl template failed"
    return 1
  fi
  stop_chatd   # this runs in a $(...) subshell: the EXIT trap of the script does not cover it
  echo "$t"
}

FAILED=0
RAW_LIST=()
for wl in $WORKLOADS; do
  tags=("")
  [ "$wl" = w1 ] && read -r -a tags <<<"$W1_CONNS"
  for tag in "${tags[@]}"; do
    tpl=$(ensure_template "$wl" "$tag")
    for ((r = 1; r <= REPEAT; r++)); do
      name=$wl${tag:+-n$tag}
      out=$RESULTS/raw/$name-r$r-$(date -u +%Y%m%dT%H%M%S).json
      dd=$(mktemp -d "$WORK/data-$name.XXXXXX")
      cache=()
      tpl_db=
      if [ -n "$tpl" ]; then
        if [ "$TARGET" = cluster ]; then tpl_db=$(db_name "$tpl/data"); else cp -a "$tpl/data/." "$dd/"; fi
        cp "$tpl/setup.json" "$dd.setup.json"
        cache=(--setup-cache "$dd.setup.json")
      fi
      start_chatd "$dd" $tpl_db
      log "=== $name run $r/$REPEAT: chatd pid $CHATD_PID port $PORT -> $out"
      set +e
      # shellcheck disable=SC2046
      timeout -k 10 "$TIMEOUT" "$BENCH" --workload "$wl" --server "127.0.0.1:$PORT" --server-pid "$CHATD_PID" \
        $(setup_args "$wl" "$tag") $(run_args "$wl") "${cache[@]}" $STRICT --label "$LABEL" --out "$out"
      rc=$?
      set -e
      stop_chatd
      [ "$TARGET" = cluster ] && drop_run_db
      if [ $rc -ne 0 ]; then
        log "!!! $name run $r: chat-bench exited $rc (log: $dd.log)"
        FAILED=1
      fi
      [ -f "$out" ] && RAW_LIST+=("$out")
      rm -rf "$dd" "$dd.setup.json"
      [ $rc -eq 0 ] && rm -f "$dd.log"
    done
  done
done

python3 "$B/summarize.py" --results "$RESULTS" "${RAW_LIST[@]}"
log "summary: $RESULTS/SUMMARY.md"
if [ $FAILED -ne 0 ]; then log "FAILED (see above)"; exit 1; fi
log "all runs passed their checks"
