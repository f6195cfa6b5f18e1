#!/usr/bin/env bash
# mt-serve under load, against mt-translate in the same run: test_2016_flickr's 1,000 English sentences
# (MULTI30K_DIR) translated with the shipped model, beam 5,
#   - by mt-translate in batches (--batch-size 64) and one at a time (--batch-size 1, --threads 1),
#   - by mt-serve, one sentence per request (LibreTranslate's POST /translate) from 1, 8 and 64 clients
#     at once (scripts/serve-load.py, closed loop over loopback).
# Reports sentences/s and p50/p99 latency per concurrency, serve_ratio = mt-serve at 64 clients over
# mt-translate in batches, latency_ratio = p50 at one client over mt-translate's time per sentence one at a
# time, and how many of the server's translations differ from mt-translate's.
# Both sides move by a few percent from run to run on this machine, so the 64-client load and mt-translate
# in batches alternate for ROUNDS rounds (default 3); serve_ratio is the median round's ratio, and the
# 64-client line and mt-translate's figure are that round's.
#
# Usage: scripts/bench-serve.sh [--json]
# Environment: MULTI30K_DIR (default ../shared/data/multi30k), MODEL (default checkpoints/multi30k-en-de), ROUNDS.
# The load generator shares the machine's cores with the server (it takes a few percent of one).
# Benchmarks must not overlap on a shared machine: run it under `flock /tmp/swiftnmt-bench.lock`.
set -euo pipefail
cd "$(dirname "$0")/.."
json=0; [ "${1:-}" = --json ] && json=1
multi30k="${MULTI30K_DIR:-../shared/data/multi30k}"
model="${MODEL:-checkpoints/multi30k-en-de}"
rounds="${ROUNDS:-3}"
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
serve_run() {  # one closed-loop run at $1 clients: its JSON, with the lines that differ from mt-translate's
    local result different
    result=$(python3 scripts/serve-load.py "$url" "$work/test.en" "$1" --output "$work/serve-$1.de")
    different=$(paste -d '\t' "$work/serve-$1.de" "$work/batched.de" | awk -F '\t' '$1 != $2' | wc -l)
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["lines_differing_from_mt_translate"]=int(sys.argv[2]); print(json.dumps(r))' "$result" "$different"
}
results=() rounds_json=()
for round in $(seq 1 "$rounds"); do
    # mt-translate runs beside the idle server (which then uses no CPU).
    .build/release/mt-translate --model "$model" --stats < "$work/test.en" > "$work/batched.de" 2> "$work/batched.log"
    batched=$(rate "$work/batched.log")
    echo "round $round: mt-translate, batches of 64, $cores threads: $batched sentences/s" >&2
    if [ "$round" = 1 ]; then
        for concurrency in 1 8; do
            result=$(serve_run "$concurrency")
            echo "mt-serve, $concurrency clients: $result" >&2
            results+=("$result")
        done
    fi
    result=$(serve_run 64)
    echo "round $round: mt-serve, 64 clients: $result" >&2
    rounds_json+=("{\"mt_translate\": $batched, \"serve\": $result}")
done
peak=$(grep VmHWM /proc/$server/status | awk '{print int($2/1024)}')
kill -TERM "$server"; wait "$server" || true; server=""

summary=$(python3 - "$cpu" "$cores" "$single" "$peak" "$(IFS=$'\n'; echo "${results[*]}")" "${rounds_json[@]}" <<'PY'
import json, sys
cpu, cores, single, peak = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
runs = [json.loads(r) for r in sys.argv[5].splitlines()]
rounds = [json.loads(r) for r in sys.argv[6:]]
for r in rounds:
    r["ratio"] = round(r["serve"]["sentences_per_second"] / r["mt_translate"], 3)
median = sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]
by = {r["concurrency"]: r for r in runs}
out = {"cpu": cpu, "cores": cores, "mt_translate_batched_sentences_per_second": median["mt_translate"],
       "mt_translate_one_at_a_time_ms_per_sentence": round(1000 / single, 2),
       "serve": runs + [median["serve"]], "serve_ratio": median["ratio"],
       "serve_ratio_rounds": [r["ratio"] for r in rounds],
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
print("serve_ratio %.3f (target >= 0.85; the median of rounds %s); latency_ratio %.3f (target <= 1.2); peak RSS %d MiB"
      % (s["serve_ratio"], ", ".join("%.3f" % r for r in s["serve_ratio_rounds"]), s["latency_ratio"], s["serve_peak_rss_mib"]))
PY
fi
