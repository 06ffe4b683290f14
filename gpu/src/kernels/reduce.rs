//! Reduction launchers (`shaders/reduce.wgsl`): sum, mean, max, min, logsumexp, argmax and
//! argmin over the middle axis of a dense [outer, reduce, inner] view.
//!
//! Which entry point runs depends on the row: short rows loop in one invocation per output,
//! long rows take a workgroup per output. A long row with few outputs (a loss summed to one
//! value) leaves a large GPU almost idle on one workgroup: on an H100 the sum of B1's 786,432
//! squared errors took 0.32 ms that way, a tenth of its step's kernels
//! (`train_step -- --kernel-times`). Such a row is cut into equal slices, each slice's
//! reduction a workgroup of its own, and the slices' results reduced again in order
//! ([`Strategy::Split`]): two launches, the same bits on every run. Short rows with few
//! outputs leave it as idle the other way: a Linear layer's bias gradient sums 128 rows of 512
//! columns, 512 invocations looping 128 times on 2 workgroups (0.21 ms a step of B4's kernels
//! on the H100, a seventh). Their rows are cut the same way, each slice's reduction looping
//! in one invocation per output, so 8 slices give 8 times the workgroups.

use crate::buffer_pool::GpuBuffer;
use crate::context::Context;
use crate::descriptors::ReduceOp;
use crate::error::{invalid, Result};
use crate::kernels::{need, slices_pay, WG};
use crate::pipeline_cache::{KernelDef, Shader};

/// The WGSL source of `shaders/reduce.wgsl`.
pub static SHADER: Shader = Shader { name: "reduce.wgsl", source: include_str!("../../../shaders/reduce.wgsl") };
/// One thread per output element loops over the reduced axis.
pub static PER_THREAD: KernelDef = KernelDef::new(&SHADER, "reduce_per_thread", 1, 1);
/// One workgroup per output element, tree reduction in shared memory.
pub static PER_WORKGROUP: KernelDef = KernelDef::new(&SHADER, "reduce_per_workgroup", 1, 1);
/// Sets a flag when a buffer holds a NaN or ±∞.
pub static FLAG_NON_FINITE: KernelDef = KernelDef::new(&SHADER, "flag_non_finite", FLAG_INPUTS as u32, 1);

/// Buffers one launch of [`flag_non_finite`] checks.
pub const FLAG_INPUTS: usize = 4;

/// Mirrors `struct FlagParams` in reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FlagParams {
    /// Elements to check in each input (0 for an unused one).
    pub lens: [u32; FLAG_INPUTS],
    /// The flag each input sets.
    pub slots: [u32; FLAG_INPUTS],
}

/// Mirrors `struct Params` in reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Product of the axes before the indexed/reduced one.
    pub outer: u32,
    /// Length of the reduced axis.
    pub reduce: u32,
    /// Product of the axes after the indexed/reduced one.
    pub inner: u32,
    /// Op code of the [`ReduceOp`].
    pub op: u32,
}

fn op_code(op: ReduceOp) -> u32 {
    match op {
        ReduceOp::Sum => 0,
        ReduceOp::Mean => 1,
        ReduceOp::Max => 2,
        ReduceOp::Min => 3,
        ReduceOp::LogSumExp => 4,
        ReduceOp::ArgMax => 5,
        ReduceOp::ArgMin => 6,
    }
}

/// x is viewed as [outer, reduce, inner]; the output is [outer, inner].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReduceDims {
    /// Product of the axes before the indexed/reduced one.
    pub outer: usize,
    /// Length of the reduced axis.
    pub reduce: usize,
    /// Product of the axes after the indexed/reduced one.
    pub inner: usize,
}

