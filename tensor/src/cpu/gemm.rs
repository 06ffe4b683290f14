//! General matrix multiply, C = A·B (+ C), over strided operands so that transposed inputs
//! cost nothing: a transpose is just swapped strides.
//!
//! # How it is fast: the BLIS (GotoBLAS) blocking scheme
//!
//! A naive triple loop reads each element of A and B from main memory over and over. A fast
//! GEMM instead copies ("packs") blocks of A and B into small, contiguous buffers sized for the
//! caches, and spends almost all of its time in a tiny *micro-kernel* that keeps an MR×NR tile of
//! C in vector registers while it streams through the packed blocks:
//!
//! ```text
//! for jc in (0..n).step_by(NC)                 // B block columns         (packed B: KC×NC, in L3)
//!   for pc in (0..k).step_by(KC)               // the shared dimension
//!     pack B[pc..pc+KC, jc..jc+NC]             //   as NR-wide column panels, zero-padded
//!     for ic in (0..m).step_by(MC)             // ← split across threads  (packed A: MC×KC, in L2)
//!       pack A[ic..ic+MC, pc..pc+KC]           //   as MR-tall row panels, zero-padded
//!       for jr in (0..NC).step_by(NR)          // one B micro-panel        (KC×NR, stays in L1)
//!         for ir in (0..MC).step_by(MR)        // one A micro-panel        (MR×KC, streamed from L2)
//!           C[ir..ir+MR, jr..jr+NR] (+)= A_panel · B_panel       // the micro-kernel
//! ```
//!
//! Inside the micro-kernel, each step p of the shared dimension loads one NR-wide row of the B
//! panel into vector registers, broadcasts each of the MR elements of the A panel's column p, and
//! does MR·NR/lanes fused multiply-adds into the accumulator registers. Packing makes both
//! streams perfectly sequential whatever the strides of the operands were, which is why a
//! transposed operand costs nothing extra. Tiles at the right and bottom edges of C are computed
//! in full (the packed panels are zero-padded) into a scratch tile, of which only the valid part
//! is written back. The driver asks for B's panels through one seam, a packer ([`BPanel`]):
//! [`gemm`] copies them out of a matrix, [`gemm_packing_b`] lets its caller write them (an
//! implicit GEMM: the convolution's forward writes them straight from the image). A's panels
//! are packed by each task, or once by a caller that multiplies one A by many Bs
//! ([`pack_a_once`], [`gemm_serial_packed_a`]).
//!
//! f32 runs hand-written micro-kernels picked at run time: AVX-512F (14×32), AVX2+FMA (6×16), or a
//! portable Rust kernel (4×8) elsewhere, each with block sizes set for one CPU. Which is fastest
//! depends on more than the instruction set (a CPU's caches, the clock of its 512-bit units), so
//! the SIMD kernels come with two blockings each, and a process may choose one by name or by
//! timing them (`cpu::tuning`, on by default in `train`) before its first product; without a
//! choice, the widest instruction set runs. f64 (only used by gradient checks) runs the same blocked
//! driver with the portable kernel (4×4). Large products share each packed B block between the
//! rayon threads, which split its tiles by blocks of rows of C (columns when C has too few rows to
//! go around); smaller ones give each thread its own piece of C to run the serial loops on, and
//! thin ones with a long k give each thread a slice of k (see `Plan`).

// Unsafe code in this file is confined to the micro-kernels, the packing buffers and the shared
// output pointer; make every unsafe operation spell out its own `unsafe {}` block and SAFETY note.
#![warn(unsafe_op_in_unsafe_fn)]

use std::any::TypeId;
use std::cell::Cell;
use std::ops::Range;
use std::sync::OnceLock;
use std::thread::LocalKey;

use rayon::prelude::*;

use crate::dtype::{same_type_slice, same_type_slice_mut, Float};

/// A read-only matrix view: element (i, j) is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    /// The backing elements (the view may skip some).
    pub data: &'a [T],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between consecutive rows, in elements.
    pub row_stride: usize,
    /// Distance between consecutive columns, in elements (1 for a row-major matrix).
    pub col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A dense row-major [rows, cols] matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose, as a view.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Panics unless every element (i, j) lies inside `data`.
    fn assert_in_bounds(&self, name: &str) {
        if self.rows == 0 || self.cols == 0 {
            return;
        }
        let last = (self.rows - 1)
            .checked_mul(self.row_stride)
            .and_then(|r| (self.cols - 1).checked_mul(self.col_stride).and_then(|c| r.checked_add(c)));
        assert!(
            last.is_some_and(|l| l < self.data.len()),
            "gemm: {name} [{}, {}] with strides ({}, {}) reaches past its {} elements",
            self.rows,
            self.cols,
            self.row_stride,
            self.col_stride,
            self.data.len()
        );
    }
}

/// A batch of strided matrices: entry i is `first` moved `i · batch_stride` elements on
/// (a batch stride of 0 shares one matrix with every entry).
#[derive(Clone, Copy, Debug)]
pub struct MatBatch<'a, T> {
    /// Entry 0.
    pub first: MatRef<'a, T>,
    /// Distance between consecutive entries, in elements.
    pub batch_stride: usize,
}

impl<'a, T> MatBatch<'a, T> {
    /// Entry `i`.
    pub fn mat(&self, i: usize) -> MatRef<'a, T> {
        MatRef { data: &self.first.data[i * self.batch_stride..], ..self.first }
    }
}

/// C_i = A_i · B_i for every entry i of the batch. A_i: [m, k], B_i: [k, n]; c: [batch, m, n]
/// row-major. When B is shared and A's entries follow each other at A's row stride (a
/// contiguous [batch, m, k]), the batch is one [batch·m, k]·[k, n] GEMM, which packs B once;
/// otherwise the entries run in parallel, one GEMM each.
pub fn gemm_batched<T: Float>(a: MatBatch<T>, b: MatBatch<T>, batch: usize, c: &mut [T]) {
    let (m, n) = (a.first.rows, b.first.cols);
    if batch == 1 || (b.batch_stride == 0 && a.batch_stride == m * a.first.row_stride) {
        let a_all = MatRef { rows: batch * m, ..a.first };
        gemm(a_all, b.first, c, n, false);
    } else {
        c.par_chunks_mut(m * n).enumerate().for_each(|(i, ci)| gemm(a.mat(i), b.mat(i), ci, n, false));
    }
}

/// C[m, n] = A[m, k] · B[k, n], or C += A·B when `accumulate`.
/// `c` is row-major with row stride `ldc` (≥ n).
pub fn gemm<T: Float>(a: MatRef<T>, b: MatRef<T>, c: &mut [T], ldc: usize, accumulate: bool) {
    gemm_on_threads(a, b, c, ldc, accumulate, rayon::current_num_threads());
}

/// [`gemm`] on the calling thread alone.
pub fn gemm_on_calling_thread<T: Float>(a: MatRef<T>, b: MatRef<T>, c: &mut [T], ldc: usize, accumulate: bool) {
    gemm_on_threads(a, b, c, ldc, accumulate, 1);
}

/// A's panels packed once, in the blocked loops' layout, for many products with the same A
/// ([`gemm_serial_packed_a`]): a layer's transformed weights against each block of its input
/// (`cpu::upsampled_conv`). Packed per product there, A was copied again for every block of
/// about 64 columns (m·k values for m·k·64 multiply-adds); packed once, the upsampled layers
/// ran 13–15 % faster (Xeon model 207).
pub struct PackedA<T> {
    /// For each pass over k (blocks of the kernel's kc), each MR-tall panel of A, kc·MR values.
    panels: Vec<T>,
    rows: usize,
    cols: usize,
    /// The micro-kernel the panels are laid out for.
    kernel: &'static str,
}

/// Packs `a` for [`gemm_serial_packed_a`] on the GEMM kernel in use.
pub fn pack_a_once<T: Float>(a: MatRef<T>) -> PackedA<T> {
    a.assert_in_bounds("A");
    if let Some(a32) = cast_mat::<T, f32>(a) {
        let kern = f32_kernel();
        let mut panels = vec![T::ZERO; packed_a_len(&kern, a.rows, a.cols)];
        pack_every_panel(&kern, a32, same_type_slice_mut::<T, f32>(&mut panels).expect("T is f32"));
        PackedA { panels, rows: a.rows, cols: a.cols, kernel: kern.name }
    } else if let Some(a64) = cast_mat::<T, f64>(a) {
        let kern = DGEMM_PORTABLE;
        let mut panels = vec![T::ZERO; packed_a_len(&kern, a.rows, a.cols)];
        pack_every_panel(&kern, a64, same_type_slice_mut::<T, f64>(&mut panels).expect("T is f64"));
        PackedA { panels, rows: a.rows, cols: a.cols, kernel: kern.name }
    } else {
        unreachable!("Float is implemented for f32 and f64 only");
    }
}

/// C = A·B (or C += A·B) on the calling thread alone, with A packed beforehand
/// ([`pack_a_once`]): the serial blocked loops, the same products in the same order as
/// [`gemm`]'s serial plan, so the same bits. For a caller that runs many small products side by
/// side on the pool itself (`cpu::upsampled_conv`'s blocks of tiles), where each product
/// spread over the threads would fork and join the pool for a fraction of a millisecond.
pub fn gemm_serial_packed_a<T: Float>(a: &PackedA<T>, b: MatRef<T>, c: &mut [T], ldc: usize, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "gemm: A is [{m}, {k}] but B is [{}, {n}]", b.rows);
    b.assert_in_bounds("B");
    if !product_remains(m, k, n, c, ldc, accumulate) {
        return;
    }
    if let (Some(b), Some(panels), Some(c)) =
        (cast_mat::<T, f32>(b), same_type_slice::<T, f32>(&a.panels), same_type_slice_mut::<T, f32>(c))
    {
        let kern = f32_kernel();
        assert_eq!(a.kernel, kern.name, "A was packed for another GEMM kernel than the one in use");
        let a = APanels::Packed(PackedPanels { panels, rows: m, cols: k });
        // SAFETY: `c` is the caller's exclusive [m, n] matrix (product_remains checked its length).
        unsafe { gemm_blocked_on(&kern, a, n, &stored(&kern, b), SharedOut(c.as_mut_ptr()), ldc, accumulate, 1) }
    } else if let (Some(b), Some(panels), Some(c)) =
        (cast_mat::<T, f64>(b), same_type_slice::<T, f64>(&a.panels), same_type_slice_mut::<T, f64>(c))
    {
        let kern = DGEMM_PORTABLE;
        let a = APanels::Packed(PackedPanels { panels, rows: m, cols: k });
        // SAFETY: as above.
        unsafe { gemm_blocked_on(&kern, a, n, &stored(&kern, b), SharedOut(c.as_mut_ptr()), ldc, accumulate, 1) }
    } else {
        unreachable!("Float is implemented for f32 and f64 only");
    }
}

/// The values [`pack_a_once`] writes: every pass over k, every panel.
fn packed_a_len<T>(kern: &Kernel<T>, m: usize, k: usize) -> usize {
    m.div_ceil(kern.mr) * kern.mr * k
}

/// Every panel of `a` for every pass over k, as `gemm_blocked_on` cuts k.
fn pack_every_panel<T: Float>(kern: &Kernel<T>, a: MatRef<T>, out: &mut [T]) {
    let (m, k, mr) = (a.rows, a.cols, kern.mr);
    let kc = even_block(k, kern.kc, 1);
    for pc in (0..k).step_by(kc) {
        let kcb = kc.min(k - pc);
        let pass = &mut out[pc * m.div_ceil(mr) * mr..][..m.div_ceil(mr) * mr * kcb];
        for (panel, out) in pass.chunks_exact_mut(kcb * mr).enumerate() {
            let i0 = panel * mr;
            (kern.pack_a)(a, i0, mr.min(m - i0), pc, kcb, out);
        }
    }
}

/// A's panels for the blocked loops: packed by each task from the matrix, or packed once.
#[derive(Clone, Copy)]
enum APanels<'a, T> {
    Pack(MatRef<'a, T>),
    Packed(PackedPanels<'a, T>),
}

/// A [`PackedA`]'s panels, typed for its kernel.
#[derive(Clone, Copy)]
struct PackedPanels<'a, T> {
    panels: &'a [T],
    rows: usize,
    cols: usize,
}

impl<T> APanels<'_, T> {
    /// A's [rows, cols].
    fn shape(&self) -> (usize, usize) {
        match self {
            APanels::Pack(a) => (a.rows, a.cols),
            APanels::Packed(p) => (p.rows, p.cols),
        }
    }
}

fn gemm_on_threads<T: Float>(a: MatRef<T>, b: MatRef<T>, c: &mut [T], ldc: usize, accumulate: bool, threads: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "gemm: A is [{m}, {k}] but B is [{}, {n}]", b.rows);
    // The A and B checks turn an out-of-bounds view into one clear message instead of a panic
    // deep in packing.
    a.assert_in_bounds("A");
    b.assert_in_bounds("B");
    if !product_remains(m, k, n, c, ldc, accumulate) {
        return;
    }
    // `Float` is only implemented for f32 and f64 here; `TypeId` (not just `T::DTYPE`) is what
    // makes the reinterpreting casts below sound even if someone adds another implementation.
    if let (Some(a), Some(b), Some(c)) =
        (cast_mat::<T, f32>(a), cast_mat::<T, f32>(b), same_type_slice_mut::<T, f32>(c))
    {
        gemm_blocked(&f32_kernel(), a, b, c, ldc, accumulate, threads);
    } else if let (Some(a), Some(b), Some(c)) =
        (cast_mat::<T, f64>(a), cast_mat::<T, f64>(b), same_type_slice_mut::<T, f64>(c))
    {
        gemm_blocked(&DGEMM_PORTABLE, a, b, c, ldc, accumulate, threads);
    } else {
        gemm_naive(a, b, c, ldc, accumulate);
    }
}

