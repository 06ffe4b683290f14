//! Upsampling on vars by an integer factor: nearest and bilinear (align_corners = false).

use tensor::ops::interpolate::{
    upsample_bilinear2d as bilinear_forward, upsample_bilinear2d_backward, upsample_nearest2d as nearest_forward,
    upsample_nearest2d_backward,
};
use tensor::Result;

use crate::var::Var;

/// x: [N, C, H, W] → [N, C, H·scale, W·scale], each pixel repeated.
pub fn upsample_nearest2d(x: &Var, scale: usize) -> Result<Var> {
    let out = nearest_forward(&x.value(), scale)?;
    let shape = x.shape();
    // Each input pixel was copied scale² times: its gradient is the sum over its copies.
    Ok(Var::from_op("upsample_nearest2d", out, &[x], move |g| {
        Ok(vec![Some(upsample_nearest2d_backward(g, &shape, scale)?)])
    }))
}

/// x: [N, C, H, W] → [N, C, H·scale, W·scale], bilinear as PyTorch with align_corners = false.
pub fn upsample_bilinear2d(x: &Var, scale: usize) -> Result<Var> {
    let out = bilinear_forward(&x.value(), scale)?;
    let shape = x.shape();
    // Linear in x: the backward spreads each output gradient with the forward's 4 weights.
    Ok(Var::from_op("upsample_bilinear2d", out, &[x], move |g| {
        Ok(vec![Some(upsample_bilinear2d_backward(g, &shape, scale)?)])
    }))
}
