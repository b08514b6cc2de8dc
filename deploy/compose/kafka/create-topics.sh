#!/usr/bin/env bash
# Creates the citybrain topics once the brokers answer (the services never
# create topics). The list must equal proto/src/feed.rs plus the sink's
# dead-letter topic; deploy/compose/check.sh compares them.
set -euo pipefail
bootstrap="${BOOTSTRAP:-kafka-1:9092}"
partitions="${PARTITIONS:-6}"
topics=(
  citybrain.ev_charging.v1
  citybrain.parking.v1
  citybrain.vehicles.v1
  citybrain.sanitation.v1
  citybrain.service_requests.v1
  citybrain.dead_letter.v1
)
for attempt in $(seq 1 60); do
  if /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" --list >/dev/null 2>&1; then
    break
  fi
  echo "waiting for $bootstrap ($attempt)"; sleep 2
done
for topic in "${topics[@]}"; do
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" --create --if-not-exists \
    --topic "$topic" --partitions "$partitions" --replication-factor 3 \
    --config min.insync.replicas=2 --config retention.ms=604800000
done
/opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" --describe | grep -c 'Partition:' | sed 's/^/partitions: /'
