//! Gradient checks of batch norm in training mode (through the batch statistics) and in
//! evaluation mode, for 4-D and 2-D inputs, with respect to x, γ and β.

use crate::common;

use autograd::ops::batch_norm::{batch_norm_eval, batch_norm_train};
use common::{check, rng, uniform};

#[test]
fn batch_norm_training_4d_matches_finite_differences() {
    let mut r = rng();
    check(
        |v| Ok(batch_norm_train(&v[0], Some(&v[1]), Some(&v[2]), 1e-5)?.0),
        &[uniform(&[3, 4, 3, 5], -2.0, 2.0, &mut r), uniform(&[4], 0.5, 1.5, &mut r), uniform(&[4], -1.0, 1.0, &mut r)],
    );
}

#[test]
fn batch_norm_training_2d_without_affine_matches_finite_differences() {
    let mut r = rng();
    check(|v| Ok(batch_norm_train(&v[0], None, None, 1e-5)?.0), &[uniform(&[6, 3], -2.0, 2.0, &mut r)]);
}

#[test]
fn batch_norm_eval_matches_finite_differences() {
    let mut r = rng();
    let (rm, rv) = (uniform(&[3], -0.5, 0.5, &mut r), uniform(&[3], 0.5, 2.0, &mut r));
    check(
        move |v| batch_norm_eval(&v[0], &rm, &rv, Some(&v[1]), Some(&v[2]), 1e-5),
        &[uniform(&[2, 3, 4, 3], -2.0, 2.0, &mut r), uniform(&[3], 0.5, 1.5, &mut r), uniform(&[3], -1.0, 1.0, &mut r)],
    );
}
