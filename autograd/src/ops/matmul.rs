//! Matrix products on vars: matmul (2-D and batched) and the Linear layer's x·Wᵀ + b.

use tensor::ops::matmul::matmul as matmul_tensors;
use tensor::ops::reduce::sum_to_shape;
use tensor::Result;

use crate::ops::elementwise::grad_if;
use crate::var::Var;

/// C = A·B for [m, k]·[k, n], [batch, m, k]·[batch, k, n], or a 2-D operand broadcast
/// over the other's batch.
pub fn matmul(a: &Var, b: &Var) -> Result<Var> {
    let (av, bv) = (a.value(), b.value());
    let out = matmul_tensors(&av, &bv)?;
    let (sa, sb, na, nb) = (a.shape(), b.shape(), a.requires_grad(), b.requires_grad());
    // C = A·B  ⇒  dA = G·Bᵀ and dB = Aᵀ·G. The transposes are stride swaps, never copies;
    // a 2-D operand broadcast over the batch sums its gradient over the batch.
    Ok(Var::from_op("matmul", out, &[a, b], move |g| {
        Ok(vec![
            grad_if(na, || sum_to_shape(&matmul_tensors(g, &bv.transpose(-1, -2)?)?, &sa))?,
            grad_if(nb, || sum_to_shape(&matmul_tensors(&av.transpose(-1, -2)?, g)?, &sb))?,
        ])
    }))
}

/// y = x·Wᵀ + b. x: [N, in], weight: [out, in] (PyTorch's layout), bias: \[out\] → [N, out].
pub fn linear(x: &Var, weight: &Var, bias: Option<&Var>) -> Result<Var> {
    let y = if x.shape().len() == 2 { linear_2d(x, weight)? } else { matmul(x, &weight.transpose(0, 1)?)? };
    match bias {
        Some(b) => y.add(b),
        None => Ok(y),
    }
}

impl Var {
    /// Matrix product with `other`; see the free function `matmul` in this module for shapes.
    pub fn matmul(&self, other: &Var) -> Result<Var> {
        matmul(self, other)
    }
}

/// y = x·Wᵀ for x: [N, in], weight: [out, in], as one op so that the weight's gradient comes
/// out in the weight's own layout: dW = Gᵀ·X is `[out, in]` and contiguous. (Through a
/// `transpose` var it would be computed as (Xᵀ·G)ᵀ, a strided view that the optimizer must
/// copy element by element every step.)
fn linear_2d(x: &Var, weight: &Var) -> Result<Var> {
    let (xv, wv) = (x.value(), weight.value());
    let out = matmul_tensors(&xv, &wv.transpose(0, 1)?)?;
    let (nx, nw) = (x.requires_grad(), weight.requires_grad());
    // y = x·Wᵀ  ⇒  dx = G·W ([N, out]·[out, in]) and dW = Gᵀ·x ([out, N]·[N, in]).
    Ok(Var::from_op("linear", out, &[x, weight], move |g| {
        Ok(vec![grad_if(nx, || matmul_tensors(g, &wv))?, grad_if(nw, || matmul_tensors(&g.transpose(0, 1)?, &xv))?])
    }))
}
