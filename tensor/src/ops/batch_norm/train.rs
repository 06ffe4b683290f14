//! Training-mode batch norm: the forward from the batch's own statistics, beside its backward.

use gpu::kernels::batch_norm::{self as gpu_kernel, Affine, BatchStats, BnStats};

use super::{
    affine_values, backward_gpu, bn_dims, check_eps, check_same_device, check_same_shape, opt_slice,
    optional_per_channel, per_channel, reference_grads, vec_c, BatchNormGrads, BatchNormTrainOutput,
};
use crate::cpu::batch_norm as kernel;
use crate::descriptors::BatchNormGeometry;
use crate::dtype::{with_float_type, Float};
use crate::error::{shape_err, Result};
use crate::gpu_parts::batch_norm::{beyond_one_binding, train_in_parts};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::{run_gpu, Tensor};

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
            with_float_type!(x.dtype(), T => batch_norm_train_typed::<T>(&x, d, &gamma, &beta, eps))
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
            with_float_type!(x.dtype(), T => batch_norm_train_backward_typed::<T>(&gy, &x, d, &mean, &inv_std, &gamma))
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
