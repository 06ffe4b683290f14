//! conv2d launchers (`shaders/conv2d.wgsl`): [`launch`] runs any of the three kernels
//! ([`ConvKernel`]: forward, backward-data, backward-weight) on the rung of the convolution
//! ladder it is given ([`ConvRung`]); [`backward_bias`] sums dy per channel.
//!
//! They are conv_transpose2d's launchers too: a transposed convolution is by definition the
//! adjoint (in x) of the conv2d whose input is the transpose's output, so with
//! `c = g.transposed()` (that conv2d's geometry; the transpose's [C_in, C_out, kH, kW] weight
//! is read as c's [c_out, c_in, kH, kW] weight, the same memory):
//!
//!   conv_transpose2d forward          y  = `BackwardData` on c, with the bias\[co\]
//!   conv_transpose2d backward_data    dx = `Forward` on c, without a bias
//!   conv_transpose2d backward_weight  dW = `BackwardWeight` on c, dy and x swapped
//!   conv_transpose2d backward_bias    db = [`backward_bias`], the channel sums of dy
//!
//! output_padding only makes the transpose's output (c's input) larger; c's kernels take
//! OH/OW as given, so nothing else changes.

use crate::buffer_pool::GpuBuffer;
use crate::context::Context;
use crate::descriptors::Conv2dGeometry;
pub use crate::descriptors::ConvKernel;
use crate::descriptors::ReduceOp;
use crate::error::{invalid, Result};
use crate::kernels::{matmul, need, reduce, slices_pay, winograd, GemmTile, Output, WG};
use crate::pipeline_cache::{KernelDef, Shader};
use std::time::Duration;

/// The WGSL source of `shaders/conv2d.wgsl`.
pub static SHADER: Shader = Shader { name: "conv2d.wgsl", source: include_str!("../../../shaders/conv2d.wgsl") };
/// Rung 1: the forward by its definition, one invocation per output (`forward_direct`).
pub static FORWARD_DIRECT: KernelDef = KernelDef::new(&SHADER, "forward_direct", 3, 1);
/// Rung 1 of backward-data: each input pixel gathers its taps by definition (`backward_data_direct`).
pub static BACKWARD_DATA_DIRECT: KernelDef = KernelDef::new(&SHADER, "backward_data_direct", 3, 1);
/// Rung 1 of backward-weight: each weight element sums its products by definition (`backward_weight_direct`).
pub static BACKWARD_WEIGHT_DIRECT: KernelDef = KernelDef::new(&SHADER, "backward_weight_direct", 3, 1);
/// Rung 2: the forward as an implicit GEMM, 16×16 tiles staged in workgroup memory, one
/// output per invocation (`forward_tiled16`).
pub static FORWARD_TILED16: KernelDef = KernelDef::new(&SHADER, "forward_tiled16", 3, 1);
/// Rung 2 of backward-data (`backward_data_tiled16`), one launch per sub-pixel phase.
pub static BACKWARD_DATA_TILED16: KernelDef = KernelDef::new(&SHADER, "backward_data_tiled16", 3, 1);
/// Rung 2 of backward-weight (`backward_weight_tiled16`), its K unsplit.
pub static BACKWARD_WEIGHT_TILED16: KernelDef = KernelDef::new(&SHADER, "backward_weight_tiled16", 3, 1);
/// y = conv(x, weight) + bias as an implicit GEMM, one output tile per workgroup.
pub static FORWARD: KernelDef = KernelDef::new(&SHADER, "forward", 3, 1);
/// [`FORWARD`] for fewer than 64 output channels: a 32×128 output tile instead of 64×64.
pub static FORWARD_NARROW: KernelDef = KernelDef::new(&SHADER, "forward_narrow", 3, 1);
/// [`BACKWARD_DATA`] for fewer than 64 input channels.
pub static BACKWARD_DATA_NARROW: KernelDef = KernelDef::new(&SHADER, "backward_data_narrow", 3, 1);
/// [`FORWARD`] for at most [`THIN_ROWS`] output channels: an invocation per output pixel.
pub static FORWARD_THIN: KernelDef = KernelDef::new(&SHADER, "forward_thin", 3, 1);
/// [`BACKWARD_DATA`] for at most [`THIN_ROWS`] input channels.
pub static BACKWARD_DATA_THIN: KernelDef = KernelDef::new(&SHADER, "backward_data_thin", 3, 1);
/// [`FORWARD`] on the 128×128 tile ([`GemmTile::Wide128`]).
pub static FORWARD_WIDE: KernelDef = KernelDef::new(&SHADER, "forward_wide", 3, 1);
/// [`BACKWARD_DATA`] on the 128×128 tile.
pub static BACKWARD_DATA_WIDE: KernelDef = KernelDef::new(&SHADER, "backward_data_wide", 3, 1);
/// [`BACKWARD_WEIGHT`] on the 128×128 tile.
pub static BACKWARD_WEIGHT_WIDE: KernelDef = KernelDef::new(&SHADER, "backward_weight_wide", 3, 1);
/// dx from dy and the weight.
pub static BACKWARD_DATA: KernelDef = KernelDef::new(&SHADER, "backward_data", 3, 1);
/// dweight from dy and x.
pub static BACKWARD_WEIGHT: KernelDef = KernelDef::new(&SHADER, "backward_weight", 3, 1);
/// dweight as the sum of backward_weight's K slices (see [`launch`]).
pub static BACKWARD_WEIGHT_SUM: KernelDef = KernelDef::new(&SHADER, "backward_weight_sum", 1, 1);
/// y as the sum of the forward's K slices (see `split_k`).
pub static FORWARD_SUM: KernelDef = KernelDef::new(&SHADER, "forward_sum", 3, 1);
/// dx as the sum of a stride-1 backward-data's K slices (see `split_k`).
pub static BACKWARD_DATA_SUM: KernelDef = KernelDef::new(&SHADER, "backward_data_sum", 3, 1);
/// dbias: dy summed over batch and pixels.
pub static BACKWARD_BIAS: KernelDef = KernelDef::new(&SHADER, "backward_bias", 1, 1);

