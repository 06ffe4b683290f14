//! Every fast kernel against the reference tier (`tensor::reference`): each op family runs on
//! fresh random inputs at odd sizes through the tensor ops on five back ends (the reference
//! device and the CPU kernels, each in f64 and in f32, and the WGSL kernels on the GPU when
//! there is one) and each result is held to the plain f64 definition. The reference device's
//! rows check its plumbing (layouts, dtypes, the op's arm): it runs the very definitions. The element-wise rows are held to their own f64 formula
//! in `tests/parity_elementwise.rs` and the table's unit tests.

use crate::common;

use common::parity::gpu;
use common::rng;
use tensor::descriptors::{BatchNormGeometry, Conv2dGeometry, Pool2dGeometry, ReduceOp};
use tensor::ops::batch_norm::{batch_norm_eval, batch_norm_train, batch_norm_train_backward};
use tensor::ops::conv2d::{conv2d, conv2d_backward_bias, conv2d_backward_data, conv2d_backward_weight, Conv2dParams};
use tensor::ops::conv_transpose2d::{
    conv_transpose2d, conv_transpose2d_backward_data, conv_transpose2d_backward_weight, ConvTranspose2dParams,
};
use tensor::ops::interpolate::{
    upsample_bilinear2d, upsample_bilinear2d_backward, upsample_nearest2d, upsample_nearest2d_backward,
};
use tensor::ops::matmul::matmul;
use tensor::ops::pool::{avg_pool2d, avg_pool2d_backward, global_avg_pool2d, max_pool2d, max_pool2d_backward};
use tensor::ops::reduce::reduce;
use tensor::ops::upsampled_conv::{
    conv2d_nearest_upsampled, conv2d_nearest_upsampled_backward_weight, interleave_phases, interleave_phases_backward,
    phase_weights, phase_weights_backward,
};
use tensor::reference;
use tensor::{DType, Device, Rng, Tensor};

/// Relative tolerance (of the result's largest magnitude) for f64 and for f32 back ends.
const TOL_F64: f64 = 1e-10;
const TOL_F32: f64 = 1e-4;

/// The back ends every op runs on: (name, device, dtype, tolerance).
fn back_ends() -> Vec<(String, Device, DType, f64)> {
    let mut v = vec![
        ("reference f64".to_string(), Device::Reference, DType::F64, TOL_F64),
        ("reference f32".to_string(), Device::Reference, DType::F32, TOL_F32),
        ("cpu f64".to_string(), Device::Cpu, DType::F64, TOL_F64),
        ("cpu f32".to_string(), Device::Cpu, DType::F32, TOL_F32),
    ];
    if let Some(g) = gpu() {
        v.push(("gpu f32".to_string(), g, DType::F32, TOL_F32));
    }
    v
}

/// Random values in [−1, 1) as f64, with their shape.
fn random(shape: &[usize], rng: &mut Rng) -> (Vec<f64>, Vec<usize>) {
    ((0..shape.iter().product()).map(|_| rng.uniform(-1.0, 1.0)).collect(), shape.to_vec())
}

/// The f64 values as a tensor on `device` in `dtype` (f32 rounding is part of the input, so
/// the reference below is computed from the rounded values).
fn on(v: &(Vec<f64>, Vec<usize>), device: &Device, dtype: DType) -> Tensor {
    Tensor::from_vec(v.0.clone(), &v.1).unwrap().to_dtype(dtype).unwrap().to_device(device).unwrap()
}

/// The values a back end actually sees: f64, or rounded to f32.
fn seen(v: &(Vec<f64>, Vec<usize>), dtype: DType) -> Vec<f64> {
    match dtype {
        DType::F64 => v.0.clone(),
        DType::F32 => v.0.iter().map(|&x| x as f32 as f64).collect(),
    }
}

/// |got − want| ≤ tol · max(1, max |want|) element by element.
fn assert_matches(what: &str, got: &Tensor, want: &[f64], tol: f64) {
    let got = got.to_vec_f64().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: {} elements, the reference has {}", got.len(), want.len());
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * scale, "{what}: element {i} is {g}, the reference {w} (scale {scale})");
    }
}

