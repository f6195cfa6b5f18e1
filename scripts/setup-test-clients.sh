#!/usr/bin/env bash
# The real clients that mt-serve's tests point at it, from PyPI, in a virtual environment of their own
# (.build-python, ignored by git): libretranslatepy (LibreTranslate's Python client, unchanged),
# schemathesis (tests a server against its OpenAPI description) and Playwright, which drives Debian's
# Chromium (installed here too) through mt-serve's page. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.build-python
if ! "$venv/bin/python" -c "import libretranslatepy, schemathesis, playwright" 2>/dev/null; then
    echo "setup: installing the test clients (libretranslatepy, schemathesis, playwright) into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "libretranslatepy==2.1.4" "schemathesis==4.32.5" "playwright==1.65.3"
fi
if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
    as_root=()
    [ "$(id -u)" -ne 0 ] && as_root=(sudo)
    echo "setup: installing chromium (for the page test)" >&2
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq chromium >/dev/null
fi
