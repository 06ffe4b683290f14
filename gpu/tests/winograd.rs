//! winograd.wgsl (the convolution ladder's Winograd rung, F(2×2, 3×3)) against the reference
//! tier: the three kernels on odd planes (tiles hanging over the edge) at every padding its
//! backward-data's full correlation allows, with a bias and the ReLU epilogue, accumulating,
//! in several passes of images, and the geometries it leaves to the implicit GEMM.

use crate::common;

use common::*;
use gpu::descriptors::Conv2dGeometry;
use gpu::kernels::conv2d::{self, ConvKernel, ConvRung};
use gpu::kernels::{winograd, Output};
use tensor::reference::conv as reference;

const KERNELS: [ConvKernel; 3] = [ConvKernel::Forward, ConvKernel::BackwardData, ConvKernel::BackwardWeight];

/// 3×3 convolutions at stride 1: odd and even planes, one or two rows and columns of tiles
/// cut by the edge, padding 0, 1 and 2, channel counts off every tile size.
fn geometries() -> Vec<Conv2dGeometry> {
    let c = |b, ci, [h, w]: [usize; 2], co, p: [usize; 2]| {
        Conv2dGeometry::conv2d([b, ci, h, w], [co, ci, 3, 3], [1, 1], p, [1, 1]).unwrap()
    };
    vec![
        c(1, 1, [5, 5], 1, [1, 1]),
        c(2, 3, [7, 9], 5, [1, 1]),
        c(3, 17, [6, 11], 33, [0, 0]),
        c(2, 5, [9, 4], 70, [2, 2]),
        c(1, 66, [8, 8], 3, [1, 0]),
        c(2, 2, [3, 3], 4, [0, 2]),
    ]
}

/// Runs `kernel` of `g` on the Winograd rung into a poisoned buffer and checks it against the
/// reference, after checking that the rung computes it (rather than the implicit GEMM).
fn check_kernel(ctx: &gpu::Context, rng: &mut Rng, kernel: ConvKernel, g: &Conv2dGeometry, bias: bool, relu: bool) {
    assert!(winograd::applies(ctx, kernel, g), "{} {g:?}", kernel.name());
    let [(_, a_len), (_, b_len), (_, out_len)] = kernel.operands(g);
    let (a, b) = (rng.signed(a_len), rng.signed(b_len));
    let bias_len = kernel.bias_len(g).unwrap_or(0);
    let bias_values = rng.signed(bias_len);
    let (ab, bb, biasb) = (upload(ctx, &a), upload(ctx, &b), upload(ctx, &bias_values));
    let out = poisoned(ctx, out_len);
    let bias_buffer = bias.then_some(&biasb);
    if relu {
        conv2d::launch_then_relu(ctx, kernel, ConvRung::Winograd, g, [&ab, &bb], bias_buffer, &out).unwrap();
    } else {
        conv2d::launch(ctx, kernel, ConvRung::Winograd, g, [&ab, &bb], bias_buffer, &out, Output::Overwrite).unwrap();
    }
    let (want, scale) = reference_of(kernel, g, [&a, &b], bias.then_some(&bias_values[..]));
    let want: Vec<f64> = want.into_iter().map(|v| if relu { v.max(0.0) } else { v }).collect();
    let what = format!("winograd {} bias={bias} relu={relu} {g:?}", kernel.name());
    assert_close(&what, rng, &ctx.read(&out).unwrap(), &want, |i| scale[i]);
}

/// The reference's `kernel` of `g` on [a, b] (+ bias per output channel), and the same on
/// the magnitudes (each output's natural scale).
fn reference_of(
    kernel: ConvKernel,
    g: &Conv2dGeometry,
    [a, b]: [&[f32]; 2],
    bias: Option<&[f32]>,
) -> (Vec<f64>, Vec<f64>) {
    let ((a64, aa), (b64, ba)) = (f64s(a), f64s(b));
    let run = |a: &[f64], b: &[f64], bias: Option<Vec<f64>>| {
        let mut out = match kernel {
            ConvKernel::Forward => reference::conv2d(a, b, None, g),
            ConvKernel::BackwardData => reference::conv2d_backward_data(a, b, g),
            ConvKernel::BackwardWeight => reference::conv2d_backward_weight(a, b, g),
        };
        if let Some(bias) = bias {
            let plane = out.len() / g.batch / bias.len();
            out.iter_mut().enumerate().for_each(|(i, v)| *v += bias[(i / plane) % bias.len()]);
        }
        out
    };
    let bias = bias.map(f64s);
    (run(&a64, &b64, bias.clone().map(|b| b.0)), run(&aa, &ba, bias.map(|b| b.1)))
}

