//! reduce.wgsl against f64 references, both entry points, at awkward sizes.

use crate::common;

use common::*;
use gpu::descriptors::ReduceOp;
use gpu::kernels::reduce::{
    flag_non_finite, reduce, reduce_with, row_slices, FlagCheck, ReduceDims, Strategy, FLAG_INPUTS,
};

const OPS: [ReduceOp; 7] = ReduceOp::ALL;

/// (value, natural scale) of one output row.
fn reduce_ref(op: ReduceOp, row: &[f64]) -> (f64, f64) {
    let abs_sum: f64 = row.iter().map(|v| v.abs()).sum();
    let first_best = |better: fn(f64, f64) -> bool| {
        let mut bi = 0;
        for (i, &v) in row.iter().enumerate() {
            if better(v, row[bi]) {
                bi = i;
            }
        }
        bi
    };
    match op {
        ReduceOp::Sum => (row.iter().sum(), abs_sum),
        ReduceOp::Mean => (row.iter().sum::<f64>() / row.len() as f64, abs_sum / row.len() as f64),
        ReduceOp::Max => (row.iter().cloned().fold(f64::NEG_INFINITY, f64::max), 1.0),
        ReduceOp::Min => (row.iter().cloned().fold(f64::INFINITY, f64::min), 1.0),
        ReduceOp::LogSumExp => {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            (m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln(), 1.0)
        }
        ReduceOp::ArgMax => (first_best(|a, b| a > b) as f64, 1.0),
        ReduceOp::ArgMin => (first_best(|a, b| a < b) as f64, 1.0),
    }
}

fn check(ctx: &gpu::Context, rng: &mut Rng, d: ReduceDims, strategy: Strategy) {
    check_ops(ctx, rng, d, strategy, &OPS);
}

fn check_ops(ctx: &gpu::Context, rng: &mut Rng, d: ReduceDims, strategy: Strategy, ops: &[ReduceOp]) {
    let x = rng.signed(d.outer * d.reduce * d.inner);
    let xb = upload(ctx, &x);
    for &op in ops {
        let out = poisoned(ctx, d.outer * d.inner);
        reduce_with(ctx, op, &xb, &out, d, strategy).unwrap();
        let mut want = Vec::new();
        let mut scale = Vec::new();
        for o in 0..d.outer {
            for i in 0..d.inner {
                let row: Vec<f64> = (0..d.reduce).map(|r| x[(o * d.reduce + r) * d.inner + i] as f64).collect();
                let (v, s) = reduce_ref(op, &row);
                want.push(v);
                scale.push(s);
            }
        }
        let got = ctx.read(&out).unwrap();
        assert_close(&format!("{op:?} {d:?} {strategy:?}"), rng, &got, &want, |i| scale[i]);
    }
}

#[test]
fn per_thread_reductions_match_reference() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for (outer, reduce, inner) in [(1, 1, 1), (3, 7, 5), (2, 33, 1), (1, 65, 129), (7, 129, 3), (1, 1000, 1)] {
        check(ctx, &mut rng, ReduceDims { outer, reduce, inner }, Strategy::PerThread);
    }
}

#[test]
fn per_workgroup_tree_reductions_match_reference() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for (outer, reduce, inner) in [(1, 1, 1), (3, 7, 5), (2, 257, 1), (1, 1000, 3), (5, 4099, 2), (1, 100_003, 1)] {
        check(ctx, &mut rng, ReduceDims { outer, reduce, inner }, Strategy::PerWorkgroup);
    }
}

#[test]
fn auto_strategy_matches_reference_on_long_and_short_rows() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    // Then two long rows with few outputs and a short row on few workgroups (a bias gradient's
    // sum over a batch), which Auto splits on a hardware adapter.
    for (outer, reduce, inner) in [(33, 5, 65), (4, 300, 7), (1, 65_536, 1), (3, 12_288, 5), (1, 128, 515)] {
        check(ctx, &mut rng, ReduceDims { outer, reduce, inner }, Strategy::Auto);
    }
}

/// The ops a row split into slices computes: all but the two whose index a slice loses.
const SPLITTING_OPS: [ReduceOp; 5] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min, ReduceOp::LogSumExp];

#[test]
fn rows_split_into_equal_slices_match_reference_for_every_op_that_splits() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    // The last two cut short rows: each slice loops in one invocation per output.
    for (outer, reduce, inner, slices) in [
        (1, 4 * 1031, 1, 4),
        (3, 7 * 301, 5, 7),
        (2, 2, 3, 2),
        (1, 256 * 9, 2, 256),
        (1, 8 * 17, 300, 8),
        (3, 4 * 5, 7, 4),
    ] {
        let d = ReduceDims { outer, reduce, inner };
        check_ops(ctx, &mut rng, d, Strategy::Split { slices }, &SPLITTING_OPS);
    }
}

