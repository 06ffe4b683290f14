//! 2-D convolution on vars, with its three backward kernels (data, weight, bias).

use tensor::ops::conv2d::{
    conv2d as conv2d_forward, conv2d_backward_bias, conv2d_backward_data, conv2d_backward_weight,
    conv2d_relu as conv2d_relu_forward, Conv2dParams,
};
use tensor::ops::upsampled_conv::{
    conv2d_nearest_upsampled as conv2d_nearest_upsampled_forward, conv2d_nearest_upsampled_backward_weight,
    interleave_phases as interleave_forward, interleave_phases_backward, phase_weights as phase_weights_forward,
    phase_weights_backward,
};
use tensor::Result;

use crate::ops::elementwise::{before_fused_relu, grad_if};
use crate::var::Var;

/// x: [N, C_in, H, W], weight: [C_out, C_in, kH, kW], bias: \[C_out\] → [N, C_out, OH, OW].
pub fn conv2d(x: &Var, weight: &Var, bias: Option<&Var>, p: &Conv2dParams) -> Result<Var> {
    conv2d_then(x, weight, bias, p, false)
}

/// relu(conv2d(x, weight) + bias) as one op: on the GPU the ReLU is the epilogue of the
/// convolution's launch (one launch fewer forward). The same values and gradients, bit for bit
/// on the CPU, as `conv2d(x, weight, bias, p)?.relu()`. Shapes as [`conv2d`].
pub fn conv2d_relu(x: &Var, weight: &Var, bias: Option<&Var>, p: &Conv2dParams) -> Result<Var> {
    conv2d_then(x, weight, bias, p, true)
}