/// A convolution: x [N, C_in, H, W], C_out, kernel, stride, padding, dilation.
type ConvCase = ([usize; 4], usize, [usize; 2], [usize; 2], [usize; 2], [usize; 2]);
/// A transposed convolution: x [N, C_in, H, W], C_out, kernel, stride, padding,
/// output_padding, dilation.
type ConvTransposeCase = ([usize; 4], usize, [usize; 2], [usize; 2], [usize; 2], [usize; 2], [usize; 2]);
/// A pooling: x [N, C, H, W], kernel, stride, padding.
type PoolCase = ([usize; 4], [usize; 2], [usize; 2], [usize; 2]);

/// Convolution cases reaching each CPU path: a plain 3×3, stride 2 with dilation and uneven
/// padding, a pointwise 1×1 (no im2col), deep layers with 1–4 output pixels (several images
/// share one GEMM), and kernels hanging over small planes, whose dead taps are cropped away
/// (1×1 and 1×4 planes with padding 1, a 2×2 plane at stride 2).
const CONV_CASES: [ConvCase; 8] = [
    ([2, 3, 7, 9], 5, [3, 3], [1, 1], [1, 1], [1, 1]),
    ([3, 2, 11, 8], 4, [3, 2], [2, 2], [2, 0], [2, 1]),
    ([2, 5, 6, 7], 3, [1, 1], [1, 1], [0, 0], [1, 1]),
    ([9, 17, 2, 2], 13, [3, 3], [1, 1], [1, 1], [1, 1]),
    ([7, 6, 3, 3], 5, [3, 3], [2, 2], [0, 0], [1, 1]),
    ([5, 8, 1, 1], 6, [3, 3], [1, 1], [1, 1], [1, 1]),
    ([2, 3, 1, 4], 5, [3, 3], [1, 1], [1, 1], [1, 1]),
    ([4, 5, 2, 2], 7, [3, 3], [2, 2], [1, 1], [1, 1]),
];

#[test]
fn conv2d_forward_and_backwards_match_the_reference() {
    let mut r = rng();
    for (xs, c_out, k, stride, padding, dilation) in CONV_CASES {
        let ws = [c_out, xs[1], k[0], k[1]];
        let g = Conv2dGeometry::conv2d(xs, ws, stride, padding, dilation).unwrap();
        let (x, w, b) = (random(&xs, &mut r), random(&ws, &mut r), random(&[c_out], &mut r));
        let dy = random(&[g.batch, g.c_out, g.oh, g.ow], &mut r);
        let p = Conv2dParams { stride, padding, dilation };
        for (name, dev, dt, tol) in back_ends() {
            let (xv, wv, bv, dyv) = (seen(&x, dt), seen(&w, dt), seen(&b, dt), seen(&dy, dt));
            let (xt, wt, bt, dyt) = (on(&x, &dev, dt), on(&w, &dev, dt), on(&b, &dev, dt), on(&dy, &dev, dt));
            let case = format!("{name} conv2d {g:?}");
            let y = conv2d(&xt, &wt, Some(&bt), &p).unwrap();
            assert_matches(&format!("{case} forward"), &y, &reference::conv::conv2d(&xv, &wv, Some(&bv), &g), tol);
            let dx = conv2d_backward_data(&dyt, &wt, &xs, &p).unwrap();
            assert_matches(&format!("{case} dx"), &dx, &reference::conv::conv2d_backward_data(&dyv, &wv, &g), tol);
            let dw = conv2d_backward_weight(&dyt, &xt, &ws, &p).unwrap();
            assert_matches(&format!("{case} dw"), &dw, &reference::conv::conv2d_backward_weight(&dyv, &xv, &g), tol);
            let db = conv2d_backward_bias(&dyt).unwrap();
            let want = reference::conv::bias_grad(&dyv, [g.batch, g.c_out, g.oh * g.ow]);
            assert_matches(&format!("{case} db"), &db, &want, tol);
        }
    }
}

