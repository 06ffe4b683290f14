//! Fused optimizer kernels: one pass over a parameter reads each element with its gradient
//! and moment buffers, updates them, and writes them back, instead of the six or seven
//! temporary tensors the same update takes as a chain of element-wise ops. The arithmetic
//! follows PyTorch's single-tensor `torch.optim.Adam` / `AdamW` / `SGD` step by step so f32
//! results agree with it to rounding.

use rayon::prelude::*;

use crate::cpu::elementwise::PARALLEL_THRESHOLD;
pub use crate::descriptors::{AdamHyper, SgdHyper};
use crate::dtype::Float;

/// Elements per rayon task: large enough that scheduling costs little, small enough to spread.
const CHUNK: usize = 1 << 13;

/// Constants of one Adam step in the element type.
struct AdamConsts<T> {
    one_minus_beta1: T,
    beta2: T,
    one_minus_beta2: T,
    /// wd for Adam's coupled decay (added to the gradient), 0 for AdamW.
    grad_decay: T,
    /// 1 − lr·wd for AdamW, 1 for Adam.
    weight_scale: T,
    /// lr / (1 − β1ᵗ)
    step_size: T,
    /// √(1 − β2ᵗ)
    bias_correction2_sqrt: T,
    eps: T,
}

/// One Adam/AdamW step over a chunk. All four slices have the same length.
// p, g, m, v: [n]
fn adam_chunk<T: Float>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], c: &AdamConsts<T>) {
    for i in 0..p.len() {
        let grad = g[i] + c.grad_decay * p[i];
        let param = p[i] * c.weight_scale;
        // m ← lerp(m, g, 1 − β1) = m + (1 − β1)(g − m): PyTorch's exp_avg.lerp_.
        let mi = m[i] + c.one_minus_beta1 * (grad - m[i]);
        // v ← β2·v + (1 − β2)·g²: exp_avg_sq.mul_(β2).addcmul_(g, g, 1 − β2).
        let vi = v[i] * c.beta2 + c.one_minus_beta2 * grad * grad;
        // p ← p − lr·m̂/(√v̂ + eps), written as PyTorch does: (lr/bc1)·m / (√v/√bc2 + eps).
        let denom = vi.sqrt() / c.bias_correction2_sqrt + c.eps;
        p[i] = param - c.step_size * mi / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

/// Updates `p` in place by one Adam (or AdamW) step with gradient `g`, updating the first and
/// second moment buffers `m` and `v`. Rayon-parallel for large tensors.
// p, g, m, v: [n], same length (checked by `ops::optim::adam_update`)
pub fn adam_update<T: Float>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], h: &AdamHyper) {
    let t = h.step.max(1) as i32;
    let (grad_decay, weight_scale) =
        if h.decoupled_weight_decay { (0.0, 1.0 - h.lr * h.weight_decay) } else { (h.weight_decay, 1.0) };
    let c = AdamConsts {
        one_minus_beta1: T::from_f64(1.0 - h.beta1),
        beta2: T::from_f64(h.beta2),
        one_minus_beta2: T::from_f64(1.0 - h.beta2),
        grad_decay: T::from_f64(grad_decay),
        weight_scale: T::from_f64(weight_scale),
        step_size: T::from_f64(h.lr / (1.0 - h.beta1.powi(t))),
        bias_correction2_sqrt: T::from_f64((1.0 - h.beta2.powi(t)).sqrt()),
        eps: T::from_f64(h.eps),
    };
    if p.len() < PARALLEL_THRESHOLD {
        adam_chunk(p, g, m, v, &c);
        return;
    }
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| adam_chunk(p, g, m, v, &c));
}

/// Constants of one SGD step in the element type.
struct SgdConsts<T> {
    lr: T,
    momentum: T,
    one_minus_dampening: T,
    weight_decay: T,
    nesterov: bool,
    first_step: bool,
}

// p, g, buf: [n]
fn sgd_chunk<T: Float>(p: &mut [T], g: &[T], mut buf: Option<&mut [T]>, c: &SgdConsts<T>) {
    for i in 0..p.len() {
        let mut d = g[i] + c.weight_decay * p[i];
        if let Some(b) = buf.as_deref_mut() {
            // buf ← g on the first step, else momentum·buf + (1 − dampening)·g.
            b[i] = if c.first_step { d } else { c.momentum * b[i] + c.one_minus_dampening * d };
            // Nesterov looks one momentum step ahead: d ← g + momentum·buf.
            d = if c.nesterov { d + c.momentum * b[i] } else { b[i] };
        }
        p[i] -= c.lr * d;
    }
}

