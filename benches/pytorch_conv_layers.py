"""PyTorch's side of `cargo bench --bench conv_layers`: every conv layer shape of B1, B2, B3 and B5
(the rows of benches/conv_layers.txt, which both sides read; "×3": the step runs that shape three
times), each kernel timed alone, median ms and GFLOP/s, 2 threads.

    python3 benches/pytorch_conv_layers.py [--reps 15] [--layers B2]

The backward kernels are called directly (no forward inside the timing): conv2d's through
torch.nn.grad; a transposed convolution's backward-data is the conv2d of dy with the same weight,
and its backward-weight is conv2d's weight gradient with dy as the input and x as the output
gradient. PyTorch is never a dependency of the project: this script only measures the reference.
"""

import argparse
import pathlib

import torch
import torch.nn.functional as F

from pytorch_common import median_ms, print_layer_row, print_layer_table_header

def layers():
    """The rows of benches/conv_layers.txt, the table the Rust side reads too."""
    path = pathlib.Path(__file__).with_name("conv_layers.txt")
    rows = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            wl, count, kind, *sizes = line.split()
            rows.append((wl, int(count), kind == "convT", *map(int, sizes)))
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--layers", help="comma-separated workloads (B1,B2,B3,B5) or row indices")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} threads, {a.reps} repetitions, median\n")
    print_layer_table_header()
    with torch.no_grad():
        for i, (wl, count, tr, n, ci, co, hw, k, s, pd, op) in enumerate(layers()):
            if a.layers and not any(c in (wl, str(i)) for c in a.layers.split(",")):
                continue
            times = f" ×{count}" if count > 1 else ""
            x = torch.rand(n, ci, hw, hw) * 2 - 1
            if tr:
                w = torch.rand(ci, co, k, k) * 2 - 1
                b = torch.rand(co)
                y = F.conv_transpose2d(x, w, b, s, pd, op)
                gy = torch.rand_like(y)
                flops = 2 * n * ci * hw * hw * co * k * k
                fwd = lambda: F.conv_transpose2d(x, w, b, s, pd, op)
                data = lambda: F.conv2d(gy, w, None, s, pd)
                weight = lambda: torch.nn.grad.conv2d_weight(gy, w.shape, x, s, pd)
                name = f"ConvT({k},{s},{pd},{op}) {ci}→{co} {hw}→{y.shape[2]}{times}"
            else:
                w = torch.rand(co, ci, k, k) * 2 - 1
                b = torch.rand(co)
                y = F.conv2d(x, w, b, s, pd)
                gy = torch.rand_like(y)
                flops = 2 * n * co * y.shape[2] * y.shape[3] * ci * k * k
                fwd = lambda: F.conv2d(x, w, b, s, pd)
                data = lambda: torch.nn.grad.conv2d_input(x.shape, w, gy, s, pd)
                weight = lambda: torch.nn.grad.conv2d_weight(x, w.shape, gy, s, pd)
                name = f"Conv({k},{s},{pd}) {ci}→{co} {hw}→{y.shape[2]}{times}"
            print_layer_row(wl, f"{i}: {name}", flops, [median_ms(f, a.reps) for f in (fwd, data, weight)], 2)


if __name__ == "__main__":
    main()
