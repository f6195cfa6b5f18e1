#!/usr/bin/env bash
# Sets up (system packages, release build; then the test clients: Debian's chromium and the PyPI clients of
# scripts/setup-test-clients.sh) and runs the whole test suite (XCTest) in release mode.
# Ends with a summary line "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup-test-clients.sh
log=$(mktemp)
status=0
swift test -c release --disable-swift-testing "$@" 2>&1 | tee "$log" || status=$?
summary=$(grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -n 1 || true)
rm -f "$log"
if [ -n "$summary" ]; then
    total=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
    failed=$(echo "$summary" | sed -E 's/.*with ([0-9]+) failures?.*/\1/')
    echo "$((total - failed)) passed, $failed failed"
fi
exit $status
