//! Gradient checks of conv2d with respect to input, weight and bias, over strides, paddings,
//! dilations, non-square kernels and batches.

use crate::common;

use autograd::ops::conv2d::{conv2d, conv2d_relu};
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
