"""PyTorch's side of `cargo bench --bench gemm` and `cargo bench --bench conv`: the same sizes,
2 threads, fp32, median of 20 runs after 3 warm-ups, printed as GFLOP/s.

    python3 benches/pytorch_kernels.py
"""

import statistics
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)


def median_seconds(fn, runs=20):
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def report(name, flops, fn):
    s = median_seconds(fn)
    print(f"| {name} | {flops / s / 1e9:.1f} GFLOP/s ({s * 1e3:.1f} ms) |")


print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
report("sgemm 1024×1024×1024", 2 * 1024**3, lambda: a @ b)
a, b = torch.randn(4096, 512), torch.randn(512, 4608)
report("sgemm 4096×512×4608", 2 * 4096 * 512 * 4608, lambda: a @ b)
# B4's shapes (the dense VAE at batch 128): its first layer's forward, weight and data gradients.
for m, k, n in [(128, 784, 512), (784, 128, 512), (128, 512, 784)]:
    a, b = torch.randn(m, k), torch.randn(k, n)
    report(f"sgemm {m}×{k}×{n}", 2 * m * k * n, lambda: a @ b)

x = torch.randn(64, 64, 32, 32, requires_grad=True)
w = torch.randn(64, 64, 3, 3, requires_grad=True)
conv_flops = 2 * 64 * 64 * 64 * 9 * 32 * 32
report("conv2d forward, batch 64, 64→64, 32×32, 3×3 pad 1", conv_flops, lambda: F.conv2d(x, w, padding=1))
y = F.conv2d(x, w, padding=1)
g = torch.randn_like(y)
report(
    "conv2d backward-data, same",
    conv_flops,
    lambda: torch.ops.aten.convolution_backward(g, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False]),
)
report(
    "conv2d backward-weight, same",
    conv_flops,
    lambda: torch.ops.aten.convolution_backward(g, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [False, True, False]),
)
xt = torch.randn(64, 128, 8, 8)
wt = torch.randn(128, 64, 4, 4)
report(
    "conv_transpose2d forward, batch 64, 128→64, 8×8→16×16, k4 s2 p1",
    2 * 64 * 128 * 64 * 16 * 8 * 8,
    lambda: F.conv_transpose2d(xt, wt, stride=2, padding=1),
)
