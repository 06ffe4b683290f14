"""The PyTorch reference for `cargo bench --bench train_step`: the same five workloads B1–B5
(docs/architectures.md), the same loss (MSE on sigmoid outputs, summed over pixels and
averaged over the batch, + 1.0·KL) and the same optimizer (Adam, lr 1e-3), timed the same way
(2 warm-up steps, then N timed steps, median), memory measured the same way (resident
high-water mark during the timed steps minus resident size before the model was built), each
workload in a process of its own.

    pip install torch numpy
    python3 benches/pytorch_train_step.py                 # all five, 2 threads
    python3 benches/pytorch_train_step.py --workloads B2 --steps 20
    python3 benches/pytorch_train_step.py --device cuda --workloads B2   # beside `--device gpu`
    python3 benches/pytorch_train_step.py --device cuda --fused-adam     # one Adam kernel for all
    python3 benches/pytorch_train_step.py --tensor-memory --workloads B3  # tensor bytes, on the CPU
    python3 benches/pytorch_train_step.py --device cuda --fused-adam --kernel-times  # per CUDA kernel

On `cuda`, TF32 is off (so the comparison is fp32 against fp32), each step ends with a
synchronize, and the peak column is `torch.cuda.max_memory_allocated` instead of RSS.

`--tensor-memory` (CPU) makes the peak column the counterpart of `max_memory_allocated` on the
CPU: the most bytes of tensors alive at once during one more step, profiled after the timed
ones, counted from the profiler's memory timeline (every tensor's creation and destruction,
parameters and optimizer state included; `torch.profiler`'s `_memory_profile`, the data behind
its `export_memory_timeline`). The step allocates the same tensors on either device, so this
is what `cargo bench --bench train_step -- --device gpu` prints as its `GPU memory` peak is
compared with when no CUDA device is at hand (cuDNN's workspaces are not in it).

`--kernel-times` (CUDA) profiles 5 more steps (`torch.profiler`, CUDA activity) and prints each
kernel's launches and GPU time per step, the longest first, and what share of the median step
all of them fill: the counterpart of `train_step -- --device gpu --kernel-times`.

PyTorch is never a dependency of the project: this script only measures the reference.
The parameter counts it prints must equal ours (vae/src/model tests pin them).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

WORKLOADS = {
    "B1": ("conv", (3, 64, 64), 32, 64),
    "B2": ("resnet18", (3, 32, 32), 128, 64),
    "B3": ("resnet-bn", (3, 64, 64), 128, 32),
    "B4": ("dense", (1, 28, 28), 16, 128),
    "B5": ("basic", (3, 32, 32), 128, 64),
}


def proc_status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def build(arch, input_shape, z):
    """The three small presets, whole."""
    import torch
    from torch import nn

    c, h, w = input_shape

    class VAE(nn.Module):
        def __init__(self, encoder, features, decoder):
            super().__init__()
            self.encoder, self.decoder = encoder, decoder
            self.fc_mu = nn.Linear(features, z)
            self.fc_logvar = nn.Linear(features, z)

        def forward(self, x, eps):
            f = self.encoder(x)
            mu, logvar = self.fc_mu(f), self.fc_logvar(f)
            zz = mu + torch.exp(0.5 * logvar) * eps
            return self.decoder(zz), mu, logvar

    if arch == "dense":
        enc = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU())
        dec = nn.Sequential(
            nn.Linear(z, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, c * h * w),
            nn.Unflatten(1, (c, h, w)),
        )
        return VAE(enc, 256, dec)
    if arch == "basic":
        enc = nn.Sequential(
            nn.Conv2d(c, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(), nn.Flatten()
        )
        f = 64 * (h // 4) * (w // 4)
        dec = nn.Sequential(
            nn.Linear(z, f), nn.ReLU(), nn.Unflatten(1, (64, h // 4, w // 4)),
            nn.ConvTranspose2d(64, 64, 3, 2, 1, 1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 3, 2, 1, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, c, 3, 1, 1, 0),
        )
        return VAE(enc, f, dec)
    if arch == "conv":
        enc = nn.Sequential(
            nn.Conv2d(c, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU(), nn.Flatten(),
        )
        f = 128 * (h // 8) * (w // 8)
        dec = nn.Sequential(
            nn.Linear(z, f), nn.ReLU(), nn.Unflatten(1, (128, h // 8, w // 8)),
            nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, c, 4, 2, 1),
        )
        return VAE(enc, f, dec)
    raise ValueError(arch)


def build_resnet18(input_shape, z):
    from torch import nn

    c, h, w = input_shape

    class BasicBlock(nn.Module):
        def __init__(self, a, b, s):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(a, b, 3, s, 1, bias=False), nn.BatchNorm2d(b)
            self.conv2, self.bn2 = nn.Conv2d(b, b, 3, 1, 1, bias=False), nn.BatchNorm2d(b)
            self.downsample = (
                nn.Sequential(nn.Conv2d(a, b, 1, s, bias=False), nn.BatchNorm2d(b)) if s != 1 or a != b else None
            )

        def forward(self, x):
            out = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu()))
            return (out + (self.downsample(x) if self.downsample is not None else x)).relu()

    class BasicBlockT(nn.Module):
        def __init__(self, a, b, up):
            super().__init__()
            self.conv1, self.bn1 = nn.ConvTranspose2d(a, a, 3, 1, 1, bias=False), nn.BatchNorm2d(a)
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False) if up else None
            self.conv2, self.bn2 = nn.ConvTranspose2d(a, b, 3, 1, 1, bias=False), nn.BatchNorm2d(b)
            if up or a != b:
                layers = [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)] if up else []
                layers += [nn.ConvTranspose2d(a, b, 3, 1, 1, bias=False), nn.BatchNorm2d(b)]
                self.shortcut = nn.Sequential(*layers)
            else:
                self.shortcut = None

        def forward(self, x):
            out = self.bn1(self.conv1(x)).relu()
            if self.up is not None:
                out = self.up(out)
            out = self.bn2(self.conv2(out))
            return (out + (self.shortcut(x) if self.shortcut is not None else x)).relu()

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(c, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            stage = lambda a, b, s: nn.Sequential(BasicBlock(a, b, s), BasicBlock(b, b, 1))  # noqa: E731
            self.layers = nn.Sequential(stage(64, 64, 1), stage(64, 128, 2), stage(128, 256, 2), stage(256, 512, 2))

        def forward(self, x):
            x = self.maxpool(self.bn1(self.conv1(x)).relu())
            return self.layers(x).mean((2, 3))

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.start = (512, h // 32, w // 32)
            self.linear = nn.Linear(z, 512 * (h // 32) * (w // 32))
            stage = lambda a, b, up: nn.Sequential(BasicBlockT(a, a, False), BasicBlockT(a, b, up))  # noqa: E731
            self.layers = nn.Sequential(
                stage(512, 256, True), stage(256, 128, True), stage(128, 64, True), stage(64, 64, False)
            )
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            self.conv1 = nn.ConvTranspose2d(64, c, 3, 1, 1)

        def forward(self, zz):
            x = self.linear(zz).relu().view(zz.shape[0], *self.start)
            return self.conv1(self.up(self.up(self.layers(x))))

    return Encoder(), 512, Decoder()


def build_resnet_bn(input_shape, z):
    from torch import nn

    c, h, w = input_shape

    class ResBlock(nn.Module):
        def __init__(self, ch):
            super().__init__()
            self.conv = nn.Conv2d(ch, ch, 3, 1, 1, bias=False)
            self.bn1, self.bn2 = nn.BatchNorm2d(ch), nn.BatchNorm2d(ch)

        def forward(self, x):
            return x + self.bn2(self.bn1(self.conv(x)).relu())

    def stage(a, b, stride, up):
        layers = [nn.Upsample(scale_factor=2, mode="nearest")] if up else []
        layers += [nn.Conv2d(a, b, 3, stride, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(), ResBlock(b)]
        return nn.Sequential(*layers)

    start = (512, h // 16, w // 16)
    f = 512 * (h // 16) * (w // 16)
    enc = nn.Sequential(
        nn.Conv2d(c, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        *[stage(a, b, 2, False) for a, b in [(64, 128), (128, 256), (256, 512), (512, 512)]],
        nn.Flatten(),
    )
    dec = nn.Sequential(
        nn.Linear(z, f), nn.Unflatten(1, start),
        *[stage(a, b, 1, True) for a, b in [(512, 512), (512, 256), (256, 128), (128, 64)]],
        nn.Conv2d(64, c, 3, 1, 1),
    )
    return enc, f, dec


def make_model(arch, input_shape, z):
    import torch
    from torch import nn

    if arch in ("dense", "basic", "conv"):
        return build(arch, input_shape, z)
    enc, f, dec = build_resnet18(input_shape, z) if arch == "resnet18" else build_resnet_bn(input_shape, z)

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = enc, dec
            self.fc_mu, self.fc_logvar = nn.Linear(f, z), nn.Linear(f, z)

        def forward(self, x, eps):
            feats = self.encoder(x)
            mu, logvar = self.fc_mu(feats), self.fc_logvar(feats)
            return self.decoder(mu + torch.exp(0.5 * logvar) * eps), mu, logvar

    return VAE()


def tensor_memory_peak(step):
    """The most bytes of tensors alive at once during `step()`, from the profiler's timeline."""
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        step()
    alive = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:
        if action in (Action.PREEXISTING, Action.CREATE):
            alive += size
        elif action == Action.DESTROY:
            alive -= size
        peak = max(peak, alive)
    return peak


