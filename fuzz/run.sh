#!/usr/bin/env bash
# fuzz/run.sh BUILD_DIR SECONDS [JOBS]: runs every libFuzzer target built in
# BUILD_DIR (make fuzz) for SECONDS seconds, JOBS at a time, each on a fresh
# copy of its seeds (fuzz/corpus/NAME and fuzz/regressions/NAME) in a
# temporary directory, so the repository's corpora never change. Fails if
# any target crashes, leaks, times out or trips a sanitizer; the offending
# inputs are kept in BUILD_DIR/artifacts/TARGET/. To replay one:
#   BUILD_DIR/fuzz_npy BUILD_DIR/artifacts/fuzz_npy/crash-...
# To keep what a long run finds, run a target on the corpus itself:
#   BUILD_DIR/fuzz_npy -max_total_time=600 fuzz/corpus/npy
set -uo pipefail
build=${1:?usage: fuzz/run.sh BUILD_DIR SECONDS [JOBS]}
secs=${2:?usage: fuzz/run.sh BUILD_DIR SECONDS [JOBS]}
jobs=${3:-$(nproc)}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
work=$(mktemp -d /tmp/cn-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT

targets=()
for src in "$root"/fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done

run_one() {
    local t=$1 name=${1#fuzz_}
    local dir=$work/$t
    mkdir -p "$dir/corpus" "$dir/artifacts"
    for seeds in "$root/fuzz/corpus/$name" "$root/fuzz/regressions/$name"; do
        [ -d "$seeds" ] && find "$seeds" -maxdepth 1 -type f -exec cp {} "$dir/corpus/" \;
    done
    local args=(-max_total_time="$secs" -timeout=20 -rss_limit_mb=3072 -print_final_stats=1
                -artifact_prefix="$dir/artifacts/")
    if [ "$t" = fuzz_cli_args ]; then
        # The CLI's option names, straight from its sources, as a dictionary;
        # its stdout and stderr (usage lines) are closed.
        grep -ohE '"--?[a-z][a-z0-9-]*' "$root"/tools/*.c | sed 's/$/"/' | sort -u > "$dir/dict"
        grep -ohE '^\s*\{"[a-z0-9]+", cmd_' "$root/tools/main.c" | grep -oE '"[a-z0-9]+"' >> "$dir/dict"
        args+=(-dict="$dir/dict" -close_fd_mask=3)
    elif [ -f "$root/fuzz/$name.dict" ]; then
        args+=(-dict="$root/fuzz/$name.dict")
    fi
    (cd "$dir" && "$build/$t" "${args[@]}" "$dir/corpus" > "$dir/log" 2>&1)
    echo $? > "$dir/rc"
}

if [ ${#targets[@]} -eq 0 ]; then echo "fuzz: no targets" >&2; exit 1; fi
for t in "${targets[@]}"; do
    if [ ! -x "$build/$t" ]; then echo "fuzz: $build/$t not built (make fuzz-build)" >&2; exit 1; fi
done
echo "fuzz: ${#targets[@]} targets, ${secs} s each, $jobs at a time"
running=0
for t in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
    run_one "$t" &
    running=$((running + 1))
done
wait

failed=0
for t in "${targets[@]}"; do
    dir=$work/$t
    rc=$(cat "$dir/rc" 2>/dev/null || echo 1)
    runs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$dir/log" | grep -oE '[0-9]+$' | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$dir/log" | tail -1)
    if [ "$rc" = 0 ]; then
        echo "fuzz: $t ok: ${runs:-?} runs, ${cov:-cov: ?}, corpus $(ls "$dir/corpus" | wc -l) files"
    else
        failed=1
        mkdir -p "$build/artifacts/$t"
        cp "$dir"/artifacts/* "$build/artifacts/$t/" 2>/dev/null
        echo "fuzz: $t FAILED (exit $rc); inputs in $build/artifacts/$t/:"
        ls "$build/artifacts/$t/" 2>/dev/null | sed 's/^/    /'
        grep -vE '^#[0-9]+|^INFO:|^\s*$' "$dir/log" | tail -60
    fi
done
exit $failed
