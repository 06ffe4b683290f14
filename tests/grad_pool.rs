//! Gradient checks of max pooling, average pooling and global average pooling.

use crate::common;

use autograd::ops::pool::{avg_pool2d, global_avg_pool2d, max_pool2d};
use common::{check, rng, uniform};

#[test]
fn max_pool_3x3_stride2_pad1_matches_finite_differences() {
    let mut r = rng();
    // Continuous random values: no ties inside a window, so the argmax is stable under ±ε.
    check(|v| max_pool2d(&v[0], [3, 3], [2, 2], [1, 1]), &[uniform(&[2, 3, 7, 6], -1.0, 1.0, &mut r)]);
}

#[test]
fn max_pool_2x2_non_overlapping_matches_finite_differences() {
    let mut r = rng();
    check(|v| max_pool2d(&v[0], [2, 2], [2, 2], [0, 0]), &[uniform(&[1, 2, 5, 4], -1.0, 1.0, &mut r)]);
}

#[test]
fn avg_pool_with_padding_matches_finite_differences() {
    let mut r = rng();
    check(|v| avg_pool2d(&v[0], [3, 2], [2, 1], [1, 1]), &[uniform(&[2, 2, 5, 5], -1.0, 1.0, &mut r)]);
}

#[test]
fn global_avg_pool_matches_finite_differences() {
    let mut r = rng();
    check(|v| global_avg_pool2d(&v[0]), &[uniform(&[3, 4, 3, 5], -1.0, 1.0, &mut r)]);
}
