//! conv_transpose2d on [N, C, H, W] tensors with PyTorch's semantics (groups = 1): the forward
//! and the three backward ops autograd needs (data, weight, bias). The kernels in `cpu::conv`
//! and the GPU's conv2d launchers run it through the gradient identities (the forward is a
//! conv2d's backward-data, the backward-data a conv2d's forward: see `gpu::kernels::conv2d`);
//! this file only checks and dispatches.

use gpu::kernels::conv2d::{self as gpu_kernel, ConvRung};
use gpu::kernels::Output;

use crate::cpu::conv as kernel;
use crate::descriptors::Conv2dGeometry;
use crate::dtype::with_float_type;
use crate::error::{shape_err, Result, TensorError};
use crate::gpu_parts::{run_gpu_in_parts, Cut};
use crate::ops::checks::{
    bias_slice, check_bias, check_grad, check_output_padding, check_params, check_plane, pair, rank4,
    same_dtype_device, transposed_input_shape,
};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Stride, zero padding, output padding and dilation of a conv_transpose2d, as [height, width].
/// `output_padding` adds rows/columns at the bottom/right of the output (they receive only
/// the bias); it must be smaller than the stride or the dilation along its axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dParams {
    /// Stride of the forward conv this transposes, `[sh, sw]`.
    pub stride: [usize; 2],
    /// Padding of the forward conv this transposes (removed from the output), `[ph, pw]`.
    pub padding: [usize; 2],
    /// Extra rows/columns at the bottom/right of the output, `[oph, opw]`.
    pub output_padding: [usize; 2],
    /// Spacing between kernel taps, `[dh, dw]`.
    pub dilation: [usize; 2],
}

impl Default for ConvTranspose2dParams {
    /// Stride 1, padding 0, output padding 0, dilation 1 (PyTorch's defaults).
    fn default() -> Self {
        ConvTranspose2dParams { stride: [1, 1], padding: [0, 0], output_padding: [0, 0], dilation: [1, 1] }
    }
}

impl ConvTranspose2dParams {
    /// The same stride and padding along both axes, no output padding, dilation 1:
    /// `ConvTranspose2dParams::new(2, 1)` with a 4×4 kernel doubles H and W.
    pub fn new(stride: usize, padding: usize) -> Self {
        ConvTranspose2dParams { stride: [stride; 2], padding: [padding; 2], ..Self::default() }
    }

    /// These parameters with the same output padding along both axes.
    pub fn with_output_padding(self, output_padding: usize) -> Self {
        ConvTranspose2dParams { output_padding: [output_padding; 2], ..self }
    }

    /// These parameters with the same dilation along both axes.
    pub fn with_dilation(self, dilation: usize) -> Self {
        ConvTranspose2dParams { dilation: [dilation; 2], ..self }
    }
}

/// The geometry of conv_transpose2d for input shape `x` [N, C_in, H, W] and weight shape `w`
/// [C_in, C_out, kH, kW], after checking parameters, channels and that the output is non-empty.
fn conv_transpose2d_geometry(
    op: &'static str,
    x: &[usize],
    w: &[usize],
    p: &ConvTranspose2dParams,
) -> Result<Conv2dGeometry> {
    let xs = rank4(op, "input", "[N, C_in, H, W]", x)?;
    let ws = rank4(op, "weight", "[C_in, C_out, kH, kW]", w)?;
    if xs[1] != ws[0] {
        return shape_err(op, format!("input {x:?} has {} channels but weight {w:?} expects {}", xs[1], ws[0]));
    }
    check_params(op, w, p.stride, p.dilation)?;
    check_output_padding(op, p)?;
    check_plane(op, x)?;
    Conv2dGeometry::conv_transpose2d(xs, ws, p.stride, p.padding, p.output_padding, p.dilation).ok_or_else(|| {
        let len = |i: usize| {
            (xs[2 + i] as i64 - 1) * p.stride[i] as i64 - 2 * p.padding[i] as i64
                + (p.dilation[i] * (ws[2 + i] - 1) + p.output_padding[i] + 1) as i64
        };
        TensorError::Shape {
            op,
            msg: format!(
                "output size {}×{} is not positive: input {}×{} with kernel {}×{}, stride {}, padding {}, \
                 output_padding {}, dilation {} (input {x:?}, weight {w:?})",
                len(0),
                len(1),
                xs[2],
                xs[3],
                ws[2],
                ws[3],
                pair(p.stride),
                pair(p.padding),
                pair(p.output_padding),
                pair(p.dilation)
            ),
        }
    })
}

