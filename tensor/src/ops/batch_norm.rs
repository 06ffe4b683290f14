//! Batch normalisation ops for x of shape [N, C, H, W] (BatchNorm2d), [N, C, L] or [N, C]
//! (BatchNorm1d): training forward (batch statistics) and eval forward (running statistics),
//! each beside its backward, and the running statistics' update after a training batch (the
//! nn layer owns the running tensors; the update is one op so that it is one GPU launch, not
//! the six scalar multiplications and additions it is written as).

use gpu::kernels::batch_norm::{self as gpu_kernel, Affine, BackwardArgs, BatchStats, BnStats};

use super::checks::same_dtype;
use crate::cpu::batch_norm as kernel;
use crate::descriptors::BatchNormGeometry;
use crate::device::same_device;
use crate::dtype::{DType, Float};
use crate::error::{invalid, shape_err, Result};
use crate::gpu_parts::batch_norm::{backward_in_parts, beyond_one_binding, eval_in_parts, train_in_parts};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::{run_gpu, Tensor};

/// What a training-mode batch norm returns. All statistics have shape \[C\].
#[derive(Clone, Debug)]
pub struct BatchNormTrainOutput {
    /// The normalised output, shaped like x.
    pub y: Tensor,
    /// Batch mean over (N, H, W): saved for the backward, and the value to fold into
    /// `running_mean` (running = (1 − momentum)·running + momentum·mean).
    pub mean: Tensor,
    /// 1/sqrt(var + eps) with the biased batch variance: saved for the backward.
    pub inv_std: Tensor,
    /// Unbiased batch variance var·m/(m − 1), m = N·H·W: the value PyTorch folds into
    /// `running_var`.
    pub var_unbiased: Tensor,
}

/// Gradients of a batch norm. `dgamma` and `dbeta` (\[C\]) are computed even when the forward
/// had no affine parameters (they are then the gradients of an implicit γ = 1, β = 0).
#[derive(Clone, Debug)]
pub struct BatchNormGrads {
    /// Gradient of the input, shaped like it.
    pub dx: Tensor,
    /// Gradient of the per-channel scale γ, `[C]`.
    pub dgamma: Tensor,
    /// Gradient of the per-channel shift β, `[C]`.
    pub dbeta: Tensor,
}

/// The running statistics after one training batch, as PyTorch updates them:
/// (running_mean, running_var)·(1 − momentum) + (mean, var_unbiased)·momentum, the batch
/// numbers being [`BatchNormTrainOutput`]'s `mean` and `var_unbiased`.
// running_mean, running_var, mean, var_unbiased: [C] → new running_mean, running_var: [C]
pub fn batch_norm_update_running(
    running_mean: &Tensor,
    running_var: &Tensor,
    mean: &Tensor,
    var_unbiased: &Tensor,
    momentum: f64,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "batch_norm_update_running";
    let _profile = profile::scope(OpFamily::BatchNorm, OP, running_mean);
    let all = [running_mean, running_var, mean, var_unbiased];
    let c = running_mean.numel();
    if let Some(t) = all.iter().find(|t| t.shape() != [c]) {
        return shape_err(
            OP,
            format!("expected four [C] tensors, got running_mean {:?} and {:?}", running_mean.shape(), t.shape()),
        );
    }
    if !momentum.is_finite() {
        return invalid(OP, format!("momentum must be finite, got {momentum}"));
    }
    same_dtype(OP, &all)?;
    same_device(OP, &all.map(|t| t.device()))?;
    match running_mean.storage() {
        Storage::Cpu(_) => {
            fn update<T: Float>(running: &Tensor, batch: &Tensor, momentum: f64) -> Result<Tensor> {
                let (running, batch) = (running.contiguous()?, batch.contiguous()?);
                vec_c(kernel::update_running(running.cpu_slice::<T>()?, batch.cpu_slice::<T>()?, momentum))
            }
            let both = |r, b| match running_mean.dtype() {
                DType::F32 => update::<f32>(r, b, momentum),
                DType::F64 => update::<f64>(r, b, momentum),
            };
            Ok((both(running_mean, mean)?, both(running_var, var_unbiased)?))
        }
        Storage::Reference(_) => {
            let dtype = running_mean.dtype();
            let both = |r, b| -> Result<Tensor> {
                let new =
                    reference::batch_norm::update_running(&reference::values(r)?, &reference::values(b)?, momentum);
                Ok(reference::tensor(new, &[c], dtype))
            };
            Ok((both(running_mean, mean)?, both(running_var, var_unbiased)?))
        }
        Storage::Gpu(_) => {
            let inputs = all.map(Some);
            let [new_mean, new_var] = run_gpu(OP, &inputs, [&[c], &[c]], |ctx, i, [new_mean, new_var]| {
                let [rm, rv, m, v] = [0, 1, 2, 3].map(|k| i[k].expect("four inputs"));
                gpu_kernel::update_running(ctx, c, momentum, [rm, rv], [m, v], [new_mean, new_var])
            })?;
            Ok((new_mean, new_var))
        }
    }
}

