#!/usr/bin/env bash
# Sets up (system packages, release build) and runs the whole test suite in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift test -c release "$@"