// ---------------------------------------------------------------- ops

/// y = conv_transpose2d(x, w) + bias: every input pixel adds a copy of the kernel, scaled by
/// its value, into the output at stride spacing;
/// OH = (H − 1)·sh − 2·ph + dh·(kH − 1) + output_padding_h + 1.
// x: [N, C_in, H, W]   w: [C_in, C_out, kH, kW]   bias: [C_out]   ->   y: [N, C_out, OH, OW]
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &ConvTranspose2dParams) -> Result<Tensor> {
    const OP: &str = "conv_transpose2d";
    let _profile = profile::scope(OpFamily::ConvTranspose, OP, x);
    let g = conv_transpose2d_geometry(OP, x.shape(), w.shape(), p)?;
    check_bias(OP, bias, g.c_out, w.shape())?;
    let operands: Vec<&Tensor> = [x, w].into_iter().chain(bias).collect();
    let dtype = same_dtype_device(OP, &operands)?;
    let shape = [g.batch, g.c_out, g.oh, g.ow];
    match x.storage() {
        Storage::Cpu(_) => {
            let (x, w, bias) = (x.contiguous()?, w.contiguous()?, bias.map(Tensor::contiguous).transpose()?);
            with_float_type!(dtype, T => {
                let (x, w, bias) = (x.cpu_slice::<T>()?, w.cpu_slice::<T>()?, bias_slice::<T>(bias.as_ref())?);
                Ok(Tensor::from_kernel(kernel::conv_transpose2d_forward(x, w, bias, &g), &shape))
            })
        }
        Storage::Reference(_) => {
            let (x, w, bias) = (reference::values(x)?, reference::values(w)?, reference::values_of(bias)?);
            Ok(reference::tensor(reference::conv::conv_transpose2d(&x, &w, bias.as_deref(), &g), &shape, dtype))
        }
        Storage::Gpu(_) => {
            let inputs = [(Some(x), Cut::Rows), (Some(w), Cut::Whole), (bias, Cut::Whole)];
            let [y] = run_gpu_in_parts(OP, g.batch, &inputs, [(&shape, Cut::Rows)], |ctx, part, i, [y]| {
                let c = Conv2dGeometry { batch: part.rows, ..g }.transposed();
                let (x, w) = (i[0].expect("x"), i[1].expect("w"));
                gpu_kernel::backward_data(ctx, ConvRung::ImplicitGemm, &c, [x, w], i[2], y, Output::Overwrite)
            })?;
            Ok(y)
        }
    }
}

