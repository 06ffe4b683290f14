//! conv2d.wgsl (forward, backward-data, backward-weight, backward-bias) against the reference
//! tier (`tensor::reference::conv`) over stride / padding / dilation variants and sizes off
//! the tile grid, each GEMM of 64 rows or more on the tile chosen by size (the square one at
//! these sizes) and on the wide one.

use crate::common;

use common::*;
use gpu::descriptors::Conv2dGeometry;
use gpu::kernels::conv2d::{self, ConvKernel, ConvRung};
use gpu::kernels::Output;
use tensor::reference::conv as reference;

fn geometries() -> Vec<Conv2dGeometry> {
    let c = |b, ci, [h, w]: [usize; 2], co, [kh, kw]: [usize; 2], s, p, d| {
        Conv2dGeometry::conv2d([b, ci, h, w], [co, ci, kh, kw], s, p, d).unwrap()
    };
    vec![
        c(1, 1, [5, 5], 1, [3, 3], [1, 1], [0, 0], [1, 1]),
        c(2, 3, [7, 9], 4, [3, 3], [2, 1], [1, 0], [1, 2]),
        c(3, 5, [8, 8], 7, [1, 1], [1, 1], [0, 0], [1, 1]),
        c(1, 4, [11, 6], 6, [5, 3], [2, 3], [2, 1], [1, 1]),
        c(2, 17, [9, 9], 33, [3, 3], [1, 1], [1, 1], [1, 1]),
        c(1, 2, [4, 4], 3, [2, 2], [2, 2], [0, 0], [1, 1]),
        c(2, 3, [10, 7], 65, [3, 2], [1, 2], [2, 1], [2, 1]),
        c(1, 1, [1, 1], 1, [1, 1], [1, 1], [0, 0], [1, 1]),
        // long K = N·OH·OW over a tiny dW: backward_weight splits K into 2, then 4 slices
        c(5, 2, [23, 19], 3, [3, 3], [1, 1], [1, 1], [1, 1]),
        c(4, 1, [40, 33], 2, [2, 2], [1, 1], [0, 0], [1, 1]),
        // dead taps: a 3×3 kernel on a 1×1 plane runs as its centre tap; on a 2×3 plane at
        // stride 2 as a 2×2 block; and cropped with a split K
        c(3, 5, [1, 1], 7, [3, 3], [1, 1], [1, 1], [1, 1]),
        c(2, 4, [2, 3], 66, [3, 3], [2, 2], [1, 1], [1, 1]),
        c(2100, 2, [1, 1], 3, [3, 3], [1, 1], [1, 1], [1, 1]),
        // more than 64 rows and columns, so every quadrant of a wide tile holds outputs: 75
        // output channels (forward, backward_weight) and 71 input channels (backward_data, at
        // stride 2 in four phases)
        c(2, 5, [9, 9], 75, [3, 3], [1, 1], [1, 1], [1, 1]),
        c(2, 71, [13, 17], 9, [3, 3], [2, 2], [1, 1], [1, 1]),
        // few output tiles over a long K: the forward and the (stride-1) backward_data split
        // their K, into 2 slices here (a 64 × 32 output over K = 576) and 10 and 2 here
        // (70 × 15 over 2,700; 300 × 15 over 630, on a 3×5 plane, so its taps are all live)
        c(2, 64, [4, 4], 64, [3, 3], [1, 1], [1, 1], [1, 1]),
        c(1, 300, [3, 5], 70, [3, 3], [1, 1], [1, 1], [1, 1]),
    ]
}

/// The rung the tensor ops run, for the tests of its tiling, slicing and splitting.
const GEMM: ConvRung = ConvRung::ImplicitGemm;

/// The shared context and one whose GEMMs all run on the wide tile.
fn contexts() -> Vec<&'static gpu::Context> {
    ctx().map(|c| vec![c, wide_tile_context()]).unwrap_or_default()
}

