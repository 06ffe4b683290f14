//! 2-D convolution on vars, with its three backward kernels (data, weight, bias).

use tensor::ops::conv2d::{
    conv2d as conv2d_forward, conv2d_backward_bias, conv2d_backward_data, conv2d_backward_weight, Conv2dParams,
};
use tensor::Result;

use crate::ops::elementwise::grad_if;
use crate::var::Var;

/// x: [N, C_in, H, W], weight: [C_out, C_in, kH, kW], bias: \[C_out\] → [N, C_out, OH, OW].
pub fn conv2d(x: &Var, weight: &Var, bias: Option<&Var>, p: &Conv2dParams) -> Result<Var> {
    let (xv, wv) = (x.value(), weight.value());
    let bv = bias.map(|b| b.value());
    let out = conv2d_forward(&xv, &wv, bv.as_ref(), p)?;
    let (x_shape, w_shape, p) = (x.shape(), weight.shape(), *p);
    let need = [x.requires_grad(), weight.requires_grad(), bias.is_some_and(|b| b.requires_grad())];
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    // y = x ⋆ w + b  ⇒  dx = g ⋆ᵀ w (backward-data), dw = x ⋆ g (backward-weight),
    // db = Σ over batch and positions of g.
    Ok(Var::from_op("conv2d", out, &inputs, move |g| {
        let mut grads = vec![
            grad_if(need[0], || conv2d_backward_data(g, &wv, &x_shape, &p))?,
            grad_if(need[1], || conv2d_backward_weight(g, &xv, &w_shape, &p))?,
        ];
        if bv.is_some() {
            grads.push(grad_if(need[2], || conv2d_backward_bias(g))?);
        }
        Ok(grads)
    }))
}
