//! Batch norm on the GPU against the reference device (each op's plain definition): training forward (output and the batch
//! statistics), training backward, eval forward and backward, for [N, C], [N, C, L] and
//! [N, C, H, W] inputs, with and without γ/β, batch 1 (with spatial extent) and > 1, and
//! autograd's backward.

use crate::common;

use common::parity::*;
use common::rng;
use tensor::ops::batch_norm::{
    batch_norm_eval, batch_norm_eval_backward, batch_norm_train, batch_norm_train_backward, batch_norm_update_running,
};
use tensor::Tensor;

const SHAPES: &[&[usize]] = &[&[8, 5], &[3, 4, 37], &[2, 3, 9, 7], &[1, 6, 5, 5], &[16, 70, 3, 3]];
const EPS: f64 = 1e-5;

#[test]
fn batch_norm_train_forward_and_backward_match_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    for shape in SHAPES {
        let c = shape[1];
        // A mean away from zero and a spread other than one, so normalising does something.
        let x = signed(shape, &mut r).mul_scalar(2.0).unwrap().add_scalar(0.7).unwrap();
        let (gamma, beta) = (signed(&[c], &mut r), signed(&[c], &mut r));
        let g = |t: &Tensor| up(t, &gpu);
        for affine in [false, true] {
            let what = format!("train {shape:?} affine {affine}");
            let (gc, bc) = if affine { (Some(&gamma), Some(&beta)) } else { (None, None) };
            let (gg, bg) = (g(&gamma), g(&beta));
            let (ggo, bgo) = if affine { (Some(&gg), Some(&bg)) } else { (None, None) };
            let want = batch_norm_train(&x, gc, bc, EPS).unwrap();
            let got = batch_norm_train(&g(&x), ggo, bgo, EPS).unwrap();
            assert_close(&format!("{what}: y"), &got.y, &want.y, None);
            assert_close(&format!("{what}: mean"), &got.mean, &want.mean, None);
            assert_close(&format!("{what}: inv_std"), &got.inv_std, &want.inv_std, None);
            assert_close(&format!("{what}: var_unbiased"), &got.var_unbiased, &want.var_unbiased, None);

            let gy = signed(shape, &mut r);
            let want_b = batch_norm_train_backward(&gy, &x, &want.mean, &want.inv_std, gc).unwrap();
            let got_b = batch_norm_train_backward(&g(&gy), &g(&x), &got.mean, &got.inv_std, ggo).unwrap();
            assert_close(&format!("{what}: dx"), &got_b.dx, &want_b.dx, Some(&tensor_scale(&want_b.dx)));
            assert_close(
                &format!("{what}: dgamma"),
                &got_b.dgamma,
                &want_b.dgamma,
                Some(&tensor_scale(&want_b.dgamma)),
            );
            assert_close(&format!("{what}: dbeta"), &got_b.dbeta, &want_b.dbeta, Some(&tensor_scale(&want_b.dbeta)));
        }
    }
}

#[test]
fn batch_norm_eval_forward_and_backward_match_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    for shape in SHAPES {
        let c = shape[1];
        let x = signed(shape, &mut r);
        let (rm, rv) = (signed(&[c], &mut r), uniform32(&[c], 0.5, 2.0, &mut r));
        let (gamma, beta) = (signed(&[c], &mut r), signed(&[c], &mut r));
        let g = |t: &Tensor| up(t, &gpu);
        let what = format!("eval {shape:?}");
        let want = batch_norm_eval(&x, &rm, &rv, Some(&gamma), Some(&beta), EPS).unwrap();
        let got = batch_norm_eval(&g(&x), &g(&rm), &g(&rv), Some(&g(&gamma)), Some(&g(&beta)), EPS).unwrap();
        assert_close(&format!("{what}: y"), &got, &want, None);
        let no_affine = batch_norm_eval(&g(&x), &g(&rm), &g(&rv), None, None, EPS).unwrap();
        assert_close(
            &format!("{what}: y without γ, β"),
            &no_affine,
            &batch_norm_eval(&x, &rm, &rv, None, None, EPS).unwrap(),
            None,
        );

        let gy = signed(shape, &mut r);
        let want_b = batch_norm_eval_backward(&gy, &x, &rm, &rv, Some(&gamma), EPS).unwrap();
        let got_b = batch_norm_eval_backward(&g(&gy), &g(&x), &g(&rm), &g(&rv), Some(&g(&gamma)), EPS).unwrap();
        assert_close(&format!("{what}: dx"), &got_b.dx, &want_b.dx, None);
        assert_close(&format!("{what}: dgamma"), &got_b.dgamma, &want_b.dgamma, Some(&tensor_scale(&want_b.dgamma)));
        assert_close(&format!("{what}: dbeta"), &got_b.dbeta, &want_b.dbeta, Some(&tensor_scale(&want_b.dbeta)));
    }
}

#[test]
fn batch_norm_running_statistics_update_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    // 1 channel, fewer than a workgroup, and more than one workgroup of 256 (odd counts).
    for c in [1, 37, 301] {
        let [rm, rv, m, v] = [0, 1, 2, 3].map(|_| signed(&[c], &mut r));
        let g = |t: &Tensor| up(t, &gpu);
        for momentum in [0.1, 0.73] {
            let (want_m, want_v) = batch_norm_update_running(&rm, &rv, &m, &v, momentum).unwrap();
            let (got_m, got_v) = batch_norm_update_running(&g(&rm), &g(&rv), &g(&m), &g(&v), momentum).unwrap();
            assert_close(&format!("C {c} momentum {momentum}: mean"), &got_m, &want_m, None);
            assert_close(&format!("C {c} momentum {momentum}: var"), &got_v, &want_v, None);
        }
    }
}

#[test]
fn batch_norm_refuses_statistics_on_the_other_device() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let x = up(&signed(&[4, 3, 2, 2], &mut r), &gpu);
    let rm = signed(&[3], &mut r);
    let err = batch_norm_eval(&x, &rm, &rm, None, None, EPS).unwrap_err().to_string();
    let host = rm.device().name();
    assert!(err.contains("batch_norm_eval") && err.contains(&host) && err.contains("gpu"), "{err}");
}

#[test]
fn batch_norm_autograd_backward_runs_on_the_gpu_and_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    // y·w with a random w: mean((y + 1)²) of a normalised y alone would have a gradient in x
    // that cancels to rounding noise (it lies in the span batch norm projects out).
    let shape = [4, 3, 5, 6];
    let inputs = vec![signed(&shape, &mut r), signed(&[3], &mut r), signed(&[3], &mut r), signed(&shape, &mut r)];
    assert_backward_parity("batch_norm_train", &gpu, &inputs, |v| {
        autograd::ops::batch_norm::batch_norm_train(&v[0], Some(&v[1]), Some(&v[2]), EPS)?.0.mul(&v[3])
    });
}
