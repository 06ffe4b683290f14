//! Gradient checks of every element-wise op, including broadcasting in both directions.

use crate::common;

use autograd::ops::elementwise as ew;
use common::{away_from_zero, check, rng, uniform};
use tensor::elementwise_table::{Domain, UnaryOp, UNARY_OPS};
use tensor::Tensor;

#[test]
fn add_with_broadcast_matches_finite_differences() {
    let mut r = rng();
    check(|v| v[0].add(&v[1]), &[uniform(&[3, 4, 5], -1.0, 1.0, &mut r), uniform(&[4, 1], -1.0, 1.0, &mut r)]);
}

#[test]
fn sub_with_broadcast_matches_finite_differences() {
    let mut r = rng();
    check(|v| v[0].sub(&v[1]), &[uniform(&[5], -1.0, 1.0, &mut r), uniform(&[2, 3, 5], -1.0, 1.0, &mut r)]);
}

#[test]
fn mul_with_broadcast_matches_finite_differences() {
    let mut r = rng();
    check(|v| v[0].mul(&v[1]), &[uniform(&[2, 3, 1], -1.0, 1.0, &mut r), uniform(&[1, 3, 7], -1.0, 1.0, &mut r)]);
}

#[test]
fn div_with_broadcast_matches_finite_differences() {
    let mut r = rng();
    check(|v| v[0].div(&v[1]), &[uniform(&[3, 5], -1.0, 1.0, &mut r), uniform(&[5], 0.5, 2.0, &mut r)]);
}

#[test]
fn squared_difference_with_broadcast_matches_finite_differences_in_both_operands() {
    let mut r = rng();
    let (a, b) = (uniform(&[3, 4, 5], -1.0, 1.0, &mut r), uniform(&[4, 1], -1.0, 1.0, &mut r));
    check(|v| ew::squared_difference(&v[0], &v[1]), &[a.clone(), b.clone()]);
    check(|v| ew::squared_difference(&v[0], &v[1]), &[b, a]);
}

#[test]
fn twice_gaussian_kl_matches_finite_differences_in_mu_and_logvar() {
    let mut r = rng();
    let (mu, logvar) = (uniform(&[5, 3], -2.0, 2.0, &mut r), uniform(&[5, 3], -3.0, 2.0, &mut r));
    check(|v| ew::twice_gaussian_kl(&v[0], &v[1]), &[mu, logvar]);
}

#[test]
fn neg_exp_log_sqrt_match_finite_differences() {
    let mut r = rng();
    let x = uniform(&[4, 3], 0.2, 2.0, &mut r);
    check(|v| v[0].neg(), &[x.clone()]);
    check(|v| v[0].exp(), &[x.clone()]);
    check(|v| v[0].log(), &[x.clone()]);
    check(|v| v[0].sqrt(), &[x]);
}

#[test]
fn powf_and_square_match_finite_differences() {
    let mut r = rng();
    let x = uniform(&[7], 0.3, 2.0, &mut r);
    check(|v| v[0].powf(2.5), &[x.clone()]);
    check(|v| v[0].powf(-1.5), &[x.clone()]);
    check(|v| v[0].square(), &[x]);
}

#[test]
fn abs_and_clamp_match_finite_differences_away_from_kinks() {
    let mut r = rng();
    check(|v| v[0].abs(), &[away_from_zero(&[3, 5], 1e-3, &mut r)]);
    // Values kept away from the clamp bounds ±0.5.
    let x = away_from_zero(&[4, 4], 1e-3, &mut r).add_scalar(0.5).unwrap();
    check(|v| v[0].add_scalar(-0.5)?.clamp(-0.5, 0.5), &[x]);
}

#[test]
fn relu_and_leaky_relu_match_finite_differences() {
    let mut r = rng();
    let x = away_from_zero(&[5, 6], 1e-3, &mut r);
    check(|v| v[0].relu(), &[x.clone()]);
    check(|v| v[0].leaky_relu(0.2), &[x]);
}

#[test]
fn sigmoid_tanh_softplus_match_finite_differences() {
    let mut r = rng();
    let x = uniform(&[2, 9], -4.0, 4.0, &mut r);
    check(|v| v[0].sigmoid(), &[x.clone()]);
    check(|v| v[0].tanh(), &[x.clone()]);
    check(|v| v[0].softplus(), &[x]);
}

#[test]
fn scalar_ops_match_finite_differences() {
    let mut r = rng();
    let x = uniform(&[3, 2], -1.0, 1.0, &mut r);
    check(|v| v[0].add_scalar(3.0)?.mul_scalar(-1.7), &[x]);
}

#[test]
fn every_row_of_the_unary_table_matches_finite_differences() {
    let mut r = rng();
    for def in UNARY_OPS {
        let (alpha, beta) = def.test_params;
        let op = UnaryOp::with(def, alpha, beta);
        let x = match def.domain {
            Domain::Positive => uniform(&[4, 5], 0.2, 2.0, &mut r),
            Domain::Real => uniform(&[4, 5], -2.0, 2.0, &mut r),
        };
        // Keep every point 1e-3 away from the kinks an op may have (0 for relu and abs, the
        // parameters for clamp), where the central difference straddles a corner.
        let kinks = [0.0, alpha, beta];
        let v: Vec<f64> = x
            .to_vec_f64()
            .unwrap()
            .into_iter()
            .map(|v| if kinks.iter().any(|k| (v - k).abs() < 1e-3) { v + 3e-3 } else { v })
            .collect();
        let x = Tensor::from_vec(v, &[4, 5]).unwrap();
        eprintln!("{}", def.name);
        check(move |v| ew::unary_op(&v[0], op), &[x]);
    }
}

#[test]
fn silu_matches_finite_differences() {
    let mut r = rng();
    check(|v| v[0].silu(), &[uniform(&[3, 7], -6.0, 6.0, &mut r)]);
}

#[test]
fn where_routes_gradient_by_condition() {
    let mut r = rng();
    let cond = uniform(&[4, 3], -1.0, 1.0, &mut r).gt(&tensor::Tensor::zeros(&[], tensor::DType::F64)).unwrap();
    check(
        move |v| ew::where_cond_var(&cond, &v[0], &v[1]),
        &[uniform(&[4, 3], -1.0, 1.0, &mut r), uniform(&[3], -1.0, 1.0, &mut r)],
    );
}

#[test]
fn a_value_used_twice_accumulates_both_gradients() {
    let mut r = rng();
    // y = x·x + exp(x): x feeds three uses.
    check(|v| v[0].mul(&v[0])?.add(&v[0].exp()?), &[uniform(&[6], -1.0, 1.0, &mut r)]);
}
