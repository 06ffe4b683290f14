//! Gradient checks of conv2d with respect to input, weight and bias, over strides, paddings,
//! dilations, non-square kernels and batches.

use crate::common;

use autograd::ops::conv2d::{conv2d, conv2d_nearest_upsampled, conv2d_relu, phase_weights};
use autograd::ops::interpolate::upsample_nearest2d;
use autograd::Var;
use common::{away_from_zero, check, rng, uniform};
use tensor::ops::conv2d::Conv2dParams;

fn check_conv2d(x: &[usize], w: &[usize], p: Conv2dParams, with_bias: bool) {
    let mut r = rng();
    let mut inputs = vec![uniform(x, -1.0, 1.0, &mut r), uniform(w, -1.0, 1.0, &mut r)];
    if with_bias {
        inputs.push(uniform(&[w[0]], -1.0, 1.0, &mut r));
    }
    check(move |v| conv2d(&v[0], &v[1], v.get(2), &p), &inputs);
}

#[test]
fn conv2d_3x3_pad1_with_bias_matches_finite_differences() {
    check_conv2d(&[2, 3, 5, 6], &[4, 3, 3, 3], Conv2dParams::new(1, 1), true);
}

#[test]
fn conv2d_stride2_pad1_odd_size_matches_finite_differences() {
    check_conv2d(&[3, 2, 7, 5], &[3, 2, 3, 3], Conv2dParams::new(2, 1), true);
}

#[test]
fn conv2d_dilation2_pad2_without_bias_matches_finite_differences() {
    check_conv2d(&[1, 2, 7, 7], &[2, 2, 3, 3], Conv2dParams::new(1, 2).with_dilation(2), false);
}

#[test]
fn conv2d_non_square_kernel_and_asymmetric_params_match_finite_differences() {
    let p = Conv2dParams { stride: [2, 1], padding: [0, 2], dilation: [1, 2] };
    check_conv2d(&[2, 3, 6, 5], &[2, 3, 2, 3], p, true);
}

#[test]
fn conv2d_1x1_stride2_shortcut_matches_finite_differences() {
    check_conv2d(&[2, 4, 5, 5], &[3, 4, 1, 1], Conv2dParams::new(2, 0), false);
}

#[test]
fn conv2d_relu_matches_finite_differences_on_both_sides_of_the_kink() {
    let mut r = rng();
    // |x ⋆ w| ≤ 2·9·0.05 = 0.9 and |b| ≥ 1: no output within 0.1 of the kink, and the
    // channels of negative bias give gradient 0 (stride 2 and padding 1 included).
    let (x, w) = (uniform(&[2, 2, 5, 6], -0.05, 0.05, &mut r), uniform(&[4, 2, 3, 3], -1.0, 1.0, &mut r));
    let p = Conv2dParams::new(2, 1);
    check(move |v| conv2d_relu(&v[0], &v[1], v.get(2), &p), &[x, w, away_from_zero(&[4], 1.0, &mut r)]);
}

#[test]
fn the_phase_weights_of_an_upsampled_convolution_match_finite_differences() {
    check(|v| phase_weights(&v[0])?.exp(), &[uniform(&[3, 2, 3, 3], -1.0, 1.0, &mut rng())]);
}

#[test]
fn conv2d_of_a_nearest_upsampled_image_matches_finite_differences() {
    let mut r = rng();
    let inputs = [
        uniform(&[2, 3, 3, 4], -1.0, 1.0, &mut r),
        uniform(&[2, 3, 3, 3], -1.0, 1.0, &mut r),
        uniform(&[2], -1.0, 1.0, &mut r),
    ];
    check(|v| conv2d_nearest_upsampled(&v[0], &v[1], v.get(2)), &inputs);
}

/// The phases' 2×2 convolution gives the layer as written, upsampling then a 3×3 convolution:
/// values and all three gradients, f64, at odd sizes, a 1×1 image and without a bias.
#[test]
fn conv2d_of_a_nearest_upsampled_image_equals_upsampling_then_convolving() {
    let p = Conv2dParams::new(1, 1);
    for (x_shape, c_out, with_bias) in [([2, 3, 5, 3], 4, true), ([1, 2, 1, 1], 3, true), ([3, 5, 2, 7], 2, false)] {
        let mut r = rng();
        let leaf = |t: tensor::Tensor| Var::parameter(t);
        let x = leaf(uniform(&x_shape, -1.0, 1.0, &mut r));
        let w = leaf(uniform(&[c_out, x_shape[1], 3, 3], -1.0, 1.0, &mut r));
        let b = with_bias.then(|| leaf(uniform(&[c_out], -1.0, 1.0, &mut r)));
        let upstream = Var::constant(uniform(&[x_shape[0], c_out, 2 * x_shape[2], 2 * x_shape[3]], -1.0, 1.0, &mut r));
        let mut results = vec![];
        for fused in [true, false] {
            for v in [Some(&x), Some(&w), b.as_ref()].into_iter().flatten() {
                v.zero_grad();
            }
            let y = if fused {
                conv2d_nearest_upsampled(&x, &w, b.as_ref()).unwrap()
            } else {
                conv2d(&upsample_nearest2d(&x, 2).unwrap(), &w, b.as_ref(), &p).unwrap()
            };
            y.mul(&upstream).unwrap().sum_all().unwrap().backward().unwrap();
            let mut values = vec![y.value(), x.grad().unwrap(), w.grad().unwrap()];
            values.extend(b.as_ref().map(|b| b.grad().unwrap()));
            results.push(values.iter().map(|t| t.to_vec_f64().unwrap()).collect::<Vec<_>>());
        }
        for (what, (fused, written)) in ["y", "∂/∂x", "∂/∂W", "∂/∂b"].iter().zip(results[0].iter().zip(&results[1]))
        {
            assert_eq!(fused.len(), written.len());
            let scale = written.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (i, (a, b)) in fused.iter().zip(written).enumerate() {
                assert!((a - b).abs() <= 1e-12 * scale, "{x_shape:?} {what} [{i}]: fused {a}, written out {b}");
            }
        }
    }
}
