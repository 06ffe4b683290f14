//! Batch-norm launchers (`shaders/batch_norm.wgsl`) over x viewed as [N, C, S]: batch
//! statistics, normalisation (training or eval statistics) and the backward.
//!
//! The statistics and the backward sum over each channel's m = N·S values. Their plain rung
//! gives each channel one workgroup; with few channels over many values (B3's 64-channel layers:
//! 64 workgroups over 131,072 values each, half an H100's multiprocessors idle and the rest at
//! one workgroup each) the sliced rung cuts each channel's values into ranges, a workgroup each,
//! and adds the ranges' partial sums in order ([`stats_in_slices`], [`backward_in_slices`];
//! [`channel_slices`] picks the count).

use crate::buffer_pool::GpuBuffer;
use crate::context::Context;
use crate::descriptors::BatchNormGeometry;
use crate::error::{invalid, Result};
use crate::kernels::{need, slices_pay, WG};
use crate::pipeline_cache::{KernelDef, Shader};

/// The WGSL source of `shaders/batch_norm.wgsl`.
pub static SHADER: Shader =
    Shader { name: "batch_norm.wgsl", source: include_str!("../../../shaders/batch_norm.wgsl") };
/// Per-channel batch mean, 1/√(var + eps) and unbiased variance.
pub static STATS: KernelDef = KernelDef::new(&SHADER, "stats", 1, 3);
/// y = (x − mean)·inv_std·γ + β with batch or running statistics.
pub static NORMALIZE: KernelDef = KernelDef::new(&SHADER, "normalize", 5, 1);
/// dx, dγ, dβ of the normalisation.
pub static BACKWARD: KernelDef = KernelDef::new(&SHADER, "backward", 5, 3);
/// The running mean and variance after one training batch.
pub static UPDATE_RUNNING: KernelDef = KernelDef::new(&SHADER, "update_running", 4, 2);
/// Sliced statistics, 1: each (channel, range)'s Σ x.
pub static STATS_SUM_SLICES: KernelDef = KernelDef::new(&SHADER, "stats_sum_slices", 1, 1);
/// Sliced statistics, 2: each (channel, range)'s Σ (x − mean)².
pub static STATS_SQUARE_SLICES: KernelDef = KernelDef::new(&SHADER, "stats_square_slices", 2, 1);
/// Sliced statistics, 3: the ranges added per channel.
pub static STATS_FINISH_SLICES: KernelDef = KernelDef::new(&SHADER, "stats_finish_slices", 2, 3);
/// Sliced backward, 1: each (channel, range)'s Σ dy and Σ dy·(x − μ).
pub static BACKWARD_SUM_SLICES: KernelDef = KernelDef::new(&SHADER, "backward_sum_slices", 3, 1);
/// Sliced backward, 2: dγ and dβ from the ranges, added per channel.
pub static BACKWARD_FINISH_SLICES: KernelDef = KernelDef::new(&SHADER, "backward_finish_slices", 2, 2);
/// Sliced backward, 3: dx, one invocation per element.
pub static BACKWARD_DX: KernelDef = KernelDef::new(&SHADER, "backward_dx", 7, 1);

/// The shortest range of a channel's values the sliced rung gives a workgroup (8 values per
/// invocation).
pub const MIN_SLICE: usize = 8 * WG as usize;
/// The most workgroups the sliced rung launches: enough for every multiprocessor of a large
/// GPU several times over.
pub const MAX_SLICED_WORKGROUPS: usize = 1024;

/// Ranges per channel for [`stats`] and [`backward`] (where [`slices_pay`]): as many as keep each range at least
/// [`MIN_SLICE`] long and all of them within [`MAX_SLICED_WORKGROUPS`] workgroups; 1 (the
/// plain rung, a workgroup per channel) where that is fewer than 2.
pub fn channel_slices(d: BatchNormGeometry) -> usize {
    let slices = (d.m() / MIN_SLICE).min(MAX_SLICED_WORKGROUPS / d.c.max(1));
    if slices < 2 {
        1
    } else {
        slices
    }
}

