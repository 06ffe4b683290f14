// adam.wgsl — fused optimiser updates, in place, one invocation per parameter (f32):
// Adam / AdamW, and SGD with momentum.
//
// Memory layout: p (parameters), g (gradients), m, v (Adam moments) and buf (SGD momentum)
// are dense [n] buffers of the same length; p, m, v and buf are updated in place.
//
// Math (PyTorch's torch.optim formulas, non-amsgrad, non-maximize), with the bias
// corrections bc1 = 1 − β1ᵗ and bc2 = 1 − β2ᵗ computed on the host in f64:
//   Adam    g ← g + wd·p                (L2 penalty folded into the gradient)
//   AdamW   p ← p − lr·wd·p             (decoupled weight decay, applied first)
//   both    m ← β1·m + (1 − β1)·g
//           v ← β2·v + (1 − β2)·g²
//           p ← p − lr·(m/bc1) / (√(v/bc2) + eps)
//           evaluated as PyTorch does: p − (lr/bc1)·m / (√v/√bc2 + eps)
//   SGD     g ← g + wd·p
//           buf ← g on the first step, else momentum·buf + (1 − dampening)·g
//           g ← g + momentum·buf (nesterov) or buf
//           p ← p − lr·g
//   (momentum = 0 skips buf entirely: p ← p − lr·g.)

struct AdamParams {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    // 1: AdamW (decoupled weight decay); 0: Adam (L2 in the gradient).
    decoupled: u32,
    bc1: f32,
    bc2: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

struct SgdParams {
    n: u32,
    lr: f32,
    momentum: f32,
    dampening: f32,
    weight_decay: f32,
    nesterov: u32,
    first_step: u32,
    _pad: u32,
}

const WG: u32 = 256u;

// adam: g → p, m, v
@group(0) @binding(0) var<uniform> ap: AdamParams;
@group(0) @binding(1) var<storage, read> adam_g: array<f32>;
@group(0) @binding(2) var<storage, read_write> adam_p: array<f32>;
@group(0) @binding(3) var<storage, read_write> adam_m: array<f32>;
@group(0) @binding(4) var<storage, read_write> adam_v: array<f32>;

// sgd: g → p, buf
@group(0) @binding(0) var<uniform> sp: SgdParams;
@group(0) @binding(1) var<storage, read> sgd_g: array<f32>;
@group(0) @binding(2) var<storage, read_write> sgd_p: array<f32>;
@group(0) @binding(3) var<storage, read_write> sgd_buf: array<f32>;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(256)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= ap.n {
        return;
    }
    var p = adam_p[i];
    var g = adam_g[i];
    if ap.weight_decay != 0.0 {
        if ap.decoupled != 0u {
            p = p * (1.0 - ap.lr * ap.weight_decay);
        } else {
            g = g + ap.weight_decay * p;
        }
    }
    let m = ap.beta1 * adam_m[i] + (1.0 - ap.beta1) * g;
    let v = ap.beta2 * adam_v[i] + (1.0 - ap.beta2) * g * g;
    let denom = sqrt(v) / sqrt(ap.bc2) + ap.eps;
    adam_m[i] = m;
    adam_v[i] = v;
    adam_p[i] = p - (ap.lr / ap.bc1) * m / denom;
}

@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= sp.n {
        return;
    }
    let p = sgd_p[i];
    var g = sgd_g[i] + sp.weight_decay * p;
    if sp.momentum != 0.0 {
        var b = g;
        if sp.first_step == 0u {
            b = sp.momentum * sgd_buf[i] + (1.0 - sp.dampening) * g;
        }
        sgd_buf[i] = b;
        if sp.nesterov != 0u {
            g = g + sp.momentum * b;
        } else {
            g = b;
        }
    }
    sgd_p[i] = p - sp.lr * g;
}