/// Updates `p` in place by one SGD step with gradient `g`. `momentum_buffer` is `None` when
/// momentum is 0 (plain SGD keeps no state). Rayon-parallel for large tensors.
// p, g, momentum_buffer: [n], same length (checked by `ops::optim::sgd_update`)
pub fn sgd_update<T: Float>(p: &mut [T], g: &[T], momentum_buffer: Option<&mut [T]>, h: &SgdHyper) {
    let c = SgdConsts {
        lr: T::from_f64(h.lr),
        momentum: T::from_f64(h.momentum),
        one_minus_dampening: T::from_f64(1.0 - h.dampening),
        weight_decay: T::from_f64(h.weight_decay),
        nesterov: h.nesterov,
        first_step: h.first_step,
    };
    if p.len() < PARALLEL_THRESHOLD {
        sgd_chunk(p, g, momentum_buffer, &c);
        return;
    }
    match momentum_buffer {
        Some(buf) => p
            .par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(buf.par_chunks_mut(CHUNK))
            .for_each(|((p, g), b)| sgd_chunk(p, g, Some(b), &c)),
        None => p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(|(p, g)| sgd_chunk(p, g, None, &c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adam(decoupled: bool, weight_decay: f64, step: u64) -> AdamHyper {
        AdamHyper { lr: 0.1, weight_decay, decoupled_weight_decay: decoupled, step, ..AdamHyper::default() }
    }

    #[test]
    fn adam_first_step_moves_each_weight_by_lr_against_the_gradient_sign() {
        // At t = 1, m̂ = g and v̂ = g², so the step is lr·g/(|g| + eps) ≈ lr·sign(g).
        let (mut p, g) = (vec![1.0f64, -2.0], vec![0.5, -3.0]);
        let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
        adam_update(&mut p, &g, &mut m, &mut v, &adam(false, 0.0, 1));
        assert!((p[0] - 0.9).abs() < 1e-7 && (p[1] + 1.9).abs() < 1e-7, "{p:?}");
        assert!((m[0] - 0.05).abs() < 1e-15 && (v[1] - 0.009).abs() < 1e-15, "{m:?} {v:?}");
    }

    #[test]
    fn adam_parallel_path_matches_the_serial_path() {
        let n = PARALLEL_THRESHOLD + 1234;
        let g: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let p0: Vec<f32> = (0..n).map(|i| ((i * 104729) % 997) as f32 / 997.0).collect();
        let h = adam(true, 0.01, 3);
        let (mut p, mut m, mut v) = (p0.clone(), vec![0.1f32; n], vec![0.2f32; n]);
        adam_update(&mut p, &g, &mut m, &mut v, &h);
        let (mut ps, mut ms, mut vs) = (p0, vec![0.1f32; n], vec![0.2f32; n]);
        for i in 0..n {
            adam_chunk(
                &mut ps[i..i + 1],
                &g[i..i + 1],
                &mut ms[i..i + 1],
                &mut vs[i..i + 1],
                &AdamConsts {
                    one_minus_beta1: 0.1f32,
                    beta2: 0.999,
                    one_minus_beta2: (1.0 - 0.999f64) as f32,
                    grad_decay: 0.0,
                    weight_scale: (1.0 - 0.1 * 0.01f64) as f32,
                    step_size: (0.1 / (1.0 - 0.9f64.powi(3))) as f32,
                    bias_correction2_sqrt: (1.0 - 0.999f64.powi(3)).sqrt() as f32,
                    eps: 1e-8,
                },
            );
        }
        assert_eq!(p, ps);
        assert_eq!(m, ms);
        assert_eq!(v, vs);
    }

    #[test]
    fn sgd_momentum_sets_the_buffer_to_the_gradient_on_the_first_step() {
        let h =
            SgdHyper { lr: 0.5, momentum: 0.9, dampening: 0.5, weight_decay: 0.0, nesterov: false, first_step: true };
        let (mut p, mut buf) = (vec![1.0f64], vec![123.0]);
        sgd_update(&mut p, &[2.0], Some(&mut buf), &h);
        assert_eq!(buf, vec![2.0]);
        assert_eq!(p, vec![0.0]);
        let h = SgdHyper { first_step: false, ..h };
        sgd_update(&mut p, &[2.0], Some(&mut buf), &h);
        // buf = 0.9·2 + 0.5·2 = 2.8; p = 0 − 0.5·2.8.
        assert!((buf[0] - 2.8).abs() < 1e-15 && (p[0] + 1.4).abs() < 1e-15, "{buf:?} {p:?}");
    }
}
