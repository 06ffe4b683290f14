#!/usr/bin/env bash
# The local launcher's --jobs on this machine: the wall time of a four-point study of tiny runs
# (vae/studies/tiny-dense.toml, and the same at 3,000 images) with --jobs 1 (one point at a
# time on every core) and --jobs 2 (two at a time, the cores divided), each from an empty
# sweep folder, alternating, ROUNDS rounds (default 3) of 5 runs each; prints the medians and
# their ratio. The sweeps are written under SCRATCH (default: a new folder in the system's temp
# dir; SCRATCH=/dev/shm takes the disk's fsync out of the times). Needs hyperfine
# (apt-get install -y hyperfine) and a release build (cargo build --release -p vae).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
sweep=$PWD/target/release/sweep
scratch=$(mktemp -d -p "${SCRATCH:-${TMPDIR:-/tmp}}")
trap 'rm -rf "$scratch"' EXIT
sed 's/^max-images = 600$/max-images = 3000/' vae/studies/tiny-dense.toml >"$scratch/small-dense.toml"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores; commit $(git rev-parse --short HEAD); sweeps in $(df --output=fstype "$scratch" | tail -1) ($scratch)"
for study in vae/studies/tiny-dense.toml "$scratch/small-dense.toml"; do
    for round in $(seq "$rounds"); do
        hyperfine -N -w 1 -r 5 --prepare "rm -rf $scratch/runs" --export-json "$scratch/r.json" \
            "$sweep --study $study --root $scratch/runs --jobs 1" \
            "$sweep --study $study --root $scratch/runs --jobs 2" >/dev/null
        python3 - "$scratch/r.json" "$(basename "$study")" "$round" <<'PY'
import json, statistics, sys
results = json.load(open(sys.argv[1]))["results"]
one, two = (statistics.median(r["times"]) for r in results)
print(f"{sys.argv[2]} round {sys.argv[3]}: --jobs 1 {one:.3f} s, --jobs 2 {two:.3f} s (medians of 5): ratio {two / one:.3f}")
PY
    done
done
