//! Reductions on vars. Backward broadcasts the output gradient back over the reduced axes
//! (kept as size 1 so broadcasting lines up).

use tensor::ops::reduce::ReduceOp;
use tensor::shape::normalize_axis;
use tensor::{Result, Tensor};

use crate::var::Var;

/// The output shape with reduced axes kept as 1, so `g` can broadcast against the input.
fn keepdim_shape(shape: &[usize], axes: &[isize]) -> Result<Vec<usize>> {
    let mut out = shape.to_vec();
    if axes.is_empty() {
        out.iter_mut().for_each(|d| *d = 1);
    }
    for &a in axes {
        out[normalize_axis("reduce", a, shape.len())?] = 1;
    }
    Ok(out)
}

/// Number of input elements folded into each output element.
fn group_size(shape: &[usize], keep: &[usize]) -> usize {
    shape.iter().product::<usize>() / keep.iter().product::<usize>().max(1)
}

/// g reshaped to the keep-dim shape and broadcast to the input shape: a view (stride 0 along
/// the reduced axes), not a copy. The op that consumes it reads it through its strides, so a
/// loss's `sum` costs no launch backward (materialised, it was a copy kernel per sum).
fn expand(g: &Tensor, keep: &[usize], shape: &[usize]) -> Result<Tensor> {
    g.reshape(keep)?.broadcast_to(shape)
}

/// Sum over `axes` (all axes if empty; negative axes count from the end); `keepdim` keeps them as size 1.
pub fn sum(x: &Var, axes: &[isize], keepdim: bool) -> Result<Var> {
    let out = x.value().sum(axes, keepdim)?;
    let (shape, keep) = (x.shape(), keepdim_shape(&x.shape(), axes)?);
    // Every input element contributes once: its gradient is g.
    Ok(Var::from_op("sum", out, &[x], move |g| Ok(vec![Some(expand(g, &keep, &shape)?)])))
}

/// Mean over `axes` (all axes if empty); `keepdim` keeps them as size 1.
pub fn mean(x: &Var, axes: &[isize], keepdim: bool) -> Result<Var> {
    let out = x.value().mean(axes, keepdim)?;
    let (shape, keep) = (x.shape(), keepdim_shape(&x.shape(), axes)?);
    let n = group_size(&shape, &keep) as f64;
    Ok(Var::from_op("mean", out, &[x], move |g| Ok(vec![Some(expand(&g.mul_scalar(1.0 / n)?, &keep, &shape)?)])))
}

/// max or min: the gradient flows to the elements equal to the extreme (ties all receive it,
/// like torch.amax; with continuous random data ties do not occur).
fn extreme(x: &Var, axes: &[isize], keepdim: bool, op: ReduceOp, name: &'static str) -> Result<Var> {
    let xv = x.value();
    let out = tensor::ops::reduce::reduce(&xv, axes, keepdim, op)?;
    let (shape, keep) = (x.shape(), keepdim_shape(&x.shape(), axes)?);
    let m = out.reshape(&keep)?;
    Ok(Var::from_op(name, out, &[x], move |g| {
        let mask = xv.eq_elementwise(&m)?;
        Ok(vec![Some(expand(g, &keep, &shape)?.mul(&mask)?)])
    }))
}

/// Maximum over `axes` (all if empty); the gradient goes to every element equal to the maximum.
pub fn max(x: &Var, axes: &[isize], keepdim: bool) -> Result<Var> {
    extreme(x, axes, keepdim, ReduceOp::Max, "max")
}

/// Minimum over `axes` (all if empty); the gradient goes to every element equal to the minimum.
pub fn min(x: &Var, axes: &[isize], keepdim: bool) -> Result<Var> {
    extreme(x, axes, keepdim, ReduceOp::Min, "min")
}

/// ln Σ exp(x) over `axes` (all if empty), computed stably; the gradient is the softmax.
pub fn logsumexp(x: &Var, axes: &[isize], keepdim: bool) -> Result<Var> {
    let xv = x.value();
    let out = xv.logsumexp(axes, keepdim)?;
    let (shape, keep) = (x.shape(), keepdim_shape(&x.shape(), axes)?);
    let lse = out.reshape(&keep)?;
    // d/dx_i ln Σ_j e^{x_j} = e^{x_i − lse}: the softmax.
    Ok(Var::from_op("logsumexp", out, &[x], move |g| {
        let softmax = xv.sub(&lse)?.exp()?;
        Ok(vec![Some(expand(g, &keep, &shape)?.mul(&softmax)?)])
    }))
}

/// Variance over `axes` (all if empty); `unbiased` divides by n − 1 instead of n.
pub fn var(x: &Var, axes: &[isize], keepdim: bool, unbiased: bool) -> Result<Var> {
    let xv = x.value();
    let out = xv.var(axes, keepdim, unbiased)?;
    let (shape, keep) = (x.shape(), keepdim_shape(&x.shape(), axes)?);
    let n = group_size(&shape, &keep);
    let denom = (n - usize::from(unbiased)) as f64;
    let axes = axes.to_vec();
    // var = Σ(x − μ)²/d  ⇒  ∂var/∂x_i = 2(x_i − μ)/d  (the Σ(x − μ) = 0 term from μ vanishes).
    Ok(Var::from_op("var", out, &[x], move |g| {
        let centred = xv.sub(&xv.mean(&axes, true)?)?;
        Ok(vec![Some(expand(g, &keep, &shape)?.mul(&centred)?.mul_scalar(2.0 / denom)?)])
    }))
}

impl Var {
    /// Sum over `axes` (all if empty); `keepdim` keeps them as size 1.
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        sum(self, axes, keepdim)
    }
    /// Sum of every element, as a scalar.
    pub fn sum_all(&self) -> Result<Var> {
        sum(self, &[], false)
    }
    /// Mean over `axes` (all if empty); `keepdim` keeps them as size 1.
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        mean(self, axes, keepdim)
    }
    /// Mean of every element, as a scalar.
    pub fn mean_all(&self) -> Result<Var> {
        mean(self, &[], false)
    }
    /// Maximum over `axes` (all if empty).
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        max(self, axes, keepdim)
    }
    /// Minimum over `axes` (all if empty).
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        min(self, axes, keepdim)
    }
    /// ln Σ exp over `axes` (all if empty), computed stably.
    pub fn logsumexp(&self, axes: &[isize], keepdim: bool) -> Result<Var> {
        logsumexp(self, axes, keepdim)
    }
    /// Variance over `axes` (all if empty); `unbiased` divides by n − 1.
    pub fn var(&self, axes: &[isize], keepdim: bool, unbiased: bool) -> Result<Var> {
        var(self, axes, keepdim, unbiased)
    }
}
