//! Pooling on vars: max pool (remembers its argmax), average pool, global average pool.

use tensor::ops::pool::{
    avg_pool2d as avg_pool2d_forward, avg_pool2d_backward, global_avg_pool2d as global_avg_pool2d_forward,
    global_avg_pool2d_backward, max_pool2d as max_pool2d_forward, max_pool2d_backward,
};
use tensor::Result;

use crate::var::Var;

/// x: [N, C, H, W] → [N, C, OH, OW], OH = ⌊(H + 2·pad − k)/stride⌋ + 1; padding is −∞.
pub fn max_pool2d(x: &Var, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Result<Var> {
    let (out, argmax) = max_pool2d_forward(&x.value(), kernel, stride, padding)?;
    let shape = x.shape();
    // Each output copied one input element: its gradient goes back to that element only.
    Ok(Var::from_op("max_pool2d", out, &[x], move |g| Ok(vec![Some(max_pool2d_backward(g, &argmax, &shape)?)])))
}

/// x: [N, C, H, W] → [N, C, OH, OW]; the mean counts padded zeros (count_include_pad).
pub fn avg_pool2d(x: &Var, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Result<Var> {
    let out = avg_pool2d_forward(&x.value(), kernel, stride, padding)?;
    let shape = x.shape();
    // Each output is (1/kH·kW)·Σ window: every window element gets g/(kH·kW).
    Ok(Var::from_op("avg_pool2d", out, &[x], move |g| {
        Ok(vec![Some(avg_pool2d_backward(g, &shape, kernel, stride, padding)?)])
    }))
}

/// x: [N, C, H, W] → [N, C, 1, 1], the mean of each plane.
pub fn global_avg_pool2d(x: &Var) -> Result<Var> {
    let out = global_avg_pool2d_forward(&x.value())?;
    let shape = x.shape();
    Ok(Var::from_op("global_avg_pool2d", out, &[x], move |g| Ok(vec![Some(global_avg_pool2d_backward(g, &shape)?)])))
}
