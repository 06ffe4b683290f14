//! The kernel timer: each launch's GPU time from timestamp queries, summed per kernel.

use crate::common;

use common::*;
use gpu::kernels::elementwise::fill;
use gpu::kernels::matmul::{matmul, MatView, MatmulArgs};
use gpu::{Context, KernelTime};

/// A context of the test's own with the timer on, or `None` (and why) where it cannot be.
fn timed_ctx() -> Option<Context> {
    let ctx = own_ctx()?;
    if !ctx.enable_kernel_timer() {
        println!("skipped: {} has no timestamp queries", ctx.info());
        return None;
    }
    Some(ctx)
}

/// A·B for two n×n matrices of `values` (2n² of them), read back.
fn square_matmul(ctx: &Context, n: usize, values: &[f32]) -> Vec<f32> {
    let (a, b) = (upload(ctx, &values[..n * n]), upload(ctx, &values[n * n..2 * n * n]));
    let out = ctx.alloc(n * n).unwrap();
    let args = MatmulArgs::new(MatView::row_major(&a, n, n), MatView::row_major(&b, n, n), &out, [n, n, n]);
    matmul(ctx, &args).unwrap();
    ctx.read(&out).unwrap()
}

fn time_of<'a>(times: &'a [KernelTime], kernel_prefix: &str) -> &'a KernelTime {
    let found: Vec<&KernelTime> = times.iter().filter(|t| t.kernel.starts_with(kernel_prefix)).collect();
    assert_eq!(found.len(), 1, "one kernel named {kernel_prefix}*, in {times:?}");
    found[0]
}

#[test]
fn the_timer_counts_every_launch_of_each_kernel() {
    let Some(ctx) = timed_ctx() else { return };
    let buf = ctx.alloc(1000).unwrap();
    for _ in 0..3 {
        fill(&ctx, &buf, 1.5).unwrap();
    }
    let values = Rng::new().signed(2 * 33 * 33);
    square_matmul(&ctx, 33, &values);
    square_matmul(&ctx, 33, &values);
    let times = ctx.kernel_times().unwrap();
    let fills = time_of(&times, "strided.wgsl:fill");
    assert_eq!(fills.launches, 3);
    assert!(fills.gpu_ns > 0, "three launches took no GPU time: {fills:?}");
    let products: u64 = times.iter().filter(|t| t.kernel.starts_with("matmul.wgsl:")).map(|t| t.launches).sum();
    assert_eq!(products, 2, "{times:?}");
    assert_eq!(times.iter().map(|t| t.launches).sum::<u64>(), 5, "a launch counted that was not made: {times:?}");
}

#[test]
fn the_timer_counts_launches_beyond_one_query_set_across_submits() {
    let Some(ctx) = timed_ctx() else { return };
    let buf = ctx.alloc(64).unwrap();
    // More than a query set's 256 launches, and more than one submit's worth (every 32).
    for i in 0..601 {
        fill(&ctx, &buf, i as f32).unwrap();
    }
    let times = ctx.kernel_times().unwrap();
    assert_eq!(time_of(&times, "strided.wgsl:fill").launches, 601);
    assert_eq!(ctx.read(&buf).unwrap(), vec![600.0; 64], "the last launch's value did not land");
}

#[test]
fn a_launch_with_thousands_of_times_the_work_takes_longer_on_the_timer() {
    let Some(ctx) = timed_ctx() else { return };
    let values = Rng::new().signed(2 * 256 * 256);
    // The fastest of five launches of each size, after one untimed: on lavapipe the "GPU" is
    // CPU threads beside the other tests, and one launch of 8³ once read 5.1 ms in CI against
    // 256³'s 4.8 (a first launch, or a thread kept waiting, counts inside the timestamps).
    let timed = |n: usize| {
        square_matmul(&ctx, n, &values);
        (0..5)
            .map(|_| {
                ctx.reset_kernel_times().unwrap();
                square_matmul(&ctx, n, &values);
                ctx.kernel_times().unwrap().iter().map(|t| t.gpu_ns).sum::<u64>()
            })
            .min()
            .unwrap_or(0)
    };
    let small = timed(8);
    let large = timed(256); // 32,768 times the multiply-adds
    assert!(large > small, "256³ took {large} ns, 8³ {small} ns: the timestamps do not follow the work");
}

#[test]
fn timed_launches_compute_the_same_bits_as_untimed_ones() {
    let Some(untimed) = own_ctx() else { return };
    let Some(timed) = timed_ctx() else { return };
    let values = Rng::new().signed(2 * 67 * 67);
    assert_eq!(square_matmul(&timed, 67, &values), square_matmul(&untimed, 67, &values));
}

#[test]
fn a_kernels_time_is_split_by_the_grid_of_each_launch() {
    let Some(ctx) = timed_ctx() else { return };
    // fill launches a workgroup of 256 per 256 values: 1 and 4 workgroups.
    let (small, large) = (ctx.alloc(100).unwrap(), ctx.alloc(1000).unwrap());
    fill(&ctx, &small, 1.0).unwrap();
    fill(&ctx, &large, 2.0).unwrap();
    fill(&ctx, &large, 3.0).unwrap();
    let times = ctx.kernel_times().unwrap();
    let fills = time_of(&times, "strided.wgsl:fill");
    let mut grids: Vec<([u32; 3], u64)> = fills.grids.iter().map(|g| (g.grid, g.launches)).collect();
    grids.sort();
    assert_eq!(grids, vec![([1, 1, 1], 1), ([4, 1, 1], 2)]);
    assert_eq!(fills.gpu_ns, fills.grids.iter().map(|g| g.gpu_ns).sum::<u64>());
}

#[test]
fn reset_forgets_the_times_read_so_far_and_keeps_timing() {
    let Some(ctx) = timed_ctx() else { return };
    let buf = ctx.alloc(10).unwrap();
    fill(&ctx, &buf, 1.0).unwrap();
    ctx.reset_kernel_times().unwrap();
    assert!(ctx.kernel_times().unwrap().is_empty());
    fill(&ctx, &buf, 2.0).unwrap();
    assert_eq!(time_of(&ctx.kernel_times().unwrap(), "strided.wgsl:fill").launches, 1);
    assert!(ctx.kernel_timer_enabled());
}

#[test]
fn a_context_without_the_timer_reports_no_times() {
    let Some(ctx) = own_ctx() else { return };
    let buf = ctx.alloc(10).unwrap();
    fill(&ctx, &buf, 1.0).unwrap();
    assert!(!ctx.kernel_timer_enabled());
    assert!(ctx.kernel_times().unwrap().is_empty());
}
