//! Batch normalisation ops for x of shape [N, C, H, W] (BatchNorm2d), [N, C, L] or [N, C]
//! (BatchNorm1d): training forward (batch statistics) and eval forward (running statistics),
//! each beside its backward, and the running statistics' update after a training batch (the
//! nn layer owns the running tensors; the update is one op so that it is one GPU launch, not
//! the six scalar multiplications and additions it is written as).
//!
//! `train.rs` holds the training-mode pair, `eval.rs` the eval-mode pair; this file the results'
//! types, the checks both share, the running update and the GPU arm of both backwards.

use gpu::kernels::batch_norm::{self as gpu_kernel, BackwardArgs, BnStats};

use super::checks::same_dtype;
use crate::cpu::batch_norm as kernel;
use crate::descriptors::BatchNormGeometry;
use crate::device::same_device;
use crate::dtype::{with_float_type, Float};
use crate::error::{invalid, shape_err, Result};
use crate::gpu_parts::batch_norm::{backward_in_parts, beyond_one_binding};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::{run_gpu, Tensor};

mod eval;
mod train;

pub use eval::{batch_norm_eval, batch_norm_eval_backward};
pub use train::{batch_norm_train, batch_norm_train_backward};

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
            let both = |r, b| with_float_type!(running_mean.dtype(), T => update::<T>(r, b, momentum));
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
pub(super) fn bn_dims(op: &'static str, x: &Tensor) -> Result<BatchNormGeometry> {
    let s = x.shape();
    if !(2..=4).contains(&s.len()) {
        return shape_err(op, format!("input must be [N, C], [N, C, L] or [N, C, H, W], got shape {s:?}"));
    }
    Ok(BatchNormGeometry { n: s[0], c: s[1], s: s[2..].iter().product() })
}

/// Checks that a per-channel tensor (γ, β, a statistic) has shape [C] and x's dtype, and
/// makes it contiguous.
pub(super) fn per_channel(op: &'static str, name: &str, t: &Tensor, x: &Tensor) -> Result<Tensor> {
    if t.shape() != [x.shape()[1]] {
        return shape_err(
            op,
            format!("{name} has shape {:?}, expected [{}] for input of shape {:?}", t.shape(), x.shape()[1], x.shape()),
        );
    }
    same_dtype(op, &[x, t])?;
    t.contiguous()
}

pub(super) fn optional_per_channel(
    op: &'static str,
    name: &str,
    t: Option<&Tensor>,
    x: &Tensor,
) -> Result<Option<Tensor>> {
    t.map(|t| per_channel(op, name, t, x)).transpose()
}

pub(super) fn check_eps(op: &'static str, eps: f64) -> Result<()> {
    if !(eps.is_finite() && eps >= 0.0) {
        return invalid(op, format!("eps must be finite and non-negative, got {eps}"));
    }
    Ok(())
}

/// Refuses operands on different devices: x and every present per-channel operand (an error naming `op`).
pub(super) fn check_same_device(op: &'static str, x: &Tensor, others: &[Option<&Tensor>]) -> Result<()> {
    let mut devices = vec![x.device()];
    devices.extend(others.iter().flatten().map(|t| t.device()));
    same_device(op, &devices).map(|_| ())
}

/// The slice of an optional per-channel tensor.
pub(super) fn opt_slice<T: Float>(t: &Option<Tensor>) -> Result<Option<&[T]>> {
    t.as_ref().map(|t| t.cpu_slice::<T>()).transpose()
}

/// The values of an optional affine parameter (γ or β), `absent` per channel without one.
pub(super) fn affine_values(t: Option<&Tensor>, absent: f64, d: BatchNormGeometry) -> Result<Vec<f64>> {
    Ok(reference::values_of(t)?.unwrap_or_else(|| vec![absent; d.c]))
}

/// The reference arm's (dx, dγ, dβ) as tensors on the reference device, in x's dtype.
pub(super) fn reference_grads((dx, dgamma, dbeta): (Vec<f64>, Vec<f64>, Vec<f64>), x: &Tensor) -> BatchNormGrads {
    let c = dgamma.len();
    BatchNormGrads {
        dx: reference::tensor(dx, x.shape(), x.dtype()),
        dgamma: reference::tensor(dgamma, &[c], x.dtype()),
        dbeta: reference::tensor(dbeta, &[c], x.dtype()),
    }
}

pub(super) fn vec_c<T: Float>(v: Vec<T>) -> Result<Tensor> {
    let c = v.len();
    Tensor::from_vec(v, &[c])
}

pub(super) fn check_same_shape(op: &'static str, grad_y: &Tensor, x: &Tensor) -> Result<()> {
    if grad_y.shape() != x.shape() {
        return shape_err(op, format!("grad_y has shape {:?} but x has shape {:?}", grad_y.shape(), x.shape()));
    }
    same_dtype(op, &[x, grad_y])?;
    Ok(())
}

/// The GPU arm of both backwards: `stats` are (mean, inv_std) in training (`eval_eps` None)
/// or (running_mean, running_var) in eval.
pub(super) fn backward_gpu(
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
