//! conv2d.wgsl (forward, backward-data, backward-weight, backward-bias) against direct f64
//! loops over stride / padding / dilation variants and sizes off the tile grid.

mod common;

use common::*;
use gpu::descriptors::Conv2dGeometry;
use gpu::kernels::conv2d;
use gpu::kernels::Output;

/// For every (output pixel, tap) pair that reads an in-bounds input pixel:
/// f(n, co, oy, ox, ci, ky, kx, iy, ix).
fn for_each_tap(g: &Conv2dGeometry, mut f: impl FnMut([usize; 9])) {
    for n in 0..g.batch {
        for co in 0..g.c_out {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    for ci in 0..g.c_in {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize - g.padding[0] as isize;
                                let ix = (ox * g.stride[1] + kx * g.dilation[1]) as isize - g.padding[1] as isize;
                                if iy < 0 || ix < 0 || iy as usize >= g.h || ix as usize >= g.w {
                                    continue;
                                }
                                f([n, co, oy, ox, ci, ky, kx, iy as usize, ix as usize]);
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
fn wi(g: &Conv2dGeometry, co: usize, ci: usize, ky: usize, kx: usize) -> usize {
    ((co * g.c_in + ci) * g.kh + ky) * g.kw + kx
}

/// (value, Σ|terms|) accumulators.
fn acc(len: usize) -> (Vec<f64>, Vec<f64>) {
    (vec![0.0; len], vec![0.0; len])
}

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
    ]
}

#[test]
fn conv2d_forward_with_and_without_bias_matches_direct_loops() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for g in geometries() {
        let x = rng.signed(g.x_len());
        let w = rng.signed(g.weight_len());
        let bias = rng.signed(g.c_out);
        let (xb, wb, bb) = (upload(ctx, &x), upload(ctx, &w), upload(ctx, &bias));
        for with_bias in [false, true] {
            let y = poisoned(ctx, g.y_len());
            conv2d::forward(ctx, &g, &xb, &wb, with_bias.then_some(&bb), &y).unwrap();
            let (mut want, mut scale) = acc(g.y_len());
            for_each_tap(&g, |[n, co, oy, ox, ci, ky, kx, iy, ix]| {
                let t = x[xi(&g, n, ci, iy, ix)] as f64 * w[wi(&g, co, ci, ky, kx)] as f64;
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
            assert_close(&format!("forward bias={with_bias} {g:?}"), &rng, &ctx.read(&y).unwrap(), &want, |i| scale[i]);
        }
    }
}

#[test]
fn conv2d_backward_data_gathers_every_tap() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for g in geometries() {
        let dy = rng.signed(g.y_len());
        let w = rng.signed(g.weight_len());
        let dx = poisoned(ctx, g.x_len());
        conv2d::backward_data(ctx, &g, &upload(ctx, &dy), &upload(ctx, &w), &dx, Output::Overwrite).unwrap();
        let (mut want, mut scale) = acc(g.x_len());
        for_each_tap(&g, |[n, co, oy, ox, ci, ky, kx, iy, ix]| {
            let t = dy[yi(&g, n, co, oy, ox)] as f64 * w[wi(&g, co, ci, ky, kx)] as f64;
            want[xi(&g, n, ci, iy, ix)] += t;
            scale[xi(&g, n, ci, iy, ix)] += t.abs();
        });
        assert_close(&format!("backward_data {g:?}"), &rng, &ctx.read(&dx).unwrap(), &want, |i| scale[i]);
    }
}

#[test]
fn conv2d_backward_weight_and_bias_match_direct_loops() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for g in geometries() {
        let dy = rng.signed(g.y_len());
        let x = rng.signed(g.x_len());
        let (dyb, xb) = (upload(ctx, &dy), upload(ctx, &x));
        let dw = poisoned(ctx, g.weight_len());
        conv2d::backward_weight(ctx, &g, &dyb, &xb, &dw, Output::Overwrite).unwrap();
        let (mut want, mut scale) = acc(g.weight_len());
        for_each_tap(&g, |[n, co, oy, ox, ci, ky, kx, iy, ix]| {
            let t = dy[yi(&g, n, co, oy, ox)] as f64 * x[xi(&g, n, ci, iy, ix)] as f64;
            want[wi(&g, co, ci, ky, kx)] += t;
            scale[wi(&g, co, ci, ky, kx)] += t.abs();
        });
        assert_close(&format!("backward_weight {g:?}"), &rng, &ctx.read(&dw).unwrap(), &want, |i| scale[i]);

        let db = poisoned(ctx, g.c_out);
        conv2d::backward_bias(ctx, [g.batch, g.c_out, g.oh * g.ow], &dyb, &db, Output::Overwrite).unwrap();
        let (mut want, mut scale) = acc(g.c_out);
        for (i, &v) in dy.iter().enumerate() {
            let co = (i / (g.oh * g.ow)) % g.c_out;
            want[co] += v as f64;
            scale[co] += (v as f64).abs();
        }
        assert_close(&format!("backward_bias {g:?}"), &rng, &ctx.read(&db).unwrap(), &want, |i| scale[i]);
    }
}

#[test]
fn conv2d_gradients_accumulate_into_existing_buffers() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    let g = Conv2dGeometry::conv2d([2, 3, 7, 5], [4, 3, 3, 3], [2, 1], [1, 1], [1, 1]).unwrap();
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
        assert_close(name, &rng, &twice, &want, |i| once[i].abs().max(1e-3));
    };
    check("dx", g.x_len(), &|o, m| conv2d::backward_data(ctx, &g, &dyb, &wb, o, m).unwrap());
    check("dw", g.weight_len(), &|o, m| conv2d::backward_weight(ctx, &g, &dyb, &xb, o, m).unwrap());
    check("db", g.c_out, &|o, m| conv2d::backward_bias(ctx, [g.batch, g.c_out, g.oh * g.ow], &dyb, o, m).unwrap());
}
