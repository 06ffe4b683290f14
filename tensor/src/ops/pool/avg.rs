//! Average pooling over windows (count_include_pad = true) and over the whole plane (global),
//! each beside its backward.

use gpu::kernels::pool as gpu_kernel;

use super::{check_grad, pool_geom};
use crate::cpu::pool as kernel;
use crate::descriptors::Pool2dGeometry;
use crate::dtype::{with_float_type, DType};
use crate::error::{shape_err, Result};
use crate::gpu_parts::{run_gpu_in_parts, Cut};
use crate::ops::checks::nchw;
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Average pool with PyTorch's defaults count_include_pad = true, ceil_mode = false: each
/// output is the sum over its window's in-bounds elements divided by KH·KW.
// x: [N, C, H, W] → y: [N, C, OH, OW]
pub fn avg_pool2d(x: &Tensor, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Result<Tensor> {
    const OP: &str = "avg_pool2d";
    let _profile = profile::scope(OpFamily::Pool, OP, x);
    let (g, shape) = pool_geom(OP, x.shape(), kernel, stride, padding)?;
    match x.storage() {
        Storage::Cpu(_) => {
            let x = x.contiguous()?;
            with_float_type!(x.dtype(), T => {
                Tensor::from_vec(kernel::avg_pool2d_forward(x.cpu_slice::<T>()?, &g), &shape)
            })
        }
        Storage::Reference(_) => {
            Ok(reference::tensor(reference::pool::avg_pool2d(&reference::values(x)?, &g), &shape, x.dtype()))
        }
        Storage::Gpu(_) => {
            let [y] =
                run_gpu_in_parts(OP, g.planes, &[(Some(x), Cut::Rows)], [(&shape, Cut::Rows)], |ctx, part, i, [y]| {
                    gpu_kernel::avg_forward(ctx, &Pool2dGeometry { planes: part.rows, ..g }, i[0].expect("x"), y)
                })?;
            Ok(y)
        }
    }
}

/// Average pool backward: every output's gradient, divided by KH·KW, is added to each
/// in-bounds element of its window.
// grad_y: [N, C, OH, OW] → grad_x: [N, C, H, W]
pub fn avg_pool2d_backward(
    grad_y: &Tensor,
    input_shape: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<Tensor> {
    const OP: &str = "avg_pool2d_backward";
    let _profile = profile::scope(OpFamily::Pool, OP, grad_y);
    let (g, y_shape) = pool_geom(OP, input_shape, kernel, stride, padding)?;
    check_grad(OP, grad_y, &y_shape)?;
    match grad_y.storage() {
        Storage::Cpu(_) => {
            let gy = grad_y.contiguous()?;
            with_float_type!(gy.dtype(), T => {
                Tensor::from_vec(kernel::avg_pool2d_backward(gy.cpu_slice::<T>()?, &g), input_shape)
            })
        }
        Storage::Reference(_) => {
            let dx = reference::pool::avg_pool2d_backward(&reference::values(grad_y)?, &g);
            Ok(reference::tensor(dx, input_shape, grad_y.dtype()))
        }
        Storage::Gpu(_) => {
            let inputs = [(Some(grad_y), Cut::Rows)];
            let [dx] = run_gpu_in_parts(OP, g.planes, &inputs, [(input_shape, Cut::Rows)], |ctx, part, i, [dx]| {
                gpu_kernel::avg_backward(ctx, &Pool2dGeometry { planes: part.rows, ..g }, i[0].expect("grad_y"), dx)
            })?;
            Ok(dx)
        }
    }
}

// ---------------------------------------------------------------- global average pool

/// The mean of every [H, W] plane.
// x: [N, C, H, W] → y: [N, C, 1, 1]
pub fn global_avg_pool2d(x: &Tensor) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Pool, "global_avg_pool2d", x);
    let [n, c, h, w] = nchw("global_avg_pool2d", "input", x.shape())?;
    if h * w == 0 {
        return shape_err("global_avg_pool2d", format!("cannot average an empty plane of input {:?}", x.shape()));
    }
    let shape = [n, c, 1, 1];
    match x.storage() {
        Storage::Cpu(_) => {
            let x = x.contiguous()?;
            with_float_type!(x.dtype(), T => {
                Tensor::from_vec(kernel::global_avg_pool2d_forward(x.cpu_slice::<T>()?, h * w), &shape)
            })
        }
        Storage::Reference(_) => {
            let y = reference::pool::global_avg_pool2d(&reference::values(x)?, h * w);
            Ok(reference::tensor(y, &shape, x.dtype()))
        }
        Storage::Gpu(_) => {
            let (inputs, outputs) = ([(Some(x), Cut::Rows)], [(&shape[..], Cut::Rows)]);
            let [y] = run_gpu_in_parts("global_avg_pool2d", n * c, &inputs, outputs, |ctx, part, i, [y]| {
                gpu_kernel::global_avg_forward(ctx, part.rows, h * w, i[0].expect("x"), y)
            })?;
            Ok(y)
        }
    }
}

/// Global average pool backward: dx[n, c, h, w] = dy[n, c] / (H·W).
// grad_y: [N, C, 1, 1] → grad_x: [N, C, H, W]
pub fn global_avg_pool2d_backward(grad_y: &Tensor, input_shape: &[usize]) -> Result<Tensor> {
    const OP: &str = "global_avg_pool2d_backward";
    let _profile = profile::scope(OpFamily::Pool, OP, grad_y);
    let [n, c, h, w] = nchw(OP, "input_shape", input_shape)?;
    check_grad(OP, grad_y, &[n, c, 1, 1])?;
    match grad_y.storage() {
        Storage::Cpu(_) => {
            let gy = grad_y.contiguous()?;
            match gy.dtype() {
                DType::F32 => {
                    Tensor::from_vec(kernel::global_avg_pool2d_backward(gy.cpu_slice::<f32>()?, h * w), input_shape)
                }
                DType::F64 => {
                    Tensor::from_vec(kernel::global_avg_pool2d_backward(gy.cpu_slice::<f64>()?, h * w), input_shape)
                }
            }
        }
        Storage::Reference(_) => {
            let dx = reference::pool::global_avg_pool2d_backward(&reference::values(grad_y)?, h * w);
            Ok(reference::tensor(dx, input_shape, grad_y.dtype()))
        }
        Storage::Gpu(_) => {
            let inputs = [(Some(grad_y), Cut::Rows)];
            let [dx] = run_gpu_in_parts(OP, n * c, &inputs, [(input_shape, Cut::Rows)], |ctx, part, i, [dx]| {
                gpu_kernel::global_avg_backward(ctx, part.rows, h * w, i[0].expect("grad_y"), dx)
            })?;
            Ok(dx)
        }
    }
}
