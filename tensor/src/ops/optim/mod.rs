//! In-place optimizer updates on tensors: `adam_update` (Adam and AdamW) and `sgd_update`.
//! Each checks that the parameter, its gradient and its state buffers agree in shape, dtype
//! and device, then runs ONE fused kernel per parameter: `cpu::optim` on the CPU, the
//! in-place `adam.wgsl` kernels on the GPU (on the parameter's own buffer, copied first only
//! when another tensor shares it, as on the CPU; once per buffer for a parameter larger than
//! one buffer may be, which lies in several).
//!
//! The `_unless_flagged` forms take a one-element flag ([`crate::ops::finite::non_finite_flag`])
//! and change nothing when it is nonzero. On the GPU the kernel reads the flag, so a training
//! step records its update without waiting for its finiteness check to come back to the host.
//!
//! `adam.rs` and `sgd.rs` hold the updates; this file the checks and the GPU buffer helpers they
//! share.

use gpu::GpuBuffer;

pub use crate::cpu::optim::{AdamHyper, SgdHyper};
use crate::device::same_device;
use crate::error::{shape_err, Result, TensorError};
use crate::storage::Storage;
use crate::tensor::Tensor;

mod adam;
mod sgd;

pub use adam::{adam_update, adam_update_unless_flagged};
pub use sgd::{sgd_update, sgd_update_unless_flagged};

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