/// Mirrors `struct Params` in batch_norm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Batch size N.
    pub n: u32,
    /// Channels C.
    pub c: u32,
    /// Elements per (sample, channel) plane S.
    pub s: u32,
    /// Added to the running variance (eval statistics only).
    pub eps: f32,
    /// 1 when a γ buffer is bound.
    pub has_gamma: u32,
    /// 1 when a β buffer is bound.
    pub has_beta: u32,
    /// 1: the second statistic is a variance (running); 0: it is 1/√(var + eps) (batch).
    pub stat_is_var: u32,
    /// 1: training-mode backward (statistics depend on x).
    pub training: u32,
    /// [`update_running`]: the batch statistics' weight.
    pub momentum: f32,
    /// [`update_running`]: the running statistics' weight, 1 − momentum (formed in f64).
    pub keep: f32,
    /// The sliced rung: ranges per channel.
    pub slices: u32,
}

/// The outputs of [`stats`], each \[C\].
#[derive(Clone, Copy, Debug)]
pub struct BatchStats<'a> {
    /// Per-channel batch mean.
    pub mean: &'a GpuBuffer,
    /// 1/√(var + eps) with the biased variance.
    pub inv_std: &'a GpuBuffer,
    /// var·m/(m − 1), for running_var.
    pub var_unbiased: &'a GpuBuffer,
}

/// Which statistics normalise: the batch's (training) or the running ones (eval).
#[derive(Clone, Copy, Debug)]
pub enum BnStats<'a> {
    /// Training: the batch statistics from [`stats`].
    Batch {
        /// Per-channel batch mean, `[C]`.
        mean: &'a GpuBuffer,
        /// Per-channel 1/√(var + eps), `[C]`.
        inv_std: &'a GpuBuffer,
    },
    /// Evaluation: the running statistics.
    Running {
        /// Running mean, `[C]`.
        mean: &'a GpuBuffer,
        /// Running (unbiased) variance, `[C]`.
        var: &'a GpuBuffer,
        /// Added to the variance before the square root.
        eps: f32,
    },
}

impl<'a> BnStats<'a> {
    /// (mean, second statistic, stat_is_var, eps)
    fn parts(&self) -> (&'a GpuBuffer, &'a GpuBuffer, u32, f32) {
        match *self {
            BnStats::Batch { mean, inv_std } => (mean, inv_std, 0, 0.0),
            BnStats::Running { mean, var, eps } => (mean, var, 1, eps),
        }
    }
}

/// Optional per-channel scale γ and shift β (\[C\] each; missing γ is 1, missing β is 0).
#[derive(Clone, Copy, Debug, Default)]
pub struct Affine<'a> {
    /// Per-channel scale γ, `[C]`; `None` means 1.
    pub gamma: Option<&'a GpuBuffer>,
    /// Per-channel shift β, `[C]`; `None` means 0.
    pub beta: Option<&'a GpuBuffer>,
}

fn check(
    kernel: &'static str,
    d: BatchNormGeometry,
    x: &GpuBuffer,
    per_channel: &[(&str, Option<&GpuBuffer>)],
) -> Result<()> {
    need(kernel, "x", x, d.len())?;
    if d.len() > u32::MAX as usize {
        return Err(invalid(kernel, format!("{d:?} exceeds u32 indexing")));
    }
    for (name, b) in per_channel {
        if let Some(b) = b {
            need(kernel, name, b, d.c)?;
        }
    }
    Ok(())
}

/// The sliced rung takes at least one range per channel, and a count the shader's u32 holds.
fn check_slices(kernel: &'static str, slices: usize) -> Result<()> {
    if slices == 0 || slices > u32::MAX as usize {
        return Err(invalid(kernel, format!("{slices} slices per channel")));
    }
    Ok(())
}

/// Per-channel batch statistics. Needs m = N·S ≥ 2 (the unbiased variance divides by m − 1).
// x: [N, C, S] → mean, inv_std, var_unbiased: [C]
pub fn stats(ctx: &Context, d: BatchNormGeometry, eps: f32, x: &GpuBuffer, out: &BatchStats) -> Result<()> {
    let slices = if slices_pay(ctx) { channel_slices(d) } else { 1 };
    stats_in_slices(ctx, d, eps, x, out, slices)
}

