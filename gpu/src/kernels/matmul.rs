//! Matrix-product launcher (`shaders/matmul.wgsl`): batched C (+)= A·B with strided
//! (transposable, batch-broadcastable) operands and a dense C.

use crate::buffer_pool::GpuBuffer;
use crate::context::Context;
use crate::error::{invalid, Result};
use crate::kernels::{need, GemmTile};
use crate::pipeline_cache::{KernelDef, Shader};

/// The WGSL source of `shaders/matmul.wgsl`.
pub static SHADER: Shader = Shader { name: "matmul.wgsl", source: include_str!("../../../shaders/matmul.wgsl") };
/// Tiled batched matrix product over strided views.
/// Every rung binds A, B and the epilogue's bias (any buffer when there is none), then C.
pub static MATMUL: KernelDef = KernelDef::new(&SHADER, "matmul", 3, 1);

/// The same product with a 128×128 tile and an 8×8 register block per invocation.
pub static MATMUL_WIDE: KernelDef = KernelDef::new(&SHADER, "matmul_wide", 3, 1);

/// Rung 1 of the ladder: one invocation per output, a loop over k.
pub static MATMUL_NAIVE: KernelDef = KernelDef::new(&SHADER, "matmul_naive", 3, 1);

/// Rung 2: 16×16 blocks of A and B staged in workgroup memory, one output per invocation.
pub static MATMUL_TILED16: KernelDef = KernelDef::new(&SHADER, "matmul_tiled16", 3, 1);

/// C (+)= the sum of a split K's partial products, in slice order. Binds the partials, an unread
/// buffer and the bias, so that the bias and C sit at the products' bindings.
pub static MATMUL_SUM_SLICES: KernelDef = KernelDef::new(&SHADER, "matmul_sum_slices", 3, 1);

/// The rungs of the matmul ladder, plainest first: each adds one idea to the one before and
/// computes the same C. [`matmul`] runs rungs 3 and 4 (the tile [`GemmTile::for_gemm`] picks,
/// K split into slices when the output is small), or a lower one where a tuning context
/// measured it faster ([`chosen_rung`]); [`matmul_on_rung`] runs any one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulRung {
    /// 1. One invocation per output, a loop over k (`matmul_naive`).
    Naive,
    /// 2. 16×16 blocks staged in workgroup memory (`matmul_tiled16`).
    SharedTile16,
    /// 3. 64×64 tiles, 4×4 outputs per invocation in registers, vec4 staging (`matmul`).
    RegisterTile64,
    /// 4. 128×128 tiles, 8×8 per invocation, double-buffered k-steps (`matmul_wide`).
    RegisterTile128,
}

impl MatmulRung {
    /// Every rung, plainest first.
    pub const ALL: [MatmulRung; 4] =
        [MatmulRung::Naive, MatmulRung::SharedTile16, MatmulRung::RegisterTile64, MatmulRung::RegisterTile128];

    /// The rung's name in benchmarks (`naive`, `tiled16`, `tile64`, `tile128`).
    pub fn name(self) -> &'static str {
        match self {
            MatmulRung::Naive => "naive",
            MatmulRung::SharedTile16 => "tiled16",
            MatmulRung::RegisterTile64 => "tile64",
            MatmulRung::RegisterTile128 => "tile128",
        }
    }

    /// The rung [`MatmulRung::name`] names.
    pub fn from_name(name: &str) -> Option<MatmulRung> {
        MatmulRung::ALL.into_iter().find(|rung| rung.name() == name)
    }

    fn kernel(self) -> &'static KernelDef {
        match self {
            MatmulRung::Naive => &MATMUL_NAIVE,
            MatmulRung::SharedTile16 => &MATMUL_TILED16,
            MatmulRung::RegisterTile64 => &MATMUL,
            MatmulRung::RegisterTile128 => &MATMUL_WIDE,
        }
    }

    /// Side of the square of C one workgroup computes.
    fn side(self) -> usize {
        match self {
            MatmulRung::Naive | MatmulRung::SharedTile16 => 16,
            MatmulRung::RegisterTile64 => GemmTile::Square64.side(),
            MatmulRung::RegisterTile128 => GemmTile::Wide128.side(),
        }
    }
}

impl From<GemmTile> for MatmulRung {
    fn from(tile: GemmTile) -> Self {
        match tile {
            GemmTile::Square64 => MatmulRung::RegisterTile64,
            GemmTile::Wide128 => MatmulRung::RegisterTile128,
        }
    }
}

