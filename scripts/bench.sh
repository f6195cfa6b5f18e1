#!/usr/bin/env bash
# Speed benchmark (release build), measured in one run:
#   - the machine's sgemm GFLOP/s (all cores) and the reference model's training throughput and
#     FLOP utilization (mt-bench; on the first batches of Multi30k en-de when it has been
#     preprocessed, else on synthetic batches of lengths 10-20);
#   - training with bf16 products (mixed precision) against f32, when the CPU has bf16 (mt-bench --bf16);
#   - beam-5 translation speed of the shipped model over Multi30k test_2016_flickr (mt-translate), and
#     in each precision of the products with the BLEU of each (scripts/bench-precision.sh: its keys
#     translate_sentences_per_second_{f32,bf16,int8,int8_shortlist}, bleu_*, *_over_f32, cpu_isa);
#   - with the preprocessed corpus (DATA), data-parallel training: mt-train on one process against
#     mpirun -np 2 with one BLAS thread each, and the all-reduce of one update's gradients
#     (scripts/bench-mpi.sh; its keys go into the JSON as train_tokens_per_second_single,
#     train_tokens_per_second_mpi2, mpi_speedup, mpi_speedup_without_communication,
#     train_flop_utilization_{single,mpi2}, mpi_speedup_at_full_sgemm, allreduce_ms_per_update, allreduce_bytes).
# Usage: scripts/bench.sh [--json] [--threads N] [--batches N]
# Environment: MODEL (default checkpoints/multi30k-en-de), MULTI30K_DIR (corpus with raw/*.gz, or
# data/multi30k with plain files), DATA (an mt-preprocess directory of Multi30k en-de for real batches).
set -euo pipefail
cd "$(dirname "$0")/.."
json=0
args=()
for a in "$@"; do if [ "$a" = --json ]; then json=1; else args+=("$a"); fi; done
swift build -c release --product mt-bench >&2
swift build -c release --product mt-translate >&2
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d)" >&2

data_args=()
data="${DATA:-runs/multi30k-en-de/data}"
[ -f "$data/manifest.json" ] && data_args=(--data "$data")
train_json=$(.build/release/mt-bench "${data_args[@]}" "${args[@]}" --bf16 --json | tee /dev/stderr | tail -n 1)

model="${MODEL:-checkpoints/multi30k-en-de}"
source=""
for candidate in "${MULTI30K_DIR:-}/raw/test_2016_flickr.en.gz" data/multi30k/test_2016_flickr.en; do
    [ -f "$candidate" ] && { source="$candidate"; break; }
done
translate_json='{}'
if [ -f "$model/model.safetensors" ] && [ -n "$source" ]; then
    input=$(mktemp)
    case "$source" in *.gz) gzip -dc "$source" > "$input" ;; *) cp "$source" "$input" ;; esac
    stats=$(.build/release/mt-translate --model "$model" --beam-size 5 --stats < "$input" 2>&1 >/dev/null | tail -n 1)
    rm -f "$input"
    echo "translation (beam 5, $(basename "$source")): $stats" >&2
    sps=$(echo "$stats" | sed -E 's/.*: ([0-9.]+) sentences\/s.*/\1/')
    mem=$(echo "$stats" | sed -E 's/.*peak memory ([0-9]+) MiB.*/\1/')
    translate_json="{\"translate_sentences_per_second\": $sps, \"translate_peak_memory_mib\": $mem}"
else
    echo "translation benchmark skipped: needs $model and the Multi30k test set (MULTI30K_DIR or data/multi30k)" >&2
fi
precision_json='{}'
if [ -f "$model/model.safetensors" ] && [ -n "$source" ]; then
    precision_json=$(MODEL="$model" bash scripts/bench-precision.sh --json | tail -n 1)
fi
mpi_json='{}'
if [ -f "$data/manifest.json" ]; then
    mpi=$(DATA="$data" bash scripts/bench-mpi.sh --json | tail -n 1)
    mpi_json=$(python3 -c '
import json, sys
m = json.loads(sys.argv[1])
print(json.dumps({"train_tokens_per_second_single": m["one_process_all_cores"], "train_tokens_per_second_mpi2": m["mpirun_one_per_core"],
                  "mpi_speedup": m["mpi_over_one_process"],
                  # N processes training alone on their shares of the batches (no communication, each its own optimizer step).
                  "mpi_speedup_without_communication": m["independent_over_one_process"],
                  # FLOP utilization of the two runs (of the sgemm rate of all cores), and the speed-up at 100 %.
                  "train_flop_utilization_single": m["flop_utilization_one_process"], "train_flop_utilization_mpi2": m["flop_utilization_mpi"],
                  "mpi_speedup_at_full_sgemm": m["mpi_over_one_process_at_full_sgemm"],
                  # What an update exchanges (reduce-scatter of the gradients, all-gather of the weights) and, for
                  # comparison, a plain all-reduce of the gradients.
                  "allreduce_ms_per_update": m["reduce_scatter_all_gather_ms"], "plain_allreduce_ms": m["allreduce_ms"],
                  "allreduce_bytes": 4 * m["parameters"]}))' "$mpi")
    echo "data-parallel training: $mpi_json" >&2
else
    echo "data-parallel benchmark skipped: needs the preprocessed corpus in $data (DATA)" >&2
fi
if [ $json = 1 ]; then
    python3 -c 'import json,sys; a={}; [a.update(json.loads(x)) for x in sys.argv[1:]]; print(json.dumps(a, sort_keys=True))' \
        "$train_json" "$translate_json" "$precision_json" "$mpi_json"
fi