fn conv2d_then(x: &Var, weight: &Var, bias: Option<&Var>, p: &Conv2dParams, relu: bool) -> Result<Var> {
    let (xv, wv) = (x.value(), weight.value());
    let bv = bias.map(|b| b.value());
    let out =
        if relu { conv2d_relu_forward(&xv, &wv, bv.as_ref(), p)? } else { conv2d_forward(&xv, &wv, bv.as_ref(), p)? };
    let saved_out = relu.then(|| out.clone());
    let (x_shape, w_shape, p) = (x.shape(), weight.shape(), *p);
    let need = [x.requires_grad(), weight.requires_grad(), bias.is_some_and(|b| b.requires_grad())];
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    // y = x ⋆ w + b  ⇒  dx = g ⋆ᵀ w (backward-data), dw = x ⋆ g (backward-weight),
    // db = Σ over batch and positions of g (g taken through the ReLU first, when there is one).
    Ok(Var::from_op(if relu { "conv2d_relu" } else { "conv2d" }, out, &inputs, move |g| {
        let g = &before_fused_relu(g, saved_out.as_ref())?;
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

/// conv2d(upsample_nearest2d(x, 2), weight, bias) with a 3×3 kernel, stride 1 and padding 1,
/// computed on x itself (`tensor::ops::upsampled_conv` has the algebra): no upsampled copy of
/// x, and on the CPU 9 multiply-adds per input channel and output quad for the forward where
/// the layer as written takes 36. The backward-data runs through the layer's four output
/// phases, one 2×2 convolution with padding 1 and 4·C_out outputs (16 multiply-adds); the
/// weight gradient likewise, or on the CPU, where the tuner times it faster, by the forward's
/// Winograd transform transposed (9). The values are the written-out layer's up to rounding.
// x: [N, C_in, H, W]   weight: [C_out, C_in, 3, 3]   bias: [C_out]   ->   [N, C_out, 2H, 2W]
pub fn conv2d_nearest_upsampled(x: &Var, weight: &Var, bias: Option<&Var>) -> Result<Var> {
    let (xv, wv) = (x.value(), weight.value());
    let bv = bias.map(|b| b.value());
    let out = conv2d_nearest_upsampled_forward(&xv, &wv, bv.as_ref())?;
    let need = [x.requires_grad(), weight.requires_grad(), bias.is_some_and(|b| b.requires_grad())];
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    // dx through the phases: g_phases = interleaveᵀ(g), then the 2×2 convolution's backward-data
    // with the phase kernels; dw by its own op (through the phases, or on the CPU by the layer's
    // own Winograd transform); db = Σ g over batch and pixels.
    Ok(Var::from_op("conv2d_nearest_upsampled", out, &inputs, move |g| {
        let p = Conv2dParams::new(1, 1);
        let mut grads = vec![
            grad_if(need[0], || {
                conv2d_backward_data(&interleave_phases_backward(g)?, &phase_weights_forward(&wv)?, xv.shape(), &p)
            })?,
            grad_if(need[1], || conv2d_nearest_upsampled_backward_weight(g, &xv))?,
        ];
        if bv.is_some() {
            grads.push(grad_if(need[2], || conv2d_backward_bias(g))?);
        }
        Ok(grads)
    }))
}

/// weight: [C_out, C_in, 3, 3] → [4·C_out, C_in, 2, 2], the 2×2 kernels of the four output
/// phases (`tensor::ops::upsampled_conv::phase_weights`).
pub fn phase_weights(weight: &Var) -> Result<Var> {
    let out = phase_weights_forward(&weight.value())?;
    // A linear map: its backward is its transpose, each 3×3 tap gathering its four 2×2 taps.
    Ok(Var::from_op("phase_weights", out, &[weight], |g| Ok(vec![Some(phase_weights_backward(g)?)])))
}

/// phases: [N, 4·C, H + 1, W + 1] → [N, C, 2H, 2W], out[n, c, 2i + a, 2j + b] =
/// phases[n, 4c + 2a + b, i + a, j + b] (`tensor::ops::upsampled_conv::interleave_phases`).
pub fn interleave_phases(phases: &Var) -> Result<Var> {
    let out = interleave_forward(&phases.value())?;
    // Each output is one phase element: its gradient goes back there; unread elements get 0.
    Ok(Var::from_op("interleave_phases", out, &[phases], |g| Ok(vec![Some(interleave_phases_backward(g)?)])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv_transpose2d::{conv_transpose2d, conv_transpose2d_relu};
    use tensor::ops::conv_transpose2d::ConvTranspose2dParams;
    use tensor::{DType, Rng, Tensor};

    /// y and the three gradients of L = Σ y·u for a fixed random u, in f32 on the CPU, as bits.
    fn value_and_gradients(layer: impl Fn(&Var, &Var, &Var) -> Result<Var>, w_shape: &[usize]) -> [Vec<u32>; 4] {
        let mut rng = Rng::new(5);
        let mut draw = |shape: &[usize]| Tensor::rand_uniform(shape, -1.0, 1.0, DType::F32, &mut rng);
        let (x, w) = (Var::parameter(draw(&[2, 3, 6, 5])), Var::parameter(draw(w_shape)));
        let b = Var::parameter(draw(&[4]));
        let y = layer(&x, &w, &b).unwrap();
        let upstream = Var::constant(draw(&y.shape()));
        y.mul(&upstream).unwrap().sum_all().unwrap().backward().unwrap();
        let bits = |t: Tensor| t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect();
        [bits(y.value()), bits(x.grad().unwrap()), bits(w.grad().unwrap()), bits(b.grad().unwrap())]
    }

    fn assert_same_bits(fused: [Vec<u32>; 4], written_out: [Vec<u32>; 4]) {
        for (what, (a, b)) in ["y", "∂/∂x", "∂/∂W", "∂/∂b"].iter().zip(fused.iter().zip(&written_out)) {
            assert_eq!(a, b, "{what}");
        }
        assert!(fused[0].contains(&0) && fused[0].iter().any(|&v| v != 0), "some outputs on each side");
    }

    #[test]
    fn the_fused_conv2d_relu_gives_conv2d_then_relus_bits_on_the_cpu() {
        let p = Conv2dParams::new(2, 1);
        assert_same_bits(
            value_and_gradients(|x, w, b| conv2d_relu(x, w, Some(b), &p), &[4, 3, 3, 3]),
            value_and_gradients(|x, w, b| conv2d(x, w, Some(b), &p)?.relu(), &[4, 3, 3, 3]),
        );
    }

    #[test]
    fn the_fused_conv_transpose2d_relu_gives_conv_transpose2d_then_relus_bits_on_the_cpu() {
        let p = ConvTranspose2dParams::new(2, 1);
        assert_same_bits(
            value_and_gradients(|x, w, b| conv_transpose2d_relu(x, w, Some(b), &p), &[3, 4, 4, 4]),
            value_and_gradients(|x, w, b| conv_transpose2d(x, w, Some(b), &p)?.relu(), &[3, 4, 4, 4]),
        );
    }
}
