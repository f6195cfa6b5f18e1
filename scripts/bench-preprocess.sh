#!/usr/bin/env bash
# Times the release mt-preprocess on Multi30k en-de (29,000 training pairs, 1,014 validation,
# 1,000 test), joint BPE vocabulary 8000, SentencePiece training included.
#
# Usage (benchmarks on the shared machine must not overlap, so take the lock):
#   flock /tmp/swiftnmt-bench.lock bash scripts/bench-preprocess.sh
# Environment: MULTI30K_DIR (default /work/shared/data/multi30k; the gzipped corpus is in its raw/),
#   SCRATCH_PATH (SwiftPM scratch path, default .build), RUNS (default 3).
# The corpus is decompressed into a temporary directory that is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

raw="${MULTI30K_DIR:-/work/shared/data/multi30k}/raw"
scratch="${SCRATCH_PATH:-.build}"
runs="${RUNS:-3}"
bin="$scratch/release/mt-preprocess"

for f in train val test_2016_flickr; do
    for l in en de; do
        [ -f "$raw/$f.$l.gz" ] || { echo "bench-preprocess: missing $raw/$f.$l.gz" >&2; exit 1; }
    done
done
if [ ! -x "$bin" ]; then
    echo "bench-preprocess: building mt-preprocess (release)" >&2
    swift build -c release --scratch-path "$scratch" --product mt-preprocess >&2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for f in train val test_2016_flickr; do
    for l in en de; do gzip -dc "$raw/$f.$l.gz" > "$tmp/$f.$l"; done
done

times=()
for i in $(seq 1 "$runs"); do
    rm -rf "$tmp/out"
    start=$(date +%s.%N)
    "$bin" --source-lang en --target-lang de \
        --trainpref "$tmp/train" --validpref "$tmp/val" --testpref "$tmp/test_2016_flickr" \
        --destdir "$tmp/out" --vocab-size 8000 --model-type bpe --joint --quiet > "$tmp/summary.txt"
    end=$(date +%s.%N)
    t=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
    times+=("$t")
    printf 'run %d: %.2f s\n' "$i" "$t"
done
cat "$tmp/summary.txt"
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
printf 'mt-preprocess Multi30k en-de (joint BPE 8000, %s threads): median %.2f s over %d runs\n' \
    "$(nproc)" "$median" "$runs"