#[test]
fn the_winograd_rungs_three_kernels_match_the_reference_on_odd_planes_at_every_padding() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for g in geometries() {
        for kernel in KERNELS {
            check_kernel(ctx, &mut rng, kernel, &g, false, false);
        }
    }
}

#[test]
fn the_winograd_rung_adds_the_bias_and_applies_the_relu_epilogue() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for g in geometries() {
        for kernel in [ConvKernel::Forward, ConvKernel::BackwardData] {
            check_kernel(ctx, &mut rng, kernel, &g, true, false);
            check_kernel(ctx, &mut rng, kernel, &g, true, true);
        }
    }
}

#[test]
fn the_winograd_rung_accumulates_into_the_old_output() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for g in geometries() {
        for kernel in KERNELS {
            let [(_, a_len), (_, b_len), (_, out_len)] = kernel.operands(&g);
            let (a, b, old) = (rng.signed(a_len), rng.signed(b_len), rng.signed(out_len));
            let out = upload(ctx, &old);
            let [ab, bb] = [&a, &b].map(|v| upload(ctx, v));
            conv2d::launch(ctx, kernel, ConvRung::Winograd, &g, [&ab, &bb], None, &out, Output::Accumulate).unwrap();
            let (want, scale) = reference_of(kernel, &g, [&a, &b], None);
            let want: Vec<f64> = want.iter().zip(&old).map(|(w, o)| w + *o as f64).collect();
            let what = format!("winograd {} accumulated {g:?}", kernel.name());
            assert_close(&what, &rng, &ctx.read(&out).unwrap(), &want, |i| scale[i] + old[i].abs() as f64);
        }
    }
}

