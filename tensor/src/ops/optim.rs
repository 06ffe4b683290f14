//! In-place optimizer updates on tensors: `adam_update` (Adam and AdamW) and `sgd_update`.
//! Each checks that the parameter, its gradient and its state buffers agree in shape, dtype
//! and device, then runs ONE fused kernel per parameter: `cpu::optim` on the CPU, the
//! in-place `adam.wgsl` kernels on the GPU (on the parameter's own buffer, copied first only
//! when another tensor shares it, as on the CPU; once per buffer for a parameter larger than
//! one buffer may be, which lies in several).
//!
//! The `_unless_flagged` forms take a one-element flag ([`crate::ops::reduce::non_finite_flag`])
//! and change nothing when it is nonzero. On the GPU the kernel reads the flag, so a training
//! step records its update without waiting for its finiteness check to come back to the host.

use std::sync::Arc;

use gpu::kernels::adam::{
    adam_step, adam_step_unless_flagged, sgd_step, sgd_step_unless_flagged, AdamConfig, AdamState, SgdConfig,
};

use gpu::GpuBuffer;

use crate::cpu::optim as kernel;
pub use crate::cpu::optim::{AdamHyper, SgdHyper};
use crate::device::same_device;
use crate::dtype::{DType, Float};
use crate::error::{gpu_err, invalid, shape_err, Result, TensorError};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Errors unless every named tensor has the parameter's shape and dtype.
fn check_like_param(op: &'static str, param: &Tensor, others: &[(&str, &Tensor)]) -> Result<()> {
    for (name, t) in others {
        if t.shape() != param.shape() {
            return shape_err(
                op,
                format!("{name} has shape {:?}, but the parameter has shape {:?}", t.shape(), param.shape()),
            );
        }
        if t.dtype() != param.dtype() {
            return Err(TensorError::DType { op, expected: param.dtype(), got: t.dtype() });
        }
    }
    let mut devices = vec![param.device()];
    devices.extend(others.iter().map(|(_, t)| t.device()));
    same_device(op, &devices)?;
    Ok(())
}

/// One Adam/AdamW step, in place: `param`, `m` (first moment) and `v` (second moment) are
/// updated from `grad`. All four tensors have the same shape and dtype; `h.step` ≥ 1.
// param, grad, m, v: any shape, all equal
pub fn adam_update(param: &mut Tensor, grad: &Tensor, m: &mut Tensor, v: &mut Tensor, h: &AdamHyper) -> Result<()> {
    adam_update_with(param, grad, m, v, h, None)
}

/// [`adam_update`], taking effect only if `flag` (one element, on the parameter's device)
/// is zero.
// param, grad, m, v: any shape, all equal; flag: [1]
pub fn adam_update_unless_flagged(
    param: &mut Tensor,
    grad: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    h: &AdamHyper,
    flag: &Tensor,
) -> Result<()> {
    adam_update_with(param, grad, m, v, h, Some(flag))
}

/// Errors unless `flag` (if any) is one element of the parameter's dtype on its device;
/// whether the update is vetoed here: a set flag on the CPU (on the GPU the kernel reads it).
fn vetoed_on_host(op: &'static str, param: &Tensor, flag: Option<&Tensor>) -> Result<bool> {
    let Some(flag) = flag else { return Ok(false) };
    if flag.numel() != 1 {
        return shape_err(op, format!("the flag has shape {:?}; it must hold one element", flag.shape()));
    }
    if flag.dtype() != param.dtype() {
        return Err(TensorError::DType { op, expected: param.dtype(), got: flag.dtype() });
    }
    same_device(op, &[param.device(), flag.device()])?;
    match flag.storage() {
        Storage::Cpu(_) | Storage::Reference(_) => Ok(flag.to_vec_f64()?[0] != 0.0),
        Storage::Gpu(_) => Ok(false),
    }
}

