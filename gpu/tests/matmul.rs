//! matmul.wgsl against an f64 reference: sizes that are not tile multiples, batches,
//! transposed and batch-broadcast operands, offsets and accumulation, each with both tiles
//! (the 64×64 `matmul` and the 128×128 `matmul_wide` entry points); every rung of the ladder
//! (`MatmulRung`) alone; and the epilogue (bias along the columns, then ReLU) on every rung and
//! on a K cut into slices.

use crate::common;

use common::*;
use gpu::kernels::matmul::{k_slices, matmul, matmul_on_rung, Epilogue, MatView, MatmulArgs, MatmulRung};
use gpu::kernels::GemmTile;

/// Element [b, i, j] of a strided view, as in MatView.
fn at(data: &[f32], v: (usize, usize, usize, usize), b: usize, i: usize, j: usize) -> f64 {
    data[v.0 + b * v.1 + i * v.2 + j * v.3] as f64
}

struct Case {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    a_t: bool,
    b_t: bool,
    b_broadcast: bool,
    accumulate: bool,
}

/// The case on the shared context (its tile chosen by size) and on the wide tile.
fn run(ctx: &gpu::Context, rng: &mut Rng, c: &Case) {
    run_on(ctx, rng, c);
    run_on(wide_tile_context(), rng, c);
}

fn run_on(ctx: &gpu::Context, rng: &mut Rng, c: &Case) {
    run_with(ctx, rng, c, None);
}

/// The case through `matmul`, or through one launch of `rung` alone.
fn run_with(ctx: &gpu::Context, rng: &mut Rng, c: &Case, rung: Option<MatmulRung>) {
    run_finished(ctx, rng, c, rung, Finish { bias: false, relu: false });
}

/// The epilogue a case asks for: a bias (at a random offset in its buffer) and ReLU.
#[derive(Clone, Copy, Debug)]
struct Finish {
    bias: bool,
    relu: bool,
}

/// [`run_with`] with the epilogue `finish`.
fn run_finished(ctx: &gpu::Context, rng: &mut Rng, c: &Case, rung: Option<MatmulRung>, finish: Finish) {
    let Case { batch, m, n, k, a_t, b_t, b_broadcast, accumulate } = *c;
    let a_off = rng.below(5);
    let b_off = rng.below(5);
    let a = rng.signed(a_off + batch * m * k);
    let b_batches = if b_broadcast { 1 } else { batch };
    let b = rng.signed(b_off + b_batches * k * n);
    let (ab, bb) = (upload(ctx, &a), upload(ctx, &b));
    // A stored as [batch, m, k], or as [batch, k, m] and viewed transposed.
    let mut av = if a_t { MatView::row_major(&ab, k, m).t() } else { MatView::row_major(&ab, m, k) };
    av.offset = a_off;
    let mut bv = if b_t { MatView::row_major(&bb, n, k).t() } else { MatView::row_major(&bb, k, n) };
    bv.offset = b_off;
    if b_broadcast {
        bv = bv.broadcast_batch();
    }
    let c0 = rng.signed(batch * m * n);
    let cb = if accumulate { upload(ctx, &c0) } else { poisoned(ctx, batch * m * n) };
    let bias_off = rng.below(5);
    let bias = rng.signed(bias_off + n);
    let bias_buf = upload(ctx, &bias);
    let epilogue = Epilogue { bias: finish.bias.then_some((&bias_buf, bias_off)), relu: finish.relu };
    let args = MatmulArgs { a: av, b: bv, c: &cb, batch, m, n, k, accumulate, epilogue };
    match rung {
        None => matmul(ctx, &args).unwrap(),
        Some(rung) => matmul_on_rung(ctx, &args, rung).unwrap(),
    }
    let got = ctx.read(&cb).unwrap();
    let va = (av.offset, av.batch_stride, av.row_stride, av.col_stride);
    let vb = (bv.offset, bv.batch_stride, bv.row_stride, bv.col_stride);
    let mut want = Vec::with_capacity(batch * m * n);
    let mut scale = Vec::with_capacity(batch * m * n);
    for bi in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut s_abs) = (0.0, 0.0);
                for l in 0..k {
                    let t = at(&a, va, bi, i, l) * at(&b, vb, bi, l, j);
                    s += t;
                    s_abs += t.abs();
                }
                let old = if accumulate { c0[(bi * m + i) * n + j] as f64 } else { 0.0 };
                let b = if finish.bias { bias[bias_off + j] as f64 } else { 0.0 };
                let v = s + old + b;
                want.push(if finish.relu { v.max(0.0) } else { v });
                scale.push(s_abs + old.abs() + b.abs());
            }
        }
    }
    let how = match rung {
        Some(rung) => format!("rung {}", rung.name()),
        None => format!("tile={:?}", GemmTile::for_gemm(ctx, m, n, batch)),
    };
    let what = format!(
        "matmul {how} batch={batch} {m}x{k}·{k}x{n} a_t={a_t} b_t={b_t} bcast={b_broadcast} acc={accumulate} {finish:?}"
    );
    assert_close(&what, rng, &got, &want, |i| scale[i]);
}

