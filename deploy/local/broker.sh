#!/usr/bin/env bash
# broker.sh install|start|stop|status|topics — the local Kafka-protocol broker
# (Tansu) on loopback, storage under $STACK_DIR/broker.
#
# Storage is memory unless BROKER_STORAGE=sqlite (see env.sh for why).
#
# The cluster id names the broker's logs: the sink keeps what it stored per
# (cluster id, topic, partition), because offsets restart at 0 in a new log.
# A memory broker's logs are new at every start, so it gets a new id each
# time; a sqlite broker keeps one id for as long as its database lives.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

dir="$STACK_DIR/broker"
pidfile="$dir/broker.pid"
url="tcp://127.0.0.1:$KAFKA_PORT"

install() { bash "$CITYBRAIN_ROOT/deploy/local/install-broker.sh"; }

start() {
  install
  if pid_alive "$pidfile" && port_open "$KAFKA_PORT"; then
    say "broker already running (127.0.0.1:$KAFKA_PORT)"
    return
  fi
  if port_open "$KAFKA_PORT"; then
    die "port $KAFKA_PORT is taken by another process; set KAFKA_PORT"
  fi
  mkdir -p "$dir"
  local storage
  case "$BROKER_STORAGE" in
    sqlite) storage="sqlite://broker.db" ;;  # relative to $dir (Tansu joins it to the cwd)
    memory) storage="memory://tansu/" ;;
    *) die "BROKER_STORAGE must be sqlite or memory, not $BROKER_STORAGE" ;;
  esac
  local cluster_id
  case "$BROKER_STORAGE" in
    sqlite)
      [ -s "$dir/cluster-id" ] || echo "citybrain-local-$(date -u +%Y%m%dT%H%M%SZ)" > "$dir/cluster-id"
      cluster_id="$(cat "$dir/cluster-id")" ;;
    memory) cluster_id="citybrain-memory-$(date -u +%Y%m%dT%H%M%SZ)-$$" ;;
  esac
  say "starting broker (127.0.0.1:$KAFKA_PORT, $BROKER_STORAGE storage in $dir, cluster id $cluster_id)"
  (cd "$dir" && exec setsid "$TANSU_BIN" broker --cluster-id "$cluster_id" \
      --listener-url "$url" --advertised-listener-url "$url" \
      --storage-engine "$storage" >>"$dir/broker.log" 2>&1 </dev/null) &
  echo $! > "$pidfile"
  if ! wait_for broker 30 port_open "$KAFKA_PORT"; then
    tail -20 "$dir/broker.log" >&2 || true
    die "broker did not listen on $KAFKA_PORT within 30 s (log: $dir/broker.log)"
  fi
  say "broker ready"
}

# Creates every feed topic (and the sink's dead-letter topic) with
# $TOPIC_PARTITIONS partitions; existing topics are left as they are.
topics() {
  local prefix="${CITYBRAIN_TOPIC_PREFIX:-}"
  for topic in $FEED_TOPICS; do
    local out
    if out="$("$TANSU_BIN" topic create --broker "$url" --partitions "$TOPIC_PARTITIONS" "$prefix$topic" 2>&1)"; then
      say "topic $prefix$topic created ($TOPIC_PARTITIONS partitions)"
    elif grep -qi 'exist' <<<"$out"; then
      :
    else
      printf '%s\n' "$out" >&2
      die "could not create topic $prefix$topic"
    fi
  done
}

stop() { stop_pid "$pidfile" broker; }

status() {
  if pid_alive "$pidfile" && port_open "$KAFKA_PORT"; then
    echo "broker: running (pid $(cat "$pidfile"), 127.0.0.1:$KAFKA_PORT, $BROKER_STORAGE storage)"
  else
    echo "broker: stopped"; return 1
  fi
}

"${1:-status}"
