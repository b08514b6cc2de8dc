#!/usr/bin/env bash
# `make run`: install what is missing, start the stack and the services, and
# keep them running until Ctrl-C, which stops the services cleanly (the stack
# keeps running for the next `make run`; `make stack-down` stops it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
cd "$CITYBRAIN_ROOT"

say "1/4 installing what is missing (the broker build takes ~15 min once)"
bash "$here/install.sh"
say "2/4 starting the stack"
bash "$here/stack.sh" up
say "3/4 building the services (release)"
cargo build --release --locked --bins

logs="$STACK_DIR/logs"
mkdir -p "$logs"
export CITYBRAIN_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export CITYBRAIN_CLICKHOUSE_URL="http://127.0.0.1:$CLICKHOUSE_HTTP_PORT"
export CITYBRAIN_INGEST_API_KEYS="$here/dev-api-keys.toml"
export CITYBRAIN_QUERY_API_KEYS="$here/dev-api-keys.toml"
# Tansu 0.6.0 cannot bump an idempotent producer's epoch (librdkafka does so
# after a delivery timeout) and stops serving when asked to; the sink stores
# each event id once, so a producer retry's duplicate is harmless here.
# Production keeps the idempotent producer (the default).
export CITYBRAIN_INGEST_IDEMPOTENCE="${CITYBRAIN_INGEST_IDEMPOTENCE:-false}"
: "${SIMULATOR_DAYS:=3}"

pids=()
stop_services() {
  trap - INT TERM EXIT
  say "stopping services"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  say "services stopped; the stack is still up (make stack-down stops it)"
}
trap 'stop_services; exit 0' INT TERM
trap stop_services EXIT

# start_service NAME [ARGS...]; extra environment in SERVICE_ENV (k=v words).
start_service() {
  local name="$1"; shift
  env ${SERVICE_ENV:-} "target/release/$name" "$@" >>"$logs/$name.log" 2>&1 &
  pids+=($!)
  say "started $name (log: $logs/$name.log)"
}

say "4/4 starting the services"
start_service citybrain-ingest
# On Tansu's sqlite storage, a consumer that fetches as eagerly as librdkafka
# does by default starves producers: a backfill ran at ~310 events/s with
# delivery timeouts, and at ~2,300 events/s once the sink waits for up to 1 MiB
# or 2 s per fetch (measured on 2 cores). Live data is a few events a second,
# so the extra fetch wait is the only freshness cost.
SERVICE_ENV="CITYBRAIN_KAFKA_OPTIONS=fetch.wait.max.ms=2000,fetch.min.bytes=1048576" \
  start_service citybrain-sink
start_service citybrain-query
wait_for ingest 30 port_open 50051 || die "ingest did not start; see $logs/citybrain-ingest.log"
wait_for query 30 port_open 8080 || die "query did not start; see $logs/citybrain-query.log"

cat <<INFO

citybrain is running.
  ingest (gRPC)     127.0.0.1:50051   development API key: cb_dev_lucheng_simulator_key_0001
  query (HTTP)      http://127.0.0.1:8080   (OpenAPI: /openapi.json; gRPC on 127.0.0.1:50052)
  metrics           ingest http://127.0.0.1:9101/metrics, sink :9102, query :9103
  broker            127.0.0.1:$KAFKA_PORT
  ClickHouse        http://127.0.0.1:$CLICKHOUSE_HTTP_PORT  (database citybrain)
  dashboards        dashboards/README.md says how to load them into Grafana
  logs              $logs

Try (the key is the development key):
  curl -s -H 'x-api-key: cb_dev_lucheng_simulator_key_0001' \
    'http://127.0.0.1:8080/v1/live/connectors?status=charging'
  curl -s -H 'x-api-key: cb_dev_lucheng_simulator_key_0001' \
    "http://127.0.0.1:8080/v1/aggregates/charging_energy?from=\$(date -u -d '3 days ago' +%F)&to=\$(date -u -d tomorrow +%F)&bucket=day"

The town simulator now backfills $SIMULATOR_DAYS days of history, then runs live.
Ctrl-C stops everything.
INFO

start_service citybrain-simulator run --days "$SIMULATOR_DAYS"
# Show the backfill's progress here while the services keep logging to files.
tail -n 0 -F "$logs/citybrain-simulator.log" &
pids+=($!)

wait -n "${pids[@]}" || true
say "a service exited; see $logs"
