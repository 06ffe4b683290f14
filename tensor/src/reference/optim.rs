//! One optimizer step on one parameter, by definition (PyTorch's `torch.optim.Adam`, `AdamW`
//! and `SGD`).

use crate::cpu::optim::{AdamHyper, SgdHyper};

/// Adam at step t (AdamW when the weight decay is decoupled):
///   g ← g + wd·p (Adam) or p ← p·(1 − lr·wd) (AdamW)
///   m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²
///   p ← p − lr/(1 − β₁ᵗ) · m / (√v/√(1 − β₂ᵗ) + eps)
pub fn adam(p: &mut [f64], g: &[f64], m: &mut [f64], v: &mut [f64], h: &AdamHyper) {
    let t = h.step.max(1) as i32;
    for i in 0..p.len() {
        let mut grad = g[i];
        if h.decoupled_weight_decay {
            p[i] *= 1.0 - h.lr * h.weight_decay;
        } else {
            grad += h.weight_decay * p[i];
        }
        m[i] = h.beta1 * m[i] + (1.0 - h.beta1) * grad;
        v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * grad * grad;
        let denom = v[i].sqrt() / (1.0 - h.beta2.powi(t)).sqrt() + h.eps;
        p[i] -= h.lr / (1.0 - h.beta1.powi(t)) * m[i] / denom;
    }
}

/// SGD with momentum μ, dampening τ and weight decay:
///   g ← g + wd·p;  b ← g on the first step, else μb + (1 − τ)g;
///   d = g + μb (Nesterov) or b;  p ← p − lr·d   (without momentum, d = g).
pub fn sgd(p: &mut [f64], g: &[f64], buf: Option<&mut [f64]>, h: &SgdHyper) {
    let mut buf = buf;
    for i in 0..p.len() {
        let grad = g[i] + h.weight_decay * p[i];
        let step = match buf.as_deref_mut() {
            Some(b) if h.momentum != 0.0 => {
                b[i] = if h.first_step { grad } else { h.momentum * b[i] + (1.0 - h.dampening) * grad };
                if h.nesterov {
                    grad + h.momentum * b[i]
                } else {
                    b[i]
                }
            }
            _ => grad,
        };
        p[i] -= h.lr * step;
    }
}