/// Mirrors `struct Params` in matmul.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Rows of A and C.
    pub m: u32,
    /// Columns of B and C.
    pub n: u32,
    /// Columns of A = rows of B.
    pub k: u32,
    /// Number of matrices.
    pub batch: u32,
    /// A's batch stride, in elements.
    pub a_batch: u32,
    /// A's row stride.
    pub a_row: u32,
    /// A's column stride.
    pub a_col: u32,
    /// A's element offset.
    pub a_offset: u32,
    /// B's batch stride, in elements.
    pub b_batch: u32,
    /// B's row stride.
    pub b_row: u32,
    /// B's column stride.
    pub b_col: u32,
    /// B's element offset.
    pub b_offset: u32,
    /// 1: add to the output instead of overwriting it.
    pub accumulate: u32,
    /// 1: add bias\[bias_offset + j\] to column j (the epilogue).
    pub has_bias: u32,
    /// The bias's element offset in its buffer.
    pub bias_offset: u32,
    /// 1: ReLU last (the epilogue).
    pub relu: u32,
}

/// What the launch that writes C last does to each output before storing it: add a bias along
/// C's columns, then ReLU. A Linear layer's x·Wᵀ + b and the ReLU after it are then one launch
/// where they were three. The default does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// bias\[j\] added to column j: the buffer and the element offset of bias\[0\].
    pub bias: Option<(&'a GpuBuffer, usize)>,
    /// max(v, 0) after the bias, NaN passing through (the element-wise table's ReLU).
    pub relu: bool,
}

/// A (batch of) matrices inside a buffer: element [b, i, j] at
/// `offset + b·batch_stride + i·row_stride + j·col_stride`.
#[derive(Clone, Copy, Debug)]
pub struct MatView<'a> {
    /// The buffer holding the matrices.
    pub buf: &'a GpuBuffer,
    /// Element index of \[0, 0, 0\].
    pub offset: usize,
    /// Step between matrices, in elements (0 repeats one matrix).
    pub batch_stride: usize,
    /// Step between rows, in elements.
    pub row_stride: usize,
    /// Step between columns, in elements.
    pub col_stride: usize,
}

impl<'a> MatView<'a> {
    /// A dense row-major batch of [rows, cols] matrices.
    pub fn row_major(buf: &'a GpuBuffer, rows: usize, cols: usize) -> Self {
        MatView { buf, offset: 0, batch_stride: rows * cols, row_stride: cols, col_stride: 1 }
    }

