#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] [TARGET...]: builds the cargo fuzz targets in fuzz/ and runs each
# (all of them by default) over its whole corpus, then fuzzes it for SECONDS (default 20).
# scripts/test.sh runs it with the default; long runs use the same script with more seconds.
#
# FUZZ_BUILD=dev builds without optimizations: a quarter of the CPU time of a cold release
# build (about 4 instead of 15 CPU minutes), for runs of a few seconds such as the suite's;
# inputs then run about 8 times slower. FUZZ_JOBS targets run at a time (default 2), each on
# one core and nice'd. New inputs go to
# fuzz/target/corpus/TARGET, never into the committed fuzz/corpus/TARGET (minimize them into
# it with `cargo fuzz cmin`, see fuzz/README.md). A crash, a failed property, a timeout
# (FUZZ_TIMEOUT seconds per input, default 10) or an out-of-memory fails the script and leaves
# the input in fuzz/artifacts/TARGET/. Logs go to FUZZ_LOG_DIR (default fuzz/target/logs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

secs=${1:-20}
shift || true
jobs=${FUZZ_JOBS:-2}
timeout=${FUZZ_TIMEOUT:-10}
logs=${FUZZ_LOG_DIR:-fuzz/target/logs}

if [[ $EUID -ne 0 ]]; then
    # The tar targets extract in a private mount namespace where every mount but a scratch
    # tmpfs is read-only, so that a write outside the layer fails instead of landing on the host.
    echo "scripts/fuzz.sh: run as root (the tar targets need a private mount namespace)" >&2
    exit 1
fi
# shellcheck source=/dev/null
[[ -f "$HOME/.cargo/env" ]] && . "$HOME/.cargo/env"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# cargo fuzz passes nightly-only flags (-Zsanitizer=address, sanitizer coverage). Only stable
# Rust is installed; RUSTC_BOOTSTRAP=1 lets this stable compiler accept them (fuzz/README.md).
export RUSTC_BOOTSTRAP=1
# libFuzzer's merge files go here rather than /tmp, which the tar targets' sandbox makes
# read-only.
export TMPDIR=$PWD/fuzz/target/tmp
mkdir -p "$TMPDIR" "$logs"

profile=()
case ${FUZZ_BUILD:-release} in
release) ;;
dev) profile=(--dev) ;;
*)
    echo "scripts/fuzz.sh: FUZZ_BUILD must be release or dev" >&2
    exit 1
    ;;
esac

if (($# == 0)); then
    mapfile -t targets < <(cargo fuzz list)
else
    targets=("$@")
fi

cargo fmt --manifest-path fuzz/Cargo.toml --check
# `cargo fuzz build` takes one target or all of them.
if (($# == 0)); then
    cargo fuzz build "${profile[@]}"
else
    for t in "${targets[@]}"; do cargo fuzz build "${profile[@]}" "$t"; done
fi

run_one() {
    local t=$1 secs=$2 timeout=$3 logs=$4 profile=${5:-}
    local log=$logs/$t.log
    local dict=()
    [[ -f fuzz/dicts/$t.dict ]] && dict=("-dict=fuzz/dicts/$t.dict")
    mkdir -p "fuzz/target/corpus/$t"
    # shellcheck disable=SC2086 # $profile is empty or one flag
    if nice -n 10 cargo fuzz run $profile "$t" "fuzz/target/corpus/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout="$timeout" -rss_limit_mb=2048 -entropic_scale_per_exec_time=1 -print_final_stats=1 \
        "${dict[@]}" >"$log" 2>&1; then
        local stats
        stats=$(grep -E '^#[0-9]+.*(DONE|INITED)' "$log" | tail -1 | sed 's/^#[0-9]*[[:space:]]*//')
        echo "fuzz $t: ok, $(sed -n 's/^stat::number_of_executed_units: *//p' "$log") runs in ${secs}s; $stats"
    else
        echo "fuzz $t: FAILED (log: $log)"
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|^artifact_prefix|Test unit written' -A2 "$log" | head -20 | sed 's/^/    /'
        return 1
    fi
}
export -f run_one

printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} "$secs" "$timeout" "$logs" "${profile[*]}"
