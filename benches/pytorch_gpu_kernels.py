"""PyTorch's side of `cargo bench -p gpu --bench gpu_kernels` on CUDA: the same shapes, fp32 with
TF32 off (cuBLAS/cuDNN's plain fp32 paths, the arithmetic our kernels do), REPS launches per
synchronize (default 20, as the Rust bench), median of 50 samples after 5 warm-ups, GFLOP/s.

    python3 benches/pytorch_gpu_kernels.py            # REPS=20
    REPS=1 python3 benches/pytorch_gpu_kernels.py     # one submit's latency in every figure
"""

import os
import statistics
import time

import torch
import torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.backends.cudnn.benchmark = True
DEVICE = "cuda"
REPS = int(os.environ.get("REPS", "20"))


def report(name, fn, flops, samples=50):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        for _ in range(REPS):
            fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / REPS)
    median = statistics.median(times)
    print(f"{name:48s} {median * 1e6:10.1f} us  {flops / median / 1e9:9.1f} GFLOP/s", flush=True)


def main():
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {REPS} launches per synchronize")
    for m, n, k in [(1024, 1024, 1024), (4096, 4608, 512), (4096, 4096, 4096), (64, 32, 4096)]:
        a = torch.rand(m, k, device=DEVICE)
        b = torch.rand(k, n, device=DEVICE)
        report(f"matmul {m}x{k}·{k}x{n}", lambda: a @ b, 2 * m * n * k)

    # The conv2d layers of gpu_kernels (3x3, padding 1): ResNet-18's at batch 64, 128 -> 128
    # channels, 8x8, and resnet-bn's deepest (B3) at batch 32, 512 -> 512 channels, 4x4.
    backward = torch.ops.aten.convolution_backward
    for layer, (batch, c, hw) in [
        ("conv2d_resnet18_64x128x8x8_3x3", (64, 128, 8)),
        ("conv2d_resnet_bn_32x512x4x4_3x3", (32, 512, 4)),
    ]:
        x = torch.rand(batch, c, hw, hw, device=DEVICE)
        w = torch.rand(c, c, 3, 3, device=DEVICE)
        bias = torch.rand(c, device=DEVICE)
        dy = torch.rand(batch, c, hw, hw, device=DEVICE)
        flops = 2 * batch * c * hw * hw * c * 9
        report(f"{layer}/forward", lambda: F.conv2d(x, w, bias, padding=1), flops)
        args = (dy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)
        report(f"{layer}/backward_data", lambda: backward(*args, [True, False, False]), flops)
        report(f"{layer}/backward_weight", lambda: backward(*args, [False, True, False]), flops)

    # The transposed-convolution layers of gpu_kernels (B5's and B1's decoders).
    layers = [
        ("b5_64to64_8x8_s2", (64, 64, 8, 8), (64, 64, 3, 3), 2, 1),
        ("b5_64to32_16x16_s2", (64, 64, 16, 16), (64, 32, 3, 3), 2, 1),
        ("b5_32to3_32x32", (64, 32, 32, 32), (32, 3, 3, 3), 1, 0),
        ("b1_128to64_8x8_k4s2", (64, 128, 8, 8), (128, 64, 4, 4), 2, 0),
        ("b1_64to32_16x16_k4s2", (64, 64, 16, 16), (64, 32, 4, 4), 2, 0),
        ("b1_32to3_32x32_k4s2", (64, 32, 32, 32), (32, 3, 4, 4), 2, 0),
    ]
    for name, x_shape, w_shape, stride, output_padding in layers:
        x = torch.rand(*x_shape, device=DEVICE)
        w = torch.rand(*w_shape, device=DEVICE)
        batch, c_in, h, width = x_shape
        flops = 2 * batch * c_in * h * width * w_shape[1] * w_shape[2] * w_shape[3]
        report(
            f"conv_transpose2d_forward/{name}",
            lambda: F.conv_transpose2d(x, w, stride=stride, padding=1, output_padding=output_padding),
            flops,
        )


if __name__ == "__main__":
    main()
