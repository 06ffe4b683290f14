//! Max pooling: the forward, which returns its argmax positions, beside the backward that
//! scatters the gradient back to them.

use std::sync::Arc;

use gpu::kernels::pool as gpu_kernel;

use super::{pool_geom, GpuIndices, PoolIndices};
use crate::cpu::pool as kernel;
use crate::descriptors::Pool2dGeometry;
use crate::device::same_device;
use crate::dtype::{with_float_type, Float};
use crate::error::{invalid, shape_err, Result};
use crate::gpu_parts::{run_gpu_in_parts, Cut};
use crate::ops::checks::nchw;
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::{gpu_alloc, Tensor};

/// Max pool over windows `kernel` = [KH, KW] moved by `stride`, with implicit −∞ `padding`
/// (each at most half the kernel). Output [N, C, OH, OW], OH = ⌊(H + 2·PH − KH)/SH⌋ + 1.
///
/// Also returns the argmax of every output (row-major over [N, C, OH, OW]) as a flat index
/// h·W + w into that output's own [H, W] input plane, like PyTorch's `return_indices=True`,
/// on x's device; pass it to [`max_pool2d_backward`].
// x: [N, C, H, W] → y: [N, C, OH, OW], indices: N·C·OH·OW plane-relative positions
pub fn max_pool2d(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<(Tensor, PoolIndices)> {
    const OP: &str = "max_pool2d";
    let _profile = profile::scope(OpFamily::Pool, OP, x);
    let (g, shape) = pool_geom(OP, x.shape(), kernel, stride, padding)?;
    match x.storage() {
        Storage::Cpu(_) => {
            let x = x.contiguous()?;
            with_float_type!(x.dtype(), T => max_pool2d_typed::<T>(&x, &g, &shape))
        }
        Storage::Reference(_) => {
            let (y, argmax) = reference::pool::max_pool2d(&reference::values(x)?, &g);
            Ok((reference::tensor(y, &shape, x.dtype()), PoolIndices::Reference(argmax)))
        }
        Storage::Gpu(s) => {
            // The indices are u32, not a tensor: allocated here and kept beside the output.
            let ctx = Arc::clone(s.context());
            let indices = gpu_alloc(&ctx, g.y_len(), OP)?;
            let plane = g.oh * g.ow;
            let [y] =
                run_gpu_in_parts(OP, g.planes, &[(Some(x), Cut::Rows)], [(&shape, Cut::Rows)], |ctx, part, i, [y]| {
                    // The indices are cut like y (same rows, so the same alignment).
                    let idx = ctx.window(&indices, part.first * plane, part.rows * plane)?;
                    gpu_kernel::max_forward(ctx, &Pool2dGeometry { planes: part.rows, ..g }, i[0].expect("x"), y, &idx)
                })?;
            let indices = GpuIndices { buffer: Arc::new(indices), ctx, geom: g };
            Ok((y, PoolIndices::Gpu(indices)))
        }
    }
}

fn max_pool2d_typed<T: Float>(x: &Tensor, g: &Pool2dGeometry, shape: &[usize]) -> Result<(Tensor, PoolIndices)> {
    let (y, argmax) = kernel::max_pool2d_forward(x.cpu_slice::<T>()?, g);
    Ok((Tensor::from_vec(y, shape)?, PoolIndices::Cpu(argmax)))
}

/// Max pool backward: scatter-adds each output gradient to the input element it came from.
/// `indices` is what [`max_pool2d`] returned (on grad_y's device), `input_shape` the
/// forward's [N, C, H, W]. Host indices are range-checked; GPU ones come from the forward
/// and are trusted (checking them would mean reading them back).
// grad_y: [N, C, OH, OW], indices: N·C·OH·OW → grad_x: [N, C, H, W]
pub fn max_pool2d_backward(grad_y: &Tensor, indices: &PoolIndices, input_shape: &[usize]) -> Result<Tensor> {
    const OP: &str = "max_pool2d_backward";
    let _profile = profile::scope(OpFamily::Pool, OP, grad_y);
    let [n, c, h, w] = nchw(OP, "input_shape", input_shape)?;
    let [gn, gc, oh, ow] = nchw(OP, "grad_y", grad_y.shape())?;
    if (gn, gc) != (n, c) {
        return shape_err(OP, format!("grad_y {:?} and input {input_shape:?} differ in [N, C]", grad_y.shape()));
    }
    if indices.len() != grad_y.numel() {
        return shape_err(
            OP,
            format!("{} indices for grad_y of shape {:?} ({} elements)", indices.len(), grad_y.shape(), grad_y.numel()),
        );
    }
    same_device(OP, &[grad_y.device(), indices.device()])?;
    match indices {
        PoolIndices::Cpu(indices) | PoolIndices::Reference(indices) => {
            if let Some(&bad) = indices.iter().find(|&&i| i >= h * w) {
                return invalid(OP, format!("index {bad} is outside an input plane of {h}×{w} = {} elements", h * w));
            }
            if grad_y.device().is_reference() {
                let dx = reference::pool::max_pool2d_backward(&reference::values(grad_y)?, indices, [oh * ow, h * w]);
                return Ok(reference::tensor(dx, input_shape, grad_y.dtype()));
            }
            let gy = grad_y.contiguous()?;
            with_float_type!(gy.dtype(), T => Tensor::from_vec(
                kernel::max_pool2d_backward(gy.cpu_slice::<T>()?, indices, oh * ow, h * w),
                input_shape,
            ))
        }
        PoolIndices::Gpu(idx) => {
            let gg = idx.geom;
            if (gg.planes, gg.h, gg.w, gg.oh, gg.ow) != (n * c, h, w, oh, ow) {
                return shape_err(
                    OP,
                    format!(
                        "the indices come from a max pool of {} planes of {}×{} to {}×{}, not of input {input_shape:?} to grad_y {:?}",
                        gg.planes, gg.h, gg.w, gg.oh, gg.ow, grad_y.shape()
                    ),
                );
            }
            let plane = oh * ow;
            let inputs = [(Some(grad_y), Cut::Rows)];
            let [dx] = run_gpu_in_parts(OP, gg.planes, &inputs, [(input_shape, Cut::Rows)], |ctx, part, i, [dx]| {
                let indices = ctx.window(&idx.buffer, part.first * plane, part.rows * plane)?;
                let g = Pool2dGeometry { planes: part.rows, ..gg };
                gpu_kernel::max_backward(ctx, &g, i[0].expect("grad_y"), &indices, dx)
            })?;
            Ok(dx)
        }
    }
}
