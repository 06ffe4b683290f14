//! Non-finite checks: whether tensors hold a NaN or ±∞, as the training loop's guard asks it.
//! `all_finite_each` answers on the host; `non_finite_flag` leaves its answer on the tensors'
//! device so that the optimizers' `_unless_flagged` updates can read it there, with no wait
//! for the GPU in the step (the no-sync check; `nn`'s `Optimizer::step_unless_non_finite`).

use std::sync::Arc;

use gpu::kernels::reduce::{self as gpu_kernel, FlagCheck, FLAG_INPUTS};
use gpu::{Context, GpuBuffer};

use crate::cpu::reduce as kernel;
use crate::dtype::with_float_type;
use crate::error::{gpu_err, Result, TensorError};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::Tensor;

impl Tensor {
    /// True when no element is NaN or ±∞ (see [`all_finite_each`]; on the GPU a host round trip).
    pub fn all_finite(&self) -> Result<bool> {
        Ok(all_finite_each(&[self])?.iter().all(|&finite| finite))
    }
}

/// For each tensor, whether none of its elements is NaN or ±∞. A CPU tensor costs one read
/// pass. The GPU tensors are checked on the device, each by one launch that sets its own slot
/// of a shared flag buffer, and the flags come back in one read: one host round trip however
/// many tensors there are (one per GPU context when they live on several).
pub fn all_finite_each(tensors: &[&Tensor]) -> Result<Vec<bool>> {
    const OP: &str = "all_finite";
    let Some(first) = tensors.first() else { return Ok(Vec::new()) };
    let _profile = profile::scope(OpFamily::Reduce, OP, first);
    let mut finite = vec![true; tensors.len()];
    let mut on_gpu: Vec<(usize, Tensor)> = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        let x = t.contiguous()?;
        match x.storage() {
            Storage::Cpu(_) => finite[i] = with_float_type!(x.dtype(), T => kernel::all_finite(x.cpu_slice::<T>()?)),
            Storage::Reference(_) => finite[i] = reference::values(&x)?.iter().all(|v| v.is_finite()),
            Storage::Gpu(_) => on_gpu.push((i, x)),
        }
    }
    // One flag buffer and one read per GPU context (tensors on several GPUs: one each).
    while let Some(Storage::Gpu(g)) = on_gpu.first().map(|(_, x)| x.storage()) {
        let ctx = Arc::clone(g.context());
        let on_ctx = |x: &Tensor| matches!(x.storage(), Storage::Gpu(g) if Arc::ptr_eq(g.context(), &ctx));
        let (here, rest): (Vec<_>, Vec<_>) = on_gpu.into_iter().partition(|(_, x)| on_ctx(x));
        let flags = flag_on_gpu(OP, &ctx, here.iter().map(|(_, x)| x), here.len(), |slot| slot)?;
        let flagged = ctx.read_u32(&flags).map_err(gpu_err(OP))?;
        for ((i, _), flag) in here.iter().zip(flagged) {
            finite[*i] = flag == 0;
        }
        on_gpu = rest;
    }
    Ok(finite)
}

/// A one-element tensor on the tensors' device, in the first one's dtype: 1 when an element
/// of any of them is NaN or ±∞, else 0. On the GPU it is computed there and not read back, so
/// the caller may pass it on to a kernel that depends on it (the optimizers'
/// `_unless_flagged` updates) and read it later with whatever else it reads.
// tensors: any shapes, one device → [1]
pub fn non_finite_flag(tensors: &[&Tensor]) -> Result<Tensor> {
    const OP: &str = "non_finite_flag";
    let Some(first) = tensors.first() else {
        return Err(TensorError::Invalid { op: OP, msg: "no tensors to check".into() });
    };
    let _profile = profile::scope(OpFamily::Reduce, OP, first);
    crate::device::same_device(OP, &tensors.iter().map(|t| t.device()).collect::<Vec<_>>())?;
    let Storage::Gpu(g) = first.storage() else {
        let finite = all_finite_each(tensors)?.iter().all(|&f| f);
        let flag = Tensor::from_vec(vec![if finite { 0.0 } else { 1.0 }], &[1])?.to_dtype(first.dtype())?;
        return flag.to_device(&first.device());
    };
    let ctx = Arc::clone(g.context());
    let dense = tensors.iter().map(|t| t.contiguous()).collect::<Result<Vec<_>>>()?;
    let flag = flag_on_gpu(OP, &ctx, dense.iter(), 1, |_| 0)?;
    Ok(Tensor::from_gpu(flag, ctx, &[1]))
}

/// A zeroed buffer of `slots` flags on `ctx` in which slot `slot(i)` is set when the `i`-th of
/// `tensors` (dense, on `ctx`) holds a NaN or ±∞ (`flag_non_finite` in reduce.wgsl).
fn flag_on_gpu<'t>(
    op: &'static str,
    ctx: &Context,
    tensors: impl Iterator<Item = &'t Tensor>,
    slots: usize,
    slot: impl Fn(usize) -> usize,
) -> Result<GpuBuffer> {
    let flags = ctx.zeros(slots).map_err(gpu_err(op))?;
    let mut checks = Vec::new();
    for (i, x) in tensors.enumerate() {
        let Storage::Gpu(g) = x.storage() else { continue };
        // x is dense: its elements fill its chunks in order (or start its one buffer).
        let mut left = x.numel();
        for chunk in g.chunks() {
            let n = left.min(chunk.len());
            if n == 0 {
                break;
            }
            checks.push(FlagCheck { x: chunk, len: n, slot: slot(i) });
            left -= n;
        }
    }
    // Four buffers a launch: the optimizer's packed gradients and the loss, one or two.
    for group in checks.chunks(FLAG_INPUTS) {
        gpu_kernel::flag_non_finite(ctx, group, &flags).map_err(gpu_err(op))?;
    }
    Ok(flags)
}