#[test]
fn conv_transpose2d_forward_and_backwards_match_the_reference() {
    let mut r = rng();
    // The last two reach the dead-tap crop (1×1 inputs with padding).
    let cases: [ConvTransposeCase; 6] = [
        ([2, 3, 5, 4], 4, [4, 4], [2, 2], [1, 1], [0, 0], [1, 1]),
        ([3, 5, 3, 6], 2, [3, 2], [2, 3], [1, 0], [1, 2], [1, 1]),
        ([2, 4, 4, 4], 3, [3, 3], [1, 1], [1, 1], [0, 0], [2, 2]),
        ([5, 7, 1, 1], 6, [4, 4], [1, 1], [0, 0], [0, 0], [1, 1]),
        ([4, 6, 1, 1], 5, [3, 3], [1, 1], [1, 1], [0, 0], [1, 1]),
        ([3, 4, 1, 1], 3, [4, 4], [2, 2], [1, 1], [0, 0], [1, 1]),
    ];
    for (xs, c_out, k, stride, padding, output_padding, dilation) in cases {
        let ws = [xs[1], c_out, k[0], k[1]];
        let g = Conv2dGeometry::conv_transpose2d(xs, ws, stride, padding, output_padding, dilation).unwrap();
        let (x, w, b) = (random(&xs, &mut r), random(&ws, &mut r), random(&[c_out], &mut r));
        let dy = random(&[g.batch, g.c_out, g.oh, g.ow], &mut r);
        let p = ConvTranspose2dParams { stride, padding, output_padding, dilation };
        for (name, dev, dt, tol) in back_ends() {
            let (xv, wv, bv, dyv) = (seen(&x, dt), seen(&w, dt), seen(&b, dt), seen(&dy, dt));
            let (xt, wt, bt, dyt) = (on(&x, &dev, dt), on(&w, &dev, dt), on(&b, &dev, dt), on(&dy, &dev, dt));
            let case = format!("{name} conv_transpose2d {g:?}");
            let y = conv_transpose2d(&xt, &wt, Some(&bt), &p).unwrap();
            let want = reference::conv::conv_transpose2d(&xv, &wv, Some(&bv), &g);
            assert_matches(&format!("{case} forward"), &y, &want, tol);
            let dx = conv_transpose2d_backward_data(&dyt, &wt, &p).unwrap();
            let want = reference::conv::conv_transpose2d_backward_data(&dyv, &wv, &g);
            assert_matches(&format!("{case} dx"), &dx, &want, tol);
            let dw = conv_transpose2d_backward_weight(&dyt, &xt, &ws, &p).unwrap();
            let want = reference::conv::conv_transpose2d_backward_weight(&dyv, &xv, &g);
            assert_matches(&format!("{case} dw"), &dw, &want, tol);
        }
    }
}

#[test]
fn matmul_matches_the_reference_at_odd_sizes() {
    let mut r = rng();
    for (m, k, n) in [(1, 1, 1), (7, 13, 5), (65, 33, 17), (3, 300, 129)] {
        let (a, b) = (random(&[m, k], &mut r), random(&[k, n], &mut r));
        for (name, dev, dt, tol) in back_ends() {
            let c = matmul(&on(&a, &dev, dt), &on(&b, &dev, dt)).unwrap();
            let want = reference::matmul::matmul(&seen(&a, dt), &seen(&b, dt), m, k, n);
            assert_matches(&format!("{name} matmul {m}x{k}·{k}x{n}"), &c, &want, tol);
        }
    }
}

