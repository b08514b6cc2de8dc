#!/usr/bin/env bash
# Installs PyPI `ocpp` (the Mobility House OCPP library, which checks every
# answer of the central system against the official OCPP JSON schemas, and
# which no one here wrote) with `websockets`, the WebSocket client it runs
# over, into their cached virtualenv and prints the venv's python
# (tests/python/venv.sh). The OCPP gateway's suites drive real charge points
# with it (tests/ocpp/charger.py, tests/ocpp/load.py).
set -euo pipefail
exec bash "$(dirname "$0")/../python/venv.sh" ocpp "${OCPP_VERSION:-2.1.0}" \
  "websockets==${WEBSOCKETS_VERSION:-15.0.1}"
