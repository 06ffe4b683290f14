//! Batch normalisation kernels over an input viewed as [N, C, S] (S = H·W for BatchNorm2d,
//! S = 1 for BatchNorm1d): per-channel statistics over the N·S elements of each channel,
//! the training and eval forwards, and their backwards.
//!
//! Every kernel runs in two parallel phases: per-channel reductions (rayon over channels,
//! accumulated in f64), then an elementwise pass over the N·C planes of S elements with
//! per-channel coefficients. Neither phase writes to memory another task reads.

use rayon::prelude::*;

use crate::cpu::reduce::sum_map_f64;
use crate::cpu::vectorized;
use crate::descriptors::BatchNormGeometry;
use crate::dtype::Float;

/// Per-channel statistics of a training-mode forward, each of length C.
#[derive(Clone, Debug, PartialEq)]
pub struct BnStats<T> {
    /// Batch mean over (N, S).
    pub mean: Vec<T>,
    /// 1 / sqrt(var + eps), with the biased batch variance var = Σ(x − mean)² / m.
    pub inv_std: Vec<T>,
    /// Unbiased batch variance var · m / (m − 1), which PyTorch folds into `running_var`.
    pub var_unbiased: Vec<T>,
}

// ---------------------------------------------------------------- f64 reductions

/// Σ f(a_i, b_i) in f64 over two equally long slices, 8 accumulators as in `sum_map_f64`, and
/// like it compiled for the widest vectors ([`vectorized`]).
fn sum_map2_f64<T: Float>(a: &[T], b: &[T], f: impl Fn(f64, f64) -> f64) -> f64 {
    let mut sum = 0.0;
    vectorized::run(SumMap2 { a, b, f, sum: &mut sum });
    sum
}

/// [`sum_map2_f64`]'s arguments and result, for [`vectorized::run`].
struct SumMap2<'a, T, F> {
    a: &'a [T],
    b: &'a [T],
    f: F,
    sum: &'a mut f64,
}

impl<T: Float, F: Fn(f64, f64) -> f64> vectorized::Work for SumMap2<'_, T, F> {
    #[inline(always)]
    fn run(self) {
        *self.sum = sum_map2_f64_plain(self.a, self.b, self.f);
    }
}

/// [`sum_map2_f64`] as the loops are written.
#[inline(always)]
fn sum_map2_f64_plain<T: Float>(a: &[T], b: &[T], f: impl Fn(f64, f64) -> f64) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(&u, &v)| f(u.to_f64(), v.to_f64())).sum();
    for (u, v) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += f(u[k].to_f64(), v[k].to_f64());
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// The N planes of channel `c`: x[n, c, :] for n in 0..N.
fn channel_planes<T>(x: &[T], d: BatchNormGeometry, c: usize) -> impl Iterator<Item = &[T]> {
    (0..d.n).map(move |n| &x[(n * d.c + c) * d.s..(n * d.c + c + 1) * d.s])
}

/// `f(c)` for every channel, in parallel.
fn per_channel<R: Send>(d: BatchNormGeometry, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    (0..d.c).into_par_iter().map(f).collect()
}

/// Per channel: (mean, biased variance) by the two-pass algorithm, in f64.
fn channel_moments<T: Float>(x: &[T], d: BatchNormGeometry) -> Vec<(f64, f64)> {
    let m = d.m() as f64;
    per_channel(d, |c| {
        let mean = channel_planes(x, d, c).map(|p| sum_map_f64(p, |v| v)).sum::<f64>() / m;
        let var = channel_planes(x, d, c).map(|p| sum_map_f64(p, |v| (v - mean) * (v - mean))).sum::<f64>() / m;
        (mean, var)
    })
}

/// Per channel: (Σ dy, Σ dy·(x − center_c)) in f64.
fn channel_grad_sums<T: Float>(gy: &[T], x: &[T], d: BatchNormGeometry, center: &[f64]) -> Vec<(f64, f64)> {
    per_channel(d, |c| {
        let mu = center[c];
        channel_planes(gy, d, c).zip(channel_planes(x, d, c)).fold((0.0, 0.0), |(s, sx), (g, xp)| {
            (s + sum_map_f64(g, |v| v), sx + sum_map2_f64(g, xp, |gv, xv| gv * (xv - mu)))
        })
    })
}