    /// The transposed view (no data moves).
    pub fn t(self) -> Self {
        MatView { row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    /// The same matrix for every batch entry.
    pub fn broadcast_batch(self) -> Self {
        MatView { batch_stride: 0, ..self }
    }

    fn extent(&self, batch: usize, rows: usize, cols: usize) -> usize {
        if batch == 0 || rows == 0 || cols == 0 {
            return 0;
        }
        self.offset + (batch - 1) * self.batch_stride + (rows - 1) * self.row_stride + (cols - 1) * self.col_stride + 1
    }
}

/// C\[b\] = A\[b\]·B\[b\] (or C\[b\] += … with `accumulate`), A: [batch, m, k], B: [batch, k, n],
/// C: dense [batch, m, n].
#[derive(Clone, Copy, Debug)]
pub struct MatmulArgs<'a> {
    /// Left operand, `[batch, m, k]`.
    pub a: MatView<'a>,
    /// Right operand, `[batch, k, n]`.
    pub b: MatView<'a>,
    /// Output, dense `[batch, m, n]`.
    pub c: &'a GpuBuffer,
    /// Number of matrix products.
    pub batch: usize,
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Add to C instead of overwriting it.
    pub accumulate: bool,
    /// Bias and activation applied to the output (after the accumulation).
    pub epilogue: Epilogue<'a>,
}

impl<'a> MatmulArgs<'a> {
    /// One product C = A·B of A `[m, k]` and B `[k, n]` into C (overwritten); a batch or an
    /// accumulating product sets `batch` or `accumulate` over it.
    pub fn new(a: MatView<'a>, b: MatView<'a>, c: &'a GpuBuffer, [m, n, k]: [usize; 3]) -> Self {
        MatmulArgs { a, b, c, batch: 1, m, n, k, accumulate: false, epilogue: Epilogue::default() }
    }
}

// a: [batch, m, k], b: [batch, k, n] (strided) → c: [batch, m, n] (dense)
/// C\[b\] = A\[b\]·B\[b\] (or += with `accumulate`) on the tile [`GemmTile::for_gemm`] picks;
/// checks every view's extent first.
pub fn matmul(ctx: &Context, args: &MatmulArgs) -> Result<()> {
    const K: &str = "matmul";
    let p = checked_params(K, args)?;
    let slices = k_slices(ctx, args.batch, args.m, args.n, args.k);
    matmul_in_slices(ctx, args, &p, slices)
}

/// [`matmul`] with its K cut into `slices` (1: not cut), whatever the rule or the tuner would
/// choose: how the tuner times the two against each other ([`crate::tuning::time_k_split`]).
pub fn matmul_k_sliced(ctx: &Context, args: &MatmulArgs, slices: usize) -> Result<()> {
    let p = checked_params("matmul", args)?;
    let slices = if args.batch == 1 { slices.clamp(1, args.k.max(1)) } else { 1 };
    matmul_in_slices(ctx, args, &p, slices)
}

fn matmul_in_slices(ctx: &Context, args: &MatmulArgs, p: &Params, slices: usize) -> Result<()> {
    const K: &str = "matmul";
    let p = *p;
    let MatmulArgs { a, b, c, m, n, k, .. } = *args;
    let bias = bias_buffer(args);
    if slices <= 1 {
        return launch_tiled(ctx, &p, [a.buf, b.buf, bias], c);
    }
    // Slice s multiplies A[:, s·chunk..][.., ..chunk] by B[s·chunk.., :][..chunk, ..]: the
    // slices are the batch of one launch (A and B stepping by chunk along K) into partials
    // [slices, m, n], summed in order into C; the K left over after whole chunks is one more
    // product added to C.
    let chunk = k / slices;
    let partials = ctx.alloc(slices * m * n)?;
    let sliced = Params {
        k: chunk as u32,
        batch: slices as u32,
        a_batch: (chunk * a.col_stride) as u32,
        b_batch: (chunk * b.row_stride) as u32,
        accumulate: 0,
        ..without_epilogue(p)
    };
    launch_tiled(ctx, &sliced, [a.buf, b.buf, bias], &partials)?;
    let done = slices * chunk;
    // The epilogue goes to the launch that writes C last: the sum, or the K left over.
    let sum = Params { batch: slices as u32, ..if done < k { without_epilogue(p) } else { p } };
    let grid = ctx.grid_1d(K, ((m * n) as u64).div_ceil(256))?;
    ctx.dispatch(&MATMUL_SUM_SLICES, &sum, &[&partials, &partials, bias], &[c], grid)?;
    if done < k {
        let rest = Params {
            k: (k - done) as u32,
            a_offset: (a.offset + done * a.col_stride) as u32,
            b_offset: (b.offset + done * b.row_stride) as u32,
            accumulate: 1,
            ..p
        };
        launch_tiled(ctx, &rest, [a.buf, b.buf, bias], c)?;
    }
    Ok(())
}

/// One launch of `rung`'s kernel for the whole product (K is never split): how the ladder's
/// tests and benchmarks run each rung.
pub fn matmul_on_rung(ctx: &Context, args: &MatmulArgs, rung: MatmulRung) -> Result<()> {
    let p = checked_params("matmul", args)?;
    launch(ctx, rung, &p, [args.a.buf, args.b.buf, bias_buffer(args)], args.c)
}

/// The buffer bound as the bias: the epilogue's, or A's where there is none (nothing reads it).
fn bias_buffer<'a>(args: &MatmulArgs<'a>) -> &'a GpuBuffer {
    args.epilogue.bias.map_or(args.a.buf, |(buf, _)| buf)
}

/// `p` storing plain sums: for the launches whose output another launch finishes.
fn without_epilogue(p: Params) -> Params {
    Params { has_bias: 0, bias_offset: 0, relu: 0, ..p }
}

/// The kernel parameters for `args`, after checking every view's extent against its buffer
/// and the sizes against u32 indexing.
fn checked_params(op: &'static str, args: &MatmulArgs) -> Result<Params> {
    let MatmulArgs { a, b, c, batch, m, n, k, accumulate, epilogue } = *args;
    need(op, "A", a.buf, a.extent(batch, m, k))?;
    need(op, "B", b.buf, b.extent(batch, k, n))?;
    need(op, "C", c, batch * m * n)?;
    let bias_offset = epilogue.bias.map_or(0, |(_, offset)| offset);
    if let Some((buf, offset)) = epilogue.bias {
        need(op, "the bias", buf, offset + n)?;
    }
    let fits = |v: usize| v <= u32::MAX as usize;
    if ![batch * m * n, a.extent(batch, m, k), b.extent(batch, k, n), k, bias_offset].iter().all(|&v| fits(v)) {
        return Err(invalid(op, format!("batch {batch} × {m}×{k}·{k}×{n} exceeds u32 indexing")));
    }
    Ok(Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        batch: batch as u32,
        a_batch: a.batch_stride as u32,
        a_row: a.row_stride as u32,
        a_col: a.col_stride as u32,
        a_offset: a.offset as u32,
        b_batch: b.batch_stride as u32,
        b_row: b.row_stride as u32,
        b_col: b.col_stride as u32,
        b_offset: b.offset as u32,
        accumulate: accumulate as u32,
        has_bias: epilogue.bias.is_some() as u32,
        bias_offset: bias_offset as u32,
        relu: epilogue.relu as u32,
    })
}