#[test]
fn conv2d_forward_on_every_rung_with_and_without_bias_matches_the_reference() {
    let mut rng = Rng::new();
    for (ctx, g) in contexts().into_iter().flat_map(|c| geometries().into_iter().map(move |g| (c, g))) {
        let x = rng.signed(g.x_len());
        let w = rng.signed(g.weight_len());
        let bias = rng.signed(g.c_out);
        let (xb, wb, bb) = (upload(ctx, &x), upload(ctx, &w), upload(ctx, &bias));
        for (rung, with_bias) in ConvRung::ALL.into_iter().flat_map(|r| [(r, false), (r, true)]) {
            let y = poisoned(ctx, g.y_len());
            conv2d::launch(
                ctx,
                ConvKernel::Forward,
                rung,
                &g,
                [&xb, &wb],
                with_bias.then_some(&bb),
                &y,
                Output::Overwrite,
            )
            .unwrap();
            let ((x64, xa), (w64, wa), (b64, ba)) = (f64s(&x), f64s(&w), f64s(&bias));
            let want = reference::conv2d(&x64, &w64, with_bias.then_some(&b64[..]), &g);
            let scale = reference::conv2d(&xa, &wa, with_bias.then_some(&ba[..]), &g);
            let what = format!("forward {} bias={with_bias} {g:?}", rung.name());
            assert_close(&what, &rng, &ctx.read(&y).unwrap(), &want, |i| scale[i]);
        }
    }
}

#[test]
fn conv2d_backward_data_on_every_rung_gathers_every_tap() {
    let mut rng = Rng::new();
    for (ctx, g) in contexts().into_iter().flat_map(|c| geometries().into_iter().map(move |g| (c, g))) {
        let dy = rng.signed(g.y_len());
        let w = rng.signed(g.weight_len());
        let (dyb, wb) = (upload(ctx, &dy), upload(ctx, &w));
        let ((dy64, dya), (w64, wa)) = (f64s(&dy), f64s(&w));
        let (want, scale) =
            (reference::conv2d_backward_data(&dy64, &w64, &g), reference::conv2d_backward_data(&dya, &wa, &g));
        for rung in ConvRung::ALL {
            let dx = poisoned(ctx, g.x_len());
            conv2d::launch(ctx, ConvKernel::BackwardData, rung, &g, [&dyb, &wb], None, &dx, Output::Overwrite).unwrap();
            let what = format!("backward_data {} {g:?}", rung.name());
            assert_close(&what, &rng, &ctx.read(&dx).unwrap(), &want, |i| scale[i]);
        }
    }
}

#[test]
fn the_relu_epilogue_of_the_forward_and_of_backward_data_matches_the_reference_on_every_rung() {
    let mut rng = Rng::new();
    let relu = |v: Vec<f64>| v.into_iter().map(|v| v.max(0.0)).collect::<Vec<_>>();
    for (ctx, g) in contexts().into_iter().flat_map(|c| geometries().into_iter().map(move |g| (c, g))) {
        let (x, w, dy) = (rng.signed(g.x_len()), rng.signed(g.weight_len()), rng.signed(g.y_len()));
        let (bias_out, bias_in) = (rng.signed(g.c_out), rng.signed(g.c_in));
        let [xb, wb, dyb, bob, bib] = [&x, &w, &dy, &bias_out, &bias_in].map(|v| upload(ctx, v));
        let [(x64, xa), (w64, wa), (dy64, dya), (bo64, boa), (bi64, bia)] =
            [&x, &w, &dy, &bias_out, &bias_in].map(|v| f64s(v));
        // The forward with its bias; backward-data with one (conv_transpose2d's forward).
        let want_y = relu(reference::conv2d(&x64, &w64, Some(&bo64[..]), &g));
        let scale_y = reference::conv2d(&xa, &wa, Some(&boa[..]), &g);
        let with_bias = |v: Vec<f64>, b: &[f64], plane: usize| {
            v.iter().enumerate().map(|(i, v)| v + b[(i / plane) % b.len()]).collect::<Vec<_>>()
        };
        let plane = g.h * g.w;
        let want_dx = relu(with_bias(reference::conv2d_backward_data(&dy64, &w64, &g), &bi64, plane));
        let scale_dx = with_bias(reference::conv2d_backward_data(&dya, &wa, &g), &bia, plane);
        for rung in ConvRung::ALL {
            let y = poisoned(ctx, g.y_len());
            conv2d::launch_then_relu(ctx, ConvKernel::Forward, rung, &g, [&xb, &wb], Some(&bob), &y).unwrap();
            let what = format!("forward + ReLU {} {g:?}", rung.name());
            assert_close(&what, &rng, &ctx.read(&y).unwrap(), &want_y, |i| scale_y[i]);
            let dx = poisoned(ctx, g.x_len());
            conv2d::launch_then_relu(ctx, ConvKernel::BackwardData, rung, &g, [&dyb, &wb], Some(&bib), &dx).unwrap();
            let what = format!("backward_data + ReLU {} {g:?}", rung.name());
            assert_close(&what, &rng, &ctx.read(&dx).unwrap(), &want_dx, |i| scale_dx[i]);
        }
    }
}