/// out[n, c, s] = x[n, c, s] · scale[c] + shift[c], in parallel over the N·C planes.
// x: [N, C, S], scale, shift: [C] → [N, C, S]
fn affine_per_channel<T: Float>(x: &[T], d: BatchNormGeometry, scale: &[T], shift: &[T]) -> Vec<T> {
    if d.s == 0 {
        return vec![T::ZERO; x.len()];
    }
    // Written straight into the new vector's spare capacity: zeroing it first was a second
    // pass over memory, which made this pass cost twice a ReLU's (`cpu::elementwise::map`).
    let mut out = Vec::with_capacity(x.len());
    let spare = &mut out.spare_capacity_mut()[..x.len()];
    // Tiny planes (BatchNorm1d has S = 1) would make one rayon task per element.
    let min_planes = 4096usize.div_ceil(d.s);
    spare.par_chunks_mut(d.s).zip(x.par_chunks(d.s)).with_min_len(min_planes).enumerate().for_each(|(p, (o, xp))| {
        let (a, b) = (scale[p % d.c], shift[p % d.c]);
        for (o, &v) in o.iter_mut().zip(xp) {
            o.write(v * a + b);
        }
    });
    // SAFETY: the loop wrote every one of the first x.len() elements: `spare` is x.len() long,
    // and its chunks pair with x's element for element.
    unsafe { out.set_len(x.len()) };
    out
}

fn param_or<T: Float>(p: Option<&[T]>, c: usize, default: T) -> T {
    p.map_or(default, |p| p[c])
}

fn cast<T: Float>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

// ---------------------------------------------------------------- training mode

/// Training forward: normalise each channel with its own batch statistics.
///   mean_c = Σ x / m,  var_c = Σ (x − mean_c)² / m  (biased),  m = N·S
///   y = (x − mean_c) / sqrt(var_c + eps) · γ_c + β_c
/// computed as y = x·a_c + b_c with a_c = γ_c·inv_std_c and b_c = β_c − mean_c·a_c, as
/// PyTorch's CPU kernel does. A missing γ is 1, a missing β is 0. Needs m ≥ 2 (the op checks).
// x: [N, C, S], gamma, beta: [C] → y: [N, C, S], stats: [C] each
pub fn batch_norm_train_forward<T: Float>(
    x: &[T],
    d: BatchNormGeometry,
    gamma: Option<&[T]>,
    beta: Option<&[T]>,
    eps: f64,
) -> (Vec<T>, BnStats<T>) {
    let m = d.m() as f64;
    let moments = channel_moments(x, d);
    let mean: Vec<f64> = moments.iter().map(|&(mu, _)| mu).collect();
    let inv_std: Vec<f64> = moments.iter().map(|&(_, var)| 1.0 / (var + eps).sqrt()).collect();
    let var_unbiased: Vec<f64> = moments.iter().map(|&(_, var)| var * m / (m - 1.0)).collect();
    let scale: Vec<f64> = (0..d.c).map(|c| inv_std[c] * param_or(gamma, c, T::ONE).to_f64()).collect();
    let shift: Vec<f64> = (0..d.c).map(|c| param_or(beta, c, T::ZERO).to_f64() - mean[c] * scale[c]).collect();
    let y = affine_per_channel(x, d, &cast(&scale), &cast(&shift));
    (y, BnStats { mean: cast(&mean), inv_std: cast(&inv_std), var_unbiased: cast(&var_unbiased) })
}