/// Side of the square output tile one workgroup computes.
const TILE: u64 = 64;
/// A GEMM with fewer rows than the square tile (M: output channels in the forward, input
/// channels in backward-data) runs the narrow variant, whose tile is [`NARROW_ROWS`] ×
/// `NARROW_COLUMNS` (128): the square tile would leave 64 − M of its rows idle.
pub const NARROW_ROWS: usize = 32;
const NARROW_COLUMNS: u64 = 128;
/// A GEMM with at most this many rows runs the thin variant: one invocation per column, its
/// rows in one vec4, no staging in workgroup memory (each staged B element would serve at
/// most 4 rows).
pub const THIN_ROWS: usize = 4;
/// Columns (output pixels) each invocation of the thin variant computes: a tap's M weights are
/// loaded once for all of them (`THIN_COLS` in the shader). On lavapipe 8 ran another quarter
/// faster than 4, but a 32×32 batch-64 layer would then make only 32 workgroups, too few to
/// fill a GPU with many compute units; 4 makes 64.
const THIN_COLUMNS_PER_INVOCATION: u64 = 4;

/// backward_weight splits its K until its launch has about this many workgroups: a GPU
/// needs several per compute unit to hide memory latency (an H100 has 132), and the small
/// [C_out, C_in·kH·kW] outputs of narrow layers make only a handful of tiles.
const WEIGHT_GRAD_WORKGROUPS: usize = 512;
/// ... but no slice shorter than this (each slice's partial costs an M·N write and read).
const MIN_K_SLICE: usize = 1024;
/// ... and none longer than this, however few workgroups that makes: on lavapipe a workgroup
/// whose slice ran past about 60,000 (55,744 right, 64,640 wrong, 4 × 27 outputs at batch
/// 1024 of 67 × 65 planes) returned wrong sums, and the parity test on tensors beyond one
/// binding (tests/parity_large.rs) caught it. The cause is not known; a long reduction in one
/// workgroup also leaves most of a large GPU idle.
const MAX_K_SLICE: usize = 16_384;
/// The most flops one timed run of [`time_weight_grad_split`] may take: a layer's own
/// backward-weight at the batches trained here (B1's widest, 1→32 channels on 64×64 planes at
/// batch 64, is 2²⁶), its batch cut beyond.
const WEIGHT_GRAD_PROXY_MAX_FLOPS: usize = 1 << 30;

/// Mirrors `struct Params` in conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Batch size N.
    pub batch: u32,
    /// Input channels.
    pub c_in: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output channels.
    pub c_out: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// Kernel height.
    pub kh: u32,
    /// Kernel width.
    pub kw: u32,
    /// Vertical stride.
    pub stride_h: u32,
    /// Horizontal stride.
    pub stride_w: u32,
    /// Zero padding at top and bottom.
    pub pad_h: u32,
    /// Zero padding at left and right.
    pub pad_w: u32,
    /// Vertical dilation.
    pub dil_h: u32,
    /// Horizontal dilation.
    pub dil_w: u32,
    /// 1 when a bias buffer is bound.
    pub has_bias: u32,
    /// 1: add to the output instead of overwriting it.
    pub accumulate: u32,
    /// backward_data's output phase along y (zero in the other modes).
    pub phase_y: PhaseAxis,
    /// backward_data's output phase along x.
    pub phase_x: PhaseAxis,
    /// The phase's pixel counts along y and x.
    pub phase_len: [u32; 2],
    /// The K slice each grid z takes (`u32::MAX`: all of K in one): backward_weight's, and a
    /// split forward's or backward-data's (`split_k`).
    pub k_chunk: u32,
    /// The stored weight's kernel height and width: the kernel run (kh × kw) may be the
    /// block of it that reaches the input ([`Conv2dGeometry::live_taps`]).
    pub weight_kernel: [u32; 2],
    /// Where that block starts in the stored kernel (row, column).
    pub weight_first: [u32; 2],
    /// The column tile of grid x = 0: a GEMM with more column tiles than one grid axis
    /// allows (max_compute_workgroups_per_dimension, 65,535 on most devices; a batch of 2,048
    /// 64×64 images has 131,072) is launched in slices of columns.
    pub first_column_tile: u32,
    /// 1: ReLU on what the launch stores (set only on the launch that writes the output last).
    pub relu: u32,
}

/// One axis of a backward-data phase: the input pixels i ≡ `r` (mod stride) and the kernel
/// taps that reach them from an output pixel. Pixel `r + stride·u` of the phase gathers from
/// taps `t0 + j·tap_step` (j < `taps`), tap j reading output `u + q − j·out_step`.
///
/// Derivation: output o's tap t lands on input i = o·stride − pad + t·dilation, so for a given
/// i the taps are the t with (i + pad − t·dilation) ≡ 0 (mod stride). That depends on i only
/// through i mod stride; its solutions, when there are any, are t0 + j·(stride/g) with
/// g = gcd(stride, dilation), and then o = (i + pad − t·dilation)/stride = u + q − j·(dilation/g).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PhaseAxis {
    /// The phase's first input pixel.
    pub r: u32,
    /// Its first kernel tap.
    pub t0: u32,
    /// Kernel index step between its taps.
    pub tap_step: u32,
    /// How many taps reach it (0: the phase gets only the bias).
    pub taps: u32,
    /// Output index step between consecutive taps.
    pub out_step: u32,
    /// Output index of tap 0 for the phase's pixel 0.
    pub q: i32,
}

/// The convolution the kernels run for this one: the same, restricted to the taps that
/// reach the input when some do not (a 3×3 kernel on a 1×1 plane runs as 1×1), so no
/// launch multiplies by padding. The weight buffer stays the full one; [`launch_params`]
/// tells the shader where the run's kernel sits in it (its corner, the second value).
fn run_geometry(g: &Conv2dGeometry) -> (Conv2dGeometry, [usize; 2]) {
    g.live_taps().map_or((*g, [0, 0]), |live| (live.geometry, live.first))
}

/// The launch parameters of this convolution (run as [`run_geometry`]).
fn launch_params(g: &Conv2dGeometry, has_bias: bool, out: Output) -> Params {
    let (run, first) = run_geometry(g);
    Params {
        k_chunk: u32::MAX,
        weight_kernel: [g.kh as u32, g.kw as u32],
        weight_first: [first[0] as u32, first[1] as u32],
        ..geometry_params(&run, has_bias, out)
    }
}

/// `g`'s sizes, stride, padding and dilation as the shader reads them, the rest zero.
fn geometry_params(g: &Conv2dGeometry, has_bias: bool, out: Output) -> Params {
    Params {
        batch: g.batch as u32,
        c_in: g.c_in as u32,
        h: g.h as u32,
        w: g.w as u32,
        c_out: g.c_out as u32,
        oh: g.oh as u32,
        ow: g.ow as u32,
        kh: g.kh as u32,
        kw: g.kw as u32,
        stride_h: g.stride[0] as u32,
        stride_w: g.stride[1] as u32,
        pad_h: g.padding[0] as u32,
        pad_w: g.padding[1] as u32,
        dil_h: g.dilation[0] as u32,
        dil_w: g.dilation[1] as u32,
        has_bias: has_bias as u32,
        accumulate: (out == Output::Accumulate) as u32,
        ..Default::default()
    }
}

