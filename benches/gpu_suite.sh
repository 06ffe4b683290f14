#!/usr/bin/env bash
# The GPU measurements of docs/notebooks/performance.md ("Back on the H100") in one run, ours beside
# PyTorch's on CUDA, so that every ratio comes from one machine in one hour:
#   steps:   one training step, B1–B5: ours (`train_step -- --device gpu --kernel-times`, which
#            adds each kernel's GPU time per step, as the fused PyTorch run below adds its own
#            from torch.profiler; then with every tile, K split
#            and convolution rung chosen by timing (`--tune-kernels`), and with 8 and 128
#            launches per submit besides the default 32, submitting from the recording thread
#            instead of the context's thread for it, and B2, B3, B5 with convolutions never
#            splitting their K), PyTorch eager, and PyTorch with fused Adam (`--fused-adam`);
#   kernels: `gpu_kernels` (20 launches per synchronize) and PyTorch at its shapes;
#   tuning:  `train --device gpu` twice on dSprites with a fresh kernel cache: the first run
#            times every choice (its `tuning:` lines), the second reads them (none), and
#            both provenance.json files list the choices;
#   probe:   the scale probe, `train --arch resnet-bn --batch-size 2048` on dSprites, whose last
#            upsampling is a 4 GiB activation, larger than one buffer of NVIDIA's driver;
#   tests:   every test executable with VAE_REQUIRE_GPU=1.
# Each part's output goes to a file in OUT_DIR (default ./gpu-suite), and a summary to stdout.
#
# usage: bash benches/gpu_suite.sh [OUT_DIR [PART ...]]
# Without PARTs it runs all five, longer than ten minutes on an H100 (measured at df4e05b: steps
# about 3 minutes, kernels about 4, tuning under 1; estimated: the probe up to 9, tests about
# 5): where one command may run for at most ten, run them in separate commands, e.g.
# `steps kernels tuning`, then `tests`, then `probe`.
# With cargo on the machine the benches are built here; without it (a machine that received
# release builds), the newest executables under target/release/deps are run.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-suite}
mkdir -p "$out"
export VAE_REQUIRE_GPU=1 PYTHONUNBUFFERED=1

# The newest executable target/release/deps/NAME-<hash> (cargo's bench and test binaries).
newest() {
    ls -t target/release/deps/"$1"-* 2>/dev/null | grep -v '\.d$' | head -1
}
bench() {
    local name=$1
    shift
    if command -v cargo >/dev/null; then
        cargo bench -q --workspace --bench "$name" -- "$@"
    else
        "$(newest "$name")" --bench "$@"
    fi
}

git log --oneline -1 2>/dev/null | tee "$out/commit.txt"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
grep -m1 "model name" /proc/cpuinfo

steps() {
    echo "== training step, ours, with each kernel's GPU time per step"
    bench train_step --device gpu --kernel-times >"$out/step_ours.txt" 2>&1
    grep -E '^\| B|host (recording|CPU)|submitting thread|GPU memory|all kernels' "$out/step_ours.txt"
    for n in 8 128; do
        echo "== training step, ours, $n launches per submit"
        bench train_step --device gpu --dispatches-per-submit "$n" >"$out/step_ours_submit$n.txt" 2>&1
        grep -E '^\| B|host recording' "$out/step_ours_submit$n.txt"
    done
    echo "== training step, ours, submitting from the recording thread"
    bench train_step --device gpu --submit-inline >"$out/step_ours_inline.txt" 2>&1
    grep -E '^\| B|host (recording|CPU)' "$out/step_ours_inline.txt"
    echo "== training step, ours, every GPU kernel choice by timing (--tune-kernels)"
    bench train_step --device gpu --tune-kernels >"$out/step_ours_tuned.txt" 2>&1
    grep -E '^\| B|host (recording|CPU)' "$out/step_ours_tuned.txt"
    echo "== training step, ours, convolutions never splitting their K"
    bench train_step --device gpu --workloads B2,B3,B5 --no-conv-split-k >"$out/step_ours_no_split.txt" 2>&1
    grep -E '^\| B' "$out/step_ours_no_split.txt"
    echo "== training step, PyTorch eager (CUDA)"
    python3 benches/pytorch_train_step.py --device cuda >"$out/step_torch.txt" 2>&1
    grep -E '^\| B' "$out/step_torch.txt"
    echo "== training step, PyTorch with fused Adam (CUDA)"
    python3 benches/pytorch_train_step.py --device cuda --fused-adam --kernel-times >"$out/step_torch_fused.txt" 2>&1
    grep -E '^\| B|all kernels' "$out/step_torch_fused.txt"
}