/// Training backward, from the saved per-channel `mean` and `inv_std` (σ⁻¹ below).
///
/// In the forward pass this was, per channel with m = N·S elements:
///   x̂_i = (x_i − μ)·σ⁻¹,  μ = Σ_j x_j / m,  σ⁻¹ = (Σ_j (x_j − μ)²/m + eps)^(−1/2),  y_i = γ·x̂_i + β
/// so dβ = Σ dy_i and dγ = Σ dy_i·x̂_i, and with dx̂_i = dy_i·γ:
///   ∂x̂_i/∂x_j = σ⁻¹·(δ_ij − 1/m) + (x_i − μ)·∂σ⁻¹/∂x_j,
///   ∂σ⁻¹/∂x_j = −½ σ⁻³ · 2(x_j − μ)/m = −σ⁻¹·x̂_j·σ⁻¹/m
///   (the −μ inside the square contributes Σ_k (x_k − μ) = 0), hence
///   dx_j = Σ_i dx̂_i ∂x̂_i/∂x_j = σ⁻¹·(dx̂_j − Σdx̂/m) − σ⁻¹·x̂_j·Σ_i dx̂_i·x̂_i / m
///        = σ⁻¹/m · (m·dx̂_j − Σ dx̂ − x̂_j·Σ dx̂·x̂).
/// With Σdx̂ = γ·dβ and Σdx̂·x̂ = γ·dγ this is computed as PyTorch does:
///   dx = (dy − dβ/m − (x − μ)·k)·σ⁻¹·γ,  k = Σ dy·(x − μ) · σ⁻² / m.
/// dγ and dβ are returned even without affine parameters (they are then the gradients with
/// respect to an implicit γ = 1, β = 0).
// grad_y, x: [N, C, S]; mean, inv_std, gamma: [C] → dx: [N, C, S], dgamma, dbeta: [C]
pub fn batch_norm_train_backward<T: Float>(
    gy: &[T],
    x: &[T],
    d: BatchNormGeometry,
    mean: &[T],
    inv_std: &[T],
    gamma: Option<&[T]>,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let m = d.m() as f64;
    let mu: Vec<f64> = mean.iter().map(|v| v.to_f64()).collect();
    let sums = channel_grad_sums(gy, x, d, &mu);
    let mut coef = Vec::with_capacity(d.c);
    let (mut dgamma, mut dbeta) = (vec![T::ZERO; d.c], vec![T::ZERO; d.c]);
    for c in 0..d.c {
        let (s_dy, s_dyx) = sums[c];
        let istd = inv_std[c].to_f64();
        dbeta[c] = T::from_f64(s_dy);
        dgamma[c] = T::from_f64(s_dyx * istd);
        let a = istd * param_or(gamma, c, T::ONE).to_f64();
        let k = s_dyx * istd * istd / m;
        coef.push(DxCoef { mean: mean[c], mean_dy: T::from_f64(s_dy / m), k: T::from_f64(k), a: T::from_f64(a) });
    }
    let mut dx = vec![T::ZERO; x.len()];
    if d.s == 0 {
        return (dx, dgamma, dbeta);
    }
    // Keeping (x − μ) explicit (rather than folding μ into a constant) avoids cancellation
    // when a channel has a large offset.
    dx.par_chunks_mut(d.s)
        .zip(gy.par_chunks(d.s).zip(x.par_chunks(d.s)))
        .with_min_len(4096usize.div_ceil(d.s))
        .enumerate()
        .for_each(|(p, (o, (g, xp)))| {
            let DxCoef { mean, mean_dy, k, a } = coef[p % d.c];
            for ((o, &gv), &xv) in o.iter_mut().zip(g).zip(xp) {
                *o = (gv - mean_dy - (xv - mean) * k) * a;
            }
        });
    (dx, dgamma, dbeta)
}

/// Per-channel constants of the training backward: dx = (dy − mean_dy − (x − mean)·k)·a.
#[derive(Clone, Copy)]
struct DxCoef<T> {
    mean: T,
    mean_dy: T,
    k: T,
    a: T,
}

// ---------------------------------------------------------------- eval mode

/// Eval forward with running statistics: y = (x − rm_c)/sqrt(rv_c + eps)·γ_c + β_c,
/// computed as x·a_c + b_c like the training forward.
// x: [N, C, S]; running_mean, running_var, gamma, beta: [C] → y: [N, C, S]
pub fn batch_norm_eval_forward<T: Float>(
    x: &[T],
    d: BatchNormGeometry,
    running_mean: &[T],
    running_var: &[T],
    gamma: Option<&[T]>,
    beta: Option<&[T]>,
    eps: f64,
) -> Vec<T> {
    let scale: Vec<f64> =
        (0..d.c).map(|c| param_or(gamma, c, T::ONE).to_f64() / (running_var[c].to_f64() + eps).sqrt()).collect();
    let shift: Vec<f64> =
        (0..d.c).map(|c| param_or(beta, c, T::ZERO).to_f64() - running_mean[c].to_f64() * scale[c]).collect();
    affine_per_channel(x, d, &cast(&scale), &cast(&shift))
}

