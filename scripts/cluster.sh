#!/usr/bin/env bash
# A loopback chatd cluster for development and the cluster tests. Nothing here is for production.
#   scripts/cluster.sh start         PostgreSQL (scripts/pg-test-server.sh), redis-server on
#                                    127.0.0.1:56379, chatd nodes 1..3 on 127.0.0.1:18081..18083
#                                    (--store postgres --bus redis --node-id N) and nginx on
#                                    127.0.0.1:18080. Idempotent: what runs is left running.
#   scripts/cluster.sh stop          stops nginx, the nodes and redis by pid (PostgreSQL stays up;
#                                    `scripts/pg-test-server.sh stop` stops it)
#   scripts/cluster.sh status        what runs
#   scripts/cluster.sh kill-node N   kill -9 node N           start-node N   start node N again
#   scripts/cluster.sh stop-redis / start-redis               (failure tests)
# Environment: CHATD_BIN (default build/release/chatd), CLUSTER_WEB_ROOT (passed as --web-root),
# CLUSTER_DB (database name, default chatd_cluster), CLUSTER_EXTRA (extra chatd flags),
# CLUSTER_PORT_BASE (default 18080: nginx there, node N on base+N), CLUSTER_REDIS_PORT (default 56379),
# CLUSTER_RATE_ACCOUNT (logins per account per minute, default 30).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CHATD_BIN=${CHATD_BIN:-$REPO/build/release/chatd}
RUN=/tmp/chatd-cluster-$(id -u)-${CLUSTER_PORT_BASE:-18080}
REDIS_PORT=${CLUSTER_REDIS_PORT:-56379}
BASE=${CLUSTER_PORT_BASE:-18080}  # nginx on BASE, node N on BASE+N
NGINX_PORT=$BASE
NODES=(1 2 3)
DB=${CLUSTER_DB:-chatd_cluster}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_port() {  # host port what
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "cluster: $3 did not listen on $1:$2" >&2
  return 1
}

wait_gone() {  # pid
  for _ in $(seq 1 100); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$1" 2>/dev/null || true
}

node_dsn() { echo "postgresql://chatd@127.0.0.1:${CHATD_PG_PORT:-55432}/$DB"; }

start_pg() {
  local admin
  admin=$("$HERE/pg-test-server.sh" start)
  "$PG_BIN/psql" -X -q -d "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 ||
    "$PG_BIN/psql" -X -q -d "$admin" -c "CREATE DATABASE $DB" >/dev/null
}

start_redis() {
  mkdir -p "$RUN"
  if alive "$RUN/redis.pid"; then return 0; fi
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes \
    --pidfile "$RUN/redis.pid" --logfile "$RUN/redis.log" --dir "$RUN" >/dev/null
  wait_port 127.0.0.1 "$REDIS_PORT" redis
  for _ in $(seq 1 50); do [[ -s "$RUN/redis.pid" ]] && break; sleep 0.1; done
}

stop_redis() {
  if alive "$RUN/redis.pid"; then
    local pid
    pid=$(cat "$RUN/redis.pid")
    kill "$pid" 2>/dev/null || true
    wait_gone "$pid"
  fi
  rm -f "$RUN/redis.pid"
}

start_node() {
  local n=$1 port=$((BASE + $1))
  mkdir -p "$RUN"
  if alive "$RUN/node$n.pid"; then return 0; fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "cluster: 127.0.0.1:$port is taken by another process (set CLUSTER_PORT_BASE)" >&2
    return 1
  fi
  local web=()
  if [[ -n "${CLUSTER_WEB_ROOT:-}" ]]; then web=(--web-root "$CLUSTER_WEB_ROOT"); fi
  # nginx is the trusted proxy (its X-Forwarded-For gives the client address). The test clients
  # all connect from 127.0.0.1 themselves, so the per-IP limit stays high here; the per-account
  # limit is a real one (CLUSTER_RATE_ACCOUNT), shared by the nodes through Redis.
  # shellcheck disable=SC2086
  setsid "$CHATD_BIN" --listen "127.0.0.1:$port" --store "$(node_dsn)" \
    --bus "redis://127.0.0.1:$REDIS_PORT" --node-id "$n" --data-dir "$RUN/data$n" \
    --trusted-proxy 127.0.0.1 --presence-grace-ms 1000 \
    --rate-auth-ip-per-min 100000 --rate-auth-account-per-min "${CLUSTER_RATE_ACCOUNT:-30}" --rate-send-per-sec 100000 \
    "${web[@]}" ${CLUSTER_EXTRA:-} </dev/null >>"$RUN/node$n.log" 2>&1 &
  echo $! >"$RUN/node$n.pid"
  wait_port 127.0.0.1 "$port" "chatd node $n" && sleep 0.2 && alive "$RUN/node$n.pid" || {
    tail -n 20 "$RUN/node$n.log" >&2
    return 1
  }
}