def kernel_time_table(step, step_ms, steps=5):
    """Each CUDA kernel's launches and GPU time per step over `steps` profiled steps."""
    from torch.profiler import ProfilerActivity, profile
    import torch

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
    kernels = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
    gpu_us = lambda e: getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)  # noqa: E731
    kernels.sort(key=gpu_us, reverse=True)
    total = sum(gpu_us(e) for e in kernels)
    print(f"GPU time per kernel (torch.profiler over {steps} steps):")
    print(f"{'kernel':<70} {'launches':>9} {'GPU ms/step':>12} {'share':>7}")
    for e in kernels:
        print(f"{e.key[:70]:<70} {e.count / steps:>9.1f} {gpu_us(e) / steps / 1e3:>12.3f} {100 * gpu_us(e) / max(total, 1):>6.1f}%")
    launches = sum(e.count for e in kernels) / steps
    gpu_ms = total / steps / 1e3
    print(f"{'all kernels':<70} {launches:>9.1f} {gpu_ms:>12.3f}   ({100 * gpu_ms / step_ms:.0f}% of the median {step_ms:.2f} ms)")


def child(name, steps, device, fused_adam, tensor_memory, kernel_times=False):
    rss_before = proc_status_bytes("VmRSS:")
    import torch

    cuda = device == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    arch, shape, z, batch = WORKLOADS[name]
    model = make_model(arch, shape, z).to(device)
    params = sum(p.numel() for p in model.parameters())
    # fused=True: one kernel for every parameter's update (CUDA only), as our packed step.
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True if fused_adam else None)
    x = torch.rand(batch, *shape, device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        eps = torch.randn(batch, z, device=device)
        raw, mu, logvar = model(x, eps)
        y = torch.sigmoid(raw)
        recon = ((y - x) ** 2).sum() / batch
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / batch
        loss = recon + kl
        loss.item()  # the loss is read every step, as ours does (NaN check)
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    step()
    step()
    warm = (time.perf_counter() - t0) / 2
    n = steps if steps > 0 else int(min(50, max(5, 10.0 / warm)))
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    times = []
    cpu0 = time.process_time()
    for _ in range(n):
        t = time.perf_counter()
        step()
        times.append((time.perf_counter() - t) * 1e3)
    cpu_ms = (time.process_time() - cpu0) * 1e3 / n
    if cuda:
        peak = torch.cuda.max_memory_allocated()
    elif tensor_memory:
        peak = tensor_memory_peak(step)
    else:
        peak = proc_status_bytes("VmHWM:") - rss_before
    print(f"RESULT {name} {statistics.median(times):.3f} {min(times):.3f} {cpu_ms:.3f} {n} {peak} {params}")
    if kernel_times:
        kernel_time_table(step, statistics.median(times))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workloads", default="B1,B2,B3,B4,B5")
    p.add_argument("--steps", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--fused-adam", action="store_true", help="torch.optim.Adam(fused=True) (CUDA)")
    p.add_argument("--tensor-memory", action="store_true", help="peak column: tensor bytes alive at once (CPU)")
    p.add_argument("--kernel-times", action="store_true", help="each CUDA kernel's GPU time per step")
    p.add_argument("--child")
    a = p.parse_args()
    if a.fused_adam and a.device != "cuda":
        p.error("--fused-adam needs --device cuda")
    if a.tensor_memory and a.device != "cpu":
        p.error("--tensor-memory needs --device cpu (on cuda the peak column is max_memory_allocated already)")
    if a.kernel_times and a.device != "cuda":
        p.error("--kernel-times needs --device cuda")
    if a.child:
        import torch

        torch.set_num_threads(a.threads)
        child(a.child, a.steps, a.device, a.fused_adam, a.tensor_memory, a.kernel_times)
        return
    import torch

    adam = "fused Adam" if a.fused_adam else "Adam"
    print(f"torch {torch.__version__}, {a.device}, {a.threads} threads, MKL-DNN {torch.backends.mkldnn.is_available()}, {adam}")
    peak_column = "peak GPU memory MiB" if a.device == "cuda" else "peak RSS MiB"
    if a.tensor_memory:
        peak_column = "peak tensor memory MiB"
    print(f"| workload | preset | median ms/step | min ms/step | CPU ms/step | images/s | steps | {peak_column} | params |")
    print("|---|---|---|---|---|---|---|---|---|")
    tables = []
    for name in a.workloads.split(","):
        name = name.strip().upper()
        arch, shape, z, batch = WORKLOADS[name]
        cmd = [sys.executable, __file__, "--child", name, "--steps", str(a.steps), "--threads", str(a.threads)]
        cmd += ["--device", a.device] + (["--fused-adam"] if a.fused_adam else [])
        cmd += ["--tensor-memory"] if a.tensor_memory else []
        cmd += ["--kernel-times"] if a.kernel_times else []
        out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT")), None)
        if line is None:
            print(f"{name}: failed\n{out.stderr}", file=sys.stderr)
            continue
        _, _, med, mn, cpu, n, peak, params = line.split()
        med, mn, cpu, peak = float(med), float(mn), float(cpu), int(peak)
        preset = f"{arch} {shape[0]}×{shape[1]}×{shape[2]} z{z} b{batch}"
        print(
            f"| {name} | {preset} | {med:.1f} | {mn:.1f} | {cpu:.1f} | {batch / med * 1e3:.0f} | {n} "
            f"| {peak / 2**20:.{1 if a.tensor_memory else 0}f} | {int(params):,} |"
        )
        if a.kernel_times:
            tables.append(f"\n{name} ({preset}):\n" + "\n".join(l for l in out.stdout.splitlines() if not l.startswith("RESULT")))
    for table in tables:
        print(table)


if __name__ == "__main__":
    main()
