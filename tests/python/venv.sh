#!/usr/bin/env bash
# venv.sh PACKAGE VERSION [NAME==VERSION ...] — installs PyPI
# PACKAGE==VERSION (and the other pinned requirements, e.g. the WebSocket
# library a client needs beside it) into a virtualenv cached outside the
# checkout, keyed by what it holds ($CITYBRAIN_CACHE/PACKAGE-VERSION, then
# -NAME-VERSION for each other requirement), and prints the venv's python
# on stdout.
#
# The test suites drive the gateways with client libraries no one here wrote
# (chdb-core, paho-mqtt, ocpp, …). CI clones the repository afresh for every
# run on the same machine, so each is downloaded once per version. The venv
# is built beside its final path and moved into place only once pip
# succeeded, so an interrupted install never leaves one that looks complete.
set -euo pipefail

package="${1:?usage: venv.sh PACKAGE VERSION [NAME==VERSION ...]}"
version="${2:?usage: venv.sh PACKAGE VERSION [NAME==VERSION ...]}"
shift 2
others=("$@")
cache="${CITYBRAIN_CACHE:-$HOME/.cache/citybrain}"
venv="$cache/$package-$version"
for requirement in "${others[@]}"; do
  venv="$venv-${requirement/==/-}"
done
python="$venv/bin/python"

installed_version() {
  "$python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null
}

# Every requirement at its pinned version.
complete() {
  [[ -x "$python" ]] && [[ "$(installed_version "$package")" == "$version" ]] || return 1
  local requirement
  for requirement in "${others[@]}"; do
    [[ "$(installed_version "${requirement%%==*}")" == "${requirement#*==}" ]] || return 1
  done
}

if complete; then
  echo "$python"
  exit 0
fi

started=$SECONDS
echo "python: installing $package $version ${others[*]} into $venv" >&2
partial="$venv.partial.$$"
rm -rf "$partial"
mkdir -p "$cache"
python3 -m venv "$partial"
"$partial/bin/pip" install --quiet --disable-pip-version-check "$package==$version" "${others[@]}" >&2
# Virtualenvs record their own path in scripts; recreate the interpreter
# links at the final location so the moved venv works.
rm -rf "$venv"
mv "$partial" "$venv"
python3 -m venv --upgrade "$venv" >/dev/null
if ! complete; then
  echo "python: install into $venv did not yield $package $version ${others[*]}" >&2
  exit 1
fi
echo "python: $package $version installed in $((SECONDS - started)) s" >&2
echo "$python"
