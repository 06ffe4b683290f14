#!/usr/bin/env bash
# After the split reductions: the step's kernels by the GPU's clock again (B1-B5, rules), and
# the test executables of gpu, tensor and the workspace on the GPU machine.
set -u
O=$OUT/w; mkdir -p $O
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $O/gpu.txt 2>&1
for t in target/release/deps/integration-* target/release/deps/tensor-* target/release/deps/ops-* target/release/deps/parity_device-*; do
  [ -x "$t" ] || continue
  case $t in *.d) continue ;; esac
  echo "$(basename $t): $(timeout 120 "$t" --test-threads 8 2>&1 | grep -E '^test result:|FAILED|panicked' | tr '\n' ' ')" >> $O/tests.txt
done
S=$(ls target/release/deps/train_step-* | grep -v '\.d$' | head -1)
timeout 150 $S --bench --device gpu --steps 40 --kernel-times > $O/step_ours_rule.txt 2>&1; echo "exit $?" >> $O/step_ours_rule.txt
tar czf $OUT/w.tgz -C $OUT w; rm -rf $O
tar xzf $OUT/w.tgz -O w/gpu.txt w/tests.txt
tar xzf $OUT/w.tgz -O w/step_ours_rule.txt | grep -aE '^\| B|all kernels|reduce.wgsl|backward_bias|exit|rror'
