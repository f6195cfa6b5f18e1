#!/usr/bin/env bash
# Sequence-level knowledge distillation (Kim & Rush, 2016) on Multi30k: an ensemble of trained models
# translates the training sources with beam 5, and one model of the same size is trained on the
# original pairs plus the ensemble's translations of them (twice the pairs; the sources appear twice).
# The single model learns the ensemble's choices, which are more regular than the human references,
# and gains much of the ensemble's advantage at the cost of one model at decoding time.
#
# Usage: scripts/distill-multi30k.sh SRC TGT TEACHER_MODEL_DIR...
# Environment:
#   CORPUS        the text the teachers were trained on: train, val, test_2016_flickr .SRC/.TGT
#                 (for the tok/ form, runs/multi30k-SRC-TGT-tok/corpus of scripts/train-multi30k.sh)
#   MULTI30K_TOK  1 when CORPUS is the lowercased tokenized form (scored with --tokenize none)
#   WORK          working directory (default runs/multi30k-SRC-TGT-distilled)
#   MAX_MINUTES, TRAIN_ARGS, STAGES   as for scripts/train-multi30k.sh (its preprocess, train and
#                 test stages run on WORK/corpus)
# The ensemble's translations are kept in WORK/corpus/train.distilled.TGT and reused on a second run.
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:?usage: scripts/distill-multi30k.sh SRC TGT TEACHER_MODEL_DIR...}"
tgt="${2:?usage: scripts/distill-multi30k.sh SRC TGT TEACHER_MODEL_DIR...}"
shift 2
[ "$#" -ge 1 ] || { echo "distill-multi30k.sh: name at least one teacher model directory" >&2; exit 2; }
corpus="${CORPUS:?set CORPUS to the directory of the text the teachers trained on}"
work="${WORK:-runs/multi30k-$src-$tgt-distilled}"
bin=.build/release
[ -x "$bin/mt-translate" ] || SETUP_SKIP_BUILD=0 bash scripts/setup.sh
mkdir -p "$work/corpus"

distilled="$work/corpus/train.distilled.$tgt"
lines=$(wc -l < "$corpus/train.$src")
if [ ! -f "$distilled" ] || [ "$(wc -l < "$distilled")" -ne "$lines" ]; then
    teachers=(); for m in "$@"; do teachers+=(--model "$m"); done
    echo "distill-multi30k.sh: the ensemble of $# translates $lines training sentences (beam 5)" >&2
    "$bin/mt-translate" "${teachers[@]}" --beam-size 5 --stats < "$corpus/train.$src" > "$distilled.partial"
    mv "$distilled.partial" "$distilled"
fi

cat "$corpus/train.$src" "$corpus/train.$src" > "$work/corpus/train.$src"
cat "$corpus/train.$tgt" "$distilled" > "$work/corpus/train.$tgt"
for split in val test_2016_flickr; do
    for lang in "$src" "$tgt"; do cp "$corpus/$split.$lang" "$work/corpus/$split.$lang"; done
done

CORPUS="$work/corpus" WORK="$work" STAGES="${STAGES:-preprocess train test}" \
    scripts/train-multi30k.sh "$src" "$tgt"