/// What [`gemm`] and [`gemm_packing_b`] check of C, and the products they settle without
/// multiplying: `ldc` ≥ n and C long enough for [m, n] (the check that makes the
/// micro-kernels' raw writes into C sound); nothing to do when m or n is 0, and C zeroed
/// (unless `accumulate`) when k is 0. Returns whether the product remains to be computed.
fn product_remains<T: Float>(m: usize, k: usize, n: usize, c: &mut [T], ldc: usize, accumulate: bool) -> bool {
    assert!(ldc >= n, "gemm: ldc {ldc} is smaller than n {n}");
    if m == 0 || n == 0 {
        return false;
    }
    assert!(c.len() >= (m - 1) * ldc + n, "gemm: C holds {} elements, [{m}, {n}] with ldc {ldc} needs more", c.len());
    if k == 0 {
        if !accumulate {
            c.chunks_mut(ldc).take(m).for_each(|row| row[..n].iter_mut().for_each(|x| *x = T::ZERO));
        }
        return false;
    }
    true
}

/// One packed panel of B, as the blocked loops ask for it: columns `j0..j0 + cols` and rows
/// `p0..p0 + kc` of B, written as `kc` rows of `nr` elements (row p of the panel is
/// `out[p·nr..(p + 1)·nr]`, its elements past `cols` zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BPanel {
    /// B's first column in the panel.
    pub j0: usize,
    /// B's columns in the panel (at most `nr`: the last panel of a block may be narrower).
    pub cols: usize,
    /// B's first row in the panel.
    pub p0: usize,
    /// B's rows in the panel.
    pub kc: usize,
    /// The panel's width, the micro-kernel's NR.
    pub nr: usize,
}

/// What writes the panels of B: copied out of a stored matrix (by [`gemm`]), or computed on
/// the spot by an implicit GEMM ([`gemm_packing_b`]).
pub type PackB<'a, T> = &'a (dyn Fn(BPanel, &mut [T]) + Sync);

/// B's panels copied out of the stored matrix `b` by the kernel's `pack_panel`.
fn stored<'b, T: Float>(kern: &Kernel<T>, b: MatRef<'b, T>) -> impl Fn(BPanel, &mut [T]) + Sync + 'b {
    let pack = kern.pack_b;
    move |p: BPanel, out: &mut [T]| pack(b.t(), p.j0, p.cols, p.p0, p.kc, out)
}

/// C[m, n] = A[m, k] · B[k, n], or C += A·B when `accumulate`, for a B that is never stored:
/// the blocked loops call `pack_b` for each panel of B they pack (see [`BPanel`]) where
/// [`gemm`] copies it out of a matrix. This is an *implicit GEMM*: a convolution's forward
/// writes its panels straight from the image (`cpu::conv`), so the unfolded operand, k·n
/// elements, is never written whole and each value is copied once instead of twice. Each
/// panel of B is packed once: the threads share each packed block of B, or take slices of k.
pub fn gemm_packing_b<T: Float>(a: MatRef<T>, n: usize, pack_b: PackB<T>, c: &mut [T], ldc: usize, accumulate: bool) {
    let (m, k) = (a.rows, a.cols);
    a.assert_in_bounds("A");
    if !product_remains(m, k, n, c, ldc, accumulate) {
        return;
    }
    let threads = rayon::current_num_threads();
    if let (Some(a), Some(c)) = (cast_mat::<T, f32>(a), same_type_slice_mut::<T, f32>(c)) {
        let kern = f32_kernel();
        let pack = |p: BPanel, out: &mut [f32]| pack_b(p, same_type_slice_mut::<f32, T>(out).expect("T is f32"));
        let plan = packing_b_once(Plan::choose(&kern, m, k, n, threads));
        gemm_planned(plan, &kern, a, n, &pack, c, ldc, accumulate, threads);
    } else if let (Some(a), Some(c)) = (cast_mat::<T, f64>(a), same_type_slice_mut::<T, f64>(c)) {
        let pack = |p: BPanel, out: &mut [f64]| pack_b(p, same_type_slice_mut::<f64, T>(out).expect("T is f64"));
        let plan = packing_b_once(Plan::choose(&DGEMM_PORTABLE, m, k, n, threads));
        gemm_planned(plan, &DGEMM_PORTABLE, a, n, &pack, c, ldc, accumulate, threads);
    } else {
        unreachable!("Float is implemented for f32 and f64 only");
    }
}

/// `plan`, or the shared passes where it would cut C into pieces: cut by rows, every thread
/// packs all of B, and a B written from an image costs more to pack than one copied from a
/// matrix (on B1's 64→128 layer the forward ran at 161 GFLOP/s against 209 shared, Zen 5).
fn packing_b_once(plan: Plan) -> Plan {
    if plan == Plan::Partitioned {
        Plan::SharedPasses
    } else {
        plan
    }
}

// ------------------------------------------------------------------------------------ the ladder

/// The rungs of the CPU GEMM ladder, plainest first. Each adds one idea to the one before and
/// computes the same product (the tests hold every rung to the f64 reference on odd shapes and
/// strided views); `cargo bench --bench gemm` times them side by side (the `sgemm_ladder`
/// group), so what each idea buys on the machine at hand is one run away. [`gemm`] runs the
/// top rung this CPU supports, unless a process chose another kernel ([`choose_f32_kernel`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GemmRung {
    /// 1. The textbook triple loop: one dot product per element of C, read through the strides.
    Naive,
    /// 2. The same loops in cache-sized tiles, in i-p-j order so that the innermost loop runs
    ///    along a row of B and of C (unit stride when they are row-major), which the compiler
    ///    vectorises. One thread.
    Tiled,
    /// 3. BLIS: A and B packed into cache-sized panels, a register-tiled micro-kernel in
    ///    portable Rust (4×8 for f32, 4×4 for f64), rayon over blocks of C.
    Packed,
    /// 4. Rung 3 with the AVX2+FMA micro-kernel (6×16, f32 only).
    Avx2,
    /// 5. Rung 3 with the AVX-512F micro-kernel (14×32, f32 only).
    Avx512,
}

impl GemmRung {
    /// Every rung, plainest first.
    pub const ALL: [GemmRung; 5] =
        [GemmRung::Naive, GemmRung::Tiled, GemmRung::Packed, GemmRung::Avx2, GemmRung::Avx512];

    /// The rung's name in benchmarks and messages (`avx2`).
    pub fn name(self) -> &'static str {
        match self {
            GemmRung::Naive => "naive",
            GemmRung::Tiled => "tiled",
            GemmRung::Packed => "packed",
            GemmRung::Avx2 => "avx2",
            GemmRung::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the rung for element type `T` (the SIMD rungs: f32 on a CPU
    /// with the instruction set).
    pub fn runs_here<T: Float>(self) -> bool {
        let is_f32 = TypeId::of::<T>() == TypeId::of::<f32>();
        match self {
            GemmRung::Naive | GemmRung::Tiled | GemmRung::Packed => true,
            GemmRung::Avx2 | GemmRung::Avx512 => is_f32 && self.simd_kernel().is_some(),
        }
    }

    /// The rungs this CPU runs for `T`, plainest first.
    pub fn available<T: Float>() -> Vec<GemmRung> {
        GemmRung::ALL.into_iter().filter(|r| r.runs_here::<T>()).collect()
    }

    /// The SIMD rung's micro-kernel, where this CPU has its instruction set.
    fn simd_kernel(self) -> Option<Kernel<f32>> {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            match self {
                GemmRung::Avx2 if avx2 => return Some(SGEMM_AVX2),
                GemmRung::Avx512 if is_x86_feature_detected!("avx512f") => return Some(SGEMM_AVX512),
                _ => {}
            }
        }
        let _ = self;
        None
    }
}

/// [`gemm`] on one rung of the ladder, for the tests and benchmarks that compare rungs. `None`
/// (and C untouched) where [`GemmRung::runs_here`] says this CPU cannot run it for `T`.
pub fn gemm_on_rung<T: Float>(
    rung: GemmRung,
    a: MatRef<T>,
    b: MatRef<T>,
    c: &mut [T],
    ldc: usize,
    accumulate: bool,
) -> Option<()> {
    if !rung.runs_here::<T>() {
        return None;
    }
    check_operands(a, b, c, ldc);
    if a.rows == 0 || b.cols == 0 {
        return Some(());
    }
    match rung {
        GemmRung::Naive => gemm_naive(a, b, c, ldc, accumulate),
        GemmRung::Tiled => gemm_tiled(a, b, c, ldc, accumulate),
        GemmRung::Packed => {
            if let (Some(a), Some(b), Some(c)) =
                (cast_mat::<T, f32>(a), cast_mat::<T, f32>(b), same_type_slice_mut::<T, f32>(c))
            {
                gemm_blocked(&SGEMM_PORTABLE, a, b, c, ldc, accumulate, rayon::current_num_threads());
            } else if let (Some(a), Some(b), Some(c)) =
                (cast_mat::<T, f64>(a), cast_mat::<T, f64>(b), same_type_slice_mut::<T, f64>(c))
            {
                gemm_blocked(&DGEMM_PORTABLE, a, b, c, ldc, accumulate, rayon::current_num_threads());
            }
        }
        GemmRung::Avx2 | GemmRung::Avx512 => {
            let kern = rung.simd_kernel()?;
            let (a, b, c) = (cast_mat::<T, f32>(a)?, cast_mat::<T, f32>(b)?, same_type_slice_mut::<T, f32>(c)?);
            gemm_blocked(&kern, a, b, c, ldc, accumulate, rayon::current_num_threads());
        }
    }
    Some(())
}

/// The checks of the ladder's entry points (`gemm_on_rung`, `gemm_on_f32_kernel`): A and B
/// agree on k and lie within their slices, and C holds [m, n] at row stride `ldc`.
fn check_operands<T>(a: MatRef<T>, b: MatRef<T>, c: &[T], ldc: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "gemm: A is [{m}, {k}] but B is [{}, {n}]", b.rows);
    assert!(ldc >= n && (m == 0 || c.len() >= (m - 1) * ldc + n), "gemm: C is too small for [{m}, {n}], ldc {ldc}");
    a.assert_in_bounds("A");
    b.assert_in_bounds("B");
}

/// Rung 1, the textbook triple loop (also [`gemm`]'s path for an element type without a
/// blocked one: none today).
fn gemm_naive<T: Float>(a: MatRef<T>, b: MatRef<T>, c: &mut [T], ldc: usize, accumulate: bool) {
    for i in 0..a.rows {
        for j in 0..b.cols {
            let mut s = if accumulate { c[i * ldc + j] } else { T::ZERO };
            for p in 0..a.cols {
                s += a.data[i * a.row_stride + p * a.col_stride] * b.data[p * b.row_stride + j * b.col_stride];
            }
            c[i * ldc + j] = s;
        }
    }
}

/// Rung 2: rung 1's loops in TILE×TILE×TILE blocks (three 64×64 f32 tiles are 48 KiB: about
/// L1 and L2's share of one core), reordered to i-p-j so that the innermost loop adds
/// a[i, p]·B[p, j0..j1] onto C[i, j0..j1]: two streams along rows instead of a dot product
/// down a column of B.
fn gemm_tiled<T: Float>(a: MatRef<T>, b: MatRef<T>, c: &mut [T], ldc: usize, accumulate: bool) {
    const TILE: usize = 64;
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if !accumulate {
        c.chunks_mut(ldc).take(m).for_each(|row| row[..n].iter_mut().for_each(|x| *x = T::ZERO));
    }
    for i0 in (0..m).step_by(TILE) {
        for p0 in (0..k).step_by(TILE) {
            for j0 in (0..n).step_by(TILE) {
                let j1 = (j0 + TILE).min(n);
                for i in i0..(i0 + TILE).min(m) {
                    let c_row = &mut c[i * ldc + j0..i * ldc + j1];
                    for p in p0..(p0 + TILE).min(k) {
                        let a_ip = a.data[i * a.row_stride + p * a.col_stride];
                        let b_row = p * b.row_stride;
                        if b.col_stride == 1 {
                            // Two slices of one length: no bounds checks left, so it vectorises.
                            for (c_ij, &b_pj) in c_row.iter_mut().zip(&b.data[b_row + j0..b_row + j1]) {
                                *c_ij += a_ip * b_pj;
                            }
                        } else {
                            for (j, c_ij) in (j0..j1).zip(c_row.iter_mut()) {
                                *c_ij += a_ip * b.data[b_row + j * b.col_stride];
                            }
                        }
                    }
                }
            }
        }
    }
}

