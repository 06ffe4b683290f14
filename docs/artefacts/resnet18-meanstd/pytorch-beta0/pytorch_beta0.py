"""Does the resnet18 VAE's code blow up at beta = 0 in PyTorch too? The resnet18 preset of
benches/pytorch_train_step.py (the same layers and parameter count as ours), Fashion-MNIST's
first 12,000 images at 32x32 (bilinear), 10,000 for training and 1,000 for validation drawn by
the seed, standardised by the training split's mean and std, a linear output, the squared
error summed over the pixels, the KL computed and weighted by beta, Adam 1e-3, batch 64. Prints
the batch's terms, the largest |mu| and the log-variance's range at steps 1-12 and every 25th,
and the validation terms after each epoch.

    pip install torch numpy
    python3 docs/artefacts/resnet18-meanstd/pytorch-beta0/pytorch_beta0.py SEED BETA EPOCHS
"""
import gzip
import sys
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F
sys.path.insert(0, str(Path(__file__).resolve().parents[4] / 'benches'))
from pytorch_train_step import make_model
torch.set_num_threads(1)  # one thread: beside a background job, two OpenMP threads wait on each other
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
beta = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
torch.manual_seed(seed)
raw = gzip.open('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz').read()
x = torch.tensor(np.frombuffer(raw, np.uint8, offset=16)[:12000 * 784].reshape(12000, 1, 28, 28).astype(np.float32) / 255)
x = F.interpolate(x, size=(32, 32), mode='bilinear', align_corners=False)
perm = torch.randperm(12000)
tr, va = x[perm[:10000]], x[perm[10000:11000]]
m, s = tr.mean(), tr.std()
tr, va = (tr - m) / s, (va - m) / s
model = make_model('resnet18', (1, 32, 32), 32)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
def terms(xb):
    eps = torch.randn(xb.shape[0], 32)
    out, mu, lv = model(xb, eps)
    recon = ((out - xb) ** 2).sum() / xb.shape[0]
    kl = -0.5 * (1 + lv - mu.pow(2) - lv.exp()).sum() / xb.shape[0]
    return recon, kl, mu, lv
step = 0
for epoch in range(epochs):
    model.train()
    order = torch.randperm(10000)
    for i in range(0, 10000, 64):
        xb = tr[order[i:i + 64]]
        recon, kl, mu, lv = terms(xb)
        loss = recon + beta * kl
        opt.zero_grad(); loss.backward(); opt.step(); step += 1
        if step % 25 == 0 or step <= 12:
            print(f"step {step}: recon {recon.item():.1f} kl {kl.item():.4g} max|mu| {mu.abs().max().item():.4g} logvar [{lv.min().item():.3g}, {lv.max().item():.3g}]", flush=True)
    model.eval()
    with torch.no_grad():
        rs, ks = [], []
        for i in range(0, 1000, 200):
            recon, kl, mu, lv = terms(va[i:i + 200])
            rs.append(recon.item()); ks.append(kl.item())
    print(f"epoch {epoch + 1}: val recon {np.mean(rs):.2f} val kl {np.mean(ks):.4g}", flush=True)
