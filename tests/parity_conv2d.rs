//! conv2d on the GPU against the reference device (each op's plain definition): forward and the three backward ops
//! over stride, padding, dilation and rectangular-kernel variants, batch 1 and > 1, output
//! sizes off the 64-wide tile, with and without bias, and autograd's backward.

use crate::common;

use common::parity::*;
use common::rng;
use tensor::ops::conv2d::{conv2d, conv2d_backward_bias, conv2d_backward_data, conv2d_backward_weight, Conv2dParams};
use tensor::Tensor;

/// (x shape, weight shape, params)
fn cases() -> Vec<([usize; 4], [usize; 4], Conv2dParams)> {
    let p = |s: [usize; 2], pad: [usize; 2], d: [usize; 2]| Conv2dParams { stride: s, padding: pad, dilation: d };
    vec![
        ([1, 1, 5, 5], [1, 1, 3, 3], p([1, 1], [0, 0], [1, 1])),
        ([3, 3, 17, 13], [8, 3, 3, 3], p([1, 1], [1, 1], [1, 1])),
        ([2, 4, 16, 16], [5, 4, 3, 3], p([2, 2], [1, 1], [1, 1])),
        ([2, 3, 15, 11], [4, 3, 4, 2], p([2, 3], [2, 0], [1, 1])),
        ([1, 2, 19, 19], [3, 2, 3, 3], p([1, 2], [2, 1], [2, 2])),
        ([4, 6, 9, 10], [7, 6, 1, 1], p([1, 1], [0, 0], [1, 1])),
        ([2, 16, 12, 12], [70, 16, 3, 3], p([1, 1], [1, 1], [1, 1])),
    ]
}

#[test]
fn conv2d_forward_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    for (xs, ws, p) in cases() {
        let (x, w, b) = (signed(&xs, &mut r), signed(&ws, &mut r), signed(&[ws[0]], &mut r));
        let (xg, wg, bg) = (up(&x, &gpu), up(&w, &gpu), up(&b, &gpu));
        for bias in [false, true] {
            let (bc, bgo) = if bias { (Some(&b), Some(&bg)) } else { (None, None) };
            let want = conv2d(&x, &w, bc, &p).unwrap();
            let scale = conv2d(&abs(&x), &abs(&w), bc.map(abs).as_ref(), &p).unwrap();
            let got = conv2d(&xg, &wg, bgo, &p).unwrap();
            assert_close(&format!("conv2d {xs:?} * {ws:?} {p:?} bias {bias}"), &got, &want, Some(&scale));
        }
    }
}

#[test]
fn conv2d_forward_reads_a_non_contiguous_input() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    // The same values as a dense [2, 3, 7, 9], stored with H and W swapped.
    let strided = |t: &Tensor| t.transpose(2, 3).unwrap().contiguous().unwrap().transpose(2, 3).unwrap();
    let x = signed(&[2, 3, 7, 9], &mut r);
    let w = signed(&[4, 3, 3, 3], &mut r);
    let (x, xg) = (strided(&x), strided(&up(&x, &gpu)));
    assert!(!xg.is_contiguous());
    let p = Conv2dParams::new(1, 1);
    let want = conv2d(&x, &w, None, &p).unwrap();
    let scale = conv2d(&abs(&x), &abs(&w), None, &p).unwrap();
    assert_close("conv2d of a strided input", &conv2d(&xg, &up(&w, &gpu), None, &p).unwrap(), &want, Some(&scale));
}

#[test]
fn conv2d_backward_ops_match_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    for (xs, ws, p) in cases() {
        let (x, w) = (signed(&xs, &mut r), signed(&ws, &mut r));
        let y = conv2d(&x, &w, None, &p).unwrap();
        let gy = signed(y.shape(), &mut r);
        let (xg, wg, gyg) = (up(&x, &gpu), up(&w, &gpu), up(&gy, &gpu));
        let what = format!("{xs:?} * {ws:?} {p:?}");

        let want = conv2d_backward_data(&gy, &w, &xs, &p).unwrap();
        let scale = conv2d_backward_data(&abs(&gy), &abs(&w), &xs, &p).unwrap();
        assert_close(
            &format!("backward_data {what}"),
            &conv2d_backward_data(&gyg, &wg, &xs, &p).unwrap(),
            &want,
            Some(&scale),
        );

        let want = conv2d_backward_weight(&gy, &x, &ws, &p).unwrap();
        let scale = conv2d_backward_weight(&abs(&gy), &abs(&x), &ws, &p).unwrap();
        assert_close(
            &format!("backward_weight {what}"),
            &conv2d_backward_weight(&gyg, &xg, &ws, &p).unwrap(),
            &want,
            Some(&scale),
        );

        let want = conv2d_backward_bias(&gy).unwrap();
        let scale = conv2d_backward_bias(&abs(&gy)).unwrap();
        assert_close(&format!("backward_bias {what}"), &conv2d_backward_bias(&gyg).unwrap(), &want, Some(&scale));
    }
}

#[test]
fn conv2d_autograd_backward_runs_on_the_gpu_and_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let p = Conv2dParams { stride: [2, 1], padding: [1, 2], dilation: [1, 2] };
    let inputs: Vec<Tensor> = vec![signed(&[3, 2, 11, 9], &mut r), signed(&[5, 2, 3, 3], &mut r), signed(&[5], &mut r)];
    assert_backward_parity("conv2d", &gpu, &inputs, |v| autograd::ops::conv2d::conv2d(&v[0], &v[1], Some(&v[2]), &p));
}

#[test]
fn conv2d_relu_runs_on_the_gpu_and_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let p = Conv2dParams { stride: [2, 1], padding: [1, 2], dilation: [1, 2] };
    let inputs: Vec<Tensor> = vec![signed(&[3, 2, 11, 9], &mut r), signed(&[5, 2, 3, 3], &mut r), signed(&[5], &mut r)];
    assert_backward_parity("conv2d_relu", &gpu, &inputs, |v| {
        autograd::ops::conv2d::conv2d_relu(&v[0], &v[1], Some(&v[2]), &p)
    });
}