fn adam_update_with(
    param: &mut Tensor,
    grad: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    h: &AdamHyper,
    flag: Option<&Tensor>,
) -> Result<()> {
    let _profile = profile::scope(OpFamily::Optimizer, "adam_update", param);
    fn run<T: Float>(param: &mut Tensor, grad: &Tensor, m: &mut Tensor, v: &mut Tensor, h: &AdamHyper) -> Result<()> {
        let g = grad.contiguous()?;
        kernel::adam_update(
            param.cpu_slice_mut::<T>()?,
            g.cpu_slice::<T>()?,
            m.cpu_slice_mut::<T>()?,
            v.cpu_slice_mut::<T>()?,
            h,
        );
        Ok(())
    }
    let op = "adam_update";
    check_like_param(op, param, &[("grad", grad), ("exp_avg", m), ("exp_avg_sq", v)])?;
    if h.step == 0 {
        return invalid(op, "step counts from 1 (the bias corrections 1 − βᵗ are 0 at t = 0)");
    }
    if vetoed_on_host(op, param, flag)? {
        return Ok(());
    }
    match param.storage() {
        Storage::Cpu(_) => match param.dtype() {
            DType::F32 => run::<f32>(param, grad, m, v, h),
            DType::F64 => run::<f64>(param, grad, m, v, h),
        },
        Storage::Reference(_) => {
            let (mut pv, mut mv, mut vv) = (reference::values(param)?, reference::values(m)?, reference::values(v)?);
            reference::optim::adam(&mut pv, &reference::values(grad)?, &mut mv, &mut vv, h);
            for (t, values) in [(param, pv), (m, mv), (v, vv)] {
                *t = reference::tensor(values, t.shape(), t.dtype());
            }
            Ok(())
        }
        Storage::Gpu(_) => adam_update_gpu(param, grad, m, v, h, flag),
    }
}

// param, grad, m, v: [n] on one GPU; param, m, v updated in place; flag: [1]
fn adam_update_gpu(
    param: &mut Tensor,
    grad: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    h: &AdamHyper,
    flag: Option<&Tensor>,
) -> Result<()> {
    const OP: &str = "adam_update";
    let ctx = Arc::clone(param.gpu_storage(OP)?.context());
    let g = grad.gpu_dense_as_allocated(OP)?;
    // Sole ownership of dense buffers first (m and v often start as one shared zero tensor).
    for t in [&mut *param, &mut *m, &mut *v] {
        in_place_as_allocated(t, OP)?;
    }
    let cfg = AdamConfig {
        lr: h.lr as f32,
        beta1: h.beta1 as f32,
        beta2: h.beta2 as f32,
        eps: h.eps as f32,
        weight_decay: h.weight_decay as f32,
        decoupled: h.decoupled_weight_decay,
        step: h.step,
    };
    let flag = flag.map(|f| f.gpu_dense(OP)).transpose()?;
    let flag = flag.as_ref().map(|f| f.gpu_buffer(OP)).transpose()?;
    let (gs, ms, vs) = (chunks(&g, OP)?, chunks(m, OP)?, chunks(v, OP)?);
    for (i, param) in chunks(param, OP)?.iter().enumerate() {
        let state = AdamState { param, grad: &gs[i], m: &ms[i], v: &vs[i] };
        match flag {
            None => adam_step(&ctx, &cfg, &state),
            Some(flag) => adam_step_unless_flagged(&ctx, &cfg, &state, flag),
        }
        .map_err(gpu_err(OP))?;
    }
    Ok(())
}

/// Makes an in-place operand the sole owner of dense buffers laid out as a fresh tensor of its
/// shape is, so that operands of one shape pair up chunk by chunk (a tensor larger than one
/// buffer lies in several).
fn in_place_as_allocated(t: &mut Tensor, op: &'static str) -> Result<()> {
    t.gpu_storage_mut(op)?;
    *t = t.gpu_dense_as_allocated(op)?;
    Ok(())
}

/// The buffers of a GPU tensor, in order.
fn chunks<'t>(t: &'t Tensor, op: &'static str) -> Result<&'t [GpuBuffer]> {
    Ok(t.gpu_storage(op)?.chunks())
}

