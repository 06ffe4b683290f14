#!/usr/bin/env bash
# The CPU step against PyTorch in alternating rounds, as docs/performance.md's "ours / PyTorch"
# ratios are measured: for each round and workload, our step (`train_step
# --tune-kernels`, train's default kernels) and PyTorch's (`pytorch_train_step.py`), the order
# reversed every other round, since a shared machine drifts within minutes. Optionally a second
# build of ours (BEFORE, a train_step executable) runs beside, for a before/after in the same
# rounds. Each run's result row goes to OUT_DIR/rows.txt as printed, and the ratios to stdout.
#
# usage: bash benches/cpu_rounds.sh [OUT_DIR [ROUNDS [WORKLOAD ...]]]
#   defaults: target/cpu-rounds, 2 rounds, B1 B2 B3 B4 B5 (B3 runs 5 steps, the others 10)
#   THREADS=N   threads on both sides (default 2)
#   PIN="taskset -c 0,1"   run both sides pinned (a larger machine standing in for 2 cores)
#   BEFORE=path/to/train_step-<hash>   a second build of ours, timed in the same rounds
# With cargo on the machine the bench is built here; without it (a machine that received
# release builds), the newest target/release/deps/train_step-* is run.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/cpu-rounds}
rounds=${2:-2}
shift $(($# < 2 ? $# : 2))
workloads=("$@")
[ ${#workloads[@]} -eq 0 ] && workloads=(B1 B2 B3 B4 B5)
threads=${THREADS:-2}
pin=${PIN:-}
mkdir -p "$out"
rows="$out/rows.txt"
: >"$rows"

if command -v cargo >/dev/null; then
    cargo bench -q --bench train_step --no-run || exit 1
fi
ours=$(ls -t target/release/deps/train_step-* 2>/dev/null | grep -v '\.d$' | head -1)
[ -x "$ours" ] || { echo "cpu_rounds: no train_step executable under target/release/deps" >&2; exit 1; }

{
    git log --oneline -1 2>/dev/null
    grep -m1 "model name" /proc/cpuinfo
    for field in vendor_id "cpu family" model; do grep -m1 "^$field\s*:" /proc/cpuinfo; done
    echo "threads: $threads${pin:+, pinned: $pin}; ours: $ours${BEFORE:+; before: $BEFORE}"
} | tee "$out/machine.txt"

# One run's result row (the line that starts with `| W |`).
run() {
    local who=$1 w=$2 steps=$3
    case $who in
        ours) RAYON_NUM_THREADS=$threads $pin "$ours" --tune-kernels --workloads "$w" --steps "$steps" --profile-steps 0 ;;
        before) RAYON_NUM_THREADS=$threads $pin "$BEFORE" --tune-kernels --workloads "$w" --steps "$steps" --profile-steps 0 ;;
        pytorch) $pin python3 benches/pytorch_train_step.py --workloads "$w" --threads "$threads" --steps "$steps" ;;
    esac 2>&1 | grep -m1 "^| $w |"
}

sides=(ours pytorch)
[ -n "${BEFORE:-}" ] && sides=(before ours pytorch)
for r in $(seq 1 "$rounds"); do
    for w in "${workloads[@]}"; do
        steps=10
        [ "$w" = B3 ] && steps=5
        order=("${sides[@]}")
        if [ $((r % 2)) -eq 0 ]; then
            order=()
            for ((i = ${#sides[@]} - 1; i >= 0; i--)); do order+=("${sides[i]}"); done
        fi
        for who in "${order[@]}"; do
            echo "round $r $who $(run "$who" "$w" "$steps")" >>"$rows"
        done
    done
done

# The medians side by side. Our rows carry the device column before the median; PyTorch's do not.
python3 - "$rows" <<'PY' | tee "$out/ratios.md"
import sys
median = {}
for line in open(sys.argv[1]):
    head, *cells = line.split("|")
    _, r, who = head.split()
    if len(cells) < 5:
        continue
    median[int(r), cells[0].strip(), who] = float(cells[2 if who == "pytorch" else 3])
print("| round | workload | ours ms | PyTorch ms | ours / PyTorch | before ms | ours / before |")
print("|---|---|---|---|---|---|---|")
for r, w in sorted({(r, w) for r, w, _ in median}):
    ours, torch, before = (median.get((r, w, who)) for who in ("ours", "pytorch", "before"))
    ratio = f"{ours / torch:.2f}" if ours and torch else ""
    was = f"| {before:.1f} | {ours / before:.3f} |" if ours and before else "| | |"
    print(f"| {r} | {w} | {ours or ''} | {torch or ''} | {ratio} {was}")
PY