fn cast_mat<T: 'static, U: 'static>(m: MatRef<'_, T>) -> Option<MatRef<'_, U>> {
    let data = same_type_slice(m.data)?;
    Some(MatRef { data, rows: m.rows, cols: m.cols, row_stride: m.row_stride, col_stride: m.col_stride })
}

// ------------------------------------------------------------------------------------ kernels

/// A micro-kernel and the block sizes tuned for it.
///
/// `run(kc, a, b, c, ldc, accumulate)` computes one MR×NR tile of C (row stride `ldc`):
/// `C = A_panel · B_panel`, or `C += ...` when `accumulate`, where `a` points to a packed A panel
/// (kc groups of MR elements: column p of the panel is `a[p*MR .. p*MR+MR]`) and `b` to a packed
/// B panel (kc rows of NR elements).
#[derive(Clone, Copy)]
struct Kernel<T> {
    /// The kernel's name: instruction set, MR×NR tile and the block depth (`avx2-6x16-kc512`),
    /// as `train --cpu-gemm`, the kernel-choice cache and provenance.json spell it.
    name: &'static str,
    /// The instruction set the micro-kernel is written for (`avx2`, `avx512`, `portable`).
    instruction_set: &'static str,
    mr: usize,
    nr: usize,
    /// Rows of A packed per block (a multiple of `mr`; the block should sit in L2).
    mc: usize,
    /// Depth of the packed blocks (a B micro-panel, kc×nr, should sit in L1).
    kc: usize,
    /// Columns of B packed per block (a multiple of `nr`; the block sits in L3).
    nc: usize,
    run: unsafe fn(kc: usize, a: *const T, b: *const T, c: *mut T, ldc: usize, accumulate: bool),
    /// The tiles at C's bottom and right edges straight into C, where `run` would compute the
    /// whole tile into scratch and copy the part inside C back; `None`: through scratch.
    run_edge: Option<EdgeFn<T>>,
    /// `pack_panel` instantiated for panels MR and NR wide.
    pack_a: PackFn<T>,
    pack_b: PackFn<T>,
}

type PackFn<T> = fn(src: MatRef<T>, r0: usize, rows: usize, c0: usize, kc: usize, out: &mut [T]);

/// `run` on the first `rows` (≤ MR) rows and `cols` (≤ NR) columns of a tile: arguments
/// `(rows, cols, kc, a, b, c, ldc, accumulate)`, the panels packed as for `run`.
type EdgeFn<T> = unsafe fn(usize, usize, usize, *const T, *const T, *mut T, usize, bool);

impl<T: Float> Kernel<T> {
    const fn new<const MR: usize, const NR: usize>(
        [name, instruction_set]: [&'static str; 2],
        mc: usize,
        kc: usize,
        nc: usize,
        run: unsafe fn(usize, *const T, *const T, *mut T, usize, bool),
    ) -> Kernel<T> {
        Kernel {
            name,
            instruction_set,
            mr: MR,
            nr: NR,
            mc,
            kc,
            nc,
            run,
            run_edge: None,
            pack_a: pack_panel::<T, MR>,
            pack_b: pack_panel::<T, NR>,
        }
    }

    const fn with_edge(self, run_edge: EdgeFn<T>) -> Kernel<T> {
        Kernel { run_edge: Some(run_edge), ..self }
    }
}

/// The largest tile any kernel computes (AVX-512: 14×32), for the edge-tile scratch buffer.
const MAX_TILE: usize = 14 * 32;

const SGEMM_PORTABLE: Kernel<f32> =
    Kernel::new::<4, 8>(["portable-4x8", "portable"], 128, 256, 4096, kernel_portable::<f32, 4, 8>);

const DGEMM_PORTABLE: Kernel<f64> =
    Kernel::new::<4, 4>(["portable-4x4", "portable"], 128, 256, 4096, kernel_portable::<f64, 4, 4>);

/// Zen 3 (32 KiB L1d, 512 KiB L2 per core): a 512×16 B micro-panel is 32 KiB, streamed through
/// L1 beside one A micro-panel; a 72×512 A block is 144 KiB of L2; a 512×2032 B block is 4 MiB
/// of L3. The deeper KC halves the C tile's loads and stores per multiply-add against KC = 256
/// (`cargo bench --bench gemm`, paired rounds in docs/notebooks/performance.md: sgemm 1024³ +7 % median,
/// 4096×512×4608 +6 %).
#[cfg(target_arch = "x86_64")]
const SGEMM_AVX2: Kernel<f32> = Kernel::new::<6, 16>(["avx2-6x16-kc512", "avx2"], 72, 512, 2032, x86::sgemm_avx2::<6>);

/// The same micro-kernel with the shallower blocks it had before the Zen 3 measurement above:
/// half the L1 for a B micro-panel (16 KiB), twice the rows of A per block. Which of the two
/// wins depends on the cache sizes, so with tuning on it is measured, not assumed.
#[cfg(target_arch = "x86_64")]
const SGEMM_AVX2_KC256: Kernel<f32> =
    Kernel::new::<6, 16>(["avx2-6x16-kc256", "avx2"], 144, 256, 4080, x86::sgemm_avx2::<6>);

/// Zen 4 / Sapphire Rapids (≥ 1 MiB L2 per core): a 168×256 A block is 168 KiB of L2.
#[cfg(target_arch = "x86_64")]
const SGEMM_AVX512: Kernel<f32> =
    Kernel::new::<14, 32>(["avx512-14x32-kc256", "avx512"], 168, 256, 4096, x86::sgemm_avx512::<14>)
        .with_edge(x86::sgemm_avx512_edge::<14>);

/// The same micro-kernel on half the depth (a 128×32 B micro-panel is 16 KiB, a third of Zen 4's
/// L1d) and twice the rows of A per block: on a CPU whose 512-bit units run at a lower clock or
/// a narrower datapath, the AVX-512 kernel may lose to the AVX2 one, and the blocks may matter
/// more than the width (Zen 4 measured the two widths level, `sgemm` 1024³).
#[cfg(target_arch = "x86_64")]
const SGEMM_AVX512_KC128: Kernel<f32> =
    Kernel::new::<14, 32>(["avx512-14x32-kc128", "avx512"], 336, 128, 4096, x86::sgemm_avx512::<14>)
        .with_edge(x86::sgemm_avx512_edge::<14>);

/// Every f32 kernel of this file, plainest first, whether or not this CPU runs it.
fn f32_kernels_everywhere() -> Vec<Kernel<f32>> {
    #[cfg(target_arch = "x86_64")]
    return vec![SGEMM_PORTABLE, SGEMM_AVX2_KC256, SGEMM_AVX2, SGEMM_AVX512_KC128, SGEMM_AVX512];
    #[cfg(not(target_arch = "x86_64"))]
    return vec![SGEMM_PORTABLE];
}

/// Whether this CPU has the kernel's instruction set (the feature checks are cached by std).
fn runs_here(kernel: &Kernel<f32>) -> bool {
    #[cfg(target_arch = "x86_64")]
    match kernel.instruction_set {
        "avx2" => return is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
        "avx512" => return is_x86_feature_detected!("avx512f"),
        _ => {}
    }
    kernel.instruction_set == "portable"
}

/// The f32 kernel `name`, if this CPU runs it.
fn f32_kernel_runnable_here(name: &str) -> Option<Kernel<f32>> {
    f32_kernels_everywhere().into_iter().find(|k| k.name == name).filter(runs_here)
}

/// The f32 kernel by the rule: the widest instruction set this CPU has, with the blocks set for
/// the CPU that kernel was tuned on.
fn f32_kernel_by_rule() -> Kernel<f32> {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            return SGEMM_AVX512;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return SGEMM_AVX2;
        }
    }
    SGEMM_PORTABLE
}

// ------------------------------------------------------------------ which f32 kernel runs

/// How the f32 kernel that [`gemm`] runs was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelChoice {
    /// The widest instruction set this CPU has (nothing chosen in this process).
    Rule,
    /// Named by the caller (`train --cpu-gemm`).
    Pinned,
    /// Timed against the others on this machine (`cpu::tuning`).
    Measured,
    /// The kernel another run ran, replayed with its other choices (`cpu::tuning::replay`).
    Replayed,
}

impl KernelChoice {
    /// The word provenance.json gives it (`measured`).
    pub fn name(self) -> &'static str {
        match self {
            KernelChoice::Rule => "rule",
            KernelChoice::Pinned => "pinned",
            KernelChoice::Measured => "measured",
            KernelChoice::Replayed => "replayed",
        }
    }
}

/// The f32 kernel chosen for this process, once chosen: set once, before the work, so that
/// every product of a run runs on one kernel (same kernels, same bits), and read without a
/// lock on every call.
static F32_KERNEL: OnceLock<(Kernel<f32>, KernelChoice)> = OnceLock::new();

/// The names of the f32 kernels this CPU runs, plainest first: the candidates a measurement
/// times, and the values `train --cpu-gemm` takes here.
pub fn f32_kernel_names() -> Vec<&'static str> {
    f32_kernels_everywhere().into_iter().filter(runs_here).map(|k| k.name).collect()
}

/// Whether `name` names an f32 kernel of this file, on this CPU or another (a cache may hold
/// the choice of another machine).
pub fn is_f32_kernel_name(name: &str) -> bool {
    f32_kernels_everywhere().iter().any(|k| k.name == name)
}

/// Makes the kernel `name` the one every f32 [`gemm`] of this process runs. Refused, with a
/// message naming what runs here, for a name this file does not have, a kernel this CPU cannot
/// run, or after another kernel was chosen (a run keeps one kernel throughout).
pub fn choose_f32_kernel(name: &str, how: KernelChoice) -> Result<(), String> {
    let runnable = || f32_kernel_names().join(", ");
    let Some(kernel) = f32_kernels_everywhere().into_iter().find(|k| k.name == name) else {
        return Err(format!("no f32 GEMM kernel is called {name:?}; this CPU runs {}", runnable()));
    };
    if !runs_here(&kernel) {
        return Err(format!(
            "this CPU cannot run the {name} GEMM kernel (no {}); it runs {}",
            kernel.instruction_set,
            runnable()
        ));
    }
    let (chosen, _) = F32_KERNEL.get_or_init(|| (kernel, how));
    if chosen.name != name {
        return Err(format!("the f32 GEMM kernel is already {} for this process; {name} comes too late", chosen.name));
    }
    Ok(())
}

/// The f32 kernel every [`gemm`] runs: the chosen one, else the rule's.
fn f32_kernel() -> Kernel<f32> {
    F32_KERNEL.get().map_or_else(f32_kernel_by_rule, |(kernel, _)| *kernel)
}

/// The instruction set of the f32 kernel [`gemm`] runs (`avx512`, `avx2`, `portable`): the
/// convolutions' own micro-kernels (`cpu::indirect`) follow it, so that a pinned or replayed
/// kernel pins theirs too.
pub(crate) fn f32_instruction_set() -> &'static str {
    f32_kernel().instruction_set
}

/// The f32 kernel [`gemm`] runs, and how it was chosen.
pub fn f32_kernel_in_use() -> (&'static str, KernelChoice) {
    F32_KERNEL.get().map_or((f32_kernel_by_rule().name, KernelChoice::Rule), |(kernel, how)| (kernel.name, *how))
}

/// The kernel [`gemm`] runs for element type `T`, by name.
pub fn kernel_name<T: Float>() -> &'static str {
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        f32_kernel().name
    } else {
        DGEMM_PORTABLE.name
    }
}

/// The f32 kernel this CPU runs, by name (`avx2-6x16-kc512`: instruction set, MR×NR tile,
/// block depth): the "kernel path" every CPU timing names.
pub fn f32_kernel_path() -> String {
    kernel_name::<f32>().to_string()
}

/// An f32 [`gemm`] on the kernel `name` (one of [`f32_kernel_names`]), whatever the process
/// chose: for the benchmarks that compare kernels and blockings side by side. `None` (and C
/// untouched) for a kernel this CPU does not run.
pub fn gemm_on_f32_kernel(
    name: &str,
    a: MatRef<f32>,
    b: MatRef<f32>,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) -> Option<()> {
    let kernel = f32_kernel_runnable_here(name)?;
    check_operands(a, b, c, ldc);
    if a.rows > 0 && b.cols > 0 {
        gemm_blocked(&kernel, a, b, c, ldc, accumulate, rayon::current_num_threads());
    }
    Some(())
}

/// A micro-kernel on its own. For the benchmark that times an f32 kernel on panels small
/// enough to stay in cache ([`MicroKernel::of_f32_kernel`]): the ceiling the packing and the
/// loops around it approach; everything [`gemm`] adds (packing A and B, walking the blocks,
/// threads) is the difference between that and a whole product. And for a caller whose
/// operands already lie in memory as packed panels, in a layout with the channels in blocks of
/// MR and NR innermost (`cpu::phase_grid`'s weight gradient), the kernel [`gemm`] runs now
/// (`MicroKernel::in_use`): no packing and no blocking, one tile per call.
#[derive(Clone, Copy)]
pub struct MicroKernel<T = f32> {
    /// The tile it computes, [MR, NR].
    pub tile: [usize; 2],
    /// The depth its kernel packs panels to (KC): a B panel of that depth sits in L1.
    pub kc: usize,
    run: unsafe fn(usize, *const T, *const T, *mut T, usize, bool),
}

