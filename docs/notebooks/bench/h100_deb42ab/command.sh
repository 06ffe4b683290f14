#!/usr/bin/env bash
# The GPU test executables and the matmul ladder on the GPU machine; small text files come back in one archive.
set -u
O=$OUT/w; mkdir -p $O/tests
export PYTHONUNBUFFERED=1
t0=$(date +%s)
git log --oneline -1 > $O/commit.txt 2>&1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $O/gpu.txt 2>&1
grep -m1 "model name" /proc/cpuinfo >> $O/gpu.txt
K=$(ls target/release/deps/gpu_kernels-* | grep -v '\.d$' | head -1)
timeout 80 $K --bench matmul_ladder > $O/matmul_ladder.txt 2>&1; echo "exit $?" >> $O/matmul_ladder.txt
for t in target/release/deps/*-*; do
  case $t in *.d|*.rlib|*.rmeta|*.so) continue;; esac
  [ -x "$t" ] || continue
  "$t" --list 2>/dev/null | grep -q ': test$' || continue
  n=$(basename $t)
  if [ $(( $(date +%s) - t0 )) -gt 330 ]; then echo "$n: not run (out of time)" >> $O/tests.txt; continue; fi
  s=$(date +%s)
  timeout 120 "$t" --test-threads 8 > $O/tests/$n.txt 2>&1; rc=$?
  echo "$n: rc $rc, $(( $(date +%s) - s )) s, $(grep -E '^test result:' $O/tests/$n.txt | tr '\n' ' ')" >> $O/tests.txt
done
tar czf $OUT/w.tgz -C $OUT w; rm -rf $O
tar xzf $OUT/w.tgz -O w/gpu.txt w/commit.txt w/tests.txt
tar xzf $OUT/w.tgz -O w/matmul_ladder.txt | grep -aE 'matmul_ladder|thrpt|exit'
