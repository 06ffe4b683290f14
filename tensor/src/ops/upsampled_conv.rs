//! The nearest-upsampled convolution: a 3×3 convolution (stride 1, padding 1) of an image
//! upsampled ×2 by nearest neighbours, computed on the small image.
//!
//! At each output phase (a, b) ∈ {0, 1}² the layer reads a 2×2 block of the small image only:
//! for a = 0 its three kernel rows fall on input rows i − 1 (tap 0) and i (taps 1 and 2), for
//! a = 1 on rows i (taps 0 and 1) and i + 1 (tap 2), and likewise for columns. So it is one 2×2
//! convolution of the small image, padding 1, with four output channels per original one (16
//! multiply-adds per input channel and output quad instead of 36), whose outputs
//! [`interleave_phases`] puts in place. `autograd::ops::conv2d::conv2d_nearest_upsampled`
//! composes the three steps: the phase kernels ([`nearest_upsampled_conv_taps`]), the 2×2
//! convolution, the interleaving.

use gpu::kernels::elementwise::copy_strided;

use super::checks::nchw;
use crate::cpu::upsampled_conv as kernel;
use crate::dtype::DType;
use crate::error::{shape_err, Result};
use crate::gpu_parts::{for_each_row_part, StorageView};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::shape::Layout;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// The linear map from the 3×3 kernel to the four phases' 2×2 kernels:
/// w2[(2a + b)·4 + 2ty + tx] = Σ_t w[t]·taps[t, (2a + b)·4 + 2ty + tx], where tap (ky, kx)
/// lands on ty = ⌊(ky + 1 − a)/2⌋, tx = ⌊(kx + 1 − b)/2⌋.
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

/// The four phases of each channel put in place:
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
            let y = reference::upsampled_conv::interleave_phases(&reference::values(phases)?, n * c, [h, w]);
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
            let d = reference::upsampled_conv::interleave_phases_backward(&reference::values(dy)?, n * c, [h, w]);
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
