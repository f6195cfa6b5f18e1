#!/usr/bin/env bash
# Translation speed and BLEU of each precision of the matrix products, measured in one run on the same
# sentences (Multi30k test_2016_flickr, 1,000 sentences, beam 5, all cores): f32 (OpenBLAS), bf16 and
# int8 (oneDNN), and int8 with the lexical shortlist. Each configuration runs ROUNDS times, interleaved
# with the others so that a noisy minute hurts all alike; the median is reported, with its ratio to f32.
# The CPU's class decides the targets (docs/performance.md): "avx512_bf16" or "avx2". To stand in for an
# AVX2-only CPU on an AVX-512 one: DNNL_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell scripts/bench-precision.sh
# Usage: scripts/bench-precision.sh [--json]
# Environment: MODEL (default checkpoints/multi30k-en-de, with shortlist.txt), MULTI30K_DIR (raw/*.gz, or
# data/multi30k with plain files), ROUNDS (default 3), THREADS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
json=0
[ "${1:-}" = --json ] && json=1
for product in mt-translate mt-bleu; do swift build -c release --product "$product" >&2; done
model="${MODEL:-checkpoints/multi30k-en-de}"
rounds="${ROUNDS:-3}"
threads="${THREADS:-$(nproc)}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
found=0
for dir in "${MULTI30K_DIR:-}/raw" data/multi30k; do
    for ext in .gz ""; do
        if [ -f "$dir/test_2016_flickr.en$ext" ] && [ -f "$dir/test_2016_flickr.de$ext" ]; then
            for side in en de; do
                case "$ext" in .gz) gzip -dc "$dir/test_2016_flickr.$side.gz" > "$work/test.$side" ;; *) cp "$dir/test_2016_flickr.$side" "$work/test.$side" ;; esac
            done
            found=1
            break 2
        fi
    done
done
[ $found = 1 ] || { echo "bench-precision: needs Multi30k's test_2016_flickr (MULTI30K_DIR, or scripts/get-multi30k.sh)" >&2; exit 1; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u '+%Y-%m-%d %H:%M UTC')" >&2

declare -A options=(
    [f32]="--precision f32"
    [bf16]="--precision bf16"
    [int8]="--precision int8"
    [int8_shortlist]="--precision int8 --shortlist"
)
configs=(f32 bf16 int8 int8_shortlist)
for round in $(seq "$rounds"); do
    for config in "${configs[@]}"; do
        # shellcheck disable=SC2086
        .build/release/mt-translate --model "$model" --beam-size 5 --threads "$threads" ${options[$config]} --stats \
            < "$work/test.en" > "$work/out.$config" 2> "$work/stats.$config.$round"
        tail -n 1 "$work/stats.$config.$round" | sed "s/^/$config round $round: /" >&2
    done
done
for config in "${configs[@]}"; do
    .build/release/mt-bleu "$work/test.de" -i "$work/out.$config" -b > "$work/bleu.$config"
    diff "$work/out.f32" "$work/out.$config" | grep -c '^>' > "$work/changed.$config" || true
done
python3 - "$work" "$json" "${configs[@]}" <<'PY'
import json, re, statistics, sys
work, as_json, configs = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
result = {}
for config in configs:
    speeds, isa = [], None
    import glob
    for path in sorted(glob.glob(f"{work}/stats.{config}.*")):
        line = open(path).read().strip().splitlines()[-1]
        speeds.append(float(re.search(r"([0-9.]+) sentences/s", line).group(1)))
        m = re.search(r"(\w+) products on (\w+) \((\w+)\)", line)
        isa = m.groups()
    result[f"translate_sentences_per_second_{config}"] = round(statistics.median(speeds), 1)
    result[f"bleu_{config}"] = float(open(f"{work}/bleu.{config}").read().split()[0])
    result[f"lines_differing_from_f32_{config}"] = int(open(f"{work}/changed.{config}").read().strip() or 0)
    result[f"precision_that_ran_{config}"] = isa[0]
    result["cpu_isa"] = isa[2]
    result["onednn_isa"] = isa[1]
for config in configs[1:]:
    result[f"{config}_over_f32"] = round(result[f"translate_sentences_per_second_{config}"] / result["translate_sentences_per_second_f32"], 2)
for key in sorted(result):
    print(f"{key}: {result[key]}", file=sys.stderr)
if as_json:
    print(json.dumps(result, sort_keys=True))
PY