/// Views x as [N, C, S]: S = H·W for rank 4, L for rank 3, 1 for rank 2.
fn bn_dims(op: &'static str, x: &Tensor) -> Result<BatchNormGeometry> {
    let s = x.shape();
    if !(2..=4).contains(&s.len()) {
        return shape_err(op, format!("input must be [N, C], [N, C, L] or [N, C, H, W], got shape {s:?}"));
    }
    Ok(BatchNormGeometry { n: s[0], c: s[1], s: s[2..].iter().product() })
}

/// Checks that a per-channel tensor (γ, β, a statistic) has shape [C] and x's dtype, and
/// makes it contiguous.
fn per_channel(op: &'static str, name: &str, t: &Tensor, x: &Tensor) -> Result<Tensor> {
    if t.shape() != [x.shape()[1]] {
        return shape_err(
            op,
            format!("{name} has shape {:?}, expected [{}] for input of shape {:?}", t.shape(), x.shape()[1], x.shape()),
        );
    }
    same_dtype(op, &[x, t])?;
    t.contiguous()
}

fn optional_per_channel(op: &'static str, name: &str, t: Option<&Tensor>, x: &Tensor) -> Result<Option<Tensor>> {
    t.map(|t| per_channel(op, name, t, x)).transpose()
}

fn check_eps(op: &'static str, eps: f64) -> Result<()> {
    if !(eps.is_finite() && eps >= 0.0) {
        return invalid(op, format!("eps must be finite and non-negative, got {eps}"));
    }
    Ok(())
}

/// Refuses operands on different devices: x and every present per-channel operand (an error naming `op`).
fn check_same_device(op: &'static str, x: &Tensor, others: &[Option<&Tensor>]) -> Result<()> {
    let mut devices = vec![x.device()];
    devices.extend(others.iter().flatten().map(|t| t.device()));
    same_device(op, &devices).map(|_| ())
}

/// The slice of an optional per-channel tensor.
fn opt_slice<T: Float>(t: &Option<Tensor>) -> Result<Option<&[T]>> {
    t.as_ref().map(|t| t.cpu_slice::<T>()).transpose()
}

/// The values of an optional affine parameter (γ or β), `absent` per channel without one.
fn affine_values(t: Option<&Tensor>, absent: f64, d: BatchNormGeometry) -> Result<Vec<f64>> {
    Ok(reference::values_of(t)?.unwrap_or_else(|| vec![absent; d.c]))
}

/// The reference arm's (dx, dγ, dβ) as tensors on the reference device, in x's dtype.
fn reference_grads((dx, dgamma, dbeta): (Vec<f64>, Vec<f64>, Vec<f64>), x: &Tensor) -> BatchNormGrads {
    let c = dgamma.len();
    BatchNormGrads {
        dx: reference::tensor(dx, x.shape(), x.dtype()),
        dgamma: reference::tensor(dgamma, &[c], x.dtype()),
        dbeta: reference::tensor(dbeta, &[c], x.dtype()),
    }
}

