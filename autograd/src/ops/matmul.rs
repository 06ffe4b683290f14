//! Matrix products on vars: matmul (2-D and batched) and the Linear layer's x·Wᵀ + b, with or
//! without the ReLU after it.

use tensor::ops::matmul::{linear as linear_tensors, matmul as matmul_tensors};
use tensor::ops::reduce::sum_to_shape;
use tensor::Result;

use crate::ops::elementwise::{before_fused_relu, grad_if};
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

/// y = x·Wᵀ + b. x: [N, in] (or [..., in]), weight: [out, in] (PyTorch's layout),
/// bias: \[out\] → [N, out] (or [..., out]).
pub fn linear(x: &Var, weight: &Var, bias: Option<&Var>) -> Result<Var> {
    linear_then(x, weight, bias, false)
}

/// y = relu(x·Wᵀ + b), a Linear layer and the ReLU after it, as one op: on the GPU one launch
/// (the product's epilogue adds the bias and applies the ReLU) where written out it is three.
/// The same values and gradients, bit for bit on the CPU, as `linear(x, weight, bias)?.relu()`.
pub fn linear_relu(x: &Var, weight: &Var, bias: Option<&Var>) -> Result<Var> {
    linear_then(x, weight, bias, true)
}

/// [`linear`], then ReLU when `relu`, as one op ([`fused_linear`]). x may have any leading
/// axes, as in PyTorch: [..., in] is read as rows [M, in] and the result given back as [..., out].
fn linear_then(x: &Var, weight: &Var, bias: Option<&Var>, relu: bool) -> Result<Var> {
    let shape = x.shape();
    let Some((&features, leading)) = shape.split_last() else {
        return Err(tensor::TensorError::Shape { op: "linear", msg: "x is a scalar; it must be [..., in]".into() });
    };
    if shape.len() == 2 {
        return fused_linear(x, weight, bias, relu);
    }
    let rows = x.reshape(&[leading.iter().product(), features])?;
    let y = fused_linear(&rows, weight, bias, relu)?;
    let out_shape: Vec<usize> = leading.iter().copied().chain([y.shape()[1]]).collect();
    y.reshape(&out_shape)
}

/// y = x·Wᵀ (+ b) (then ReLU) for x: [N, in], weight: [out, in], as one op, so that the weight's
/// gradient comes out in the weight's own layout: dW = Gᵀ·X is `[out, in]` and contiguous.
/// (Through a `transpose` var it would be computed as (Xᵀ·G)ᵀ, a strided view that the
/// optimizer must copy element by element every step.)
fn fused_linear(x: &Var, weight: &Var, bias: Option<&Var>, relu: bool) -> Result<Var> {
    let (xv, wv) = (x.value(), weight.value());
    let bv = bias.map(Var::value);
    let out = linear_tensors(&xv, &wv, bv.as_ref(), relu)?;
    let saved_out = relu.then(|| out.clone());
    let need = [x.requires_grad(), weight.requires_grad(), bias.is_some_and(Var::requires_grad)];
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    let bias_shape = bias.map(Var::shape);
    let name = if relu { "linear_relu" } else { "linear" };
    // y = relu(p), p = x·Wᵀ + b  ⇒  G_p = G where y > 0 (0 elsewhere; ReLU's row reads y), then
    // dx = G_p·W ([N, out]·[out, in]), dW = G_pᵀ·x ([out, N]·[N, in]) and db = G_p summed over N.
    Ok(Var::from_op(name, out, &inputs, move |g| {
        let g = before_fused_relu(g, saved_out.as_ref())?;
        let mut grads = vec![
            grad_if(need[0], || matmul_tensors(&g, &wv))?,
            grad_if(need[1], || matmul_tensors(&g.transpose(0, 1)?, &xv))?,
        ];
        if let Some(shape) = &bias_shape {
            grads.push(grad_if(need[2], || sum_to_shape(&g, shape))?);
        }
        Ok(grads)
    }))
}

impl Var {
    /// Matrix product with `other`; see the free function `matmul` in this module for shapes.
    pub fn matmul(&self, other: &Var) -> Result<Var> {
        matmul(self, other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::{DType, Rng, Tensor};

    /// y and the three gradients of L = Σ y·w for a fixed random w, in f32 on the CPU, as bits.
    fn value_and_gradients(layer: impl Fn(&Var, &Var, &Var) -> Result<Var>) -> [Vec<u32>; 4] {
        let mut rng = Rng::new(3);
        let mut draw = |shape: &[usize]| Tensor::rand_uniform(shape, -1.0, 1.0, DType::F32, &mut rng);
        let (x, w, b) = (Var::parameter(draw(&[13, 7])), Var::parameter(draw(&[5, 7])), Var::parameter(draw(&[5])));
        let upstream = Var::constant(draw(&[13, 5]));
        let y = layer(&x, &w, &b).unwrap();
        y.mul(&upstream).unwrap().sum_all().unwrap().backward().unwrap();
        let bits = |t: Tensor| t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect();
        [bits(y.value()), bits(x.grad().unwrap()), bits(w.grad().unwrap()), bits(b.grad().unwrap())]
    }

    #[test]
    fn the_fused_linear_relu_gives_linear_then_relus_bits_on_the_cpu() {
        let fused = value_and_gradients(|x, w, b| linear_relu(x, w, Some(b)));
        let written_out = value_and_gradients(|x, w, b| linear(x, w, Some(b))?.relu());
        for (what, (a, b)) in ["y", "∂/∂x", "∂/∂W", "∂/∂b"].iter().zip(fused.iter().zip(&written_out)) {
            assert_eq!(a, b, "{what}");
        }
        assert!(fused[0].contains(&0) && fused[0].iter().any(|&v| v != 0), "some outputs on each side");
    }
}
