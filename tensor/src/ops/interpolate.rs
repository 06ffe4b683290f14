//! Integer-factor 2-D upsampling ops on [N, C, H, W] tensors, matching PyTorch's
//! `F.interpolate(x, scale_factor=s, mode='nearest')` and `mode='bilinear', align_corners=False`,
//! each beside its backward; and the layout op that lets a 3×3 convolution of a nearest-upsampled
//! image run on the small image ([`interleave_phases`]).

use gpu::kernels::elementwise::copy_strided;
use gpu::kernels::interpolate::{self as gpu_kernel, Mode, UpsampleDims};

use super::checks::{check_plane, nchw};
use crate::cpu::interpolate as kernel;
use crate::dtype::DType;
use crate::error::{invalid, shape_err, Result};
use crate::gpu_parts::{for_each_row_part, run_gpu_in_parts, Cut, StorageView};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::shape::Layout;
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

// ---------------------------------------------------------------- the nearest-upsampled convolution

/// A 3×3 convolution (stride 1, padding 1) of an image upsampled ×2 by nearest neighbours
/// reads, at each output phase (a, b) ∈ {0, 1}², a 2×2 block of the small image only: for
/// a = 0 its three kernel rows fall on input rows i − 1 (tap 0) and i (taps 1 and 2), for
/// a = 1 on rows i (taps 0 and 1) and i + 1 (tap 2), and likewise for columns. So the layer is
/// one 2×2 convolution of the small image, padding 1, with four output channels per original
/// one (16 multiply-adds per input channel and output quad instead of 36), whose outputs
/// [`interleave_phases`] puts in place. This is the linear map from the 3×3 kernel to those
/// 2×2 kernels: w2[(2a + b)·4 + 2ty + tx] = Σ_t w[t]·taps[t, (2a + b)·4 + 2ty + tx], where
/// tap (ky, kx) lands on ty = ⌊(ky + 1 − a)/2⌋, tx = ⌊(kx + 1 − b)/2⌋.
// taps: [9 (ky·3 + kx), 16 ((2a + b)·4 + 2ty + tx)], entries 0 or 1
pub fn nearest_upsampled_conv_taps(dtype: DType) -> Tensor {
    let mut taps = vec![0.0; 9 * 16];
    for (ky, kx, a, b) in (0..9).flat_map(|t| (0..4).map(move |ab| (t / 3, t % 3, ab / 2, ab % 2))) {
        let (ty, tx) = ((ky + 1 - a) / 2, (kx + 1 - b) / 2);
        taps[(ky * 3 + kx) * 16 + (2 * a + b) * 4 + 2 * ty + tx] = 1.0;
    }
    match dtype {
        DType::F64 => Tensor::from_vec(taps, &[9, 16]),
        DType::F32 => Tensor::from_vec(taps.iter().map(|&v| v as f32).collect::<Vec<f32>>(), &[9, 16]),
    }
    .expect("9·16 values for a [9, 16] tensor")
}

/// The four phases of each channel put in place (see [`nearest_upsampled_conv_taps`]):
/// y[n, c, 2i + a, 2j + b] = phases[n, 4c + 2a + b, i + a, j + b]. The phases are the
/// (H + 1)×(W + 1) outputs of a 2×2 convolution with padding 1; phase (a, b) uses rows a..a + H
/// and columns b..b + W of them.
// phases: [N, 4·C, H + 1, W + 1] → y: [N, C, 2H, 2W]
pub fn interleave_phases(phases: &Tensor) -> Result<Tensor> {
    const OP: &str = "interleave_phases";
    let _profile = profile::scope(OpFamily::Interpolate, OP, phases);
    let [n, c, h, w] = phase_sizes(OP, phases.shape())?;
    let shape = [n, c, 2 * h, 2 * w];
    match phases.storage() {
        Storage::Cpu(_) => {
            let p = phases.contiguous()?;
            match p.dtype() {
                DType::F32 => Tensor::from_vec(kernel::interleave_phases(p.cpu_slice::<f32>()?, n * c, h, w), &shape),
                DType::F64 => Tensor::from_vec(kernel::interleave_phases(p.cpu_slice::<f64>()?, n * c, h, w), &shape),
            }
        }
        Storage::Reference(_) => {
            let y = reference::interpolate::interleave_phases(&reference::values(phases)?, n * c, [h, w]);
            Ok(reference::tensor(y, &shape, phases.dtype()))
        }
        // One strided copy: the placement is a view of the phases.
        Storage::Gpu(_) => {
            let p = phases.contiguous()?;
            let mut view = phase_view([n, c, h, w]);
            view.offset = p.layout().offset;
            p.with_layout(view).contiguous_copy()?.reshape(&shape)
        }
    }
}