/// Which entry point runs (tests force each; callers use `Auto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Rows on few workgroups split ([`row_slices`]) where [`slices_pay`], else the
    /// per-workgroup tree when a row has at least 256 elements, else per-thread loops.
    Auto,
    /// One thread per output element.
    PerThread,
    /// One workgroup per output element.
    PerWorkgroup,
    /// Each row cut into `slices` equal slices (`slices` must divide its length; not for
    /// argmax or argmin, whose index a slice's result loses): one workgroup per slice of 256
    /// elements or more, else one invocation, then the slices' results reduced by the same op,
    /// in order. Exact for every op it takes, since each is associative over equal slices (a
    /// mean of equal slices' means is the mean).
    Split {
        /// Slices per row.
        slices: usize,
    },
}

/// Workgroups below which [`Strategy::Auto`] considers splitting rows: fewer than a large GPU
/// has multiprocessors (an H100 has 132). A long row takes a workgroup per output, so this is
/// also the number of outputs.
pub const SPLIT_BELOW_OUTPUTS: usize = 64;
/// The shortest slice a split leaves each workgroup of a long row: 8 elements per invocation.
pub const MIN_SLICE: usize = 8 * WG as usize;
/// The shortest slice a split leaves each invocation of a short row (one looping per output).
pub const MIN_THREAD_SLICE: usize = 16;

/// How many slices [`Strategy::Auto`] cuts each row into (1: none), for ops that split and
/// reductions on fewer than [`SPLIT_BELOW_OUTPUTS`] workgroups: the most of 256, 128, …, 2 that
/// divides the row and leaves slices of at least [`MIN_SLICE`] (a long row, a workgroup per
/// output) or [`MIN_THREAD_SLICE`] (a short row, an invocation per output). Powers of two
/// only: the sizes of a training step are, and a row of any other length stays whole.
pub fn row_slices(op: ReduceOp, d: ReduceDims) -> usize {
    let outputs = d.outer * d.inner;
    let (workgroups, min_slice) = match whole_rows(d) {
        Strategy::PerWorkgroup => (outputs, MIN_SLICE),
        _ => (outputs.div_ceil(WG as usize), MIN_THREAD_SLICE),
    };
    if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) || workgroups >= SPLIT_BELOW_OUTPUTS {
        return 1;
    }
    (1..=8).map(|e| 1usize << (9 - e)).find(|&s| d.reduce.is_multiple_of(s) && d.reduce / s >= min_slice).unwrap_or(1)
}

/// The entry point for rows reduced whole: a workgroup per output for rows of at least 256
/// elements (a tree in shared memory), else an invocation per output looping over its row.
fn whole_rows(d: ReduceDims) -> Strategy {
    if d.reduce >= WG as usize {
        Strategy::PerWorkgroup
    } else {
        Strategy::PerThread
    }
}

/// out[o, i] = op over r of x[o, r, i].
// x: [outer, reduce, inner] → out: [outer, inner]
pub fn reduce(ctx: &Context, op: ReduceOp, x: &GpuBuffer, out: &GpuBuffer, d: ReduceDims) -> Result<()> {
    reduce_with(ctx, op, x, out, d, Strategy::Auto)
}

