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

pids=()
stop_services() {
  trap - INT TERM EXIT
  say "stopping services"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  say "services stopped; the stack is still up (make stack-down stops it)"
}
trap stop_services INT TERM EXIT

start_service() {
  local name="$1"
  if [ ! -x "target/release/$name" ]; then return; fi
  "target/release/$name" >>"$logs/$name.log" 2>&1 &
  pids+=($!)
  say "started $name (log: $logs/$name.log)"
}

say "4/4 starting the services"
start_service citybrain-ingest
start_service citybrain-sink
start_service citybrain-query

wait_for ingest 30 port_open 50051 || die "ingest did not start; see $logs/citybrain-ingest.log"

cat <<INFO

citybrain is running.
  ingest (gRPC)     127.0.0.1:50051   development API key: cb_dev_lucheng_simulator_key_0001
  ingest metrics    http://127.0.0.1:9101/metrics  (/healthz, /readyz)
  broker            127.0.0.1:$KAFKA_PORT
  ClickHouse        http://127.0.0.1:$CLICKHOUSE_HTTP_PORT
  logs              $logs

Send a first event (see README.md, "Send your first event"). Ctrl-C stops the services.
INFO

wait -n "${pids[@]}" || true
say "a service exited; see $logs"