/// Eval backward. The forward was y = (x − rm)·r⁻¹·γ + β with constants rm and
/// r⁻¹ = 1/sqrt(rv + eps), an affine map of x, so
///   dx = dy·γ·r⁻¹,  dγ = Σ dy·(x − rm)·r⁻¹,  dβ = Σ dy.
// grad_y, x: [N, C, S]; running_mean, running_var, gamma: [C] → dx: [N, C, S], dgamma, dbeta: [C]
pub fn batch_norm_eval_backward<T: Float>(
    gy: &[T],
    x: &[T],
    d: BatchNormGeometry,
    running_mean: &[T],
    running_var: &[T],
    gamma: Option<&[T]>,
    eps: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let rm: Vec<f64> = running_mean.iter().map(|v| v.to_f64()).collect();
    let inv: Vec<f64> = running_var.iter().map(|v| 1.0 / (v.to_f64() + eps).sqrt()).collect();
    let sums = channel_grad_sums(gy, x, d, &rm);
    let dbeta: Vec<T> = sums.iter().map(|&(s, _)| T::from_f64(s)).collect();
    let dgamma: Vec<T> = sums.iter().zip(&inv).map(|(&(_, sx), &r)| T::from_f64(sx * r)).collect();
    let scale: Vec<f64> = (0..d.c).map(|c| param_or(gamma, c, T::ONE).to_f64() * inv[c]).collect();
    let dx = affine_per_channel(gy, d, &cast(&scale), &vec![T::ZERO; d.c]);
    (dx, dgamma, dbeta)
}