kernels() {
    echo "== kernels, PyTorch (CUDA)"
    python3 benches/pytorch_gpu_kernels.py 2>&1 | tee "$out/kernels_torch.txt"
    echo "== kernels, ours"
    bench gpu_kernels >"$out/kernels_ours.txt" 2>&1
    grep -E '^(matmul|conv)|thrpt' "$out/kernels_ours.txt" | paste - - | sed 's/  */ /g'
}

tuning() {
    echo "== train with every GPU kernel choice by timing, then from the cache"
    command -v cargo >/dev/null && cargo build -q --release -p vae --bin train
    export VAE_KERNEL_CACHE=$out/kernel-choices.tsv
    rm -f "$VAE_KERNEL_CACHE"
    for run in first second; do
        timeout 120 target/release/train --device gpu --epochs 1 --max-images 4096 --run-dir "$out/train-$run" \
            >"$out/train_$run.txt" 2>&1
        echo "exit status $?" >>"$out/train_$run.txt"
        # Only the small files come back from a lent machine: no checkpoints, pictures or report.
        rm -f "$out/train-$run"/*.safetensors "$out/train-$run"/*.png "$out/train-$run"/*.html
        echo "$run run: $(grep -c '^tuning:' "$out/train_$run.txt") tuning lines; $(grep -E 'epoch 1/1|exit status' "$out/train_$run.txt" | tr '\n' ' ')"
    done
    unset VAE_KERNEL_CACHE
}

probe() {
    echo "== the scale probe: resnet-bn at batch 2,048 (a 4 GiB activation, in chunks)"
    command -v cargo >/dev/null && cargo build -q --release -p vae --bin train
    probe_run=$(mktemp -d)
    # By the rules, as every earlier probe ran: its epoch then holds no kernel timing.
    timeout 540 target/release/train --device gpu --arch resnet-bn --batch-size 2048 --max-images 6144 --epochs 1 \
        --gpu-kernels rule --profile --run-dir "$probe_run" >"$out/probe.txt" 2>&1
    echo "exit status $?" >>"$out/probe.txt"
    rm -rf "$probe_run"
    grep -E 'GPU memory|epoch 1/1|error|exit status' "$out/probe.txt"
}

tests() {
    echo "== tests"
    for t in target/release/deps/*-*; do
        case $t in *.d | *.rlib | *.rmeta | *.so) continue ;; esac
        [ -x "$t" ] || continue
        # Only test harnesses list tests ("name: test"); benches list benchmarks, binaries refuse.
        "$t" --list 2>/dev/null | grep -q ': test$' || continue
        echo "$t: $(timeout 300 "$t" --test-threads 4 2>&1 | grep -E '^test result|FAILED|panicked' | tr '\n' ' ')"
    done | tee "$out/tests.txt"
}

parts=("${@:2}")
[ ${#parts[@]} -eq 0 ] && parts=(steps kernels tuning probe tests)
for part in "${parts[@]}"; do
    case $part in
    steps | kernels | tuning | probe | tests) ;;
    *)
        echo "gpu_suite: unknown part '$part' (expected steps, kernels, tuning, probe or tests)" >&2
        exit 2
        ;;
    esac
done
for part in "${parts[@]}"; do
    "$part"
done
