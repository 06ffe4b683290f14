//! Transposed 2-D convolution on vars. Its forward is conv2d's backward-data, so its
//! backward-data is a conv2d forward, and its weight gradient swaps the roles of x and g.

use tensor::ops::conv_transpose2d::{
    conv_transpose2d as conv_transpose2d_forward, conv_transpose2d_backward_bias, conv_transpose2d_backward_data,
    conv_transpose2d_backward_weight, ConvTranspose2dParams,
};
use tensor::Result;

use crate::ops::elementwise::grad_if;
use crate::var::Var;

/// x: [N, C_in, H, W], weight: [C_in, C_out, kH, kW], bias: \[C_out\] → [N, C_out, OH, OW]
/// with OH = (H − 1)·stride − 2·padding + dilation·(kH − 1) + output_padding + 1.
pub fn conv_transpose2d(x: &Var, weight: &Var, bias: Option<&Var>, p: &ConvTranspose2dParams) -> Result<Var> {
    let (xv, wv) = (x.value(), weight.value());
    let bv = bias.map(|b| b.value());
    let out = conv_transpose2d_forward(&xv, &wv, bv.as_ref(), p)?;
    let (w_shape, p) = (weight.shape(), *p);
    let need = [x.requires_grad(), weight.requires_grad(), bias.is_some_and(|b| b.requires_grad())];
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    Ok(Var::from_op("conv_transpose2d", out, &inputs, move |g| {
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
