#!/usr/bin/env bash
# Data-parallel training speed: the default model on Multi30k en-de batches, measured in one run as
#   - one process on all cores (BLAS threads),
#   - one process per core under mpirun (one BLAS thread each),
#   - one process on one core (the per-core reference),
#   - one process per core, each pinned to its core, each training alone on batches of 64/N sentences (the
#     share of a batch that each process of mpirun computes) with no communication at all, each with its
#     own whole optimizer step: what N processes reach on this machine's shared caches, memory and clock
#     when nothing is exchanged and nothing waits (mpirun's processes exchange, but share the step),
# and, when BASELINE_BIN names another build's directory, its one process on all cores (before/after).
# FLOP utilization: `mt-bench --data` in the same run gives the sgemm rate of all cores and the model's
# FLOPs per target token on the corpus's batches; a run's utilization is its tokens/s times those FLOPs
# over that rate. One over the one process's utilization is the most any number of processes on these
# cores could gain over it (100 % of sgemm).
# Each runs UPDATES updates (default 120); the figure is the target tokens per second of the updates
# after the first 20 (log.jsonl), so start-up and warm-up are left out.
#
# Usage: scripts/bench-mpi.sh [--json]
# Environment: DATA (an mt-preprocess directory; default runs/multi30k-en-de/data, which
#   scripts/train-multi30k.sh en de makes), UPDATES, BASELINE_BIN.
# Benchmarks must not overlap on a shared machine: run it under `flock /tmp/swiftnmt-bench.lock`.
set -euo pipefail
cd "$(dirname "$0")/.."
json=0; [ "${1:-}" = --json ] && json=1
data="${DATA:-runs/multi30k-en-de/data}"
updates="${UPDATES:-120}"
[ -f "$data/manifest.json" ] || { echo "bench-mpi: no preprocessed data in $data (set DATA)" >&2; exit 1; }
swift build -c release --product mt-train >&2
swift build -c release --product mt-bench >&2
cores=$(nproc)
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
grep -qm1 avx512f /proc/cpuinfo && cpu="$cpu (AVX-512)" || cpu="$cpu (AVX2, no AVX-512)"
echo "machine: $cores cores, $cpu, $(date -u '+%Y-%m-%d %H:%M UTC')" >&2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
options=(--data "$data" --max-updates "$updates" --valid-every 1000000000 --keep-best false --keep-last false --log-every 20)

rate() {  # target tokens/s of the logged windows after the first
    python3 - "$1/log.jsonl" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"train"' in l]
rates = [e["tokensPerSecond"] for e in events[1:]]
print(round(sum(rates) / len(rates)))
PY
}
run() {  # name, command...
    local name="$1"; shift
    "$@" --model-dir "$work/$name" "${options[@]}" > /dev/null 2> "$work/$name.log"
    local r; r=$(rate "$work/$name"); echo "$name: $r tokens/s" >&2; echo "$r"
}
all=$(run one-process-all-cores .build/release/mt-train --threads "$cores")
mpi=$(run mpirun-one-per-core mpirun -np "$cores" --bind-to core .build/release/mt-train --threads 1)
one=$(run one-process-one-core .build/release/mt-train --threads 1)
independent=0
for ((core = 0; core < cores; core++)); do
    taskset -c "$core" .build/release/mt-train --threads 1 --batch-sentences $((64 / cores)) --model-dir "$work/independent-$core" \
        "${options[@]}" > /dev/null 2> "$work/independent-$core.log" &
done
wait
for ((core = 0; core < cores; core++)); do independent=$((independent + $(rate "$work/independent-$core"))); done
echo "independent processes, one per core, batches of $((64 / cores)), no communication: $independent tokens/s in all" >&2
flops=$(.build/release/mt-bench --data "$data" --threads "$cores" --json | tail -n 1)
echo "mt-bench: $flops" >&2
# The all-reduce of one update's gradients alone (as many floats as the model has parameters).
parameters=$(sed -nE 's/^model: ([0-9]+) parameters.*/\1/p' "$work/one-process-all-cores.log")
exchange=$(mpirun -np "$cores" --bind-to core .build/release/mt-bench --all-reduce "$parameters" --json | tail -n 1)
allreduce=$(echo "$exchange" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["allreduce_ms"], 2))')
# What an update exchanges in mt-train: the reduce-scatter of the gradients and the all-gather of the weights.
update_exchange=$(echo "$exchange" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["reduce_scatter_all_gather_ms"], 2))')
echo "all-reduce of $parameters floats over $cores processes: $allreduce ms; reduce-scatter + all-gather: $update_exchange ms" >&2
base=null
[ -n "${BASELINE_BIN:-}" ] && base=$(run baseline-all-cores "$BASELINE_BIN/mt-train" --threads "$cores")
summary=$(python3 -c '
import json, sys
all_, mpi, one, cores = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[5])
independent = int(sys.argv[9])
bench = json.loads(sys.argv[10])
flops_per_token = bench["train_gflops"] * 1e9 / bench["train_tokens_per_second"]
def utilization(tokens_per_second): return round(tokens_per_second * flops_per_token / (bench["sgemm_gflops"] * 1e9), 3)
allreduce = float(sys.argv[7])
parameters = int(sys.argv[8])
base = None if sys.argv[4] == "null" else int(sys.argv[4])
out = {"cpu": sys.argv[6], "cores": cores, "one_process_all_cores": all_, "mpirun_one_per_core": mpi, "one_process_one_core": one,
       "mpi_over_one_process": round(mpi / all_, 3), "mpi_scaling_efficiency": round(mpi / (cores * one), 3),
       "threads_scaling_efficiency": round(all_ / (cores * one), 3),
       "independent_processes_no_communication": independent, "independent_over_one_process": round(independent / all_, 3),
       "mpi_over_independent": round(mpi / independent, 3), "allreduce_ms": allreduce,
       "reduce_scatter_all_gather_ms": float(sys.argv[11]), "parameters": parameters,
       "sgemm_gflops_all_cores": bench["sgemm_gflops"], "train_mflop_per_target_token": round(flops_per_token / 1e6, 2),
       "flop_utilization_one_process": utilization(all_), "flop_utilization_mpi": utilization(mpi),
       "mpi_over_one_process_at_full_sgemm": round(1 / utilization(all_), 3)}
if base: out.update({"baseline_all_cores": base, "after_over_baseline": round(all_ / base, 3)})
print(json.dumps(out))' "$all" "$mpi" "$one" "$base" "$cores" "$cpu" "$allreduce" "$parameters" "$independent" "$flops" "$update_exchange")
if [ $json = 1 ]; then echo "$summary"; else echo "$summary" | python3 -c 'import json,sys; [print(f"{k}: {v}") for k, v in json.load(sys.stdin).items()]'; fi
