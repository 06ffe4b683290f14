#!/usr/bin/env bash
# The long fuzz runs: every target of `vae::fuzz` (or the ones named) under libFuzzer, for RUNS
# inputs each, coverage-guided, starting from the committed corpus. What a run finds is kept:
# the inputs that reached new code in target/fuzz-corpus/TARGET/ (merge the useful ones into
# vae/fuzz/corpus/TARGET/ with `cargo fuzz cmin`), a crash's input in
# vae/fuzz/artifacts/TARGET/ (minimise it with `cargo fuzz tmin`, commit it under
# vae/fuzz/regressions/TARGET/, and fix the bug: the stable test replays it from then on).
#
#   vae/fuzz/run.sh                       # each target, 10^6 inputs
#   vae/fuzz/run.sh 20000 idx study       # two targets, 20,000 inputs each
#   JOBS=2 vae/fuzz/run.sh                # two targets at a time
#   FUZZ_LOGS=target/fuzz-logs-2 vae/fuzz/run.sh ...   # beside a run that is still going
#
# Needs the nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`,
# `cargo install cargo-fuzz`). Limits per input, as the issue of a hostile file asks: 10 s,
# 256 MiB in one allocation (a size taken from a file's word shows up here), 2 GiB in all.
# Prints one line a target and a Markdown table at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=${1:-1000000}
shift || true
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in vae/fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/fuzz}
# The targets write each input to a scratch file and read it back as a user's file is read:
# in memory (tmpfs) when the machine has one, at several times the inputs a second of a disk.
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
logs=${FUZZ_LOGS:-target/fuzz-logs}
mkdir -p "$logs"

# Release with overflow checks: a size computed from a file that wraps around is a crash here.
cargo +nightly fuzz build --fuzz-dir vae/fuzz -O -a
FUZZ_HOST=$(rustc +nightly -vV | sed -n 's/^host: //p')
export FUZZ_HOST

one_target() {
    local t=$1 runs=$2 logs=$3
    local corpus=target/fuzz-corpus/$t
    mkdir -p "$corpus" "vae/fuzz/artifacts/$t"
    local seeds=("vae/fuzz/corpus/$t")
    [ -d "vae/fuzz/regressions/$t" ] && seeds+=("vae/fuzz/regressions/$t")
    local started=$SECONDS status=0
    # The binary built above, run as `cargo fuzz run` would (which would rebuild first).
    nice -n 10 "$CARGO_TARGET_DIR/$FUZZ_HOST/release/$t" "$corpus" "${seeds[@]}" \
        -runs="$runs" -timeout=10 -malloc_limit_mb=256 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="vae/fuzz/artifacts/$t/" >"$logs/$t.log" 2>&1 || status=$?
    local done_runs cov execs
    done_runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' || echo "?")
    execs=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$logs/$t.log" | tail -1 | grep -o '[0-9]*$' || echo "?")
    local crashes
    # libFuzzer's findings (a slow-unit- file is only a note: an input past 10 s of wall time,
    # which a paused or starved process also makes).
    crashes=$(find "vae/fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \
        -o -name 'leak-*' \) | wc -l)
    local verdict=ok
    [ "$status" -ne 0 ] && verdict="FAILED (exit $status, see $logs/$t.log)"
    echo "| $t | $done_runs | $execs | $cov | $(find "$corpus" -type f | wc -l) | $crashes | $((SECONDS - started)) s | $verdict |"
}
export -f one_target

echo "fuzzing ${#targets[@]} target(s), $runs inputs each; logs in $logs/"
{
    echo "| target | inputs run | inputs/s | coverage points | corpus kept | crash inputs | wall | result |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${targets[@]}" | xargs -P "${JOBS:-1}" -I{} bash -c 'one_target "$@"' _ {} "$runs" "$logs"
} | tee "$logs/summary.md"
! grep -q FAILED "$logs/summary.md"
