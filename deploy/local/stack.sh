#!/usr/bin/env bash
# stack.sh up|down|status — the broker, ClickHouse and mosquitto together.
set -euo pipefail
here="$(dirname "$0")"
source "$here/lib.sh"

case "${1:-status}" in
  up)
    bash "$here/clickhouse.sh" start
    bash "$here/broker.sh" start
    bash "$here/broker.sh" topics
    bash "$here/mosquitto.sh" up
    ;;
  down)
    bash "$here/mosquitto.sh" down
    bash "$here/broker.sh" stop
    bash "$here/clickhouse.sh" stop
    ;;
  status)
    rc=0
    bash "$here/broker.sh" status || rc=1
    bash "$here/clickhouse.sh" status || rc=1
    bash "$here/mosquitto.sh" status || rc=1
    exit $rc
    ;;
  *) die "usage: stack.sh up|down|status" ;;
esac
