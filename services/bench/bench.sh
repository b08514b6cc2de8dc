#!/usr/bin/env bash
# `make bench`: builds the runner and the services (release), makes
# sure the broker binary and the local ClickHouse are there, and runs every
# benchmark once; writes BENCHMARKS.md and BENCHMARKS.json at the repo root.
# The runner starts its own Tansu (memory storage) on a free port and uses a
# fresh database on the stack's ClickHouse, dropped at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
source "$root/deploy/local/lib.sh"
cd "$root"

started=$SECONDS
bin="${CARGO_TARGET_DIR:-$root/target}/release"
bash deploy/local/install.sh
# `bench.sh jt808` (make bench-jt808): only the JT/T 808 gateway's benchmark
# (its own broker and ingest; no ClickHouse), into its section of the files.
if [ "${1:-}" = jt808 ]; then
  say "building the benchmark runner, ingest and the jt808 gateway (release)"
  cargo build --release --locked -p citybrain-bench -p citybrain-ingest -p citybrain-jt808-gateway
  say "running the jt808 gateway benchmark (about 3 minutes)"
  TANSU_BIN="$TANSU_BIN" BENCH_ROOT="$root" BENCH_BIN_DIR="$bin" "$bin/citybrain-bench" jt808
  say "done in $((SECONDS - started)) s: the jt808 section of BENCHMARKS.md, BENCHMARKS.json"
  exit 0
fi
bash deploy/local/clickhouse.sh start
say "building the benchmark runner and the services (release)"
cargo build --release --locked -p citybrain-bench -p citybrain-ingest -p citybrain-sink -p citybrain-query \
  -p citybrain-jt808-gateway
say "running the benchmarks (about 8-13 minutes)"
CITYBRAIN_CLICKHOUSE_URL="http://127.0.0.1:$CLICKHOUSE_HTTP_PORT" TANSU_BIN="$TANSU_BIN" STACK_DIR="$STACK_DIR" \
  BENCH_ROOT="$root" BENCH_BIN_DIR="$bin" "$bin/citybrain-bench"
say "done in $((SECONDS - started)) s: BENCHMARKS.md, BENCHMARKS.json"
