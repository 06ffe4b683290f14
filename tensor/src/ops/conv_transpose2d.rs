//! conv_transpose2d on [N, C, H, W] tensors with PyTorch's semantics (groups = 1): the forward
//! and the three backward ops autograd needs (data, weight, bias). The CPU and GPU run it as
//! conv2d's kernels on the transposed geometry (`Conv2dGeometry::transposed`): the forward is
//! a conv2d's backward-data, the backward-data a conv2d's forward, the backward-weight a
//! conv2d's with x and grad_y exchanged (`ops::conv2d::run_kernel`); the reference device
//! runs the scatter definitions of `reference::conv`, so the identities are tested, not assumed.

use crate::descriptors::{Conv2dGeometry, ConvKernel};
use crate::error::{shape_err, Result, TensorError};
use crate::ops::checks::{
    check_bias, check_grad, check_output_padding, check_params, check_plane, pair, rank4, transposed_input_shape,
};
use crate::ops::conv2d::run_kernel;
use crate::profile::{self, OpFamily};
use crate::reference;
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
/// Computed as conv2d's backward-data on the transposed geometry, x in grad_y's place.
// x: [N, C_in, H, W]   w: [C_in, C_out, kH, kW]   bias: [C_out]   ->   y: [N, C_out, OH, OW]
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &ConvTranspose2dParams) -> Result<Tensor> {
    conv_transpose2d_then(x, w, bias, p, false)
}

/// relu(conv_transpose2d(x, w) + bias): as [`crate::ops::conv2d::conv2d_relu`], the ReLU the
/// epilogue of the GPU launch, the ReLU op after it elsewhere. Shapes as [`conv_transpose2d`].
pub fn conv_transpose2d_relu(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: &ConvTranspose2dParams,
) -> Result<Tensor> {
    conv_transpose2d_then(x, w, bias, p, true)
}

fn conv_transpose2d_then(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: &ConvTranspose2dParams,
    relu: bool,
) -> Result<Tensor> {
    const OP: &str = "conv_transpose2d";
    let _profile = profile::scope(OpFamily::ConvTranspose, OP, x);
    let g = conv_transpose2d_geometry(OP, x.shape(), w.shape(), p)?;
    check_bias(OP, bias, g.c_out, w.shape())?;
    let shape = [g.batch, g.c_out, g.oh, g.ow];
    run_kernel(OP, ConvKernel::BackwardData, &g.transposed(), [x, w], bias, &shape, relu, |x, w, bias| {
        reference::conv::conv_transpose2d(x, w, bias, &g)
    })
}

/// dL/dx of y = conv_transpose2d(x, w): a plain conv2d of grad_y with the same weight (the
/// forward is y = Aᵀx for the transposed geometry's conv2d A, so dx = A·dy).
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
    let shape = [g.batch, g.c_in, g.h, g.w];
    run_kernel(OP, ConvKernel::Forward, &g.transposed(), [grad_y, w], None, &shape, false, |gy, w, _| {
        reference::conv::conv_transpose2d_backward_data(gy, w, &g)
    })
}

/// dL/dw of y = conv_transpose2d(x, w): the correlation of grad_y with x, summed over the
/// batch; conv2d's weight gradient on the transposed geometry with x in grad_y's place and
/// grad_y in x's (⟨y, dy⟩ is bilinear in w the same way).
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
    run_kernel(OP, ConvKernel::BackwardWeight, &g.transposed(), [x, grad_y], None, weight_shape, false, |x, gy, _| {
        reference::conv::conv_transpose2d_backward_weight(gy, x, &g)
    })
}

/// dL/dbias of y = conv_transpose2d(x, w) + bias: grad_y summed over batch and pixels.
// grad_y: [N, C_out, OH, OW]   ->   db: [C_out]
pub fn conv_transpose2d_backward_bias(grad_y: &Tensor) -> Result<Tensor> {
    const OP: &str = "conv_transpose2d_backward_bias";
    let _profile = profile::scope(OpFamily::ConvTranspose, OP, grad_y);
    // The same reduction as conv2d's bias gradient.
    crate::ops::conv2d::channel_sums(OP, grad_y)
}
