#!/usr/bin/env bash
# Benchmarks mt-bleu: scores N (default 100,000) synthetic sentence pairs with BLEU and chrF and
# prints the wall-clock seconds.
#
# The pairs are realistic: references are Multi30k German training sentences
# ($MULTI30K_DIR/raw/train.de.gz, repeated as needed), hypotheses are perturbed copies (words
# dropped, swapped, replaced or case-changed). Without Multi30k, sentences of synthetic words are
# generated instead.
#
# Usage: scripts/bench-bleu.sh [N]
# Run it under `flock /tmp/swiftnmt-bench.lock scripts/bench-bleu.sh` on shared machines.
# Environment: MULTI30K_DIR (default /work/shared/data/multi30k), SCRATCH (build dir, default .build-bleu),
# SKIP_BUILD=1 to reuse an existing release build, BENCH_DATA_DIR=DIR to keep the generated
# ref.txt/hyp.txt in DIR (e.g. to score them with sacreBLEU too).
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-100000}"
MULTI30K_DIR="${MULTI30K_DIR:-/work/shared/data/multi30k}"
SCRATCH="${SCRATCH:-.build-bleu}"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    swift build -c release --scratch-path "$SCRATCH" --product mt-bleu >&2
fi
BIN="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/mt-bleu"

if [[ -n "${BENCH_DATA_DIR:-}" ]]; then
    tmp="$BENCH_DATA_DIR"
    mkdir -p "$tmp"
else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
fi

src="$MULTI30K_DIR/raw/train.de.gz"
if [[ -f "$src" ]]; then
    echo "source: $src" >&2
    gzip -dc "$src" > "$tmp/source.txt"
else
    echo "source: synthetic words (no $src)" >&2
    : > "$tmp/source.txt"
fi

# Generate N references and perturbed hypotheses (awk's own seeded RNG: reproducible).
awk -v n="$N" -v seed=7 -v ref="$tmp/ref.txt" -v hyp="$tmp/hyp.txt" '
function synth(   k, s, j, w) {
    k = 6 + int(rand() * 14); s = ""
    for (j = 0; j < k; j++) {
        w = vocab[int(rand() * nv)]
        s = s (j ? " " : "") w
    }
    return s "."
}
BEGIN {
    srand(seed)
    nv = split("ein eine der die das Mann Frau Kind Hund spielt läuft sitzt steht auf im am mit und vor einem einer roten blauen großen kleinen Straße Wasser Ball Gras Park Hemd Jacke Fahrrad schaut hält", vocab, " ")
    for (i = 1; i <= nv; i++) vocab[i - 1] = vocab[i]
}
{ lines[m++] = $0 }
END {
    for (i = 0; i < n; i++) {
        s = m ? lines[i % m] : synth()
        print s > ref
        k = split(s, w, " ")
        out = ""
        for (j = 1; j <= k; j++) {
            r = rand()
            if (r < 0.08) continue                                   # drop a word
            t = w[j]
            if (r < 0.14 && j < k) { t = w[j + 1]; w[j + 1] = w[j] }  # swap with the next
            else if (r < 0.20) t = vocab[int(rand() * nv)]           # replace
            else if (r < 0.23) t = toupper(t)                        # change case
            out = out (out == "" ? "" : " ") t
        }
        print out > hyp
    }
}' "$tmp/source.txt"

echo "pairs: $(wc -l < "$tmp/hyp.txt") hypotheses, $(wc -l < "$tmp/ref.txt") references" >&2
"$BIN" "$tmp/ref.txt" -i "$tmp/hyp.txt" -m bleu chrf -f text >&2   # warm-up (page cache), shows the scores

start=$(date +%s.%N)
"$BIN" "$tmp/ref.txt" -i "$tmp/hyp.txt" -m bleu chrf -f text > /dev/null
end=$(date +%s.%N)
both=$(echo "$end - $start" | bc -l)

start=$(date +%s.%N)
"$BIN" "$tmp/ref.txt" -i "$tmp/hyp.txt" -m bleu -f text > /dev/null
end=$(date +%s.%N)
bleu=$(echo "$end - $start" | bc -l)

start=$(date +%s.%N)
"$BIN" "$tmp/ref.txt" -i "$tmp/hyp.txt" -m chrf -f text > /dev/null
end=$(date +%s.%N)
chrf=$(echo "$end - $start" | bc -l)

printf 'mt-bleu on %d pairs: BLEU+chrF %.2f s, BLEU %.2f s, chrF %.2f s\n' "$N" "$both" "$bleu" "$chrf"
