//! Adam and AdamW: one fused, in-place update of a parameter and its two moments.

use std::sync::Arc;

use gpu::kernels::adam::{adam_step, adam_step_unless_flagged, AdamState};

use super::{check_like_param, chunks, in_place_as_allocated, vetoed_on_host, AdamHyper};
use crate::cpu::optim as kernel;
use crate::dtype::{with_float_type, Float};
use crate::error::{gpu_err, invalid, Result};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::Tensor;

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
        Storage::Cpu(_) => with_float_type!(param.dtype(), T => run::<T>(param, grad, m, v, h)),
        Storage::Reference(_) => {
            let (mut pv, mut mv, mut vv) = (reference::values(param)?, reference::values(m)?, reference::values(v)?);
            reference::optim::adam(&mut pv, &reference::values(grad)?, &mut mv, &mut vv, h);
            for (t, values) in [(param, pv), (m, mv), (v, vv)] {
                *t = reference::tensor(values, t.shape(), t.dtype());
            }
            Ok(())
        }
        Storage::Gpu(_) => {
            // param, grad, m, v: [n] on one GPU; param, m, v updated in place; flag: [1]
            let ctx = Arc::clone(param.gpu_storage(op)?.context());
            let g = grad.gpu_dense_as_allocated(op)?;
            // Sole ownership of dense buffers first (m and v often start as one shared zero tensor).
            for t in [&mut *param, &mut *m, &mut *v] {
                in_place_as_allocated(t, op)?;
            }
            let flag = flag.map(|f| f.gpu_dense(op)).transpose()?;
            let flag = flag.as_ref().map(|f| f.gpu_buffer(op)).transpose()?;
            let (gs, ms, vs) = (chunks(&g, op)?, chunks(m, op)?, chunks(v, op)?);
            for (i, param) in chunks(param, op)?.iter().enumerate() {
                let state = AdamState { param, grad: &gs[i], m: &ms[i], v: &vs[i] };
                match flag {
                    None => adam_step(&ctx, h, &state),
                    Some(flag) => adam_step_unless_flagged(&ctx, h, &state, flag),
                }
                .map_err(gpu_err(op))?;
            }
            Ok(())
        }
    }
}
