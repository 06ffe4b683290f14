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
//
// The `_unless_flagged` entries take one more input, a flag (one f32, 0 or 1, as
// `flag_non_finite` in reduce.wgsl leaves it): when it is nonzero they change nothing. A
// training step checks its gradients (and its loss) for NaN and ±∞ on the device and lets the
// flag decide, so it need not wait for the check before recording the update.

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

// adam: g → p, m, v
@group(0) @binding(0) var<uniform> ap: AdamParams;
@group(0) @binding(1) var<storage, read> adam_g: array<f32>;
@group(0) @binding(2) var<storage, read_write> adam_p: array<f32>;
@group(0) @binding(3) var<storage, read_write> adam_m: array<f32>;
@group(0) @binding(4) var<storage, read_write> adam_v: array<f32>;

// adam_unless_flagged: g, flag → p, m, v
@group(0) @binding(1) var<storage, read> flagged_adam_g: array<f32>;
@group(0) @binding(2) var<storage, read> flagged_adam_flag: array<u32>;
@group(0) @binding(3) var<storage, read_write> flagged_adam_p: array<f32>;
@group(0) @binding(4) var<storage, read_write> flagged_adam_m: array<f32>;
@group(0) @binding(5) var<storage, read_write> flagged_adam_v: array<f32>;

// sgd: g → p, buf
@group(0) @binding(0) var<uniform> sp: SgdParams;
@group(0) @binding(1) var<storage, read> sgd_g: array<f32>;
@group(0) @binding(2) var<storage, read_write> sgd_p: array<f32>;
@group(0) @binding(3) var<storage, read_write> sgd_buf: array<f32>;

// sgd_unless_flagged: g, flag → p, buf
@group(0) @binding(1) var<storage, read> flagged_sgd_g: array<f32>;
@group(0) @binding(2) var<storage, read> flagged_sgd_flag: array<u32>;
@group(0) @binding(3) var<storage, read_write> flagged_sgd_p: array<f32>;
@group(0) @binding(4) var<storage, read_write> flagged_sgd_buf: array<f32>;

// One element's Adam step: the new parameter and moments.
struct AdamNext {
    p: f32,
    m: f32,
    v: f32,
}

fn adam_next(p_old: f32, g_old: f32, m_old: f32, v_old: f32) -> AdamNext {
    var p = p_old;
    var g = g_old;
    if ap.weight_decay != 0.0 {
        if ap.decoupled != 0u {
            p = p * (1.0 - ap.lr * ap.weight_decay);
        } else {
            g = g + ap.weight_decay * p;
        }
    }
    let m = ap.beta1 * m_old + (1.0 - ap.beta1) * g;
    let v = ap.beta2 * v_old + (1.0 - ap.beta2) * g * g;
    let denom = sqrt(v) / sqrt(ap.bc2) + ap.eps;
    return AdamNext(p - (ap.lr / ap.bc1) * m / denom, m, v);
}

@compute @workgroup_size(256)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= ap.n {
        return;
    }
    let next = adam_next(adam_p[i], adam_g[i], adam_m[i], adam_v[i]);
    adam_p[i] = next.p;
    adam_m[i] = next.m;
    adam_v[i] = next.v;
}

@compute @workgroup_size(256)
fn adam_unless_flagged(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= ap.n || flagged_adam_flag[0] != 0u {
        return;
    }
    let next = adam_next(flagged_adam_p[i], flagged_adam_g[i], flagged_adam_m[i], flagged_adam_v[i]);
    flagged_adam_p[i] = next.p;
    flagged_adam_m[i] = next.m;
    flagged_adam_v[i] = next.v;
}

// One element's SGD step: the new parameter and momentum buffer (the buffer is left as it
// was, and not read, when momentum is 0).
struct SgdNext {
    p: f32,
    buf: f32,
}

fn sgd_next(p: f32, g_old: f32, buf_old: f32) -> SgdNext {
    var g = g_old + sp.weight_decay * p;
    var b = buf_old;
    if sp.momentum != 0.0 {
        b = g;
        if sp.first_step == 0u {
            b = sp.momentum * buf_old + (1.0 - sp.dampening) * g;
        }
        if sp.nesterov != 0u {
            g = g + sp.momentum * b;
        } else {
            g = b;
        }
    }
    return SgdNext(p - sp.lr * g, b);
}

@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= sp.n {
        return;
    }
    if sp.momentum == 0.0 {
        sgd_p[i] = sgd_next(sgd_p[i], sgd_g[i], 0.0).p;
        return;
    }
    let next = sgd_next(sgd_p[i], sgd_g[i], sgd_buf[i]);
    sgd_p[i] = next.p;
    sgd_buf[i] = next.buf;
}

@compute @workgroup_size(256)
fn sgd_unless_flagged(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= sp.n || flagged_sgd_flag[0] != 0u {
        return;
    }
    if sp.momentum == 0.0 {
        flagged_sgd_p[i] = sgd_next(flagged_sgd_p[i], flagged_sgd_g[i], 0.0).p;
        return;
    }
    let next = sgd_next(flagged_sgd_p[i], flagged_sgd_g[i], flagged_sgd_buf[i]);
    flagged_sgd_p[i] = next.p;
    flagged_sgd_buf[i] = next.buf;
}
