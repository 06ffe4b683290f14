//! Gradient checks of the reductions over several axis sets, with and without keep-dim.

use crate::common;

use common::{check, rng, uniform};

#[test]
fn sum_over_axis_sets_matches_finite_differences() {
    let mut r = rng();
    let x = uniform(&[3, 4, 5], -1.0, 1.0, &mut r);
    check(|v| v[0].sum(&[1], false), &[x.clone()]);
    check(|v| v[0].sum(&[0, 2], true), &[x.clone()]);
    check(|v| v[0].sum_all(), &[x]);
}

#[test]
fn mean_over_axis_sets_matches_finite_differences() {
    let mut r = rng();
    let x = uniform(&[2, 3, 5], -1.0, 1.0, &mut r);
    check(|v| v[0].mean(&[-1], false), &[x.clone()]);
    check(|v| v[0].mean(&[0, 2], true), &[x]);
}

#[test]
fn max_and_min_match_finite_differences() {
    let mut r = rng();
    // Continuous random values: no ties, so max is differentiable at these inputs.
    let x = uniform(&[4, 7], -1.0, 1.0, &mut r);
    check(|v| v[0].max(&[1], false), &[x.clone()]);
    check(|v| v[0].min(&[0], true), &[x]);
}

#[test]
fn logsumexp_matches_finite_differences() {
    let mut r = rng();
    let x = uniform(&[3, 6], -3.0, 3.0, &mut r);
    check(|v| v[0].logsumexp(&[1], false), &[x.clone()]);
    check(|v| v[0].logsumexp(&[0, 1], true), &[x]);
}

#[test]
fn var_biased_and_unbiased_match_finite_differences() {
    let mut r = rng();
    let x = uniform(&[3, 5, 2], -1.0, 1.0, &mut r);
    check(|v| v[0].var(&[1], false, true), &[x.clone()]);
    check(|v| v[0].var(&[0, 2], true, false), &[x]);
}