/// [`stats`] with each channel's values cut into `slices` ranges (1: a workgroup per channel).
// x: [N, C, S] → mean, inv_std, var_unbiased: [C]
pub fn stats_in_slices(
    ctx: &Context,
    d: BatchNormGeometry,
    eps: f32,
    x: &GpuBuffer,
    out: &BatchStats,
    slices: usize,
) -> Result<()> {
    const K: &str = "batch_norm_stats";
    check_slices(K, slices)?;
    if d.m() < 2 {
        return Err(invalid(K, format!("needs at least 2 values per channel, got N·S = {} ({d:?})", d.m())));
    }
    check(
        K,
        d,
        x,
        &[("mean", Some(out.mean)), ("inv_std", Some(out.inv_std)), ("var_unbiased", Some(out.var_unbiased))],
    )?;
    let p = Params { n: d.n as u32, c: d.c as u32, s: d.s as u32, eps, slices: slices as u32, ..Default::default() };
    if slices == 1 {
        let grid = ctx.grid_1d(K, d.c as u64)?;
        return ctx.dispatch(&STATS, &p, &[x], &[out.mean, out.inv_std, out.var_unbiased], grid);
    }
    let (sums, squares) = (ctx.alloc(slices * d.c)?, ctx.alloc(slices * d.c)?);
    let ranges = ctx.grid_1d(K, (slices * d.c) as u64)?;
    ctx.dispatch(&STATS_SUM_SLICES, &p, &[x], &[&sums], ranges)?;
    ctx.dispatch(&STATS_SQUARE_SLICES, &p, &[x, &sums], &[&squares], ranges)?;
    let channels = ctx.grid_1d(K, (d.c as u64).div_ceil(WG))?;
    ctx.dispatch(&STATS_FINISH_SLICES, &p, &[&sums, &squares], &[out.mean, out.inv_std, out.var_unbiased], channels)
}

/// The running statistics after one training batch, as PyTorch updates them:
/// new = running·(1 − momentum) + batch·momentum, for `running[0]` (the mean, with
/// `batch[0]`, the batch mean) and `running[1]` (the variance, with `batch[1]`, the unbiased
/// batch variance), into `new`.
// running, batch: [C] each → new: [C] each
pub fn update_running(
    ctx: &Context,
    c: usize,
    momentum: f64,
    running: [&GpuBuffer; 2],
    batch: [&GpuBuffer; 2],
    new: [&GpuBuffer; 2],
) -> Result<()> {
    const K: &str = "batch_norm_update_running";
    for (name, b) in ["running mean", "running var", "mean", "var_unbiased", "new mean", "new var"]
        .into_iter()
        .zip(running.iter().chain(&batch).chain(&new))
    {
        need(K, name, b, c)?;
    }
    let p = Params { c: c as u32, momentum: momentum as f32, keep: (1.0 - momentum) as f32, ..Default::default() };
    let grid = ctx.grid_1d(K, (c as u64).div_ceil(WG))?;
    ctx.dispatch(&UPDATE_RUNNING, &p, &[running[0], running[1], batch[0], batch[1]], &new, grid)
}

/// The parameters of a pass that normalises `d` with `stats`: their kind and ε, which of γ
/// and β there are, and (read by the backward only) whether they are the batch's own.
fn normalization_params(d: BatchNormGeometry, stats: BnStats, gamma: bool, beta: bool) -> Params {
    let (_, _, stat_is_var, eps) = stats.parts();
    Params {
        n: d.n as u32,
        c: d.c as u32,
        s: d.s as u32,
        eps,
        has_gamma: gamma as u32,
        has_beta: beta as u32,
        stat_is_var,
        training: matches!(stats, BnStats::Batch { .. }) as u32,
        ..Default::default()
    }
}