impl MicroKernel<f32> {
    /// The micro-kernel of the f32 kernel `name`; `None` for a kernel this CPU does not run.
    pub fn of_f32_kernel(name: &str) -> Option<MicroKernel> {
        let kernel = f32_kernel_runnable_here(name)?;
        Some(MicroKernel { tile: [kernel.mr, kernel.nr], kc: kernel.kc, run: kernel.run })
    }

    /// `tile = a_panel · b_panel` over depth `kc`: `a_panel` holds kc columns of MR values (column
    /// p is `a_panel[p*MR .. p*MR + MR]`), `b_panel` kc rows of NR, `tile` is [MR, NR], row-major.
    ///
    /// # Panics
    /// If a slice is shorter than that.
    pub fn run(&self, kc: usize, a_panel: &[f32], b_panel: &[f32], tile: &mut [f32]) {
        let [mr, nr] = self.tile;
        assert!(
            a_panel.len() >= kc * mr && b_panel.len() >= kc * nr && tile.len() >= mr * nr,
            "a {mr}×{nr} micro-kernel at depth {kc} needs an A panel of {}, a B panel of {} and a tile of {} \
             values; got {}, {} and {}",
            kc * mr,
            kc * nr,
            mr * nr,
            a_panel.len(),
            b_panel.len(),
            tile.len()
        );
        // SAFETY: the panels hold kc·MR and kc·NR values and the tile MR·NR (asserted above), and
        // the kernel's instruction set runs on this CPU (`of_f32_kernel` checked).
        unsafe { (self.run)(kc, a_panel.as_ptr(), b_panel.as_ptr(), tile.as_mut_ptr(), nr, false) };
    }
}

impl<T: Float> MicroKernel<T> {
    /// The kernel every [`gemm`] on `T` runs now.
    pub(crate) fn in_use() -> MicroKernel<T> {
        let f32_kernel = f32_kernel();
        let kernel = (&f32_kernel as &dyn std::any::Any)
            .downcast_ref::<Kernel<T>>()
            .or_else(|| (&DGEMM_PORTABLE as &dyn std::any::Any).downcast_ref::<Kernel<T>>())
            .expect("Float is implemented for f32 and f64 only");
        MicroKernel { tile: [kernel.mr, kernel.nr], kc: kernel.kc, run: kernel.run }
    }

    /// `tile += a_panel · b_panel` over depth `kc`: `a_panel` holds kc columns of MR values,
    /// `b_panel` kc rows of NR, and the tile's MR rows of NR lie `ldc` apart.
    ///
    /// # Panics
    /// If a slice is shorter than that.
    #[inline]
    pub(crate) fn accumulate(&self, kc: usize, a_panel: &[T], b_panel: &[T], tile: &mut [T], ldc: usize) {
        let [mr, nr] = self.tile;
        assert!(
            a_panel.len() >= kc * mr && b_panel.len() >= kc * nr && nr <= ldc && tile.len() >= (mr - 1) * ldc + nr,
            "an {mr}×{nr} tile at depth {kc} with rows {ldc} apart: panels of {} and {} and a tile of {} values are \
             too short",
            a_panel.len(),
            b_panel.len(),
            tile.len()
        );
        // SAFETY: the panels and the tile hold what the kernel reads and writes (asserted
        // above), and `in_use` took a kernel this CPU runs.
        unsafe { (self.run)(kc, a_panel.as_ptr(), b_panel.as_ptr(), tile.as_mut_ptr(), ldc, true) };
    }
}

/// How long each f32 kernel of `names` takes on three products shaped like a training step's
/// (an im2col forward, a weight gradient, a square product; about 0.7 GFLOP in all), summed: the
/// median of nine rounds after a warm-up round, each round timing every kernel once in turn, so
/// that a machine's drift while it measures reaches every kernel alike. `None` if this CPU does
/// not run one of them.
pub(crate) fn time_f32_kernels(names: &[&str]) -> Option<Vec<std::time::Duration>> {
    const ROUNDS: usize = 9;
    // Looked up once, so that the timed runs hold nothing but the products.
    let kernels: Vec<Kernel<f32>> = names.iter().map(|&name| f32_kernel_runnable_here(name)).collect::<Option<_>>()?;
    let mut rng = crate::rng::Rng::new(0);
    let products: Vec<(Vec<f32>, Vec<f32>, [usize; 3])> = [[64, 576, 4096], [576, 2048, 128], [384, 384, 384]]
        .into_iter()
        .map(|[m, k, n]| {
            let a = (0..m * k).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
            let b = (0..k * n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
            (a, b, [m, k, n])
        })
        .collect();
    let mut c = vec![0.0f32; products.iter().map(|(_, _, [m, _, n])| m * n).max().unwrap_or(0)];
    let mut run = |kernel: &Kernel<f32>| {
        let start = std::time::Instant::now();
        for (a, b, [m, k, n]) in &products {
            gemm_blocked(
                kernel,
                MatRef::row_major(a, *m, *k),
                MatRef::row_major(b, *k, *n),
                &mut c,
                *n,
                false,
                rayon::current_num_threads(),
            );
        }
        start.elapsed()
    };
    let timed = descriptors::choices::median_times_taking_turns(kernels.len(), ROUNDS, false, |i| {
        Ok::<_, std::convert::Infallible>(run(&kernels[i]))
    });
    match timed {
        Ok(times) => Some(times),
        Err(never) => match never {},
    }
}

/// Portable MR×NR micro-kernel: the accumulator tile is a local array small enough for LLVM to
/// keep in (SSE/NEON) registers and vectorise along NR.
///
/// # Safety
/// `a` must hold `kc*MR` and `b` `kc*NR` readable elements; `c` must be valid for reads and writes
/// of the MR×NR tile with row stride `ldc`.
unsafe fn kernel_portable<T: Float, const MR: usize, const NR: usize>(
    kc: usize,
    a: *const T,
    b: *const T,
    c: *mut T,
    ldc: usize,
    accumulate: bool,
) {
    // SAFETY: the caller guarantees both packed panels are this long.
    let (a, b) = unsafe { (std::slice::from_raw_parts(a, kc * MR), std::slice::from_raw_parts(b, kc * NR)) };
    let mut acc = [[T::ZERO; NR]; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for i in 0..MR {
            for j in 0..NR {
                acc[i][j] += ap[i] * bp[j];
            }
        }
    }
    for (i, acc_row) in acc.iter().enumerate() {
        // SAFETY: the caller guarantees the MR×NR tile at `c` with row stride `ldc` is writable.
        let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), NR) };
        for (cj, &v) in row.iter_mut().zip(acc_row) {
            *cj = if accumulate { *cj + v } else { v };
        }
    }
}