#[test]
fn matmul_matches_reference_at_sizes_off_the_tile_grid() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for (m, n, k) in [
        (1, 1, 1),
        (7, 33, 65),
        (65, 7, 33),
        (33, 65, 7),
        (129, 129, 1),
        (1, 129, 129),
        (64, 64, 16),
        (130, 67, 200),
        (257, 131, 9),
    ] {
        run(ctx, &mut rng, &Case { batch: 1, m, n, k, a_t: false, b_t: false, b_broadcast: false, accumulate: false });
    }
}

#[test]
fn every_rung_of_the_ladder_matches_the_reference_on_odd_sizes_strided_views_and_a_poisoned_c() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for rung in MatmulRung::ALL {
        for (m, n, k) in [(1, 1, 1), (7, 33, 65), (65, 7, 33), (130, 67, 200), (17, 129, 16)] {
            for (a_t, b_t, b_broadcast, accumulate) in
                [(false, false, false, false), (true, false, true, false), (false, true, false, true)]
            {
                let case = Case { batch: 2, m, n, k, a_t, b_t, b_broadcast, accumulate };
                run_with(ctx, &mut rng, &case, Some(rung));
            }
        }
    }
}

#[test]
fn every_rung_adds_the_bias_along_the_columns_then_applies_relu_on_odd_sizes_and_a_poisoned_c() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for rung in MatmulRung::ALL {
        for (m, n, k) in [(1, 1, 1), (7, 33, 65), (130, 67, 200)] {
            for (bias, relu, accumulate) in [(true, false, false), (false, true, false), (true, true, true)] {
                let case = Case { batch: 2, m, n, k, a_t: false, b_t: true, b_broadcast: true, accumulate };
                run_finished(ctx, &mut rng, &case, Some(rung), Finish { bias, relu });
            }
        }
    }
}

#[test]
fn a_k_cut_into_slices_applies_the_epilogue_once_in_the_launch_that_writes_c_last() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    // 4 slices of 257 and a remainder of 3 (the remainder's launch finishes C), then K = 1,024:
    // 4 slices and no remainder (the sum finishes C). A bias added twice or a ReLU before the
    // last partial is added shows as a difference.
    for k in [1031, 1024] {
        assert_eq!(k_slices(ctx, 1, 33, 17, k), 4);
        for accumulate in [false, true] {
            let case = Case { batch: 1, m: 33, n: 17, k, a_t: false, b_t: true, b_broadcast: false, accumulate };
            run_finished(ctx, &mut rng, &case, None, Finish { bias: true, relu: true });
        }
    }
}

#[test]
fn a_tuning_context_times_the_tile_and_the_rung_once_per_shape_class_and_keeps_its_choices() {
    let Some(_) = ctx() else { return };
    let (_dir, path, tuned) = tuning_context();
    assert!(!tuned.enable_tuning(None), "the first call decides");
    let mut rng = Rng::new();
    // Both products are of one class; each runs on whichever rung is kept, against the reference.
    for (m, n, k) in [(130, 67, 200), (129, 66, 7)] {
        let case = Case { batch: 1, m, n, k, a_t: false, b_t: true, b_broadcast: false, accumulate: false };
        run_on(&tuned, &mut rng, &case);
    }
    let choices = tuned.tuner().expect("tuning is on").choices();
    let rungs: Vec<_> = choices.iter().filter(|(class, _)| class.starts_with("matmul-rung/")).collect();
    assert_eq!((choices.len(), rungs.len()), (2, 1), "a tile and a rung for the one class: {choices:?}");
    let kept = std::fs::read_to_string(&path).unwrap();
    for (class, choice) in &choices {
        assert!(kept.contains(&format!("\t{class}\t{choice}\n")), "{kept}");
    }
}

#[test]
fn a_pinned_tile_pins_the_rung_and_times_nothing() {
    let Some(_) = ctx() else { return };
    let (_dir, _path, tuned) = tuning_context();
    assert!(tuned.pin_gemm_tile(GemmTile::Wide128));
    let rung = gpu::kernels::matmul::chosen_rung(&tuned, GemmTile::Wide128, 130, 67, 1);
    assert_eq!(rung, MatmulRung::RegisterTile128);
    assert!(tuned.tuner().unwrap().choices().is_empty(), "nothing timed under a pin");
}

