#!/usr/bin/env bash
# Builds one libFuzzer target over a parser of untrusted bytes and fuzzes it for SECONDS on its seeds.
#
#   scripts/fuzz.sh TARGET SECONDS [LIBFUZZER-FLAG...]   TARGET: safetensors, token-dataset, manifest, line-stream
#   scripts/fuzz.sh TARGET replay FILE... runs the target once on each FILE (a crash to reproduce)
#
# The target is built with swiftc -sanitize=fuzzer,address straight from the parser's own source
# files (not through SwiftPM, so the normal build never sees it) into .build-fuzz-targets/, and
# rebuilt only when a source changed. The fuzzer runs under nice -n 19 (FUZZ_NICE to change).
# Inputs that reach new code go to .build-fuzz-corpus/TARGET (kept between runs, never committed);
# the seeds in Fuzz/TARGET/seeds and the regressions in Fuzz/TARGET/regressions are only read.
# A crash, trap, hang (over 10 s) or allocation over 256 MB is left in Fuzz/findings/TARGET/ and
# makes the script exit 1. See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

target=${1:?usage: scripts/fuzz.sh TARGET SECONDS | scripts/fuzz.sh TARGET replay FILE...}
mode=${2:?usage: scripts/fuzz.sh TARGET SECONDS | scripts/fuzz.sh TARGET replay FILE...}

# The parser sources each target compiles with its FuzzTarget.swift into one module (so it reaches
# the parser's internal API), and whether it imports NMTTensor.
case "$target" in
    safetensors)   sources=();                                                          needsTensor=1 ;;
    token-dataset) sources=(Sources/NMTText/TextError.swift Sources/NMTText/TokenDataset.swift); needsTensor=1 ;;
    manifest)      sources=(Sources/NMTText/TextError.swift Sources/NMTText/Manifest.swift);     needsTensor=1 ;;
    line-stream)   sources=(Sources/NMTSearch/LineStream.swift);                        needsTensor=0 ;;
    *) echo "fuzz: unknown target '$target' (safetensors, token-dataset, manifest, line-stream)" >&2; exit 2 ;;
esac

swiftc=$(command -v swiftc) || { echo "fuzz: swiftc not found" >&2; exit 2; }
# The toolchain's clang, whose sanitizers match swiftc's (a system clang may be another version or absent).
clang=$(dirname "$swiftc")/clang
fuzzerRuntime=$(ls "$(dirname "$swiftc")"/../lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null | head -n 1 || true)
if [ -z "$fuzzerRuntime" ]; then
    echo "fuzz: this Swift toolchain has no libFuzzer runtime (libclang_rt.fuzzer); fuzzing needs a Linux toolchain" >&2
    exit 3
fi

build=$root/.build-fuzz-targets
binary=$build/fuzz-$target
# Sanitized, with overflow and bounds checks on (-O, where the release build has -Ounchecked):
# a check that fails here is an overflow or out-of-bounds access that a release build would not stop.
flags=(-sanitize=fuzzer,address -O -g -parse-as-library -package-name SwiftNMT)
mkdir -p "$build"

# True when $1 is missing or older than any of the other files.
outdated() {
    local product=$1; shift
    [ -e "$product" ] || return 0
    for f in "$@"; do [ "$f" -nt "$product" ] && return 0; done
    return 1
}