/// One SGD step, in place. `momentum_buffer` must be given (shaped like `param`) when
/// `h.momentum` ≠ 0 and is updated; plain SGD passes `None`.
// param, grad, momentum_buffer: any shape, all equal
pub fn sgd_update(param: &mut Tensor, grad: &Tensor, momentum_buffer: Option<&mut Tensor>, h: &SgdHyper) -> Result<()> {
    sgd_update_with(param, grad, momentum_buffer, h, None)
}

/// [`sgd_update`], taking effect only if `flag` (one element, on the parameter's device) is
/// zero.
// param, grad, momentum_buffer: any shape, all equal; flag: [1]
pub fn sgd_update_unless_flagged(
    param: &mut Tensor,
    grad: &Tensor,
    momentum_buffer: Option<&mut Tensor>,
    h: &SgdHyper,
    flag: &Tensor,
) -> Result<()> {
    sgd_update_with(param, grad, momentum_buffer, h, Some(flag))
}

fn sgd_update_with(
    param: &mut Tensor,
    grad: &Tensor,
    momentum_buffer: Option<&mut Tensor>,
    h: &SgdHyper,
    flag: Option<&Tensor>,
) -> Result<()> {
    let _profile = profile::scope(OpFamily::Optimizer, "sgd_update", param);
    fn run<T: Float>(param: &mut Tensor, grad: &Tensor, buf: Option<&mut Tensor>, h: &SgdHyper) -> Result<()> {
        let g = grad.contiguous()?;
        let buf = match buf {
            Some(b) => Some(b.cpu_slice_mut::<T>()?),
            None => None,
        };
        kernel::sgd_update(param.cpu_slice_mut::<T>()?, g.cpu_slice::<T>()?, buf, h);
        Ok(())
    }
    let op = "sgd_update";
    match &momentum_buffer {
        Some(b) => check_like_param(op, param, &[("grad", grad), ("momentum_buffer", b)])?,
        None => check_like_param(op, param, &[("grad", grad)])?,
    }
    if h.momentum != 0.0 && momentum_buffer.is_none() {
        return invalid(op, format!("momentum {} needs a momentum buffer", h.momentum));
    }
    if vetoed_on_host(op, param, flag)? {
        return Ok(());
    }
    match param.storage() {
        Storage::Cpu(_) => match param.dtype() {
            DType::F32 => run::<f32>(param, grad, momentum_buffer, h),
            DType::F64 => run::<f64>(param, grad, momentum_buffer, h),
        },
        Storage::Reference(_) => {
            let mut pv = reference::values(param)?;
            let mut buf = momentum_buffer.as_deref().map(reference::values).transpose()?;
            reference::optim::sgd(&mut pv, &reference::values(grad)?, buf.as_deref_mut(), h);
            if let (Some(t), Some(values)) = (momentum_buffer, buf) {
                *t = reference::tensor(values, t.shape(), t.dtype());
            }
            *param = reference::tensor(pv, param.shape(), param.dtype());
            Ok(())
        }
        Storage::Gpu(_) => sgd_update_gpu(param, grad, momentum_buffer, h, flag),
    }
}

