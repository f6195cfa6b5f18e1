#!/usr/bin/env bash
# Multi30k end to end: get the data, preprocess (joint SentencePiece BPE 8,000), train, translate
# the test sets with beam 5, score them with mt-bleu and print a results table.
# Usage: scripts/train-multi30k.sh SRC TGT        (SRC, TGT in en de fr cs; English→German is the headline)
# Environment:
#   MULTI30K_FROM   copy the raw corpus from this directory instead of downloading it
#   MULTI30K_TOK=1  use the lowercased, tokenized files (tok/*.lc.norm.tok.LANG.gz, from MULTI30K_FROM's
#                   sibling tok/ directory) and score with --tokenize none, as published papers do
#   MAX_MINUTES     training time limit (default 90)
#   TRAIN_ARGS      more mt-train flags, over scripts/multi30k.yaml (e.g. "--exponential-smoothing 0.999")
#   WORK            working directory (default runs/multi30k-SRC-TGT[-tok])
#   CORPUS          take the text from this directory (train, val, test_2016_flickr .SRC/.TGT) and skip
#                   the data stage: scripts/distill-multi30k.sh trains on a corpus of its own this way
#   STAGES          which stages to run (default "data preprocess train test")
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:?usage: scripts/train-multi30k.sh SRC TGT}"
tgt="${2:?usage: scripts/train-multi30k.sh SRC TGT}"
tok="${MULTI30K_TOK:-0}"
suffix=""; [ "$tok" = 1 ] && suffix="-tok"
work="${WORK:-runs/multi30k-$src-$tgt$suffix}"
stages="${STAGES:-data preprocess train test}"
bin=.build/release
raw="${CORPUS:-data/multi30k}"
[ -x "$bin/mt-train" ] || SETUP_SKIP_BUILD=0 bash scripts/setup.sh
mkdir -p "$work"

if [[ " $stages " == *" data "* ]] && [ -z "${CORPUS:-}" ]; then
    if [ "$tok" = 1 ]; then
        from="${MULTI30K_FROM:?MULTI30K_TOK=1 needs MULTI30K_FROM (the raw/ directory beside tok/)}/../tok"
        raw="$work/corpus"; mkdir -p "$raw"
        for split in train val test_2016_flickr; do
            for lang in "$src" "$tgt"; do gzip -dc "$from/$split.lc.norm.tok.$lang.gz" > "$raw/$split.$lang"; done
        done
    else
        bash scripts/get-multi30k.sh ${MULTI30K_FROM:+--from "$MULTI30K_FROM"} "$raw"
    fi
fi
[ "$tok" = 1 ] && [ -z "${CORPUS:-}" ] && raw="$work/corpus"

if [[ " $stages " == *" preprocess "* ]]; then
    tests="$raw/test_2016_flickr"
    for t in test_2017_flickr test_2017_mscoco test_2018_flickr; do [ -f "$raw/$t.$src" ] && [ -f "$raw/$t.$tgt" ] && tests="$tests,$raw/$t"; done
    "$bin/mt-preprocess" --source-lang "$src" --target-lang "$tgt" --trainpref "$raw/train" --validpref "$raw/val" \
        --testpref "$tests" --destdir "$work/data" --vocab-size 8000 --joint --force
fi

if [[ " $stages " == *" train "* ]]; then
    "$bin/mt-train" --data "$work/data" --model-dir "$work/model" --config scripts/multi30k.yaml \
        --max-minutes "${MAX_MINUTES:-90}" ${TRAIN_ARGS:-} --overwrite 2>&1 | tee "$work/train.log"
fi

if [[ " $stages " == *" test "* ]]; then
    # The tok/ form is scored as published papers score it: lowercased tokenized text, no further tokenization.
    tokenize=13a; force=(); [ "$tok" = 1 ] && tokenize=none && force=(--force)
    printf '\n| test set | BLEU (%s) | chrF | sentences/s |\n|---|---|---|---|\n' "$tokenize"
    for f in "$work"/data/test*."$src".txt; do
        name=$(basename "$f" ".$src.txt")
        ref="$work/data/$name.$tgt.txt"
        stats=$("$bin/mt-translate" --model "$work/model" --beam-size 5 --stats < "$f" 2>&1 > "$work/$name.hyp.$tgt" | tail -n 1)
        speed=$(echo "$stats" | sed -E 's/.*: ([0-9.]+) sentences\/s.*/\1/')
        bleu=$("$bin/mt-bleu" "$ref" -i "$work/$name.hyp.$tgt" -m bleu -tok "$tokenize" "${force[@]}" -b)
        chrf=$("$bin/mt-bleu" "$ref" -i "$work/$name.hyp.$tgt" -m chrf "${force[@]}" -b)
        printf '| %s | %s | %s | %s |\n' "$name" "$bleu" "$chrf" "$speed"
    done | tee "$work/results.md"
fi
