"""Helpers shared by the PyTorch scripts that print per-layer tables (`pytorch_conv_layers.py`,
`pytorch_linear_layers.py`), as `benches/common/mod.rs` is for their Rust sides."""

import time


def median_ms(fn, reps):
    """The median wall time of `reps` calls of `fn`, in ms, after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


def print_layer_table_header():
    print("| workload | layer | GFLOP | fwd ms | fwd GFLOP/s | bwd-data ms | GFLOP/s | bwd-weight ms | GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|---|")


def print_layer_row(workload, layer, flops, times_ms, decimals):
    """One row: GFLOP per kernel, then each kernel's median ms and GFLOP/s."""
    cells = " | ".join(f"{t:.{decimals}f} | {flops / (t * 1e6):.1f}" for t in times_ms)
    print(f"| {workload} | {layer} | {flops / 1e9:.{decimals}f} | {cells} |")
