//! Transposed 2-D convolution on vars. Its forward is conv2d's backward-data, so its
//! backward-data is a conv2d forward, and its weight gradient swaps the roles of x and g.

use tensor::ops::conv_transpose2d::{
    conv_transpose2d as conv_transpose2d_forward, conv_transpose2d_backward_bias, conv_transpose2d_backward_data,
    conv_transpose2d_backward_weight, conv_transpose2d_relu as conv_transpose2d_relu_forward, ConvTranspose2dParams,
};
use tensor::Result;

use crate::ops::elementwise::{before_fused_relu, grad_if};
use crate::var::Var;

/// x: [N, C_in, H, W], weight: [C_in, C_out, kH, kW], bias: \[C_out\] → [N, C_out, OH, OW]
/// with OH = (H − 1)·stride − 2·padding + dilation·(kH − 1) + output_padding + 1.
pub fn conv_transpose2d(x: &Var, weight: &Var, bias: Option<&Var>, p: &ConvTranspose2dParams) -> Result<Var> {
    conv_transpose2d_then(x, weight, bias, p, false)
}

/// relu(conv_transpose2d(x, weight) + bias) as one op, as `conv2d_relu` is for conv2d: the
/// ReLU the epilogue of the GPU launch, the values and gradients bit for bit the two ops' on
/// the CPU. Shapes as [`conv_transpose2d`].
pub fn conv_transpose2d_relu(x: &Var, weight: &Var, bias: Option<&Var>, p: &ConvTranspose2dParams) -> Result<Var> {
    conv_transpose2d_then(x, weight, bias, p, true)
}

fn conv_transpose2d_then(
    x: &Var,
    weight: &Var,
    bias: Option<&Var>,
    p: &ConvTranspose2dParams,
    relu: bool,
) -> Result<Var> {
    let (xv, wv) = (x.value(), weight.value());
    let bv = bias.map(|b| b.value());
    let out = if relu {
        conv_transpose2d_relu_forward(&xv, &wv, bv.as_ref(), p)?
    } else {
        conv_transpose2d_forward(&xv, &wv, bv.as_ref(), p)?
    };
    let saved_out = relu.then(|| out.clone());
    let (w_shape, p) = (weight.shape(), *p);
    let need = [x.requires_grad(), weight.requires_grad(), bias.is_some_and(|b| b.requires_grad())];
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    Ok(Var::from_op(if relu { "conv_transpose2d_relu" } else { "conv_transpose2d" }, out, &inputs, move |g| {
        let g = &before_fused_relu(g, saved_out.as_ref())?;
        let mut grads = vec![
            grad_if(need[0], || conv_transpose2d_backward_data(g, &wv, &p))?,
            grad_if(need[1], || conv_transpose2d_backward_weight(g, &xv, &w_shape, &p))?,
        ];
        if bv.is_some() {
            grads.push(grad_if(need[2], || conv_transpose2d_backward_bias(g))?);
        }
        Ok(grads)
    }))
}
