//! batch_norm.wgsl against f64 references: statistics, training/eval normalisation with
//! and without affine parameters, and both backwards with a non-uniform upstream gradient.

use crate::common;

use common::*;
use gpu::descriptors::BatchNormGeometry;
use gpu::kernels::batch_norm::{self as bn, channel_slices, Affine, BackwardArgs, BatchStats, BnStats};

const EPS: f64 = 1e-5;

/// Ranges per channel the sliced rung is tested at (1: the plain rung), beside the automatic
/// choice; 7 leaves some ranges empty on the smallest shapes.
const SLICES: [Option<usize>; 5] = [None, Some(1), Some(2), Some(3), Some(7)];

fn dims() -> Vec<BatchNormGeometry> {
    [(2, 3, 5), (1, 7, 33), (5, 4, 1), (3, 65, 129), (2, 1, 257), (64, 2, 64)]
        .into_iter()
        .map(|(n, c, s)| BatchNormGeometry { n, c, s })
        .collect()
}

fn idx(d: BatchNormGeometry, n: usize, c: usize, s: usize) -> usize {
    (n * d.c + c) * d.s + s
}

/// (mean, biased var) per channel.
fn moments(d: BatchNormGeometry, x: &[f32]) -> Vec<(f64, f64)> {
    (0..d.c)
        .map(|c| {
            let vals: Vec<f64> =
                (0..d.n).flat_map(|n| (0..d.s).map(move |s| (n, s))).map(|(n, s)| x[idx(d, n, c, s)] as f64).collect();
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
            (mean, var)
        })
        .collect()
}

#[test]
fn batch_statistics_match_two_pass_reference() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for d in dims() {
        // an offset per run checks the two-pass variance does not cancel
        let shift = rng.uniform(-5.0, 5.0);
        let x: Vec<f32> = rng.signed(d.n * d.c * d.s).iter().map(|v| v + shift).collect();
        let xb = upload(ctx, &x);
        for slices in SLICES {
            let (mean, inv_std, var_u) = (poisoned(ctx, d.c), poisoned(ctx, d.c), poisoned(ctx, d.c));
            let out = BatchStats { mean: &mean, inv_std: &inv_std, var_unbiased: &var_u };
            match slices {
                None => bn::stats(ctx, d, EPS as f32, &xb, &out).unwrap(),
                Some(slices) => bn::stats_in_slices(ctx, d, EPS as f32, &xb, &out, slices).unwrap(),
            }
            let mom = moments(d, &x);
            let m = d.m() as f64;
            let what = format!("{d:?} slices {slices:?}");
            assert_close(
                &format!("mean {what}"),
                &rng,
                &ctx.read(&mean).unwrap(),
                &mom.iter().map(|v| v.0).collect::<Vec<_>>(),
                |_| shift.abs() as f64 + 1.0,
            );
            let want_inv: Vec<f64> = mom.iter().map(|v| 1.0 / (v.1 + EPS).sqrt()).collect();
            assert_close_unit(&format!("inv_std {what}"), &rng, &ctx.read(&inv_std).unwrap(), &want_inv);
            let want_vu: Vec<f64> = mom.iter().map(|v| v.1 * m / (m - 1.0)).collect();
            assert_close_unit(&format!("var_unbiased {what}"), &rng, &ctx.read(&var_u).unwrap(), &want_vu);
        }
    }
}

