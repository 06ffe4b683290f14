//! Gradient checks of matmul (2-D, batched, broadcast, transposed operands), linear and
//! linear_relu.

use crate::common;

use autograd::ops::matmul::{linear, linear_relu};
use common::{away_from_zero, check, rng, uniform};

#[test]
fn matmul_2d_matches_finite_differences() {
    let mut r = rng();
    check(|v| v[0].matmul(&v[1]), &[uniform(&[3, 5], -1.0, 1.0, &mut r), uniform(&[5, 4], -1.0, 1.0, &mut r)]);
}

#[test]
fn batched_matmul_matches_finite_differences() {
    let mut r = rng();
    check(|v| v[0].matmul(&v[1]), &[uniform(&[2, 3, 4], -1.0, 1.0, &mut r), uniform(&[2, 4, 5], -1.0, 1.0, &mut r)]);
}

#[test]
fn matmul_broadcasting_a_2d_operand_over_the_batch_matches_finite_differences() {
    let mut r = rng();
    check(|v| v[0].matmul(&v[1]), &[uniform(&[3, 2, 4], -1.0, 1.0, &mut r), uniform(&[4, 3], -1.0, 1.0, &mut r)]);
    check(|v| v[0].matmul(&v[1]), &[uniform(&[2, 4], -1.0, 1.0, &mut r), uniform(&[3, 4, 5], -1.0, 1.0, &mut r)]);
}

#[test]
fn matmul_of_transposed_views_matches_finite_differences() {
    let mut r = rng();
    check(
        |v| v[0].transpose(0, 1)?.matmul(&v[1].transpose(0, 1)?),
        &[uniform(&[5, 3], -1.0, 1.0, &mut r), uniform(&[4, 5], -1.0, 1.0, &mut r)],
    );
}

#[test]
fn linear_matches_finite_differences() {
    let mut r = rng();
    check(
        |v| linear(&v[0], &v[1], Some(&v[2])),
        &[uniform(&[4, 7], -1.0, 1.0, &mut r), uniform(&[3, 7], -1.0, 1.0, &mut r), uniform(&[3], -1.0, 1.0, &mut r)],
    );
}

#[test]
fn linear_relu_matches_finite_differences_on_both_sides_of_the_kink() {
    let mut r = rng();
    // |x·Wᵀ| ≤ 0.7 and |b| ≥ 1: every pre-activation is 0.3 or more from the kink, and about
    // half of them are negative (their gradient is 0).
    let (x, w) = (uniform(&[4, 7], -0.1, 0.1, &mut r), uniform(&[3, 7], -1.0, 1.0, &mut r));
    check(|v| linear_relu(&v[0], &v[1], Some(&v[2])), &[x.clone(), w.clone(), away_from_zero(&[3], 1.0, &mut r)]);
    check(|v| linear_relu(&v[0], &v[1], None), &[x, w]);
}

#[test]
fn linear_over_leading_axes_matches_finite_differences_and_the_rows_result() {
    let mut r = rng();
    let (x, w, b) =
        (uniform(&[2, 3, 4], -1.0, 1.0, &mut r), uniform(&[5, 4], -1.0, 1.0, &mut r), uniform(&[5], -1.0, 1.0, &mut r));
    check(|v| linear(&v[0], &v[1], Some(&v[2])), &[x.clone(), w.clone(), b.clone()]);
    let [xv, wv, bv] = [x, w, b].map(autograd::Var::constant);
    let y = linear(&xv, &wv, Some(&bv)).unwrap();
    let rows = linear(&xv.reshape(&[6, 4]).unwrap(), &wv, Some(&bv)).unwrap();
    assert_eq!(y.shape(), [2, 3, 5]);
    assert_eq!(y.value().to_vec_f64().unwrap(), rows.value().to_vec_f64().unwrap());
    assert!(linear(&autograd::Var::constant(tensor::Tensor::scalar(1.0)), &wv, None).is_err());
}