/// backward_data's launches: one per output phase (iy mod s_h, ix mod s_w) that holds
/// pixels, each with its axis descriptions and pixel counts.
fn backward_data_phases(g: &Conv2dGeometry) -> Vec<(PhaseAxis, PhaseAxis, [u32; 2])> {
    let axis =
        |r, k, a: usize| phase_axis(r, k, g.stride[a], g.padding[a], g.dilation[a]).unwrap_or(PhaseAxis::none(r));
    let pixels = |r: usize, input: usize, stride: usize| (input - r).div_ceil(stride) as u32;
    let mut phases = Vec::new();
    for ry in 0..g.stride[0].min(g.h) {
        for rx in 0..g.stride[1].min(g.w) {
            let len = [pixels(ry, g.h, g.stride[0]), pixels(rx, g.w, g.stride[1])];
            phases.push((axis(ry, g.kh, 0), axis(rx, g.kw, 1), len));
        }
    }
    phases
}

fn check_geometry(g: &Conv2dGeometry, kernel: &'static str) -> Result<()> {
    if g.stride.contains(&0) || g.dilation.contains(&0) || g.kh == 0 || g.kw == 0 {
        return Err(invalid(kernel, format!("zero stride, dilation or kernel size in {g:?}")));
    }
    // The GEMM operands are never materialised (the im2col matrix of a batch of 2,048 64×64
    // images is larger than u32 indexing), so the indices the kernels compute stay below the
    // tensors' lengths, and each GEMM dimension below one of them.
    let biggest = [g.x_len(), g.y_len(), g.weight_len()].into_iter().max().unwrap_or(0);
    if biggest > u32::MAX as usize {
        return Err(invalid(kernel, format!("{g:?} exceeds u32 indexing")));
    }
    Ok(())
}

impl PhaseAxis {
    /// A phase no tap reaches: its pixels get the bias only.
    fn none(r: usize) -> PhaseAxis {
        PhaseAxis { r: r as u32, ..Default::default() }
    }
}

/// The taps of kernel size `k` that reach the input pixels i ≡ `r` (mod `stride`), as a
/// [`PhaseAxis`] (see there); `None` when no tap does.
fn phase_axis(r: usize, k: usize, stride: usize, pad: usize, dilation: usize) -> Option<PhaseAxis> {
    let gcd = |mut a: usize, mut b: usize| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let g = gcd(stride, dilation);
    let reaches = |t: usize| (r + pad) as i64 - (t * dilation) as i64;
    let t0 = (0..k).find(|&t| reaches(t).rem_euclid(stride as i64) == 0)?;
    let tap_step = stride / g;
    Some(PhaseAxis {
        r: r as u32,
        t0: t0 as u32,
        tap_step: tap_step as u32,
        taps: (k - t0).div_ceil(tap_step) as u32,
        out_step: (dilation / g) as u32,
        q: (reaches(t0) / stride as i64) as i32,
    })
}

/// The three GEMMs of `conv2d.wgsl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gemm {
    Forward,
    BackwardData,
    BackwardWeight,
}

/// The one launch of the three GEMMs: grid over the [M, N] output, times `slices` K slices
/// along z (1 unless backward-weight splits its K), on the square or the wide tile
/// ([`GemmTile::for_gemm`]). Forward and backward-data also come as the narrow and thin
/// variants, chosen by M; backward-weight keeps the square or wide tile and splits its K
/// instead.
#[allow(clippy::too_many_arguments)]
fn gemm(
    ctx: &Context,
    mode: Gemm,
    p: &Params,
    [m, n, slices]: [usize; 3],
    in0: &GpuBuffer,
    in1: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    out: &GpuBuffer,
) -> Result<()> {
    let (square, wide, variants) = match mode {
        Gemm::Forward => (&FORWARD, &FORWARD_WIDE, Some((&FORWARD_NARROW, &FORWARD_THIN))),
        Gemm::BackwardData => (&BACKWARD_DATA, &BACKWARD_DATA_WIDE, Some((&BACKWARD_DATA_NARROW, &BACKWARD_DATA_THIN))),
        Gemm::BackwardWeight => (&BACKWARD_WEIGHT, &BACKWARD_WEIGHT_WIDE, None),
    };
    // Without a bias the slot still needs a buffer: any read-only one will do, it is not read.
    let inputs = [in0, in1, bias.unwrap_or(in0)];
    match variants {
        Some((_, thin)) if m <= THIN_ROWS => {
            let grid = ctx.grid_1d(thin.entry, (n as u64).div_ceil(256 * THIN_COLUMNS_PER_INVOCATION))?;
            ctx.dispatch(thin, p, &inputs, &[out], grid)
        }
        Some((narrow, _)) if (m as u64) < TILE => {
            let tiles = [(n as u64).div_ceil(NARROW_COLUMNS), (m as u64).div_ceil(NARROW_ROWS as u64), 1];
            dispatch_column_slices(ctx, narrow, p, tiles, inputs, out)
        }
        _ => {
            let tile = GemmTile::for_gemm(ctx, m, n, slices);
            let side = tile.side() as u64;
            let tiles = [(n as u64).div_ceil(side), (m as u64).div_ceil(side), slices as u64];
            let kernel = if tile == GemmTile::Wide128 { wide } else { square };
            dispatch_column_slices(ctx, kernel, p, tiles, inputs, out)
        }
    }
}

/// Rung 2's launch of one of the three GEMMs: a 16×16 workgroup per 16×16 block of the [M, N]
/// output, K whole. `inputs` are the kernel's two operands and the bias slot (an operand again
/// when there is no bias: it is not read).
fn gemm_tiled16(
    ctx: &Context,
    mode: Gemm,
    p: &Params,
    [m, n]: [usize; 2],
    inputs: [&GpuBuffer; 3],
    out: &GpuBuffer,
) -> Result<()> {
    let kernel = match mode {
        Gemm::Forward => &FORWARD_TILED16,
        Gemm::BackwardData => &BACKWARD_DATA_TILED16,
        Gemm::BackwardWeight => &BACKWARD_WEIGHT_TILED16,
    };
    if m == 0 || n == 0 {
        return Ok(());
    }
    dispatch_column_slices(ctx, kernel, p, [(n as u64).div_ceil(16), (m as u64).div_ceil(16), 1], inputs, out)
}

