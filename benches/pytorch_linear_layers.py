"""PyTorch's side of `cargo bench --bench linear_layers`: the same Linear layers of B1, B4 and
B5, each product timed alone (forward x·Wᵀ, backward-data dy·W, backward-weight dyᵀ·x), median
ms and GFLOP/s, on the same number of threads.

    python3 benches/pytorch_linear_layers.py [--reps 50] [--threads 2] [--layers B4,8]
"""
import argparse

import torch

from pytorch_common import median_ms, print_layer_row, print_layer_table_header

# (workload, batch, inputs, outputs): the rows of LAYERS in benches/linear_layers.rs.
LAYERS = [
    ("B1", 64, 8192, 32),
    ("B1", 64, 32, 8192),
    ("B4", 128, 784, 512),
    ("B4", 128, 512, 256),
    ("B4", 128, 256, 16),
    ("B4", 128, 16, 256),
    ("B4", 128, 256, 512),
    ("B4", 128, 512, 784),
    ("B5", 64, 4096, 128),
    ("B5", 64, 128, 4096),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layers", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads: {torch.get_num_threads()}, {args.reps} repetitions, median, torch {torch.__version__}\n")
    print_layer_table_header()
    chosen = set(args.layers.split(",")) if args.layers else None
    total = 0.0
    for i, (workload, batch, inputs, outputs) in enumerate(LAYERS):
        if chosen is not None and workload not in chosen and str(i) not in chosen:
            continue
        x = torch.rand(batch, inputs) * 2 - 1
        w = torch.rand(outputs, inputs) * 2 - 1
        dy = torch.rand(batch, outputs) * 2 - 1
        times = [median_ms(fn, args.reps) for fn in (lambda: x @ w.t(), lambda: dy @ w, lambda: dy.t() @ x)]
        total += sum(times)
        flops = 2.0 * batch * inputs * outputs
        print_layer_row(workload, f"{i}: Linear {inputs}→{outputs}, batch {batch}", flops, times, 3)
    print(f"\ntotal of the medians: {total:.3f} ms")


if __name__ == "__main__":
    main()
