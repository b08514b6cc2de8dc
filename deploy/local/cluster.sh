#!/usr/bin/env bash
# cluster.sh up|down|status|stop-replica N|start-replica N — a replicated
# ClickHouse on this machine: ZooKeeper (Debian's `zookeeper`) and two
# ClickHouse 18.16 servers as replicas of one shard, all on loopback, with
# data under $CLUSTER_DIR (default .stack/cluster). The config templates are
# in deploy/local/cluster/.
#
# Ports (CLUSTER_*_PORT) do not clash with the dev stack (18123/19000) or the
# test stack (28123/29000): ZooKeeper 32181, replica 1 http 38123 / native
# 39000 / interserver 39009, replica 2 http 38124 / native 39001 /
# interserver 39010. The cluster is named $CLUSTER_NAME (default citybrain).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CLUSTER_DIR="${CLUSTER_DIR:-$STACK_DIR/cluster}"
CLUSTER_NAME="${CLUSTER_NAME:-citybrain}"
CLUSTER_ZOOKEEPER_PORT="${CLUSTER_ZOOKEEPER_PORT:-32181}"
CLUSTER_HTTP_PORTS=("${CLUSTER_HTTP_PORT_1:-38123}" "${CLUSTER_HTTP_PORT_2:-38124}")
CLUSTER_TCP_PORTS=("${CLUSTER_TCP_PORT_1:-39000}" "${CLUSTER_TCP_PORT_2:-39001}")
CLUSTER_INTERSERVER_PORTS=("${CLUSTER_INTERSERVER_PORT_1:-39009}" "${CLUSTER_INTERSERVER_PORT_2:-39010}")
ZOOKEEPER_HOME="${ZOOKEEPER_HOME:-/usr/share/zookeeper}"
templates="$CITYBRAIN_ROOT/deploy/local/cluster"
zk_dir="$CLUSTER_DIR/zookeeper"
zk_pidfile="$zk_dir/zookeeper.pid"

install() {
  if [ ! -x "$ZOOKEEPER_HOME/bin/zkServer.sh" ] || ! command -v java >/dev/null; then
    say "installing Debian's zookeeper (one time)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zookeeper >&2
  fi
  bash "$CITYBRAIN_ROOT/deploy/local/clickhouse.sh" install
}

# Serving sessions, not merely running: `ruok` answers imok while the server
# still loads its database, and ClickHouse 18.16 loading replicated tables
# then fails its ZooKeeper handshake and aborts (seen here).
# A server that is starting may take the connection and never answer: each
# probe is bounded.
zk_ok() {
  local answer
  answer="$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" && printf srvr >&3 && exec cat <&3' \
      "$CLUSTER_ZOOKEEPER_PORT")" || return 1
  grep -q '^Mode: ' <<<"$answer"
}

start_zookeeper() {
  if pid_alive "$zk_pidfile" && port_open "$CLUSTER_ZOOKEEPER_PORT"; then
    say "zookeeper already running (127.0.0.1:$CLUSTER_ZOOKEEPER_PORT)"
    return
  fi
  if port_open "$CLUSTER_ZOOKEEPER_PORT"; then
    die "port $CLUSTER_ZOOKEEPER_PORT is taken by another process; set CLUSTER_ZOOKEEPER_PORT"
  fi
  mkdir -p "$zk_dir"/{data,log}
  sed -e "s|@DIR@|$zk_dir|g" -e "s|@PORT@|$CLUSTER_ZOOKEEPER_PORT|g" \
      "$templates/zoo.cfg.in" > "$zk_dir/zoo.cfg"
  # "srvr" must be allowed for the readiness probe (3.5+ whitelists words).
  say "starting zookeeper (127.0.0.1:$CLUSTER_ZOOKEEPER_PORT, data in $zk_dir)"
  (cd "$zk_dir" && ZOO_LOG_DIR="$zk_dir/log" ZOO_LOG4J_PROP="INFO,ROLLINGFILE" \
      SERVER_JVMFLAGS="-Xmx256m -Dzookeeper.4lw.commands.whitelist=srvr" \
      exec setsid "$ZOOKEEPER_HOME/bin/zkServer.sh" start-foreground "$zk_dir/zoo.cfg" \
      >>"$zk_dir/log/stdout.log" 2>&1 </dev/null) &
  echo $! > "$zk_pidfile"
  if ! wait_for zookeeper 60 zk_ok; then
    tail -20 "$zk_dir/log/stdout.log" >&2 || true
    die "zookeeper did not answer on $CLUSTER_ZOOKEEPER_PORT within 60 s (logs in $zk_dir/log)"
  fi
  say "zookeeper ready"
}