#[test]
fn the_winograd_rung_in_passes_of_one_or_two_images_matches_the_reference() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    let g = Conv2dGeometry::conv2d([5, 6, 7, 5], [9, 6, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
    let (x, w, dy, bias) = (rng.signed(g.x_len()), rng.signed(g.weight_len()), rng.signed(g.y_len()), rng.signed(9));
    let [xb, wb, dyb, bb] = [&x, &w, &dy, &bias].map(|v| upload(ctx, v));
    let (want_y, scale_y) = reference_of(ConvKernel::Forward, &g, [&x, &w], Some(&bias));
    let (want_dx, scale_dx) = reference_of(ConvKernel::BackwardData, &g, [&dy, &w], None);
    let (want_dw, scale_dw) = reference_of(ConvKernel::BackwardWeight, &g, [&dy, &x], None);
    let full = g.full_correlation().unwrap();
    for per_pass in [1, 2] {
        let y = poisoned(ctx, g.y_len());
        winograd::forward_in_passes(ctx, &g, false, [&xb, &wb], Some(&bb), &y, Output::Overwrite, false, per_pass)
            .unwrap();
        let what = format!("winograd forward, {per_pass} images a pass");
        assert_close(&what, &rng, &ctx.read(&y).unwrap(), &want_y, |i| scale_y[i]);
        let dx = poisoned(ctx, g.x_len());
        winograd::forward_in_passes(ctx, &full, true, [&dyb, &wb], None, &dx, Output::Overwrite, false, per_pass)
            .unwrap();
        let what = format!("winograd backward-data, {per_pass} images a pass");
        assert_close(&what, &rng, &ctx.read(&dx).unwrap(), &want_dx, |i| scale_dx[i]);
        let dw = poisoned(ctx, g.weight_len());
        winograd::backward_weight_in_passes(ctx, &g, [&dyb, &xb], &dw, Output::Overwrite, per_pass).unwrap();
        let what = format!("winograd backward-weight, {per_pass} images a pass");
        assert_close(&what, &rng, &ctx.read(&dw).unwrap(), &want_dw, |i| scale_dw[i]);
    }
}

#[test]
fn a_binding_that_holds_only_some_images_runs_the_winograd_rung_in_passes() {
    let Some(_) = ctx() else { return };
    // 16 positions × 8 channels × 4×4 tiles × 4 bytes = 8 KiB an image: three images in 24 KiB.
    let ctx = &gpu::Context::with_binding_limit(gpu::AdapterPreference::AnyIncludingSoftware, 24 << 10).unwrap();
    let g = Conv2dGeometry::conv2d([7, 8, 8, 8], [8, 8, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
    let mut rng = Rng::new();
    for kernel in KERNELS {
        check_kernel(ctx, &mut rng, kernel, &g, false, false);
    }
    // One image's tiles beyond the binding: the rung leaves the layer to the implicit GEMM.
    let large = Conv2dGeometry::conv2d([1, 8, 20, 20], [8, 8, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
    assert!(KERNELS.iter().all(|&kernel| !winograd::applies(ctx, kernel, &large)));
}

#[test]
fn geometries_winograd_does_not_compute_run_on_the_implicit_gemm_and_match_the_reference() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    let c = |x: [usize; 4], w: [usize; 4], s, p, d| Conv2dGeometry::conv2d(x, w, s, p, d).unwrap();
    for (g, computed) in [
        // stride 2, a 5×5 kernel, dilation 2: none of the three kernels
        (c([2, 3, 9, 9], [4, 3, 3, 3], [2, 2], [1, 1], [1, 1]), [false; 3]),
        (c([2, 3, 9, 9], [4, 3, 5, 5], [1, 1], [2, 2], [1, 1]), [false; 3]),
        (c([2, 3, 9, 9], [4, 3, 3, 3], [1, 1], [2, 2], [2, 2]), [false; 3]),
        // padding 3: the forward and the weight gradient, but no full correlation
        (c([2, 3, 5, 5], [4, 3, 3, 3], [1, 1], [3, 3], [1, 1]), [true, false, true]),
        // a 3×3 kernel on a 1×1 plane reads only its centre: cropped, on the implicit GEMM
        (c([2, 3, 1, 1], [4, 3, 3, 3], [1, 1], [1, 1], [1, 1]), [false; 3]),
    ] {
        for (kernel, computed) in KERNELS.into_iter().zip(computed) {
            assert_eq!(winograd::applies(ctx, kernel, &g), computed, "{} {g:?}", kernel.name());
            let [(_, a_len), (_, b_len), (_, out_len)] = kernel.operands(&g);
            let (a, b) = (rng.signed(a_len), rng.signed(b_len));
            let [ab, bb] = [&a, &b].map(|v| upload(ctx, v));
            let out = poisoned(ctx, out_len);
            conv2d::launch(ctx, kernel, ConvRung::Winograd, &g, [&ab, &bb], None, &out, Output::Overwrite).unwrap();
            let (want, scale) = reference_of(kernel, &g, [&a, &b], None);
            let what = format!("{} on the winograd rung {g:?}", kernel.name());
            assert_close(&what, &rng, &ctx.read(&out).unwrap(), &want, |i| scale[i]);
        }
    }
}

#[test]
fn asked_directly_for_a_geometry_it_does_not_compute_the_winograd_launcher_refuses_by_name() {
    let Some(ctx) = ctx() else { return };
    let g = Conv2dGeometry::conv2d([1, 2, 6, 6], [2, 2, 3, 3], [2, 2], [1, 1], [1, 1]).unwrap();
    let buffers = [g.x_len(), g.weight_len(), g.y_len()].map(|len| poisoned(ctx, len));
    let err = winograd::launch(
        ctx,
        ConvKernel::Forward,
        &g,
        [&buffers[0], &buffers[1]],
        None,
        &buffers[2],
        Output::Overwrite,
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("conv2d_forward") && err.to_string().contains("Winograd does not apply"), "{err}");
}

#[test]
fn a_short_buffer_given_to_the_winograd_passes_is_refused_by_name() {
    let Some(ctx) = ctx() else { return };
    let g = Conv2dGeometry::conv2d([2, 3, 6, 6], [4, 3, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
    let [x, w, y, short] = [g.x_len(), g.weight_len(), g.y_len(), g.y_len() - 1].map(|len| poisoned(ctx, len));
    let err = winograd::forward_in_passes(ctx, &g, false, [&x, &w], None, &short, Output::Overwrite, false, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("winograd_forward") && err.contains("y"), "{err}");
    let short_dw = poisoned(ctx, g.weight_len() - 1);
    let err = winograd::backward_weight_in_passes(ctx, &g, [&y, &x], &short_dw, Output::Overwrite, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("winograd_backward_weight") && err.contains("dw"), "{err}");
}
