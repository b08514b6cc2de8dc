#!/usr/bin/env bash
# `make run`: install what is missing, start the stack and the services, feed
# them a simulated town (a few days of history, then live) and keep running
# until Ctrl-C, which stops everything in an order that loses nothing: the
# simulator, then the gateways (they answer what they have in hand), then
# ingest (it flushes to Kafka), then the sink once it has
# stored everything in Kafka, then query and the stack. ClickHouse keeps the
# history, so running it again only sends what is newer than what it holds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
cd "$CITYBRAIN_ROOT"

say "1/4 installing what is missing (the broker build takes ~15 min once)"
bash "$here/install.sh"
say "2/4 starting the stack"
bash "$here/stack.sh" up
if [ -n "$CITYBRAIN_BIN_DIR" ]; then
  bin_dir="$CITYBRAIN_BIN_DIR"
  say "3/4 using the services built in $bin_dir"
else
  bin_dir="$CITYBRAIN_ROOT/target/release"
  say "3/4 building the services (release)"
  cargo build --release --locked --bins
fi

logs="$STACK_DIR/logs"
mkdir -p "$logs"
export CITYBRAIN_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export CITYBRAIN_CLICKHOUSE_URL="http://127.0.0.1:$CLICKHOUSE_HTTP_PORT"
export CITYBRAIN_INGEST_GRPC_ADDR CITYBRAIN_INGEST_HTTP_ADDR CITYBRAIN_INGEST_ADMIN_ADDR CITYBRAIN_SINK_ADMIN_ADDR \
  CITYBRAIN_QUERY_HTTP_ADDR CITYBRAIN_QUERY_GRPC_ADDR CITYBRAIN_QUERY_ADMIN_ADDR \
  CITYBRAIN_JT808_ADDR CITYBRAIN_JT808_ADMIN_ADDR CITYBRAIN_MQTT_BRIDGE_ADMIN_ADDR
export CITYBRAIN_JT808_INGEST_URL="http://$CITYBRAIN_INGEST_GRPC_ADDR"
export CITYBRAIN_SIMULATOR_INGEST_URL="http://$CITYBRAIN_INGEST_GRPC_ADDR"
port_of() { printf '%s' "${1##*:}"; }
export CITYBRAIN_INGEST_API_KEYS="$here/dev-api-keys.toml"
export CITYBRAIN_QUERY_API_KEYS="$here/dev-api-keys.toml"
# The jt808 gateway sends the vehicles of its registry with their tenant's
# key; it keeps the terminals' authentication codes under .stack/.
export CITYBRAIN_JT808_API_KEYS="${CITYBRAIN_JT808_API_KEYS:-lucheng=cb_dev_lucheng_simulator_key_0001}"
export CITYBRAIN_JT808_TERMINALS="$here/jt808-terminals.toml"
export CITYBRAIN_JT808_STATE_DIR="$STACK_DIR/jt808"
export CITYBRAIN_OCPP_STATIONS="$here/dev-ocpp-stations.toml"
export CITYBRAIN_OCPP_ADDR CITYBRAIN_OCPP_ADMIN_ADDR
export CITYBRAIN_OCPP_INGEST_URL="http://$CITYBRAIN_INGEST_GRPC_ADDR"
# Tansu 0.6.0 cannot bump an idempotent producer's epoch (librdkafka does so
# after a delivery timeout) and stops serving when asked to; the sink stores
# each event id once, so a producer retry's duplicate is harmless here.
# Production keeps the idempotent producer (the default).
export CITYBRAIN_INGEST_IDEMPOTENCE="${CITYBRAIN_INGEST_IDEMPOTENCE:-false}"
: "${SIMULATOR_DAYS:=3}"
# CHARGERS_VIA_OCPP=1 make run: the simulated chargers speak OCPP 1.6 to the
# OCPP gateway (one WebSocket per station) instead of calling ingest.
: "${CHARGERS_VIA_OCPP:=0}"

