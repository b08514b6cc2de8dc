# citybrain — the two commands are `make run` and `make test`.
#
# The stack (Kafka-protocol broker + ClickHouse) runs on loopback with its data
# under .stack/; slow one-time installs are cached in ~/.cache/citybrain.
# `make test` uses its own stack (other ports, .stack/test) so it never
# disturbs a running `make run`; its broker keeps topics in memory (about ten
# times faster than sqlite on Tansu, and no test needs the stack's broker to
# survive a restart: the outage tests start private brokers).

SHELL := /bin/bash
STACK := deploy/local/stack.sh
TEST_ENV := STACK_DIR=$(CURDIR)/.stack/test KAFKA_PORT=29092 BROKER_STORAGE=memory \
            CLICKHOUSE_HTTP_PORT=28123 CLICKHOUSE_TCP_PORT=29000 MQTT_PORT=21883
export CITYBRAIN_CACHE ?= $(HOME)/.cache/citybrain

.PHONY: run test test-cluster deploy-check lint unit stack-up stack-down stack-status test-stack-down install bench bench-jt808 bench-ocpp chdb mqtt ocpp

## Install what is missing, start the stack and the services, feed them.
run:
	@bash deploy/local/run.sh

## Every test: formatting, lints, deployment checks, unit tests and the
## end-to-end suites against a real broker and ClickHouse started here.
test: lint deploy-check chdb mqtt ocpp
	@$(TEST_ENV) bash $(STACK) up
	cargo build --workspace --bins --locked
	$(TEST_ENV) CITYBRAIN_KAFKA_BROKERS=127.0.0.1:29092 \
	  CITYBRAIN_CLICKHOUSE_URL=http://127.0.0.1:28123 \
	  CITYBRAIN_CHDB_PYTHON="$$(bash tests/chdb/install.sh)" \
	  CITYBRAIN_PAHO_PYTHON="$$(bash tests/mqtt/install.sh)" \
	  CITYBRAIN_OCPP_PYTHON="$$(bash tests/ocpp/install.sh)" \
	  cargo test --workspace --locked
	@$(MAKE) --no-print-directory test-cluster

## The replicated ClickHouse: ZooKeeper and two ClickHouse replicas of one
## shard on loopback (deploy/local/cluster.sh, .stack/cluster), the cluster
## schema, and the scale-out test (2 ingests, 3 sink processes, a sink killed
## and a replica stopped mid-stream). Stops the cluster afterwards.
test-cluster:
	cargo build -p citybrain-sink --bin citybrain-sink --locked
	@rc=0; \
	  cargo test -p citybrain-schema --test cluster --locked -- --ignored || rc=$$?; \
	  [ $$rc -ne 0 ] || cargo test -p citybrain-tests --test scale_out --locked -- --ignored --nocapture || rc=$$?; \
	  bash deploy/local/cluster.sh down; exit $$rc

## Current ClickHouse in-process (PyPI chdb-core) for the test that runs
## every statement on 18.16 and on it; installed once into $(CITYBRAIN_CACHE).
chdb:
	@bash tests/chdb/install.sh >/dev/null

## PyPI paho-mqtt, the MQTT client the bridge's suite publishes with as a
## device would; installed once into $(CITYBRAIN_CACHE).
mqtt:
	@bash tests/mqtt/install.sh >/dev/null

## A real OCPP client (PyPI ocpp 2.1.0, which checks the gateway's answers
## against the official schemas) for the OCPP gateway's tests; installed once
## into $(CITYBRAIN_CACHE).
ocpp:
	@bash tests/ocpp/install.sh >/dev/null

## Alert rules (promtool), compose file and Kubernetes manifests.
deploy-check:
	bash deploy/prometheus/check.sh
	bash deploy/compose/check.sh
	python3 deploy/k8s/check.py

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

## Unit tests only (no servers needed).
unit:
	cargo test --workspace --lib --bins --locked

## Benchmarks against the machine's limits: writes BENCHMARKS.md and BENCHMARKS.json.
bench:
	@bash services/bench/bench.sh

## Only the JT/T 808 gateway under 1,000 terminals: its section of BENCHMARKS.md.
bench-jt808:
	@bash services/bench/bench.sh jt808

## The OCPP gateway with 500 real chargers at once (its CPU and memory, as
## release binaries): a section of BENCHMARKS.md of its own, which `make
## bench` keeps.
bench-ocpp: ocpp
	@bash deploy/local/install-broker.sh
	cargo build --release --locked -p citybrain-ingest -p citybrain-ocpp-gateway
	BENCH_BIN_DIR="$${CARGO_TARGET_DIR:-$(CURDIR)/target}/release" \
	  CITYBRAIN_OCPP_PYTHON="$$(bash tests/ocpp/install.sh)" \
	  cargo test --locked -p citybrain-ocpp-gateway --test load -- --ignored --nocapture

install:
	@bash deploy/local/install.sh

stack-up:
	@bash $(STACK) up
stack-down:
	@bash $(STACK) down
stack-status:
	@bash $(STACK) status
test-stack-down:
	@$(TEST_ENV) bash $(STACK) down