/// The running statistic after one training batch, as PyTorch updates it:
/// running·(1 − momentum) + batch·momentum, elementwise (both weights formed in f64).
// running, batch: [C] → [C]
pub fn update_running<T: Float>(running: &[T], batch: &[T], momentum: f64) -> Vec<T> {
    let (keep, take) = (T::from_f64(1.0 - momentum), T::from_f64(momentum));
    running.iter().zip(batch).map(|(&r, &b)| r * keep + b * take).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn the_paired_sum_in_f64_compiled_for_wide_vectors_gives_the_bits_of_the_plain_loop() {
        for len in [0, 1, 7, 8, 9, 63, 1000, 4099] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.731).sin() * 10f32.powi(i % 7 - 3)).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.297).cos() + 0.3).collect();
            let product = |u: f64, v: f64| u * (v - 0.1);
            let (wide, plain) = (sum_map2_f64(&a, &b, product), sum_map2_f64_plain(&a, &b, product));
            assert_eq!(wide.to_bits(), plain.to_bits(), "Σ a(b - m) over {len}");
        }
    }

    fn randn(n: usize, rng: &mut Rng, mean: f64, std: f64) -> Vec<f64> {
        (0..n).map(|_| mean + std * rng.normal()).collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// ‖a − b‖ / ‖b‖.
    fn rel_err(a: &[f64], b: &[f64]) -> f64 {
        let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
        diff / b.iter().map(|y| y * y).sum::<f64>().sqrt()
    }

    /// Central finite differences of `loss` with respect to every entry of `v`.
    fn fd_grad(v: &[f64], loss: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        let h = 1e-6;
        let mut w = v.to_vec();
        (0..v.len())
            .map(|i| {
                w[i] = v[i] + h;
                let up = loss(&w);
                w[i] = v[i] - h;
                let down = loss(&w);
                w[i] = v[i];
                (up - down) / (2.0 * h)
            })
            .collect()
    }

    #[test]
    fn batch_norm1d_train_forward_matches_hand_computed_values() {
        // x: [N=2, C=2]; channel 0 = {1, 3} (mean 2, var 1), channel 1 = {2, 6} (mean 4, var 4).
        let x = [1.0f64, 2.0, 3.0, 6.0];
        let d = BatchNormGeometry { n: 2, c: 2, s: 1 };
        let eps = 1e-5;
        let (y, st) = batch_norm_train_forward(&x, d, None, None, eps);
        let (a, b) = (1.0 / (1.0f64 + eps).sqrt(), 2.0 / (4.0f64 + eps).sqrt());
        let expect = [-a, -b, a, b];
        for (u, v) in y.iter().zip(&expect) {
            assert!((u - v).abs() < 1e-15, "{y:?} vs {expect:?}");
        }
        assert_eq!(st.mean, vec![2.0, 4.0]);
        assert_eq!(st.var_unbiased, vec![2.0, 8.0]);
        assert!((st.inv_std[0] - a).abs() < 1e-15 && (st.inv_std[1] - b / 2.0).abs() < 1e-15);
    }

    #[test]
    fn batch_norm2d_train_forward_gives_zero_mean_unit_variance_then_affine() {
        // x: [N=2, C=2, S=2]; channel 0 = {0, 2, 4, 6}: mean 3, var 5; channel 1 = {1, 1, 1, 5}: mean 2, var 3.
        let x = [0.0f64, 2.0, 1.0, 1.0, 4.0, 6.0, 1.0, 5.0];
        let d = BatchNormGeometry { n: 2, c: 2, s: 2 };
        let (gamma, beta) = ([2.0, -1.0], [0.5, 3.0]);
        let (y, st) = batch_norm_train_forward(&x, d, Some(&gamma), Some(&beta), 0.0);
        assert_eq!(st.mean, vec![3.0, 2.0]);
        assert!((st.var_unbiased[0] - 20.0 / 3.0).abs() < 1e-14 && (st.var_unbiased[1] - 4.0).abs() < 1e-14);
        let (s5, s3) = (5.0f64.sqrt(), 3.0f64.sqrt());
        let expect = [
            2.0 * (-3.0 / s5) + 0.5,
            2.0 * (-1.0 / s5) + 0.5,
            -(-1.0 / s3) + 3.0,
            -(-1.0 / s3) + 3.0,
            2.0 * (1.0 / s5) + 0.5,
            2.0 * (3.0 / s5) + 0.5,
            -(-1.0 / s3) + 3.0,
            -(3.0 / s3) + 3.0,
        ];
        for (u, v) in y.iter().zip(&expect) {
            assert!((u - v).abs() < 1e-14, "{y:?} vs {expect:?}");
        }
        // Undo the affine part: each channel of x̂ has mean 0 and (biased) variance 1.
        for c in 0..2 {
            let xh: Vec<f64> = (0..2)
                .flat_map(|n| (0..2).map(move |s| (n * 2 + c) * 2 + s))
                .map(|i| (y[i] - beta[c]) / gamma[c])
                .collect();
            let mean = xh.iter().sum::<f64>() / 4.0;
            let var = xh.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 4.0;
            assert!(mean.abs() < 1e-14 && (var - 1.0).abs() < 1e-14, "channel {c}: mean {mean}, var {var}");
        }
    }

    #[test]
    fn batch_norm_eval_forward_uses_running_statistics() {
        // x: [N=1, C=2, S=2], running mean {1, −2}, running var {4, 0.25}, eps 0.
        let x = [3.0f64, 5.0, -2.0, -1.5];
        let d = BatchNormGeometry { n: 1, c: 2, s: 2 };
        let y = batch_norm_eval_forward(&x, d, &[1.0, -2.0], &[4.0, 0.25], Some(&[3.0, 1.0]), Some(&[0.0, 1.0]), 0.0);
        // channel 0: (x − 1)/2·3; channel 1: (x + 2)/0.5 + 1
        assert_eq!(y, vec![3.0, 6.0, 1.0, 2.0]);
    }

    /// Odd sizes, random (never zero) inputs, a non-uniform upstream gradient g; the loss is Σ g·y.
    fn check_train_backward(d: BatchNormGeometry, affine: bool) {
        let mut rng = Rng::new(11 + d.s as u64);
        let len = d.n * d.c * d.s;
        let x = randn(len, &mut rng, 0.7, 1.9);
        let g = randn(len, &mut rng, 0.3, 1.0);
        let gamma = randn(d.c, &mut rng, 1.0, 0.5);
        let beta = randn(d.c, &mut rng, 0.0, 1.0);
        let eps = 1e-5;
        let (gm, bt) = if affine { (Some(&gamma[..]), Some(&beta[..])) } else { (None, None) };
        let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| {
            let (gm, bt) = if affine { (Some(gamma), Some(beta)) } else { (None, None) };
            dot(&batch_norm_train_forward(x, d, gm, bt, eps).0, &g)
        };
        let (_, st) = batch_norm_train_forward(&x, d, gm, bt, eps);
        let (dx, dgamma, dbeta) = batch_norm_train_backward(&g, &x, d, &st.mean, &st.inv_std, gm);
        let fdx = fd_grad(&x, |v| loss(v, &gamma, &beta));
        assert!(rel_err(&dx, &fdx) <= 1e-7, "dx rel err {}", rel_err(&dx, &fdx));
        if affine {
            let fdg = fd_grad(&gamma, |v| loss(&x, v, &beta));
            let fdb = fd_grad(&beta, |v| loss(&x, &gamma, v));
            assert!(rel_err(&dgamma, &fdg) <= 1e-7, "dgamma rel err {}", rel_err(&dgamma, &fdg));
            assert!(rel_err(&dbeta, &fdb) <= 1e-7, "dbeta rel err {}", rel_err(&dbeta, &fdb));
        }
        // Σ_i dx_i = 0 per channel: the output is invariant to shifting a whole channel.
        for c in 0..d.c {
            let s: f64 = (0..d.n).flat_map(|n| (0..d.s).map(move |s| (n * d.c + c) * d.s + s)).map(|i| dx[i]).sum();
            assert!(s.abs() < 1e-10, "channel {c}: Σ dx = {s}");
        }
    }

    #[test]
    fn batch_norm2d_train_backward_matches_finite_differences() {
        check_train_backward(BatchNormGeometry { n: 3, c: 5, s: 7 * 3 }, true);
    }

    #[test]
    fn batch_norm2d_train_backward_without_affine_matches_finite_differences() {
        check_train_backward(BatchNormGeometry { n: 3, c: 5, s: 7 * 3 }, false);
    }

    #[test]
    fn batch_norm1d_train_backward_matches_finite_differences() {
        check_train_backward(BatchNormGeometry { n: 7, c: 5, s: 1 }, true);
    }

    #[test]
    fn batch_norm_eval_backward_matches_finite_differences() {
        let d = BatchNormGeometry { n: 3, c: 5, s: 7 * 3 };
        let mut rng = Rng::new(5);
        let len = d.n * d.c * d.s;
        let x = randn(len, &mut rng, 0.2, 1.5);
        let g = randn(len, &mut rng, -0.4, 1.0);
        let rm = randn(d.c, &mut rng, 0.0, 1.0);
        let rv: Vec<f64> = (0..d.c).map(|_| rng.uniform(0.2, 3.0)).collect();
        let gamma = randn(d.c, &mut rng, 1.0, 0.5);
        let beta = randn(d.c, &mut rng, 0.0, 1.0);
        let eps = 1e-5;
        let loss = |x: &[f64], gm: &[f64], bt: &[f64]| {
            dot(&batch_norm_eval_forward(x, d, &rm, &rv, Some(gm), Some(bt), eps), &g)
        };
        let (dx, dgamma, dbeta) = batch_norm_eval_backward(&g, &x, d, &rm, &rv, Some(&gamma), eps);
        let fdx = fd_grad(&x, |v| loss(v, &gamma, &beta));
        let fdg = fd_grad(&gamma, |v| loss(&x, v, &beta));
        let fdb = fd_grad(&beta, |v| loss(&x, &gamma, v));
        assert!(rel_err(&dx, &fdx) <= 1e-7, "dx rel err {}", rel_err(&dx, &fdx));
        assert!(rel_err(&dgamma, &fdg) <= 1e-7, "dgamma rel err {}", rel_err(&dgamma, &fdg));
        assert!(rel_err(&dbeta, &fdb) <= 1e-7, "dbeta rel err {}", rel_err(&dbeta, &fdb));
    }

    #[test]
    fn f64_accumulation_keeps_f32_statistics_accurate_with_a_large_offset() {
        // 4096 values 1000 + {±1}: a naive f32 running sum of squares loses the variance.
        let d = BatchNormGeometry { n: 4, c: 1, s: 1024 };
        let x: Vec<f32> = (0..4096).map(|i| 1000.0 + if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let (_, st) = batch_norm_train_forward(&x, d, None, None, 0.0);
        assert_eq!(st.mean[0], 1000.0);
        assert!((st.inv_std[0] - 1.0).abs() < 1e-6, "inv_std {}", st.inv_std[0]);
    }
}