fn vec_c<T: Float>(v: Vec<T>) -> Result<Tensor> {
    let c = v.len();
    Tensor::from_vec(v, &[c])
}

// ---------------------------------------------------------------- training mode

/// Training-mode batch norm: per channel, mean and biased variance over (N, H, W), then
/// y = (x − mean)/sqrt(var + eps)·γ + β. γ and β (\[C\]) are optional (1 and 0 when absent).
/// Needs more than one value per channel (N·H·W ≥ 2), as PyTorch does.
// x: [N, C, (H, W)], gamma, beta: [C] → y: like x, mean, inv_std, var_unbiased: [C]
pub fn batch_norm_train(
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    eps: f64,
) -> Result<BatchNormTrainOutput> {
    const OP: &str = "batch_norm_train";
    let _profile = profile::scope(OpFamily::BatchNorm, OP, x);
    let d = bn_dims(OP, x)?;
    if d.m() < 2 {
        return shape_err(OP, format!("expected more than 1 value per channel in training, got input {:?}", x.shape()));
    }
    check_eps(OP, eps)?;
    let gamma = optional_per_channel(OP, "gamma", gamma, x)?;
    let beta = optional_per_channel(OP, "beta", beta, x)?;
    check_same_device(OP, x, &[gamma.as_ref(), beta.as_ref()])?;
    match x.storage() {
        Storage::Cpu(_) => {
            let x = x.contiguous()?;
            match x.dtype() {
                DType::F32 => batch_norm_train_typed::<f32>(&x, d, &gamma, &beta, eps),
                DType::F64 => batch_norm_train_typed::<f64>(&x, d, &gamma, &beta, eps),
            }
        }
        Storage::Reference(_) => {
            let (gamma, beta) = (affine_values(gamma.as_ref(), 1.0, d)?, affine_values(beta.as_ref(), 0.0, d)?);
            let (y, stats) = reference::batch_norm::train_forward(&reference::values(x)?, d, &gamma, &beta, eps);
            let per_channel =
                |k: fn(&(f64, f64, f64)) -> f64| reference::tensor(stats.iter().map(k).collect(), &[d.c], x.dtype());
            Ok(BatchNormTrainOutput {
                y: reference::tensor(y, x.shape(), x.dtype()),
                mean: per_channel(|s| s.0),
                inv_std: per_channel(|s| s.1),
                var_unbiased: per_channel(|s| s.2),
            })
        }
        Storage::Gpu(_) if beyond_one_binding(OP, x)? => train_in_parts(OP, x, d, [&gamma, &beta], eps),
        Storage::Gpu(_) => {
            // Two launches: per-channel statistics, then the normalisation reading them.
            let (gd, c) = (d, [d.c]);
            let inputs = [Some(x), gamma.as_ref(), beta.as_ref()];
            let [y, mean, inv_std, var_unbiased] =
                run_gpu(OP, &inputs, [x.shape(), &c, &c, &c], |ctx, i, [y, mean, inv_std, var_unbiased]| {
                    let xb = i[0].expect("x");
                    let stats = BatchStats { mean, inv_std, var_unbiased };
                    gpu_kernel::stats(ctx, gd, eps as f32, xb, &stats)?;
                    let affine = Affine { gamma: i[1], beta: i[2] };
                    gpu_kernel::normalize(ctx, gd, xb, BnStats::Batch { mean, inv_std }, affine, y)
                })?;
            Ok(BatchNormTrainOutput { y, mean, inv_std, var_unbiased })
        }
    }
}

