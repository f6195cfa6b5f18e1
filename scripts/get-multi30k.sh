#!/usr/bin/env bash
# Puts the Multi30k task-1 raw files (train, val, test_2016_flickr, and later test sets where
# available) for en, de, fr, cs into DIR (default data/multi30k), uncompressed, and checks line counts.
# Usage: scripts/get-multi30k.sh [--from LOCAL_DIR] [DIR]
#   --from LOCAL_DIR  copy from a local directory of *.gz or plain files instead of downloading
set -euo pipefail
cd "$(dirname "$0")/.."
from=""
dest="data/multi30k"
while [ $# -gt 0 ]; do
    case "$1" in
        --from) from="$2"; shift 2 ;;
        -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) dest="$1"; shift ;;
    esac
done
base="https://github.com/multi30k/dataset/raw/master/data/task1/raw"
mkdir -p "$dest"
declare -A expected=([train]=29000 [val]=1014 [test_2016_flickr]=1000 [test_2017_flickr]=1000 [test_2017_mscoco]=461 [test_2018_flickr]=1071)
for split in train val test_2016_flickr test_2017_flickr test_2017_mscoco test_2018_flickr; do
    for lang in en de fr cs; do
        out="$dest/$split.$lang"
        [ -s "$out" ] && continue
        if [ -n "$from" ]; then
            if [ -f "$from/$split.$lang.gz" ]; then gzip -dc "$from/$split.$lang.gz" > "$out.tmp"
            elif [ -f "$from/$split.$lang" ]; then cp "$from/$split.$lang" "$out.tmp"
            else continue; fi
        else
            if ! curl -fsSL "$base/$split.$lang.gz" -o "$out.gz.tmp" 2>/dev/null; then
                rm -f "$out.gz.tmp"
                case "$split" in train|val|test_2016_flickr) echo "get-multi30k: cannot download $split.$lang" >&2; exit 1 ;; esac
                continue
            fi
            gzip -dc "$out.gz.tmp" > "$out.tmp" && rm -f "$out.gz.tmp"
        fi
        mv "$out.tmp" "$out"
    done
done
status=0
for split in "${!expected[@]}"; do
    for lang in en de fr cs; do
        f="$dest/$split.$lang"
        [ -f "$f" ] || continue
        n=$(wc -l < "$f")
        if [ "$n" -ne "${expected[$split]}" ]; then echo "get-multi30k: $f has $n lines, expected ${expected[$split]}" >&2; status=1; fi
    done
done
for required in train val test_2016_flickr; do
    for lang in en de; do [ -f "$dest/$required.$lang" ] || { echo "get-multi30k: $dest/$required.$lang is missing" >&2; status=1; }; done
done
[ $status -eq 0 ] && echo "Multi30k in $dest: $(ls "$dest" | wc -l) files, line counts checked" >&2
exit $status