replica_dir() { echo "$CLUSTER_DIR/clickhouse-$1"; }
replica_ping() { [ "$(curl -fsS "http://127.0.0.1:${CLUSTER_HTTP_PORTS[$1 - 1]}/ping" 2>/dev/null)" = "Ok." ]; }

start_replica() {
  local n="$1" dir; dir="$(replica_dir "$n")"
  local http="${CLUSTER_HTTP_PORTS[$n - 1]}" pidfile="$dir/clickhouse.pid"
  if pid_alive "$pidfile" && replica_ping "$n"; then
    say "clickhouse replica $n already running (http $http)"
    return
  fi
  if port_open "$http"; then
    die "port $http is taken by another process; set CLUSTER_HTTP_PORT_$n"
  fi
  mkdir -p "$dir"/{data,tmp,log,user_files,format_schemas}
  sed -e "s|@DIR@|$dir|g" -e "s|@HTTP_PORT@|$http|g" \
      -e "s|@TCP_PORT@|${CLUSTER_TCP_PORTS[$n - 1]}|g" \
      -e "s|@INTERSERVER_PORT@|${CLUSTER_INTERSERVER_PORTS[$n - 1]}|g" \
      -e "s|@REPLICA1_TCP_PORT@|${CLUSTER_TCP_PORTS[0]}|g" \
      -e "s|@REPLICA2_TCP_PORT@|${CLUSTER_TCP_PORTS[1]}|g" \
      -e "s|@ZOOKEEPER_PORT@|$CLUSTER_ZOOKEEPER_PORT|g" \
      -e "s|@CLUSTER@|$CLUSTER_NAME|g" -e "s|@REPLICA@|replica-$n|g" \
      "$templates/config.xml.in" > "$dir/config.xml"
  cp "$CITYBRAIN_ROOT/deploy/local/clickhouse/users.xml" "$dir/users.xml"
  say "starting clickhouse replica $n (http 127.0.0.1:$http, native ${CLUSTER_TCP_PORTS[$n - 1]})"
  (cd "$dir" && exec setsid clickhouse-server --config-file="$dir/config.xml" \
      >>"$dir/log/stdout.log" 2>&1 </dev/null) &
  echo $! > "$pidfile"
  if ! wait_for "clickhouse replica $n" 60 replica_ping "$n"; then
    tail -20 "$dir/log/clickhouse-server.err.log" >&2 || true
    die "clickhouse replica $n did not answer on $http within 60 s (logs in $dir/log)"
  fi
  say "clickhouse replica $n ready"
}

stop_replica() { stop_pid "$(replica_dir "$1")/clickhouse.pid" "clickhouse replica $1"; }

check_replica_number() {
  case "${1:-}" in 1|2) ;; *) die "replica number must be 1 or 2, not ${1:-nothing}" ;; esac
}

case "${1:-status}" in
  install) install ;;
  up)
    install
    start_zookeeper
    start_replica 1
    start_replica 2
    ;;
  down)
    stop_replica 1
    stop_replica 2
    stop_pid "$zk_pidfile" zookeeper
    ;;
  stop-replica) check_replica_number "${2:-}"; stop_replica "$2" ;;
  start-replica) check_replica_number "${2:-}"; start_replica "$2" ;;
  status)
    rc=0
    if pid_alive "$zk_pidfile" && zk_ok; then
      echo "zookeeper: running (127.0.0.1:$CLUSTER_ZOOKEEPER_PORT)"
    else
      echo "zookeeper: stopped"; rc=1
    fi
    for n in 1 2; do
      if pid_alive "$(replica_dir "$n")/clickhouse.pid" && replica_ping "$n"; then
        echo "clickhouse replica $n: running (http 127.0.0.1:${CLUSTER_HTTP_PORTS[$n - 1]})"
      else
        echo "clickhouse replica $n: stopped"; rc=1
      fi
    done
    exit $rc
    ;;
  *) die "usage: cluster.sh install|up|down|status|stop-replica N|start-replica N" ;;
esac