/// y = (x − mean)·inv_std·γ + β per channel.
// x: [N, C, S]; stats, gamma, beta: [C] → y: [N, C, S]
pub fn normalize(
    ctx: &Context,
    d: BatchNormGeometry,
    x: &GpuBuffer,
    stats: BnStats,
    affine: Affine,
    y: &GpuBuffer,
) -> Result<()> {
    const K: &str = "batch_norm_normalize";
    let (mean, stat, ..) = stats.parts();
    check(K, d, x, &[("mean", Some(mean)), ("stat", Some(stat)), ("gamma", affine.gamma), ("beta", affine.beta)])?;
    need(K, "y", y, d.len())?;
    let p = normalization_params(d, stats, affine.gamma.is_some(), affine.beta.is_some());
    let grid = ctx.grid_1d(K, (d.len() as u64).div_ceil(WG))?;
    // Missing γ/β slots are bound to `mean` (read-only, never read).
    ctx.dispatch(
        &NORMALIZE,
        &p,
        &[x, mean, stat, affine.gamma.unwrap_or(mean), affine.beta.unwrap_or(mean)],
        &[y],
        grid,
    )
}

/// The backward's operands: `stats` decides the formula (Batch: training, where μ and σ
/// depend on x; Running: eval, an affine map).
#[derive(Clone, Copy, Debug)]
pub struct BackwardArgs<'a> {
    /// Gradient of the output, like x.
    pub dy: &'a GpuBuffer,
    /// The forward's input, `[N, C, S]`.
    pub x: &'a GpuBuffer,
    /// The statistics the forward normalised with.
    pub stats: BnStats<'a>,
    /// The forward's scale γ, `[C]` (`None`: 1).
    pub gamma: Option<&'a GpuBuffer>,
    /// Gradient of x (written).
    pub dx: &'a GpuBuffer,
    /// Gradient of γ, `[C]` (written).
    pub dgamma: &'a GpuBuffer,
    /// Gradient of β, `[C]` (written).
    pub dbeta: &'a GpuBuffer,
}

/// dx, dγ = Σ dy·x̂, dβ = Σ dy (see batch_norm.wgsl for the derivation).
// dy, x: [N, C, S]; stats, gamma: [C] → dx: [N, C, S], dgamma, dbeta: [C]
pub fn backward(ctx: &Context, d: BatchNormGeometry, a: &BackwardArgs) -> Result<()> {
    let slices = if slices_pay(ctx) { channel_slices(d) } else { 1 };
    backward_in_slices(ctx, d, a, slices)
}

/// [`backward`] with each channel's values cut into `slices` ranges (1: a workgroup per
/// channel).
// dy, x: [N, C, S]; stats, gamma: [C] → dx: [N, C, S], dgamma, dbeta: [C]
pub fn backward_in_slices(ctx: &Context, d: BatchNormGeometry, a: &BackwardArgs, slices: usize) -> Result<()> {
    const K: &str = "batch_norm_backward";
    check_slices(K, slices)?;
    let (mean, stat, ..) = a.stats.parts();
    check(
        K,
        d,
        a.x,
        &[
            ("mean", Some(mean)),
            ("stat", Some(stat)),
            ("gamma", a.gamma),
            ("dgamma", Some(a.dgamma)),
            ("dbeta", Some(a.dbeta)),
        ],
    )?;
    need(K, "dy", a.dy, d.len())?;
    need(K, "dx", a.dx, d.len())?;
    let p = Params { slices: slices as u32, ..normalization_params(d, a.stats, a.gamma.is_some(), false) };
    let gamma = a.gamma.unwrap_or(mean);
    if slices == 1 {
        let grid = ctx.grid_1d(K, d.c as u64)?;
        return ctx.dispatch(&BACKWARD, &p, &[a.dy, a.x, mean, stat, gamma], &[a.dx, a.dgamma, a.dbeta], grid);
    }
    let partials = ctx.alloc(2 * slices * d.c)?;
    let ranges = ctx.grid_1d(K, (slices * d.c) as u64)?;
    ctx.dispatch(&BACKWARD_SUM_SLICES, &p, &[a.dy, a.x, mean], &[&partials], ranges)?;
    let channels = ctx.grid_1d(K, (d.c as u64).div_ceil(WG))?;
    ctx.dispatch(&BACKWARD_FINISH_SLICES, &p, &[&partials, stat], &[a.dgamma, a.dbeta], channels)?;
    let elements = ctx.grid_1d(K, (d.len() as u64).div_ceil(WG))?;
    ctx.dispatch(&BACKWARD_DX, &p, &[a.dy, a.x, mean, stat, gamma, a.dgamma, a.dbeta], &[a.dx], elements)
}