#[test]
fn a_split_of_argmax_or_argmin_or_into_unequal_slices_is_refused() {
    let Some(ctx) = ctx() else { return };
    let x = ctx.upload(&[1.0; 12]).unwrap();
    let out = ctx.alloc(1).unwrap();
    let d = ReduceDims { outer: 1, reduce: 12, inner: 1 };
    for (op, slices) in [(ReduceOp::ArgMax, 2), (ReduceOp::ArgMin, 3), (ReduceOp::Sum, 5), (ReduceOp::Sum, 0)] {
        let refused = reduce_with(ctx, op, &x, &out, d, Strategy::Split { slices });
        assert!(refused.is_err(), "{op:?} into {slices} slices was not refused");
    }
}

#[test]
fn auto_splits_only_rows_on_few_workgroups_whose_length_a_power_of_two_divides() {
    let rows = |outer, reduce, inner| ReduceDims { outer, reduce, inner };
    // Short rows, an invocation per output: B4's bias gradient, 512 columns summed over a batch
    // of 128 (2 workgroups), into 8 slices of 16 rows.
    assert_eq!(row_slices(ReduceOp::Sum, rows(1, 128, 512)), 8);
    assert_eq!(row_slices(ReduceOp::Sum, rows(1, 100, 512)), 4, "the most slices that divide 100");
    assert_eq!(row_slices(ReduceOp::Sum, rows(1, 24, 512)), 1, "slices shorter than 16 rows");
    assert_eq!(row_slices(ReduceOp::Sum, rows(1, 128, 16_384)), 1, "64 workgroups fill the GPU already");
    assert_eq!(row_slices(ReduceOp::ArgMin, rows(1, 128, 512)), 1);
    // Long rows, a workgroup per output.
    // B1's summed squared errors: 64 images of 3×64×64, into 256 slices of 3,072.
    assert_eq!(row_slices(ReduceOp::Sum, rows(1, 786_432, 1)), 256);
    assert_eq!(row_slices(ReduceOp::Mean, rows(2, 16_384, 3)), 8, "slices of at least 2,048");
    assert_eq!(row_slices(ReduceOp::Sum, rows(1, 4_096, 1)), 2);
    assert_eq!(row_slices(ReduceOp::Sum, rows(1, 4_095, 1)), 1, "too short");
    assert_eq!(row_slices(ReduceOp::Sum, rows(1, 1_000_003, 1)), 1, "a prime length");
    assert_eq!(row_slices(ReduceOp::Sum, rows(8, 786_432, 8)), 1, "64 outputs fill the GPU already");
    assert_eq!(row_slices(ReduceOp::ArgMax, rows(1, 786_432, 1)), 1);
}

#[test]
fn a_long_row_is_split_into_two_launches_on_a_hardware_adapter_and_kept_whole_on_a_software_one() {
    let Some(ctx) = own_ctx() else { return };
    let x = ctx.upload(&vec![0.25; 65_536]).unwrap();
    let out = ctx.alloc(1).unwrap();
    let before = ctx.counters();
    reduce(&ctx, ReduceOp::Sum, &x, &out, ReduceDims { outer: 1, reduce: 65_536, inner: 1 }).unwrap();
    let launches = if ctx.is_software() { 1 } else { 2 };
    assert_eq!(ctx.counters().since(&before).dispatches, launches, "on {}", ctx.info());
    assert_eq!(ctx.read(&out).unwrap(), vec![16_384.0]);
    let before = ctx.counters();
    let split = ReduceDims { outer: 1, reduce: 65_536, inner: 1 };
    reduce_with(&ctx, ReduceOp::Sum, &x, &out, split, Strategy::Split { slices: 16 }).unwrap();
    assert_eq!(ctx.counters().since(&before).dispatches, 2, "a forced split is two launches anywhere");
    assert_eq!(ctx.read(&out).unwrap(), vec![16_384.0]);
}

#[test]
fn a_short_row_on_few_workgroups_is_split_into_two_launches_on_a_hardware_adapter_and_kept_whole_on_a_software_one() {
    let Some(ctx) = own_ctx() else { return };
    let x = ctx.upload(&vec![0.25; 128 * 512]).unwrap();
    let out = ctx.alloc(512).unwrap();
    let before = ctx.counters();
    reduce(&ctx, ReduceOp::Sum, &x, &out, ReduceDims { outer: 1, reduce: 128, inner: 512 }).unwrap();
    let launches = if ctx.is_software() { 1 } else { 2 };
    assert_eq!(ctx.counters().since(&before).dispatches, launches, "on {}", ctx.info());
    assert_eq!(ctx.read(&out).unwrap(), vec![32.0; 512]);
}

