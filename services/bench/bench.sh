#!/usr/bin/env bash
# `make bench`: builds the runner and the three services (release), makes
# sure the broker binary and the local ClickHouse are there, and runs every
# benchmark once; writes BENCHMARKS.md and BENCHMARKS.json at the repo root.
# The runner starts its own Tansu (memory storage) on a free port and uses a
# fresh database on the stack's ClickHouse, dropped at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
source "$root/deploy/local/lib.sh"
cd "$root"

started=$SECONDS
bash deploy/local/install.sh
bash deploy/local/clickhouse.sh start
say "building the benchmark runner and the services (release)"
cargo build --release --locked -p citybrain-bench -p citybrain-ingest -p citybrain-sink -p citybrain-query
say "running the benchmarks (about 5-10 minutes)"
bin="${CARGO_TARGET_DIR:-$root/target}/release"
CITYBRAIN_CLICKHOUSE_URL="http://127.0.0.1:$CLICKHOUSE_HTTP_PORT" TANSU_BIN="$TANSU_BIN" STACK_DIR="$STACK_DIR" \
  BENCH_ROOT="$root" BENCH_BIN_DIR="$bin" "$bin/citybrain-bench"
say "done in $((SECONDS - started)) s: BENCHMARKS.md, BENCHMARKS.json"
