#!/usr/bin/env bash
# Validates the Prometheus configuration and alert rules:
#   promtool check config / check rules / test rules (Debian's prometheus
#   package, installed here when missing), then check_metrics.py (every metric,
#   label and label value in the rules exists in the services' source).
# Exits non-zero on the first failure. About 2 s once promtool is installed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v promtool >/dev/null; then
  echo "promtool missing: installing Debian's prometheus package" >&2
  apt_get() { if [ "$(id -u)" = 0 ]; then apt-get "$@"; else sudo apt-get "$@"; fi; }
  apt_get update -qq
  DEBIAN_FRONTEND=noninteractive apt_get install -y -qq --no-install-recommends prometheus >/dev/null
fi

cd "$here"
promtool check config prometheus.yml
promtool check rules alerts.yml
promtool test rules alerts_test.yml
python3 check_metrics.py alerts.yml
echo "deploy/prometheus: ok"
