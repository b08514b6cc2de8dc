#!/usr/bin/env bash
# Installs what the local stack needs and is missing: Debian's ClickHouse and
# mosquitto, the Tansu broker (built once into $CITYBRAIN_CACHE), and Debian's zookeeper
# for the replicated ClickHouse of `make test-cluster` (deploy/local/cluster.sh).
set -euo pipefail
here="$(dirname "$0")"
bash "$here/clickhouse.sh" install
bash "$here/broker.sh" install
bash "$here/mosquitto.sh" install
bash "$here/cluster.sh" install