fn batch_norm_train_typed<T: Float>(
    x: &Tensor,
    d: BatchNormGeometry,
    gamma: &Option<Tensor>,
    beta: &Option<Tensor>,
    eps: f64,
) -> Result<BatchNormTrainOutput> {
    let (y, st) = kernel::batch_norm_train_forward(x.cpu_slice::<T>()?, d, opt_slice(gamma)?, opt_slice(beta)?, eps);
    Ok(BatchNormTrainOutput {
        y: Tensor::from_vec(y, x.shape())?,
        mean: vec_c(st.mean)?,
        inv_std: vec_c(st.inv_std)?,
        var_unbiased: vec_c(st.var_unbiased)?,
    })
}

/// Training-mode backward from the forward's input x and its saved `mean` and `inv_std`:
///   dβ = Σ dy,  dγ = Σ dy·x̂,  dx = inv_std/m · (m·dx̂ − Σ dx̂ − x̂·Σ dx̂·x̂),  dx̂ = dy·γ
/// (sums per channel over (N, H, W); the derivation is at `cpu::batch_norm::batch_norm_train_backward`).
// grad_y, x: [N, C, (H, W)]; mean, inv_std, gamma: [C] → dx: like x, dgamma, dbeta: [C]
pub fn batch_norm_train_backward(
    grad_y: &Tensor,
    x: &Tensor,
    mean: &Tensor,
    inv_std: &Tensor,
    gamma: Option<&Tensor>,
) -> Result<BatchNormGrads> {
    const OP: &str = "batch_norm_train_backward";
    let _profile = profile::scope(OpFamily::BatchNorm, OP, grad_y);
    let d = bn_dims(OP, x)?;
    check_same_shape(OP, grad_y, x)?;
    let mean = per_channel(OP, "mean", mean, x)?;
    let inv_std = per_channel(OP, "inv_std", inv_std, x)?;
    let gamma = optional_per_channel(OP, "gamma", gamma, x)?;
    check_same_device(OP, x, &[Some(grad_y), Some(&mean), Some(&inv_std), gamma.as_ref()])?;
    match x.storage() {
        Storage::Cpu(_) => {
            let (gy, x) = (grad_y.contiguous()?, x.contiguous()?);
            match x.dtype() {
                DType::F32 => batch_norm_train_backward_typed::<f32>(&gy, &x, d, &mean, &inv_std, &gamma),
                DType::F64 => batch_norm_train_backward_typed::<f64>(&gy, &x, d, &mean, &inv_std, &gamma),
            }
        }
        Storage::Reference(_) => {
            let (dy, xv, gamma) =
                (reference::values(grad_y)?, reference::values(x)?, affine_values(gamma.as_ref(), 1.0, d)?);
            let stats = [&reference::values(&mean)?[..], &reference::values(&inv_std)?[..]];
            let grads = reference::batch_norm::train_backward(&dy, &xv, d, &gamma, stats);
            Ok(reference_grads(grads, x))
        }
        Storage::Gpu(_) => backward_gpu(OP, d, grad_y, x, [&mean, &inv_std], gamma.as_ref(), None),
    }
}

/// The GPU arm of both backwards: `stats` are (mean, inv_std) in training (`eval_eps` None)
/// or (running_mean, running_var) in eval.
fn backward_gpu(
    op: &'static str,
    d: BatchNormGeometry,
    grad_y: &Tensor,
    x: &Tensor,
    stats: [&Tensor; 2],
    gamma: Option<&Tensor>,
    eval_eps: Option<f64>,
) -> Result<BatchNormGrads> {
    if beyond_one_binding(op, x)? {
        return backward_in_parts(op, d, grad_y, x, stats, gamma, eval_eps);
    }
    let (gd, c) = (d, [d.c]);
    let inputs = [Some(grad_y), Some(x), Some(stats[0]), Some(stats[1]), gamma];
    let [dx, dgamma, dbeta] = run_gpu(op, &inputs, [x.shape(), &c, &c], |ctx, i, [dx, dgamma, dbeta]| {
        let (s0, s1) = (i[2].expect("mean"), i[3].expect("statistic"));
        let stats = match eval_eps {
            None => BnStats::Batch { mean: s0, inv_std: s1 },
            Some(eps) => BnStats::Running { mean: s0, var: s1, eps: eps as f32 },
        };
        let args =
            BackwardArgs { dy: i[0].expect("grad_y"), x: i[1].expect("x"), stats, gamma: i[4], dx, dgamma, dbeta };
        gpu_kernel::backward(ctx, gd, &args)
    })?;
    Ok(BatchNormGrads { dx, dgamma, dbeta })
}