/// The x86-64 SIMD micro-kernels. Both are the same algorithm at two vector widths: the
/// accumulator tile is MR rows × 2 vectors, each step of p loads two B vectors, broadcasts MR
/// elements of A and issues 2·MR FMAs.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// MR×16 f32 tile with AVX2+FMA (8 lanes): 2·MR accumulators + 2 B vectors + 1 broadcast;
    /// MR = 6 uses 15 of the 16 ymm registers.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; pointers as for [`super::Kernel`] with NR = 16.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sgemm_avx2<const MR: usize>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        // Warm the C tile while the FMAs run: it is read (or written) only after the k loop.
        for i in 0..MR {
            // SAFETY: prefetching is a hint and never faults; the addresses lie inside the C tile.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc).cast::<i8>());
                _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + 15).cast::<i8>());
            }
        }
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for p in 0..kc {
            // SAFETY: the packed B panel holds kc rows of 16 floats and the A panel kc columns
            // of MR floats (caller contract).
            let (b0, b1) = unsafe { (_mm256_loadu_ps(b.add(p * 16)), _mm256_loadu_ps(b.add(p * 16 + 8))) };
            for (i, acc_i) in acc.iter_mut().enumerate() {
                // SAFETY: as above, p*MR + i < kc*MR.
                let ai = unsafe { _mm256_broadcast_ss(&*a.add(p * MR + i)) };
                acc_i[0] = _mm256_fmadd_ps(ai, b0, acc_i[0]);
                acc_i[1] = _mm256_fmadd_ps(ai, b1, acc_i[1]);
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            // SAFETY: the caller guarantees the MR×16 tile at `c` with row stride `ldc` is valid.
            unsafe {
                let row = c.add(i * ldc);
                let (mut c0, mut c1) = (acc_i[0], acc_i[1]);
                if accumulate {
                    c0 = _mm256_add_ps(c0, _mm256_loadu_ps(row));
                    c1 = _mm256_add_ps(c1, _mm256_loadu_ps(row.add(8)));
                }
                _mm256_storeu_ps(row, c0);
                _mm256_storeu_ps(row.add(8), c1);
            }
        }
    }

    /// MR×32 f32 tile with AVX-512F (16 lanes): 2·MR accumulators + 2 B vectors + 1 broadcast;
    /// MR = 14 uses 31 of the 32 zmm registers.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; pointers as for [`super::Kernel`] with NR = 32.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sgemm_avx512<const MR: usize>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        for i in 0..MR {
            // SAFETY: prefetching is a hint and never faults; the addresses lie inside the C tile.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc).cast::<i8>());
                _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + 31).cast::<i8>());
            }
        }
        // SAFETY: the whole MR×32 tile, every column of it (caller contract).
        unsafe { tile_rows::<MR, MR>([u16::MAX; 2], kc, a, b, c, ldc, accumulate) }
    }

    /// [`sgemm_avx512`] on the first `rows` (≤ MR) rows and `cols` (≤ 32) columns of its tile,
    /// written straight into C: the last rows of a product whose m is not a multiple of MR (a
    /// batch of 128 is nine tiles of 14 and one of 2), and the last columns of one whose n is
    /// not a multiple of 32. Through scratch, such a tile cost as much as a whole one, plus the
    /// copy; here its multiply-adds are `rows`/MR of a whole tile's, and masked loads and stores
    /// keep it inside C. Each value is summed in the same order as in the whole tile, so the
    /// bits are the same.
    ///
    /// # Safety
    /// As for [`sgemm_avx512`], with `rows` rows of `cols` values at `c` valid.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn sgemm_avx512_edge<const MR: usize>(
        rows: usize,
        cols: usize,
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        assert!(rows <= MR && cols <= 32, "an edge of a {MR}×32 tile, not {rows}×{cols}");
        let low = |n: usize| ((1u32 << n.min(16)) - 1) as __mmask16;
        let masks = [low(cols), low(cols.saturating_sub(16))];
        // SAFETY (every arm): ROWS ≤ rows ≤ MR, so the A panel's columns hold ROWS values; the
        // rest is the caller's contract.
        unsafe {
            match rows {
                1 => tile_rows::<MR, 1>(masks, kc, a, b, c, ldc, accumulate),
                2 => tile_rows::<MR, 2>(masks, kc, a, b, c, ldc, accumulate),
                3 => tile_rows::<MR, 3>(masks, kc, a, b, c, ldc, accumulate),
                4 => tile_rows::<MR, 4>(masks, kc, a, b, c, ldc, accumulate),
                5 => tile_rows::<MR, 5>(masks, kc, a, b, c, ldc, accumulate),
                6 => tile_rows::<MR, 6>(masks, kc, a, b, c, ldc, accumulate),
                7 => tile_rows::<MR, 7>(masks, kc, a, b, c, ldc, accumulate),
                8 => tile_rows::<MR, 8>(masks, kc, a, b, c, ldc, accumulate),
                9 => tile_rows::<MR, 9>(masks, kc, a, b, c, ldc, accumulate),
                10 => tile_rows::<MR, 10>(masks, kc, a, b, c, ldc, accumulate),
                11 => tile_rows::<MR, 11>(masks, kc, a, b, c, ldc, accumulate),
                12 => tile_rows::<MR, 12>(masks, kc, a, b, c, ldc, accumulate),
                13 => tile_rows::<MR, 13>(masks, kc, a, b, c, ldc, accumulate),
                14 => tile_rows::<MR, 14>(masks, kc, a, b, c, ldc, accumulate),
                _ => unreachable!("the AVX-512 tile has 14 rows"),
            }
        }
    }

    /// The first ROWS rows of an MR×32 tile, a number known at compile time so that the
    /// accumulators stay in registers: the whole tile ([`sgemm_avx512`]) or an edge
    /// ([`sgemm_avx512_edge`]). `masks` select the columns of each half of the rows (all of
    /// them in a whole tile, where a masked store runs as fast as a plain one).
    ///
    /// # Safety
    /// As for [`sgemm_avx512_edge`] with `rows` = ROWS ≤ MR and the columns its masks select.
    #[target_feature(enable = "avx512f")]
    unsafe fn tile_rows<const MR: usize, const ROWS: usize>(
        masks: [__mmask16; 2],
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
        for p in 0..kc {
            // SAFETY: the packed B panel holds kc rows of 32 floats (zeros past the edge) and
            // the A panel kc columns of MR floats, of which the first ROWS are read.
            let (b0, b1) = unsafe { (_mm512_loadu_ps(b.add(p * 32)), _mm512_loadu_ps(b.add(p * 32 + 16))) };
            for (i, acc_i) in acc.iter_mut().enumerate() {
                // SAFETY: as above, p*MR + i < kc*MR.
                let ai = _mm512_set1_ps(unsafe { *a.add(p * MR + i) });
                acc_i[0] = _mm512_fmadd_ps(ai, b0, acc_i[0]);
                acc_i[1] = _mm512_fmadd_ps(ai, b1, acc_i[1]);
            }
        }
        for (i, acc_i) in acc.iter().enumerate() {
            // Wrapping: with `cols` ≤ 16 the second half's address may lie past C's end. Its
            // mask is empty then, and a masked load or store touches no element it leaves out.
            let halves = [c.wrapping_add(i * ldc), c.wrapping_add(i * ldc + 16)];
            for ((&half, &mask), &sum) in halves.iter().zip(&masks).zip(acc_i) {
                // SAFETY: the masked elements are row i's first `cols` values (caller contract).
                unsafe {
                    let value = if accumulate { _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask, half)) } else { sum };
                    _mm512_mask_storeu_ps(half, mask, value);
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------ driver

/// Below this many multiply-adds (m·n·k, a few microseconds of work) a GEMM runs on the calling
/// thread: waking the rayon workers costs more than it saves.
const PARALLEL_MIN_WORK: usize = 1 << 18;

/// At most this many MR×NR tiles of C per thread, and a k at least `SPLIT_K_MIN_PASSES` blocks
/// deep, make a product "thin": see [`gemm_split_k`].
const SPLIT_K_MAX_TILES_PER_THREAD: usize = 16;
const SPLIT_K_MIN_PASSES: usize = 4;

/// Below this many multiply-adds per thread in one pass over k (m·n·KC / threads, a few
/// milliseconds), forking the pool for every pass costs more than sharing one packed B block
/// saves: see [`gemm_partitioned`]. (Small Linear layers gain, large products are the same
/// either way: `cargo bench --bench linear_layers` and `--bench gemm`, docs/notebooks/performance.md.)
const SHARED_PASS_MIN_WORK_PER_THREAD: usize = 1 << 26;

/// How a product is spread over the threads.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Plan {
    /// On the calling thread: too little work to wake the pool.
    Serial,
    /// Few tiles of C, long k: each thread takes a slice of k ([`gemm_split_k`]).
    SplitK,
    /// One piece of C per thread, each running the serial loops ([`gemm_partitioned`]).
    Partitioned,
    /// Threads share each packed B block and split its tiles, one fork per pass over k.
    SharedPasses,
}

impl Plan {
    fn choose<T>(kern: &Kernel<T>, m: usize, k: usize, n: usize, threads: usize) -> Plan {
        let work = m.saturating_mul(n).saturating_mul(k);
        if threads == 1 || work < PARALLEL_MIN_WORK {
            return Plan::Serial;
        }
        let tiles = m.div_ceil(kern.mr) * n.div_ceil(kern.nr);
        if tiles <= SPLIT_K_MAX_TILES_PER_THREAD * threads && k >= SPLIT_K_MIN_PASSES * kern.kc * threads {
            return Plan::SplitK;
        }
        let pass_work = m.saturating_mul(n).saturating_mul(even_block(k, kern.kc, 1));
        if pass_work / threads < SHARED_PASS_MIN_WORK_PER_THREAD {
            Plan::Partitioned
        } else {
            Plan::SharedPasses
        }
    }
}

/// Runs the blocked loops around `kern` (see the module docs), on up to `threads` of the
/// rayon pool when the product is large enough.
fn gemm_blocked<T: Float>(
    kern: &Kernel<T>,
    a: MatRef<T>,
    b: MatRef<T>,
    c: &mut [T],
    ldc: usize,
    accumulate: bool,
    threads: usize,
) {
    let plan = Plan::choose(kern, a.rows, a.cols, b.cols, threads);
    gemm_planned(plan, kern, a, b.cols, &stored(kern, b), c, ldc, accumulate, threads);
}

/// Runs the product with a B of `n` columns whose panels `pack_b` writes on `threads` threads,
/// the way `plan` says.
#[allow(clippy::too_many_arguments)]
fn gemm_planned<T: Float>(
    plan: Plan,
    kern: &Kernel<T>,
    a: MatRef<T>,
    n: usize,
    pack_b: PackB<T>,
    c: &mut [T],
    ldc: usize,
    accumulate: bool,
    threads: usize,
) {
    let c_out = SharedOut(c.as_mut_ptr());
    match plan {
        // SAFETY: `c` is the caller's exclusive [m, n] matrix (gemm checked its length).
        Plan::Serial => unsafe { gemm_blocked_on(kern, APanels::Pack(a), n, pack_b, c_out, ldc, accumulate, 1) },
        Plan::SplitK => gemm_split_k(kern, a, n, pack_b, c, ldc, accumulate, threads),
        Plan::Partitioned => gemm_partitioned(kern, a, n, pack_b, c, ldc, accumulate, threads),
        // SAFETY: as above.
        Plan::SharedPasses => unsafe {
            gemm_blocked_on(kern, APanels::Pack(a), n, pack_b, c_out, ldc, accumulate, threads)
        },
    }
}

/// A thin product with a long inner dimension (a Linear layer's x·Wᵀ with 8,192 inputs and 32
/// outputs for a batch of 64): its C has too few tiles to keep the threads busy, and every
/// pass over k would fork and join the pool for microseconds of work. Instead each thread
/// multiplies its own slice of k, serially, into a private C, and the partial products are
/// added in slice order (so the result does not depend on scheduling).
#[allow(clippy::too_many_arguments)]
fn gemm_split_k<T: Float>(
    kern: &Kernel<T>,
    a: MatRef<T>,
    n: usize,
    pack_b: PackB<T>,
    c: &mut [T],
    ldc: usize,
    accumulate: bool,
    threads: usize,
) {
    let (m, k) = (a.rows, a.cols);
    // Slices of whole kc blocks, so each keeps the serial path's blocking.
    let slice = k.div_ceil(threads).div_ceil(kern.kc) * kern.kc;
    let partials: Vec<Vec<T>> = (0..k.div_ceil(slice))
        .into_par_iter()
        .map(|s| {
            let (k0, k1) = (s * slice, ((s + 1) * slice).min(k));
            // Columns k0..k1 of A, as a view, and rows k0..k1 of B.
            let a_s = MatRef { data: &a.data[k0 * a.col_stride..], cols: k1 - k0, ..a };
            let pack_b_s = |panel: BPanel, out: &mut [T]| pack_b(BPanel { p0: k0 + panel.p0, ..panel }, out);
            let mut partial = vec![T::ZERO; m * n];
            // SAFETY: `partial` is this task's own [m, n] matrix.
            unsafe {
                gemm_blocked_on(kern, APanels::Pack(a_s), n, &pack_b_s, SharedOut(partial.as_mut_ptr()), n, false, 1)
            };
            partial
        })
        .collect();
    for (i, row) in c.chunks_mut(ldc).take(m).enumerate() {
        for (j, out) in row[..n].iter_mut().enumerate() {
            let sum = partials.iter().fold(T::ZERO, |acc, p| acc + p[i * n + j]);
            *out = if accumulate { *out + sum } else { sum };
        }
    }
}

/// A product whose passes over k are too short to share between threads (each would fork and
/// join the pool for a fraction of a millisecond, and waking a sleeping worker costs tens of
/// microseconds): C is cut into one piece per thread, by rows or by columns, and each thread
/// runs the whole serial blocked loop on its piece, so the pool is forked once. The operand
/// that is not cut is packed by every thread: cutting rows repacks B (k·n) per thread, cutting
/// columns repacks A (m·k), so the cut goes across the larger of m and n.
#[allow(clippy::too_many_arguments)]
fn gemm_partitioned<T: Float>(
    kern: &Kernel<T>,
    a: MatRef<T>,
    n: usize,
    pack_b: PackB<T>,
    c: &mut [T],
    ldc: usize,
    accumulate: bool,
    threads: usize,
) {
    let m = a.rows;
    let (m_panels, n_panels) = (m.div_ceil(kern.mr), n.div_ceil(kern.nr));
    let by_rows = if m_panels >= threads && n_panels >= threads { m >= n } else { m_panels >= n_panels };
    let c_out = SharedOut(c.as_mut_ptr());
    let (panels, width) = if by_rows { (m_panels, kern.mr) } else { (n_panels, kern.nr) };
    split_even(panels, threads.min(panels)).into_par_iter().for_each(|piece| {
        let (start, end) = (piece.start * width, (piece.end * width).min(if by_rows { m } else { n }));
        // SAFETY (both arms): the pieces are disjoint row (or column) ranges of C, inside it.
        if by_rows {
            let a_rows = MatRef { data: &a.data[start * a.row_stride..], rows: end - start, ..a };
            unsafe {
                gemm_blocked_on(kern, APanels::Pack(a_rows), n, pack_b, c_out.offset(start * ldc), ldc, accumulate, 1)
            }
        } else {
            let pack_b_cols = |panel: BPanel, out: &mut [T]| pack_b(BPanel { j0: start + panel.j0, ..panel }, out);
            unsafe {
                gemm_blocked_on(
                    kern,
                    APanels::Pack(a),
                    end - start,
                    &pack_b_cols,
                    c_out.offset(start),
                    ldc,
                    accumulate,
                    1,
                )
            }
        }
    });
}

/// The blocked loops on `threads` threads (1: on the calling thread), for a B of `n` columns
/// whose panels `pack_b` writes (from a stored matrix: [`stored`]).
///
/// # Safety
/// `c` must point to an [m, n] matrix with row stride `ldc` that nothing else reads or writes
/// while this runs.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_blocked_on<T: Float>(
    kern: &Kernel<T>,
    a: APanels<T>,
    n: usize,
    pack_b: PackB<T>,
    c_out: SharedOut<T>,
    ldc: usize,
    accumulate: bool,
    threads: usize,
) {
    let (m, k) = a.shape();
    let (mr, nr) = (kern.mr, kern.nr);
    debug_assert!(kern.mc.is_multiple_of(mr) && kern.nc.is_multiple_of(nr) && mr * nr <= MAX_TILE);
    let parallel = threads > 1;
    // Blocks of near-equal size (4608 columns as 2×2304, not 4080 + 528): a thin last block
    // would pay the per-block overheads for little work.
    let (nc, kc) = (even_block(n, kern.nc, nr), even_block(k, kern.kc, 1));

    with_pack_buffer(&PACK_B, kc * nc, |bpack: &mut [T]| {
        for jc in (0..n).step_by(nc) {
            let ncb = nc.min(n - jc);
            let grid = Grid::new(m.div_ceil(mr), ncb.div_ceil(nr), kern.mc / mr, threads);
            for pc in (0..k).step_by(kc) {
                let kcb = kc.min(k - pc);
                // Later passes over k add onto what the first pass wrote.
                let beta = accumulate || pc > 0;

                // Pack B[pc..pc+kcb, jc..jc+ncb] as NR-wide panels, each kcb rows of NR.
                let bpack = &mut bpack[..ncb.div_ceil(nr) * kcb * nr];
                let pack_b_panel = |(jp, out): (usize, &mut [T])| {
                    let j0 = jc + jp * nr;
                    pack_b(BPanel { j0, cols: nr.min(n - j0), p0: pc, kc: kcb, nr }, out);
                };
                if parallel {
                    bpack.par_chunks_mut(kcb * nr).enumerate().with_min_len(4).for_each(pack_b_panel);
                } else {
                    bpack.chunks_mut(kcb * nr).enumerate().for_each(pack_b_panel);
                }
                let bpack = &*bpack;

                // Each task packs its own block of A (or finds it packed) and sweeps it against
                // its group of B panels.
                let tile = TileJob { kern, kcb, m, n, jc, ldc, beta };
                let task = |t: usize| {
                    let (ip, jp) = grid.task(t);
                    match a {
                        APanels::Pack(a) => with_pack_buffer(&PACK_A, ip.len() * kcb * mr, |apack: &mut [T]| {
                            for (panel, out) in ip.clone().zip(apack.chunks_exact_mut(kcb * mr)) {
                                let i0 = panel * mr;
                                (kern.pack_a)(a, i0, mr.min(m - i0), pc, kcb, out);
                            }
                            tile.run(apack, bpack, ip, jp, c_out);
                        }),
                        APanels::Packed(packed) => {
                            // The pass over k starting at pc holds m.div_ceil(mr) panels of kcb·mr.
                            let pass = &packed.panels[pc * m.div_ceil(mr) * mr..];
                            tile.run(&pass[ip.start * kcb * mr..ip.end * kcb * mr], bpack, ip, jp, c_out);
                        }
                    }
                };
                if parallel {
                    (0..grid.len()).into_par_iter().for_each(task);
                } else {
                    (0..grid.len()).for_each(task);
                }
            }
        }
    });
}

/// The size of the blocks that cut `total` into as few pieces of at most `max` as possible,
/// as evenly as possible, rounded up to a multiple of `align` (which divides `max`).
fn even_block(total: usize, max: usize, align: usize) -> usize {
    total.div_ceil(total.div_ceil(max)).next_multiple_of(align)
}

/// The raw pointer to an output shared by the tasks that fill it: C, for the tasks of one
/// GEMM; y, for the blocks of `cpu::upsampled_conv`.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut<T>(pub(crate) *mut T);

