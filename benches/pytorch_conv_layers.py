"""PyTorch's side of `cargo bench --bench conv_layers`: every conv layer shape of B1, B2, B3 and B5
(the same shapes, in the same order; "×3": the step runs that shape three times), each kernel
timed alone, median ms and GFLOP/s, 2 threads.

    python3 benches/pytorch_conv_layers.py [--reps 15] [--layers B2]

The backward kernels are called directly (no forward inside the timing): conv2d's through
torch.nn.grad; a transposed convolution's backward-data is the conv2d of dy with the same weight,
and its backward-weight is conv2d's weight gradient with dy as the input and x as the output
gradient. PyTorch is never a dependency of the project: this script only measures the reference.
"""

import argparse

import torch
import torch.nn.functional as F

from pytorch_common import median_ms, print_layer_row, print_layer_table_header

# transposed, batch, c_in, c_out, input size, kernel, stride, padding, output padding[, count]
LAYERS = [
    ("B1", False, 64, 3, 32, 64, 3, 2, 1, 0),
    ("B1", False, 64, 32, 64, 32, 3, 2, 1, 0),
    ("B1", False, 64, 64, 128, 16, 3, 2, 1, 0),
    ("B1", True, 64, 128, 64, 8, 4, 2, 1, 0),
    ("B1", True, 64, 64, 32, 16, 4, 2, 1, 0),
    ("B1", True, 64, 32, 3, 32, 4, 2, 1, 0),
    ("B5", False, 64, 3, 32, 32, 3, 2, 1, 0),
    ("B5", False, 64, 32, 64, 16, 3, 2, 1, 0),
    ("B5", True, 64, 64, 64, 8, 3, 2, 1, 1),
    ("B5", True, 64, 64, 32, 16, 3, 2, 1, 1),
    ("B5", True, 64, 32, 3, 32, 3, 1, 1, 0),
    ("B2", False, 64, 3, 64, 32, 7, 2, 3, 0),
    ("B2", False, 64, 64, 64, 8, 3, 1, 1, 0, 4),
    ("B2", False, 64, 64, 128, 8, 3, 2, 1, 0),
    ("B2", False, 64, 64, 128, 8, 1, 2, 0, 0),
    ("B2", False, 64, 128, 128, 4, 3, 1, 1, 0, 3),
    ("B2", False, 64, 128, 256, 4, 3, 2, 1, 0),
    ("B2", False, 64, 128, 256, 4, 1, 2, 0, 0),
    ("B2", False, 64, 256, 256, 2, 3, 1, 1, 0, 3),
    ("B2", False, 64, 256, 512, 2, 3, 2, 1, 0),
    ("B2", False, 64, 256, 512, 2, 1, 2, 0, 0),
    ("B2", False, 64, 512, 512, 1, 3, 1, 1, 0, 3),
    ("B2", True, 64, 512, 512, 1, 3, 1, 1, 0, 3),
    ("B2", True, 64, 512, 256, 2, 3, 1, 1, 0, 2),
    ("B2", True, 64, 256, 256, 2, 3, 1, 1, 0, 3),
    ("B2", True, 64, 256, 128, 4, 3, 1, 1, 0, 2),
    ("B2", True, 64, 128, 128, 4, 3, 1, 1, 0, 3),
    ("B2", True, 64, 128, 64, 8, 3, 1, 1, 0, 2),
    ("B2", True, 64, 64, 64, 8, 3, 1, 1, 0, 4),
    ("B2", True, 64, 64, 3, 32, 3, 1, 1, 0),
    ("B3", False, 32, 3, 64, 64, 3, 1, 1, 0),
    ("B3", False, 32, 64, 128, 64, 3, 2, 1, 0),
    ("B3", False, 32, 128, 128, 32, 3, 1, 1, 0, 2),
    ("B3", False, 32, 128, 256, 32, 3, 2, 1, 0),
    ("B3", False, 32, 256, 256, 16, 3, 1, 1, 0, 2),
    ("B3", False, 32, 256, 512, 16, 3, 2, 1, 0),
    ("B3", False, 32, 512, 512, 8, 3, 2, 1, 0),
    ("B3", False, 32, 512, 512, 8, 3, 1, 1, 0, 3),
    ("B3", False, 32, 512, 512, 4, 3, 1, 1, 0),
    ("B3", False, 32, 512, 256, 16, 3, 1, 1, 0),
    ("B3", False, 32, 256, 128, 32, 3, 1, 1, 0),
    ("B3", False, 32, 128, 64, 64, 3, 1, 1, 0),
    ("B3", False, 32, 64, 64, 64, 3, 1, 1, 0),
    ("B3", False, 32, 64, 3, 64, 3, 1, 1, 0),
]


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
        for i, (wl, tr, n, ci, co, hw, k, s, pd, op, *count) in enumerate(LAYERS):
            if a.layers and not any(c in (wl, str(i)) for c in a.layers.split(",")):
                continue
            times = f" ×{count[0]}" if count else ""
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