fn batch_norm_train_backward_typed<T: Float>(
    gy: &Tensor,
    x: &Tensor,
    d: BatchNormGeometry,
    mean: &Tensor,
    inv_std: &Tensor,
    gamma: &Option<Tensor>,
) -> Result<BatchNormGrads> {
    let (dx, dgamma, dbeta) = kernel::batch_norm_train_backward(
        gy.cpu_slice::<T>()?,
        x.cpu_slice::<T>()?,
        d,
        mean.cpu_slice::<T>()?,
        inv_std.cpu_slice::<T>()?,
        opt_slice(gamma)?,
    );
    Ok(BatchNormGrads { dx: Tensor::from_vec(dx, x.shape())?, dgamma: vec_c(dgamma)?, dbeta: vec_c(dbeta)? })
}

fn check_same_shape(op: &'static str, grad_y: &Tensor, x: &Tensor) -> Result<()> {
    if grad_y.shape() != x.shape() {
        return shape_err(op, format!("grad_y has shape {:?} but x has shape {:?}", grad_y.shape(), x.shape()));
    }
    same_dtype(op, &[x, grad_y])?;
    Ok(())
}

// ---------------------------------------------------------------- eval mode

/// Eval-mode batch norm with running statistics (\[C\] each):
/// y = (x − running_mean)/sqrt(running_var + eps)·γ + β.
// x: [N, C, (H, W)]; running_mean, running_var, gamma, beta: [C] → y: like x
pub fn batch_norm_eval(
    x: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    const OP: &str = "batch_norm_eval";
    let _profile = profile::scope(OpFamily::BatchNorm, OP, x);
    let d = bn_dims(OP, x)?;
    check_eps(OP, eps)?;
    let rm = per_channel(OP, "running_mean", running_mean, x)?;
    let rv = per_channel(OP, "running_var", running_var, x)?;
    let gamma = optional_per_channel(OP, "gamma", gamma, x)?;
    let beta = optional_per_channel(OP, "beta", beta, x)?;
    check_same_device(OP, x, &[Some(&rm), Some(&rv), gamma.as_ref(), beta.as_ref()])?;
    match x.storage() {
        Storage::Cpu(_) => {
            let x = x.contiguous()?;
            match x.dtype() {
                DType::F32 => batch_norm_eval_typed::<f32>(&x, d, &rm, &rv, &gamma, &beta, eps),
                DType::F64 => batch_norm_eval_typed::<f64>(&x, d, &rm, &rv, &gamma, &beta, eps),
            }
        }
        Storage::Reference(_) => {
            let (gamma, beta) = (affine_values(gamma.as_ref(), 1.0, d)?, affine_values(beta.as_ref(), 0.0, d)?);
            let (rm, rv) = (reference::values(&rm)?, reference::values(&rv)?);
            let y = reference::batch_norm::eval_forward(&reference::values(x)?, d, &rm, &rv, &gamma, &beta, eps);
            Ok(reference::tensor(y, x.shape(), x.dtype()))
        }
        Storage::Gpu(_) if beyond_one_binding(OP, x)? => eval_in_parts(x, d, [&rm, &rv], [&gamma, &beta], eps),
        Storage::Gpu(_) => {
            let gd = d;
            let inputs = [Some(x), Some(&rm), Some(&rv), gamma.as_ref(), beta.as_ref()];
            let [y] = run_gpu(OP, &inputs, [x.shape()], |ctx, i, [y]| {
                let stats = BnStats::Running {
                    mean: i[1].expect("running_mean"),
                    var: i[2].expect("running_var"),
                    eps: eps as f32,
                };
                let affine = Affine { gamma: i[3], beta: i[4] };
                gpu_kernel::normalize(ctx, gd, i[0].expect("x"), stats, affine, y)
            })?;
            Ok(y)
        }
    }
}

