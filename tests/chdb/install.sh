#!/usr/bin/env bash
# Installs PyPI `chdb-core` (current ClickHouse's engine in-process) into a
# virtualenv cached outside the checkout, keyed by version, and prints the
# venv's python on stdout. CI clones the repo afresh on the same machine, and
# the wheel is about 180 MB, so it is downloaded once per version.
set -euo pipefail

CHDB_CORE_VERSION="${CHDB_CORE_VERSION:-26.9.0}"
cache="${CITYBRAIN_CACHE:-$HOME/.cache/citybrain}"
venv="$cache/chdb-core-$CHDB_CORE_VERSION"
python="$venv/bin/python"

installed_version() {
  "$python" -c 'import importlib.metadata as m; print(m.version("chdb-core"))' 2>/dev/null
}

if [[ -x "$python" ]] && [[ "$(installed_version)" == "$CHDB_CORE_VERSION" ]]; then
  echo "$python"
  exit 0
fi

started=$SECONDS
echo "chdb: installing chdb-core $CHDB_CORE_VERSION into $venv" >&2
# Build beside the final path and move it into place only once pip succeeded,
# so an interrupted install never leaves a venv that looks complete.
partial="$venv.partial.$$"
rm -rf "$partial"
mkdir -p "$cache"
python3 -m venv "$partial"
"$partial/bin/pip" install --quiet --disable-pip-version-check "chdb-core==$CHDB_CORE_VERSION" >&2
# Virtualenvs record their own path in scripts; recreate the interpreter links
# at the final location so the moved venv works.
rm -rf "$venv"
mv "$partial" "$venv"
python3 -m venv --upgrade "$venv" >/dev/null
if [[ "$(installed_version)" != "$CHDB_CORE_VERSION" ]]; then
  echo "chdb: install into $venv did not yield chdb-core $CHDB_CORE_VERSION" >&2
  exit 1
fi
echo "chdb: chdb-core $CHDB_CORE_VERSION installed in $((SECONDS - started)) s" >&2
echo "$python"