pids=()
declare -A pid_of=()
stop_service() {
  local name="$1" pid="${pid_of[$1]:-}"
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "pid_of[$name]"
}
# The sink's lag summed over its partitions (librdkafka's statistics, every
# few seconds), or nothing if it does not answer.
sink_lag() {
  curl -fsS "http://$CITYBRAIN_SINK_ADMIN_ADDR/metrics" 2>/dev/null \
    | awk '/^citybrain_sink_consumer_lag_messages/ { lag += $NF; seen = 1 } END { if (seen) print lag + 0 }'
}
stop_everything() {
  trap - INT TERM EXIT
  set +e  # stop as much as possible, whatever fails
  # Ctrl-C reaches a `| tee` (or `|& tee`) as well, and it dies first: with
  # SIGPIPE at its default, the next message would kill this script (and
  # stack.sh below it) half-way, leaving services and the stack running.
  # Ignored, a write to the closed pipe only fails; the same goes for every
  # command started from here (lib.sh's messages never fail a script).
  trap '' PIPE
  echo >&2 2>/dev/null
  say "stopping: simulator, the gateways (jt808, MQTT bridge, OCPP), then ingest (flushes to Kafka)"
  stop_service citybrain-simulator
  stop_service citybrain-jt808-gateway
  stop_service citybrain-mqtt-bridge
  stop_service citybrain-ocpp-gateway
  stop_service citybrain-ingest
  if [ -n "${pid_of[citybrain-sink]:-}" ]; then
    say "waiting for the sink to store what Kafka still holds"
    local deadline=$((SECONDS + 60)) lag=""
    sleep 2
    while [ "$SECONDS" -lt "$deadline" ]; do
      lag="$(sink_lag)"
      [ "$lag" = "0" ] && break
      sleep 1
    done
    [ "$lag" = "0" ] || say "the sink still had ${lag:-unknown} messages to store after 60 s; they stay in the broker only if it keeps running (BROKER_STORAGE=$BROKER_STORAGE)"
  fi
  stop_service citybrain-sink
  stop_service citybrain-query
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  bash "$here/stack.sh" down
  say "stopped. ClickHouse data stays in $STACK_DIR/clickhouse; make run starts again from it"
}
trap 'stop_everything; exit 0' INT TERM
trap stop_everything EXIT

# start_service NAME [ARGS...]; extra environment in SERVICE_ENV (k=v words).
# Each service runs in a session of its own, so the terminal's Ctrl-C reaches
# only this script, which then stops them in order.
start_service() {
  local name="$1"; shift
  setsid env ${SERVICE_ENV:-} "$bin_dir/$name" "$@" >>"$logs/$name.log" 2>&1 </dev/null &
  pid_of[$name]=$!
  say "started $name (log: $logs/$name.log)"
}

say "4/4 starting the services"
start_service citybrain-ingest
start_service citybrain-jt808-gateway
start_service citybrain-ocpp-gateway
# On Tansu's sqlite storage, a consumer that fetches as eagerly as librdkafka
# does by default starves producers: a backfill ran at ~310 events/s with
# delivery timeouts, and at ~2,300 events/s once the sink waits for up to 1 MiB
# or 2 s per fetch (measured on 2 cores). Memory storage needs no such tuning.
sink_env=""
if [ "$BROKER_STORAGE" = sqlite ]; then
  sink_env="CITYBRAIN_KAFKA_OPTIONS=fetch.wait.max.ms=2000,fetch.min.bytes=1048576"
fi
SERVICE_ENV="$sink_env" start_service citybrain-sink
start_service citybrain-query
# Sensors over MQTT: the bridge reads the broker that stack.sh started.
SERVICE_ENV="CITYBRAIN_MQTT_PORT=$MQTT_PORT CITYBRAIN_MQTT_DEVICES=$MQTT_DEVICES CITYBRAIN_MQTT_BRIDGE_INGEST_URL=http://$CITYBRAIN_INGEST_GRPC_ADDR" \
  start_service citybrain-mqtt-bridge
wait_for ingest 30 port_open "$(port_of "$CITYBRAIN_INGEST_GRPC_ADDR")" || die "ingest did not start; see $logs/citybrain-ingest.log"
wait_for query 30 port_open "$(port_of "$CITYBRAIN_QUERY_HTTP_ADDR")" || die "query did not start; see $logs/citybrain-query.log"
wait_for jt808-gateway 30 port_open "$(port_of "$CITYBRAIN_JT808_ADDR")" || die "the jt808 gateway did not start; see $logs/citybrain-jt808-gateway.log"
wait_for sink 60 curl -fsS "http://$CITYBRAIN_SINK_ADMIN_ADDR/readyz" || die "sink not ready; see $logs/citybrain-sink.log"
wait_for ocpp-gateway 30 port_open "$(port_of "$CITYBRAIN_OCPP_ADDR")" || die "the OCPP gateway did not start; see $logs/citybrain-ocpp-gateway.log"