#[test]
fn normalize_with_batch_or_running_statistics_and_optional_affine() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for d in dims() {
        let x = rng.signed(d.n * d.c * d.s);
        let mean = rng.signed(d.c);
        let inv_std = rng.vec(d.c, 0.5, 2.0);
        let var = rng.vec(d.c, 0.2, 3.0);
        let (gamma, beta) = (rng.signed(d.c), rng.signed(d.c));
        let (xb, mb, ib, vb, gb, bb) = (
            upload(ctx, &x),
            upload(ctx, &mean),
            upload(ctx, &inv_std),
            upload(ctx, &var),
            upload(ctx, &gamma),
            upload(ctx, &beta),
        );
        for eval in [false, true] {
            for affine in [false, true] {
                let stats = if eval {
                    BnStats::Running { mean: &mb, var: &vb, eps: EPS as f32 }
                } else {
                    BnStats::Batch { mean: &mb, inv_std: &ib }
                };
                let aff = if affine { Affine { gamma: Some(&gb), beta: Some(&bb) } } else { Affine::default() };
                let y = poisoned(ctx, x.len());
                bn::normalize(ctx, d, &xb, stats, aff, &y).unwrap();
                let want: Vec<f64> = (0..x.len())
                    .map(|i| {
                        let c = (i / d.s) % d.c;
                        let inv = if eval { 1.0 / (var[c] as f64 + EPS).sqrt() } else { inv_std[c] as f64 };
                        let (g, b) = if affine { (gamma[c] as f64, beta[c] as f64) } else { (1.0, 0.0) };
                        (x[i] as f64 - mean[c] as f64) * inv * g + b
                    })
                    .collect();
                assert_close_unit(
                    &format!("normalize eval={eval} affine={affine} {d:?}"),
                    &rng,
                    &ctx.read(&y).unwrap(),
                    &want,
                );
            }
        }
    }
}

/// dx, dγ, dβ from the textbook formula dx = σ⁻¹/m·(m·dx̂ − Σdx̂ − x̂·Σdx̂·x̂) (training) or
/// dx = dy·γ·σ⁻¹ (eval), in f64.
fn backward_ref(
    d: BatchNormGeometry,
    dy: &[f32],
    x: &[f32],
    mean: &[f64],
    inv: &[f64],
    gamma: &[f64],
    training: bool,
) -> [Vec<f64>; 3] {
    let m = d.m() as f64;
    let mut dx = vec![0.0; x.len()];
    let (mut dg, mut db) = (vec![0.0; d.c], vec![0.0; d.c]);
    for c in 0..d.c {
        let items: Vec<usize> =
            (0..d.n).flat_map(|n| (0..d.s).map(move |s| (n, s))).map(|(n, s)| idx(d, n, c, s)).collect();
        let xhat = |i: usize| (x[i] as f64 - mean[c]) * inv[c];
        let sum_dxhat: f64 = items.iter().map(|&i| dy[i] as f64 * gamma[c]).sum();
        let sum_dxhat_xhat: f64 = items.iter().map(|&i| dy[i] as f64 * gamma[c] * xhat(i)).sum();
        db[c] = items.iter().map(|&i| dy[i] as f64).sum();
        dg[c] = items.iter().map(|&i| dy[i] as f64 * xhat(i)).sum();
        for &i in &items {
            let dxhat = dy[i] as f64 * gamma[c];
            dx[i] =
                if training { inv[c] / m * (m * dxhat - sum_dxhat - xhat(i) * sum_dxhat_xhat) } else { dxhat * inv[c] };
        }
    }
    [dx, dg, db]
}

