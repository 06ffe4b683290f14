//! conv2d on [N, C, H, W] tensors with PyTorch's semantics (groups = 1): the forward and the
//! three backward ops autograd needs (data, weight, bias). Each checks shapes, dtypes and
//! devices and runs the matching kernel in `cpu::conv`.
//!
//! Also home of the bias gradient conv_transpose2d shares (`channel_sums`).

use gpu::kernels::conv2d::{self as gpu_kernel, ConvRung};
use gpu::kernels::Output;

use crate::cpu::conv as kernel;
use crate::descriptors::Conv2dGeometry;
use crate::dtype::{with_float_type, DType};
use crate::error::{shape_err, Result, TensorError};
use crate::gpu_parts::{run_gpu_in_parts, Cut};
use crate::ops::checks::{
    bias_slice, check_bias, check_grad, check_params, check_plane, pair, rank4, same_dtype_device,
};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Stride, zero padding and dilation of a conv2d, as [height, width].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Step of the kernel, `[sh, sw]`.
    pub stride: [usize; 2],
    /// Zeros added on each side, `[ph, pw]`.
    pub padding: [usize; 2],
    /// Spacing between kernel taps, `[dh, dw]` (1 = dense).
    pub dilation: [usize; 2],
}

impl Default for Conv2dParams {
    /// Stride 1, padding 0, dilation 1 (PyTorch's defaults).
    fn default() -> Self {
        Conv2dParams { stride: [1, 1], padding: [0, 0], dilation: [1, 1] }
    }
}

impl Conv2dParams {
    /// The same stride and padding along both axes, dilation 1: `Conv2dParams::new(2, 1)`.
    pub fn new(stride: usize, padding: usize) -> Self {
        Conv2dParams { stride: [stride; 2], padding: [padding; 2], dilation: [1, 1] }
    }

    /// These parameters with the same dilation along both axes.
    pub fn with_dilation(self, dilation: usize) -> Self {
        Conv2dParams { dilation: [dilation; 2], ..self }
    }
}

/// The geometry of conv2d for input shape `x` [N, C_in, H, W] and weight shape `w`
/// [C_out, C_in, kH, kW], after checking the parameters, the channels and that the kernel fits.
fn conv2d_geometry(op: &'static str, x: &[usize], w: &[usize], p: &Conv2dParams) -> Result<Conv2dGeometry> {
    let xs = rank4(op, "input", "[N, C_in, H, W]", x)?;
    let ws = rank4(op, "weight", "[C_out, C_in, kH, kW]", w)?;
    if xs[1] != ws[1] {
        return shape_err(op, format!("input {x:?} has {} channels but weight {w:?} expects {}", xs[1], ws[1]));
    }
    check_params(op, w, p.stride, p.dilation)?;
    check_plane(op, x)?;
    Conv2dGeometry::conv2d(xs, ws, p.stride, p.padding, p.dilation).ok_or_else(|| TensorError::Shape {
        op,
        msg: format!(
            "kernel {}×{} with dilation {} does not fit input {}×{} padded by {} (input {x:?}, weight {w:?})",
            ws[2],
            ws[3],
            pair(p.dilation),
            xs[2],
            xs[3],
            pair(p.padding)
        ),
    })
}

// ---------------------------------------------------------------- ops

