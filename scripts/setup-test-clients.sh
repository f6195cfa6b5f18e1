#!/usr/bin/env bash
# The real clients that mt-serve's tests point at it, from PyPI, in a virtual environment of their own
# (.build-python, ignored by git): libretranslatepy (LibreTranslate's Python client, unchanged) and
# schemathesis (tests a server against its OpenAPI description).
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.build-python
if ! "$venv/bin/python" -c "import libretranslatepy, schemathesis" 2>/dev/null; then
    echo "setup: installing the test clients (libretranslatepy, schemathesis) into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "libretranslatepy==2.1.4" "schemathesis==4.32.5"
fi
