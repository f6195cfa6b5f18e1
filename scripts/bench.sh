#!/usr/bin/env bash
# Speed benchmark (release build): sgemm GFLOP/s and the reference model's training throughput and
# FLOP utilization, measured in one run. `--json` ends the output with one JSON object.
# Usage: scripts/bench.sh [--json] [--threads N] [--batches N]
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product mt-bench >&2
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d)" >&2
exec .build/release/mt-bench "$@"