// SAFETY: the tasks that share a `SharedOut` write disjoint parts of the output (a GEMM's row
// blocks or column groups, see `Grid`; the upsampled convolution's rows), and the caller holds
// the only `&mut` to it meanwhile.
unsafe impl<T: Send> Send for SharedOut<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    // A method, so closures capture the whole (Send) wrapper instead of its raw-pointer field.
    fn ptr(self) -> *mut T {
        self.0
    }

    /// `len` elements from `offset` on, as a slice.
    ///
    /// # Safety
    /// They must lie within the output, and no other task may touch them while it lives.
    #[allow(clippy::mut_from_ref)] // disjoint parts: the caller's promise
    pub(crate) unsafe fn slice<'a>(self, offset: usize, len: usize) -> &'a mut [T] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(offset), len) }
    }

    /// The pointer `count` elements further on.
    ///
    /// # Safety
    /// As for `pointer::add`: the result must lie inside the same matrix.
    unsafe fn offset(self, count: usize) -> Self {
        // SAFETY: the caller's contract.
        SharedOut(unsafe { self.0.add(count) })
    }
}

/// The tasks of one (jc) block: a grid of row blocks (ranges of MR-panels of A) × column groups
/// (ranges of NR-panels of B). Rows are split first, into at least as many blocks as threads
/// (and no bigger than MC); columns are split only when there are too few rows to go around.
struct Grid {
    row_blocks: Vec<Range<usize>>,
    col_groups: Vec<Range<usize>>,
}

impl Grid {
    fn new(m_panels: usize, n_panels: usize, mc_panels: usize, threads: usize) -> Grid {
        let mut blocks = m_panels.div_ceil(mc_panels.max(1));
        let mut groups = 1;
        if threads > 1 {
            if blocks >= threads || m_panels >= 4 * threads {
                // A whole number of blocks per thread keeps the threads evenly loaded.
                blocks = blocks.next_multiple_of(threads).min(m_panels);
            } else {
                groups = threads.div_ceil(blocks).min(n_panels);
            }
        }
        Grid { row_blocks: split_even(m_panels, blocks), col_groups: split_even(n_panels, groups) }
    }

    fn len(&self) -> usize {
        self.row_blocks.len() * self.col_groups.len()
    }

    /// The A panels and B panels of task `t`.
    fn task(&self, t: usize) -> (Range<usize>, Range<usize>) {
        let g = self.col_groups.len();
        (self.row_blocks[t / g].clone(), self.col_groups[t % g].clone())
    }
}

/// `0..total` cut into `parts` contiguous ranges whose lengths differ by at most one.
fn split_even(total: usize, parts: usize) -> Vec<Range<usize>> {
    (0..parts).map(|i| i * total / parts..(i + 1) * total / parts).collect()
}

/// What one task needs to run the micro-kernel over its tiles.
struct TileJob<'k, T> {
    kern: &'k Kernel<T>,
    kcb: usize,
    m: usize,
    n: usize,
    jc: usize,
    ldc: usize,
    beta: bool,
}

