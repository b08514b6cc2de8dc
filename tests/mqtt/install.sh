#!/usr/bin/env bash
# Installs PyPI `paho-mqtt` (the Eclipse MQTT client, which no one here
# wrote) into its cached virtualenv and prints the venv's python
# (tests/python/venv.sh). The MQTT suites publish through it as a device
# would (tests/mqtt/device.py).
set -euo pipefail
exec bash "$(dirname "$0")/../python/venv.sh" paho-mqtt "${PAHO_MQTT_VERSION:-2.2.0}"