#[test]
fn conv2d_backward_weight_on_every_rung_and_its_bias_match_the_reference() {
    let mut rng = Rng::new();
    for (ctx, g) in contexts().into_iter().flat_map(|c| geometries().into_iter().map(move |g| (c, g))) {
        let dy = rng.signed(g.y_len());
        let x = rng.signed(g.x_len());
        let (dyb, xb) = (upload(ctx, &dy), upload(ctx, &x));
        let ((dy64, dya), (x64, xa)) = (f64s(&dy), f64s(&x));
        let (want, scale) =
            (reference::conv2d_backward_weight(&dy64, &x64, &g), reference::conv2d_backward_weight(&dya, &xa, &g));
        for rung in ConvRung::ALL {
            let dw = poisoned(ctx, g.weight_len());
            conv2d::launch(ctx, ConvKernel::BackwardWeight, rung, &g, [&dyb, &xb], None, &dw, Output::Overwrite)
                .unwrap();
            let what = format!("backward_weight {} {g:?}", rung.name());
            assert_close(&what, &rng, &ctx.read(&dw).unwrap(), &want, |i| scale[i]);
        }

        let db = poisoned(ctx, g.c_out);
        conv2d::backward_bias(ctx, [g.batch, g.c_out, g.oh * g.ow], &dyb, &db, Output::Overwrite).unwrap();
        let dims = [g.batch, g.c_out, g.oh * g.ow];
        let (want, scale) = (reference::bias_grad(&dy64, dims), reference::bias_grad(&dya, dims));
        assert_close(&format!("backward_bias {g:?}"), &rng, &ctx.read(&db).unwrap(), &want, |i| scale[i]);
    }
}

