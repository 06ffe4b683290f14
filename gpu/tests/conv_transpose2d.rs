//! conv_transpose2d through the gradient identities (conv2d's launchers on the transposed
//! geometry, every rung) against the reference tier's scatter definition
//! (`tensor::reference::conv`), with stride, padding, dilation and output_padding variants.
//! Accumulation is conv2d's, tested there.

use crate::common;

use common::*;
use gpu::descriptors::Conv2dGeometry;
use gpu::kernels::conv2d::{self, ConvKernel, ConvRung};
use gpu::kernels::Output;
use tensor::reference::conv as reference;

fn geometries() -> Vec<Conv2dGeometry> {
    let t = |b, ci, [h, w]: [usize; 2], co, [kh, kw]: [usize; 2], s, p, d, op| {
        Conv2dGeometry::conv_transpose2d([b, ci, h, w], [ci, co, kh, kw], s, p, op, d).unwrap()
    };
    vec![
        t(1, 1, [3, 3], 1, [3, 3], [1, 1], [0, 0], [1, 1], [0, 0]),
        t(2, 3, [4, 5], 4, [3, 3], [2, 2], [1, 1], [1, 1], [1, 0]),
        t(1, 5, [7, 3], 2, [4, 4], [2, 2], [1, 1], [1, 1], [0, 1]),
        t(3, 4, [5, 6], 6, [3, 2], [3, 2], [1, 0], [2, 1], [2, 1]),
        t(2, 17, [4, 4], 33, [3, 3], [1, 1], [1, 1], [1, 1], [0, 0]),
        t(1, 2, [6, 6], 3, [1, 1], [1, 1], [0, 0], [1, 1], [0, 0]),
        t(1, 2, [3, 4], 65, [3, 3], [1, 1], [0, 0], [2, 2], [1, 1]),
        // stride and dilation sharing a factor: each output phase takes every other tap
        t(2, 3, [4, 5], 2, [3, 3], [2, 2], [1, 2], [2, 2], [1, 1]),
        // stride above the kernel size: some output phases get no tap at all (bias only)
        t(1, 2, [3, 4], 3, [2, 1], [3, 3], [0, 0], [1, 1], [2, 0]),
        // a 1×1 plane: only the kernel's centre tap is run
        t(2, 5, [1, 1], 3, [3, 3], [1, 1], [1, 1], [1, 1], [0, 0]),
    ]
}

#[test]
fn conv_transpose2d_forward_as_backward_data_on_every_rung_matches_the_scatter_definition() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for g in geometries() {
        let (x, w, bias) = (rng.signed(g.x_len()), rng.signed(g.weight_len()), rng.signed(g.c_out));
        let (xb, wb, bb) = (upload(ctx, &x), upload(ctx, &w), upload(ctx, &bias));
        let ((x64, xa), (w64, wa), (b64, ba)) = (f64s(&x), f64s(&w), f64s(&bias));
        for (rung, with_bias) in ConvRung::ALL.into_iter().flat_map(|r| [(r, false), (r, true)]) {
            let y = poisoned(ctx, g.y_len());
            let t = g.transposed();
            conv2d::launch(
                ctx,
                ConvKernel::BackwardData,
                rung,
                &t,
                [&xb, &wb],
                with_bias.then_some(&bb),
                &y,
                Output::Overwrite,
            )
            .unwrap();
            let want = reference::conv_transpose2d(&x64, &w64, with_bias.then_some(&b64[..]), &g);
            let scale = reference::conv_transpose2d(&xa, &wa, with_bias.then_some(&ba[..]), &g);
            let what = format!("ct forward {} bias={with_bias} {g:?}", rung.name());
            assert_close(&what, &rng, &ctx.read(&y).unwrap(), &want, |i| scale[i]);
        }
    }
}

#[test]
fn conv_transpose2d_backward_data_and_weight_through_the_identities_on_every_rung_match_the_reference() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for g in geometries() {
        let (dy, x, w) = (rng.signed(g.y_len()), rng.signed(g.x_len()), rng.signed(g.weight_len()));
        let (dyb, xb, wb) = (upload(ctx, &dy), upload(ctx, &x), upload(ctx, &w));
        let ((dy64, dya), (x64, xa), (w64, wa)) = (f64s(&dy), f64s(&x), f64s(&w));
        let (wdx, sdx) = (
            reference::conv_transpose2d_backward_data(&dy64, &w64, &g),
            reference::conv_transpose2d_backward_data(&dya, &wa, &g),
        );
        let (wdw, sdw) = (
            reference::conv_transpose2d_backward_weight(&dy64, &x64, &g),
            reference::conv_transpose2d_backward_weight(&dya, &xa, &g),
        );
        let t = g.transposed();
        for rung in ConvRung::ALL {
            let (dx, dw) = (poisoned(ctx, g.x_len()), poisoned(ctx, g.weight_len()));
            // dx: a conv2d forward of dy; dW: conv2d's backward-weight with dy and x swapped.
            conv2d::launch(ctx, ConvKernel::Forward, rung, &t, [&dyb, &wb], None, &dx, Output::Overwrite).unwrap();
            conv2d::launch(ctx, ConvKernel::BackwardWeight, rung, &t, [&xb, &dyb], None, &dw, Output::Overwrite)
                .unwrap();
            let name = rung.name();
            assert_close(&format!("ct backward_data {name} {g:?}"), &rng, &ctx.read(&dx).unwrap(), &wdx, |i| sdx[i]);
            assert_close(&format!("ct backward_weight {name} {g:?}"), &rng, &ctx.read(&dw).unwrap(), &wdw, |i| sdw[i]);
        }
        let db = poisoned(ctx, g.c_out);
        let dims = [g.batch, g.c_out, g.oh * g.ow];
        conv2d::backward_bias(ctx, dims, &dyb, &db, Output::Overwrite).unwrap();
        let (wdb, sdb) = (reference::bias_grad(&dy64, dims), reference::bias_grad(&dya, dims));
        assert_close(&format!("ct backward_bias {g:?}"), &rng, &ctx.read(&db).unwrap(), &wdb, |i| sdb[i]);
    }
}