// param, grad, momentum_buffer: [n] on one GPU; param and the buffer updated in place; flag: [1]
fn sgd_update_gpu(
    param: &mut Tensor,
    grad: &Tensor,
    momentum_buffer: Option<&mut Tensor>,
    h: &SgdHyper,
    flag: Option<&Tensor>,
) -> Result<()> {
    const OP: &str = "sgd_update";
    let ctx = Arc::clone(param.gpu_storage(OP)?.context());
    let g = grad.gpu_dense_as_allocated(OP)?;
    in_place_as_allocated(param, OP)?;
    let buf = match momentum_buffer {
        Some(b) => {
            in_place_as_allocated(b, OP)?;
            Some(&*b)
        }
        None => None,
    };
    let cfg = SgdConfig {
        lr: h.lr as f32,
        momentum: h.momentum as f32,
        dampening: h.dampening as f32,
        weight_decay: h.weight_decay as f32,
        nesterov: h.nesterov,
        first_step: h.first_step,
    };
    let flag = flag.map(|f| f.gpu_dense(OP)).transpose()?;
    let flag = flag.as_ref().map(|f| f.gpu_buffer(OP)).transpose()?;
    let bufs = buf.map(|b| chunks(b, OP)).transpose()?;
    let gs = chunks(&g, OP)?;
    for (i, param) in chunks(param, OP)?.iter().enumerate() {
        let (grad, buf) = (&gs[i], bufs.map(|b| &b[i]));
        match flag {
            None => sgd_step(&ctx, &cfg, param, grad, buf),
            Some(flag) => sgd_step_unless_flagged(&ctx, &cfg, param, grad, buf, flag),
        }
        .map_err(gpu_err(OP))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hyper() -> AdamHyper {
        AdamHyper { lr: 0.1, ..AdamHyper::default() }
    }

    #[test]
    fn adam_update_changes_the_parameter_but_not_a_tensor_sharing_its_storage() {
        let mut p = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
        let before = p.clone();
        let g = Tensor::from_vec(vec![1.0f32, -1.0], &[2]).unwrap();
        let (mut m, mut v) = (p.zeros_like().unwrap(), p.zeros_like().unwrap());
        adam_update(&mut p, &g, &mut m, &mut v, &hyper()).unwrap();
        assert_eq!(before.to_vec_f32().unwrap(), vec![1.0, 2.0]);
        let got = p.to_vec_f32().unwrap();
        assert!((got[0] - 0.9).abs() < 1e-6 && (got[1] - 2.1).abs() < 1e-6, "{got:?}");
    }

    #[test]
    fn adam_update_rejects_a_gradient_of_another_shape_naming_both() {
        let mut p = Tensor::zeros(&[2, 3], DType::F32);
        let g = Tensor::zeros(&[3, 2], DType::F32);
        let (mut m, mut v) = (p.zeros_like().unwrap(), p.zeros_like().unwrap());
        let msg = adam_update(&mut p, &g, &mut m, &mut v, &hyper()).unwrap_err().to_string();
        assert!(msg.contains("[3, 2]") && msg.contains("[2, 3]"), "{msg}");
    }

    #[test]
    fn adam_update_rejects_mixed_dtypes() {
        let mut p = Tensor::zeros(&[2], DType::F32);
        let g = Tensor::zeros(&[2], DType::F64);
        let (mut m, mut v) = (p.zeros_like().unwrap(), p.zeros_like().unwrap());
        assert!(matches!(adam_update(&mut p, &g, &mut m, &mut v, &hyper()), Err(TensorError::DType { .. })));
    }

    #[test]
    fn adam_update_reads_a_transposed_gradient_through_its_layout() {
        let mut p = Tensor::zeros(&[3, 2], DType::F64);
        let g = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, -4.0, -5.0, -6.0], &[2, 3]).unwrap().transpose(0, 1).unwrap();
        let (mut m, mut v) = (p.zeros_like().unwrap(), p.zeros_like().unwrap());
        adam_update(&mut p, &g, &mut m, &mut v, &hyper()).unwrap();
        // First step: each weight moves by −lr·sign(g) (up to eps), in g's logical order.
        let signs: Vec<f64> = p.to_vec_f64().unwrap().iter().map(|x| (x / 0.1).round()).collect();
        assert_eq!(signs, vec![-1.0, 1.0, -1.0, 1.0, -1.0, 1.0]);
    }

    #[test]
    fn sgd_update_with_momentum_and_no_buffer_is_an_error() {
        let mut p = Tensor::zeros(&[2], DType::F32);
        let g = p.zeros_like().unwrap();
        let h =
            SgdHyper { lr: 0.1, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false, first_step: true };
        assert!(sgd_update(&mut p, &g, None, &h).is_err());
    }
}