/// dL/dx of y = conv_transpose2d(x, w): a plain conv2d of grad_y with the same weight.
/// The input size is recovered exactly from grad_y's, since output_padding is a parameter
/// (`ops::checks::transposed_input_shape`).
// grad_y: [N, C_out, OH, OW]   w: [C_in, C_out, kH, kW]   ->   dx: [N, C_in, H, W]
pub fn conv_transpose2d_backward_data(grad_y: &Tensor, w: &Tensor, p: &ConvTranspose2dParams) -> Result<Tensor> {
    const OP: &str = "conv_transpose2d_backward_data";
    let _profile = profile::scope(OpFamily::ConvTranspose, OP, grad_y);
    let ws = rank4(OP, "weight", "[C_in, C_out, kH, kW]", w.shape())?;
    let input_shape = transposed_input_shape(OP, grad_y.shape(), ws, p)?;
    let g = conv_transpose2d_geometry(OP, &input_shape, &ws, p)?;
    check_grad(OP, grad_y, [g.batch, g.c_out, g.oh, g.ow])?;
    let dtype = same_dtype_device(OP, &[grad_y, w])?;
    let shape = [g.batch, g.c_in, g.h, g.w];
    match grad_y.storage() {
        Storage::Cpu(_) => {
            let (gy, w) = (grad_y.contiguous()?, w.contiguous()?);
            with_float_type!(dtype, T => Ok(Tensor::from_kernel(
                kernel::conv_transpose2d_backward_data(gy.cpu_slice::<T>()?, w.cpu_slice::<T>()?, &g),
                &shape,
            )))
        }
        Storage::Reference(_) => {
            let dx = reference::conv::conv_transpose2d_backward_data(
                &reference::values(grad_y)?,
                &reference::values(w)?,
                &g,
            );
            Ok(reference::tensor(dx, &shape, dtype))
        }
        Storage::Gpu(_) => {
            let inputs = [(Some(grad_y), Cut::Rows), (Some(w), Cut::Whole)];
            let [dx] = run_gpu_in_parts(OP, g.batch, &inputs, [(&shape, Cut::Rows)], |ctx, part, i, [dx]| {
                let (gy, w) = (i[0].expect("grad_y"), i[1].expect("w"));
                let c = Conv2dGeometry { batch: part.rows, ..g }.transposed();
                gpu_kernel::forward(ctx, ConvRung::ImplicitGemm, &c, [gy, w], None, dx, Output::Overwrite)
            })?;
            Ok(dx)
        }
    }
}

/// dL/dw of y = conv_transpose2d(x, w): the correlation of grad_y with x, summed over the batch.
// grad_y: [N, C_out, OH, OW]   x: [N, C_in, H, W]   ->   dw: weight_shape = [C_in, C_out, kH, kW]
pub fn conv_transpose2d_backward_weight(
    grad_y: &Tensor,
    x: &Tensor,
    weight_shape: &[usize],
    p: &ConvTranspose2dParams,
) -> Result<Tensor> {
    const OP: &str = "conv_transpose2d_backward_weight";
    let _profile = profile::scope(OpFamily::ConvTranspose, OP, grad_y);
    let g = conv_transpose2d_geometry(OP, x.shape(), weight_shape, p)?;
    check_grad(OP, grad_y, [g.batch, g.c_out, g.oh, g.ow])?;
    let dtype = same_dtype_device(OP, &[grad_y, x])?;
    match grad_y.storage() {
        Storage::Cpu(_) => {
            let (gy, x) = (grad_y.contiguous()?, x.contiguous()?);
            with_float_type!(dtype, T => Ok(Tensor::from_kernel(
                kernel::conv_transpose2d_backward_weight(gy.cpu_slice::<T>()?, x.cpu_slice::<T>()?, &g),
                weight_shape,
            )))
        }
        Storage::Reference(_) => {
            let dw = reference::conv::conv_transpose2d_backward_weight(
                &reference::values(grad_y)?,
                &reference::values(x)?,
                &g,
            );
            Ok(reference::tensor(dw, weight_shape, dtype))
        }
        Storage::Gpu(_) => {
            let inputs = [(Some(grad_y), Cut::Rows), (Some(x), Cut::Rows)];
            let [dw] = run_gpu_in_parts(OP, g.batch, &inputs, [(weight_shape, Cut::Sum)], |ctx, part, i, [dw]| {
                let (gy, x) = (i[0].expect("grad_y"), i[1].expect("x"));
                let c = Conv2dGeometry { batch: part.rows, ..g }.transposed();
                gpu_kernel::backward_weight(ctx, ConvRung::ImplicitGemm, &c, [x, gy], dw, part.mode)
            })?;
            Ok(dw)
        }
    }
}

/// dL/dbias of y = conv_transpose2d(x, w) + bias: grad_y summed over batch and pixels.
// grad_y: [N, C_out, OH, OW]   ->   db: [C_out]
pub fn conv_transpose2d_backward_bias(grad_y: &Tensor) -> Result<Tensor> {
    const OP: &str = "conv_transpose2d_backward_bias";
    let _profile = profile::scope(OpFamily::ConvTranspose, OP, grad_y);
    // The same reduction as conv2d's bias gradient.
    crate::ops::conv2d::channel_sums(OP, grad_y)
}