#[test]
fn pooling_forward_and_backward_match_the_reference() {
    let mut r = rng();
    let cases: [PoolCase; 4] = [
        ([2, 3, 8, 8], [2, 2], [2, 2], [0, 0]),
        ([1, 2, 7, 9], [3, 3], [2, 2], [1, 1]),
        ([3, 1, 5, 6], [3, 2], [1, 2], [1, 0]),
        ([2, 2, 4, 3], [4, 3], [1, 1], [2, 1]),
    ];
    for (xs, k, s, p) in cases {
        let g = Pool2dGeometry::new(xs[0] * xs[1], [xs[2], xs[3]], k, s, p).unwrap();
        let x = random(&xs, &mut r);
        let dy = random(&[xs[0], xs[1], g.oh, g.ow], &mut r);
        for (name, dev, dt, tol) in back_ends() {
            let (xv, dyv) = (seen(&x, dt), seen(&dy, dt));
            let (xt, dyt) = (on(&x, &dev, dt), on(&dy, &dev, dt));
            let case = format!("{name} {g:?}");
            let (y, idx) = max_pool2d(&xt, k, s, p).unwrap();
            let (want, argmax) = reference::pool::max_pool2d(&xv, &g);
            assert_matches(&format!("{case} max"), &y, &want, tol);
            let dx = max_pool2d_backward(&dyt, &idx, &xs).unwrap();
            assert_matches(
                &format!("{case} max backward"),
                &dx,
                &reference::pool::max_pool2d_backward(&dyv, &argmax, [g.oh * g.ow, g.h * g.w]),
                tol,
            );
            let y = avg_pool2d(&xt, k, s, p).unwrap();
            assert_matches(&format!("{case} avg"), &y, &reference::pool::avg_pool2d(&xv, &g), tol);
            let dx = avg_pool2d_backward(&dyt, &xs, k, s, p).unwrap();
            assert_matches(&format!("{case} avg backward"), &dx, &reference::pool::avg_pool2d_backward(&dyv, &g), tol);
            let y = global_avg_pool2d(&xt).unwrap();
            let want = reference::pool::global_avg_pool2d(&xv, xs[2] * xs[3]);
            assert_matches(&format!("{case} global avg"), &y, &want, tol);
        }
    }
}

#[test]
fn batch_norm_forward_and_backward_match_the_reference() {
    let mut r = rng();
    for shape in [vec![4, 3, 5, 7], vec![9, 5], vec![2, 6, 1, 3]] {
        let d = BatchNormGeometry { n: shape[0], c: shape[1], s: shape[2..].iter().product() };
        let (x, dy) = (random(&shape, &mut r), random(&shape, &mut r));
        let (gamma, beta) = (random(&[d.c], &mut r), random(&[d.c], &mut r));
        let (rm, rv) =
            (random(&[d.c], &mut r), (random(&[d.c], &mut r).0.iter().map(|v| v.abs() + 0.5).collect(), vec![d.c]));
        let eps = 1e-5;
        for (name, dev, dt, tol) in back_ends() {
            let [xv, dyv, gv, bv, rmv, rvv] = [&x, &dy, &gamma, &beta, &rm, &rv].map(|v| seen(v, dt));
            let [xt, dyt, gt, bt, rmt, rvt] = [&x, &dy, &gamma, &beta, &rm, &rv].map(|v| on(v, &dev, dt));
            let case = format!("{name} batch norm {shape:?}");
            let out = batch_norm_train(&xt, Some(&gt), Some(&bt), eps).unwrap();
            let (want, stats) = reference::batch_norm::train_forward(&xv, d, &gv, &bv, eps);
            assert_matches(&format!("{case} y"), &out.y, &want, tol);
            assert_matches(&format!("{case} mean"), &out.mean, &stats.iter().map(|s| s.0).collect::<Vec<_>>(), tol);
            let var: Vec<f64> = stats.iter().map(|s| s.2).collect();
            assert_matches(&format!("{case} unbiased var"), &out.var_unbiased, &var, tol);
            let grads = batch_norm_train_backward(&dyt, &xt, &out.mean, &out.inv_std, Some(&gt)).unwrap();
            let (mean, inv_std): (Vec<f64>, Vec<f64>) = stats.iter().map(|s| (s.0, s.1)).unzip();
            let (dx, dgamma, dbeta) = reference::batch_norm::train_backward(&dyv, &xv, d, &gv, [&mean, &inv_std]);
            // dx is a difference of O(1) terms: its rounding follows the inputs' scale, 1.
            assert_matches(&format!("{case} dx"), &grads.dx, &dx, tol);
            assert_matches(&format!("{case} dgamma"), &grads.dgamma, &dgamma, tol);
            assert_matches(&format!("{case} dbeta"), &grads.dbeta, &dbeta, tol);
            let y = batch_norm_eval(&xt, &rmt, &rvt, Some(&gt), Some(&bt), eps).unwrap();
            let want = reference::batch_norm::eval_forward(&xv, d, &rmv, &rvv, &gv, &bv, eps);
            assert_matches(&format!("{case} eval"), &y, &want, tol);
        }
    }
}