impl<T: Float> TileJob<'_, T> {
    /// The two innermost loops: for each B panel in `jp` (kept in L1), run the micro-kernel
    /// against each A panel in `ip` (streamed from L2). `apack` holds the panels of `ip` in order;
    /// `bpack` all panels of the jc block.
    fn run(&self, apack: &[T], bpack: &[T], ip: Range<usize>, jp: Range<usize>, c: SharedOut<T>) {
        let TileJob { kern, kcb, m, n, jc, ldc, beta } = *self;
        let (mr, nr) = (kern.mr, kern.nr);
        for jpanel in jp {
            let j0 = jc + jpanel * nr;
            let nr_valid = nr.min(n - j0);
            let b_panel = &bpack[jpanel * kcb * nr..(jpanel + 1) * kcb * nr];
            for (ipanel, a_panel) in ip.clone().zip(apack.chunks_exact(kcb * mr)) {
                let i0 = ipanel * mr;
                let mr_valid = mr.min(m - i0);
                if mr_valid == mr && nr_valid == nr {
                    // SAFETY: the packed panels hold kcb·mr and kcb·nr elements. The full tile
                    // C[i0..i0+mr, j0..j0+nr] lies inside C (gemm checked c.len() ≥ (m-1)·ldc + n)
                    // and no other task writes it (see `Grid`).
                    unsafe {
                        (kern.run)(kcb, a_panel.as_ptr(), b_panel.as_ptr(), c.ptr().add(i0 * ldc + j0), ldc, beta)
                    };
                } else if let Some(run_edge) = kern.run_edge {
                    // SAFETY: as above, for the mr_valid×nr_valid part of the tile inside C.
                    unsafe {
                        run_edge(
                            mr_valid,
                            nr_valid,
                            kcb,
                            a_panel.as_ptr(),
                            b_panel.as_ptr(),
                            c.ptr().add(i0 * ldc + j0),
                            ldc,
                            beta,
                        )
                    };
                } else {
                    // Edge tile: compute it whole into scratch, write back the part inside C.
                    let mut tile = [T::ZERO; MAX_TILE];
                    // SAFETY: the packed panels hold kcb·mr and kcb·nr elements; `tile` holds the
                    // mr×nr ≤ MAX_TILE results with row stride nr.
                    unsafe { (kern.run)(kcb, a_panel.as_ptr(), b_panel.as_ptr(), tile.as_mut_ptr(), nr, false) };
                    for (i, t_row) in tile.chunks_exact(nr).take(mr_valid).enumerate() {
                        // SAFETY: row i0+i < m and columns j0..j0+nr_valid ≤ n lie inside C,
                        // and no other task writes them (see `Grid`).
                        let c_row =
                            unsafe { std::slice::from_raw_parts_mut(c.ptr().add((i0 + i) * ldc + j0), nr_valid) };
                        for (cj, &v) in c_row.iter_mut().zip(t_row) {
                            *cj = if beta { *cj + v } else { v };
                        }
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------ packing

/// Packs the `rows`×`kc` sub-matrix of `src` at (r0, c0) into `out` column by column: column p
/// becomes `out[p*W .. p*W + W]`, with rows ≥ `rows` zero-filled. An A panel is packed with
/// `src = a` and W = MR; a B panel is the same thing on the transpose, `src = b.t()`, W = NR.
/// W is a constant so that whole packed columns are fixed-size copies (a memcpy call per
/// 16-float column would cost more than the copy).
fn pack_panel<T: Float, const W: usize>(src: MatRef<T>, r0: usize, rows: usize, c0: usize, kc: usize, out: &mut [T]) {
    let (rs, cs) = (src.row_stride, src.col_stride);
    let (out, _) = out[..kc * W].as_chunks_mut::<W>();
    if rows < W {
        out.iter_mut().for_each(|col| *col = [T::ZERO; W]);
    }
    if rs == 1 {
        // Each packed column is contiguous in the source (B row-major, A column-major).
        for (p, dst) in out.iter_mut().enumerate() {
            let col = &src.data[r0 + (c0 + p) * cs..][..rows];
            match <&[T; W]>::try_from(col) {
                Ok(full) => *dst = *full,
                Err(_) => dst[..rows].copy_from_slice(col),
            }
        }
    } else if cs == 1 {
        // Each source row is contiguous along k (A row-major, B transposed). Copy a cache line
        // (16 f32) of each of the rows at a time, then write the block out transposed. Walking
        // the rows in lockstep one element at a time would touch W lines per packed column, and
        // when the rows lie a multiple of 4 KiB apart (k = 4096) those lines share one L1 set
        // and evict each other before their next element is read. Rows past `rows` stay zero.
        let src_rows: [&[T]; W] =
            std::array::from_fn(|i| if i < rows { &src.data[(r0 + i) * rs + c0..][..kc] } else { &[] });
        let mut block = [[T::ZERO; PACK_CHUNK]; W];
        for (chunk, dst) in out.chunks_mut(PACK_CHUNK).enumerate() {
            let p0 = chunk * PACK_CHUNK;
            for (b, row) in block.iter_mut().zip(&src_rows).take(rows) {
                let part = &row[p0..p0 + dst.len()];
                match <&[T; PACK_CHUNK]>::try_from(part) {
                    Ok(full) => *b = *full,
                    Err(_) => b[..part.len()].copy_from_slice(part),
                }
            }
            write_transposed(&block, dst);
        }
    } else {
        for (p, dst) in out.iter_mut().enumerate() {
            for (i, d) in dst[..rows].iter_mut().enumerate() {
                *d = src.data[(r0 + i) * rs + (c0 + p) * cs];
            }
        }
    }
}

/// Columns of a transposing [`pack_panel`] block: one cache line of f32.
const PACK_CHUNK: usize = 16;

/// dst\[q\]\[d\] = block\[d\]\[q\] for every packed column q of `dst` (at most [`PACK_CHUNK`]):
/// the block's rows become the packed columns' entries. f32 on x86-64 goes four rows and four
/// columns at a time through SSE ([`transpose_sse`]); LLVM leaves this loop scalar, a load
/// and a store per element, and it was most of the packing time of the products that
/// backward-weight runs (`cargo bench --bench conv_layers`).
#[inline]
fn write_transposed<T: Float, const W: usize>(block: &[[T; PACK_CHUNK]; W], dst: &mut [[T; W]]) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(from), Some(to)) =
        (same_type_slice::<T, f32>(block.as_flattened()), same_type_slice_mut::<T, f32>(dst.as_flattened_mut()))
    {
        return transpose_sse::write_transposed(from, W, to);
    }
    write_transposed_plain(block, dst);
}

/// [`write_transposed`] element by element: the definition the SSE path is tested against.
fn write_transposed_plain<T: Float, const W: usize>(block: &[[T; PACK_CHUNK]; W], dst: &mut [[T; W]]) {
    for (q, column) in dst.iter_mut().enumerate() {
        for (d, b) in column.iter_mut().zip(block) {
            *d = b[q];
        }
    }
}

/// 4×4 transposes with SSE (part of every x86-64 CPU, so no feature check).
#[cfg(target_arch = "x86_64")]
pub(crate) mod transpose_sse {
    use super::PACK_CHUNK;
    use std::arch::x86_64::*;

    /// Four rows of four f32 in, their four columns out: column j of `rows` is row j of the
    /// result. The one 4×4 transpose every packing path here goes through.
    #[inline(always)]
    pub(crate) fn transpose4([r0, r1, r2, r3]: [__m128; 4]) -> [__m128; 4] {
        // SAFETY: SSE is part of x86-64; these touch registers only.
        unsafe {
            let (lo01, lo23) = (_mm_unpacklo_ps(r0, r1), _mm_unpacklo_ps(r2, r3));
            let (hi01, hi23) = (_mm_unpackhi_ps(r0, r1), _mm_unpackhi_ps(r2, r3));
            [_mm_movelh_ps(lo01, lo23), _mm_movehl_ps(lo23, lo01), _mm_movelh_ps(hi01, hi23), _mm_movehl_ps(hi23, hi01)]
        }
    }

    /// `block`: `w` rows of [`PACK_CHUNK`] f32; `dst`: packed columns of `w` f32, as many as
    /// fit (at most `PACK_CHUNK`). dst\[q·w + d\] = block\[d·PACK_CHUNK + q\].
    #[inline]
    pub(super) fn write_transposed(block: &[f32], w: usize, dst: &mut [f32]) {
        let columns = dst.len() / w;
        assert!(block.len() == w * PACK_CHUNK && columns <= PACK_CHUNK && dst.len() == columns * w);
        let (full_rows, full_columns) = (w / 4 * 4, columns / 4 * 4);
        let (from, to) = (block.as_ptr(), dst.as_mut_ptr());
        for d0 in (0..full_rows).step_by(4) {
            for q0 in (0..full_columns).step_by(4) {
                // SAFETY: SSE is part of x86-64. Rows d0..d0+4 < w of `block` each hold columns
                // q0..q0+4 ≤ PACK_CHUNK, and columns q0..q0+4 ≤ `columns` of `dst` each hold
                // entries d0..d0+4 ≤ w (both asserted above).
                unsafe {
                    let row = |i: usize| _mm_loadu_ps(from.add((d0 + i) * PACK_CHUNK + q0));
                    let columns = transpose4([row(0), row(1), row(2), row(3)]);
                    for (j, column) in columns.into_iter().enumerate() {
                        _mm_storeu_ps(to.add((q0 + j) * w + d0), column);
                    }
                }
            }
        }
        // What the 4×4 blocks left: the last columns of the full rows, then the last rows.
        for q in full_columns..columns {
            for d in 0..full_rows {
                dst[q * w + d] = block[d * PACK_CHUNK + q];
            }
        }
        for q in 0..columns {
            for d in full_rows..w {
                dst[q * w + d] = block[d * PACK_CHUNK + q];
            }
        }
    }
}

/// One 64-byte cache line: the unit of the packing buffers, so packed panels start on a line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct CacheLine([u8; 64]);

thread_local! {
    // Per-thread packing buffers, reused across calls so steady-state GEMMs never allocate.
    static PACK_A: Cell<Vec<CacheLine>> = const { Cell::new(Vec::new()) };
    static PACK_B: Cell<Vec<CacheLine>> = const { Cell::new(Vec::new()) };
}

/// Lends `f` a 64-byte-aligned buffer of `len` elements from this thread's `slot`.
///
/// The buffer is taken out of the slot for the duration, so a nested GEMM on the same thread
/// (rayon runs other tasks while it waits) finds the slot empty and allocates its own instead of
/// aliasing this one.
fn with_pack_buffer<T: Float, R>(
    slot: &'static LocalKey<Cell<Vec<CacheLine>>>,
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    assert!(
        TypeId::of::<T>() == TypeId::of::<f32>() || TypeId::of::<T>() == TypeId::of::<f64>(),
        "packing buffers hold only f32 or f64"
    );
    let lines = (len * std::mem::size_of::<T>()).div_ceil(64);
    let mut buf = slot.take();
    if buf.len() < lines {
        buf = vec![CacheLine([0; 64]); lines];
    }
    // SAFETY: T is f32 or f64 (asserted above): every bit pattern is a valid value, its alignment
    // (≤ 8) divides 64, and `lines` cache lines hold at least `len` of them. The slice borrows
    // `buf`, which nothing else can reach until `f` returns.
    let out = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<T>(), len) };
    let r = f(out);
    // Keep the larger of this buffer and any a nested call left behind.
    let other = slot.take();
    slot.set(if other.len() > buf.len() { other } else { buf });
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Every panel width the kernels use (4, 6, 8, 14, 16, 32) and the odd ones around them,
    /// every count of packed columns a block can end with.
    fn check_write_transposed<const W: usize>(rng: &mut Rng) {
        let mut block = [[0.0f32; PACK_CHUNK]; W];
        block.as_flattened_mut().iter_mut().for_each(|v| *v = rng.uniform(-1.0, 1.0) as f32);
        for columns in 0..=PACK_CHUNK {
            let (mut fast, mut plain) = (vec![[f32::NAN; W]; columns], vec![[f32::NAN; W]; columns]);
            write_transposed(&block, &mut fast);
            write_transposed_plain(&block, &mut plain);
            let bits = |v: &[[f32; W]]| v.as_flattened().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&plain), "W = {W}, {columns} columns");
        }
    }

    #[test]
    fn a_packed_block_is_written_transposed_exactly_as_element_by_element() {
        let mut rng = Rng::new(11);
        check_write_transposed::<1>(&mut rng);
        check_write_transposed::<3>(&mut rng);
        check_write_transposed::<4>(&mut rng);
        check_write_transposed::<5>(&mut rng);
        check_write_transposed::<6>(&mut rng);
        check_write_transposed::<8>(&mut rng);
        check_write_transposed::<13>(&mut rng);
        check_write_transposed::<14>(&mut rng);
        check_write_transposed::<16>(&mut rng);
        check_write_transposed::<31>(&mut rng);
        check_write_transposed::<32>(&mut rng);
    }

    fn random_vec(len: usize, rng: &mut Rng) -> Vec<f64> {
        (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
    }

    /// The reference: C = A·B (+ C0) in f64, plus Σ|a||b| + |c0| per element for the tolerance.
    fn reference(a: MatRef<f64>, b: MatRef<f64>, c0: Option<&[f64]>, ldc: usize) -> (Vec<f64>, Vec<f64>) {
        let (m, k, n) = (a.rows, a.cols, b.cols);
        let (mut c, mut scale) = (vec![0.0; m * n], vec![0.0; m * n]);
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut abs) = c0.map_or((0.0, 0.0), |c0| (c0[i * ldc + j], c0[i * ldc + j].abs()));
                for p in 0..k {
                    let prod =
                        a.data[i * a.row_stride + p * a.col_stride] * b.data[p * b.row_stride + j * b.col_stride];
                    s += prod;
                    abs += prod.abs();
                }
                c[i * n + j] = s;
                scale[i * n + j] = abs;
            }
        }
        (c, scale)
    }

    /// How an operand is laid out in memory for a test case.
    #[derive(Clone, Copy, Debug)]
    enum Layout {
        RowMajor,
        /// Stored as the row-major transpose and viewed through `.t()`.
        Transposed,
        /// A sub-matrix of a wider row-major buffer (row stride > cols), starting at an offset.
        Strided,
    }

    /// Builds a [rows, cols] operand with the given layout; returns its buffer and how to view it.
    fn operand(rows: usize, cols: usize, layout: Layout, rng: &mut Rng) -> (Vec<f64>, usize, usize, usize) {
        match layout {
            Layout::RowMajor => (random_vec(rows * cols, rng), 0, cols, 1),
            Layout::Transposed => (random_vec(rows * cols, rng), 0, 1, rows),
            Layout::Strided => {
                let (pad, offset) = (5, 3);
                (random_vec(offset + rows * (cols + pad), rng), offset, cols + pad, 1)
            }
        }
    }

    /// Runs gemm in type `T` with `run` and checks it against the f64 reference.
    #[allow(clippy::too_many_arguments)]
    fn check<T: Float>(
        (m, k, n): (usize, usize, usize),
        la: Layout,
        lb: Layout,
        ldc: usize,
        accumulate: bool,
        tol: f64,
        seed: u64,
        run: impl Fn(MatRef<T>, MatRef<T>, &mut [T], usize, bool),
    ) {
        let mut rng = Rng::new(seed);
        let (ad, aoff, ars, acs) = operand(m, k, la, &mut rng);
        let (bd, boff, brs, bcs) = operand(k, n, lb, &mut rng);
        let c0 = random_vec(m.saturating_sub(1) * ldc + n, &mut rng);
        let a64 = MatRef { data: &ad[aoff..], rows: m, cols: k, row_stride: ars, col_stride: acs };
        let b64 = MatRef { data: &bd[boff..], rows: k, cols: n, row_stride: brs, col_stride: bcs };
        let (want, scale) = reference(a64, b64, accumulate.then_some(&c0[..]), ldc);

        let to_t = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
        let (at, bt) = (to_t(&ad), to_t(&bd));
        let mut c = to_t(&c0);
        let a = MatRef { data: &at[aoff..], rows: m, cols: k, row_stride: ars, col_stride: acs };
        let b = MatRef { data: &bt[boff..], rows: k, cols: n, row_stride: brs, col_stride: bcs };
        run(a, b, &mut c, ldc, accumulate);

        for i in 0..m {
            for j in 0..n {
                let (got, want, scale) = (c[i * ldc + j].to_f64(), want[i * n + j], scale[i * n + j]);
                assert!(
                    (got - want).abs() <= tol * (scale + 1.0),
                    "({m}, {k}, {n}) {la:?}·{lb:?} ldc {ldc} acc {accumulate}: C[{i}, {j}] = {got}, want {want}"
                );
            }
            // Padding between rows (ldc > n) must be untouched.
            for j in n..ldc.min(c.len() - i * ldc) {
                assert_eq!(
                    c[i * ldc + j].to_f64(),
                    T::from_f64(c0[i * ldc + j]).to_f64(),
                    "padding C[{i}, {j}] was written"
                );
            }
        }
    }

    const SHAPES: [(usize, usize, usize); 12] = [
        (1, 1, 1),
        (7, 13, 5),
        (6, 16, 16),
        (14, 32, 32),
        (33, 65, 17),
        (129, 3, 257),
        (3, 257, 129),
        (2, 600, 3),
        (64, 300, 64),
        (300, 200, 100),
        (100, 1, 300),
        (1, 500, 1),
    ];

    /// Every shape × layout × (ldc, accumulate) combination through `run`.
    fn check_all<T: Float>(tol: f64, run: impl Fn(MatRef<T>, MatRef<T>, &mut [T], usize, bool) + Copy) {
        let layouts = [Layout::RowMajor, Layout::Transposed, Layout::Strided];
        let mut seed = 0;
        for &shape in &SHAPES {
            for la in layouts {
                for lb in layouts {
                    for (extra, accumulate) in [(0, false), (3, true), (0, true), (7, false)] {
                        seed += 1;
                        check::<T>(shape, la, lb, shape.2 + extra, accumulate, tol, seed, run);
                    }
                }
            }
        }
    }

    #[test]
    fn sgemm_matches_f64_reference_for_all_shapes_and_layouts() {
        check_all::<f32>(1e-5, gemm);
    }

    #[test]
    fn dgemm_matches_f64_reference_for_all_shapes_and_layouts() {
        check_all::<f64>(1e-12, gemm);
    }

    /// [`gemm_packing_b`] with each panel written element by element from the stored B: the
    /// product of `gemm` by the implicit road, its packing plain enough to trust.
    fn gemm_with_b_written_on_request<T: Float>(a: MatRef<T>, b: MatRef<T>, c: &mut [T], ldc: usize, accumulate: bool) {
        let pack = |p: BPanel, out: &mut [T]| {
            for (r, row) in out[..p.kc * p.nr].chunks_exact_mut(p.nr).enumerate() {
                for (j, o) in row.iter_mut().enumerate() {
                    let (i, col) = (p.p0 + r, p.j0 + j);
                    *o = if j < p.cols { b.data[i * b.row_stride + col * b.col_stride] } else { T::ZERO };
                }
            }
        };
        gemm_packing_b(a, b.cols, &pack, c, ldc, accumulate);
    }

    #[test]
    fn a_product_whose_b_panels_are_written_on_request_matches_the_reference() {
        check_all::<f32>(1e-5, gemm_with_b_written_on_request);
        check_all::<f64>(1e-12, gemm_with_b_written_on_request);
    }

    /// [`gemm_serial_packed_a`] after [`pack_a_once`].
    fn gemm_on_a_packed_once<T: Float>(a: MatRef<T>, b: MatRef<T>, c: &mut [T], ldc: usize, accumulate: bool) {
        gemm_serial_packed_a(&pack_a_once(a), b, c, ldc, accumulate);
    }

    #[test]
    fn a_product_on_a_packed_once_matches_the_reference() {
        check_all::<f32>(1e-5, gemm_on_a_packed_once);
        check_all::<f64>(1e-12, gemm_on_a_packed_once);
    }

    #[test]
    fn a_packed_once_gives_the_bits_of_packing_per_product() {
        // Several passes over k (k > kc) and an edge panel of rows: what lets the upsampled
        // convolution's blocks share one packing.
        let (m, k, n) = (37, 1100, 45);
        let mut rng = Rng::new(9);
        let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let (a, b) = (to_f32(random_vec(m * k, &mut rng)), to_f32(random_vec(k * n, &mut rng)));
        let a = MatRef { data: &a, rows: m, cols: k, row_stride: k, col_stride: 1 };
        let b = MatRef { data: &b, rows: k, cols: n, row_stride: n, col_stride: 1 };
        let (mut once, mut per_product) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
        gemm_on_a_packed_once(a, b, &mut once, n, false);
        gemm_on_threads(a, b, &mut per_product, n, false, 1);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&once), bits(&per_product));
    }

    #[test]
    fn every_f32_kernel_this_cpu_runs_matches_the_reference() {
        // Every micro-kernel with each of its blockings: a measurement may choose any of them.
        let kernels: Vec<Kernel<f32>> = f32_kernels_everywhere().into_iter().filter(runs_here).collect();
        assert_eq!(kernels.iter().map(|k| k.name).collect::<Vec<_>>(), f32_kernel_names());
        for kern in kernels {
            eprintln!("checking the {} kernel", kern.name);
            check_all::<f32>(1e-5, |a, b, c, ldc, acc| {
                gemm_blocked(&kern, a, b, c, ldc, acc, rayon::current_num_threads())
            });
        }
    }

    #[test]
    fn every_micro_kernel_this_cpu_runs_alone_computes_its_panels_product() {
        let kc = 37;
        let mut rng = Rng::new(11);
        let a_panel: Vec<f32> = (0..kc * 16).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let b_panel: Vec<f32> = (0..kc * 32).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        for name in f32_kernel_names() {
            let mut tile = vec![f32::NAN; 16 * 32];
            let micro = MicroKernel::of_f32_kernel(name).expect("a kernel this CPU runs");
            micro.run(kc, &a_panel, &b_panel, &mut tile);
            let [mr, nr] = micro.tile;
            for i in 0..mr {
                for j in 0..nr {
                    let want: f64 = (0..kc).map(|p| a_panel[p * mr + i] as f64 * b_panel[p * nr + j] as f64).sum();
                    let got = tile[i * nr + j] as f64;
                    assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "{name} at ({i}, {j}): {got} vs {want}");
                }
            }
            assert!(tile[mr * nr..].iter().all(|v| v.is_nan()), "{name} wrote past its {mr}×{nr} tile");
        }
    }

    #[test]
    fn an_edge_tile_is_written_straight_into_c_with_the_bits_of_the_whole_tile_through_scratch() {
        let kernels: Vec<Kernel<f32>> = f32_kernels_everywhere().into_iter().filter(runs_here).collect();
        let Some(kern) = kernels.iter().find(|k| k.run_edge.is_some()) else {
            eprintln!("skipped: no kernel this CPU runs writes edge tiles straight into C");
            return;
        };
        let (mr, nr, kc, ldc) = (kern.mr, kern.nr, 29, kern.nr + 3);
        let mut rng = Rng::new(3);
        let a_panel: Vec<f32> = (0..kc * mr).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let b_panel: Vec<f32> = (0..kc * nr).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let c0: Vec<f32> = (0..mr * ldc).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let mut whole = vec![0.0f32; mr * nr];
        // SAFETY: the panels hold kc·mr and kc·nr values, `whole` the mr×nr tile.
        unsafe { (kern.run)(kc, a_panel.as_ptr(), b_panel.as_ptr(), whole.as_mut_ptr(), nr, false) };
        let edge = kern.run_edge.expect("found above");
        for rows in 1..=mr {
            for cols in [1, 7, nr / 2 - 1, nr / 2, nr / 2 + 1, nr - 1, nr] {
                for accumulate in [false, true] {
                    // The tile at the end of a C that ends with it: nothing may be touched past it.
                    let mut c = c0[..(rows - 1) * ldc + cols].to_vec();
                    // SAFETY: `c` holds `rows` rows of `cols` values, `ldc` apart, the panels as above.
                    unsafe {
                        edge(rows, cols, kc, a_panel.as_ptr(), b_panel.as_ptr(), c.as_mut_ptr(), ldc, accumulate)
                    };
                    for (i, row) in c.chunks(ldc).enumerate() {
                        for (j, &got) in row.iter().enumerate() {
                            let want = match (j < cols, accumulate) {
                                (false, _) => c0[i * ldc + j],
                                (true, false) => whole[i * nr + j],
                                (true, true) => c0[i * ldc + j] + whole[i * nr + j],
                            };
                            assert_eq!(got.to_bits(), want.to_bits(), "{rows}×{cols} acc {accumulate}: C[{i}, {j}]");
                        }
                    }
                }
            }
        }
    }

    /// Why a run made on another CPU comes back bit for bit under that CPU's kernel, and why a
    /// kernel of another depth does not: each output sums over K block by block, in order
    /// within a block, so the block depth fixes the rounding and the tile does not.
    #[test]
    fn kernels_of_one_block_depth_give_the_same_bits_and_other_depths_do_not() {
        let (m, k, n) = (37, 1100, 45);
        let mut rng = Rng::new(5);
        let a: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        let product = |name: &str| {
            let mut c = vec![f32::NAN; m * n];
            gemm_on_f32_kernel(name, MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n), &mut c, n, false)
                .expect("a kernel this CPU runs");
            c
        };
        let depth = |name: &str| MicroKernel::of_f32_kernel(name).expect("a kernel this CPU runs").kc;
        let fused: Vec<&str> = f32_kernel_names().into_iter().filter(|name| !name.starts_with("portable")).collect();
        if fused.len() < 2 {
            eprintln!("skipped: this CPU runs {fused:?}, fewer than two fused multiply-add kernels to compare");
            return;
        }
        let mut same_depth_pairs = 0;
        for (i, first) in fused.iter().enumerate() {
            for second in &fused[i + 1..] {
                let same = product(first) == product(second);
                assert_eq!(same, depth(first) == depth(second), "{first} against {second}: equal bits {same}");
                same_depth_pairs += usize::from(same);
            }
        }
        if same_depth_pairs == 0 {
            eprintln!("only kernels of different depths run here ({fused:?}): the same-depth half was not checked");
        }
    }

    #[test]
    fn a_kernel_is_refused_by_name_when_unknown_or_not_runnable_here() {
        let unknown = choose_f32_kernel("avx3-1x1", KernelChoice::Pinned).unwrap_err();
        assert!(unknown.contains("\"avx3-1x1\"") && unknown.contains("portable-4x8"), "{unknown}");
        for kernel in f32_kernels_everywhere().iter().filter(|k| !runs_here(k)) {
            let refused = choose_f32_kernel(kernel.name, KernelChoice::Pinned).unwrap_err();
            assert!(refused.contains(kernel.instruction_set), "{refused}");
        }
        assert_eq!(F32_KERNEL.get().map(|(k, _)| k.name), None, "a refused kernel was kept");
        assert!(is_f32_kernel_name("avx512-14x32-kc256") || cfg!(not(target_arch = "x86_64")));
        assert!(!is_f32_kernel_name("side-by-side"));
    }

    #[test]
    fn every_kernel_this_cpu_runs_is_timed_in_the_order_given() {
        let names = f32_kernel_names();
        let times = time_f32_kernels(&names).expect("every kernel of f32_kernel_names runs here");
        assert_eq!(times.len(), names.len());
        assert!(times.iter().all(|t| *t > std::time::Duration::ZERO), "{times:?}");
        assert_eq!(time_f32_kernels(&["portable-4x8", "avx3-1x1"]), None);
    }

    #[test]
    fn every_rung_this_cpu_runs_matches_the_reference() {
        for rung in GemmRung::available::<f32>() {
            eprintln!("checking rung {} (f32)", rung.name());
            check_all::<f32>(1e-5, move |a, b, c, ldc, acc| assert!(gemm_on_rung(rung, a, b, c, ldc, acc).is_some()));
        }
        for rung in GemmRung::available::<f64>() {
            eprintln!("checking rung {} (f64)", rung.name());
            check_all::<f64>(1e-12, move |a, b, c, ldc, acc| assert!(gemm_on_rung(rung, a, b, c, ldc, acc).is_some()));
        }
    }

    #[test]
    fn every_rung_and_kernel_overwrites_a_poisoned_c_and_keeps_out_of_the_padding_between_rows() {
        let mut rng = Rng::new(11);
        let (m, k, n, ldc) = (37, 29, 41, 44);
        let a: Vec<f32> = random_vec(m * k, &mut rng).iter().map(|&x| x as f32).collect();
        let b: Vec<f32> = random_vec(k * n, &mut rng).iter().map(|&x| x as f32).collect();
        let (a, b) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
        let mut want = vec![0.0f32; m * n];
        gemm_naive(a, b, &mut want, n, false);
        // Every rung, then every kernel a measurement may choose (each blocking of each rung).
        type Run<'a> = Box<dyn Fn(&mut [f32]) + 'a>;
        let mut runs: Vec<(&str, Run)> = Vec::new();
        for rung in GemmRung::available::<f32>() {
            runs.push((rung.name(), Box::new(move |c| assert!(gemm_on_rung(rung, a, b, c, ldc, false).is_some()))));
        }
        for kern in f32_kernels_everywhere().into_iter().filter(runs_here) {
            runs.push((
                kern.name,
                Box::new(move |c| gemm_blocked(&kern, a, b, c, ldc, false, rayon::current_num_threads())),
            ));
        }
        runs.push(("B written on request", Box::new(move |c| gemm_with_b_written_on_request(a, b, c, ldc, false))));
        for (name, run) in runs {
            let mut c = vec![f32::NAN; m * ldc];
            run(&mut c);
            for i in 0..m {
                for j in 0..ldc {
                    let got = c[i * ldc + j];
                    if j < n {
                        let want = want[i * n + j];
                        assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "{name}: C[{i}, {j}] = {got}");
                    } else {
                        assert!(got.is_nan(), "{name}: the padding C[{i}, {j}] was written");
                    }
                }
            }
        }
    }

    #[test]
    fn a_rung_this_cpu_cannot_run_is_refused_and_leaves_c_untouched() {
        // No SIMD rung runs f64, on any CPU.
        let (a, b) = ([1.0f64, 2.0], [3.0f64, 4.0]);
        let mut c = [7.0f64; 4];
        for rung in [GemmRung::Avx2, GemmRung::Avx512] {
            assert!(!rung.runs_here::<f64>());
            assert!(gemm_on_rung(rung, MatRef::row_major(&a, 2, 1), MatRef::row_major(&b, 1, 2), &mut c, 2, false)
                .is_none());
            assert_eq!(c, [7.0; 4]);
        }
    }

    #[test]
    fn the_top_rung_this_cpu_runs_is_the_rules_kernel() {
        let top = *GemmRung::available::<f32>().last().expect("the portable rungs run everywhere");
        let name = match top {
            GemmRung::Packed => "portable",
            other => other.name(),
        };
        assert_eq!(name, f32_kernel_by_rule().instruction_set);
    }

    #[test]
    fn tiny_blocks_exercise_every_loop_of_the_driver() {
        // Block sizes far below the shapes, so jc, pc and ic all take several (ragged) steps.
        for kern in f32_kernels_everywhere().into_iter().filter(runs_here) {
            eprintln!("checking the {} kernel with tiny blocks", kern.name);
            let small = Kernel { mc: 2 * kern.mr, kc: 7, nc: 3 * kern.nr, ..kern };
            check_all::<f32>(1e-5, |a, b, c, ldc, acc| {
                gemm_blocked(&small, a, b, c, ldc, acc, rayon::current_num_threads())
            });
        }
        let small = Kernel { mc: 8, kc: 5, nc: 12, ..DGEMM_PORTABLE };
        check_all::<f64>(1e-12, |a, b, c, ldc, acc| {
            gemm_blocked(&small, a, b, c, ldc, acc, rayon::current_num_threads())
        });
    }

    #[test]
    fn wide_c_spans_several_nc_blocks() {
        check::<f32>((3, 5, 4100), Layout::RowMajor, Layout::Transposed, 4100, true, 1e-5, 99, gemm);
        check::<f32>((40, 20, 9000), Layout::Strided, Layout::RowMajor, 9001, false, 1e-5, 98, gemm);
    }

    #[test]
    fn thin_products_with_a_long_inner_dimension_match_reference() {
        // Few tiles of C and k of many blocks: the split-K path (with 2+ threads), every layout.
        let layouts = [Layout::RowMajor, Layout::Transposed, Layout::Strided];
        for (i, (la, lb)) in layouts.iter().flat_map(|&la| layouts.map(|lb| (la, lb))).enumerate() {
            check::<f32>((7, 5000, 5), la, lb, 9, i % 2 == 0, 1e-5, 200 + i as u64, gemm);
            check::<f64>((13, 4099, 17), la, lb, 17, i % 2 == 1, 1e-12, 300 + i as u64, gemm);
        }
    }

    #[test]
    fn single_threaded_and_parallel_agree_exactly() {
        // Each element's sum is accumulated in the same order whichever thread computes it
        // (outside the split-K path, whose slices depend on the thread count).
        let mut rng = Rng::new(7);
        let (m, k, n) = (257, 300, 129);
        let a: Vec<f32> = random_vec(m * k, &mut rng).iter().map(|&x| x as f32).collect();
        let b: Vec<f32> = random_vec(k * n, &mut rng).iter().map(|&x| x as f32).collect();
        let (a, b) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
        let mut seq = vec![0.0f32; m * n];
        gemm_planned(Plan::Serial, &f32_kernel(), a, n, &stored(&f32_kernel(), b), &mut seq, n, false, 1);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for plan in [Plan::Partitioned, Plan::SharedPasses] {
            let mut par = vec![f32::NAN; m * n];
            pool.install(|| gemm_planned(plan, &f32_kernel(), a, n, &stored(&f32_kernel(), b), &mut par, n, false, 3));
            assert_eq!(par, seq, "{plan:?}");
        }
    }

    #[test]
    fn every_parallel_plan_matches_reference_on_three_threads() {
        // Odd thread counts leave ragged pieces; every plan runs every shape and layout.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let kern = f32_kernel();
        for plan in [Plan::SplitK, Plan::Partitioned, Plan::SharedPasses] {
            eprintln!("checking {plan:?}");
            pool.install(|| {
                check_all::<f32>(1e-5, |a, b, c, ldc, acc| {
                    gemm_planned(plan, &kern, a, b.cols, &stored(&kern, b), c, ldc, acc, 3)
                })
            });
        }
    }

    #[test]
    fn short_passes_are_partitioned_and_long_ones_shared() {
        let kern = SGEMM_PORTABLE;
        assert_eq!(Plan::choose(&kern, 64, 4096, 256, 2), Plan::Partitioned, "a Linear layer's x·Wᵀ");
        assert_eq!(Plan::choose(&kern, 4096, 512, 4608, 2), Plan::SharedPasses, "a wide convolution's GEMM");
        assert_eq!(Plan::choose(&kern, 7, 9000, 5, 2), Plan::SplitK, "few tiles, long k");
        assert_eq!(Plan::choose(&kern, 16, 16, 16, 2), Plan::Serial);
        assert_eq!(Plan::choose(&kern, 4096, 512, 4608, 1), Plan::Serial);
    }

    #[test]
    fn zero_inner_dimension_zeroes_or_keeps_c() {
        let (a, b) = (MatRef::row_major(&[] as &[f32], 2, 0), MatRef::row_major(&[] as &[f32], 0, 3));
        let mut c = vec![1.0f32; 6];
        gemm(a, b, &mut c, 3, true);
        assert_eq!(c, vec![1.0; 6]);
        gemm(a, b, &mut c, 3, false);
        assert_eq!(c, vec![0.0; 6]);
    }

    #[test]
    fn grid_splits_rows_first_then_columns() {
        let g = Grid::new(171, 64, 24, 2); // 1024 rows of 6: 8 blocks of 21–22 panels
        assert_eq!((g.row_blocks.len(), g.col_groups.len()), (8, 1));
        let g = Grid::new(1, 64, 24, 2); // one panel of rows: split the columns instead
        assert_eq!((g.row_blocks.len(), g.col_groups.len()), (1, 2));
        let g = Grid::new(5, 64, 24, 1);
        assert_eq!(g.len(), 1);
    }
}