/// Launches a tiled GEMM over `tiles` = [column tiles, row tiles, K slices], in as many
/// launches as the column tiles need (each at most max_compute_workgroups_per_dimension wide,
/// its first tile in `first_column_tile`).
fn dispatch_column_slices(
    ctx: &Context,
    k: &KernelDef,
    p: &Params,
    [columns, rows, slices]: [u64; 3],
    inputs: [&GpuBuffer; 3],
    out: &GpuBuffer,
) -> Result<()> {
    let max = u64::from(ctx.limits().max_compute_workgroups_per_dimension).max(1);
    let mut first = 0;
    loop {
        let width = (columns - first).min(max);
        let grid = ctx.grid_3d(k.entry, [width, rows, slices])?;
        let p = Params { first_column_tile: first as u32, ..*p };
        ctx.dispatch(k, &p, &inputs, &[out], grid)?;
        first += width;
        if first >= columns {
            return Ok(());
        }
    }
}

/// Checks a launcher's operands against `g` (errors name `op`): the geometry within the
/// kernels' indexing, and each present buffer, named, at least as long as given.
fn check_operands(op: &'static str, g: &Conv2dGeometry, operands: &[(&str, Option<&GpuBuffer>, usize)]) -> Result<()> {
    check_geometry(g, op)?;
    for &(name, buffer, len) in operands {
        if let Some(buffer) = buffer {
            need(op, name, buffer, len)?;
        }
    }
    Ok(())
}

/// The rungs of the convolution ladder (docs/gpu-kernels.md walks them): every launcher below
/// runs the one it is given, so tests and benchmarks hold each rung to the reference and the
/// tensor ops name the one they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvRung {
    /// Rung 1: the definition, one invocation per output value looping over its taps (the
    /// `*_direct` entry points). Obviously right and slow.
    Direct,
    /// Rung 2: the convolution as a GEMM (im2col done in the loads, only the live taps, the
    /// sub-pixel phases of a strided backward-data), one output per invocation, 16×16 tiles of
    /// both operands staged in workgroup memory (the `*_tiled16` entry points).
    Tiled16,
    /// The same GEMM on the matmul tiles (64×64 or 128×128 blocks, a 4×4 or 8×8 register block
    /// per invocation, vec4 loads, narrow and thin variants for few channels) and a split K:
    /// what the tensor ops run.
    ImplicitGemm,
    /// Winograd's F(2×2, 3×3) (`kernels::winograd`): a 3×3 kernel at stride 1 as transforms
    /// around 16 batched matrix products, 16 multiply-adds per 2×2 output tile and input
    /// channel where the implicit GEMM takes 36; all three kernels (backward-data as the
    /// full correlation's forward). Geometries it does not compute ([`winograd::applies`])
    /// run on the implicit GEMM.
    Winograd,
}

impl ConvRung {
    /// Every rung, plainest first.
    pub const ALL: [ConvRung; 4] = [ConvRung::Direct, ConvRung::Tiled16, ConvRung::ImplicitGemm, ConvRung::Winograd];

    /// The rung's name in benchmarks and test messages.
    pub fn name(self) -> &'static str {
        match self {
            ConvRung::Direct => "direct",
            ConvRung::Tiled16 => "tiled16",
            ConvRung::ImplicitGemm => "implicit_gemm",
            ConvRung::Winograd => "winograd",
        }
    }

    /// The rung [`ConvRung::name`] names.
    pub fn from_name(name: &str) -> Option<ConvRung> {
        ConvRung::ALL.into_iter().find(|rung| rung.name() == name)
    }
}

/// The rung the tensor ops run `kernel` of `g` on: the one [`Context::pin_conv_rung`]
/// pinned; else the top rung, unless a tuning context (`Context::enable_tuning`) measured
/// another faster by more than the margin for the class of `g` ([`crate::tuning::Tuner::conv_rung`]).
pub fn chosen_rung(ctx: &Context, kernel: ConvKernel, g: &Conv2dGeometry) -> ConvRung {
    if let Some(rung) = ctx.forced_conv_rung() {
        return rung;
    }
    let Some(tuner) = ctx.tuner() else { return ConvRung::ImplicitGemm };
    let [m, n, k] = gemm_dims(kernel, g);
    let winograd = winograd::applies(ctx, kernel, g);
    let class = crate::tuning::conv_rung_class(kernel, g.stride, winograd, m, n, k);
    let candidates = candidate_rungs(winograd);
    match tuner.conv_rung(&class, &candidates, time_conv_rungs(ctx, kernel, g)) {
        Ok(rung) => rung,
        Err(e) => {
            eprintln!("warning: timing the convolution's rungs failed ({e}); using the implicit GEMM");
            ConvRung::ImplicitGemm
        }
    }
}

/// The rungs a tuning context times for a convolution, the incumbent (the implicit GEMM)
/// first: Winograd only where it computes the geometry (elsewhere it would time the implicit
/// GEMM again).
fn candidate_rungs(winograd: bool) -> Vec<ConvRung> {
    let all = [ConvRung::ImplicitGemm, ConvRung::Winograd, ConvRung::Tiled16, ConvRung::Direct];
    all.into_iter().filter(|&rung| winograd || rung != ConvRung::Winograd).collect()
}

/// The [M, N, K] of `kernel`'s GEMM on `g`'s live taps (the same for every rung; rung 1 walks
/// the dead taps too).
fn gemm_dims(kernel: ConvKernel, g: &Conv2dGeometry) -> [usize; 3] {
    let (run, _) = run_geometry(g);
    match kernel {
        ConvKernel::Forward => [g.c_out, g.batch * g.oh * g.ow, g.c_in * run.kh * run.kw],
        ConvKernel::BackwardData => [g.c_in, g.batch * g.h * g.w, g.c_out * run.kh * run.kw],
        ConvKernel::BackwardWeight => weight_grad_dims(g),
    }
}

/// How long one timed run of the top rung takes when a convolution's rungs are timed: the
/// proxy holds as many of the layer's images as the top rung runs in this time (every one on
/// a real GPU, where a layer takes microseconds; one to a few on lavapipe, where the lower
/// rungs take seconds a batch).
const RUNG_PROXY_SECONDS: f64 = 0.02;
/// ... but never fewer images than give the proxy's GEMM this many columns (backward-weight:
/// this much K), or the layer's whole batch: how the rungs compare depends on how much work
/// one launch holds. A proxy of one image of a 2×2 plane gave the implicit GEMM 4 of its
/// 64-wide tile's columns and Winograd's products one tile: on lavapipe the tuner then chose
/// the direct rung and the implicit GEMM for ResNet-18's deep layers, where on the batch of 64
/// Winograd is 1.8–2.4× faster; B2's tuned step took 10.5 s, and 4.6 s with this floor (every
/// convolution on the implicit GEMM: 8.1–9.3 s).
const RUNG_PROXY_MIN_COLUMNS: usize = 4096;

