//! conv_transpose2d (conv2d.wgsl kernels run backwards) against its scatter definition in
//! f64, with stride, padding, dilation and output_padding variants.

mod common;

use common::*;
use gpu::descriptors::Conv2dGeometry;
use gpu::kernels::{conv_transpose2d as ct, Output};

/// For every (input pixel, tap) pair that lands inside the output:
/// f(n, ci, iy, ix, co, ky, kx, oy, ox), with oy = iy·s − p + ky·d.
fn for_each_tap(g: &Conv2dGeometry, mut f: impl FnMut([usize; 9])) {
    for n in 0..g.batch {
        for ci in 0..g.c_in {
            for iy in 0..g.h {
                for ix in 0..g.w {
                    for co in 0..g.c_out {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let oy = (iy * g.stride[0] + ky * g.dilation[0]) as isize - g.padding[0] as isize;
                                let ox = (ix * g.stride[1] + kx * g.dilation[1]) as isize - g.padding[1] as isize;
                                if oy < 0 || ox < 0 || oy as usize >= g.oh || ox as usize >= g.ow {
                                    continue;
                                }
                                f([n, ci, iy, ix, co, ky, kx, oy as usize, ox as usize]);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn xi(g: &Conv2dGeometry, n: usize, c: usize, y: usize, x: usize) -> usize {
    ((n * g.c_in + c) * g.h + y) * g.w + x
}
fn yi(g: &Conv2dGeometry, n: usize, c: usize, y: usize, x: usize) -> usize {
    ((n * g.c_out + c) * g.oh + y) * g.ow + x
}
/// weight [C_in, C_out, kH, kW]
fn wi(g: &Conv2dGeometry, ci: usize, co: usize, ky: usize, kx: usize) -> usize {
    ((ci * g.c_out + co) * g.kh + ky) * g.kw + kx
}

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
    ]
}

#[test]
fn conv_transpose2d_forward_matches_scatter_definition() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for g in geometries() {
        let (x, w, bias) = (rng.signed(g.x_len()), rng.signed(g.weight_len()), rng.signed(g.c_out));
        let (xb, wb, bb) = (upload(ctx, &x), upload(ctx, &w), upload(ctx, &bias));
        for with_bias in [false, true] {
            let y = poisoned(ctx, g.y_len());
            ct::forward(ctx, &g, &xb, &wb, with_bias.then_some(&bb), &y).unwrap();
            let (mut want, mut scale) = (vec![0.0; g.y_len()], vec![0.0; g.y_len()]);
            for_each_tap(&g, |[n, ci, iy, ix, co, ky, kx, oy, ox]| {
                let t = x[xi(&g, n, ci, iy, ix)] as f64 * w[wi(&g, ci, co, ky, kx)] as f64;
                want[yi(&g, n, co, oy, ox)] += t;
                scale[yi(&g, n, co, oy, ox)] += t.abs();
            });
            if with_bias {
                for (i, v) in want.iter_mut().enumerate() {
                    let co = (i / (g.oh * g.ow)) % g.c_out;
                    *v += bias[co] as f64;
                    scale[i] += (bias[co] as f64).abs();
                }
            }
            assert_close(&format!("ct forward bias={with_bias} {g:?}"), &rng, &ctx.read(&y).unwrap(), &want, |i| {
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
        let (mut wdx, mut sdx) = (vec![0.0; g.x_len()], vec![0.0; g.x_len()]);
        let (mut wdw, mut sdw) = (vec![0.0; g.weight_len()], vec![0.0; g.weight_len()]);
        for_each_tap(&g, |[n, ci, iy, ix, co, ky, kx, oy, ox]| {
            let gy = dy[yi(&g, n, co, oy, ox)] as f64;
            let t = gy * w[wi(&g, ci, co, ky, kx)] as f64;
            wdx[xi(&g, n, ci, iy, ix)] += t;
            sdx[xi(&g, n, ci, iy, ix)] += t.abs();
            let u = gy * x[xi(&g, n, ci, iy, ix)] as f64;
            wdw[wi(&g, ci, co, ky, kx)] += u;
            sdw[wi(&g, ci, co, ky, kx)] += u.abs();
        });
        let (mut wdb, mut sdb) = (vec![0.0; g.c_out], vec![0.0; g.c_out]);
        for (i, &v) in dy.iter().enumerate() {
            let co = (i / (g.oh * g.ow)) % g.c_out;
            wdb[co] += v as f64;
            sdb[co] += (v as f64).abs();
        }
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