/// [`reduce`] with the entry point chosen by the caller.
pub fn reduce_with(
    ctx: &Context,
    op: ReduceOp,
    x: &GpuBuffer,
    out: &GpuBuffer,
    d: ReduceDims,
    strategy: Strategy,
) -> Result<()> {
    const K: &str = "reduce";
    if d.reduce == 0 && op != ReduceOp::Sum {
        return Err(invalid(K, format!("{op:?} over an empty axis (dims {d:?})")));
    }
    let outputs = d.outer * d.inner;
    need(K, "x", x, outputs * d.reduce)?;
    need(K, "out", out, outputs)?;
    if outputs * d.reduce > u32::MAX as usize {
        return Err(invalid(K, format!("{d:?} exceeds u32 indexing")));
    }
    let slices = match strategy {
        Strategy::Auto if slices_pay(ctx) => row_slices(op, d),
        Strategy::Auto => 1,
        Strategy::Split { slices } => slices,
        Strategy::PerThread | Strategy::PerWorkgroup => 1,
    };
    if let Strategy::Split { .. } = strategy {
        if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) || slices == 0 || !d.reduce.is_multiple_of(slices) {
            return Err(invalid(K, format!("{op:?} over {d:?} cannot be split into {slices} equal slices")));
        }
    }
    if slices > 1 {
        // x[o, s·L + l, i] is x viewed as [outer·slices, L, inner]; its results are
        // [outer, slices, inner], reduced again over the slices.
        let slice = ReduceDims { outer: d.outer * slices, reduce: d.reduce / slices, inner: d.inner };
        let partial = ctx.alloc(outputs * slices)?;
        reduce_with(ctx, op, x, &partial, slice, whole_rows(slice))?;
        let across = ReduceDims { outer: d.outer, reduce: slices, inner: d.inner };
        return reduce(ctx, op, &partial, out, across);
    }
    let p = Params { outer: d.outer as u32, reduce: d.reduce as u32, inner: d.inner as u32, op: op_code(op) };
    let per_workgroup = match strategy {
        Strategy::Auto => whole_rows(d) == Strategy::PerWorkgroup,
        Strategy::PerThread | Strategy::Split { .. } => false,
        Strategy::PerWorkgroup => true,
    };
    if per_workgroup {
        let grid = ctx.grid_1d(K, outputs as u64)?;
        ctx.dispatch(&PER_WORKGROUP, &p, &[x], &[out], grid)
    } else {
        let grid = ctx.grid_1d(K, (outputs as u64).div_ceil(WG))?;
        ctx.dispatch(&PER_THREAD, &p, &[x], &[out], grid)
    }
}

/// Elements each invocation of [`flag_non_finite`] checks (about; the grid is capped).
const PER_INVOCATION: u64 = 16;

/// A buffer to check for NaN and ±∞: its first `len` elements, flagged into slot `slot`.
#[derive(Clone, Copy, Debug)]
pub struct FlagCheck<'a> {
    /// The buffer.
    pub x: &'a GpuBuffer,
    /// How many of its elements, from the first.
    pub len: usize,
    /// The flag it sets.
    pub slot: usize,
}

/// Makes `flags[check.slot]` nonzero when any of the first `check.len` elements of `check.x`
/// is NaN or ±∞, and leaves it as it was otherwise, for up to [`FLAG_INPUTS`] checks in one
/// launch: zero a flag buffer once ([`Context::zeros`]), flag each buffer into its own slot (or
/// several into one), and read the flags back once ([`Context::read_u32`]). The bits set are
/// those of the f32 1.0, so a zeroed flag, once set, also reads as the float 1.0.
// checks: [len] each → flags: [> every slot] (u32)
pub fn flag_non_finite(ctx: &Context, checks: &[FlagCheck], flags: &GpuBuffer) -> Result<()> {
    const K: &str = "flag_non_finite";
    let Some(first) = checks.first() else { return Ok(()) };
    if checks.len() > FLAG_INPUTS {
        return Err(invalid(K, format!("{} buffers in one launch, at most {FLAG_INPUTS}", checks.len())));
    }
    let mut p = FlagParams::default();
    // An unused input is bound to the first buffer, with nothing to check.
    let mut inputs = [first.x; FLAG_INPUTS];
    for (j, c) in checks.iter().enumerate() {
        need(K, "x", c.x, c.len)?;
        need(K, "flags", flags, c.slot + 1)?;
        if c.len > u32::MAX as usize || c.slot > u32::MAX as usize {
            return Err(invalid(K, format!("{} elements, flag {}: beyond u32 indexing", c.len, c.slot)));
        }
        (p.lens[j], p.slots[j], inputs[j]) = (c.len as u32, c.slot as u32, c.x);
    }
    let longest = checks.iter().map(|c| c.len).max().unwrap_or(0) as u64;
    // Enough invocations for any GPU; the shader loops over whatever the grid does not cover.
    let workgroups = longest.div_ceil(WG * PER_INVOCATION).min(1 << 16);
    let grid = ctx.grid_1d(K, workgroups)?;
    ctx.dispatch(&FLAG_NON_FINITE, &p, &inputs, &[flags], grid)
}