/// The images of `g`'s batch a proxy for timing `kernel`'s rungs holds, the top rung having
/// run one image in `per_image`: as many as it runs in `RUNG_PROXY_SECONDS` (20 ms), at least
/// `RUNG_PROXY_MIN_COLUMNS` (4,096) columns' worth, at most the batch.
pub fn rung_proxy_images(kernel: ConvKernel, g: &Conv2dGeometry, per_image: Duration) -> usize {
    let [_, columns, k] = gemm_dims(kernel, &Conv2dGeometry { batch: 1, ..*g });
    let per_image_columns = if kernel == ConvKernel::BackwardWeight { k } else { columns };
    let fewest = RUNG_PROXY_MIN_COLUMNS.div_ceil(per_image_columns.max(1));
    let by_time = (RUNG_PROXY_SECONDS / per_image.as_secs_f64().max(1e-9)) as usize;
    by_time.max(fewest).clamp(1, g.batch.max(1))
}

/// A timer for [`crate::tuning::Tuner::conv_rung`]: each call runs `kernel` of a proxy of `g`
/// on the given rung and returns how long one launch took ([`crate::tuning::LaunchTimer`]).
/// The first call runs every rung once on one image (building their pipelines) and times the
/// top rung there, which sizes the proxy's batch ([`rung_proxy_images`]), then runs
/// every rung once more on the proxy untimed: a proxy of more images may need pipelines one
/// image did not (the weight gradient's K slices and their sum). Every launch runs
/// [`crate::tuning::on_the_rules`].
pub fn time_conv_rungs<'a>(
    ctx: &'a Context,
    kernel: ConvKernel,
    g: &Conv2dGeometry,
) -> impl FnMut(ConvRung) -> Result<Duration> + 'a {
    let layer = *g;
    let launch_on = move |rung: ConvRung, g: &Conv2dGeometry, [a, b, out]: &[GpuBuffer; 3]| -> Result<()> {
        crate::tuning::on_the_rules(|| launch(ctx, kernel, rung, g, [a, b], None, out, Output::Overwrite))
    };
    let operands = move |g: &Conv2dGeometry| -> Result<[GpuBuffer; 3]> {
        // Zeroed: a pooled buffer may hold denormals from its last use, slow on a CPU adapter.
        let [a, b, out] = kernel.operands(g).map(|(_, len)| ctx.alloc(len));
        let buffers = [a?, b?, out?];
        for buffer in &buffers {
            ctx.clear(buffer)?;
        }
        Ok(buffers)
    };
    // Winograd where it does not compute the layer is the implicit GEMM again: not worth a run.
    let winograd = winograd::applies(ctx, kernel, g);
    let rungs = move || ConvRung::ALL.into_iter().filter(move |&rung| winograd || rung != ConvRung::Winograd);
    let mut proxy: Option<(Conv2dGeometry, [GpuBuffer; 3])> = None;
    let mut timer = crate::tuning::LaunchTimer::new();
    move |rung| {
        let (g, buffers) = match &mut proxy {
            Some(sized) => &*sized,
            empty => {
                let one = Conv2dGeometry { batch: 1, ..layer };
                let buffers = operands(&one)?;
                for rung in rungs() {
                    launch_on(rung, &one, &buffers)?;
                }
                let per_image =
                    crate::tuning::timed_run(ctx, 1, &mut || launch_on(ConvRung::ImplicitGemm, &one, &buffers))?;
                let batch = rung_proxy_images(kernel, &layer, per_image);
                if batch == 1 {
                    &*empty.insert((one, buffers))
                } else {
                    let g = Conv2dGeometry { batch, ..layer };
                    let buffers = operands(&g)?;
                    for rung in rungs() {
                        launch_on(rung, &g, &buffers)?;
                    }
                    &*empty.insert((g, buffers))
                }
            }
        };
        timer.time(ctx, || launch_on(rung, g, buffers))
    }
}

/// out (+)= `kernel` of `g` on `rung` (see [`ConvKernel`] for each kernel's operands and
/// shapes): `[a, b]` are its two inputs, `bias` (forward and backward-data only) adds one value
/// per output channel, and `mode` overwrites `out` or adds to it.
#[allow(clippy::too_many_arguments)] // the kernel, its rung, its geometry, three operands and a bias, the mode
pub fn launch(
    ctx: &Context,
    kernel: ConvKernel,
    rung: ConvRung,
    g: &Conv2dGeometry,
    [a, b]: [&GpuBuffer; 2],
    bias: Option<&GpuBuffer>,
    out: &GpuBuffer,
    mode: Output,
) -> Result<()> {
    launch_then(ctx, kernel, rung, g, [a, b], bias, out, mode, false)
}

/// out = relu(`kernel` of `g` + bias): [`launch`] overwriting `out`, with the ReLU as the
/// epilogue of the launch that writes it (forward and backward-data only): a convolution, or
/// a transposed one, and the ReLU after it in as many launches as the convolution alone.
#[allow(clippy::too_many_arguments)] // as `launch`, less the mode
pub fn launch_then_relu(
    ctx: &Context,
    kernel: ConvKernel,
    rung: ConvRung,
    g: &Conv2dGeometry,
    [a, b]: [&GpuBuffer; 2],
    bias: Option<&GpuBuffer>,
    out: &GpuBuffer,
) -> Result<()> {
    if kernel == ConvKernel::BackwardWeight {
        return Err(invalid(kernel.name(), "has no ReLU epilogue"));
    }
    launch_then(ctx, kernel, rung, g, [a, b], bias, out, Output::Overwrite, true)
}

