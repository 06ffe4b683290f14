//! pool.wgsl against f64 references: max pool (values and u32 indices) and its backward,
//! average pool (count_include_pad = true) and global average pool, both directions.

mod common;

use common::*;
use gpu::descriptors::Pool2dGeom;
use gpu::kernels::pool;

/// In-bounds window rows/cols of output o and the padded length (PyTorch's divisor).
fn window(o: usize, k: usize, s: usize, p: usize, n: usize) -> Window {
    let start = (o * s) as isize - p as isize;
    let end = (start + k as isize).min((n + p) as isize);
    (start.max(0) as usize, end.min(n as isize) as usize, (end - start) as usize)
}

fn geoms() -> Vec<Pool2dGeom> {
    [
        (1, [4, 4], [2, 2], [2, 2], [0, 0]),
        (3, [7, 9], [3, 3], [2, 2], [1, 1]),
        (2, [33, 5], [3, 3], [1, 1], [1, 1]),
        (4, [8, 7], [3, 2], [2, 1], [1, 0]),
        (2, [1, 1], [1, 1], [1, 1], [0, 0]),
        (65, [5, 6], [2, 3], [3, 2], [1, 1]),
    ]
    .into_iter()
    .map(|(planes, hw, k, s, p)| Pool2dGeom::new(planes, hw, k, s, p).unwrap())
    .collect()
}

/// An in-bounds window along one axis: (lo, hi, padded length).
type Window = (usize, usize, usize);

/// For each output in row-major order: (plane, row window, column window).
fn outputs(g: &Pool2dGeom) -> Vec<(usize, Window, Window)> {
    let mut v = Vec::new();
    for p in 0..g.planes {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                v.push((
                    p,
                    window(oy, g.kernel[0], g.stride[0], g.padding[0], g.h),
                    window(ox, g.kernel[1], g.stride[1], g.padding[1], g.w),
                ));
            }
        }
    }
    v
}

#[test]
fn max_pool_forward_values_indices_and_backward() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for g in geoms() {
        let x = rng.signed(g.x_len());
        // NaN-poisoned indices read as 0x7fc00000: an index no plane has.
        let (y, idx) = (poisoned(ctx, g.y_len()), poisoned(ctx, g.y_len()));
        pool::max_forward(ctx, &g, &upload(ctx, &x), &y, &idx).unwrap();
        let (mut want_y, mut want_i) = (Vec::new(), Vec::new());
        for (p, r, c) in outputs(&g) {
            let (mut best, mut arg) = (f64::NEG_INFINITY, 0);
            for iy in r.0..r.1 {
                for ix in c.0..c.1 {
                    let v = x[p * g.h * g.w + iy * g.w + ix] as f64;
                    if v > best {
                        (best, arg) = (v, iy * g.w + ix);
                    }
                }
            }
            want_y.push(best);
            want_i.push(arg as u32);
        }
        assert_close_unit(&format!("max values {g:?}"), &rng, &ctx.read(&y).unwrap(), &want_y);
        assert_eq!(ctx.read_u32(&idx).unwrap(), want_i, "max indices {g:?} (seed {})", rng.seed);

        let dy = rng.signed(g.y_len());
        let dx = poisoned(ctx, g.x_len());
        pool::max_backward(ctx, &g, &upload(ctx, &dy), &idx, &dx).unwrap();
        let mut want = vec![0.0; g.x_len()];
        for (o, &i) in want_i.iter().enumerate() {
            let p = o / (g.oh * g.ow);
            want[p * g.h * g.w + i as usize] += dy[o] as f64;
        }
        assert_close_unit(&format!("max backward {g:?}"), &rng, &ctx.read(&dx).unwrap(), &want);
    }
}

#[test]
fn max_pool_ties_pick_the_first_maximum() {
    let Some(ctx) = ctx() else { return };
    let g = Pool2dGeom::new(1, [4, 4], [2, 2], [2, 2], [0, 0]).unwrap();
    let (y, idx) = (ctx.alloc(4).unwrap(), ctx.alloc(4).unwrap());
    pool::max_forward(ctx, &g, &upload(ctx, &[1.0; 16]), &y, &idx).unwrap();
    assert_eq!(ctx.read_u32(&idx).unwrap(), vec![0, 2, 8, 10]);
}

#[test]
fn avg_pool_forward_and_backward_count_padding() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for g in geoms() {
        let x = rng.signed(g.x_len());
        let y = poisoned(ctx, g.y_len());
        pool::avg_forward(ctx, &g, &upload(ctx, &x), &y).unwrap();
        let dy = rng.signed(g.y_len());
        let dx = poisoned(ctx, g.x_len());
        pool::avg_backward(ctx, &g, &upload(ctx, &dy), &dx).unwrap();
        let mut want_y = Vec::new();
        let mut want_dx = vec![0.0; g.x_len()];
        for (o, (p, r, c)) in outputs(&g).into_iter().enumerate() {
            let div = (r.2 * c.2) as f64;
            let mut s = 0.0;
            for iy in r.0..r.1 {
                for ix in c.0..c.1 {
                    s += x[p * g.h * g.w + iy * g.w + ix] as f64;
                    want_dx[p * g.h * g.w + iy * g.w + ix] += dy[o] as f64 / div;
                }
            }
            want_y.push(s / div);
        }
        assert_close_unit(&format!("avg forward {g:?}"), &rng, &ctx.read(&y).unwrap(), &want_y);
        assert_close_unit(&format!("avg backward {g:?}"), &rng, &ctx.read(&dx).unwrap(), &want_dx);
    }
}

#[test]
fn global_avg_pool_forward_and_backward() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for (planes, plane) in [(1, 1), (7, 33), (130, 64), (3, 1000)] {
        let x = rng.signed(planes * plane);
        let y = poisoned(ctx, planes);
        pool::global_avg_forward(ctx, planes, plane, &upload(ctx, &x), &y).unwrap();
        let want: Vec<f64> = x.chunks(plane).map(|c| c.iter().map(|&v| v as f64).sum::<f64>() / plane as f64).collect();
        assert_close_unit(&format!("global forward {planes}x{plane}"), &rng, &ctx.read(&y).unwrap(), &want);
        let dy = rng.signed(planes);
        let dx = poisoned(ctx, planes * plane);
        pool::global_avg_backward(ctx, planes, plane, &upload(ctx, &dy), &dx).unwrap();
        let want: Vec<f64> = (0..planes * plane).map(|i| dy[i / plane] as f64 / plane as f64).collect();
        assert_close_unit(&format!("global backward {planes}x{plane}"), &rng, &ctx.read(&dx).unwrap(), &want);
    }
}