#[test]
fn conv2d_gradients_accumulate_into_existing_buffers() {
    let mut rng = Rng::new();
    // The second geometry's backward_weight splits its K (see conv2d.rs): the slices' sum
    // accumulates too.
    for g in [
        Conv2dGeometry::conv2d([2, 3, 7, 5], [4, 3, 3, 3], [2, 1], [1, 1], [1, 1]).unwrap(),
        Conv2dGeometry::conv2d([5, 2, 23, 19], [3, 2, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap(),
        // and one whose kernel is cropped to its live taps (dW's dead taps must stay as they were)
        Conv2dGeometry::conv2d([3, 5, 1, 1], [7, 5, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap(),
        // and one whose backward_data splits its K (its slices' sum accumulates)
        Conv2dGeometry::conv2d([2, 64, 4, 4], [64, 64, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap(),
    ] {
        for (ctx, rung) in contexts().into_iter().flat_map(|c| ConvRung::ALL.map(|r| (c, r))) {
            accumulates_twice(ctx, rung, &mut rng, &g);
        }
    }
}

#[test]
fn the_bias_gradient_of_few_channels_over_large_planes_matches_the_reference() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    // Planes of at least 256 under 64 channels (the last is B1's output layer), which `backward_bias`
    // sums by the reductions on a hardware adapter: both forms against the reference.
    for dims in [[5, 3, 33 * 33], [2, 7, 257], [3, 63, 256], [1, 2, 4099], [64, 3, 64 * 64]] {
        let dy = rng.signed(dims.iter().product());
        let dyb = upload(ctx, &dy);
        let (dy64, dya) = f64s(&dy);
        let (want, scale) = (reference::bias_grad(&dy64, dims), reference::bias_grad(&dya, dims));
        let db = poisoned(ctx, dims[1]);
        conv2d::backward_bias_by_reductions(ctx, dims, &dyb, &db).unwrap();
        let what = format!("backward_bias_by_reductions {dims:?}");
        assert_close(&what, &rng, &ctx.read(&db).unwrap(), &want, |i| scale[i]);
        let db = poisoned(ctx, dims[1]);
        conv2d::backward_bias(ctx, dims, &dyb, &db, Output::Overwrite).unwrap();
        assert_close(&format!("backward_bias {dims:?}"), &rng, &ctx.read(&db).unwrap(), &want, |i| scale[i]);
        conv2d::backward_bias(ctx, dims, &dyb, &db, Output::Accumulate).unwrap();
        let twice: Vec<f64> = want.iter().map(|v| 2.0 * v).collect();
        let what = format!("backward_bias accumulated {dims:?}");
        assert_close(&what, &rng, &ctx.read(&db).unwrap(), &twice, |i| 2.0 * scale[i]);
    }
}

fn accumulates_twice(ctx: &gpu::Context, rung: ConvRung, rng: &mut Rng, g: &Conv2dGeometry) {
    let (dy, x, w) = (rng.signed(g.y_len()), rng.signed(g.x_len()), rng.signed(g.weight_len()));
    let (dyb, xb, wb) = (upload(ctx, &dy), upload(ctx, &x), upload(ctx, &w));
    // Overwrite once, then accumulate the same gradient on top: the result doubles.
    let check = |name: &str, len: usize, run: &dyn Fn(&gpu::GpuBuffer, Output)| {
        let out = poisoned(ctx, len);
        run(&out, Output::Overwrite);
        let once: Vec<f64> = to_f64(&ctx.read(&out).unwrap());
        run(&out, Output::Accumulate);
        let twice = ctx.read(&out).unwrap();
        let want: Vec<f64> = once.iter().map(|v| 2.0 * v).collect();
        assert_close(&format!("{name} {} {g:?}", rung.name()), rng, &twice, &want, |i| once[i].abs().max(1e-3));
    };
    check("y", g.y_len(), &|o, m| conv2d::launch(ctx, ConvKernel::Forward, rung, g, [&xb, &wb], None, o, m).unwrap());
    check("dx", g.x_len(), &|o, m| {
        conv2d::launch(ctx, ConvKernel::BackwardData, rung, g, [&dyb, &wb], None, o, m).unwrap()
    });
    check("dw", g.weight_len(), &|o, m| {
        conv2d::launch(ctx, ConvKernel::BackwardWeight, rung, g, [&dyb, &xb], None, o, m).unwrap()
    });
    check("db", g.c_out, &|o, m| conv2d::backward_bias(ctx, [g.batch, g.c_out, g.oh * g.ow], &dyb, o, m).unwrap());
}

/// A context whose grids hold at most `max` workgroups along each axis, or `None` as [`ctx`].
fn context_with_workgroup_limit(max: u32) -> Option<gpu::Context> {
    ctx()?;
    Some(gpu::Context::with_workgroup_limit(gpu::AdapterPreference::AnyIncludingSoftware, max).unwrap())
}

#[test]
fn conv2d_wider_than_one_grid_axis_runs_in_column_slices() {
    let Some(ctx) = context_with_workgroup_limit(2) else { return };
    let ctx = &ctx;
    let mut rng = Rng::new();
    // Poisoned by upload: filling would itself be a launch too wide for this grid.
    let poisoned = |ctx: &gpu::Context, len| upload(ctx, &vec![f32::NAN; len]);
    // 2×16×16 output pixels are 8 square (64-column) or 4 narrow (128-column) tiles: each
    // GEMM below needs 2 to 10 column tiles in a grid 2 wide. The first runs its forward and
    // weight gradient on the square tile and its data gradient (17 rows) on the narrow one;
    // the second the other way round.
    for (c_in, c_out) in [(17, 65), (65, 33)] {
        let g = Conv2dGeometry::conv2d([2, c_in, 16, 16], [c_out, c_in, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        let (x, w, dy) = (rng.signed(g.x_len()), rng.signed(g.weight_len()), rng.signed(g.y_len()));
        let (xb, wb, dyb) = (upload(ctx, &x), upload(ctx, &w), upload(ctx, &dy));
        let ((x64, xa), (w64, wa), (dy64, dya)) = (f64s(&x), f64s(&w), f64s(&dy));

        let y = poisoned(ctx, g.y_len());
        conv2d::launch(ctx, ConvKernel::Forward, GEMM, &g, [&xb, &wb], None, &y, Output::Overwrite).unwrap();
        let (want, scale) = (reference::conv2d(&x64, &w64, None, &g), reference::conv2d(&xa, &wa, None, &g));
        assert_close(&format!("forward {g:?}"), &rng, &ctx.read(&y).unwrap(), &want, |i| scale[i]);

        let dx = poisoned(ctx, g.x_len());
        conv2d::launch(ctx, ConvKernel::BackwardData, GEMM, &g, [&dyb, &wb], None, &dx, Output::Overwrite).unwrap();
        let (want, scale) =
            (reference::conv2d_backward_data(&dy64, &w64, &g), reference::conv2d_backward_data(&dya, &wa, &g));
        assert_close(&format!("backward_data {g:?}"), &rng, &ctx.read(&dx).unwrap(), &want, |i| scale[i]);

        let dw = poisoned(ctx, g.weight_len());
        conv2d::launch(ctx, ConvKernel::BackwardWeight, GEMM, &g, [&dyb, &xb], None, &dw, Output::Overwrite).unwrap();
        let (want, scale) =
            (reference::conv2d_backward_weight(&dy64, &x64, &g), reference::conv2d_backward_weight(&dya, &xa, &g));
        assert_close(&format!("backward_weight {g:?}"), &rng, &ctx.read(&dw).unwrap(), &want, |i| scale[i]);
    }
}

#[test]
fn a_forward_with_few_output_tiles_splits_its_k_and_adds_the_slices_with_bias_and_old_output() {
    // A context of its own: it counts launches.
    let Some(ctx) = &own_ctx() else { return };
    let mut rng = Rng::new();
    let g = Conv2dGeometry::conv2d([1, 300, 3, 5], [70, 300, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
    let (x, w, bias) = (rng.signed(g.x_len()), rng.signed(g.weight_len()), rng.signed(g.c_out));
    let (xb, wb, bb) = (upload(ctx, &x), upload(ctx, &w), upload(ctx, &bias));
    let y = poisoned(ctx, g.y_len());
    let before = ctx.counters();
    conv2d::launch(ctx, ConvKernel::Forward, GEMM, &g, [&xb, &wb], Some(&bb), &y, Output::Overwrite).unwrap();
    assert_eq!(ctx.counters().since(&before).dispatches, 2, "the slices' product, then their sum");
    let once = ctx.read(&y).unwrap();
    let ((x64, xa), (w64, wa), (b64, ba)) = (f64s(&x), f64s(&w), f64s(&bias));
    let want = reference::conv2d(&x64, &w64, Some(&b64), &g);
    let scale = reference::conv2d(&xa, &wa, Some(&ba), &g);
    assert_close(&format!("split forward {g:?}"), &rng, &once, &want, |i| scale[i]);
    // Accumulating adds the product (no bias) to what y holds.
    conv2d::launch(ctx, ConvKernel::Forward, GEMM, &g, [&xb, &wb], None, &y, Output::Accumulate).unwrap();
    let product = reference::conv2d(&x64, &w64, None, &g);
    let twice: Vec<f64> = want.iter().zip(&product).map(|(a, b)| a + b).collect();
    assert_close(&format!("split forward accumulating {g:?}"), &rng, &ctx.read(&y).unwrap(), &twice, |i| {
        2.0 * scale[i]
    });
    // Turned off, the same forward is one launch, and computes the same.
    ctx.set_conv_split_k(false);
    let before = ctx.counters();
    conv2d::launch(ctx, ConvKernel::Forward, GEMM, &g, [&xb, &wb], Some(&bb), &y, Output::Overwrite).unwrap();
    assert_eq!(ctx.counters().since(&before).dispatches, 1, "the split turned off");
    assert_close(&format!("unsplit forward {g:?}"), &rng, &ctx.read(&y).unwrap(), &want, |i| scale[i]);
}

#[test]
fn a_bias_on_the_weight_gradient_and_a_short_operand_are_refused_by_name() {
    let Some(ctx) = ctx() else { return };
    let g = Conv2dGeometry::conv2d([2, 3, 5, 5], [4, 3, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
    let (dy, x, dw) = (ctx.zeros(g.y_len()).unwrap(), ctx.zeros(g.x_len()).unwrap(), poisoned(ctx, g.weight_len()));
    let bias = ctx.zeros(g.c_out).unwrap();
    for rung in ConvRung::ALL {
        let err =
            conv2d::launch(ctx, ConvKernel::BackwardWeight, rung, &g, [&dy, &x], Some(&bias), &dw, Output::Overwrite)
                .unwrap_err();
        assert!(err.to_string().contains("conv2d_backward_weight") && err.to_string().contains("no bias"), "{err}");
        // The forward's bias has C_out values; backward-data's (conv_transpose2d's) C_in.
        let short = ctx.zeros(g.c_in).unwrap();
        let y = poisoned(ctx, g.y_len());
        let err = conv2d::launch(ctx, ConvKernel::Forward, rung, &g, [&x, &dw], Some(&short), &y, Output::Overwrite)
            .unwrap_err();
        assert!(err.to_string().contains("conv2d_forward") && err.to_string().contains("bias"), "{err}");
    }
}

#[test]
fn a_tuning_context_keeps_a_weight_gradient_split_and_either_choice_matches_the_reference() {
    let Some(ctx) = ctx() else { return };
    // A long K over a tiny dW (the rule cuts 4,992 into 4 slices), and a dead-tap case (2,100
    // into 2): the fewest the kernel allows is 1 in both.
    let long_k = Conv2dGeometry::conv2d([4, 1, 40, 33], [2, 1, 2, 2], [1, 1], [0, 0], [1, 1]).unwrap();
    let dead_taps = Conv2dGeometry::conv2d([2100, 2, 1, 1], [3, 2, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
    let (_dir, path, tuned) = tuning_context();
    let mut rng = Rng::new();
    for g in [long_k, long_k] {
        let (dyb, xb) = (upload(&tuned, &rng.signed(g.y_len())), upload(&tuned, &rng.signed(g.x_len())));
        let dw = poisoned(&tuned, g.weight_len());
        conv2d::launch(&tuned, ConvKernel::BackwardWeight, GEMM, &g, [&dyb, &xb], None, &dw, Output::Overwrite)
            .unwrap();
    }
    let choices = tuned.tuner().expect("tuning is on").choices();
    let split: Vec<_> = choices.iter().filter(|(class, _)| class.starts_with("wgrad-split/")).collect();
    assert_eq!(split.len(), 1, "one weight-gradient class, timed once: {choices:?}");
    let kept = std::fs::read_to_string(&path).unwrap();
    assert!(kept.contains(&format!("\t{}\t{}\n", split[0].0, split[0].1)), "{kept}");
    // Both candidates are right, whichever this device keeps.
    for g in [long_k, dead_taps] {
        let (rule, fewest) =
            (conv2d::weight_grad_slices_of(ctx, &g, true), conv2d::weight_grad_slices_of(ctx, &g, false));
        assert!(rule > fewest, "the case must be one the rule cuts: {rule} slices against {fewest}");
        let (dy, x) = (rng.signed(g.y_len()), rng.signed(g.x_len()));
        let (dyb, xb) = (upload(ctx, &dy), upload(ctx, &x));
        let ((dy64, dya), (x64, xa)) = (f64s(&dy), f64s(&x));
        let want = reference::conv2d_backward_weight(&dy64, &x64, &g);
        let scale = reference::conv2d_backward_weight(&dya, &xa, &g);
        for slices in [rule, fewest] {
            let dw = poisoned(ctx, g.weight_len());
            conv2d::backward_weight_in_slices(ctx, &g, [&dyb, &xb], &dw, Output::Overwrite, slices).unwrap();
            let what = format!("backward_weight in {slices} slices {g:?}");
            assert_close(&what, &rng, &ctx.read(&dw).unwrap(), &want, |i| scale[i]);
        }
    }
}

#[test]
fn a_tuning_context_times_each_convolution_kernels_rungs_once_and_no_gemm_shape_of_the_proxy() {
    let Some(_) = ctx() else { return };
    // 64 output channels: the top rung's forward and backward-weight GEMMs ask for a tile, so
    // a proxy timed with tuning on would make choices for its own, smaller shapes.
    let g = Conv2dGeometry::conv2d([8, 8, 16, 16], [64, 8, 3, 3], [2, 2], [1, 1], [1, 1]).unwrap();
    let (_dir, path, tuned) = tuning_context();
    let kernels = [ConvKernel::Forward, ConvKernel::BackwardData, ConvKernel::BackwardWeight];
    let rungs: Vec<ConvRung> = kernels.iter().map(|&kernel| conv2d::chosen_rung(&tuned, kernel, &g)).collect();
    let choices = tuned.tuner().expect("tuning is on").choices();
    assert_eq!(choices.len(), 3, "one rung class per kernel and nothing else: {choices:?}");
    assert!(choices.iter().all(|(class, _)| class.starts_with("conv-rung/")), "{choices:?}");
    let kept = std::fs::read_to_string(&path).unwrap();
    for (class, rung) in &choices {
        assert!(kept.contains(&format!("\t{class}\t{rung}\n")), "{kept}");
    }
    // Asked again, each kernel gets its kept rung without a measurement.
    for (&kernel, &rung) in kernels.iter().zip(&rungs) {
        assert_eq!(conv2d::chosen_rung(&tuned, kernel, &g), rung);
    }
    assert_eq!(tuned.tuner().unwrap().choices(), choices);
}

#[test]
fn a_pinned_convolution_rung_wins_over_the_top_rung_and_over_tuning() {
    let Some(_) = ctx() else { return };
    let g = Conv2dGeometry::conv2d([2, 3, 7, 9], [4, 3, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
    let (_dir, _path, tuned) = tuning_context();
    assert!(tuned.pin_conv_rung(ConvRung::Tiled16));
    assert!(!tuned.pin_conv_rung(ConvRung::Direct), "the first pin decides");
    assert_eq!(conv2d::chosen_rung(&tuned, ConvKernel::Forward, &g), ConvRung::Tiled16);
    assert!(tuned.tuner().unwrap().choices().is_empty(), "nothing timed under a pin");
}
