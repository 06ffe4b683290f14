//! conv_transpose2d (conv2d.wgsl kernels run backwards) against the reference tier's scatter
//! definition (`tensor::reference::conv`), with stride, padding, dilation and output_padding
//! variants.

use crate::common;

use common::*;
use gpu::descriptors::Conv2dGeometry;
use gpu::kernels::{conv_transpose2d as ct, Output};
use gpu::GpuBuffer;
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

/// A conv_transpose2d forward launcher: on the implicit GEMM (`forward`) or by its definition
/// (`forward_direct`).
type Forward =
    fn(&gpu::Context, &Conv2dGeometry, &GpuBuffer, &GpuBuffer, Option<&GpuBuffer>, &GpuBuffer) -> gpu::Result<()>;

#[test]
fn conv_transpose2d_forward_and_its_direct_rung_match_the_scatter_definition() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    let rungs: [(&str, Forward); 2] = [("forward", ct::forward), ("forward_direct", ct::forward_direct)];
    for g in geometries() {
        let (x, w, bias) = (rng.signed(g.x_len()), rng.signed(g.weight_len()), rng.signed(g.c_out));
        let (xb, wb, bb) = (upload(ctx, &x), upload(ctx, &w), upload(ctx, &bias));
        for ((name, launch), with_bias) in rungs.iter().flat_map(|r| [(r, false), (r, true)]) {
            let y = poisoned(ctx, g.y_len());
            launch(ctx, &g, &xb, &wb, with_bias.then_some(&bb), &y).unwrap();
            let ((x64, xa), (w64, wa), (b64, ba)) = (f64s(&x), f64s(&w), f64s(&bias));
            let want = reference::conv_transpose2d(&x64, &w64, with_bias.then_some(&b64[..]), &g);
            let scale = reference::conv_transpose2d(&xa, &wa, with_bias.then_some(&ba[..]), &g);
            assert_close(&format!("ct {name} bias={with_bias} {g:?}"), &rng, &ctx.read(&y).unwrap(), &want, |i| {
                scale[i]
            });
        }
    }
}

#[test]
fn conv_transpose2d_backward_data_weight_and_bias_match_reference() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for g in geometries() {
        let (dy, x, w) = (rng.signed(g.y_len()), rng.signed(g.x_len()), rng.signed(g.weight_len()));
        let (dyb, xb, wb) = (upload(ctx, &dy), upload(ctx, &x), upload(ctx, &w));
        let (dx, dw, db) = (poisoned(ctx, g.x_len()), poisoned(ctx, g.weight_len()), poisoned(ctx, g.c_out));
        ct::backward_data(ctx, &g, &dyb, &wb, &dx, Output::Overwrite).unwrap();
        ct::backward_weight(ctx, &g, &dyb, &xb, &dw, Output::Overwrite).unwrap();
        ct::backward_bias(ctx, &g, &dyb, &db, Output::Overwrite).unwrap();
        let ((dy64, dya), (x64, xa), (w64, wa)) = (f64s(&dy), f64s(&x), f64s(&w));
        let (wdx, sdx) = (
            reference::conv_transpose2d_backward_data(&dy64, &w64, &g),
            reference::conv_transpose2d_backward_data(&dya, &wa, &g),
        );
        let (wdw, sdw) = (
            reference::conv_transpose2d_backward_weight(&dy64, &x64, &g),
            reference::conv_transpose2d_backward_weight(&dya, &xa, &g),
        );
        let dims = [g.batch, g.c_out, g.oh * g.ow];
        let (wdb, sdb) = (reference::bias_grad(&dy64, dims), reference::bias_grad(&dya, dims));
        assert_close(&format!("ct backward_data {g:?}"), &rng, &ctx.read(&dx).unwrap(), &wdx, |i| sdx[i]);
        assert_close(&format!("ct backward_weight {g:?}"), &rng, &ctx.read(&dw).unwrap(), &wdw, |i| sdw[i]);
        assert_close(&format!("ct backward_bias {g:?}"), &rng, &ctx.read(&db).unwrap(), &wdb, |i| sdb[i]);
    }
}

#[test]
fn conv_transpose2d_backward_data_accumulates() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    let g = Conv2dGeometry::conv_transpose2d([2, 3, 4, 5], [3, 4, 3, 3], [2, 2], [1, 1], [1, 1], [1, 1]).unwrap();
    let (dy, w) = (rng.signed(g.y_len()), rng.signed(g.weight_len()));
    let (dyb, wb) = (upload(ctx, &dy), upload(ctx, &w));
    let dx = poisoned(ctx, g.x_len());
    ct::backward_data(ctx, &g, &dyb, &wb, &dx, Output::Overwrite).unwrap();
    let once = to_f64(&ctx.read(&dx).unwrap());
    ct::backward_data(ctx, &g, &dyb, &wb, &dx, Output::Accumulate).unwrap();
    let want: Vec<f64> = once.iter().map(|v| 2.0 * v).collect();
    assert_close("ct dx accumulate", &rng, &ctx.read(&dx).unwrap(), &want, |i| once[i].abs().max(1e-3));
}