/// One launch for `p` (its batch, m, n) on the tile [`GemmTile::for_gemm`] picks, or on the
/// lower rung [`chosen_rung`] measured faster.
fn launch_tiled(ctx: &Context, p: &Params, inputs: [&GpuBuffer; 3], c: &GpuBuffer) -> Result<()> {
    let (m, n, layers) = (p.m as usize, p.n as usize, p.batch as usize);
    let tile = GemmTile::for_gemm(ctx, m, n, layers);
    launch(ctx, chosen_rung(ctx, tile, m, n, layers), p, inputs, c)
}

/// The rung `layers` products of [m, n] outputs run on: `tile`'s (rung 3 or 4), unless a
/// tuning context (`Context::enable_tuning`) measured rung 1 or 2 faster by more than the
/// margin for their class ([`crate::tuning::Tuner::matmul_rung`]). A pinned tile pins the rung.
pub fn chosen_rung(ctx: &Context, tile: GemmTile, m: usize, n: usize, layers: usize) -> MatmulRung {
    let Some(tuner) = ctx.tuner().filter(|_| ctx.forced_gemm_tile().is_none()) else { return tile.into() };
    let time = crate::tuning::time_matmul_rungs(ctx, m, n, layers);
    match tuner.matmul_rung(m, n, layers, tile.into(), time) {
        Ok(rung) => rung,
        Err(e) => {
            eprintln!("warning: timing the matrix product's rungs failed ({e}); using the tile");
            tile.into()
        }
    }
}

/// One launch of `rung`'s kernel over the product `p` describes: a workgroup per square of C.
/// inputs: A, B and the bias (bound whether or not `p` reads it).
fn launch(ctx: &Context, rung: MatmulRung, p: &Params, inputs: [&GpuBuffer; 3], c: &GpuBuffer) -> Result<()> {
    let (batch, m, n, side) = (p.batch as u64, p.m as usize, p.n as usize, rung.side());
    let grid = ctx.grid_3d("matmul", [n.div_ceil(side) as u64, m.div_ceil(side) as u64, batch])?;
    ctx.dispatch(rung.kernel(), p, &inputs, &[c], grid)
}

/// A product whose output makes fewer than this many square tiles splits its K into slices
/// until it makes about this many workgroups: otherwise a long K (a 64×32 output over K = 4,096,
/// the data gradient of a decoder's first Linear layer) is one workgroup's loop while the rest
/// of the GPU idles.
pub const SPLIT_K_WORKGROUPS: usize = 128;
/// ... with no slice shorter than this (each slice's partial costs an m·n write and read).
pub const SPLIT_K_MIN_SLICE: usize = 256;

/// How many slices [`matmul`] cuts K into (1: none): [`k_slices_by_rule`]'s count, unless the
/// context tunes by measurement ([`Context::enable_tuning`]), which times the product with and
/// without its K cut (per shape class, once per device) and may keep it whole. The
/// convolutions' split K (`conv2d::split_k`) asks the same question here.
pub fn k_slices(ctx: &Context, batch: usize, m: usize, n: usize, k: usize) -> usize {
    let slices = k_slices_by_rule(ctx, batch, m, n, k);
    let Some(tuner) = ctx.tuner().filter(|_| slices > 1) else { return slices };
    match tuner.k_split(m, n, k, crate::tuning::time_k_split(ctx, m, n, k)) {
        Ok(true) => slices,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("warning: timing the split K failed ({e}); using the rule");
            slices
        }
    }
}

/// How many slices the rule cuts K into (1: none). Only single products split (a batch
/// already gives the GPU several), and only while the partials fit one binding.
pub fn k_slices_by_rule(ctx: &Context, batch: usize, m: usize, n: usize, k: usize) -> usize {
    let side = GemmTile::Square64.side();
    let tiles = m.div_ceil(side) * n.div_ceil(side);
    if batch != 1 || tiles == 0 || tiles >= SPLIT_K_WORKGROUPS {
        return 1;
    }
    let fit = ctx.max_binding_len() / (m * n).max(1);
    SPLIT_K_WORKGROUPS.div_ceil(tiles).min(k / SPLIT_K_MIN_SLICE).min(fit).max(1)
}