/// y = conv2d(x, w) + bias (cross-correlation, as in PyTorch), OH = ⌊(H + 2·ph − dh·(kH−1) − 1)/sh⌋ + 1.
// x: [N, C_in, H, W]   w: [C_out, C_in, kH, kW]   bias: [C_out]   ->   y: [N, C_out, OH, OW]
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams) -> Result<Tensor> {
    const OP: &str = "conv2d";
    let _profile = profile::scope(OpFamily::Conv, OP, x);
    let g = conv2d_geometry(OP, x.shape(), w.shape(), p)?;
    check_bias(OP, bias, g.c_out, w.shape())?;
    let operands: Vec<&Tensor> = [x, w].into_iter().chain(bias).collect();
    let dtype = same_dtype_device(OP, &operands)?;
    let shape = [g.batch, g.c_out, g.oh, g.ow];
    match x.storage() {
        Storage::Cpu(_) => {
            let (x, w, bias) = (x.contiguous()?, w.contiguous()?, bias.map(Tensor::contiguous).transpose()?);
            with_float_type!(dtype, T => {
                let (x, w, bias) = (x.cpu_slice::<T>()?, w.cpu_slice::<T>()?, bias_slice::<T>(bias.as_ref())?);
                Ok(Tensor::from_kernel(kernel::conv2d_forward(x, w, bias, &g), &shape))
            })
        }
        Storage::Reference(_) => {
            let (x, w, bias) = (reference::values(x)?, reference::values(w)?, reference::values_of(bias)?);
            Ok(reference::tensor(reference::conv::conv2d(&x, &w, bias.as_deref(), &g), &shape, dtype))
        }
        Storage::Gpu(_) => {
            let inputs = [(Some(x), Cut::Rows), (Some(w), Cut::Whole), (bias, Cut::Whole)];
            let [y] = run_gpu_in_parts(OP, g.batch, &inputs, [(&shape, Cut::Rows)], |ctx, part, i, [y]| {
                let g = Conv2dGeometry { batch: part.rows, ..g };
                let (x, w) = (i[0].expect("x"), i[1].expect("w"));
                gpu_kernel::forward(ctx, ConvRung::ImplicitGemm, &g, [x, w], i[2], y, Output::Overwrite)
            })?;
            Ok(y)
        }
    }
}

/// dL/dx of y = conv2d(x, w): the transposed convolution of grad_y with the same weight.
/// `input_shape` is the forward's x shape (H, W are not recoverable from OH, OW when the
/// stride did not divide evenly).
// grad_y: [N, C_out, OH, OW]   w: [C_out, C_in, kH, kW]   ->   dx: input_shape = [N, C_in, H, W]
pub fn conv2d_backward_data(grad_y: &Tensor, w: &Tensor, input_shape: &[usize], p: &Conv2dParams) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_data";
    let _profile = profile::scope(OpFamily::Conv, OP, grad_y);
    let g = conv2d_geometry(OP, input_shape, w.shape(), p)?;
    check_grad(OP, grad_y, [g.batch, g.c_out, g.oh, g.ow])?;
    let dtype = same_dtype_device(OP, &[grad_y, w])?;
    let shape = [g.batch, g.c_in, g.h, g.w];
    match grad_y.storage() {
        Storage::Cpu(_) => {
            let (gy, w) = (grad_y.contiguous()?, w.contiguous()?);
            with_float_type!(dtype, T => Ok(Tensor::from_kernel(
                kernel::conv2d_backward_data(gy.cpu_slice::<T>()?, w.cpu_slice::<T>()?, &g),
                &shape,
            )))
        }
        Storage::Reference(_) => {
            let dx = reference::conv::conv2d_backward_data(&reference::values(grad_y)?, &reference::values(w)?, &g);
            Ok(reference::tensor(dx, &shape, dtype))
        }
        Storage::Gpu(_) => {
            let inputs = [(Some(grad_y), Cut::Rows), (Some(w), Cut::Whole)];
            let [dx] = run_gpu_in_parts(OP, g.batch, &inputs, [(&shape, Cut::Rows)], |ctx, part, i, [dx]| {
                let (gy, w) = (i[0].expect("grad_y"), i[1].expect("w"));
                let g = Conv2dGeometry { batch: part.rows, ..g };
                gpu_kernel::backward_data(ctx, ConvRung::ImplicitGemm, &g, [gy, w], None, dx, Output::Overwrite)
            })?;
            Ok(dx)
        }
    }
}

