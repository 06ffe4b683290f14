//! Gradient checks of nearest and bilinear upsampling (align_corners = false), and of the
//! interleaving of a nearest-upsampled convolution's phases.

use crate::common;

use autograd::ops::conv2d::interleave_phases;
use autograd::ops::interpolate::{upsample_bilinear2d, upsample_nearest2d};
use common::{check, rng, uniform};

#[test]
fn upsample_nearest_x2_matches_finite_differences() {
    let mut r = rng();
    check(|v| upsample_nearest2d(&v[0], 2), &[uniform(&[2, 3, 3, 5], -1.0, 1.0, &mut r)]);
}

#[test]
fn upsample_bilinear_x2_matches_finite_differences() {
    let mut r = rng();
    check(|v| upsample_bilinear2d(&v[0], 2), &[uniform(&[2, 2, 5, 3], -1.0, 1.0, &mut r)]);
}

#[test]
fn upsample_bilinear_x3_matches_finite_differences() {
    let mut r = rng();
    check(|v| upsample_bilinear2d(&v[0], 3), &[uniform(&[1, 2, 4, 4], -1.0, 1.0, &mut r)]);
}

#[test]
fn interleaving_phases_matches_finite_differences() {
    let mut r = rng();
    check(|v| interleave_phases(&v[0])?.exp(), &[uniform(&[2, 8, 4, 3], -1.0, 1.0, &mut r)]);
}
