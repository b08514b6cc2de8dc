#!/usr/bin/env bash
# Installs PyPI `paho-mqtt` (the Eclipse MQTT client, which no one here
# wrote) into a virtualenv cached outside the checkout, keyed by version, and
# prints the venv's python on stdout. The MQTT suites publish through it as a
# device would (tests/mqtt/device.py). Same pattern as tests/chdb/install.sh.
set -euo pipefail

PAHO_MQTT_VERSION="${PAHO_MQTT_VERSION:-2.2.0}"
cache="${CITYBRAIN_CACHE:-$HOME/.cache/citybrain}"
venv="$cache/paho-mqtt-$PAHO_MQTT_VERSION"
python="$venv/bin/python"

installed_version() {
  "$python" -c 'import importlib.metadata as m; print(m.version("paho-mqtt"))' 2>/dev/null
}

if [[ -x "$python" ]] && [[ "$(installed_version)" == "$PAHO_MQTT_VERSION" ]]; then
  echo "$python"
  exit 0
fi

echo "mqtt: installing paho-mqtt $PAHO_MQTT_VERSION into $venv" >&2
partial="$venv.partial.$$"
rm -rf "$partial"
mkdir -p "$cache"
python3 -m venv "$partial"
"$partial/bin/pip" install --quiet --disable-pip-version-check "paho-mqtt==$PAHO_MQTT_VERSION" >&2
rm -rf "$venv"
mv "$partial" "$venv"
python3 -m venv --upgrade "$venv" >/dev/null
if [[ "$(installed_version)" != "$PAHO_MQTT_VERSION" ]]; then
  echo "mqtt: install into $venv did not yield paho-mqtt $PAHO_MQTT_VERSION" >&2
  exit 1
fi
echo "$python"
