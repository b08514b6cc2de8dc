#!/usr/bin/env bash
# Installs the Tansu Kafka-protocol broker once into a cache outside the
# checkout, keyed by version. Building takes ~15 minutes on 2 cores, so every
# later run (and CI's fresh clones on the same machine) reuses the cache.
set -euo pipefail
source "$(dirname "$0")/env.sh"

if [ -x "$TANSU_BIN" ]; then
  exit 0
fi
echo "==> building tansu $TANSU_VERSION into $TANSU_ROOT (one time, ~15 min on 2 cores)" >&2
tmp="$TANSU_ROOT.partial.$$"
rm -rf "$tmp"
# dynostore (memory://) and libsql (sqlite://) are not default features; without
# them the broker starts with no storage engine at all.
cargo install tansu --version "$TANSU_VERSION" --locked \
  --features dynostore,libsql --root "$tmp"
mkdir -p "$(dirname "$TANSU_ROOT")"
rm -rf "$TANSU_ROOT"
mv "$tmp" "$TANSU_ROOT"
echo "==> tansu installed: $TANSU_BIN" >&2
