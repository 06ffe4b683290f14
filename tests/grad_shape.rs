//! Gradient checks of the shape ops: reshape, permute, transpose, narrow, broadcast, cat,
//! stack, index_select.

use crate::common;

use autograd::ops::shape;
use common::{check, rng, uniform};

#[test]
fn reshape_and_permute_match_finite_differences() {
    let mut r = rng();
    let x = uniform(&[2, 3, 4], -1.0, 1.0, &mut r);
    check(|v| v[0].reshape(&[6, 4])?.exp(), &[x.clone()]);
    check(|v| v[0].permute(&[2, 0, 1])?.exp(), &[x.clone()]);
    check(|v| v[0].transpose(0, 2)?.exp(), &[x]);
}

#[test]
fn narrow_matches_finite_differences() {
    let mut r = rng();
    let x = uniform(&[3, 7], -1.0, 1.0, &mut r);
    check(|v| v[0].narrow(1, 2, 3)?.exp(), &[x.clone()]);
    check(|v| v[0].narrow(0, 0, 1)?.exp(), &[x]);
}

#[test]
fn broadcast_to_matches_finite_differences() {
    let mut r = rng();
    check(|v| v[0].broadcast_to(&[2, 3, 4])?.exp(), &[uniform(&[3, 1], -1.0, 1.0, &mut r)]);
}

#[test]
fn cat_and_stack_match_finite_differences() {
    let mut r = rng();
    let (a, b) = (uniform(&[2, 3], -1.0, 1.0, &mut r), uniform(&[2, 5], -1.0, 1.0, &mut r));
    check(|v| shape::cat(&[&v[0], &v[1]], 1)?.exp(), &[a.clone(), b]);
    let c = uniform(&[2, 3], -1.0, 1.0, &mut r);
    check(|v| shape::stack(&[&v[0], &v[1]], 1)?.exp(), &[a, c]);
}

#[test]
fn index_select_with_repeats_matches_finite_differences() {
    let mut r = rng();
    let x = uniform(&[5, 3], -1.0, 1.0, &mut r);
    check(|v| v[0].index_select(0, &[4, 1, 4, 0])?.exp(), &[x]);
}