#[allow(clippy::too_many_arguments)] // `launch`'s, and whether a ReLU ends it
fn launch_then(
    ctx: &Context,
    kernel: ConvKernel,
    rung: ConvRung,
    g: &Conv2dGeometry,
    [a, b]: [&GpuBuffer; 2],
    bias: Option<&GpuBuffer>,
    out: &GpuBuffer,
    mode: Output,
    relu: bool,
) -> Result<()> {
    let op = kernel.name();
    let [(a_name, a_len), (b_name, b_len), (out_name, out_len)] = kernel.operands(g);
    let bias_len = match (bias, kernel.bias_len(g)) {
        (Some(_), None) => return Err(invalid(op, "takes no bias")),
        (_, len) => len.unwrap_or(0),
    };
    let operands =
        [(a_name, Some(a), a_len), (b_name, Some(b), b_len), (out_name, Some(out), out_len), ("bias", bias, bias_len)];
    check_operands(op, g, &operands)?;
    let has_bias = bias.is_some();
    if rung == ConvRung::Winograd && winograd::applies(ctx, kernel, g) {
        return winograd::launch(ctx, kernel, g, [a, b], bias, out, mode, relu);
    }
    // Winograd where it does not apply runs as the implicit GEMM.
    let rung = if rung == ConvRung::Winograd { ConvRung::ImplicitGemm } else { rung };
    let relu = relu as u32;
    match rung {
        ConvRung::Direct => {
            let direct = match kernel {
                ConvKernel::Forward => &FORWARD_DIRECT,
                ConvKernel::BackwardData => &BACKWARD_DATA_DIRECT,
                ConvKernel::BackwardWeight => &BACKWARD_WEIGHT_DIRECT,
            };
            let p = Params { relu, ..geometry_params(g, has_bias, mode) };
            dispatch_direct(ctx, direct, &p, out_len, [a, b, bias.unwrap_or(a)], out)
        }
        ConvRung::Tiled16 | ConvRung::ImplicitGemm | ConvRung::Winograd => match kernel {
            ConvKernel::Forward => {
                forward_gemm(ctx, rung, &Params { relu, ..launch_params(g, has_bias, mode) }, g, [a, b], bias, out)
            }
            ConvKernel::BackwardData => backward_data_gemm(
                ctx,
                rung,
                &Params { relu, ..launch_params(g, has_bias, mode) },
                g,
                [a, b],
                bias,
                out,
            ),
            ConvKernel::BackwardWeight => backward_weight_gemm(ctx, rung, g, [a, b], out, mode),
        },
    }
}

/// Launches a rung-1 kernel (the `*_direct` entry points: the definition, one invocation per
/// output value looping over its taps) over its `len` outputs. The kernel reads the whole
/// kernel as stored: cropping to the live taps is the GEMM rung's optimisation. A slot the
/// kernel does not read (the bias, when there is none) still needs a buffer: the callers pass
/// an input again.
fn dispatch_direct(
    ctx: &Context,
    kernel: &KernelDef,
    p: &Params,
    len: usize,
    inputs: [&GpuBuffer; 3],
    out: &GpuBuffer,
) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    let grid = ctx.grid_1d(kernel.entry, (len as u64).div_ceil(256))?;
    ctx.dispatch(kernel, p, &inputs, &[out], grid)
}

/// The forward's GEMM on `rung`, its K split on the top rung when its output makes few tiles
/// ([`split_k`]).
fn forward_gemm(
    ctx: &Context,
    rung: ConvRung,
    p: &Params,
    g: &Conv2dGeometry,
    [x, weight]: [&GpuBuffer; 2],
    bias: Option<&GpuBuffer>,
    y: &GpuBuffer,
) -> Result<()> {
    let [m, n, k] = [g.c_out, g.batch * g.oh * g.ow, (p.c_in * p.kh * p.kw) as usize];
    if rung == ConvRung::Tiled16 {
        return gemm_tiled16(ctx, Gemm::Forward, p, [m, n], [x, weight, bias.unwrap_or(x)], y);
    }
    match split_k(ctx, m, n, k) {
        Some(split) => split.run(ctx, Gemm::Forward, p, [m, n], [x, weight], bias, y),
        None => gemm(ctx, Gemm::Forward, p, [m, n, 1], x, weight, bias, y),
    }
}

/// A forward or backward-data GEMM's K cut into `slices` of `chunk` (a whole number of the
/// shaders' k-steps), when its output makes fewer square tiles than
/// [`matmul::SPLIT_K_WORKGROUPS`]: a deep layer on a small plane (512 channels of 4×4 at batch
/// 32 make 8 × 8 tiles) would otherwise keep most of a large GPU idle while each of its few
/// workgroups walks a K of thousands, as a single matrix product with few tiles would
/// (`matmul::k_slices`, the same rule). Only the square and wide tiles take a K slice, so only
/// outputs of 64 rows or more split, and only while the partials fit one binding.
struct SplitK {
    slices: usize,
    chunk: usize,
}

fn split_k(ctx: &Context, m: usize, n: usize, k: usize) -> Option<SplitK> {
    if (m as u64) < TILE || !ctx.conv_split_k() {
        return None;
    }
    let slices = matmul::k_slices(ctx, 1, m, n, k);
    if slices < 2 {
        return None;
    }
    let chunk = k.div_ceil(slices).next_multiple_of(16);
    Some(SplitK { slices: k.div_ceil(chunk), chunk })
}

impl SplitK {
    /// Each slice's partial product into a scratch buffer laid out as `out` ([slices][M·N]),
    /// then the partials added in order, with the bias and the old output as `p` asks.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        ctx: &Context,
        mode: Gemm,
        p: &Params,
        [m, n]: [usize; 2],
        [in0, in1]: [&GpuBuffer; 2],
        bias: Option<&GpuBuffer>,
        out: &GpuBuffer,
    ) -> Result<()> {
        let partials = ctx.alloc(self.slices * m * n)?;
        let p = Params { k_chunk: self.chunk as u32, ..*p };
        // The partials are sums only: the bias, the old output and the ReLU go to the sum.
        let slice = Params { has_bias: 0, accumulate: 0, relu: 0, ..p };
        gemm(ctx, mode, &slice, [m, n, self.slices], in0, in1, None, &partials)?;
        let sum = if mode == Gemm::Forward { &FORWARD_SUM } else { &BACKWARD_DATA_SUM };
        let grid = ctx.grid_1d(sum.entry, ((m * n) as u64).div_ceil(256))?;
        ctx.dispatch(sum, &p, &[&partials, &partials, bias.unwrap_or(&partials)], &[out], grid)
    }
}

/// The implicit GEMM of backward-data: one launch per output phase (see [`PhaseAxis`]), so
/// a strided convolution multiplies only by the taps that reach each pixel.
/// `base`: the launch parameters of `g` ([`launch_params`]); each phase writes its own pixels.
fn backward_data_gemm(
    ctx: &Context,
    rung: ConvRung,
    base: &Params,
    g: &Conv2dGeometry,
    [dy, weight]: [&GpuBuffer; 2],
    bias: Option<&GpuBuffer>,
    dx: &GpuBuffer,
) -> Result<()> {
    let base = *base;
    let phases = backward_data_phases(&run_geometry(g).0);
    let one_phase = phases.len() == 1;
    for (phase_y, phase_x, phase_len) in phases {
        let p = Params { phase_y, phase_x, phase_len, ..base };
        let pixels = g.batch * (phase_len[0] * phase_len[1]) as usize;
        let k = (p.c_out * p.phase_y.taps * p.phase_x.taps) as usize;
        if rung == ConvRung::Tiled16 {
            gemm_tiled16(ctx, Gemm::BackwardData, &p, [g.c_in, pixels], [dy, weight, bias.unwrap_or(dy)], dx)?;
            continue;
        }
        // One phase (stride 1) covers every pixel of dx, so its partials are laid out as dx.
        match split_k(ctx, g.c_in, pixels, k).filter(|_| one_phase) {
            Some(split) => split.run(ctx, Gemm::BackwardData, &p, [g.c_in, pixels], [dy, weight], bias, dx)?,
            None => gemm(ctx, Gemm::BackwardData, &p, [g.c_in, pixels, 1], dy, weight, bias, dx)?,
        }
    }
    Ok(())
}

