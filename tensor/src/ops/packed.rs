//! Packed tensors: several GPU tensors in one device buffer, each at an aligned offset, so
//! that an element-wise pass over all of them (a multi-tensor optimizer step, a check for
//! non-finite gradients) is one launch over the whole buffer instead of one launch per tensor.
//! PyTorch's fused optimizers reach the same end with lists of tensor pointers; a WGSL kernel
//! binds buffers, not lists, so here the tensors share a buffer instead.
//!
//! A packed tensor is an ordinary GPU tensor: every op reads and writes it as it would any
//! other (its storage is a range of the shared buffer, bound at its own offset).
//! [`packed_whole`] gives the flat tensor over the whole buffer; an in-place update of it is
//! seen by every tensor of the pack.

use std::sync::Arc;

use crate::error::{gpu_err, Result, TensorError};
use crate::profile::{self, OpFamily};
use crate::storage::Storage;
use crate::tensor::Tensor;

/// The GPU context shared by all of `tensors` (an error names `op` and what was wrong).
fn one_context(op: &'static str, tensors: &[&Tensor]) -> Result<Arc<gpu::Context>> {
    let mut ctx: Option<&Arc<gpu::Context>> = None;
    for t in tensors {
        let Storage::Gpu(g) = t.storage() else {
            return Err(TensorError::Device { op, msg: "packing is for GPU tensors; got a CPU one".into() });
        };
        match ctx {
            Some(c) if !Arc::ptr_eq(c, g.context()) => {
                return Err(TensorError::Device { op, msg: "the GPU tensors live on different GPU contexts".into() });
            }
            _ => ctx = Some(g.context()),
        }
    }
    ctx.cloned().ok_or_else(|| TensorError::Invalid { op, msg: "nothing to pack".into() })
}

/// Whether [`pack`] of `tensors` fits one buffer of their GPU context (max_buffer_size; false
/// for tensors not all on one GPU context): parameters larger together step one by one.
pub fn fits_one_pack(tensors: &[&Tensor]) -> bool {
    let Ok(ctx) = one_context("pack", tensors) else { return false };
    let lens: Vec<usize> = tensors.iter().map(|t| t.numel()).collect();
    ctx.packed_len(&lens) <= ctx.max_buffer_len()
}

/// Copies of `tensors` (GPU, one context), packed into one buffer, same shapes, in order.
/// The padding between them is zero, so a pass over [`packed_whole`] sees only their
/// elements and zeros.
pub fn pack(tensors: &[&Tensor]) -> Result<Vec<Tensor>> {
    const OP: &str = "pack";
    let Some(first) = tensors.first() else { return Ok(Vec::new()) };
    let _profile = profile::scope(OpFamily::Copy, OP, first);
    let packed = zeros_packed_like(tensors)?;
    let Some(Storage::Gpu(first)) = packed.first().map(|t| t.storage()) else { return Ok(packed) };
    let ctx = first.context();
    for (src, dst) in tensors.iter().zip(&packed) {
        let src = src.gpu_dense(OP)?;
        let from = ctx.window(src.gpu_buffer(OP)?, 0, src.numel()).map_err(gpu_err(OP))?;
        ctx.copy(&from, dst.gpu_buffer(OP)?).map_err(gpu_err(OP))?;
    }
    Ok(packed)
}

/// Zero tensors shaped like `tensors` (GPU, one context), packed into one buffer, in order.
pub fn zeros_packed_like(tensors: &[&Tensor]) -> Result<Vec<Tensor>> {
    const OP: &str = "zeros_packed_like";
    let ctx = one_context(OP, tensors)?;
    let lens: Vec<usize> = tensors.iter().map(|t| t.numel()).collect();
    let buffers = ctx.alloc_packed(&lens).map_err(gpu_err(OP))?;
    let refs: Vec<&gpu::GpuBuffer> = buffers.iter().collect();
    if let Some(whole) = ctx.packed_whole(&refs) {
        ctx.clear(&whole).map_err(gpu_err(OP))?;
    }
    Ok(buffers.into_iter().zip(tensors).map(|(b, t)| Tensor::from_gpu(b, Arc::clone(&ctx), t.shape())).collect())
}

/// The flat tensor `[total]` over the whole buffer of a pack, padding included, when
/// `tensors` are, in order, all the tensors one [`pack`] or [`zeros_packed_like`] made, each
/// still a dense view of its own range. `None` for anything else (a CPU tensor, a tensor
/// copied out of the pack, a subset, another order).
pub fn packed_whole(tensors: &[&Tensor]) -> Option<Tensor> {
    let (ctx, buffers) = packed_buffers(tensors)?;
    ctx.packed_whole(&buffers).map(|whole| flat(whole, ctx))
}

/// The flat tensor `[len]` from the first of `tensors` to the end of the last, padding
/// included, when they are, in order, consecutive tensors of one pack, each still a dense
/// view of its own range: laid out as [`pack`] lays out copies of them, so an element-wise
/// pass may pair the two (`gpu::Context::packed_span`). `None` for anything else.
pub fn packed_span(tensors: &[&Tensor]) -> Option<Tensor> {
    let (ctx, buffers) = packed_buffers(tensors)?;
    ctx.packed_span(&buffers).map(|span| flat(span, ctx))
}

/// The context and buffers of `tensors` when each is a GPU tensor that is a dense view of a
/// whole buffer of its own (as a packed tensor is of its range).
fn packed_buffers<'a>(tensors: &[&'a Tensor]) -> Option<(&'a Arc<gpu::Context>, Vec<&'a gpu::GpuBuffer>)> {
    let mut buffers = Vec::with_capacity(tensors.len());
    let mut ctx = None;
    for t in tensors {
        let Storage::Gpu(g) = t.storage() else { return None };
        let buffer = g.single_buffer()?;
        let dense = t.is_contiguous() && t.layout().offset == 0 && buffer.len() == t.numel();
        if !dense {
            return None;
        }
        ctx = Some(g.context());
        buffers.push(buffer);
    }
    Some((ctx?, buffers))
}

/// `buffer` as a tensor `[len]`.
fn flat(buffer: gpu::GpuBuffer, ctx: &Arc<gpu::Context>) -> Tensor {
    let len = buffer.len();
    Tensor::from_gpu(buffer, Arc::clone(ctx), &[len])
}
