"""PyTorch's side of `cargo bench --bench explore_load -- --batch-costs`: what one batch of n codes
costs the resnet-bn decoder (3×64×64, z = 128; docs/architectures.md) in evaluation mode, codes to
sigmoid images, under `torch.inference_mode`, random weights, at n = 1 to 64, in PyTorch's
default layout (NCHW) and in channels-last. Median of `--reps` batches after a warm-up.

    python3 benches/pytorch_explore_decode.py [--reps 5] [--threads 2]

PyTorch is never a dependency of the project: this script only measures the reference.
"""

import argparse

import torch

from pytorch_common import median_ms
from pytorch_train_step import build_resnet_bn


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    _, _, decoder = build_resnet_bn((3, 64, 64), 128)
    decoder.eval()
    print(f"torch {torch.__version__}, {a.threads} threads, median of {a.reps}")
    for layout in ("NCHW", "channels-last"):
        model = decoder.to(memory_format=torch.channels_last) if layout == "channels-last" else decoder
        print(f"\nresnet-bn decoder, {layout}\n")
        print("| codes in the batch | batch ms | ms per code |")
        print("|---|---|---|")
        for n in (1, 2, 4, 8, 16, 32, 64):
            z = torch.randn(n, 128)
            with torch.inference_mode():
                ms = median_ms(lambda: torch.sigmoid(model(z)), a.reps)
            print(f"| {n} | {ms:.1f} | {ms / n:.2f} |", flush=True)


if __name__ == "__main__":
    main()
