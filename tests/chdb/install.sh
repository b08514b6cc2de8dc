#!/usr/bin/env bash
# Installs PyPI `chdb-core` (current ClickHouse's engine in-process, a wheel
# of about 180 MB) into its cached virtualenv and prints the venv's python
# (tests/python/venv.sh).
set -euo pipefail
exec bash "$(dirname "$0")/../python/venv.sh" chdb-core "${CHDB_CORE_VERSION:-26.9.0}"
