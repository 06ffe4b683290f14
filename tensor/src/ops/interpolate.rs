//! Integer-factor 2-D upsampling ops on [N, C, H, W] tensors, matching PyTorch's
//! `F.interpolate(x, scale_factor=s, mode='nearest')` and `mode='bilinear', align_corners=False`,
//! each beside its backward.

use gpu::kernels::interpolate::{self as gpu_kernel, Mode, UpsampleDims};

use super::checks::{check_plane, nchw};
use crate::cpu::interpolate as kernel;
use crate::dtype::DType;
use crate::error::{invalid, shape_err, Result};
use crate::gpu_parts::{run_gpu_in_parts, Cut};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Whether the reference definition interpolates (bilinear) or copies (nearest).
fn bilinear(mode: Mode) -> bool {
    matches!(mode, Mode::Bilinear)
}

/// A kernel taking (data, planes, H, W, scale).
type UpsampleKernel<T> = fn(&[T], usize, usize, usize, usize) -> Vec<T>;

/// Validates an upsampling forward and runs `f32_kernel` or `f64_kernel` on it.
// x: [N, C, H, W] → y: [N, C, H·s, W·s]
fn upsample(
    op: &'static str,
    x: &Tensor,
    scale: usize,
    mode: Mode,
    f32_kernel: UpsampleKernel<f32>,
    f64_kernel: UpsampleKernel<f64>,
) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Interpolate, op, x);
    let [n, c, h, w] = nchw(op, "input", x.shape())?;
    if scale == 0 {
        return invalid(op, "scale must be at least 1");
    }
    check_plane(op, x.shape())?;
    let shape = [n, c, h * scale, w * scale];
    match x.storage() {
        Storage::Cpu(_) => {
            let x = x.contiguous()?;
            match x.dtype() {
                DType::F32 => Tensor::from_vec(f32_kernel(x.cpu_slice::<f32>()?, n * c, h, w, scale), &shape),
                DType::F64 => Tensor::from_vec(f64_kernel(x.cpu_slice::<f64>()?, n * c, h, w, scale), &shape),
            }
        }
        Storage::Reference(_) => {
            let y = reference::interpolate::upsample(&reference::values(x)?, n * c, [h, w], [scale; 2], bilinear(mode));
            Ok(reference::tensor(y, &shape, x.dtype()))
        }
        Storage::Gpu(_) => {
            let d = UpsampleDims { planes: n * c, h, w, scale: [scale, scale] };
            let (inputs, outputs) = ([(Some(x), Cut::Rows)], [(&shape[..], Cut::Rows)]);
            let [y] = run_gpu_in_parts(op, n * c, &inputs, outputs, |ctx, part, i, [y]| {
                gpu_kernel::forward(ctx, mode, UpsampleDims { planes: part.rows, ..d }, i[0].expect("x"), y)
            })?;
            Ok(y)
        }
    }
}

/// Validates an upsampling backward (grad_y must be [N, C, H·s, W·s] for `input_shape`
/// [N, C, H, W]) and runs `f32_kernel` or `f64_kernel` on it.
// grad_y: [N, C, H·s, W·s] → grad_x: [N, C, H, W]
fn upsample_backward(
    op: &'static str,
    grad_y: &Tensor,
    input_shape: &[usize],
    scale: usize,
    mode: Mode,
    f32_kernel: UpsampleKernel<f32>,
    f64_kernel: UpsampleKernel<f64>,
) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Interpolate, op, grad_y);
    let [n, c, h, w] = nchw(op, "input_shape", input_shape)?;
    if scale == 0 {
        return invalid(op, "scale must be at least 1");
    }
    check_plane(op, input_shape)?;
    let expected = [n, c, h * scale, w * scale];
    if grad_y.shape() != expected {
        return shape_err(
            op,
            format!(
                "grad_y has shape {:?}, expected {expected:?} for input {input_shape:?} and scale {scale}",
                grad_y.shape()
            ),
        );
    }
    match grad_y.storage() {
        Storage::Cpu(_) => {
            let gy = grad_y.contiguous()?;
            match gy.dtype() {
                DType::F32 => Tensor::from_vec(f32_kernel(gy.cpu_slice::<f32>()?, n * c, h, w, scale), input_shape),
                DType::F64 => Tensor::from_vec(f64_kernel(gy.cpu_slice::<f64>()?, n * c, h, w, scale), input_shape),
            }
        }
        Storage::Reference(_) => {
            let dy = reference::values(grad_y)?;
            let dx = reference::interpolate::upsample_backward(&dy, n * c, [h, w], [scale; 2], bilinear(mode));
            Ok(reference::tensor(dx, input_shape, grad_y.dtype()))
        }
        Storage::Gpu(_) => {
            let d = UpsampleDims { planes: n * c, h, w, scale: [scale, scale] };
            let inputs = [(Some(grad_y), Cut::Rows)];
            let [dx] = run_gpu_in_parts(op, n * c, &inputs, [(input_shape, Cut::Rows)], |ctx, part, i, [dx]| {
                gpu_kernel::backward(ctx, mode, UpsampleDims { planes: part.rows, ..d }, i[0].expect("grad_y"), dx)
            })?;
            Ok(dx)
        }
    }
}

/// Nearest-neighbour upsampling by an integer factor: y[.., oy, ox] = x[.., oy / s, ox / s].
// x: [N, C, H, W] → y: [N, C, H·s, W·s]
pub fn upsample_nearest2d(x: &Tensor, scale: usize) -> Result<Tensor> {
    upsample(
        "upsample_nearest2d",
        x,
        scale,
        Mode::Nearest,
        kernel::upsample_nearest2d_forward::<f32>,
        kernel::upsample_nearest2d_forward::<f64>,
    )
}

/// Nearest upsampling backward: each input's gradient is the sum over its s×s output block.
// grad_y: [N, C, H·s, W·s] → grad_x: [N, C, H, W]
pub fn upsample_nearest2d_backward(grad_y: &Tensor, input_shape: &[usize], scale: usize) -> Result<Tensor> {
    upsample_backward(
        "upsample_nearest2d_backward",
        grad_y,
        input_shape,
        scale,
        Mode::Nearest,
        kernel::upsample_nearest2d_backward::<f32>,
        kernel::upsample_nearest2d_backward::<f64>,
    )
}

/// Bilinear upsampling by an integer factor with align_corners = false (PyTorch's default):
/// source coordinate (dst + 0.5)/s − 0.5, clamped at 0 below, indices clamped at the edge.
// x: [N, C, H, W] → y: [N, C, H·s, W·s]
pub fn upsample_bilinear2d(x: &Tensor, scale: usize) -> Result<Tensor> {
    upsample(
        "upsample_bilinear2d",
        x,
        scale,
        Mode::Bilinear,
        kernel::upsample_bilinear2d_forward::<f32>,
        kernel::upsample_bilinear2d_forward::<f64>,
    )
}

/// Bilinear upsampling backward: every output gradient is scatter-added to its four source
/// pixels with the forward's weights.
// grad_y: [N, C, H·s, W·s] → grad_x: [N, C, H, W]
pub fn upsample_bilinear2d_backward(grad_y: &Tensor, input_shape: &[usize], scale: usize) -> Result<Tensor> {
    upsample_backward(
        "upsample_bilinear2d_backward",
        grad_y,
        input_shape,
        scale,
        Mode::Bilinear,
        kernel::upsample_bilinear2d_backward::<f32>,
        kernel::upsample_bilinear2d_backward::<f64>,
    )
}