/// The backward of [`interleave_phases`]: d_phases[n, 4c + 2a + b, p, q] = dy[n, c, 2p − a,
/// 2q − b], zero where that pixel is outside dy (the row and column of each phase the forward
/// did not read).
// dy: [N, C, 2H, 2W] → d_phases: [N, 4·C, H + 1, W + 1]
pub fn interleave_phases_backward(dy: &Tensor) -> Result<Tensor> {
    const OP: &str = "interleave_phases_backward";
    let _profile = profile::scope(OpFamily::Interpolate, OP, dy);
    let [n, c, h2, w2] = nchw(OP, "dy", dy.shape())?;
    if h2 % 2 != 0 || w2 % 2 != 0 {
        return shape_err(OP, format!("dy {:?} must have an even height and width", dy.shape()));
    }
    let (h, w) = (h2 / 2, w2 / 2);
    let shape = [n, 4 * c, h + 1, w + 1];
    match dy.storage() {
        Storage::Cpu(_) => {
            let g = dy.contiguous()?;
            match g.dtype() {
                DType::F32 => {
                    Tensor::from_vec(kernel::interleave_phases_backward(g.cpu_slice::<f32>()?, n * c, h, w), &shape)
                }
                DType::F64 => {
                    Tensor::from_vec(kernel::interleave_phases_backward(g.cpu_slice::<f64>()?, n * c, h, w), &shape)
                }
            }
        }
        Storage::Reference(_) => {
            let d = reference::interpolate::interleave_phases_backward(&reference::values(dy)?, n * c, [h, w]);
            Ok(reference::tensor(d, &shape, dy.dtype()))
        }
        // Zeros, then dy copied through the forward's view into them.
        Storage::Gpu(_) => {
            let out = Tensor::zeros_on(&shape, dy.dtype(), &dy.device())?;
            let view = phase_view([n, c, h, w]);
            let g = dy.contiguous()?.reshape(&view.shape)?;
            let storage = out.gpu_storage(OP)?;
            let dst = StorageView { storage, strides: view.strides, offset: 0 };
            for_each_row_part(storage.context(), OP, &[g.gpu_view(OP)?], &dst, &view.shape, |ctx, src, dst, shape| {
                copy_strided(ctx, &src[0], dst, shape)
            })?;
            Ok(out)
        }
    }
}

/// [N, C, H, W] of the output quads for phases of shape [N, 4·C, H + 1, W + 1].
fn phase_sizes(op: &'static str, shape: &[usize]) -> Result<[usize; 4]> {
    let [n, c4, ph, pw] = nchw(op, "phases", shape)?;
    if c4 % 4 != 0 || ph < 2 || pw < 2 {
        let msg = format!("phases {shape:?} must have 4·C channels and a plane of at least 2×2 (H + 1, W + 1)");
        return shape_err(op, msg);
    }
    Ok([n, c4 / 4, ph - 1, pw - 1])
}

/// The phases of a contiguous [N, 4·C, H + 1, W + 1] tensor as [N, C, H, 2 (a), W, 2 (b)], so
/// that the view read in row-major order is the interleaved output.
fn phase_view([n, c, h, w]: [usize; 4]) -> Layout {
    let (row, plane) = (w + 1, (h + 1) * (w + 1));
    Layout {
        shape: vec![n, c, h, 2, w, 2],
        strides: vec![4 * c * plane, 4 * plane, row, 2 * plane + row, 1, plane + 1],
        offset: 0,
    }
}