# NMTTensor with its C kernels (and OpenBLAS and oneDNN), shared by the targets that import it.
tensorLibrary=$build/libNMTTensor.a
tensorSources=(Sources/NMTTensor/*.swift Sources/CKernels/*.c Sources/CKernels/include/*.h Sources/CLowPrecision/*.c
               Sources/CLowPrecision/include/*.h)
if [ "$needsTensor" = 1 ] && outdated "$tensorLibrary" "${tensorSources[@]}" "$0"; then
    echo "fuzz: building NMTTensor (sanitized)" >&2
    mkdir -p "$build/ckernels"
    # SwiftPM makes this module map for the C target; swiftc alone needs it spelled out.
    printf 'module CKernels {\n    header "%s"\n    export *\n}\nmodule CLowPrecision {\n    header "%s"\n    export *\n}\n' \
        "$root/Sources/CKernels/include/ckernels.h" "$root/Sources/CLowPrecision/include/lowprecision.h" > "$build/ckernels/module.modulemap"
    objects=()
    for c in Sources/CKernels/*.c Sources/CLowPrecision/*.c; do
        object=$build/ckernels/$(basename "$c" .c).o
        "$clang" -c -O2 -fsanitize=fuzzer-no-link,address -I Sources/CKernels/include -I Sources/CLowPrecision/include "$c" -o "$object"
        objects+=("$object")
    done
    swiftc "${flags[@]}" -module-name NMTTensor -I Sources/CBLAS -I "$build/ckernels" Sources/NMTTensor/*.swift \
        -emit-module -emit-module-path "$build/NMTTensor.swiftmodule" -emit-library -static -o "$build/libNMTTensorSwift.a"
    rm -f "$tensorLibrary"
    # One archive: the Swift objects and the C kernels they call.
    cp "$build/libNMTTensorSwift.a" "$tensorLibrary"
    ar rs "$tensorLibrary" "${objects[@]}" 2>/dev/null
fi

inputs=(Fuzz/"$target"/FuzzTarget.swift Fuzz/Shared/Check.swift "${sources[@]}" "$0")
[ "$needsTensor" = 1 ] && inputs+=("$tensorLibrary")
if outdated "$binary" "${inputs[@]}"; then
    echo "fuzz: building $target (sanitized)" >&2
    tensor=()
    [ "$needsTensor" = 1 ] && tensor=(-I "$build" -I Sources/CBLAS -I "$build/ckernels" "$tensorLibrary" -lopenblas -ldnnl -lgomp -lm)
    rm -f "$binary"
    swiftc "${flags[@]}" -module-name "Fuzz_${target//-/_}" Fuzz/"$target"/FuzzTarget.swift Fuzz/Shared/Check.swift "${sources[@]}" "${tensor[@]}" -o "$binary" 2>&1 | { grep -v "ld.gold: warning: Cannot export local symbol" || true; }
    test -x "$binary" || exit 2
fi

# Leaks are not looked for: Swift frees by reference counting, and Foundation keeps caches that
# the leak checker would report on every run.
export ASAN_OPTIONS=detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}
# Swift's own crash backtracer reads the crashed process's memory, which AddressSanitizer reports
# as an error of its own; libFuzzer and AddressSanitizer print the stack instead.
export SWIFT_BACKTRACE=enable=no
options=(-detect_leaks=0 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 -print_final_stats=1)

if [ "$mode" = replay ]; then
    shift 2
    exec "$binary" "${options[@]}" "$@"
fi
case "$mode" in ''|*[!0-9]*) echo "fuzz: SECONDS must be a number, not '$mode'" >&2; exit 2 ;; esac
# Further flags go to libFuzzer, e.g. -use_value_profile=1 (guides it towards the numbers of comparisons).
shift 2

seeds=Fuzz/$target/seeds
regressions=Fuzz/$target/regressions
corpus=$root/.build-fuzz-corpus/$target
findings=$root/Fuzz/findings/$target
mkdir -p "$corpus" "$findings"
before=$(ls "$findings" | wc -l)
corpora=("$corpus" "$seeds")
[ -d "$regressions" ] && corpora+=("$regressions")

echo "fuzz: $target for $mode s (corpus $corpus, seeds $seeds)" >&2
status=0
# One log per run (two runs at once, e.g. the test suite's beside a long one, must not mix);
# kept only when the run found something.
log=$build/fuzz-$target-$$.log
nice -n "${FUZZ_NICE:-19}" "$binary" "${options[@]}" -max_total_time="$mode" -artifact_prefix="$findings/" \
    "$@" "${corpora[@]}" > "$log" 2>&1 || status=$?
# libFuzzer's summary: the last status line and the final stats.
grep -a -E '^#[0-9]+.*(DONE|pulse|NEW)' "$log" | tail -n 1 >&2 || true
grep -a -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" >&2 || true

after=$(ls "$findings" | wc -l)
if [ "$status" -ne 0 ] || [ "$after" -gt "$before" ]; then
    grep -a -E 'ERROR: |Fatal error|runtime failure|SUMMARY|Test unit written' "$log" | head -n 20 >&2 || true
    echo "fuzz: $target FAILED (exit $status); inputs in $findings:" >&2
    ls -t "$findings" | head -n 5 | sed "s|^|  $findings/|" >&2
    echo "fuzz: full log in $log; replay with scripts/fuzz.sh $target replay FILE" >&2
    exit 1
fi
rm -f "$log"
echo "fuzz: $target found nothing" >&2