/// dL/dw of y = conv2d(x, w): the correlation of x with grad_y, summed over the batch.
// grad_y: [N, C_out, OH, OW]   x: [N, C_in, H, W]   ->   dw: weight_shape = [C_out, C_in, kH, kW]
pub fn conv2d_backward_weight(grad_y: &Tensor, x: &Tensor, weight_shape: &[usize], p: &Conv2dParams) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_weight";
    let _profile = profile::scope(OpFamily::Conv, OP, grad_y);
    let g = conv2d_geometry(OP, x.shape(), weight_shape, p)?;
    check_grad(OP, grad_y, [g.batch, g.c_out, g.oh, g.ow])?;
    let dtype = same_dtype_device(OP, &[grad_y, x])?;
    match grad_y.storage() {
        Storage::Cpu(_) => {
            let (gy, x) = (grad_y.contiguous()?, x.contiguous()?);
            with_float_type!(dtype, T => Ok(Tensor::from_kernel(
                kernel::conv2d_backward_weight(gy.cpu_slice::<T>()?, x.cpu_slice::<T>()?, &g),
                weight_shape,
            )))
        }
        Storage::Reference(_) => {
            let dw = reference::conv::conv2d_backward_weight(&reference::values(grad_y)?, &reference::values(x)?, &g);
            Ok(reference::tensor(dw, weight_shape, dtype))
        }
        Storage::Gpu(_) => {
            let inputs = [(Some(grad_y), Cut::Rows), (Some(x), Cut::Rows)];
            let [dw] = run_gpu_in_parts(OP, g.batch, &inputs, [(weight_shape, Cut::Sum)], |ctx, part, i, [dw]| {
                let (gy, x) = (i[0].expect("grad_y"), i[1].expect("x"));
                let g = Conv2dGeometry { batch: part.rows, ..g };
                gpu_kernel::backward_weight(ctx, ConvRung::ImplicitGemm, &g, [gy, x], dw, part.mode)
            })?;
            Ok(dw)
        }
    }
}

/// dL/dbias of y = conv2d(x, w) + bias: grad_y summed over batch and pixels.
// grad_y: [N, C_out, OH, OW]   ->   db: [C_out]
pub fn conv2d_backward_bias(grad_y: &Tensor) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_bias";
    let _profile = profile::scope(OpFamily::Conv, OP, grad_y);
    channel_sums(OP, grad_y)
}

/// grad_y summed over batch and pixels, per channel: the bias gradient of conv2d and of
/// conv_transpose2d alike (errors name `op`).
// grad_y: [N, C, OH, OW]   ->   [C]
pub(crate) fn channel_sums(op: &'static str, grad_y: &Tensor) -> Result<Tensor> {
    let [batch, c_out, oh, ow] = rank4(op, "grad_y", "[N, C_out, OH, OW]", grad_y.shape())?;
    let dims = [batch, c_out, oh * ow];
    match grad_y.storage() {
        Storage::Cpu(_) => {
            let gy = grad_y.contiguous()?;
            match gy.dtype() {
                DType::F32 => {
                    Ok(Tensor::from_kernel(kernel::conv2d_backward_bias(gy.cpu_slice::<f32>()?, dims), &[c_out]))
                }
                DType::F64 => {
                    Ok(Tensor::from_kernel(kernel::conv2d_backward_bias(gy.cpu_slice::<f64>()?, dims), &[c_out]))
                }
            }
        }
        Storage::Reference(_) => {
            let db = reference::conv::bias_grad(&reference::values(grad_y)?, dims);
            Ok(reference::tensor(db, &[c_out], grad_y.dtype()))
        }
        Storage::Gpu(_) => {
            let [db] = run_gpu_in_parts(
                op,
                batch,
                &[(Some(grad_y), Cut::Rows)],
                [(&[c_out], Cut::Sum)],
                |ctx, part, i, [db]| {
                    gpu_kernel::backward_bias(ctx, [part.rows, c_out, oh * ow], i[0].expect("grad_y"), db, part.mode)
                },
            )?;
            Ok(db)
        }
    }
}
