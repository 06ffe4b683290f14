//! pool.wgsl against the reference tier (`tensor::reference::pool`): max pool (values and u32
//! indices) and its backward, average pool (count_include_pad = true) and global average
//! pool, both directions.

use crate::common;

use common::*;
use gpu::descriptors::Pool2dGeometry;
use gpu::kernels::pool;
use tensor::reference::pool as reference;

fn geoms() -> Vec<Pool2dGeometry> {
    [
        (1, [4, 4], [2, 2], [2, 2], [0, 0]),
        (3, [7, 9], [3, 3], [2, 2], [1, 1]),
        (2, [33, 5], [3, 3], [1, 1], [1, 1]),
        (4, [8, 7], [3, 2], [2, 1], [1, 0]),
        (2, [1, 1], [1, 1], [1, 1], [0, 0]),
        (65, [5, 6], [2, 3], [3, 2], [1, 1]),
    ]
    .into_iter()
    .map(|(planes, hw, k, s, p)| Pool2dGeometry::new(planes, hw, k, s, p).unwrap())
    .collect()
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
        let (want_y, argmax) = reference::max_pool2d(&f64s(&x).0, &g);
        let want_i: Vec<u32> = argmax.iter().map(|&i| i as u32).collect();
        assert_close_unit(&format!("max values {g:?}"), &rng, &ctx.read(&y).unwrap(), &want_y);
        assert_eq!(ctx.read_u32(&idx).unwrap(), want_i, "max indices {g:?} (seed {})", rng.seed);

        let dy = rng.signed(g.y_len());
        let dx = poisoned(ctx, g.x_len());
        pool::max_backward(ctx, &g, &upload(ctx, &dy), &idx, &dx).unwrap();
        let want = reference::max_pool2d_backward(&f64s(&dy).0, &argmax, [g.oh * g.ow, g.h * g.w]);
        assert_close_unit(&format!("max backward {g:?}"), &rng, &ctx.read(&dx).unwrap(), &want);
    }
}

#[test]
fn max_pool_ties_pick_the_first_maximum() {
    let Some(ctx) = ctx() else { return };
    let g = Pool2dGeometry::new(1, [4, 4], [2, 2], [2, 2], [0, 0]).unwrap();
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
        let want_y = reference::avg_pool2d(&f64s(&x).0, &g);
        let want_dx = reference::avg_pool2d_backward(&f64s(&dy).0, &g);
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
        let want = reference::global_avg_pool2d(&f64s(&x).0, plane);
        assert_close_unit(&format!("global forward {planes}x{plane}"), &rng, &ctx.read(&y).unwrap(), &want);
        let dy = rng.signed(planes);
        let dx = poisoned(ctx, planes * plane);
        pool::global_avg_backward(ctx, planes, plane, &upload(ctx, &dy), &dx).unwrap();
        let want: Vec<f64> = (0..planes * plane).map(|i| dy[i / plane] as f64 / plane as f64).collect();
        assert_close_unit(&format!("global backward {planes}x{plane}"), &rng, &ctx.read(&dx).unwrap(), &want);
    }
}