/// The implicit GEMM of backward-weight, dW (+)= Σ_n dy_n·col_nᵀ. A long K (= N·OH·OW) over
/// few output tiles is split into slices that run in parallel, each into its own partial,
/// then summed in order by a second launch ([`weight_grad_slices`]).
fn backward_weight_gemm(
    ctx: &Context,
    rung: ConvRung,
    g: &Conv2dGeometry,
    [dy, x]: [&GpuBuffer; 2],
    dw: &GpuBuffer,
    mode: Output,
) -> Result<()> {
    if rung == ConvRung::Tiled16 {
        let mode = clear_dead_taps(ctx, g, dw, mode)?;
        let [m, n, _] = weight_grad_dims(g);
        return gemm_tiled16(ctx, Gemm::BackwardWeight, &launch_params(g, false, mode), [m, n], [dy, x, dy], dw);
    }
    backward_weight_in_slices(ctx, g, [dy, x], dw, mode, weight_grad_slices(ctx, g))
}

/// The [M, N, K] of backward-weight's GEMM on `g`'s live taps: [C_out, C_in·kH·kW, N·OH·OW].
fn weight_grad_dims(g: &Conv2dGeometry) -> [usize; 3] {
    let (run, _) = run_geometry(g);
    [g.c_out, g.c_in * run.kh * run.kw, g.batch * g.oh * g.ow]
}

/// With dead taps only the live block of dW is computed: the rest is zero, set here when the
/// launch overwrites (it then accumulates into the cleared buffer).
fn clear_dead_taps(ctx: &Context, g: &Conv2dGeometry, dw: &GpuBuffer, mode: Output) -> Result<Output> {
    if run_geometry(g).0 != *g && mode == Output::Overwrite {
        ctx.clear(dw)?;
        return Ok(Output::Accumulate);
    }
    Ok(mode)
}

/// Backward-weight on the top rung with its K cut into `slices` (1: whole): each slice's
/// partial into a scratch buffer, then `backward_weight_sum` adds them in order, honouring
/// `mode`.
pub fn backward_weight_in_slices(
    ctx: &Context,
    g: &Conv2dGeometry,
    [dy, x]: [&GpuBuffer; 2],
    dw: &GpuBuffer,
    mode: Output,
    slices: usize,
) -> Result<()> {
    let mode = clear_dead_taps(ctx, g, dw, mode)?;
    let [m, n, k] = weight_grad_dims(g);
    let p = launch_params(g, false, mode);
    if slices <= 1 {
        return gemm(ctx, Gemm::BackwardWeight, &p, [m, n, 1], dy, x, None, dw);
    }
    // Slices a whole number of the shader's k-steps (16) long.
    let k_chunk = k.div_ceil(slices).next_multiple_of(16);
    let slices = k.div_ceil(k_chunk);
    let partials = ctx.alloc(slices * m * n)?;
    // The partials overwrite; the sum honours `mode`.
    let p = Params { k_chunk: k_chunk as u32, ..p };
    gemm(ctx, Gemm::BackwardWeight, &Params { accumulate: 0, ..p }, [m, n, slices], dy, x, None, &partials)?;
    let grid = ctx.grid_1d(BACKWARD_WEIGHT_SUM.entry, ((m * n) as u64).div_ceil(256))?;
    ctx.dispatch(&BACKWARD_WEIGHT_SUM, &p, &[&partials], &[dw], grid)
}

/// How many K slices backward-weight of `g` runs in: the rule's
/// ([`weight_grad_slices_by_rule`]), unless a tuning context (`Context::enable_tuning`)
/// measured the fewest the kernel allows ([`weight_grad_slices_fewest`]) faster by more than
/// the margin for the class of its GEMM (`gpu::tuning::Tuner::weight_grad_split`).
pub fn weight_grad_slices(ctx: &Context, g: &Conv2dGeometry) -> usize {
    let [m, n, k] = weight_grad_dims(g);
    let (rule, fewest) = (weight_grad_slices_of(ctx, g, true), weight_grad_slices_of(ctx, g, false));
    let Some(tuner) = ctx.tuner().filter(|_| rule > fewest) else { return rule };
    match tuner.weight_grad_split(m, n, k, time_weight_grad_split(ctx, g)) {
        Ok(true) => rule,
        Ok(false) => fewest,
        Err(e) => {
            eprintln!("warning: timing the weight gradient's split failed ({e}); using the rule");
            rule
        }
    }
}

/// The rule's K slices for backward-weight's [m, n] output over `k`: enough for about
/// `WEIGHT_GRAD_WORKGROUPS` (512) workgroups, none shorter than `MIN_K_SLICE` (1,024), none
/// longer than `MAX_K_SLICE` (16,384), within one bindable buffer of partials: never fewer
/// than [`weight_grad_slices_fewest`].
pub fn weight_grad_slices_by_rule(ctx: &Context, m: usize, n: usize, k: usize) -> usize {
    let tiles = m.div_ceil(TILE as usize) * n.div_ceil(TILE as usize);
    WEIGHT_GRAD_WORKGROUPS
        .div_ceil(tiles.max(1))
        .min(k / MIN_K_SLICE)
        .min(max_weight_grad_slices(ctx, m, n))
        .max(weight_grad_slices_fewest(ctx, m, n, k))
}

/// The fewest K slices backward-weight may run in: none longer than `MAX_K_SLICE` (16,384),
/// unless the partials would then outgrow one bindable buffer.
pub fn weight_grad_slices_fewest(ctx: &Context, m: usize, n: usize, k: usize) -> usize {
    k.div_ceil(MAX_K_SLICE).min(max_weight_grad_slices(ctx, m, n)).max(1)
}

