//! Batch norm over a GPU tensor larger than one storage binding.
//!
//! The batch-norm kernels bind x whole and reduce each channel in one workgroup. A GPU tensor
//! larger than one storage binding takes another road: the same formulas composed of ops that
//! run in parts ([`super::run_gpu_in_parts`]): per-channel sums (the bias gradient's kernel,
//! accumulated over parts of the batch) and broadcast element-wise ops. More launches and
//! passes over x, so only there.

use crate::descriptors::BatchNormGeometry;
use crate::error::Result;
use crate::ops::batch_norm::{BatchNormGrads, BatchNormTrainOutput};
use crate::ops::conv2d::channel_sums;
use crate::tensor::Tensor;

/// Whether GPU tensor `x` is larger than one binding of its device.
pub(crate) fn beyond_one_binding(op: &'static str, x: &Tensor) -> Result<bool> {
    Ok(x.numel() > x.gpu_storage(op)?.context().max_binding_len())
}

/// x viewed as [N, C, S, 1], the layout the channel sums take.
fn as_planes(x: &Tensor, d: BatchNormGeometry) -> Result<Tensor> {
    x.reshape(&[d.n, d.c, d.s, 1])
}

/// A [C] tensor viewed as [1, C, 1, 1], to broadcast over [N, C, S, 1].
fn per_plane(t: &Tensor, d: BatchNormGeometry) -> Result<Tensor> {
    t.reshape(&[1, d.c, 1, 1])
}

/// inv_std·γ per channel (inv_std when there is no γ): what multiplies x − μ, and dy in the
/// backward.
fn gain(inv_std: &Tensor, gamma: Option<&Tensor>) -> Result<Tensor> {
    match gamma {
        Some(g) => inv_std.mul(g),
        None => Ok(inv_std.clone()),
    }
}

/// (x − μ)·inv_std·γ + β from the centred x, as [N, C, S, 1].
fn scale_and_shift(
    centered: &Tensor,
    inv_std: &Tensor,
    [gamma, beta]: [&Option<Tensor>; 2],
    d: BatchNormGeometry,
) -> Result<Tensor> {
    let y = centered.mul(&per_plane(&gain(inv_std, gamma.as_ref())?, d)?)?;
    match beta {
        Some(b) => y.add(&per_plane(b, d)?),
        None => Ok(y),
    }
}

/// `crate::ops::batch_norm::batch_norm_train` in parts: the mean, then the biased variance from the centred x
/// (two passes, as the kernel: no cancellation), then the normalisation.
pub(crate) fn train_in_parts(
    op: &'static str,
    x: &Tensor,
    d: BatchNormGeometry,
    affine: [&Option<Tensor>; 2],
    eps: f64,
) -> Result<BatchNormTrainOutput> {
    let m = d.m() as f64;
    let planes = as_planes(x, d)?;
    let mean = channel_sums(op, &planes)?.mul_scalar(1.0 / m)?;
    let centered = planes.sub(&per_plane(&mean, d)?)?;
    let var = channel_sums(op, &centered.square()?)?.mul_scalar(1.0 / m)?;
    let inv_std = var.add_scalar(eps)?.sqrt()?.recip()?;
    let var_unbiased = var.mul_scalar(m / (m - 1.0))?;
    let y = scale_and_shift(&centered, &inv_std, affine, d)?.reshape(x.shape())?;
    Ok(BatchNormTrainOutput { y, mean, inv_std, var_unbiased })
}

/// Both backwards in parts: `stats` are (mean, inv_std) in training (`eval_eps` None) or
/// (running_mean, running_var) in eval. dβ = Σ dy, dγ = Σ dy·(x − μ)·σ⁻¹, and
/// dx = (dy − Σdy/m − (x − μ)·k)·σ⁻¹·γ with k = Σ dy·(x − μ)·σ⁻²/m in training, dy·σ⁻¹·γ in eval.
pub(crate) fn backward_in_parts(
    op: &'static str,
    d: BatchNormGeometry,
    grad_y: &Tensor,
    x: &Tensor,
    [mean, stat]: [&Tensor; 2],
    gamma: Option<&Tensor>,
    eval_eps: Option<f64>,
) -> Result<BatchNormGrads> {
    let m = d.m() as f64;
    let inv_std = match eval_eps {
        None => stat.clone(),
        Some(eps) => stat.add_scalar(eps)?.sqrt()?.recip()?,
    };
    let dy = as_planes(grad_y, d)?;
    let centered = as_planes(x, d)?.sub(&per_plane(mean, d)?)?;
    let dbeta = channel_sums(op, &dy)?;
    let dy_centered = channel_sums(op, &dy.mul(&centered)?)?;
    let dgamma = dy_centered.mul(&inv_std)?;
    let gain = gain(&inv_std, gamma)?;
    let dx = match eval_eps {
        Some(_) => dy.mul(&per_plane(&gain, d)?)?,
        None => {
            let k = dy_centered.mul(&inv_std.square()?)?.mul_scalar(1.0 / m)?;
            let mean_dy = dbeta.mul_scalar(1.0 / m)?;
            dy.sub(&per_plane(&mean_dy, d)?)?.sub(&centered.mul(&per_plane(&k, d)?)?)?.mul(&per_plane(&gain, d)?)?
        }
    };
    Ok(BatchNormGrads { dx: dx.reshape(x.shape())?, dgamma, dbeta })
}

/// `crate::ops::batch_norm::batch_norm_eval` in parts: (x − running_mean)·σ⁻¹·γ + β, with
/// σ⁻¹ = 1/√(running_var + eps).
pub(crate) fn eval_in_parts(
    x: &Tensor,
    d: BatchNormGeometry,
    [running_mean, running_var]: [&Tensor; 2],
    affine: [&Option<Tensor>; 2],
    eps: f64,
) -> Result<Tensor> {
    let inv_std = running_var.add_scalar(eps)?.sqrt()?.recip()?;
    let centered = as_planes(x, d)?.sub(&per_plane(running_mean, d)?)?;
    scale_and_shift(&centered, &inv_std, affine, d)?.reshape(x.shape())
}