fn batch_norm_eval_typed<T: Float>(
    x: &Tensor,
    d: BatchNormGeometry,
    rm: &Tensor,
    rv: &Tensor,
    gamma: &Option<Tensor>,
    beta: &Option<Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let y = kernel::batch_norm_eval_forward(
        x.cpu_slice::<T>()?,
        d,
        rm.cpu_slice::<T>()?,
        rv.cpu_slice::<T>()?,
        opt_slice(gamma)?,
        opt_slice(beta)?,
        eps,
    );
    Tensor::from_vec(y, x.shape())
}

/// Eval-mode backward: the forward is affine in x with constant statistics, so
/// dx = dy·γ/sqrt(running_var + eps), dγ = Σ dy·x̂, dβ = Σ dy.
// grad_y, x: [N, C, (H, W)]; running_mean, running_var, gamma: [C] → dx: like x, dgamma, dbeta: [C]
pub fn batch_norm_eval_backward(
    grad_y: &Tensor,
    x: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    gamma: Option<&Tensor>,
    eps: f64,
) -> Result<BatchNormGrads> {
    const OP: &str = "batch_norm_eval_backward";
    let _profile = profile::scope(OpFamily::BatchNorm, OP, grad_y);
    let d = bn_dims(OP, x)?;
    check_eps(OP, eps)?;
    check_same_shape(OP, grad_y, x)?;
    let rm = per_channel(OP, "running_mean", running_mean, x)?;
    let rv = per_channel(OP, "running_var", running_var, x)?;
    let gamma = optional_per_channel(OP, "gamma", gamma, x)?;
    check_same_device(OP, x, &[Some(grad_y), Some(&rm), Some(&rv), gamma.as_ref()])?;
    match x.storage() {
        Storage::Cpu(_) => {
            let (gy, x) = (grad_y.contiguous()?, x.contiguous()?);
            match x.dtype() {
                DType::F32 => batch_norm_eval_backward_typed::<f32>(&gy, &x, d, &rm, &rv, &gamma, eps),
                DType::F64 => batch_norm_eval_backward_typed::<f64>(&gy, &x, d, &rm, &rv, &gamma, eps),
            }
        }
        Storage::Reference(_) => {
            let (dy, xv, gamma) =
                (reference::values(grad_y)?, reference::values(x)?, affine_values(gamma.as_ref(), 1.0, d)?);
            let stats = [&reference::values(&rm)?[..], &reference::values(&rv)?[..]];
            let grads = reference::batch_norm::eval_backward(&dy, &xv, d, stats, &gamma, eps);
            Ok(reference_grads(grads, x))
        }
        Storage::Gpu(_) => backward_gpu(OP, d, grad_y, x, [&rm, &rv], gamma.as_ref(), Some(eps)),
    }
}

