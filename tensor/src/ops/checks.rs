//! The checks every op family makes of its operands, written once: rank-4 shapes, an empty
//! image plane, a gradient shaped like the forward's output, and one dtype and device shared by
//! all operands; a convolution's stride, dilation and bias, a transposed one's output padding and
//! input size. Each returns an error naming the op
//! and the shape, dtype or device at fault.

use crate::device::same_device;
use crate::dtype::{DType, Float};
use crate::error::{invalid, shape_err, Result, TensorError};
use crate::ops::conv_transpose2d::ConvTranspose2dParams;
use crate::tensor::Tensor;

/// The four sizes of a rank-4 shape, or an error naming `what` and its expected `layout`
/// (`"[C_out, C_in, kH, kW]"`).
pub(crate) fn rank4(op: &'static str, what: &str, layout: &str, shape: &[usize]) -> Result<[usize; 4]> {
    match shape {
        &[a, b, c, d] => Ok([a, b, c, d]),
        _ => shape_err(op, format!("{what} must have rank 4 {layout}, got shape {shape:?}")),
    }
}

/// The sizes of an image batch `[N, C, H, W]`, or an error naming `what` and its shape.
pub(crate) fn nchw(op: &'static str, what: &str, shape: &[usize]) -> Result<[usize; 4]> {
    rank4(op, what, "[N, C, H, W]", shape)
}

/// Errors on an input `[N, C, H, W]` with an empty [H, W] plane (no output size has a meaning).
pub(crate) fn check_plane(op: &'static str, x_shape: &[usize]) -> Result<()> {
    if x_shape[2] == 0 || x_shape[3] == 0 {
        return shape_err(op, format!("input {x_shape:?} has an empty [H, W] plane"));
    }
    Ok(())
}

/// Errors unless `grad_y` has the shape the forward produced.
pub(crate) fn check_grad(op: &'static str, grad_y: &Tensor, expected: [usize; 4]) -> Result<()> {
    if grad_y.shape() != expected {
        return shape_err(
            op,
            format!("grad_y has shape {:?}, expected the forward's output shape {expected:?}", grad_y.shape()),
        );
    }
    Ok(())
}

/// Errors unless all operands share the first one's dtype; returns it.
pub(crate) fn same_dtype(op: &'static str, tensors: &[&Tensor]) -> Result<DType> {
    let expected = tensors[0].dtype();
    match tensors.iter().find(|t| t.dtype() != expected) {
        Some(t) => Err(TensorError::DType { op, expected, got: t.dtype() }),
        None => Ok(expected),
    }
}

/// The dtype shared by all operands, which also share one device (an error naming `op`
/// otherwise); the caller then dispatches on any operand's storage.
pub(crate) fn same_dtype_device(op: &'static str, tensors: &[&Tensor]) -> Result<DType> {
    let dtype = same_dtype(op, tensors)?;
    same_device(op, &tensors.iter().map(|t| t.device()).collect::<Vec<_>>())?;
    Ok(dtype)
}

// ---------------------------------------------------------------- convolutions (conv2d and conv_transpose2d)

/// "3" for [3, 3], "3×5" for [3, 5]: how sizes along (H, W) read in messages.
pub(crate) fn pair(v: [usize; 2]) -> String {
    if v[0] == v[1] {
        v[0].to_string()
    } else {
        format!("{}×{}", v[0], v[1])
    }
}

/// Errors on a zero stride, dilation or kernel size (none of which has a meaning).
pub(crate) fn check_params(
    op: &'static str,
    w_shape: &[usize],
    stride: [usize; 2],
    dilation: [usize; 2],
) -> Result<()> {
    if stride.contains(&0) {
        return invalid(op, format!("stride must be at least 1, got {stride:?}"));
    }
    if dilation.contains(&0) {
        return invalid(op, format!("dilation must be at least 1, got {dilation:?}"));
    }
    if w_shape[2] == 0 || w_shape[3] == 0 {
        return shape_err(op, format!("weight {w_shape:?} has an empty kernel"));
    }
    Ok(())
}

/// Errors unless `bias` is absent or a vector of `channels` elements.
pub(crate) fn check_bias(op: &'static str, bias: Option<&Tensor>, channels: usize, w_shape: &[usize]) -> Result<()> {
    match bias {
        Some(b) if b.shape() != [channels] => shape_err(
            op,
            format!(
                "bias has shape {:?} but weight {w_shape:?} has {channels} output channels; expected [{channels}]",
                b.shape()
            ),
        ),
        _ => Ok(()),
    }
}

/// The contiguous f32/f64 slice behind an optional bias.
pub(crate) fn bias_slice<T: Float>(bias: Option<&Tensor>) -> Result<Option<&[T]>> {
    bias.map(|b| b.cpu_slice::<T>()).transpose()
}

/// PyTorch's rule: output_padding must be smaller than either the stride or the dilation.
pub(crate) fn check_output_padding(op: &'static str, p: &ConvTranspose2dParams) -> Result<()> {
    for i in 0..2 {
        if p.output_padding[i] >= p.stride[i].max(p.dilation[i]) {
            return invalid(
                op,
                format!(
                    "output_padding {:?} must be smaller than either stride {:?} or dilation {:?} along each axis",
                    p.output_padding, p.stride, p.dilation
                ),
            );
        }
    }
    Ok(())
}

/// The input shape [N, C_in, H, W] of the conv_transpose2d whose output has `grad_y_shape`,
/// with weight `ws` [C_in, C_out, kH, kW] and parameters `p` (exact, since output_padding is a
/// parameter): H = (OH + 2·ph − dh·(kH − 1) − output_padding_h − 1)/sh + 1, which must divide
/// evenly; errors name `op` and the shapes.
pub(crate) fn transposed_input_shape(
    op: &'static str,
    grad_y_shape: &[usize],
    ws: [usize; 4],
    p: &ConvTranspose2dParams,
) -> Result<[usize; 4]> {
    let gs = rank4(op, "grad_y", "[N, C_out, OH, OW]", grad_y_shape)?;
    if gs[1] != ws[1] {
        return shape_err(
            op,
            format!("grad_y {gs:?} has {} channels but weight {ws:?} has {} output channels", gs[1], ws[1]),
        );
    }
    check_params(op, &ws, p.stride, p.dilation)?;
    check_output_padding(op, p)?;
    let input_len = |i: usize| -> Option<usize> {
        let reach = p.dilation[i] * (ws[2 + i] - 1) + p.output_padding[i] + 1;
        let span = (gs[2 + i] + 2 * p.padding[i]).checked_sub(reach)?;
        (span % p.stride[i] == 0).then(|| span / p.stride[i] + 1)
    };
    let (Some(h), Some(w_in)) = (input_len(0), input_len(1)) else {
        return shape_err(
            op,
            format!(
                "grad_y {gs:?} is not the output of conv_transpose2d with weight {ws:?}, stride {}, padding {}, \
                 output_padding {}, dilation {} for any input size",
                pair(p.stride),
                pair(p.padding),
                pair(p.output_padding),
                pair(p.dilation)
            ),
        );
    };
    Ok([gs[0], ws[0], h, w_in])
}