stop_node() {  # n signal
  local n=$1 sig=${2:-TERM}
  if alive "$RUN/node$n.pid"; then
    local pid
    pid=$(cat "$RUN/node$n.pid")
    kill "-$sig" "$pid" 2>/dev/null || true
    wait_gone "$pid"
  fi
  rm -f "$RUN/node$n.pid"
}

start_nginx() {
  mkdir -p "$RUN/nginx/logs"
  if alive "$RUN/nginx.pid"; then return 0; fi
  # The committed deploy/nginx.conf, made self-contained for an unprivileged loopback run.
  {
    echo "pid $RUN/nginx.pid;"
    echo "error_log $RUN/nginx/logs/error.log warn;"
    if [[ $(id -u) -eq 0 ]]; then echo "user root;"; fi
    sed -e 's/^worker_processes auto;/worker_processes 2;/' \
      -e 's/worker_connections 16384;/worker_connections 4096;/' \
      -e "s|^http {|http {\n  access_log off;\n  client_body_temp_path $RUN/nginx/body;\n  proxy_temp_path $RUN/nginx/proxy;\n  fastcgi_temp_path $RUN/nginx/fastcgi;\n  uwsgi_temp_path $RUN/nginx/uwsgi;\n  scgi_temp_path $RUN/nginx/scgi;|" \
      -e "s/127.0.0.1:18080/127.0.0.1:$BASE/" -e "s/127.0.0.1:18081/127.0.0.1:$((BASE + 1))/" \
      -e "s/127.0.0.1:18082/127.0.0.1:$((BASE + 2))/" -e "s/127.0.0.1:18083/127.0.0.1:$((BASE + 3))/" \
      "$REPO/deploy/nginx.conf"
  } >"$RUN/nginx.conf"
  nginx -p "$RUN/nginx" -c "$RUN/nginx.conf" -t -q
  nginx -p "$RUN/nginx" -c "$RUN/nginx.conf"
  wait_port 127.0.0.1 "$NGINX_PORT" nginx
}

stop_nginx() {
  if alive "$RUN/nginx.pid"; then
    # nginx deletes its pid file as it exits: read the pid once.
    local pid
    pid=$(cat "$RUN/nginx.pid")
    kill -QUIT "$pid" 2>/dev/null || true
    wait_gone "$pid"
  fi
  rm -f "$RUN/nginx.pid"
}

case "${1:-}" in
  start)
    [[ -x "$CHATD_BIN" ]] || { echo "cluster: $CHATD_BIN not built" >&2; exit 1; }
    start_pg
    start_redis
    for n in "${NODES[@]}"; do start_node "$n"; done
    start_nginx
    echo "cluster up: http://127.0.0.1:$NGINX_PORT (nodes 127.0.0.1:$((BASE + 1))..$((BASE + 3)), redis 127.0.0.1:$REDIS_PORT, db $(node_dsn))"
    ;;
  stop)
    stop_nginx
    for n in "${NODES[@]}"; do stop_node "$n"; done
    stop_redis
    ;;
  status)
    for f in nginx redis node1 node2 node3; do
      if alive "$RUN/$f.pid"; then echo "$f: running (pid $(cat "$RUN/$f.pid"))"; else echo "$f: stopped"; fi
    done
    ;;
  kill-node) stop_node "$2" KILL ;;
  start-node) start_node "$2" ;;
  stop-redis) stop_redis ;;
  start-redis) start_redis ;;
  dsn) node_dsn ;;
  *)
    echo "usage: $0 start|stop|status|kill-node N|start-node N|stop-redis|start-redis|dsn" >&2
    exit 2
    ;;
esac