/// The most [m, n] partials one bindable buffer holds.
fn max_weight_grad_slices(ctx: &Context, m: usize, n: usize) -> usize {
    (ctx.limits().max_storage_buffer_binding_size / 4) as usize / (m * n).max(1)
}

/// Backward-weight's K slices as a candidate of [`time_weight_grad_split`] has them.
pub fn weight_grad_slices_of(ctx: &Context, g: &Conv2dGeometry, cut: bool) -> usize {
    let [m, n, k] = weight_grad_dims(g);
    if cut {
        weight_grad_slices_by_rule(ctx, m, n, k)
    } else {
        weight_grad_slices_fewest(ctx, m, n, k)
    }
}

/// A timer for the weight gradient's split: each call runs backward-weight of `g` (its batch
/// cut so that a run is at most 2³⁰ flops) in the rule's slices (`true`)
/// or the fewest (`false`), and returns how long it took. The buffers are allocated on the
/// first call.
pub fn time_weight_grad_split<'a>(ctx: &'a Context, g: &Conv2dGeometry) -> impl FnMut(bool) -> Result<Duration> + 'a {
    let [m, n, _] = weight_grad_dims(g);
    let per_image = 2 * m * n * g.oh * g.ow;
    let proxy = Conv2dGeometry { batch: g.batch.min(WEIGHT_GRAD_PROXY_MAX_FLOPS / per_image.max(1)).max(1), ..*g };
    let mut buffers = None;
    let mut timer = crate::tuning::LaunchTimer::new();
    move |cut| {
        let (dy, x, dw) = match &mut buffers {
            Some(allocated) => &*allocated,
            empty => {
                &*empty.insert((ctx.alloc(proxy.y_len())?, ctx.alloc(proxy.x_len())?, ctx.alloc(proxy.weight_len())?))
            }
        };
        let slices = weight_grad_slices_of(ctx, &proxy, cut);
        timer.time(ctx, || backward_weight_in_slices(ctx, &proxy, [dy, x], dw, Output::Overwrite, slices))
    }
}

/// db\[c\] (+)= Σ_{n, i} dy[n, c, i]: the bias gradient of conv2d and conv_transpose2d.
///
/// The kernel gives each channel a workgroup. A layer with few channels over large planes (a
/// decoder's 3-channel output: 3 workgroups summing 262,144 values each in B1) leaves most of
/// a large GPU idle, so when it overwrites (on an adapter where [`slices_pay`]), such a layer is
/// summed by the reductions instead:
/// each image's plane of each channel by a workgroup of its own, then the batch per channel.
// dy: [batch, channels, plane] → db: [channels]
pub fn backward_bias(
    ctx: &Context,
    [batch, channels, plane]: [usize; 3],
    dy: &GpuBuffer,
    db: &GpuBuffer,
    mode: Output,
) -> Result<()> {
    const K: &str = "conv2d_backward_bias";
    let len = batch * channels * plane;
    if len > u32::MAX as usize {
        return Err(invalid(K, format!("dy of [{batch}, {channels}, {plane}] exceeds u32 indexing")));
    }
    need(K, "dy", dy, len)?;
    need(K, "db", db, channels)?;
    let few_channels = channels < reduce::SPLIT_BELOW_OUTPUTS && plane >= WG as usize && batch > 1;
    if mode == Output::Overwrite && few_channels && slices_pay(ctx) {
        return backward_bias_by_reductions(ctx, [batch, channels, plane], dy, db);
    }
    let p = Params {
        batch: batch as u32,
        c_out: channels as u32,
        oh: plane as u32,
        ow: 1,
        accumulate: (mode == Output::Accumulate) as u32,
        ..Default::default()
    };
    let grid = ctx.grid_1d(K, channels as u64)?;
    ctx.dispatch(&BACKWARD_BIAS, &p, &[dy], &[db], grid)
}

/// db\[c\] = Σ_{n, i} dy[n, c, i] by two reductions: each image's plane of each channel by a
/// workgroup of its own, then the batch per channel ([`backward_bias`]'s sliced form).
// dy: [batch, channels, plane] → db: [channels]
pub fn backward_bias_by_reductions(
    ctx: &Context,
    [batch, channels, plane]: [usize; 3],
    dy: &GpuBuffer,
    db: &GpuBuffer,
) -> Result<()> {
    let per_image = ctx.alloc(batch * channels)?;
    let planes = reduce::ReduceDims { outer: batch * channels, reduce: plane, inner: 1 };
    reduce::reduce(ctx, ReduceOp::Sum, dy, &per_image, planes)?;
    let images = reduce::ReduceDims { outer: 1, reduce: batch, inner: channels };
    reduce::reduce(ctx, ReduceOp::Sum, &per_image, db, images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_limited_by_the_indices_the_kernels_compute_not_by_im2col() {
        // im2col would hold 1024² pixels × 65² taps = 4.4·10⁹ elements, but the GEMM operands
        // are never materialised: every index stays below x, y and weight lengths.
        let wide_kernel = Conv2dGeometry::conv2d([1, 1, 1024, 1024], [1, 1, 65, 65], [1, 1], [32, 32], [1, 1]).unwrap();
        assert!(check_geometry(&wide_kernel, "conv2d_forward").is_ok());
        let huge_x =
            Conv2dGeometry::conv2d([2, 1 << 16, 256, 128], [1, 1 << 16, 1, 1], [1, 1], [0, 0], [1, 1]).unwrap();
        let err = check_geometry(&huge_x, "conv2d_forward").unwrap_err();
        assert!(err.to_string().contains("exceeds u32 indexing"), "{err}");
    }

    #[test]
    fn a_rung_proxy_keeps_enough_images_for_4096_columns_whatever_one_image_takes() {
        let layer = |plane: usize| {
            Conv2dGeometry::conv2d([64, 256, plane, plane], [256, 256, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap()
        };
        let slow = Duration::from_millis(50);
        // 2×2 planes: 4 columns an image, so the whole batch; 8×8: 64 an image, 64 images.
        assert_eq!(rung_proxy_images(ConvKernel::Forward, &layer(2), slow), 64);
        assert_eq!(rung_proxy_images(ConvKernel::BackwardWeight, &layer(8), slow), 64);
        // 16×16: 256 columns an image, 16 images; 64×64: one image is 4,096 columns.
        assert_eq!(rung_proxy_images(ConvKernel::BackwardData, &layer(16), slow), 16);
        assert_eq!(rung_proxy_images(ConvKernel::Forward, &layer(64), slow), 1);
        // A fast image: as many as the top rung runs in 20 ms.
        assert_eq!(rung_proxy_images(ConvKernel::Forward, &layer(64), Duration::from_millis(1)), 20);
    }
}
