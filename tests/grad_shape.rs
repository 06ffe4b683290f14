//! Gradient checks of the shape ops: reshape, permute, transpose, narrow, broadcast, cat,
//! stack, index_select, pixel_unshuffle.

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

#[test]
fn pixel_unshuffle_moves_each_block_into_channels_as_pytorch_does() {
    // x[0, 0] is 4×4 holding 0..16; r = 2: channel i·2 + j holds x[2h + i, 2w + j].
    let x = autograd::Var::constant(tensor::Tensor::arange(32, tensor::DType::F64).reshape(&[1, 2, 4, 4]).unwrap());
    let y = x.pixel_unshuffle(2).unwrap();
    assert_eq!(y.shape(), vec![1, 8, 2, 2]);
    let v = y.value().to_vec_f64().unwrap();
    assert_eq!(&v[..16], &[0., 2., 8., 10., 1., 3., 9., 11., 4., 6., 12., 14., 5., 7., 13., 15.]);
    assert_eq!(v[16], 16.0, "the second input channel starts the fifth output channel");
    assert!(x.pixel_unshuffle(3).is_err(), "3 does not divide 4");
}

#[test]
fn pixel_unshuffle_matches_finite_differences() {
    let x = uniform(&[2, 3, 4, 6], -1.0, 1.0, &mut rng());
    check(|v| v[0].pixel_unshuffle(2)?.exp(), &[x]);
}
