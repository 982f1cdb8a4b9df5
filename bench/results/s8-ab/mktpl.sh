#!/bin/bash
# mktpl.sh WL DIR  (w2: 1000 users; w3: 20x100)
WL=$1; T=$2; rm -rf $T; mkdir -p $T
PORT=19400
${CHATD:-/work/main/build/release/chatd} --listen 127.0.0.1:$PORT --data-dir $T/data --rate-auth-ip-per-min 10000000 --rate-auth-account-per-min 10000000 --rate-send-per-sec 100000 --log-level warn > $T/data.log 2>&1 < /dev/null &
PID=$!
for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
case $WL in
  w2) ARGS="--users 1000 --rates 1000 --step 5 --drain 2" ;;
  w1) ARGS="--conns 19000 --users 1000 --hold 1" ;;
  w3) ARGS="--groups 20 --group-size 100 --rates 100 --step 5 --drain 2" ;;
esac
/work/main/build/bench/chat-bench --workload $WL --server 127.0.0.1:$PORT --server-pid $PID $ARGS --setup-cache $T/setup.json --setup-only
kill -TERM $PID; wait $PID
