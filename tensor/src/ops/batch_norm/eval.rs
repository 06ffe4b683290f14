//! Eval-mode batch norm: the forward from the running statistics, beside its backward.

use gpu::kernels::batch_norm::{self as gpu_kernel, Affine, BnStats};

use super::{
    affine_values, backward_gpu, bn_dims, check_eps, check_same_device, check_same_shape, opt_slice,
    optional_per_channel, per_channel, reference_grads, vec_c, BatchNormGrads,
};
use crate::cpu::batch_norm as kernel;
use crate::descriptors::BatchNormGeometry;
use crate::dtype::{with_float_type, Float};
use crate::error::Result;
use crate::gpu_parts::batch_norm::{beyond_one_binding, eval_in_parts};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::{run_gpu, Tensor};

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
            with_float_type!(x.dtype(), T => batch_norm_eval_typed::<T>(&x, d, &rm, &rv, &gamma, &beta, eps))
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
            with_float_type!(x.dtype(), T => batch_norm_eval_backward_typed::<T>(&gy, &x, d, &rm, &rv, &gamma, eps))
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
