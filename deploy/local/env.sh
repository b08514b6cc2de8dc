# Shared settings for the local stack scripts. Sourced, not executed.
# Every value can be overridden from the environment.
CITYBRAIN_ROOT="${CITYBRAIN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
# Slow one-time installs live outside the checkout so fresh clones reuse them.
CITYBRAIN_CACHE="${CITYBRAIN_CACHE:-$HOME/.cache/citybrain}"
TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
TANSU_ROOT="$CITYBRAIN_CACHE/tansu-$TANSU_VERSION"
TANSU_BIN="$TANSU_ROOT/bin/tansu"
# Runtime state (data, logs, pid files) of one checkout's stack.
STACK_DIR="${STACK_DIR:-$CITYBRAIN_ROOT/.stack}"
KAFKA_PORT="${KAFKA_PORT:-19092}"
CLICKHOUSE_HTTP_PORT="${CLICKHOUSE_HTTP_PORT:-18123}"
CLICKHOUSE_TCP_PORT="${CLICKHOUSE_TCP_PORT:-19000}"
# The MQTT broker (mosquitto) and the device registry its accounts come from.
MQTT_PORT="${MQTT_PORT:-11883}"
MQTT_DEVICES="${MQTT_DEVICES:-$CITYBRAIN_ROOT/deploy/local/dev-devices.toml}"
# Tansu's storage. memory (the default) keeps the logs in the broker's
# process: about 50,000 events/s here, and a restart starts empty logs under
# a new cluster id (broker.sh). Nothing acknowledged is lost by that as long
# as the sink has stored it first: `make run` stops the producers, waits for
# the sink to catch up, and only `make stack-down` stops the broker. History
# lives in ClickHouse, not in the broker. sqlite survives a broker crash but
# Tansu 0.6.0 on sqlite ran at ~300-2,300 events/s here and stalled after
# hours of use (see deploy/README.md), so it is opt-in: BROKER_STORAGE=sqlite.
BROKER_STORAGE="${BROKER_STORAGE:-memory}"
TOPIC_PARTITIONS="${TOPIC_PARTITIONS:-4}"
# The feed topics (proto/src/feed.rs) plus the sink's dead-letter topic.
FEED_TOPICS="citybrain.ev_charging.v1 citybrain.parking.v1 citybrain.vehicles.v1 citybrain.sanitation.v1 citybrain.service_requests.v1 citybrain.dead_letter.v1"
# The services `make run` starts, at these addresses (each is also the
# service's own CITYBRAIN_* setting, so an exported value wins), and the
# binaries it runs: a release build of this checkout unless CITYBRAIN_BIN_DIR
# names a directory of already-built ones (then nothing is built).
CITYBRAIN_INGEST_GRPC_ADDR="${CITYBRAIN_INGEST_GRPC_ADDR:-127.0.0.1:50051}"
CITYBRAIN_INGEST_HTTP_ADDR="${CITYBRAIN_INGEST_HTTP_ADDR:-127.0.0.1:8088}"
CITYBRAIN_INGEST_ADMIN_ADDR="${CITYBRAIN_INGEST_ADMIN_ADDR:-127.0.0.1:9101}"
CITYBRAIN_SINK_ADMIN_ADDR="${CITYBRAIN_SINK_ADMIN_ADDR:-127.0.0.1:9102}"
CITYBRAIN_QUERY_HTTP_ADDR="${CITYBRAIN_QUERY_HTTP_ADDR:-127.0.0.1:8080}"
CITYBRAIN_QUERY_GRPC_ADDR="${CITYBRAIN_QUERY_GRPC_ADDR:-127.0.0.1:50052}"
CITYBRAIN_QUERY_ADMIN_ADDR="${CITYBRAIN_QUERY_ADMIN_ADDR:-127.0.0.1:9103}"
CITYBRAIN_JT808_ADDR="${CITYBRAIN_JT808_ADDR:-127.0.0.1:6808}"
CITYBRAIN_JT808_ADMIN_ADDR="${CITYBRAIN_JT808_ADMIN_ADDR:-127.0.0.1:9105}"
CITYBRAIN_MQTT_BRIDGE_ADMIN_ADDR="${CITYBRAIN_MQTT_BRIDGE_ADMIN_ADDR:-127.0.0.1:9104}"
CITYBRAIN_OCPP_ADDR="${CITYBRAIN_OCPP_ADDR:-127.0.0.1:9220}"
CITYBRAIN_OCPP_ADMIN_ADDR="${CITYBRAIN_OCPP_ADMIN_ADDR:-127.0.0.1:9106}"
CITYBRAIN_BIN_DIR="${CITYBRAIN_BIN_DIR:-}"
