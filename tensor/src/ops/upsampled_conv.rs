//! The nearest-upsampled convolution: a 3×3 convolution (stride 1, padding 1) of an image
//! upsampled ×2 by nearest neighbours, computed on the small image.
//!
//! At each output phase (a, b) ∈ {0, 1}² the layer reads a 2×2 block of the small image only:
//! for a = 0 its three kernel rows fall on input rows i − 1 (tap 0) and i (taps 1 and 2), for
//! a = 1 on rows i (taps 0 and 1) and i + 1 (tap 2), and likewise for columns. So it is one 2×2
//! convolution of the small image, padding 1, with four output channels per original one (16
//! multiply-adds per input channel and output quad instead of 36), whose outputs
//! [`interleave_phases`] puts in place: the phase kernels ([`phase_weights`]), the 2×2
//! convolution, the interleaving. The backward runs through these three.
//!
//! The CPU's forward does with fewer still, 9, by a Winograd transform of its own
//! (`cpu::upsampled_conv::conv2d_nearest_upsampled` derives it); no phase is made there.

use gpu::kernels::elementwise::copy_strided;

use super::checks::{bias_slice, check_bias, check_plane, nchw, same_dtype_device};
use super::conv2d::{conv2d, conv2d_backward_weight, Conv2dParams};
use super::matmul::matmul;
use crate::cpu::upsampled_conv as kernel;
use crate::dtype::{with_float_type, DType};
use crate::error::{shape_err, Result};
use crate::gpu_parts::{for_each_row_part, StorageView};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::Tensor;

mod phases;
use phases::{phase_sizes, phase_view, taps_matrix};

/// y = conv2d(upsample_nearest(x, 2), w, stride 1, padding 1) + bias, on the small image. The
/// CPU runs the layer's own Winograd transform (see the module docs); the GPU the phases
/// ([`phase_weights`], a 2×2 convolution, [`interleave_phases`]); the reference device the
/// definition, upsampling then convolving.
// x: [N, C_in, H, W]   w: [C_out, C_in, 3, 3]   bias: [C_out]   ->   y: [N, C_out, 2H, 2W]
pub fn conv2d_nearest_upsampled(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    const OP: &str = "conv2d_nearest_upsampled";
    let _profile = profile::scope(OpFamily::Conv, OP, x);
    let [n, c_in, h, wd] = nchw(OP, "input", x.shape())?;
    check_plane(OP, x.shape())?;
    let msg = || format!("weight must be [C_out, {c_in}, 3, 3] for input {:?}, got {:?}", x.shape(), w.shape());
    let c_out = match *w.shape() {
        [o, i, 3, 3] if i == c_in => o,
        _ => return shape_err(OP, msg()),
    };
    check_bias(OP, bias, c_out, w.shape())?;
    let operands: Vec<&Tensor> = [x, w].into_iter().chain(bias).collect();
    let dtype = same_dtype_device(OP, &operands)?;
    let shape = [n, c_out, 2 * h, 2 * wd];
    match x.storage() {
        Storage::Cpu(_) => {
            let (x, w, bias) = (x.contiguous()?, w.contiguous()?, bias.map(Tensor::contiguous).transpose()?);
            with_float_type!(dtype, T => {
                let (x, w, bias) = (x.cpu_slice::<T>()?, w.cpu_slice::<T>()?, bias_slice::<T>(bias.as_ref())?);
                Ok(Tensor::from_kernel(kernel::conv2d_nearest_upsampled(x, w, bias, [n, c_in, h, wd], c_out), &shape))
            })
        }
        Storage::Reference(_) => {
            let (x, w, bias) = (reference::values(x)?, reference::values(w)?, reference::values_of(bias)?);
            let y =
                reference::upsampled_conv::conv2d_nearest_upsampled(&x, &w, bias.as_deref(), [n, c_in, h, wd], c_out);
            Ok(reference::tensor(y, &shape, dtype))
        }
        Storage::Gpu(_) => {
            let phase_bias =
                bias.map(|b| b.reshape(&[c_out, 1])?.broadcast_to(&[c_out, 4])?.contiguous()?.reshape(&[4 * c_out]));
            let phases = conv2d(x, &phase_weights(w)?, phase_bias.transpose()?.as_ref(), &Conv2dParams::new(1, 1))?;
            interleave_phases(&phases)
        }
    }
}

