//! SGD with optional momentum: one fused, in-place update of a parameter (and its momentum
//! buffer).

use std::sync::Arc;

use gpu::kernels::adam::{sgd_step, sgd_step_unless_flagged};

use super::{check_like_param, chunks, in_place_as_allocated, vetoed_on_host, SgdHyper};
use crate::cpu::optim as kernel;
use crate::dtype::{with_float_type, Float};
use crate::error::{gpu_err, invalid, Result};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::Tensor;

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
        Storage::Cpu(_) => with_float_type!(param.dtype(), T => run::<T>(param, grad, momentum_buffer, h)),
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
        Storage::Gpu(_) => {
            // param, grad, momentum_buffer: [n] on one GPU; param and the buffer updated in place; flag: [1]
            let ctx = Arc::clone(param.gpu_storage(op)?.context());
            let g = grad.gpu_dense_as_allocated(op)?;
            in_place_as_allocated(param, op)?;
            let buf = match momentum_buffer {
                Some(b) => {
                    in_place_as_allocated(b, op)?;
                    Some(&*b)
                }
                None => None,
            };
            let flag = flag.map(|f| f.gpu_dense(op)).transpose()?;
            let flag = flag.as_ref().map(|f| f.gpu_buffer(op)).transpose()?;
            let bufs = buf.map(|b| chunks(b, op)).transpose()?;
            let gs = chunks(&g, op)?;
            for (i, param) in chunks(param, op)?.iter().enumerate() {
                let (grad, buf) = (&gs[i], bufs.map(|b| &b[i]));
                match flag {
                    None => sgd_step(&ctx, h, param, grad, buf),
                    Some(flag) => sgd_step_unless_flagged(&ctx, h, param, grad, buf, flag),
                }
                .map_err(gpu_err(op))?;
            }
            Ok(())
        }
    }
}