#[test]
fn argmax_and_argmin_keep_the_first_of_tied_values() {
    let Some(ctx) = ctx() else { return };
    let rng = Rng::new();
    let mut x = vec![0.5f32; 600];
    x[10] = 3.0;
    x[500] = 3.0;
    x[20] = -1.0;
    x[400] = -1.0;
    let xb = upload(ctx, &x);
    let d = ReduceDims { outer: 1, reduce: 600, inner: 1 };
    for strategy in [Strategy::PerThread, Strategy::PerWorkgroup] {
        for (op, want) in [(ReduceOp::ArgMax, 10.0), (ReduceOp::ArgMin, 20.0)] {
            let out = poisoned(ctx, 1);
            reduce_with(ctx, op, &xb, &out, d, strategy).unwrap();
            assert_close_unit(&format!("{op:?} ties {strategy:?}"), &rng, &ctx.read(&out).unwrap(), &[want]);
        }
    }
}

#[test]
fn logsumexp_of_large_values_does_not_overflow() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    let x: Vec<f32> = rng.vec(300, 1000.0, 1001.0);
    let out = poisoned(ctx, 1);
    reduce(ctx, ReduceOp::LogSumExp, &upload(ctx, &x), &out, ReduceDims { outer: 1, reduce: 300, inner: 1 }).unwrap();
    let (want, _) = reduce_ref(ReduceOp::LogSumExp, &to_f64(&x));
    assert_close_unit("logsumexp 1000", &rng, &ctx.read(&out).unwrap(), &[want]);
}

#[test]
fn flag_non_finite_refuses_more_buffers_than_one_launch_binds() {
    let Some(ctx) = ctx() else { return };
    let (x, flags) = (upload(ctx, &[1.0]), ctx.zeros(1).unwrap());
    let checks = vec![FlagCheck { x: &x, len: 1, slot: 0 }; FLAG_INPUTS + 1];
    let err = flag_non_finite(ctx, &checks, &flags).unwrap_err();
    assert!(err.to_string().contains("at most 4"), "{err}");
}

#[test]
fn flag_non_finite_sets_exactly_the_slots_of_buffers_holding_nan_or_infinity() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    // (buffer, should be flagged): NaN and ±∞ at the ends and in the middle of lengths around
    // the workgroup and per-invocation boundaries, and finite extremes that must not be flagged.
    let mut cases: Vec<(Vec<f32>, bool)> = Vec::new();
    for len in [1usize, 255, 4097, 100_003] {
        cases.push((rng.signed(len), false));
        for at in [0, len / 2, len - 1] {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut v = rng.signed(len);
                v[at] = bad;
                cases.push((v, true));
            }
            for extreme in [f32::MAX, -f32::MAX, f32::MIN_POSITIVE, 1e-45, -0.0] {
                let mut v = rng.signed(len);
                v[at] = extreme;
                cases.push((v, false));
            }
        }
    }
    // Flags start at 0 or 2: a flagged slot gains the bits of the f32 1.0 (so a fresh flag reads
    // as the float 1), an unflagged one keeps its value.
    let start: Vec<u32> = (0..cases.len()).map(|i| 2 * (i % 2) as u32).collect();
    let flags = ctx.upload_u32(&start).unwrap();
    let buffers: Vec<gpu::GpuBuffer> = cases.iter().map(|(v, _)| upload(ctx, v)).collect();
    // Four buffers a launch, of different lengths (the cases run through the lengths in turn),
    // and a last launch of fewer.
    let checks: Vec<FlagCheck> =
        buffers.iter().zip(&cases).enumerate().map(|(slot, (x, (v, _)))| FlagCheck { x, len: v.len(), slot }).collect();
    for group in checks.chunks(FLAG_INPUTS) {
        flag_non_finite(ctx, group, &flags).unwrap();
    }
    let got = ctx.read_u32(&flags).unwrap();
    for (slot, ((v, bad), (&g, &s))) in cases.iter().zip(got.iter().zip(&start)).enumerate() {
        let want = if *bad { s | 1.0f32.to_bits() } else { s };
        assert_eq!(g, want, "slot {slot}: {} elements, flagged expected {bad}, seed {}", v.len(), rng.seed);
    }
}
