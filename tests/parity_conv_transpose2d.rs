//! conv_transpose2d on the GPU against the reference device (each op's plain definition): forward and the three backward ops
//! over stride, padding, output_padding and dilation variants, batch 1 and > 1, with and
//! without bias, and autograd's backward.

use crate::common;

use common::parity::*;
use common::rng;
use tensor::ops::conv_transpose2d::{
    conv_transpose2d, conv_transpose2d_backward_bias, conv_transpose2d_backward_data, conv_transpose2d_backward_weight,
    ConvTranspose2dParams,
};
use tensor::Tensor;

/// (x shape, weight shape [C_in, C_out, kH, kW], params)
fn cases() -> Vec<([usize; 4], [usize; 4], ConvTranspose2dParams)> {
    let p = |s: [usize; 2], pad: [usize; 2], op: [usize; 2], d: [usize; 2]| ConvTranspose2dParams {
        stride: s,
        padding: pad,
        output_padding: op,
        dilation: d,
    };
    vec![
        ([1, 1, 4, 4], [1, 1, 3, 3], p([1, 1], [0, 0], [0, 0], [1, 1])),
        ([2, 8, 5, 5], [8, 4, 4, 4], p([2, 2], [1, 1], [0, 0], [1, 1])),
        ([3, 3, 7, 6], [3, 5, 3, 3], p([2, 2], [1, 1], [1, 1], [1, 1])),
        ([2, 4, 6, 9], [4, 3, 3, 2], p([3, 2], [0, 1], [2, 1], [1, 1])),
        ([1, 2, 5, 5], [2, 3, 3, 3], p([1, 2], [2, 1], [0, 1], [2, 2])),
        ([2, 32, 4, 4], [32, 66, 4, 4], p([2, 2], [1, 1], [0, 0], [1, 1])),
    ]
}

#[test]
fn conv_transpose2d_forward_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    for (xs, ws, p) in cases() {
        let (x, w, b) = (signed(&xs, &mut r), signed(&ws, &mut r), signed(&[ws[1]], &mut r));
        let (xg, wg, bg) = (up(&x, &gpu), up(&w, &gpu), up(&b, &gpu));
        for bias in [false, true] {
            let (bc, bgo) = if bias { (Some(&b), Some(&bg)) } else { (None, None) };
            let want = conv_transpose2d(&x, &w, bc, &p).unwrap();
            let scale = conv_transpose2d(&abs(&x), &abs(&w), bc.map(abs).as_ref(), &p).unwrap();
            let got = conv_transpose2d(&xg, &wg, bgo, &p).unwrap();
            assert_close(&format!("conv_transpose2d {xs:?} * {ws:?} {p:?} bias {bias}"), &got, &want, Some(&scale));
        }
    }
}

#[test]
fn conv_transpose2d_backward_ops_match_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    for (xs, ws, p) in cases() {
        let (x, w) = (signed(&xs, &mut r), signed(&ws, &mut r));
        let y = conv_transpose2d(&x, &w, None, &p).unwrap();
        let gy = signed(y.shape(), &mut r);
        let (xg, wg, gyg) = (up(&x, &gpu), up(&w, &gpu), up(&gy, &gpu));
        let what = format!("{xs:?} * {ws:?} {p:?}");

        let want = conv_transpose2d_backward_data(&gy, &w, &p).unwrap();
        let scale = conv_transpose2d_backward_data(&abs(&gy), &abs(&w), &p).unwrap();
        assert_close(
            &format!("backward_data {what}"),
            &conv_transpose2d_backward_data(&gyg, &wg, &p).unwrap(),
            &want,
            Some(&scale),
        );

        let want = conv_transpose2d_backward_weight(&gy, &x, &ws, &p).unwrap();
        let scale = conv_transpose2d_backward_weight(&abs(&gy), &abs(&x), &ws, &p).unwrap();
        let got = conv_transpose2d_backward_weight(&gyg, &xg, &ws, &p).unwrap();
        assert_close(&format!("backward_weight {what}"), &got, &want, Some(&scale));

        let want = conv_transpose2d_backward_bias(&gy).unwrap();
        let scale = conv_transpose2d_backward_bias(&abs(&gy)).unwrap();
        assert_close(
            &format!("backward_bias {what}"),
            &conv_transpose2d_backward_bias(&gyg).unwrap(),
            &want,
            Some(&scale),
        );
    }
}

#[test]
fn conv_transpose2d_autograd_backward_runs_on_the_gpu_and_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let p = ConvTranspose2dParams::new(2, 1).with_output_padding(1);
    let inputs: Vec<Tensor> = vec![signed(&[2, 3, 5, 4], &mut r), signed(&[3, 4, 3, 3], &mut r), signed(&[4], &mut r)];
    assert_backward_parity("conv_transpose2d", &gpu, &inputs, |v| {
        autograd::ops::conv_transpose2d::conv_transpose2d(&v[0], &v[1], Some(&v[2]), &p)
    });
}

#[test]
fn conv_transpose2d_relu_runs_on_the_gpu_and_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let p = ConvTranspose2dParams::new(2, 1).with_output_padding(1);
    let inputs: Vec<Tensor> = vec![signed(&[2, 3, 5, 4], &mut r), signed(&[3, 4, 3, 3], &mut r), signed(&[4], &mut r)];
    assert_backward_parity("conv_transpose2d_relu", &gpu, &inputs, |v| {
        autograd::ops::conv_transpose2d::conv_transpose2d_relu(&v[0], &v[1], Some(&v[2]), &p)
    });
}