/// dW of [`conv2d_nearest_upsampled`]: on the CPU by the phases or the layer's own Winograd
/// transform, transposed, as the tuner times them (`cpu::upsampled_conv`); elsewhere by the
/// phases ([`interleave_phases_backward`], a 2×2 weight gradient, [`phase_weights_backward`]).
// grad_y: [N, C_out, 2H, 2W]   x: [N, C_in, H, W]   ->   dw: [C_out, C_in, 3, 3]
pub fn conv2d_nearest_upsampled_backward_weight(grad_y: &Tensor, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "conv2d_nearest_upsampled_backward_weight";
    let _profile = profile::scope(OpFamily::Conv, OP, grad_y);
    let [n, c_in, h, wd] = nchw(OP, "input", x.shape())?;
    let [gn, c_out, gh, gw] = nchw(OP, "grad_y", grad_y.shape())?;
    if [gn, gh, gw] != [n, 2 * h, 2 * wd] {
        let (xs, gs, [h2, w2]) = (x.shape(), grad_y.shape(), [2 * h, 2 * wd]);
        return shape_err(OP, format!("grad_y must be [{n}, C_out, {h2}, {w2}] for input {xs:?}, got {gs:?}"));
    }
    let dtype = same_dtype_device(OP, &[grad_y, x])?;
    match x.storage() {
        Storage::Cpu(_) => {
            let (grad_y, x) = (grad_y.contiguous()?, x.contiguous()?);
            with_float_type!(dtype, T => {
                let (g, xs) = (grad_y.cpu_slice::<T>()?, x.cpu_slice::<T>()?);
                let dw = kernel::conv2d_nearest_upsampled_backward_weight(g, xs, [n, c_in, h, wd], c_out);
                Tensor::from_vec(dw, &[c_out, c_in, 3, 3])
            })
        }
        Storage::Reference(_) | Storage::Gpu(_) => {
            let phases = interleave_phases_backward(grad_y)?;
            let p = Conv2dParams::new(1, 1);
            phase_weights_backward(&conv2d_backward_weight(&phases, x, &[4 * c_out, c_in, 2, 2], &p)?)
        }
    }
}

/// The four phases' 2×2 kernels of a 3×3 kernel, phase-major within each output channel (the
/// order [`interleave_phases`] reads): w2[4o + 2a + b, i, ty, tx] = Σ of w[o, i, ky, kx] over
/// the taps that land on (ty, tx) at phase (a, b), ty = ⌊(ky + 1 − a)/2⌋ and tx = ⌊(kx + 1 −
/// b)/2⌋ (`cpu::upsampled_conv::phase_tap`).
// w: [C_out, C_in, 3, 3] → w2: [4·C_out, C_in, 2, 2]
pub fn phase_weights(w: &Tensor) -> Result<Tensor> {
    const OP: &str = "phase_weights";
    let _profile = profile::scope(OpFamily::Conv, OP, w);
    let [c_out, c_in] = match *w.shape() {
        [o, i, 3, 3] => [o, i],
        _ => return shape_err(OP, format!("weight must be [C_out, C_in, 3, 3], got {:?}", w.shape())),
    };
    let shape = [4 * c_out, c_in, 2, 2];
    match w.storage() {
        Storage::Cpu(_) => {
            let w = w.contiguous()?;
            match w.dtype() {
                DType::F32 => Tensor::from_vec(kernel::phase_weights(w.cpu_slice::<f32>()?, c_out, c_in), &shape),
                DType::F64 => Tensor::from_vec(kernel::phase_weights(w.cpu_slice::<f64>()?, c_out, c_in), &shape),
            }
        }
        Storage::Reference(_) => {
            let w2 = reference::upsampled_conv::phase_weights(&reference::values(w)?, c_out, c_in);
            Ok(reference::tensor(w2, &shape, w.dtype()))
        }
        // A product with the 0/1 matrix of taps, and one strided copy into the phase order.
        Storage::Gpu(_) => matmul(&w.reshape(&[c_out * c_in, 9])?, &taps_matrix(w)?)?
            .reshape(&[c_out, c_in, 4, 4])?
            .permute(&[0, 2, 1, 3])?
            .contiguous()?
            .reshape(&shape),
    }
}

/// The backward of [`phase_weights`]: each 3×3 tap gathers the gradients of the four 2×2 taps
/// it landed on, one per phase.
// dw2: [4·C_out, C_in, 2, 2] → dw: [C_out, C_in, 3, 3]
pub fn phase_weights_backward(dw2: &Tensor) -> Result<Tensor> {
    const OP: &str = "phase_weights_backward";
    let _profile = profile::scope(OpFamily::Conv, OP, dw2);
    let [c_out, c_in] = match *dw2.shape() {
        [o4, i, 2, 2] if o4 % 4 == 0 => [o4 / 4, i],
        _ => return shape_err(OP, format!("dw2 must be [4·C_out, C_in, 2, 2], got {:?}", dw2.shape())),
    };
    let shape = [c_out, c_in, 3, 3];
    match dw2.storage() {
        Storage::Cpu(_) => {
            let d = dw2.contiguous()?;
            match d.dtype() {
                DType::F32 => {
                    Tensor::from_vec(kernel::phase_weights_backward(d.cpu_slice::<f32>()?, c_out, c_in), &shape)
                }
                DType::F64 => {
                    Tensor::from_vec(kernel::phase_weights_backward(d.cpu_slice::<f64>()?, c_out, c_in), &shape)
                }
            }
        }
        Storage::Reference(_) => {
            let dw = reference::upsampled_conv::phase_weights_backward(&reference::values(dw2)?, c_out, c_in);
            Ok(reference::tensor(dw, &shape, dw2.dtype()))
        }
        Storage::Gpu(_) => {
            let by_tap = dw2.reshape(&[c_out, 4, c_in, 4])?.permute(&[0, 2, 1, 3])?.contiguous()?;
            matmul(&by_tap.reshape(&[c_out * c_in, 16])?, &taps_matrix(dw2)?.transpose(0, 1)?.contiguous()?)?
                .reshape(&shape)
        }
    }
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