#[test]
fn upsampling_forward_and_backward_match_the_reference() {
    let mut r = rng();
    for (shape, s) in [([2, 3, 5, 7], 2), ([1, 2, 3, 4], 3), ([3, 1, 1, 6], 4)] {
        let planes = shape[0] * shape[1];
        let hw = [shape[2], shape[3]];
        let x = random(&shape, &mut r);
        let dy = random(&[shape[0], shape[1], hw[0] * s, hw[1] * s], &mut r);
        for (name, dev, dt, tol) in back_ends() {
            let (xv, dyv) = (seen(&x, dt), seen(&dy, dt));
            let (xt, dyt) = (on(&x, &dev, dt), on(&dy, &dev, dt));
            let case = format!("{name} {shape:?} ×{s}");
            let want = reference::interpolate::upsample(&xv, planes, hw, [s, s], false);
            assert_matches(&format!("{case} nearest"), &upsample_nearest2d(&xt, s).unwrap(), &want, tol);
            let want = reference::interpolate::upsample_backward(&dyv, planes, hw, [s, s], false);
            let got = upsample_nearest2d_backward(&dyt, &shape, s).unwrap();
            assert_matches(&format!("{case} nearest backward"), &got, &want, tol);
            let want = reference::interpolate::upsample(&xv, planes, hw, [s, s], true);
            assert_matches(&format!("{case} bilinear"), &upsample_bilinear2d(&xt, s).unwrap(), &want, tol);
            let want = reference::interpolate::upsample_backward(&dyv, planes, hw, [s, s], true);
            let got = upsample_bilinear2d_backward(&dyt, &shape, s).unwrap();
            assert_matches(&format!("{case} bilinear backward"), &got, &want, tol);
        }
    }
}

/// A 3×3 convolution of a nearest-upsampled image, on the small image: odd sizes, one pixel,
/// with and without a bias, and a deep layer (K = 1,152) whose f32 rounding the transforms'
/// extra additions must not grow past the tier's tolerance.
#[test]
fn the_nearest_upsampled_convolution_matches_the_reference() {
    let mut r = rng();
    for ([n, c_in, h, w], c_out, with_bias) in
        [([2, 3, 5, 4], 5, true), ([1, 2, 1, 1], 3, true), ([3, 4, 3, 7], 2, false), ([2, 128, 4, 4], 16, true)]
    {
        let x = random(&[n, c_in, h, w], &mut r);
        let k = random(&[c_out, c_in, 3, 3], &mut r);
        let b = random(&[c_out], &mut r);
        for (name, dev, dt, tol) in back_ends() {
            let case = format!("{name} [{n}, {c_in}, {h}, {w}] → {c_out}, bias {with_bias}");
            let bias = with_bias.then(|| seen(&b, dt));
            let want = reference::upsampled_conv::conv2d_nearest_upsampled(
                &seen(&x, dt),
                &seen(&k, dt),
                bias.as_deref(),
                [n, c_in, h, w],
                c_out,
            );
            let bias = with_bias.then(|| on(&b, &dev, dt));
            let got = conv2d_nearest_upsampled(&on(&x, &dev, dt), &on(&k, &dev, dt), bias.as_ref()).unwrap();
            assert_matches(&case, &got, &want, tol);
        }
    }
}

