//! Gradient checks of conv_transpose2d with respect to input, weight and bias, including
//! stride 2, padding and output_padding.

use crate::common;

use autograd::ops::conv_transpose2d::{conv_transpose2d, conv_transpose2d_relu};
use common::{away_from_zero, check, rng, uniform};
use tensor::ops::conv_transpose2d::ConvTranspose2dParams;

fn check_convt(x: &[usize], w: &[usize], p: ConvTranspose2dParams, with_bias: bool) {
    let mut r = rng();
    let mut inputs = vec![uniform(x, -1.0, 1.0, &mut r), uniform(w, -1.0, 1.0, &mut r)];
    if with_bias {
        inputs.push(uniform(&[w[1]], -1.0, 1.0, &mut r));
    }
    check(move |v| conv_transpose2d(&v[0], &v[1], v.get(2), &p), &inputs);
}

#[test]
fn conv_transpose2d_k4_s2_p1_with_bias_matches_finite_differences() {
    check_convt(&[2, 3, 3, 4], &[3, 2, 4, 4], ConvTranspose2dParams::new(2, 1), true);
}

#[test]
fn conv_transpose2d_k3_s2_p1_output_padding1_matches_finite_differences() {
    check_convt(&[2, 2, 3, 3], &[2, 3, 3, 3], ConvTranspose2dParams::new(2, 1).with_output_padding(1), true);
}

#[test]
fn conv_transpose2d_k3_s1_p1_without_bias_matches_finite_differences() {
    check_convt(&[3, 2, 4, 5], &[2, 2, 3, 3], ConvTranspose2dParams::new(1, 1), false);
}

#[test]
fn conv_transpose2d_dilation2_matches_finite_differences() {
    check_convt(&[1, 2, 3, 3], &[2, 2, 3, 3], ConvTranspose2dParams::new(1, 0).with_dilation(2), true);
}

#[test]
fn conv_transpose2d_relu_matches_finite_differences_on_both_sides_of_the_kink() {
    let mut r = rng();
    // Each output sums at most 3·2·2 = 12 products of |x| ≤ 0.05 and |w| ≤ 1, and |b| ≥ 1.
    let (x, w) = (uniform(&[2, 3, 3, 4], -0.05, 0.05, &mut r), uniform(&[3, 4, 4, 4], -1.0, 1.0, &mut r));
    let p = ConvTranspose2dParams::new(2, 1);
    check(move |v| conv_transpose2d_relu(&v[0], &v[1], v.get(2), &p), &[x, w, away_from_zero(&[4], 1.0, &mut r)]);
}