# Resume: what ClickHouse holds of the simulated town was sent by an earlier
# run (in time order, and the sink drained before it stopped); send only what
# is newer. The model still starts at the same midnight, so an event sent
# twice has the same id and the sink stores it once.
newest=""
for kind in connector_status meter_sample charging_session parking_site_counts parking_spot_status \
            vehicle_position patrol_check_in bin_reading waste_collection service_request; do
  newest="${newest:+$newest UNION ALL }SELECT max(observed_at) AS at FROM citybrain.raw_$kind WHERE tenant_id = 'lucheng'"
done
sent_until="$(curl -fsS "http://127.0.0.1:$CLICKHOUSE_HTTP_PORT/" --data-binary \
  "SELECT toUInt32(max(at)) FROM ($newest)" 2>/dev/null || true)"
resume_args=()
if [[ "$sent_until" =~ ^[0-9]+$ ]] && [ "$sent_until" -gt 0 ]; then
  resume_args=(--send-after "$sent_until")
  history_note="ClickHouse already holds the town up to $(date -u -d "@$sent_until" '+%F %T') UTC: the simulator sends only what is newer, then runs live."
else
  history_note="The town simulator now backfills $SIMULATOR_DAYS days of history (a progress bar follows), then runs live."
fi

cat <<INFO

citybrain is running.
  ingest (gRPC)     $CITYBRAIN_INGEST_GRPC_ADDR   development API key: cb_dev_lucheng_simulator_key_0001
  ingest (HTTP)     http://$CITYBRAIN_INGEST_HTTP_ADDR/v1/events   (JSON; OpenAPI: /openapi.json)
  MQTT              127.0.0.1:$MQTT_PORT  citybrain/v1/<tenant>/<kind>/<device_id> (devices: $MQTT_DEVICES)
  query (HTTP)      http://$CITYBRAIN_QUERY_HTTP_ADDR   (OpenAPI: /openapi.json; gRPC on $CITYBRAIN_QUERY_GRPC_ADDR)
  jt808 (TCP)       $CITYBRAIN_JT808_ADDR   JT/T 808 vehicle terminals (registry: deploy/local/jt808-terminals.toml)
  OCPP (WebSocket)  ws://$CITYBRAIN_OCPP_ADDR/ocpp/{chargePointId}   chargers (registry: deploy/local/dev-ocpp-stations.toml)
  metrics           ingest http://$CITYBRAIN_INGEST_ADMIN_ADDR/metrics, sink http://$CITYBRAIN_SINK_ADMIN_ADDR/metrics, query http://$CITYBRAIN_QUERY_ADMIN_ADDR/metrics, jt808 http://$CITYBRAIN_JT808_ADMIN_ADDR/metrics, OCPP http://$CITYBRAIN_OCPP_ADMIN_ADDR/metrics
  broker            127.0.0.1:$KAFKA_PORT
  ClickHouse        http://127.0.0.1:$CLICKHOUSE_HTTP_PORT  (database citybrain)
  dashboards        dashboards/README.md says how to load them into Grafana
  logs              $logs

Try (the key is the development key):
  curl -s -H 'x-api-key: cb_dev_lucheng_simulator_key_0001' \
    'http://$CITYBRAIN_QUERY_HTTP_ADDR/v1/live/connectors?status=charging'
  curl -s -H 'x-api-key: cb_dev_lucheng_simulator_key_0001' \
    "http://$CITYBRAIN_QUERY_HTTP_ADDR/v1/aggregates/charging_energy?from=\$(date -u -d '3 days ago' +%F)&to=\$(date -u -d tomorrow +%F)&bucket=day"

$history_note
Ctrl-C stops everything (nothing acknowledged is lost).
INFO

ocpp_args=()
if [ "$CHARGERS_VIA_OCPP" = 1 ]; then
  ocpp_args=(--chargers-via-ocpp --ocpp-url "ws://$CITYBRAIN_OCPP_ADDR/ocpp")
  say "the simulated chargers speak OCPP through the gateway (CHARGERS_VIA_OCPP=1)"
fi
start_service citybrain-simulator run --days "$SIMULATOR_DAYS" "${resume_args[@]}" \
  --vehicles-via-jt808 "$CITYBRAIN_JT808_ADDR" --jt808-terminals "$here/jt808-terminals.toml" "${ocpp_args[@]}"
# Show the backfill's progress here while the services keep logging to files.
tail -n 0 -F "$logs/citybrain-simulator.log" &
pids+=($!)

wait -n "${pid_of[@]}" || true
say "a service exited; see $logs"
