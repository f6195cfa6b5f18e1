#!/usr/bin/env bash
# mt-serve under load, against mt-translate in the same run: test_2016_flickr's 1,000 English sentences
# (MULTI30K_DIR) translated with the shipped model, beam 5,
#   - by mt-translate in batches (--batch-size 64) and one at a time (--batch-size 1, --threads 1),
#   - by mt-serve, one sentence per request (LibreTranslate's POST /translate) from 1, 8 and 64 clients
#     at once (scripts/serve-load.py, closed loop over loopback).
# Reports sentences/s and p50/p99 latency per concurrency, serve_ratio = mt-serve at 64 clients over
# mt-translate in batches, latency_ratio = p50 at one client over mt-translate's time per sentence one at a
# time, and how many of the server's translations differ from mt-translate's.
#
# Usage: scripts/bench-serve.sh [--json]
# Environment: MULTI30K_DIR (default ../shared/data/multi30k), MODEL (default checkpoints/multi30k-en-de).
# The load generator shares the machine's cores with the server (it takes a few percent of one).
# Benchmarks must not overlap on a shared machine: run it under `flock /tmp/swiftnmt-bench.lock`.
set -euo pipefail
cd "$(dirname "$0")/.."
json=0; [ "${1:-}" = --json ] && json=1
multi30k="${MULTI30K_DIR:-../shared/data/multi30k}"
model="${MODEL:-checkpoints/multi30k-en-de}"
[ -f "$multi30k/raw/test_2016_flickr.en.gz" ] || { echo "bench-serve: no $multi30k/raw/test_2016_flickr.en.gz (set MULTI30K_DIR)" >&2; exit 1; }
swift build -c release --product mt-translate >&2
swift build -c release --product mt-serve >&2
cores=$(nproc)
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
grep -qm1 avx512f /proc/cpuinfo && cpu="$cpu (AVX-512)" || cpu="$cpu (AVX2, no AVX-512)"
echo "machine: $cores cores, $cpu, $(date -u '+%Y-%m-%d %H:%M UTC')" >&2
work="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
gzip -dc "$multi30k/raw/test_2016_flickr.en.gz" > "$work/test.en"

rate() {  # sentences/s that mt-translate --stats printed
    sed -nE 's/.*: ([0-9.]+) sentences\/s.*/\1/p' "$1"
}
.build/release/mt-translate --model "$model" --stats < "$work/test.en" > "$work/batched.de" 2> "$work/batched.log"
batched=$(rate "$work/batched.log")
echo "mt-translate, batches of 64, $cores threads: $batched sentences/s" >&2
.build/release/mt-translate --model "$model" --stats --batch-size 1 --threads 1 < "$work/test.en" > "$work/single.de" 2> "$work/single.log"
single=$(rate "$work/single.log")
echo "mt-translate, one sentence at a time, 1 thread: $single sentences/s" >&2

.build/release/mt-serve --model "$model" --port 0 --threads "$cores" --request-timeout 600 --log-level warning \
    > /dev/null 2> "$work/serve.log" &
server=$!
for _ in $(seq 1 100); do grep -q "serving" "$work/serve.log" && break; sleep 0.1; done
url=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$work/serve.log" | head -n 1)
[ -n "$url" ] || { cat "$work/serve.log" >&2; exit 1; }
python3 scripts/serve-load.py "$url" "$work/test.en" 8 > /dev/null  # warm-up
results=()
for concurrency in 1 8 64; do
    result=$(python3 scripts/serve-load.py "$url" "$work/test.en" "$concurrency" --output "$work/serve-$concurrency.de")
    different=$(paste -d '\t' "$work/serve-$concurrency.de" "$work/batched.de" | awk -F '\t' '$1 != $2' | wc -l)
    result=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["lines_differing_from_mt_translate"]=int(sys.argv[2]); print(json.dumps(r))' "$result" "$different")
    echo "mt-serve, $concurrency clients: $result" >&2
    results+=("$result")
done
peak=$(grep VmHWM /proc/$server/status | awk '{print int($2/1024)}')
kill -TERM "$server"; wait "$server" || true; server=""

summary=$(python3 - "$cpu" "$cores" "$batched" "$single" "$peak" "${results[@]}" <<'PY'
import json, sys
cpu, cores, batched, single, peak = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
runs = [json.loads(r) for r in sys.argv[6:]]
by = {r["concurrency"]: r for r in runs}
out = {"cpu": cpu, "cores": cores, "mt_translate_batched_sentences_per_second": batched,
       "mt_translate_one_at_a_time_ms_per_sentence": round(1000 / single, 2),
       "serve": runs, "serve_ratio": round(by[64]["sentences_per_second"] / batched, 3),
       "latency_ratio": round(by[1]["p50_ms"] / (1000 / single), 3), "serve_peak_rss_mib": peak}
print(json.dumps(out))
PY
)
if [ "$json" = 1 ]; then echo "$summary"; else
    python3 - "$summary" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
print("| clients | sentences/s | p50 ms | p99 ms | lines differing from mt-translate |\n|---:|---:|---:|---:|---:|")
for r in s["serve"]:
    print("| %d | %.1f | %.1f | %.1f | %d |" % (r["concurrency"], r["sentences_per_second"], r["p50_ms"], r["p99_ms"],
                                          r["lines_differing_from_mt_translate"]))
print("\nmt-translate in batches: %.1f sentences/s; one at a time: %.1f ms a sentence"
      % (s["mt_translate_batched_sentences_per_second"], s["mt_translate_one_at_a_time_ms_per_sentence"]))
print("serve_ratio %.3f (target >= 0.85); latency_ratio %.3f (target <= 1.2); peak RSS %d MiB"
      % (s["serve_ratio"], s["latency_ratio"], s["serve_peak_rss_mib"]))
PY
fi
