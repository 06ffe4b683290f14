#!/usr/bin/env bash
# After the split reductions and the sliced batch norm: ours (rules, --kernel-times) and PyTorch
# fused (--kernel-times) in one command, B1-B5, and the gpu crate's tests on the GPU machine.
set -u
O=$OUT/w; mkdir -p $O
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $O/gpu.txt 2>&1
for t in target/release/deps/integration-* target/release/deps/tensor-* target/release/deps/parity_device-*; do
  [ -x "$t" ] || continue
  case $t in *.d) continue ;; esac
  echo "$(basename $t): $(timeout 120 "$t" --test-threads 8 2>&1 | grep -E '^test result:|FAILED|panicked' | tr '\n' ' ')" >> $O/tests.txt
done
S=$(ls target/release/deps/train_step-* | grep -v '\.d$' | head -1)
timeout 150 $S --bench --device gpu --steps 40 --kernel-times > $O/step_ours_rule.txt 2>&1; echo "exit $?" >> $O/step_ours_rule.txt
timeout 120 python3 benches/pytorch_train_step.py --device cuda --fused-adam --kernel-times > $O/step_torch_fused.txt 2>&1; echo "exit $?" >> $O/step_torch_fused.txt
tar czf $OUT/w.tgz -C $OUT w; rm -rf $O
tar xzf $OUT/w.tgz -O w/gpu.txt w/tests.txt
for f in step_ours_rule step_torch_fused; do echo "== $f"; tar xzf $OUT/w.tgz -O w/$f.txt | grep -aE '^\| B|all kernels|batch_norm.wgsl|exit|rror'; done
