//! Gradient checks of conv_transpose2d with respect to input, weight and bias, including
//! stride 2, padding and output_padding.

use crate::common;

use autograd::ops::conv_transpose2d::conv_transpose2d;
use common::{check, rng, uniform};
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