fn batch_norm_eval_backward_typed<T: Float>(
    gy: &Tensor,
    x: &Tensor,
    d: BatchNormGeometry,
    rm: &Tensor,
    rv: &Tensor,
    gamma: &Option<Tensor>,
    eps: f64,
) -> Result<BatchNormGrads> {
    let (dx, dgamma, dbeta) = kernel::batch_norm_eval_backward(
        gy.cpu_slice::<T>()?,
        x.cpu_slice::<T>()?,
        d,
        rm.cpu_slice::<T>()?,
        rv.cpu_slice::<T>()?,
        opt_slice(gamma)?,
        eps,
    );
    Ok(BatchNormGrads { dx: Tensor::from_vec(dx, x.shape())?, dgamma: vec_c(dgamma)?, dbeta: vec_c(dbeta)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_statistics_move_by_momentum_towards_the_batch_ones() {
        let t = |v: &[f64]| Tensor::from_vec(v.to_vec(), &[v.len()]).unwrap();
        let (rm, rv, m, v) = (t(&[0.0, 1.0]), t(&[1.0, 1.0]), t(&[2.5, 1.0]), t(&[5.0, 3.0]));
        let (new_m, new_v) = batch_norm_update_running(&rm, &rv, &m, &v, 0.1).unwrap();
        assert_eq!(new_m.to_vec_f64().unwrap(), vec![0.0 * 0.9 + 2.5 * 0.1, 1.0 * 0.9 + 1.0 * 0.1]);
        assert_eq!(new_v.to_vec_f64().unwrap(), vec![0.9 + 5.0 * 0.1, 0.9 + 3.0 * 0.1]);
    }

    #[test]
    fn running_statistics_of_other_lengths_or_a_non_finite_momentum_are_refused() {
        let t = |n: usize| Tensor::zeros(&[n], DType::F64);
        let err = batch_norm_update_running(&t(3), &t(3), &t(2), &t(3), 0.1).unwrap_err().to_string();
        assert!(err.contains("batch_norm_update_running") && err.contains("[2]"), "{err}");
        let err = batch_norm_update_running(&t(3), &t(3), &t(3), &t(3), f64::NAN).unwrap_err().to_string();
        assert!(err.contains("momentum"), "{err}");
    }

    use crate::error::TensorError;
    use crate::rng::Rng;

    #[test]
    fn train_op_on_nchw_normalises_each_channel_and_reports_statistics() {
        // x: [N=2, C=1, H=1, W=2] = {1, 3, 5, 7}: mean 4, var 5, unbiased var 20/3.
        let x = Tensor::from_vec(vec![1.0f64, 3.0, 5.0, 7.0], &[2, 1, 1, 2]).unwrap();
        let out = batch_norm_train(&x, None, None, 0.0).unwrap();
        assert_eq!(out.y.shape(), x.shape());
        assert_eq!(out.mean.to_vec_f64().unwrap(), vec![4.0]);
        assert!((out.var_unbiased.to_vec_f64().unwrap()[0] - 20.0 / 3.0).abs() < 1e-14);
        assert!((out.inv_std.to_vec_f64().unwrap()[0] - 1.0 / 5.0f64.sqrt()).abs() < 1e-15);
        let s5 = 5.0f64.sqrt();
        for (u, v) in out.y.to_vec_f64().unwrap().iter().zip([-3.0 / s5, -1.0 / s5, 1.0 / s5, 3.0 / s5]) {
            assert!((u - v).abs() < 1e-15);
        }
    }

    #[test]
    fn f32_ops_agree_with_f64_and_eval_with_batch_statistics_equals_train() {
        let mut rng = Rng::new(21);
        let x = Tensor::rand_normal(&[3, 5, 7, 3], 1.0, 2.0, DType::F64, &mut rng);
        let gamma = Tensor::rand_normal(&[5], 1.0, 0.3, DType::F64, &mut rng);
        let beta = Tensor::rand_normal(&[5], 0.0, 1.0, DType::F64, &mut rng);
        let eps = 1e-5;
        let t64 = batch_norm_train(&x, Some(&gamma), Some(&beta), eps).unwrap();
        let f32s = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        let t32 = batch_norm_train(&f32s(&x), Some(&f32s(&gamma)), Some(&f32s(&beta)), eps).unwrap();
        assert_eq!(t32.y.dtype(), DType::F32);
        for (a, b) in t64.y.to_vec_f64().unwrap().iter().zip(t32.y.to_vec_f64().unwrap()) {
            assert!((a - b).abs() < 1e-5);
        }
        // Eval with the (biased) batch variance reproduces the training output.
        let inv = t64.inv_std.to_vec_f64().unwrap();
        let var = Tensor::from_vec(inv.iter().map(|v| 1.0 / (v * v) - eps).collect::<Vec<_>>(), &[5]).unwrap();
        let ev = batch_norm_eval(&x, &t64.mean, &var, Some(&gamma), Some(&beta), eps).unwrap();
        for (a, b) in t64.y.to_vec_f64().unwrap().iter().zip(ev.to_vec_f64().unwrap()) {
            assert!((a - b).abs() < 1e-12);
        }
        let gy = Tensor::rand_normal(x.shape(), 0.0, 1.0, DType::F64, &mut rng);
        let g64 = batch_norm_train_backward(&gy, &x, &t64.mean, &t64.inv_std, Some(&gamma)).unwrap();
        let g32 =
            batch_norm_train_backward(&f32s(&gy), &f32s(&x), &t32.mean, &t32.inv_std, Some(&f32s(&gamma))).unwrap();
        for (a, b) in g64.dx.to_vec_f64().unwrap().iter().zip(g32.dx.to_vec_f64().unwrap()) {
            assert!((a - b).abs() < 1e-4);
        }
        assert_eq!((g64.dgamma.shape(), g64.dbeta.shape()), (&[5usize][..], &[5usize][..]));
        let e = batch_norm_eval_backward(&gy, &x, &t64.mean, &var, None, eps).unwrap();
        assert_eq!(e.dx.shape(), x.shape());
    }

    #[test]
    fn batch_norm1d_op_accepts_rank_2_and_non_contiguous_input() {
        let mut rng = Rng::new(22);
        let xt = Tensor::rand_normal(&[5, 7], 0.0, 1.0, DType::F64, &mut rng).transpose(0, 1).unwrap(); // [7, 5]
        let a = batch_norm_train(&xt, None, None, 1e-5).unwrap();
        let b = batch_norm_train(&xt.contiguous_copy().unwrap(), None, None, 1e-5).unwrap();
        assert_eq!(a.y.to_vec_f64().unwrap(), b.y.to_vec_f64().unwrap());
        assert_eq!(a.mean.shape(), &[5]);
    }

    #[test]
    fn bad_batch_norm_arguments_are_errors_not_panics() {
        let x = Tensor::zeros(&[2, 3, 2, 2], DType::F32);
        let c3 = Tensor::ones(&[3], DType::F32);
        assert!(matches!(
            batch_norm_train(&Tensor::zeros(&[6], DType::F32), None, None, 1e-5),
            Err(TensorError::Shape { .. })
        ));
        assert!(matches!(
            batch_norm_train(&Tensor::zeros(&[1, 3], DType::F32), None, None, 1e-5),
            Err(TensorError::Shape { .. })
        ));
        assert!(matches!(
            batch_norm_train(&x, Some(&Tensor::ones(&[4], DType::F32)), None, 1e-5),
            Err(TensorError::Shape { .. })
        ));
        assert!(matches!(
            batch_norm_train(&x, None, Some(&Tensor::ones(&[3], DType::F64)), 1e-5),
            Err(TensorError::DType { .. })
        ));
        assert!(matches!(batch_norm_train(&x, None, None, -1.0), Err(TensorError::Invalid { .. })));
        assert!(matches!(
            batch_norm_eval(&x, &c3, &Tensor::ones(&[3, 1], DType::F32), None, None, 1e-5),
            Err(TensorError::Shape { .. })
        ));
        let gy = Tensor::zeros(&[2, 3, 2, 1], DType::F32);
        assert!(matches!(batch_norm_train_backward(&gy, &x, &c3, &c3, None), Err(TensorError::Shape { .. })));
        assert!(matches!(batch_norm_eval_backward(&gy, &x, &c3, &c3, None, 1e-5), Err(TensorError::Shape { .. })));
        assert!(batch_norm_train_backward(&x, &x, &c3, &c3, Some(&c3)).is_ok());
    }
}
