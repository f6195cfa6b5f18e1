#!/usr/bin/env bash
# Scale benchmark: does memory stay flat as the corpus grows?
#
# For each scale N (default 150 and 300), builds Multi30k en-de's training set repeated N times
# (x150 = 4.35 M pairs, about WMT14's size), runs the release mt-preprocess on it (joint BPE 8000,
# SentencePiece trained on its default bounded sample, all cores), then mt-train for 50 updates on
# the result with the default model. Reports, per scale: pairs/s and peak RSS of mt-preprocess,
# start-up time (launch to the first update), peak RSS of mt-train, and the growth of each peak
# from the first scale to the last.
#
# Targets (issue 16): preprocessing peak RSS <= 1 GB and >= 60,000 pairs/s; training peak RSS
# <= 600 MB and start-up < 10 s; each peak RSS within 10 % between x150 and x300.
#
# Usage: scripts/bench-scale.sh [--json] [--scale N]... [--updates N]
# Environment: MULTI30K_DIR (corpus with raw/*.gz; default data/multi30k, as scripts/get-multi30k.sh
#   fetches it), BIN (directory of the binaries; default: build .build/release), WORK (scratch
#   directory, about 2.5 GB for x300; default a temporary one, removed afterwards).
# Benchmarks must not overlap on a shared machine: run it under `flock /tmp/swiftnmt-bench.lock`.
set -euo pipefail
cd "$(dirname "$0")/.."

json=0
scales=()
updates=50
while [ $# -gt 0 ]; do
    case "$1" in
        --json) json=1 ;;
        --scale) scales+=("$2"); shift ;;
        --updates) updates="$2"; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-scale: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
    shift
done
[ ${#scales[@]} -gt 0 ] || scales=(150 300)

corpus="${MULTI30K_DIR:-data/multi30k}"
find_split() {  # prints the path of SPLIT.LANG (plain or .gz) in the corpus
    for candidate in "$corpus/raw/$1.$2.gz" "$corpus/$1.$2.gz" "$corpus/$1.$2"; do
        [ -f "$candidate" ] && { echo "$candidate"; return; }
    done
    echo "bench-scale: no $1.$2 in $corpus (set MULTI30K_DIR)" >&2
    exit 1
}
cat_split() { case "$1" in *.gz) gzip -dc "$1" ;; *) cat "$1" ;; esac; }

if [ -z "${BIN:-}" ]; then
    swift build -c release --product mt-preprocess >&2
    swift build -c release --product mt-train >&2
    BIN=.build/release
fi
work="${WORK:-}"
if [ -z "$work" ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
if grep -qm1 avx512f /proc/cpuinfo; then cpu="$cpu (AVX-512)"; else cpu="$cpu (AVX2, no AVX-512)"; fi
echo "machine: $(nproc) cores, $cpu, $(date -u '+%Y-%m-%d %H:%M UTC')" >&2

for l in en de; do
    cat_split "$(find_split train $l)" > "$work/base.$l"
    cat_split "$(find_split val $l)" > "$work/valid.$l"
done
base_pairs=$(wc -l < "$work/base.en")

results=()
for scale in "${scales[@]}"; do
    for l in en de; do
        for _ in $(seq "$scale"); do cat "$work/base.$l"; done > "$work/train.$l"
    done
    pairs=$((base_pairs * scale))
    bytes=$(($(stat -c %s "$work/train.en") + $(stat -c %s "$work/train.de")))
    rm -rf "$work/data" "$work/model"

    /usr/bin/time -f '%e %M' -o "$work/time.txt" "$BIN/mt-preprocess" --source-lang en --target-lang de \
        --trainpref "$work/train" --validpref "$work/valid" --destdir "$work/data" > "$work/summary.txt"
    read -r pre_seconds pre_kib < "$work/time.txt"
    pre_rate=$(awk -v p="$pairs" -v s="$pre_seconds" 'BEGIN { printf "%.0f", p / s }')
    pre_mib=$(awk -v k="$pre_kib" 'BEGIN { printf "%.0f", k / 1024 }')
    echo "x$scale: mt-preprocess $pairs pairs ($((bytes / 1000000)) MB of text) in $pre_seconds s: $pre_rate pairs/s, peak RSS $pre_mib MiB" >&2

    : > "$work/train.txt"; rm -f "$work/first-update.txt"
    # Start-up: from launch to the status line of update 1 (mt-train logs every update here).
    start=$(date +%s.%N)
    /usr/bin/time -f '%e %M' -o "$work/time.txt" "$BIN/mt-train" --data "$work/data" --model-dir "$work/model" \
        --max-updates "$updates" --valid-every 1000000000 --keep-best false --log-every 1 2>&1 >/dev/null |
        while IFS= read -r line; do
            printf '%s\n' "$line" >> "$work/train.txt"
            case "$line" in *"| update 1 |"*) date +%s.%N > "$work/first-update.txt" ;; esac
        done
    read -r train_seconds train_kib < "$work/time.txt"
    one_seconds=$(awk -v a="$start" -v b="$(cat "$work/first-update.txt")" 'BEGIN { printf "%.2f", b - a }')
    train_mib=$(awk -v k="$train_kib" 'BEGIN { printf "%.0f", k / 1024 }')
    echo "x$scale: mt-train $updates updates in $train_seconds s (start-up to update 1: $one_seconds s), peak RSS $train_mib MiB" >&2
    results+=("{\"scale\": $scale, \"pairs\": $pairs, \"text_bytes\": $bytes, \"preprocess_seconds\": $pre_seconds, \"preprocess_pairs_per_second\": $pre_rate, \"preprocess_peak_rss_mib\": $pre_mib, \"train_updates\": $updates, \"train_seconds\": $train_seconds, \"train_startup_seconds\": $one_seconds, \"train_peak_rss_mib\": $train_mib}")
    rm -f "$work/train.en" "$work/train.de"
done

all="[$(IFS=,; echo "${results[*]}")]"
summary=$(python3 - "$all" "$cpu" <<'EOF'
import json, sys
runs = json.loads(sys.argv[1])
out = {"cpu": sys.argv[2], "runs": runs}
if len(runs) > 1:
    a, b = runs[0], runs[-1]
    for key in ("preprocess_peak_rss_mib", "train_peak_rss_mib"):
        out[key.replace("_mib", "_growth_percent")] = round(100.0 * (b[key] - a[key]) / a[key], 1)
print(json.dumps(out))
EOF
)
if [ $json = 1 ]; then
    echo "$summary"
else
    python3 -c '
import json, sys
s = json.loads(sys.argv[1])
for k, v in s.items():
    if k != "runs": print(f"{k}: {v}")' "$summary"
fi