#[test]
fn a_tuning_context_times_the_split_k_once_per_class_and_either_choice_matches_the_reference() {
    let Some(ctx) = ctx() else { return };
    // One square tile over a K of 4,100: the rule cuts it (16 slices, 4 left over).
    let (m, n, k) = (33, 40, 4100);
    assert!(k_slices(ctx, 1, m, n, k) > 1, "the case must be one the rule splits");
    let (_dir, path, tuned) = tuning_context();
    let mut rng = Rng::new();
    for accumulate in [false, true] {
        let case = Case { batch: 1, m, n, k, a_t: false, b_t: true, b_broadcast: false, accumulate };
        run_on(&tuned, &mut rng, &case);
    }
    let choices = tuned.tuner().expect("tuning is on").choices();
    let split: Vec<_> = choices.iter().filter(|(class, _)| class.starts_with("k-split/")).collect();
    assert_eq!(split.len(), 1, "one split-K class, timed once: {choices:?}");
    let kept = std::fs::read_to_string(&path).unwrap();
    assert!(kept.contains(&format!("\t{}\t{}\n", split[0].0, split[0].1)), "{kept}");
    // Both candidates are right, whichever this device keeps.
    for slices in [1, 16] {
        let a = rng.signed(m * k);
        let b = rng.signed(k * n);
        let (ab, bb, cb) = (upload(ctx, &a), upload(ctx, &b), poisoned(ctx, m * n));
        let args = MatmulArgs::new(MatView::row_major(&ab, m, k), MatView::row_major(&bb, k, n), &cb, [m, n, k]);
        gpu::kernels::matmul::matmul_k_sliced(ctx, &args, slices).unwrap();
        let got = ctx.read(&cb).unwrap();
        let (mut want, mut scale) = (vec![0.0; m * n], vec![0.0; m * n]);
        for (i, j, p) in (0..m).flat_map(|i| (0..n).flat_map(move |j| (0..k).map(move |p| (i, j, p)))) {
            let t = a[i * k + p] as f64 * b[p * n + j] as f64;
            want[i * n + j] += t;
            scale[i * n + j] += t.abs();
        }
        assert_close(&format!("matmul {m}x{k}·{k}x{n} in {slices} slices"), &rng, &got, &want, |i| scale[i]);
    }
}

#[test]
fn batched_matmul_with_transposed_and_broadcast_operands() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
        for b_broadcast in [false, true] {
            run(ctx, &mut rng, &Case { batch: 3, m: 33, n: 65, k: 17, a_t, b_t, b_broadcast, accumulate: false });
        }
    }
}

#[test]
fn matmul_accumulate_adds_into_c() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    run(
        ctx,
        &mut rng,
        &Case { batch: 2, m: 65, n: 33, k: 129, a_t: true, b_t: false, b_broadcast: false, accumulate: true },
    );
    run(
        ctx,
        &mut rng,
        &Case { batch: 1, m: 7, n: 7, k: 7, a_t: false, b_t: true, b_broadcast: false, accumulate: true },
    );
}

#[test]
fn large_matmul_matches_reference() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    run(
        ctx,
        &mut rng,
        &Case { batch: 1, m: 257, n: 190, k: 1031, a_t: false, b_t: false, b_broadcast: false, accumulate: false },
    );
}

#[test]
fn a_long_k_over_a_small_output_is_split_into_slices_and_summed() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    // 33×17 is one tile: K = 1,031 runs as 4 slices of 257 and a remainder of 3.
    assert_eq!(k_slices(ctx, 1, 33, 17, 1031), 4);
    for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
        for accumulate in [false, true] {
            let case = Case { batch: 1, m: 33, n: 17, k: 1031, a_t, b_t, b_broadcast: false, accumulate };
            run(ctx, &mut rng, &case);
        }
    }
}

#[test]
fn only_single_products_with_few_tiles_split_their_k() {
    let Some(ctx) = ctx() else { return };
    assert_eq!(k_slices(ctx, 1, 64, 32, 4096), 16, "one tile, K of 4,096: 16 slices of 256");
    assert_eq!(k_slices(ctx, 1, 64, 32, 300), 1, "a K shorter than two slices");
    assert_eq!(k_slices(ctx, 2, 64, 32, 4096), 1, "a batch");
    assert_eq!(k_slices(ctx, 1, 1024, 1024, 4096), 1, "256 tiles");
    assert_eq!(k_slices(ctx, 1, 0, 32, 4096), 1, "an empty output");
}

#[test]
fn too_short_operand_is_refused() {
    let Some(ctx) = ctx() else { return };
    let a = ctx.alloc(10).unwrap();
    let b = ctx.alloc(12).unwrap();
    let c = ctx.alloc(8).unwrap();
    let args = MatmulArgs::new(MatView::row_major(&a, 2, 6), MatView::row_major(&b, 6, 2), &c, [2, 2, 6]);
    let err = matmul(ctx, &args).unwrap_err();
    assert!(err.to_string().contains("A needs 12 elements"), "{err}");
}

#[test]
fn matmul_picks_the_wide_tile_only_for_products_that_fill_the_gpu() {
    let Some(ctx) = ctx() else { return };
    assert_eq!(GemmTile::for_gemm(ctx, 4096, 4096, 1), GemmTile::Wide128);
    assert_eq!(GemmTile::for_gemm(ctx, 1024, 1024, 1), GemmTile::Wide128);
    assert_eq!(GemmTile::for_gemm(ctx, 128, 512, 1), GemmTile::Square64);
    assert_eq!(GemmTile::for_gemm(ctx, 64, 16384, 8), GemmTile::Square64, "64 rows fill one square tile");
    assert_eq!(GemmTile::for_gemm(ctx, 130, 130, 64), GemmTile::Wide128);
    assert_eq!(GemmTile::for_gemm(wide_tile_context(), 1, 1, 1), GemmTile::Wide128, "forced");
}
