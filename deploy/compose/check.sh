#!/usr/bin/env bash
# Validates the compose deployment without a Docker engine:
#   1. Debian's docker-compose (v1; installed here when missing) parses and
#      renders docker-compose.yml (`docker-compose config`);
#   2. check_compose.py checks the rendered file against the repository:
#      mounted files, pinned images, scrape targets, Grafana datasources and
#      dashboards, environment variables, topics, API keys, the Dockerfile.
# Exits non-zero on any failure. About 2 s once docker-compose is installed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v docker-compose >/dev/null; then
  echo "docker-compose missing: installing Debian's docker-compose package" >&2
  apt_get() { if [ "$(id -u)" = 0 ]; then apt-get "$@"; else sudo apt-get "$@"; fi; }
  apt_get update -qq
  DEBIAN_FRONTEND=noninteractive apt_get install -y -qq --no-install-recommends docker-compose >/dev/null
fi

rendered="$(mktemp)"
trap 'rm -f "$rendered"' EXIT
# `config` needs no engine; unset DOCKER_HOST so it never tries one.
(cd "$here" && env -u DOCKER_HOST docker-compose -f docker-compose.yml config) > "$rendered"
python3 "$here/check_compose.py" "$rendered"
echo "deploy/compose: ok"