#[test]
fn backward_matches_textbook_formula_in_training_and_eval() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for d in dims() {
        let x = rng.signed(d.n * d.c * d.s);
        let dy = rng.signed(x.len());
        let gamma = rng.signed(d.c);
        let mom = moments(d, &x);
        let running_mean = rng.signed(d.c);
        let running_var = rng.vec(d.c, 0.2, 3.0);
        let (xb, dyb, gb) = (upload(ctx, &x), upload(ctx, &dy), upload(ctx, &gamma));
        for (training, slices) in [true, false].into_iter().flat_map(|t| SLICES.map(|s| (t, s))) {
            for affine in [true, false] {
                let (mean, inv): (Vec<f64>, Vec<f64>) = if training {
                    mom.iter().map(|&(mu, var)| (mu, 1.0 / (var + EPS).sqrt())).unzip()
                } else {
                    (to_f64(&running_mean), running_var.iter().map(|&v| 1.0 / (v as f64 + EPS).sqrt()).collect())
                };
                let mean32: Vec<f32> = mean.iter().map(|&v| v as f32).collect();
                let inv32: Vec<f32> = inv.iter().map(|&v| v as f32).collect();
                let (mb, ib, vb) = (upload(ctx, &mean32), upload(ctx, &inv32), upload(ctx, &running_var));
                let stats = if training {
                    BnStats::Batch { mean: &mb, inv_std: &ib }
                } else {
                    BnStats::Running { mean: &mb, var: &vb, eps: EPS as f32 }
                };
                let (dx, dg, db) = (poisoned(ctx, x.len()), poisoned(ctx, d.c), poisoned(ctx, d.c));
                let args = BackwardArgs {
                    dy: &dyb,
                    x: &xb,
                    stats,
                    gamma: affine.then_some(&gb),
                    dx: &dx,
                    dgamma: &dg,
                    dbeta: &db,
                };
                match slices {
                    None => bn::backward(ctx, d, &args).unwrap(),
                    Some(slices) => bn::backward_in_slices(ctx, d, &args, slices).unwrap(),
                }
                let g64: Vec<f64> = if affine { to_f64(&gamma) } else { vec![1.0; d.c] };
                let [wdx, wdg, wdb] = backward_ref(d, &dy, &x, &mean, &inv, &g64, training);
                let what = format!("training={training} affine={affine} slices {slices:?} {d:?}");
                // Sums over m terms of O(1): scale by √m-sized magnitudes via Σ|dy|.
                let sum_abs: Vec<f64> = (0..d.c)
                    .map(|c| (0..x.len()).filter(|i| (i / d.s) % d.c == c).map(|i| (dy[i] as f64).abs()).sum::<f64>())
                    .collect();
                assert_close(&format!("dx {what}"), &rng, &ctx.read(&dx).unwrap(), &wdx, |_| 1.0);
                assert_close(&format!("dgamma {what}"), &rng, &ctx.read(&dg).unwrap(), &wdg, |c| {
                    sum_abs[c] * inv[c] * 3.0
                });
                assert_close(&format!("dbeta {what}"), &rng, &ctx.read(&db).unwrap(), &wdb, |c| sum_abs[c]);
            }
        }
    }
}

#[test]
fn stats_refuse_a_single_value_per_channel() {
    let Some(ctx) = ctx() else { return };
    let d = BatchNormGeometry { n: 1, c: 3, s: 1 };
    let x = ctx.alloc(3).unwrap();
    let (a, b, c) = (ctx.alloc(3).unwrap(), ctx.alloc(3).unwrap(), ctx.alloc(3).unwrap());
    assert!(bn::stats(ctx, d, 1e-5, &x, &BatchStats { mean: &a, inv_std: &b, var_unbiased: &c }).is_err());
}

#[test]
fn few_channels_over_many_values_take_the_sliced_rung_and_many_channels_the_plain_one() {
    let geometry = |n, c, s| BatchNormGeometry { n, c, s };
    // B3's first layers: 64 channels of 32 images of 64×64, into 16 ranges of 8,192.
    assert_eq!(channel_slices(geometry(32, 64, 64 * 64)), 16);
    assert_eq!(channel_slices(geometry(32, 256, 16 * 16)), 4, "ranges of at least 2,048");
    assert_eq!(channel_slices(geometry(32, 512, 8 * 8)), 1, "a range of 2,048 values per channel is one");
    assert_eq!(channel_slices(geometry(2, 1, 100_000)), 97);
    assert_eq!(channel_slices(geometry(4096, 1000, 1)), 1, "1,000 channels fill the GPU already");
}

#[test]
fn a_sliced_rung_of_zero_slices_is_refused() {
    let Some(ctx) = ctx() else { return };
    let d = BatchNormGeometry { n: 2, c: 3, s: 4 };
    let x = ctx.alloc(24).unwrap();
    let (a, b, c) = (ctx.alloc(3).unwrap(), ctx.alloc(3).unwrap(), ctx.alloc(3).unwrap());
    let out = BatchStats { mean: &a, inv_std: &b, var_unbiased: &c };
    assert!(bn::stats_in_slices(ctx, d, 1e-5, &x, &out, 0).is_err());
}
