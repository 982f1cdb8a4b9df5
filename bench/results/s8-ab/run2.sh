#!/bin/bash
# run1.sh BIN OUT WL RATES STEP [perf-mode] [extra chatd args...]
BIN=$1; OUT=$2; WL=$3; RATES=$4; STEP=${5:-5}; MODE=${6:-none}; shift 6; EXTRA="$@"
T=${TPL:-/tmp/s5/tpl-$WL}
PORT=19500
dd=$(mktemp -d /tmp/s5/data.XXXXXX)
cp -a $T/data/. $dd/
cp $T/setup.json $dd.setup.json
while ss -Htan "( sport = :$PORT )" | grep -q .; do PORT=$((PORT+1)); done
$BIN --listen 127.0.0.1:$PORT --data-dir $dd --rate-auth-ip-per-min 10000000 --rate-auth-account-per-min 10000000 --rate-send-per-sec 100000 --log-level warn $EXTRA > $dd.log 2>&1 < /dev/null &
PID=$!
for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
kill -0 $PID || { echo "chatd died"; cat $dd.log; exit 1; }
BENCH=${BENCH:-/work/main/build/bench/chat-bench}
BG=
case $MODE in
  rec) ( sleep ${PERF_DELAY:-4}; perf record -e cpu-clock -g -F 2000 -o $OUT.perf -p $PID -- sleep 4 >/dev/null 2>&1 ) & BG=$! ;;
  sc) ( sleep ${PERF_DELAY:-3}; perf stat -x, -e task-clock,syscalls:sys_enter_sendmsg,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_pwrite64,syscalls:sys_enter_fdatasync,syscalls:sys_enter_futex,syscalls:sys_enter_write,syscalls:sys_enter_read -o $OUT.stat -p $PID -- sleep ${PERF_LEN:-4} >/dev/null 2>&1 ) & BG=$! ;;
  mal) ( sleep ${PERF_DELAY:-3}; perf record -e probe_libc:malloc --call-graph dwarf,16384 -o $OUT.perf -p $PID -- sleep ${PERF_LEN:-1} >/dev/null 2>&1 ) & BG=$! ;;
  mc) ( sleep ${PERF_DELAY:-3}; perf stat -x, --per-thread -e probe_libc:malloc -o $OUT.stat -p $PID -- sleep 2 >/dev/null 2>&1 ) & BG=$! ;;
  stat) ( sleep ${PERF_DELAY:-3}; perf stat -x, --per-thread -e task-clock,context-switches -o $OUT.stat -p $PID -- sleep ${PERF_LEN:-3} >/dev/null 2>&1 ) & BG=$! ;;
esac
case $WL in
  w2) ARGS="--users 1000 --rates $RATES --step $STEP --drain 2 --no-stop" ;;
  w3) ARGS="--groups 20 --group-size 100 --rates $RATES --step $STEP --drain 2 --no-stop" ;;
  w5) ARGS="--senders 32 --window 32 --duration $STEP --drain 2" ;;
esac
$BENCH --workload $WL --server 127.0.0.1:$PORT --server-pid $PID $ARGS --setup-cache $dd.setup.json --out $OUT.json > $OUT.txt 2>&1
echo "bench rc=$?" >> $OUT.txt
[ -n "$BG" ] && wait $BG
curl -s http://127.0.0.1:$PORT/metrics > $OUT.metrics; kill -TERM $PID; wait $PID
rm -rf $dd $dd.setup.json
grep -E "^ *[0-9]" $OUT.txt | head -20
