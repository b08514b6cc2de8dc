#!/usr/bin/env bash
# Installs PyPI `ocpp` (the Mobility House OCPP library, which validates every
# answer against the official OCPP JSON schemas) and `websockets` into a
# virtualenv cached outside the checkout, keyed by their versions, and prints
# the venv's python on stdout. The OCPP gateway's tests drive real charge
# points with it (tests/ocpp/charger.py, tests/ocpp/load.py).
set -euo pipefail

OCPP_VERSION="${OCPP_VERSION:-2.1.0}"
WEBSOCKETS_VERSION="${WEBSOCKETS_VERSION:-15.0.1}"
cache="${CITYBRAIN_CACHE:-$HOME/.cache/citybrain}"
venv="$cache/ocpp-$OCPP_VERSION-websockets-$WEBSOCKETS_VERSION"
python="$venv/bin/python"

installed() {
  "$python" -c 'import importlib.metadata as m; print(m.version("ocpp"), m.version("websockets"))' 2>/dev/null
}

if [[ -x "$python" ]] && [[ "$(installed)" == "$OCPP_VERSION $WEBSOCKETS_VERSION" ]]; then
  echo "$python"
  exit 0
fi

started=$SECONDS
echo "ocpp: installing ocpp $OCPP_VERSION and websockets $WEBSOCKETS_VERSION into $venv" >&2
# Build beside the final path and move it into place only once pip succeeded,
# so an interrupted install never leaves a venv that looks complete.
partial="$venv.partial.$$"
rm -rf "$partial"
mkdir -p "$cache"
python3 -m venv "$partial"
"$partial/bin/pip" install --quiet --disable-pip-version-check \
  "ocpp==$OCPP_VERSION" "websockets==$WEBSOCKETS_VERSION" >&2
rm -rf "$venv"
mv "$partial" "$venv"
# Virtualenvs record their own path in scripts; recreate the interpreter links
# at the final location so the moved venv works.
python3 -m venv --upgrade "$venv" >/dev/null
if [[ "$(installed)" != "$OCPP_VERSION $WEBSOCKETS_VERSION" ]]; then
  echo "ocpp: install into $venv did not yield ocpp $OCPP_VERSION / websockets $WEBSOCKETS_VERSION" >&2
  exit 1
fi
echo "ocpp: installed in $((SECONDS - started)) s" >&2
echo "$python"
