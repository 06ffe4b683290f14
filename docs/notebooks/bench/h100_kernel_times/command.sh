#!/usr/bin/env bash
# Each kernel's GPU time per training step, ours (timestamp queries: train_step --kernel-times)
# beside PyTorch's (torch.profiler), B1-B5, and the kernel timer's tests on the GPU machine.
set -u
O=$OUT/w; mkdir -p $O
export PYTHONUNBUFFERED=1
git log --oneline -1 > $O/commit.txt 2>&1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $O/gpu.txt 2>&1
grep -m1 "model name" /proc/cpuinfo >> $O/gpu.txt
for t in target/release/deps/integration-*; do
  [ -x "$t" ] || continue
  timeout 60 "$t" kernel_timer --test-threads 4 2>&1 | grep -E '^test |panicked' >> $O/tests.txt
done
S=$(ls target/release/deps/train_step-* | grep -v '\.d$' | head -1)
timeout 150 $S --bench --device gpu --steps 40 --kernel-times > $O/step_ours_rule.txt 2>&1; echo "exit $?" >> $O/step_ours_rule.txt
timeout 120 python3 benches/pytorch_train_step.py --device cuda --fused-adam --kernel-times > $O/step_torch_fused.txt 2>&1; echo "exit $?" >> $O/step_torch_fused.txt
timeout 120 $S --bench --device gpu --steps 40 --tune-kernels --kernel-times --workloads B1,B3,B5 > $O/step_ours_tuned.txt 2>&1; echo "exit $?" >> $O/step_ours_tuned.txt
tar czf $OUT/w.tgz -C $OUT w; rm -rf $O
tar xzf $OUT/w.tgz -O w/commit.txt w/gpu.txt w/tests.txt
for f in step_ours_rule step_torch_fused step_ours_tuned; do echo "== $f"; tar xzf $OUT/w.tgz -O w/$f.txt | grep -aE '^\| B|all kernels|exit|rror'; done