/// The weight gradient of a nearest-upsampled convolution, against upsampling then the
/// reference weight gradient: odd sizes, one pixel, and 16 channels on both sides (where the
/// CPU's tuner may time the layer's own transform).
#[test]
fn the_nearest_upsampled_convolutions_weight_gradient_matches_the_reference() {
    let mut r = rng();
    for ([n, c_in, h, w], c_out) in [([2, 3, 5, 4], 5), ([1, 2, 1, 1], 3), ([2, 16, 3, 4], 16)] {
        let x = random(&[n, c_in, h, w], &mut r);
        let dy = random(&[n, c_out, 2 * h, 2 * w], &mut r);
        let g = Conv2dGeometry::conv2d([n, c_in, 2 * h, 2 * w], [c_out, c_in, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        for (name, dev, dt, tol) in back_ends() {
            let case = format!("{name} [{n}, {c_in}, {h}, {w}] → {c_out}");
            let upsampled = reference::interpolate::upsample(&seen(&x, dt), n * c_in, [h, w], [2, 2], false);
            let want = reference::conv::conv2d_backward_weight(&seen(&dy, dt), &upsampled, &g);
            let got = conv2d_nearest_upsampled_backward_weight(&on(&dy, &dev, dt), &on(&x, &dev, dt)).unwrap();
            assert_matches(&case, &got, &want, tol);
        }
    }
}

/// A gradient whose sizes are not twice the input's is refused with both shapes named.
#[test]
fn the_upsampled_weight_gradient_names_both_shapes_when_they_do_not_fit() {
    let x = Tensor::zeros(&[2, 3, 4, 5], DType::F32);
    let dy = Tensor::zeros(&[2, 6, 8, 9], DType::F32);
    let err = conv2d_nearest_upsampled_backward_weight(&dy, &x).unwrap_err().to_string();
    assert!(err.contains("[2, 3, 4, 5]") && err.contains("[2, 6, 8, 9]"), "{err}");
}

/// The 2×2 kernels of a nearest-upsampled convolution's four phases from its 3×3 kernel, and
/// back: one channel each way, and odd channel counts.
#[test]
fn the_phase_weights_of_an_upsampled_convolution_match_the_reference() {
    let mut r = rng();
    for [c_out, c_in] in [[1, 1], [3, 5], [7, 2]] {
        let w = random(&[c_out, c_in, 3, 3], &mut r);
        let dw2 = random(&[4 * c_out, c_in, 2, 2], &mut r);
        for (name, dev, dt, tol) in back_ends() {
            let case = format!("{name} [{c_out}, {c_in}, 3, 3]");
            let want = reference::upsampled_conv::phase_weights(&seen(&w, dt), c_out, c_in);
            assert_matches(&case, &phase_weights(&on(&w, &dev, dt)).unwrap(), &want, tol);
            let want = reference::upsampled_conv::phase_weights_backward(&seen(&dw2, dt), c_out, c_in);
            let got = phase_weights_backward(&on(&dw2, &dev, dt)).unwrap();
            assert_matches(&format!("{case} backward"), &got, &want, tol);
        }
    }
}

/// The phases of a nearest-upsampled convolution put in place, and back: 1×1 quads, odd
/// sizes, several images and channels.
#[test]
fn interleaving_the_phases_of_an_upsampled_convolution_matches_the_reference() {
    let mut r = rng();
    for [n, c, h, w] in [[2, 3, 3, 5], [1, 1, 1, 1], [3, 2, 4, 1]] {
        let phases = random(&[n, 4 * c, h + 1, w + 1], &mut r);
        let dy = random(&[n, c, 2 * h, 2 * w], &mut r);
        for (name, dev, dt, tol) in back_ends() {
            let case = format!("{name} [{n}, {c}, {h}, {w}]");
            let want = reference::upsampled_conv::interleave_phases(&seen(&phases, dt), n * c, [h, w]);
            assert_matches(&case, &interleave_phases(&on(&phases, &dev, dt)).unwrap(), &want, tol);
            let want = reference::upsampled_conv::interleave_phases_backward(&seen(&dy, dt), n * c, [h, w]);
            let got = interleave_phases_backward(&on(&dy, &dev, dt)).unwrap();
            assert_matches(&format!("{case} backward"), &got, &want, tol);
        }
    }
}

#[test]
fn reductions_match_the_reference_over_leading_middle_and_trailing_axes() {
    let mut r = rng();
    let shape = [5, 33, 7];
    let x = random(&shape, &mut r);
    // axes → the [outer, r, inner] view they reduce
    let views: [(&[isize], [usize; 3]); 4] =
        [(&[0], [1, 5, 231]), (&[1], [5, 33, 7]), (&[2], [165, 7, 1]), (&[0, 1, 2], [1, 1155, 1])];
    for (name, dev, dt, tol) in back_ends() {
        let (xv, xt) = (seen(&x, dt), on(&x, &dev, dt));
        for (axes, view) in views {
            for op in ReduceOp::ALL {
                let got = reduce(&xt, axes, false, op).unwrap();
                let want = reference::reduce::reduce(&xv, view, op);
                assert_matches(&format!("{name} {op:?} over {axes:?}"), &got, &want, tol);
            }
        }
    }
}

#[test]
fn adam_adamw_and_sgd_steps_match_the_reference() {
    use tensor::ops::optim::{adam_update, sgd_update, AdamHyper, SgdHyper};
    let mut r = rng();
    let n = 4099;
    let (p, g) = (random(&[n], &mut r), random(&[n], &mut r));
    let (m, v) = (random(&[n], &mut r), (random(&[n], &mut r).0.iter().map(|x| x.abs()).collect(), vec![n]));
    let buf = random(&[n], &mut r);
    for (name, dev, dt, tol) in back_ends() {
        for decoupled in [false, true] {
            let h = AdamHyper {
                lr: 0.01,
                weight_decay: 0.1,
                decoupled_weight_decay: decoupled,
                step: 3,
                ..AdamHyper::default()
            };
            let (mut pt, mut mt, mut vt) = (on(&p, &dev, dt), on(&m, &dev, dt), on(&v, &dev, dt));
            adam_update(&mut pt, &on(&g, &dev, dt), &mut mt, &mut vt, &h).unwrap();
            let [mut pv, gv, mut mv, mut vv] = [&p, &g, &m, &v].map(|x| seen(x, dt));
            reference::optim::adam(&mut pv, &gv, &mut mv, &mut vv, &h);
            let case = format!("{name} adam (decoupled: {decoupled})");
            assert_matches(&format!("{case} p"), &pt, &pv, tol);
            assert_matches(&format!("{case} m"), &mt, &mv, tol);
            assert_matches(&format!("{case} v"), &vt, &vv, tol);
        }
        for (nesterov, first_step) in [(false, true), (false, false), (true, false)] {
            let h = SgdHyper { lr: 0.05, momentum: 0.9, dampening: 0.1, weight_decay: 0.01, nesterov, first_step };
            let (mut pt, mut bt) = (on(&p, &dev, dt), on(&buf, &dev, dt));
            sgd_update(&mut pt, &on(&g, &dev, dt), Some(&mut bt), &h).unwrap();
            let [mut pv, gv, mut bv] = [&p, &g, &buf].map(|x| seen(x, dt));
            reference::optim::sgd(&mut pv, &gv, Some(&mut bv), &h);
            let case = format!("{name} sgd (nesterov: {nesterov}, first step: {first_step})");
            assert_matches(&format!("{case} p"), &pt, &pv, tol);
            assert_matches(&format!("{case} buffer"), &bt, &bv, tol);
        }
    }
}

#[test]
fn a_view_moves_between_the_cpu_and_the_reference_device_with_its_elements_only() {
    let x = Tensor::arange(24, DType::F32).reshape(&[2, 3, 4]).unwrap();
    let view = x.transpose(0, 2).unwrap().narrow(1, 1, 2).unwrap(); // [4, 2, 2], strided, offset
    let want = view.to_vec_f64().unwrap();
    let on_reference = view.to_device(&Device::Reference).unwrap();
    assert_eq!(on_reference.device(), Device::Reference);
    assert_eq!((on_reference.shape(), on_reference.storage().len()), (&[4, 2, 2][..], 16));
    assert_eq!(on_reference.to_vec_f64().unwrap(), want);
    let back = on_reference.transpose(0, 1).unwrap().to_device(&Device::Cpu).unwrap();
    assert_eq!((back.device(), back.storage().len()), (Device::Cpu, 16));
    assert_eq!(back.to_vec_f64().unwrap(), view.transpose(0, 1).unwrap().to_vec_f64().unwrap());
}
