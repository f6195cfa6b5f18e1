#!/usr/bin/env bash
# Installs the Debian packages SwiftNMT needs (only those missing) and builds in release mode.
# Idempotent; works as root without sudo, or through sudo when it is there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libopenblas-dev libsentencepiece-dev libdnnl-dev libopenmpi-dev openmpi-bin iproute2)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    as_root=()
    [ "$(id -u)" -ne 0 ] && as_root=(sudo)
    echo "setup: installing ${missing[*]}" >&2
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${SETUP_SKIP_BUILD:-0}" != 1 ]; then
    echo "setup: building (release)" >&2
    swift build -c release 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\] (Compiling|Write|Emitting)' || true
    test -x .build/release/mt-translate || { echo "setup: build failed" >&2; exit 1; }
fi
