//! Convolution kernels: conv2d forward and every backward (which conv_transpose2d runs too),
//! as im2col + GEMM, parallel over the batch.
//!
//! Layouts are PyTorch's, row-major: x [N, C_in, H, W]; conv2d weight [C_out, C_in, kH, kW];
//! conv_transpose2d weight [C_in, C_out, kH, kW]; y [N, C_out, OH, OW]; groups = 1.
//!
//! The one idea. For one image, unfold the (zero-padded) input into a matrix (im2col)
//!
//!   col[(ci, ki, kj), (oy, ox)] = x[ci, oy·sh − ph + ki·dh, ox·sw − pw + kj·dw]   (0 outside)
//!
//! of shape [K, P] with K = C_in·kH·kW and P = OH·OW. Viewing the weight as a [C_out, K]
//! matrix, conv2d is one GEMM per image, y_n = W · col_n. Every other kernel is an adjoint
//! of that GEMM or of im2col:
//!
//!   backward-data:   dcol_n = Wᵀ · dy_n, then dx_n = col2im(dcol_n)  (col2im = im2colᵀ, a scatter-add)
//!   backward-weight: dW = Σ_n dy_n · col_nᵀ
//!   backward-bias:   db\[c\] = Σ_{n, oy, ox} dy[n, c, oy, ox]
//!
//! conv_transpose2d is by definition the adjoint (in x) of a conv2d whose input is the
//! transpose's output, so it is conv2d run backwards: its forward is that conv2d's
//! backward-data, its backward-data is that conv2d's forward, and its backward-weight is that
//! conv2d's backward-weight with the roles of x and dy swapped. [`Conv2dGeometry::transposed`]
//! builds that conv2d, and `tensor::ops::conv_transpose2d` runs the kernels below on it.
//!
//! Small outputs: deep layers have tiny OH·OW (1 to 16 pixels), which would make each image's
//! GEMM a thin sliver that packs the whole weight for a few columns; there, several images are
//! unfolded side by side into one [K, images·P] operand and share one GEMM (`images_per_gemm`).
//! Memory stays bounded: each task unfolds at most a few million elements into its own buffer.
//!
//! Taps as shifted planes: at stride 1 with output rows as wide as the input's, or with the
//! input stride × output along both axes (the usual stride-2 layers), every tap reads one
//! stride phase of the input at a fixed offset, so its im2col row is one contiguous copy of
//! that phase, not one short copy per output row (see `taps_are_shifted_phases`). On planes
//! of at most 16 pixels even that is a call per handful of floats, and every entry is looked
//! up in a table of the pixel each tap reads instead (`tap_table`).
//!
//! Dead taps: on small planes a padded kernel hangs over the edge (3×3 with padding 1 on a 1×1
//! plane reads only its centre). Every kernel first crops the kernel to the taps that reach
//! the input ([`Conv2dGeometry::live_taps`]), so im2col never builds rows that are all padding.
//!
//! Large planes: one image's operand can outgrow the cache (128 channels × 9 taps × 64×64
//! pixels is 19 MB), and writing it to memory for the GEMM to read back costs as much as the
//! multiply-adds. There the forward and backward-weight unfold and multiply a strip of output
//! rows at a time (`strip_rows`), and backward-data at stride 1 uses the gradient identity
//! that makes it a convolution itself, the full correlation of dy with the flipped weight
//! (`Conv2dGeometry::full_correlation`), so it runs as a forward in strips instead of
//! writing dcol for col2im.
//!
//! Winograd: a 3×3 kernel at stride 1 can also be computed with 4/9 of the multiply-adds, by
//! Winograd's minimal filtering F(2×2, 3×3) (`cpu::winograd`): 16 GEMMs between transformed
//! kernels and transformed input tiles. Written out whole, its transforms move four times the
//! input and output through memory; the tuner's cut runs it in cache-sized blocks of tile rows
//! instead (`cpu::winograd_blocked`), and with tuning on the forward and backward-data time it
//! beside their other ways. The larger tile F(4×4, 3×3) (`cpu::winograd_4x4`) computes with
//! 2.25/9 of the multiply-adds and more transform a value, and is timed beside it.
//!
//! Implicit GEMM: the GEMM copies col again, panel by panel, into its packed B blocks. The
//! forward on the `ImplicitGemm` rung skips col: the GEMM asks for each packed panel and
//! `pack_unfolded_panel` writes it straight from the image (`gemm::gemm_packing_b`), so each
//! value is copied once instead of twice and no unfolding buffer exists. That copy is a gather
//! of short strided runs; on the `PhaseGrid` rung (`cpu::phase_grid`) it is a plain copy out
//! of the input's stride phases, at the price of a few junk output columns, and the tuner
//! times that way beside the others.

use std::ops::Range;

use rayon::prelude::*;

use crate::cpu::direct_weight;
use crate::cpu::elementwise::{relu_in_place, relu_in_place_parallel};
use crate::cpu::gemm::{gemm, gemm_on_calling_thread, gemm_packing_b, BPanel, MatRef};
use crate::cpu::indirect;
use crate::cpu::indirect_weight;
use crate::cpu::phase_grid;
use crate::cpu::reduce::sum_map_f64;
use crate::cpu::shifted_rows;
use crate::cpu::tuning;
use crate::cpu::winograd;
use crate::cpu::winograd_4x4;
use crate::cpu::winograd_blocked;
use crate::cpu::winograd_weight;
use crate::descriptors::{Conv2dGeometry, LiveTaps};
use crate::dtype::{same_type_slice, same_type_slice_mut, Float};
use crate::reference::conv as reference;

/// Where one kernel index lands along one axis: outputs o in [lo, hi) read input
/// i0 + (o − lo)·stride; outputs outside that range read padding.
#[derive(Clone, Copy, Debug)]
struct AxisTaps {
    lo: usize,
    hi: usize,
    i0: usize,
}

/// [`AxisTaps`] for each of the `k` kernel indices of one axis. Output o with kernel index j
/// reads input i = o·stride + j·dilation − pad, which must satisfy 0 ≤ i < input. Computed once
/// per kernel call (in its [`Unfolding`]), so the hot loops below never divide.
fn axis_taps(k: usize, stride: usize, pad: usize, dilation: usize, input: usize, out: usize) -> Vec<AxisTaps> {
    (0..k)
        .map(|j| {
            let offset = j * dilation;
            // o·stride ≥ pad − offset
            let lo = if pad > offset { (pad - offset).div_ceil(stride) } else { 0 };
            // o·stride ≤ input − 1 + pad − offset
            let hi = if input + pad > offset { ((input + pad - offset - 1) / stride + 1).min(out) } else { 0 };
            let lo = lo.min(hi);
            // i0 is only read when the range is non-empty, where it is in [0, input).
            let i0 = if lo < hi { lo * stride + offset - pad } else { 0 };
            AxisTaps { lo, hi, i0 }
        })
        .collect()
}

/// dst\[j\] = src\[j·stride\]: one output row of one im2col tap. Rows are short (OW long)
/// and there are millions of them per step, so no per-row division (`step_by` does one).
/// Stride 2 of f32 has an SSE path: LLVM kept the indexed loop scalar, with a bounds check
/// per element.
#[inline]
pub(crate) fn copy_strided<T: Float>(dst: &mut [T], src: &[T], stride: usize) {
    let n = dst.len();
    if n == 0 {
        return;
    }
    match stride {
        1 => dst.copy_from_slice(&src[..n]),
        2 => {
            #[cfg(target_arch = "x86_64")]
            if let (Some(dst), Some(src)) = (same_type_slice_mut::<T, f32>(dst), same_type_slice::<T, f32>(src)) {
                return stride2_sse::copy(dst, src);
            }
            let src = &src[..2 * n - 1];
            for (j, d) in dst.iter_mut().enumerate() {
                *d = src[2 * j];
            }
        }
        _ => {
            let src = &src[..(n - 1) * stride + 1];
            for (j, d) in dst.iter_mut().enumerate() {
                *d = src[j * stride];
            }
        }
    }
}

/// dst\[j·stride\] += src\[j\]: the adjoint of [`copy_strided`], one row of one col2im tap.
#[inline]
pub(crate) fn add_strided<T: Float>(dst: &mut [T], src: &[T], stride: usize) {
    let n = src.len();
    if n == 0 {
        return;
    }
    match stride {
        1 => dst[..n].iter_mut().zip(src).for_each(|(d, s)| *d += *s),
        2 => {
            #[cfg(target_arch = "x86_64")]
            if let (Some(dst), Some(src)) = (same_type_slice_mut::<T, f32>(dst), same_type_slice::<T, f32>(src)) {
                return stride2_sse::add(dst, src);
            }
            let dst = &mut dst[..2 * n - 1];
            for (j, s) in src.iter().enumerate() {
                dst[2 * j] += *s;
            }
        }
        _ => {
            let dst = &mut dst[..(n - 1) * stride + 1];
            for (j, s) in src.iter().enumerate() {
                dst[j * stride] += *s;
            }
        }
    }
}

/// Stride-2 rows of f32 with SSE (part of every x86-64 CPU, so no feature check): LLVM leaves
/// the plain loops scalar (a gather of even elements, and an update of even elements only), and
/// stride-2 convolutions spend most of their im2col and col2im time in them.
#[cfg(target_arch = "x86_64")]
mod stride2_sse {
    use std::arch::x86_64::*;

    /// dst\[j\] = src\[2j\]: four outputs from two loads and one shuffle; the few outputs whose
    /// eight inputs would run past `src` are copied one by one.
    #[inline]
    pub(super) fn copy(dst: &mut [f32], src: &[f32]) {
        let chunks = (dst.len() / 4).min(src.len() / 8);
        for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(8)).take(chunks) {
            // SAFETY: SSE is part of x86-64; `s` holds 8 readable and `d` 4 writable floats.
            unsafe {
                let (lo, hi) = (_mm_loadu_ps(s.as_ptr()), _mm_loadu_ps(s.as_ptr().add(4)));
                _mm_storeu_ps(d.as_mut_ptr(), _mm_shuffle_ps::<0b10_00_10_00>(lo, hi));
            }
        }
        for (j, d) in dst.iter_mut().enumerate().skip(4 * chunks) {
            *d = src[2 * j];
        }
    }

    /// dst\[2j\] += src\[j\]: eight destination elements per step, all of them written back. The
    /// odd ones get −0.0 added, which leaves every value (±0 included) exactly as it was.
    #[inline]
    pub(super) fn add(dst: &mut [f32], src: &[f32]) {
        let chunks = (src.len() / 4).min(dst.len() / 8);
        // SAFETY: SSE is part of x86-64.
        let neg_zero = unsafe { _mm_set1_ps(-0.0) };
        for (d, s) in dst.chunks_exact_mut(8).zip(src.chunks_exact(4)).take(chunks) {
            // SAFETY: `s` holds 4 readable and `d` 8 readable and writable floats.
            unsafe {
                let s = _mm_loadu_ps(s.as_ptr());
                let (lo, hi) = (_mm_unpacklo_ps(s, neg_zero), _mm_unpackhi_ps(s, neg_zero));
                let d = d.as_mut_ptr();
                _mm_storeu_ps(d, _mm_add_ps(_mm_loadu_ps(d), lo));
                _mm_storeu_ps(d.add(4), _mm_add_ps(_mm_loadu_ps(d.add(4)), hi));
            }
        }
        for (j, s) in src.iter().enumerate().skip(4 * chunks) {
            dst[2 * j] += *s;
        }
    }
}

/// Unfolds output rows `rows` of one image into their columns of the GEMM operand (see the
/// module docs for the formula). Row (ci, ki, kj) of `col` is input plane ci shifted by the tap
/// (ki, kj), strided, zero-padded. Rows of `col` are `ld` long and these output rows fill
/// columns `first_col..first_col + rows.len()·OW` of each (several images can share one
/// operand, side by side; a large image is unfolded a strip of rows at a time).
// x: [C_in, H, W] (one image)   col: [C_in·kH·kW, ld] (this strip's columns overwritten)
fn im2col<T: Float>(
    x: &[T],
    g: &Conv2dGeometry,
    plan: &Unfolding,
    col: &mut [T],
    ld: usize,
    first_col: usize,
    rows: Range<usize>,
) {
    let (ty, tx) = match plan {
        Unfolding::Table(table) => return im2col_by_table(x, g, table, col, ld, first_col, rows),
        Unfolding::Phases(blocks) => return im2col_by_phases(x, g, blocks, col, ld, first_col, rows),
        Unfolding::Rows { ty, tx } => (ty, tx),
    };
    let [sh, sw] = g.stride;
    let ow = g.ow;
    let span = rows.len() * ow;
    let mut col_rows = col.chunks_exact_mut(ld).map(|row| &mut row[first_col..first_col + span]);
    for x_c in x.chunks_exact(g.h * g.w) {
        for ky in ty {
            let live = live_rows(ky, &rows);
            for kx in tx {
                let dst_row = col_rows.next().expect("col has C_in·kH·kW rows");
                dst_row[..(live.start - rows.start) * ow].fill(T::ZERO);
                dst_row[(live.end - rows.start) * ow..].fill(T::ZERO);
                let first_iy = ky.i0 + (live.start - ky.lo) * sh;
                for (oy, iy) in live.clone().zip((first_iy..).step_by(sh)) {
                    let src = &x_c[iy * g.w + kx.i0..(iy + 1) * g.w];
                    let dst = &mut dst_row[(oy - rows.start) * ow..(oy - rows.start + 1) * ow];
                    // Padding columns: at most a few per row, set one by one (a memset call
                    // per row would cost more than the row).
                    dst[..kx.lo].iter_mut().for_each(|d| *d = T::ZERO);
                    dst[kx.hi..].iter_mut().for_each(|d| *d = T::ZERO);
                    copy_strided(&mut dst[kx.lo..kx.hi], src, sw);
                }
            }
        }
    }
}

/// The output rows of `rows` that tap `ky` reads the input for (the rest read padding).
fn live_rows(ky: &AxisTaps, rows: &Range<usize>) -> Range<usize> {
    let start = ky.lo.clamp(rows.start, rows.end);
    start..ky.hi.clamp(start, rows.end)
}

/// The adjoint of [`im2col`]: every column entry is added back onto the input pixel it was
/// copied from (pixels under several taps collect several terms; padding taps are dropped).
/// Reads this image's columns `first_col..first_col + OH·OW` of rows `ld` long (and may
/// overwrite their padding entries).
// dcol: [C_in·kH·kW, ld]   dx: [C_in, H, W] (one image, accumulated into)
fn col2im<T: Float>(dcol: &mut [T], g: &Conv2dGeometry, plan: &Unfolding, ld: usize, first_col: usize, dx: &mut [T]) {
    let (ty, tx) = match plan {
        Unfolding::Table(table) => return col2im_by_table(dcol, g, table, ld, first_col, dx),
        Unfolding::Phases(blocks) => return col2im_by_phases(dcol, g, blocks, ld, first_col, dx),
        Unfolding::Rows { ty, tx } => (ty, tx),
    };
    let [sh, sw] = g.stride;
    let (ow, plane) = (g.ow, g.out_plane());
    let mut rows = dcol.chunks_exact(ld).map(|row| &row[first_col..first_col + plane]);
    for dx_c in dx.chunks_exact_mut(g.h * g.w) {
        for ky in ty {
            for kx in tx {
                let src_row = rows.next().expect("dcol has C_in·kH·kW rows");
                if kx.lo == kx.hi {
                    continue; // this tap column lies entirely in the padding
                }
                for (oy, iy) in (ky.lo..ky.hi).zip((ky.i0..).step_by(sh)) {
                    let dst = &mut dx_c[iy * g.w + kx.i0..(iy + 1) * g.w];
                    add_strided(dst, &src_row[oy * ow + kx.lo..oy * ow + kx.hi], sw);
                }
            }
        }
    }
}

/// Every kernel index's [`AxisTaps`] along the height and along the width.
fn geometry_taps(g: &Conv2dGeometry) -> (Vec<AxisTaps>, Vec<AxisTaps>) {
    let ([sh, sw], [ph, pw], [dh, dw]) = (g.stride, g.padding, g.dilation);
    (axis_taps(g.kh, sh, ph, dh, g.h, g.oh), axis_taps(g.kw, sw, pw, dw, g.w, g.ow))
}

/// How [`im2col`] and [`col2im`] walk an image: the same for every image and channel of one
/// kernel call, so chosen (and its tables built) once per call.
enum Unfolding {
    /// One short run per output row of each tap: the general case.
    Rows { ty: Vec<AxisTaps>, tx: Vec<AxisTaps> },
    /// One contiguous run per tap, of a stride phase of the input (see [`PhaseTap`]).
    Phases(Vec<PhaseTap>),
    /// Every entry looked up (see [`tap_table`]).
    Table(Vec<usize>),
}

impl Unfolding {
    /// The walk for im2col: a table on planes of up to [`TABLE_MAX_PLANE`] pixels.
    fn for_im2col(g: &Conv2dGeometry) -> Self {
        Self::choose(g, TABLE_MAX_PLANE)
    }

    /// The walk for col2im: a table only up to [`COL2IM_TABLE_MAX_PLANE`] pixels.
    fn for_col2im(g: &Conv2dGeometry) -> Self {
        Self::choose(g, COL2IM_TABLE_MAX_PLANE)
    }

    fn choose(g: &Conv2dGeometry, table_max_plane: usize) -> Self {
        if g.out_plane() <= table_max_plane {
            Unfolding::Table(tap_table(g))
        } else if taps_are_shifted_phases(g) {
            Unfolding::Phases(phase_blocks(g))
        } else {
            let (ty, tx) = geometry_taps(g);
            Unfolding::Rows { ty, tx }
        }
    }
}

// ------------------------------------------------------------------------ taps on tiny planes
//
// On planes of a few pixels (ResNet-18's 4×4, 2×2 and 1×1 stages) a tap's row of `col` is 1
// to 16 entries, and copying it in runs (a fill before, a copy, a fill after, per output row
// or per tap) costs a `memset` or `memmove` call per handful of floats. There each entry is
// looked up instead: a table, the same for every channel and image, gives for every tap and
// output pixel the input pixel it reads, or `PADDING`.

/// Output planes of at most this many pixels are unfolded through a [`tap_table`].
const TABLE_MAX_PLANE: usize = 16;

/// col2im goes through the table only up to this plane size: its lookups scatter-add one
/// float at a time, while a phase block adds whole vectors, which wins from 4×4 planes up
/// (`cargo bench --bench conv_layers`; the numbers are in docs/notebooks/performance.md).
const COL2IM_TABLE_MAX_PLANE: usize = 4;

/// A [`tap_table`] entry for a tap that reads the padding.
const PADDING: usize = usize::MAX;

/// For every tap (ki, kj) and output pixel p, row-major: the index within its channel's input
/// plane of the pixel that tap reads for p, or [`PADDING`].
// -> [kH·kW, OH·OW]
fn tap_table(g: &Conv2dGeometry) -> Vec<usize> {
    let [sh, sw] = g.stride;
    let (ty, tx) = geometry_taps(g);
    let mut table = Vec::with_capacity(g.kh * g.kw * g.out_plane());
    for ky in &ty {
        for kx in &tx {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let live = (ky.lo..ky.hi).contains(&oy) && (kx.lo..kx.hi).contains(&ox);
                    table.push(if live {
                        let (iy, ix) = (ky.i0 + (oy - ky.lo) * sh, kx.i0 + (ox - kx.lo) * sw);
                        iy * g.w + ix
                    } else {
                        PADDING
                    });
                }
            }
        }
    }
    table
}

/// [`im2col`] on a tiny plane: every entry looked up in the [`tap_table`].
fn im2col_by_table<T: Float>(
    x: &[T],
    g: &Conv2dGeometry,
    table: &[usize],
    col: &mut [T],
    ld: usize,
    first_col: usize,
    rows: Range<usize>,
) {
    let (plane, pixels) = (g.out_plane(), rows.start * g.ow..rows.end * g.ow);
    let mut col_rows = col.chunks_exact_mut(ld).map(|row| &mut row[first_col..first_col + pixels.len()]);
    for x_c in x.chunks_exact(g.h * g.w) {
        for taps in table.chunks_exact(plane) {
            let dst = col_rows.next().expect("col has C_in·kH·kW rows");
            for (d, &i) in dst.iter_mut().zip(&taps[pixels.clone()]) {
                *d = if i == PADDING { T::ZERO } else { x_c[i] };
            }
        }
    }
}

/// [`col2im`] on a tiny plane: every entry added onto the pixel the [`tap_table`] names.
fn col2im_by_table<T: Float>(
    dcol: &[T],
    g: &Conv2dGeometry,
    table: &[usize],
    ld: usize,
    first_col: usize,
    dx: &mut [T],
) {
    let plane = g.out_plane();
    let mut rows = dcol.chunks_exact(ld).map(|row| &row[first_col..first_col + plane]);
    for dx_c in dx.chunks_exact_mut(g.h * g.w) {
        for taps in table.chunks_exact(plane) {
            let src = rows.next().expect("dcol has C_in·kH·kW rows");
            for (&v, &i) in src.iter().zip(taps) {
                if i != PADDING {
                    dx_c[i] += v;
                }
            }
        }
    }
}

// ------------------------------------------------------------------------ taps as shifted phase planes
//
// Split an input plane by the stride into its sh·sw phases (the pixels (iy, ix) with
// iy ≡ a mod sh and ix ≡ b mod sw, each a small plane of its own): a tap that reads the input
// with stride s reads one phase with stride 1. When every phase is as wide as an output row
// (W = sw·OW) and all phases have the same height (H = sh·OH), output pixel (oy, ox) of tap
// (ki, kj) reads pixel (oy + a′, ox + b′) of its phase for constants a′, b′: in row-major order
// the tap's live block of a `col` row is one contiguous range of the phase. That turns the OH
// short row copies of a tap (2 to 16 pixels each on small planes, with a strided gather at
// stride 2) into one copy, after one pass that splits the image into its phases. The columns
// that the copy fills by wrapping around a row edge are padding, set to zero afterwards.
// Stride 1 needs no split (the one phase is the plane) and only W = OW.

/// Whether `g`'s taps are shifted phase planes (see above).
fn taps_are_shifted_phases(g: &Conv2dGeometry) -> bool {
    match g.stride {
        [1, 1] => g.ow == g.w,
        [sh, sw] => g.w == sw * g.ow && g.h == sh * g.oh,
    }
}

/// For one tap: the range of its `col` row from the first live output pixel to the last, and
/// the range of one channel's phase planes ([sh·sw, H/sh, OW], phase a·sw + b) it lines up with.
/// `None` when the tap reaches no pixel.
fn phase_block(ky: &AxisTaps, kx: &AxisTaps, g: &Conv2dGeometry) -> Option<(Range<usize>, Range<usize>)> {
    if ky.lo >= ky.hi || kx.lo >= kx.hi {
        return None;
    }
    let [sh, sw] = g.stride;
    let phase = (ky.i0 % sh) * sw + kx.i0 % sw;
    let dst = ky.lo * g.ow + kx.lo..(ky.hi - 1) * g.ow + kx.hi;
    let first = phase * (g.h / sh) * g.ow + (ky.i0 / sh) * g.ow + kx.i0 / sw;
    Some((dst.clone(), first..first + dst.len()))
}

/// One tap of a geometry whose taps are shifted phase planes: its two axes and its
/// [`phase_block`].
struct PhaseTap {
    ky: AxisTaps,
    kx: AxisTaps,
    block: Option<(Range<usize>, Range<usize>)>,
}

/// Every tap's [`PhaseTap`], in (ki, kj) order: the same for every channel and image (found
/// per channel and tap, their divisions by the stride were the hot spot of im2col).
fn phase_blocks(g: &Conv2dGeometry) -> Vec<PhaseTap> {
    let (ty, tx) = geometry_taps(g);
    ty.iter().flat_map(|&ky| tx.iter().map(move |&kx| PhaseTap { ky, kx, block: phase_block(&ky, &kx, g) })).collect()
}

/// One image's channels split into their phase planes: [C, H, W] → [C, sh·sw, H/sh, W/sw].
fn split_into_phases<T: Float>(x: &[T], g: &Conv2dGeometry) -> Vec<T> {
    let [sh, sw] = g.stride;
    let (phase_w, phase_len) = (g.w / sw, (g.h / sh) * (g.w / sw));
    let mut out = vec![T::ZERO; x.len()];
    for (x_c, out_c) in x.chunks_exact(g.h * g.w).zip(out.chunks_exact_mut(g.h * g.w)) {
        for (iy, row) in x_c.chunks_exact(g.w).enumerate() {
            for b in 0..sw {
                let start = ((iy % sh) * sw + b) * phase_len + (iy / sh) * phase_w;
                copy_strided(&mut out_c[start..start + phase_w], &row[b..], sw);
            }
        }
    }
    out
}

/// The adjoint of [`split_into_phases`], added onto `dx`: [C, sh·sw, H/sh, W/sw] → [C, H, W].
fn add_phases_back<T: Float>(phases: &[T], g: &Conv2dGeometry, dx: &mut [T]) {
    let [sh, sw] = g.stride;
    let (phase_w, phase_len) = (g.w / sw, (g.h / sh) * (g.w / sw));
    for (p_c, dx_c) in phases.chunks_exact(g.h * g.w).zip(dx.chunks_exact_mut(g.h * g.w)) {
        for (iy, row) in dx_c.chunks_exact_mut(g.w).enumerate() {
            for b in 0..sw {
                let start = ((iy % sh) * sw + b) * phase_len + (iy / sh) * phase_w;
                add_strided(&mut row[b..], &p_c[start..start + phase_w], sw);
            }
        }
    }
}

/// [`im2col`] where the taps are shifted phase planes: one copy per tap.
fn im2col_by_phases<T: Float>(
    x: &[T],
    g: &Conv2dGeometry,
    blocks: &[PhaseTap],
    col: &mut [T],
    ld: usize,
    first_col: usize,
    rows: Range<usize>,
) {
    let ow = g.ow;
    let pixels = rows.start * ow..rows.end * ow;
    let split;
    let phases = if g.stride == [1, 1] {
        x
    } else {
        split = split_into_phases(x, g);
        &split[..]
    };
    let mut col_rows = col.chunks_exact_mut(ld).map(|row| &mut row[first_col..first_col + pixels.len()]);
    for phases_c in phases.chunks_exact(g.h * g.w) {
        for PhaseTap { ky, kx, block } in blocks {
            let dst_row = col_rows.next().expect("col has C_in·kH·kW rows");
            let live = live_rows(ky, &rows);
            dst_row[..(live.start - rows.start) * ow].fill(T::ZERO);
            dst_row[(live.end - rows.start) * ow..].fill(T::ZERO);
            if let Some((dst, src)) = block {
                // The block's part inside this strip, as pixels of the whole plane.
                let (a, b) = (dst.start.max(pixels.start), dst.end.min(pixels.end));
                if a < b {
                    let src = src.start + (a - dst.start)..src.start + (b - dst.start);
                    dst_row[a - pixels.start..b - pixels.start].copy_from_slice(&phases_c[src]);
                }
            }
            let live_cols = (live.start - rows.start) * ow..(live.end - rows.start) * ow;
            for dst in dst_row[live_cols].chunks_exact_mut(ow) {
                dst[..kx.lo].iter_mut().for_each(|d| *d = T::ZERO);
                dst[kx.hi..].iter_mut().for_each(|d| *d = T::ZERO);
            }
        }
    }
}

/// [`col2im`] where the taps are shifted phase planes: one add per tap, into the phases (then
/// added back onto `dx`) or, at stride 1, straight into `dx`. A tap's padding columns in `dcol`
/// are first set to −0.0, which leaves the pixels they then land on exactly as they were.
fn col2im_by_phases<T: Float>(
    dcol: &mut [T],
    g: &Conv2dGeometry,
    blocks: &[PhaseTap],
    ld: usize,
    first_col: usize,
    dx: &mut [T],
) {
    let (ow, plane) = (g.ow, g.out_plane());
    let strided = g.stride != [1, 1];
    let mut split = vec![T::ZERO; if strided { dx.len() } else { 0 }];
    let phases = if strided { &mut split[..] } else { &mut *dx };
    let mut rows = dcol.chunks_exact_mut(ld).map(|row| &mut row[first_col..first_col + plane]);
    for phases_c in phases.chunks_exact_mut(g.h * g.w) {
        for PhaseTap { kx, block, .. } in blocks {
            let src_row = rows.next().expect("dcol has C_in·kH·kW rows");
            let Some((src, dst)) = block else { continue };
            for row in src_row[src.clone()].chunks_mut(ow) {
                // Each chunk starts at the live column kx.lo and holds this row's padding
                // columns after kx.hi and the next row's before kx.lo.
                row[kx.hi - kx.lo..].iter_mut().for_each(|v| *v = -T::ZERO);
            }
            add_strided(&mut phases_c[dst.clone()], &src_row[src.clone()], 1);
        }
    }
    if strided {
        add_phases_back(&split, g, dx);
    }
}

/// The GEMM operand of images `n0..n0 + images` of x, side by side: `[K, images·OH·OW]`,
/// unfolded into `col` (or x's own image, for a pointwise convolution of one image).
fn unfold_images<'a, T: Float>(
    x: &'a [T],
    g: &Conv2dGeometry,
    plan: &Unfolding,
    n0: usize,
    images: usize,
    pointwise: bool,
    col: &'a mut [T],
) -> &'a [T] {
    let (in_img, plane) = (g.in_image(), g.out_plane());
    if pointwise {
        return &x[n0 * in_img..(n0 + 1) * in_img];
    }
    let cols = images * plane;
    for i in 0..images {
        im2col(&x[(n0 + i) * in_img..(n0 + i + 1) * in_img], g, plan, col, cols, i * plane, 0..g.oh);
    }
    &col[..g.col_rows() * cols]
}

/// How many images share one GEMM. Per image, the GEMM's N dimension is OH·OW, which is tiny
/// deep in a network (1, 4, 16 pixels in ResNet-18 on 32×32 inputs): the weight would be
/// packed once per image for a handful of columns. Putting images side by side gives the GEMM
/// at least `TARGET_COLUMNS` columns, while the unfolded operand stays within `MAX_COL_ELEMENTS`
/// and the batch still splits into at least one group per thread (the unfolding runs on the
/// group's thread: one group for the whole batch left ResNet-18's 2×2 layers' im2col and
/// col2im on one core).
fn images_per_gemm(g: &Conv2dGeometry) -> usize {
    const TARGET_COLUMNS: usize = 512;
    const MAX_COL_ELEMENTS: usize = 1 << 22;
    let plane = g.out_plane().max(1);
    let by_columns = TARGET_COLUMNS.div_ceil(plane);
    let by_memory = MAX_COL_ELEMENTS / (g.col_rows() * plane).max(1);
    // At least one group per thread: the unfolding (im2col, col2im, the channel-major copies)
    // runs per group, on the group's thread.
    let by_threads = g.batch.div_ceil(rayon::current_num_threads());
    by_columns.min(by_memory).min(by_threads).max(1)
}

/// How a kernel runs at geometry `g`: `rule` unless tuning is on (`cpu::tuning`); then
/// whichever of `ways` `run` finished first (`rule` within the margin) the first time this
/// machine met the kernel at this geometry. `what` names the choice in the tuning line.
pub(crate) fn tuned_choice<T: Float>(
    what: &str,
    kernel: &str,
    g: &Conv2dGeometry,
    ways: &[&str],
    rule: &str,
    run: impl Fn(&str),
) -> String {
    let Some(tuner) = tuning::tuner() else {
        return rule.to_string();
    };
    // A cut's or way's speed depends on the GEMM kernel under it, which a run may pin to another.
    let gemm_kernel = crate::cpu::gemm::kernel_name::<T>();
    let class = format!(
        "{kernel} {:?} {}→{} k{}×{} s{}×{} p{}×{} d{}×{} {}×{} b{} on {gemm_kernel}",
        T::DTYPE,
        g.c_in,
        g.c_out,
        g.kh,
        g.kw,
        g.stride[0],
        g.stride[1],
        g.padding[0],
        g.padding[1],
        g.dilation[0],
        g.dilation[1],
        g.h,
        g.w,
        g.batch
    );
    let chosen = tuner.choose_timed_together(what, &class, ways, Some(rule), |ways| {
        Ok::<_, std::convert::Infallible>(time_cuts(ways, &run))
    });
    chosen.unwrap_or_else(|never| match never {})
}

/// The `strip` argument of a cut: `None` (the size rules) for images side by side, one whole
/// image per GEMM (`Some(g.oh)`, the ladder's Im2col rung) for [`tuning::PER_IMAGE`].
fn strip_of(g: &Conv2dGeometry, cut: &str) -> Option<usize> {
    (cut == tuning::PER_IMAGE).then_some(g.oh)
}

/// How long `run` takes on each cut: a warm-up each, then three rounds in which the cuts take
/// turns, by the median. One after the other, the second cut ran in warmer caches and was
/// chosen for B1's layers by 5–7 % that the training step did not show.
fn time_cuts(cuts: &[&str], mut run: impl FnMut(&str)) -> Vec<std::time::Duration> {
    let timed = descriptors::choices::median_times_taking_turns(cuts.len(), 3, false, |i| {
        let start = std::time::Instant::now();
        run(cuts[i]);
        Ok::<_, std::convert::Infallible>(start.elapsed())
    });
    match timed {
        Ok(times) => times,
        Err(never) => match never {},
    }
}

/// The GEMM for work already split into `tasks` rayon tasks: on the calling thread when every
/// thread has a task. A GEMM that forked there would find the other threads busy with their own
/// tasks and run its pieces one after the other, each packing again the operand it does not
/// cut: dyᵀ twice for dWᵀ cut by rows, a third of the 3→32 layers' weight gradient.
fn product_for_tasks<T: Float>(tasks: usize) -> fn(MatRef<T>, MatRef<T>, &mut [T], usize, bool) {
    if tasks >= rayon::current_num_threads() {
        gemm_on_calling_thread
    } else {
        gemm
    }
}

/// The fewest image groups one rayon task takes: enough that the batch splits into about two
/// tasks per thread (room to balance load), not one per group. Each task allocates its own
/// unfolding buffers, so a split per group would allocate and zero them dozens of times.
pub(crate) fn min_groups_per_task(batch: usize, group: usize) -> usize {
    batch.div_ceil(group).div_ceil(2 * rayon::current_num_threads()).max(1)
}

/// An image whose unfolded operand would hold more than this many elements is unfolded and
/// multiplied a strip of output rows at a time, so that each strip is still in cache when the
/// GEMM packs it: unfolded whole, resnet-bn's 128→64 3×3 layer on a 64×64 plane (B3) writes
/// a 19 MB operand to memory and reads it back per image.
const STRIP_MAX_COL_ELEMENTS: usize = 1 << 19;

/// Output rows per strip for one image of `g`: all of them when its operand fits.
fn strip_rows(g: &Conv2dGeometry) -> usize {
    let per_row = (g.col_rows() * g.ow).max(1);
    (STRIP_MAX_COL_ELEMENTS / per_row).clamp(1, g.oh.max(1))
}

/// The unfolding walk for strips of `strip` output rows. A strided phase walk splits the
/// whole image into its phases on every call, so strips of a strided image take the row walk.
fn unfolding_for_strips(g: &Conv2dGeometry, strip: usize) -> Unfolding {
    match Unfolding::for_im2col(g) {
        Unfolding::Phases(_) if strip < g.oh && g.stride != [1, 1] => {
            let (ty, tx) = geometry_taps(g);
            Unfolding::Rows { ty, tx }
        }
        plan => plan,
    }
}

/// `0..oh` cut into consecutive strips of `strip` rows (the last may be shorter).
fn strips(oh: usize, strip: usize) -> impl Iterator<Item = Range<usize>> {
    (0..oh).step_by(strip.max(1)).map(move |r| r..(r + strip).min(oh))
}

/// Copies `images` consecutive images of `t` into channel-major order, side by side:
/// out[c, i·plane + p] = t[i, c, p]. (A single image needs no copy: callers use it in place.)
// t: [images, channels, plane]   ->   out: [channels, images·plane]
fn to_channel_major<T: Float>(t: &[T], images: usize, channels: usize, plane: usize, out: &mut [T]) {
    let ld = images * plane;
    for (i, img) in t.chunks_exact(channels * plane).take(images).enumerate() {
        for (c, src) in img.chunks_exact(plane).enumerate() {
            out[c * ld + i * plane..c * ld + (i + 1) * plane].copy_from_slice(src);
        }
    }
}

/// The inverse of [`to_channel_major`], adding onto `t` when `accumulate`.
// m: [channels, images·plane]   ->   t: [images, channels, plane]
fn from_channel_major<T: Float>(m: &[T], images: usize, channels: usize, plane: usize, t: &mut [T], accumulate: bool) {
    let ld = images * plane;
    for (i, img) in t.chunks_exact_mut(channels * plane).take(images).enumerate() {
        for (c, dst) in img.chunks_exact_mut(plane).enumerate() {
            let src = &m[c * ld + i * plane..c * ld + (i + 1) * plane];
            if accumulate {
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += *s);
            } else {
                dst.copy_from_slice(src);
            }
        }
    }
}

/// Sets every channel plane of `out` (one or more images, freshly zeroed) to its bias value.
/// Returns whether the buffer now holds something a GEMM must accumulate onto. Without a bias
/// there is nothing to do: the buffer is already zero (filling it again was a whole extra
/// pass over every convolution's output).
// out: [images·C, plane]   bias: [C]
pub(crate) fn init_planes<T: Float>(out: &mut [T], bias: Option<&[T]>, plane: usize) -> bool {
    let Some(b) = bias else { return false };
    for (o, &bc) in out.chunks_exact_mut(plane).zip(b.iter().cycle()) {
        o.fill(bc);
    }
    true
}

/// Σ over batch and plane for each channel, accumulated in f64 (a long reduction in f32
/// would lose digits), parallel over channels.
// t: [N, C, plane]  ->  [C]
fn channel_sums<T: Float>(t: &[T], batch: usize, channels: usize, plane: usize) -> Vec<T> {
    (0..channels)
        .into_par_iter()
        .map(|c| {
            let mut s = 0.0f64;
            for n in 0..batch {
                let base = (n * channels + c) * plane;
                s += sum_map_f64(&t[base..base + plane], |v| v);
            }
            T::from_f64(s)
        })
        .collect()
}

// ------------------------------------------------------------------------ dead taps

/// The live block ([`Conv2dGeometry::live_taps`]) of a [c_out, c_in, kh, kw] weight:
/// [c_out, c_in, kh′, kw′], a filter per task. A 512→512 layer on a 1×1 plane keeps one tap
/// of nine: copied a run at a time on one thread (a call to copy one value), its 9.4 MB
/// weight took 2–3 % of B2's step.
fn crop_to_live<T: Float>(live: &LiveTaps, w: &[T], full: &Conv2dGeometry) -> Vec<T> {
    let (kh, kw) = (live.geometry.kh, live.geometry.kw);
    let mut out = vec![T::ZERO; full.c_out * full.c_in * kh * kw];
    let (cropped, whole) = (full.c_in * kh * kw, full.c_in * full.kh * full.kw);
    if cropped == 0 {
        return out;
    }
    out.par_chunks_exact_mut(cropped).zip(w.par_chunks_exact(whole)).for_each(|(out, w)| {
        for (block, kernel) in out.chunks_exact_mut(kh * kw).zip(w.chunks_exact(full.kh * full.kw)) {
            for (block_row, ki) in block.chunks_exact_mut(kw).zip(live.first[0]..) {
                let row = ki * full.kw + live.first[1];
                block_row.iter_mut().zip(&kernel[row..row + kw]).for_each(|(b, &v)| *b = v);
            }
        }
    });
    out
}

/// A gradient of the live block, [c_out, c_in, kh′, kw′], as the full kernel's: zero at the
/// taps that never reach the input (their weights touch no data); a filter per task.
fn embed_live_grad<T: Float>(live: &LiveTaps, dw: &[T], full: &Conv2dGeometry) -> Vec<T> {
    let (kh, kw) = (live.geometry.kh, live.geometry.kw);
    let mut out = vec![T::ZERO; full.c_out * full.c_in * full.kh * full.kw];
    let (cropped, whole) = (full.c_in * kh * kw, full.c_in * full.kh * full.kw);
    if cropped == 0 {
        return out;
    }
    out.par_chunks_exact_mut(whole).zip(dw.par_chunks_exact(cropped)).for_each(|(out, dw)| {
        for (kernel, block) in out.chunks_exact_mut(full.kh * full.kw).zip(dw.chunks_exact(kh * kw)) {
            for (block_row, ki) in block.chunks_exact(kw).zip(live.first[0]..) {
                let row = ki * full.kw + live.first[1];
                kernel[row..row + kw].iter_mut().zip(block_row).for_each(|(k, &v)| *k = v);
            }
        }
    });
    out
}

// ------------------------------------------------------------------------ conv2d

/// y = conv2d(x, w) + bias, per image y_n = W · im2col(x_n); images with small outputs share
/// one GEMM, `Y = W · (col_n | col_n+1 | …)` (see `images_per_gemm`), and large images are
/// unfolded a strip of output rows at a time (see `STRIP_MAX_COL_ELEMENTS`). With tuning on,
/// a 3×3 kernel at stride 1 may run as Winograd's F(2×2, 3×3) or F(4×4, 3×3) in blocks instead
/// ([`winograd_blocked`], [`winograd_4x4`]), where this machine measured it faster. Into at most four channels
/// at stride 1, each output row is summed from shifted input rows instead ([`shifted_rows`]).
// x: [N, C_in, H, W]   w: [C_out, C_in, kH, kW]   bias: [C_out]   ->   y: [N, C_out, OH, OW]
pub fn conv2d_forward<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry) -> Vec<T> {
    forward_then(x, w, bias, g, false)
}

/// relu([`conv2d_forward`]), bit for bit: the cuts that write y a group of images per task
/// (images side by side or one per GEMM, the indirect GEMM) apply the ReLU to each group as
/// they finish it, while it is still in cache; the others after the cut, in place. Either way
/// one pass over y less than the ReLU as its own op.
// x: [N, C_in, H, W]   w: [C_out, C_in, kH, kW]   bias: [C_out]   ->   y: [N, C_out, OH, OW]
pub fn conv2d_forward_relu<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry) -> Vec<T> {
    forward_then(x, w, bias, g, true)
}

/// [`conv2d_forward`], then a ReLU when `relu`; the cut is chosen without it.
fn forward_then<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry, relu: bool) -> Vec<T> {
    let run = |cut: &str| forward_by_cut(cut, x, w, bias, g, false);
    let mut cuts = vec![tuning::SIDE_BY_SIDE];
    if images_per_gemm(g) > 1 {
        cuts.push(tuning::PER_IMAGE);
    }
    if g.live_taps().is_none() {
        cuts.push(tuning::PHASE_GRID);
    }
    if winograd_fits(g) {
        cuts.extend([tuning::WINOGRAD, tuning::WINOGRAD_4X4]);
    }
    if indirect_offered::<T>(g) {
        cuts.push(tuning::INDIRECT);
    }
    // Into a few channels at stride 1 the GEMM's tiles are mostly empty rows, and the rows'
    // sums ran 3.6–7 times faster (`cpu::shifted_rows`): the rule takes them there.
    let rule = if shifted_rows::applies(g) {
        cuts.push(tuning::SHIFTED_ROWS);
        tuning::SHIFTED_ROWS
    } else {
        tuning::SIDE_BY_SIDE
    };
    let cut = if cuts.len() > 1 {
        tuned_choice::<T>("convolution's cut", "conv2d_forward", g, &cuts, rule, |cut| drop(run(cut)))
    } else {
        rule.to_string()
    };
    forward_by_cut(&cut, x, w, bias, g, relu)
}

/// The indirect GEMM is timed only with at least this many input and output channels: its
/// micro-kernel runs C_in deep a tap and fills C_out of a tile's 32 columns, and with 3 of
/// either it was 2.5–6.4 times slower than the best cut on every such layer of B1 and B2 (Xeon
/// model 207, `docs/notebooks/bench/indirect_gemm_b2_xeon207.txt`).
const INDIRECT_MIN_CHANNELS: usize = 8;

/// Whether the tuner times the indirect GEMM (forward, backward-data's full correlation, the
/// weight gradient) at `g`: with channels enough, where its vector tile runs. Its portable tile
/// never won, and timing it cost seconds a B3 run.
fn indirect_offered<T: Float>(g: &Conv2dGeometry) -> bool {
    g.c_in.min(g.c_out) >= INDIRECT_MIN_CHANNELS && indirect::has_vector_tile::<T>()
}

/// [`conv2d_forward`] by the cut the tuner names: images side by side, one per GEMM,
/// Winograd (F(2×2, 3×3) or F(4×4, 3×3)) for a geometry where [`winograd_fits`], the phase
/// grid, or the indirect GEMM (on the taps that reach the input, as im2col's cuts crop them);
/// then a ReLU when `relu` (see [`conv2d_forward_relu`]).
fn forward_by_cut<T: Float>(cut: &str, x: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry, relu: bool) -> Vec<T> {
    let mut y = match cut {
        tuning::INDIRECT => {
            return match g.live_taps() {
                Some(live) => indirect::conv2d_forward_then(x, &crop_to_live(&live, w, g), bias, &live.geometry, relu),
                None => indirect::conv2d_forward_then(x, w, bias, g, relu),
            }
        }
        tuning::WINOGRAD => winograd_blocked::conv2d_forward(x, w, bias, g),
        tuning::WINOGRAD_4X4 => winograd_4x4::conv2d_forward(x, w, bias, g),
        tuning::PHASE_GRID => phase_grid::conv2d_forward(x, w, bias, g),
        tuning::SHIFTED_ROWS => shifted_rows::conv2d_forward(x, w, bias, g),
        _ => return forward_in_strips(x, w, bias, g, strip_of(g, cut), relu),
    };
    if relu {
        relu_in_place_parallel(&mut y);
    }
    y
}

/// [`conv2d_forward`], one image at a time in strips of `strip` output rows when given (the
/// tests walk every strip height), else as [`strip_rows`] and [`images_per_gemm`] choose; with
/// `relu`, each task's images through a ReLU once they are written.
fn forward_in_strips<T: Float>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    g: &Conv2dGeometry,
    strip: Option<usize>,
    relu: bool,
) -> Vec<T> {
    if let Some(live) = g.live_taps() {
        return forward_in_strips(x, &crop_to_live(&live, w, g), bias, &live.geometry, strip, relu);
    }
    let (k, plane, out_img) = (g.col_rows(), g.out_plane(), g.out_image());
    let mut y = vec![T::ZERO; g.batch * out_img];
    if y.is_empty() {
        return y;
    }
    let w_mat = MatRef::row_major(w, g.c_out, k); // [C_out, K]
    let group = if strip.is_some() { 1 } else { images_per_gemm(g) };
    let pointwise = g.is_pointwise() && group == 1 && strip.is_none();
    let strip = match strip {
        Some(rows) => rows.clamp(1, g.oh.max(1)),
        None if group == 1 => strip_rows(g),
        None => g.oh,
    };
    let plan = unfolding_for_strips(g, strip);
    let col_len = if pointwise { 0 } else { k * group * strip * g.ow };
    let per_task = min_groups_per_task(g.batch, group);
    let product = product_for_tasks(g.batch.div_ceil(group).div_ceil(per_task));
    y.par_chunks_mut(group * out_img).enumerate().with_min_len(per_task).for_each_init(
        || {
            let col = vec![T::ZERO; col_len];
            let y_buf = vec![T::ZERO; if group == 1 { 0 } else { out_img * group }];
            (col, y_buf)
        },
        |(col, y_buf), (gi, y_g)| {
            let (n0, images) = (gi * group, y_g.len() / out_img);
            let cols = images * plane;
            let accumulate = init_planes(y_g, bias, plane);
            if k == 0 {
                if relu {
                    relu_in_place(y_g);
                }
                return;
            }
            if images == 1 && !pointwise {
                // One image, a strip of output rows at a time: y[:, strip] = W · col(strip).
                let x_n = &x[n0 * g.in_image()..(n0 + 1) * g.in_image()];
                for rows in strips(g.oh, strip) {
                    let (first, cols) = (rows.start * g.ow, rows.len() * g.ow);
                    im2col(x_n, g, &plan, &mut col[..k * cols], cols, 0, rows);
                    let col = MatRef::row_major(&col[..k * cols], k, cols);
                    product(w_mat, col, &mut y_g[first..], plane, accumulate);
                }
            } else {
                let col = unfold_images(x, g, &plan, n0, images, pointwise, col);
                let col = MatRef::row_major(col, k, cols);
                if images == 1 {
                    product(w_mat, col, y_g, plane, accumulate);
                } else {
                    product(w_mat, col, &mut y_buf[..g.c_out * cols], cols, false);
                    from_channel_major(&y_buf[..g.c_out * cols], images, g.c_out, plane, y_g, accumulate);
                }
            }
            if relu {
                relu_in_place(y_g);
            }
        },
    );
    y
}

/// dx for y = conv2d(x, w). In the forward pass this was y_n = W · col_n with
/// col_n = im2col(x_n), so dcol_n = Wᵀ · dy_n and, im2col being linear, dx_n = im2colᵀ(dcol_n)
/// = col2im(dcol_n).
/// With a `bias`, bias\[ci\] is added to every pixel of channel ci of dx: conv_transpose2d's
/// forward is this with its bias, and needs no second pass for it. Images with small outputs
/// share one GEMM, as in [`conv2d_forward`].
///
/// At stride 1 there is a second way, the full correlation
/// (`Conv2dGeometry::full_correlation`): a forward convolution of dy. The rule takes it where one image's dcol would not fit in cache
/// (`strip_rows`) and the correlation's GEMM has rows enough (C_in of them) to fill the
/// micro-kernel's; with tuning on, it is timed instead beside col2im, the same correlation on
/// the phase grid (`phase_grid::conv2d_backward_data`) and Winograd (the first time this
/// machine meets the geometry).
// grad_y: [N, C_out, OH, OW]   w: [C_out, C_in, kH, kW]   bias: [C_in]   ->   dx: [N, C_in, H, W]
pub fn conv2d_backward_data<T: Float>(grad_y: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry) -> Vec<T> {
    backward_data_then(grad_y, w, bias, g, false)
}

/// relu([`conv2d_backward_data`]) with its bias, bit for bit: conv_transpose2d's forward and
/// the ReLU after it. As in [`conv2d_forward_relu`], col2im and the ways that run as a forward
/// apply it to each task's images as they finish them, the others after the way, in place.
// grad_y: [N, C_out, OH, OW]   w: [C_out, C_in, kH, kW]   bias: [C_in]   ->   dx: [N, C_in, H, W]
pub fn conv2d_backward_data_relu<T: Float>(grad_y: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry) -> Vec<T> {
    backward_data_then(grad_y, w, bias, g, true)
}

/// [`conv2d_backward_data`], then a ReLU when `relu`; the way is chosen without it.
fn backward_data_then<T: Float>(grad_y: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry, relu: bool) -> Vec<T> {
    if let Some(live) = g.live_taps() {
        return backward_data_then(grad_y, &crop_to_live(&live, w, g), bias, &live.geometry, relu);
    }
    let run = |way: &str| backward_data_by_way(way, grad_y, w, bias, g, false);
    let Some(full) = g.full_correlation() else {
        // The phase grid computes strided backward-data too (its ladder rung runs it), but by
        // sub-pixel classes whose GEMMs have only C_in rows, and it lost to col2im on every
        // strided layer of B1 and B5 (25–170 % slower, Xeon model 207), so it is not timed.
        return backward_data_by_way(tuning::COL2IM, grad_y, w, bias, g, relu);
    };
    let rule = if strip_rows(g) < g.oh && g.c_in >= FULL_CORRELATION_MIN_CHANNELS {
        tuning::FULL_CORRELATION
    } else {
        tuning::COL2IM
    };
    let mut ways = vec![tuning::COL2IM, tuning::FULL_CORRELATION];
    if phase_grid::backward_data_applies(g) {
        ways.push(tuning::PHASE_GRID);
    }
    if winograd_fits(&full) {
        ways.extend([tuning::WINOGRAD, tuning::WINOGRAD_4X4]);
    }
    if indirect_offered::<T>(&full) {
        ways.push(tuning::INDIRECT);
    }
    let way = tuned_choice::<T>("convolution's way", "conv2d_backward_data", g, &ways, rule, |way| drop(run(way)));
    backward_data_by_way(&way, grad_y, w, bias, g, relu)
}

/// Whether Winograd is a candidate at `g`: it computes the geometry, and the whole 3×3 kernel
/// reaches the input (on a plane so small that padding hides taps, im2col's cropped kernel
/// is no longer 3×3 and Winograd's tiles would be mostly padding).
fn winograd_fits(g: &Conv2dGeometry) -> bool {
    winograd::applies(g) && g.live_taps().is_none()
}

/// [`conv2d_backward_data`] by the way the tuner names: col2im; at stride 1 as a forward of
/// dy, the full correlation, in strips, by the indirect GEMM or (where [`winograd_fits`] it) by
/// Winograd; or, without dilation, on the phase grid (`phase_grid::conv2d_backward_data`);
/// then a ReLU when `relu` (see [`conv2d_backward_data_relu`]).
fn backward_data_by_way<T: Float>(
    way: &str,
    grad_y: &[T],
    w: &[T],
    bias: Option<&[T]>,
    g: &Conv2dGeometry,
    relu: bool,
) -> Vec<T> {
    let full = || g.full_correlation().expect("the full correlation's ways are offered at stride 1 only");
    let mut dx = match way {
        tuning::FULL_CORRELATION => {
            return forward_in_strips(grad_y, &flipped_transpose(w, g), bias, &full(), None, relu)
        }
        tuning::INDIRECT => {
            return forward_by_cut(tuning::INDIRECT, grad_y, &flipped_transpose(w, g), bias, &full(), relu)
        }
        tuning::WINOGRAD => winograd_blocked::conv2d_forward(grad_y, &flipped_transpose(w, g), bias, &full()),
        tuning::WINOGRAD_4X4 => winograd_4x4::conv2d_forward(grad_y, &flipped_transpose(w, g), bias, &full()),
        tuning::PHASE_GRID => phase_grid::conv2d_backward_data(grad_y, w, bias, g),
        _ => return backward_data_by_col2im(grad_y, w, bias, g, relu),
    };
    if relu {
        relu_in_place_parallel(&mut dx);
    }
    dx
}

/// Backward-data runs as a [`Conv2dGeometry::full_correlation`] only into at least this many
/// input channels: into 3 (an RGB input layer) the correlation's GEMM would have 3 rows, and ran 2.5× slower
/// than col2im on resnet-bn's first layer (B3, `cargo bench --bench conv_layers`).
const FULL_CORRELATION_MIN_CHANNELS: usize = 16;

/// W′ of [`Conv2dGeometry::full_correlation`]: [C_out, C_in, kH, kW] → [C_in, C_out, kH, kW],
/// each kernel turned by 180°.
fn flipped_transpose<T: Float>(w: &[T], g: &Conv2dGeometry) -> Vec<T> {
    let taps = g.kh * g.kw;
    let mut out = vec![T::ZERO; w.len()];
    for (co, filters) in w.chunks_exact(g.c_in * taps).enumerate() {
        for (ci, kernel) in filters.chunks_exact(taps).enumerate() {
            let dst = &mut out[(ci * g.c_out + co) * taps..][..taps];
            dst.iter_mut().zip(kernel.iter().rev()).for_each(|(d, v)| *d = *v);
        }
    }
    out
}

/// [`conv2d_backward_data`] as dcol = Wᵀ · dy, then col2im.
fn backward_data_by_col2im<T: Float>(
    grad_y: &[T],
    w: &[T],
    bias: Option<&[T]>,
    g: &Conv2dGeometry,
    relu: bool,
) -> Vec<T> {
    if let Some(live) = g.live_taps() {
        return backward_data_by_col2im(grad_y, &crop_to_live(&live, w, g), bias, &live.geometry, relu);
    }
    let (k, plane, in_img, out_img) = (g.col_rows(), g.out_plane(), g.in_image(), g.out_image());
    let mut dx = vec![T::ZERO; g.batch * in_img];
    if dx.is_empty() {
        return dx;
    }
    let w_t = MatRef::row_major(w, g.c_out, k).t(); // Wᵀ: [K, C_out]
    let group = images_per_gemm(g);
    let pointwise = g.is_pointwise() && group == 1;
    let plan = Unfolding::for_col2im(g);
    let per_task = min_groups_per_task(g.batch, group);
    let product = product_for_tasks(g.batch.div_ceil(group).div_ceil(per_task));
    dx.par_chunks_mut(group * in_img).enumerate().with_min_len(per_task).for_each_init(
        || {
            let dcol = vec![T::ZERO; if pointwise { 0 } else { k * group * plane }];
            let dy_buf = vec![T::ZERO; if group == 1 { 0 } else { out_img * group }];
            (dcol, dy_buf)
        },
        |(dcol, dy_buf), (gi, dx_g)| {
            let (n0, images) = (gi * group, dx_g.len() / in_img);
            let cols = images * plane;
            let accumulate = init_planes(dx_g, bias, g.h * g.w);
            if g.c_out == 0 {
                if relu {
                    relu_in_place(dx_g);
                }
                return;
            }
            let dy = &grad_y[n0 * out_img..(n0 + images) * out_img];
            let dy: &[T] = if images == 1 {
                dy
            } else {
                to_channel_major(dy, images, g.c_out, plane, dy_buf);
                &dy_buf[..g.c_out * cols]
            };
            let dy = MatRef::row_major(dy, g.c_out, cols);
            if pointwise {
                product(w_t, dy, dx_g, plane, accumulate);
            } else {
                product(w_t, dy, &mut dcol[..k * cols], cols, false);
                for (i, dx_n) in dx_g.chunks_exact_mut(in_img).enumerate() {
                    col2im(&mut dcol[..k * cols], g, &plan, cols, i * plane, dx_n);
                }
            }
            if relu {
                relu_in_place(dx_g);
            }
        },
    );
    dx
}

/// dW for y = conv2d(x, w). In the forward pass this was y_n = W · col_n for every image n
/// with the same W, so dW = Σ_n dy_n · col_nᵀ.
///
/// Computed transposed, dWᵀ = Σ_n col_n · dy_nᵀ (`[K, C_out]`): the big operand col_n is then
/// read row-major by the GEMM (faster than packing col_nᵀ). The batch is split
/// into one contiguous part per thread; each part sums its images into a private partial dWᵀ
/// (images with small outputs side by side, one GEMM per group, as in [`conv2d_forward`]),
/// and the partials are added in order while transposing, so the result does not depend on
/// scheduling. On planes of at most `DW_ROWS_MAX_PLANE` pixels (ResNet-18's last two stages at
/// 32×32 input) the GEMM's k is only a few hundred columns and dW itself, dy · colᵀ, is faster
/// (`cargo bench --bench train_step -- --workloads B2`; docs/notebooks/performance.md has both
/// measurements); its partials then add without the transpose. So it is with at most
/// `DW_ROWS_MAX_CHANNELS` output channels. With tuning on, the other cuts are timed against it
/// the first time this machine meets the geometry: where the rule puts images side by side,
/// one image per GEMM and dW itself with images side by side; where enough of each tile is
/// real channels, the phase grid's channel-blocked operands; with 8 channels or more where its
/// vector tile runs, the indirect GEMM (`cpu::indirect_weight`); on output planes of 8×8 and
/// larger, the direct convolution (`cpu::direct_weight`); and at 3×3 kernels, stride 1 and 16
/// channels or more on either side, Winograd's F(3×3, 4×4) (`cpu::winograd_weight`).
// grad_y: [N, C_out, OH, OW]   x: [N, C_in, H, W]   ->   dw: [C_out, C_in, kH, kW]
pub fn conv2d_backward_weight<T: Float>(grad_y: &[T], x: &[T], g: &Conv2dGeometry) -> Vec<T> {
    let few_outputs = g.c_out <= DW_ROWS_MAX_CHANNELS;
    // With few outputs side by side already computes dW itself: the third cut would be the same.
    // The other cuts differ from the rule's only where it puts images side by side.
    let mut cuts = vec![tuning::SIDE_BY_SIDE];
    if images_per_gemm(g) > 1 {
        cuts.push(tuning::PER_IMAGE);
        if !few_outputs {
            cuts.push(tuning::SIDE_BY_SIDE_DW_ROWS);
        }
    }
    if phase_grid::weight_gradient_applies::<T>(g) {
        cuts.push(tuning::CHANNEL_BLOCKED);
    }
    if indirect_offered::<T>(g) {
        cuts.push(tuning::INDIRECT);
    }
    if g.out_plane() >= DIRECT_MIN_OUTPUT_PLANE && direct_weight::has_vector_kernel::<T>() {
        cuts.push(tuning::DIRECT);
    }
    if winograd_fits(g) && g.c_in.min(g.c_out) >= WINOGRAD_WEIGHT_MIN_CHANNELS {
        cuts.push(tuning::WINOGRAD_4X4);
    }
    let run = |cut: &str| backward_weight_by_cut(cut, grad_y, x, g);
    let cut = if cuts.len() > 1 {
        let rule = tuning::SIDE_BY_SIDE;
        tuned_choice::<T>("convolution's cut", "conv2d_backward_weight", g, &cuts, rule, |cut| drop(run(cut)))
    } else {
        tuning::SIDE_BY_SIDE.to_string()
    };
    run(&cut)
}

/// [`conv2d_backward_weight`] by the cut `cut`, one of its candidates at `g`.
fn backward_weight_by_cut<T: Float>(cut: &str, grad_y: &[T], x: &[T], g: &Conv2dGeometry) -> Vec<T> {
    let dw_rows = g.c_out <= DW_ROWS_MAX_CHANNELS || cut == tuning::SIDE_BY_SIDE_DW_ROWS;
    match cut {
        tuning::CHANNEL_BLOCKED => phase_grid::conv2d_backward_weight(grad_y, x, g),
        tuning::DIRECT => direct_weight::conv2d_backward_weight(grad_y, x, g),
        tuning::WINOGRAD_4X4 => winograd_weight::conv2d_backward_weight(grad_y, x, g),
        tuning::INDIRECT => match g.live_taps() {
            Some(live) => {
                embed_live_grad(&live, &indirect_weight::conv2d_backward_weight(grad_y, x, &live.geometry), g)
            }
            None => indirect_weight::conv2d_backward_weight(grad_y, x, g),
        },
        _ => backward_weight_in_strips(grad_y, x, g, strip_of(g, cut), dw_rows),
    }
}

/// The direct weight gradient is timed only on output planes of at least this many pixels.
/// Its passes over an image's pixels, one for each block of columns and output channels, read
/// the padding where it lies: on ResNet-18's 4×4, 2×2 and 1×1 planes it ran 1.4–44 times
/// slower than the best cut, on 8×8 planes 0.96–1.4 times (Zen 5,
/// `docs/notebooks/bench/direct_weight_gradient_zen5.txt`).
const DIRECT_MIN_OUTPUT_PLANE: usize = 64;

/// Winograd's weight gradient is timed only with at least this many channels on either side
/// (here and for the nearest-upsampled convolution, `cpu::upsampled_conv`). Its transforms run
/// along rows of channels, and its GEMMs are C_out by C_in: on resnet-bn's 3→64 and 64→3 layers
/// (64×64 planes, batch 32) it took 15.7 and 11.8 ms against the direct cut's 2.9 and 6.4 (Zen 5).
pub(crate) const WINOGRAD_WEIGHT_MIN_CHANNELS: usize = 16;

/// With a handful of output channels, dWᵀ's GEMM is C_out columns wide, a sliver of the
/// micro-kernel's 16 or 32; as dW they are C_out of its 6 or 14 rows, the smaller waste
/// (resnet-bn's 64→3 output layer in B3: 21.5–21.7 → 18.0–18.2 ms, `cargo bench --bench conv_layers`).
const DW_ROWS_MAX_CHANNELS: usize = 4;

/// [`conv2d_backward_weight`], one image at a time in strips of `strip` output rows when given
/// (the tests walk every strip height), else as [`strip_rows`] and [`images_per_gemm`] choose.
/// Each GEMM computes dW = dy·colᵀ ([C_out, K]) when `dw_rows` or the planes are tiny, else
/// dWᵀ = col·dyᵀ ([K, C_out], whose partials are summed and transposed at the end).
fn backward_weight_in_strips<T: Float>(
    grad_y: &[T],
    x: &[T],
    g: &Conv2dGeometry,
    strip: Option<usize>,
    dw_rows: bool,
) -> Vec<T> {
    if let Some(live) = g.live_taps() {
        return embed_live_grad(&live, &backward_weight_in_strips(grad_y, x, &live.geometry, strip, dw_rows), g);
    }
    let (k, plane, out_img) = (g.col_rows(), g.out_plane(), g.out_image());
    let mut dw = vec![T::ZERO; g.c_out * k];
    if dw.is_empty() || g.batch == 0 {
        return dw;
    }
    let group = if strip.is_some() { 1 } else { images_per_gemm(g) };
    // Whole groups per part, one part per thread (fewer when there are fewer groups).
    let groups = g.batch.div_ceil(group);
    let parts = groups.min(rayon::current_num_threads()).max(1);
    let per_part = groups.div_ceil(parts) * group;
    let product = product_for_tasks(parts);
    let pointwise = g.is_pointwise() && group == 1 && strip.is_none();
    const DW_ROWS_MAX_PLANE: usize = 4;
    let as_dw_rows = dw_rows || plane <= DW_ROWS_MAX_PLANE;
    let strip = match strip {
        Some(rows) => rows.clamp(1, g.oh.max(1)),
        None if group == 1 && !as_dw_rows => strip_rows(g),
        None => g.oh,
    };
    let plan = unfolding_for_strips(g, strip);
    // Each partial: dWᵀ [K, C_out], or dW [C_out, K] when `as_dw_rows`.
    let partials: Vec<Vec<T>> = (0..g.batch.div_ceil(per_part))
        .into_par_iter()
        .map(|part| {
            let mut partial = vec![T::ZERO; k * g.c_out];
            let mut col = vec![T::ZERO; if pointwise { 0 } else { k * group * strip * g.ow }];
            let mut dy_buf = vec![T::ZERO; if group == 1 { 0 } else { out_img * group }];
            let end = ((part + 1) * per_part).min(g.batch);
            for n0 in (part * per_part..end).step_by(group) {
                let images = group.min(end - n0);
                if strip < g.oh {
                    // One image, a strip of output rows at a time: dWᵀ += col(strip) · dy[:, strip]ᵀ.
                    let (x_n, dy_n) = (&x[n0 * g.in_image()..(n0 + 1) * g.in_image()], &grad_y[n0 * out_img..]);
                    for rows in strips(g.oh, strip) {
                        let (first, cols) = (rows.start * g.ow, rows.len() * g.ow);
                        im2col(x_n, g, &plan, &mut col[..k * cols], cols, 0, rows);
                        let col = MatRef::row_major(&col[..k * cols], k, cols);
                        let dy = MatRef { data: &dy_n[first..], rows: g.c_out, cols, row_stride: plane, col_stride: 1 };
                        match as_dw_rows {
                            true => product(dy, col.t(), &mut partial, k, true),
                            false => product(col, dy.t(), &mut partial, g.c_out, true),
                        }
                    }
                    continue;
                }
                let cols = images * plane;
                let col = unfold_images(x, g, &plan, n0, images, pointwise, &mut col);
                let dy = &grad_y[n0 * out_img..(n0 + images) * out_img];
                let dy: &[T] = if images == 1 {
                    dy
                } else {
                    to_channel_major(dy, images, g.c_out, plane, &mut dy_buf);
                    &dy_buf[..g.c_out * cols]
                };
                let (dy, col) = (MatRef::row_major(dy, g.c_out, cols), MatRef::row_major(col, k, cols));
                if as_dw_rows {
                    product(dy, col.t(), &mut partial, k, true);
                } else {
                    product(col, dy.t(), &mut partial, g.c_out, true);
                }
            }
            partial
        })
        .collect();
    if as_dw_rows {
        dw.par_chunks_mut(k).enumerate().for_each(|(co, dw_co)| {
            for p in &partials {
                for (d, v) in dw_co.iter_mut().zip(&p[co * k..(co + 1) * k]) {
                    *d += *v;
                }
            }
        });
        return dw;
    }
    // The partials hold dWᵀ: dW's row co is their column co. Walking one column at a time
    // would read a new cache line for every element (the column's entries lie C_out apart);
    // a block of columns reads each line whole and writes the block's rows side by side.
    const CO_BLOCK: usize = 16;
    dw.par_chunks_mut(k * CO_BLOCK).enumerate().for_each(|(block, dw_block)| {
        let (co0, rows) = (block * CO_BLOCK, dw_block.len() / k);
        for p in &partials {
            for r in 0..k {
                for (j, &v) in p[r * g.c_out + co0..][..rows].iter().enumerate() {
                    dw_block[j * k + r] += v;
                }
            }
        }
    });
    dw
}

// ------------------------------------------------------------------------ implicit GEMM

/// conv2d's forward as an implicit GEMM: Y = W · (col_n | col_n+1 | …) for groups of images
/// side by side (as many as [`images_per_gemm`] puts in one GEMM), with the unfolded operand
/// never written: the GEMM packs each of its B panels from the images themselves
/// ([`pack_unfolded_panel`]). One image a GEMM left ResNet-18's and B1's deep layers with
/// 16–64 columns, so the weight was packed once for every few columns.
// x: [N, C_in, H, W]   w: [C_out, C_in, kH, kW]   bias: [C_out]   ->   y: [N, C_out, OH, OW]
fn forward_by_implicit_gemm<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry) -> Vec<T> {
    let (k, plane, out_img) = (g.col_rows(), g.out_plane(), g.out_image());
    let mut y = vec![T::ZERO; g.batch * out_img];
    if y.is_empty() {
        return y;
    }
    let w_mat = MatRef::row_major(w, g.c_out, k); // [C_out, K]
    let (ty, tx) = geometry_taps(g);
    let group = images_per_gemm(g);
    y.par_chunks_mut(group * out_img).enumerate().with_min_len(min_groups_per_task(g.batch, group)).for_each_init(
        || vec![T::ZERO; if group == 1 { 0 } else { out_img * group }],
        |y_buf, (gi, y_g)| {
            let (n0, images) = (gi * group, y_g.len() / out_img);
            let cols = images * plane;
            let accumulate = init_planes(y_g, bias, plane);
            if k == 0 {
                return;
            }
            let x_g = &x[n0 * g.in_image()..(n0 + images) * g.in_image()];
            let pack = |panel: BPanel, out: &mut [T]| pack_unfolded_panel(x_g, g, &ty, &tx, panel, out);
            if images == 1 {
                gemm_packing_b(w_mat, cols, &pack, y_g, plane, accumulate);
            } else {
                gemm_packing_b(w_mat, cols, &pack, &mut y_buf[..g.c_out * cols], cols, false);
                from_channel_major(&y_buf[..g.c_out * cols], images, g.c_out, plane, y_g, accumulate);
            }
        },
    );
    y
}

/// One packed B panel of the forward's GEMM, written from the images: rows `p0..p0 + kc` and
/// columns `j0..j0 + cols` of (col_0 | col_1 | …), the images' im2col side by side (see the
/// module docs), each row `nr` long and zero past `cols`; what [`im2col`] and then the GEMM's
/// packing would write, in one copy. A row of the panel is one tap (ci, ki, kj) over a run of
/// output pixels, so it is read an output row at a time, passing from one image's last row to
/// the next image's first: padding rows and columns are zeros, the rest a strided copy.
// x: [images, C_in, H, W]   out: [kc, nr]
fn pack_unfolded_panel<T: Float>(
    x: &[T],
    g: &Conv2dGeometry,
    ty: &[AxisTaps],
    tx: &[AxisTaps],
    panel: BPanel,
    out: &mut [T],
) {
    let BPanel { j0, cols, p0, kc, nr } = panel;
    let (taps, [sh, sw], plane, in_plane) = (g.kh * g.kw, g.stride, g.out_plane(), g.h * g.w);
    // The panel's first row is tap (ki, kj) of channel ci, its first column output pixel
    // (oy0, ox0) of image n0; the rows after it walk the taps in order.
    let (mut ci, tap) = (p0 / taps, p0 % taps);
    let (mut ki, mut kj) = (tap / g.kw, tap % g.kw);
    let (n0, pixel) = (j0 / plane, j0 % plane);
    let (oy0, ox0) = (pixel / g.ow, pixel % g.ow);
    for dst in out[..kc * nr].chunks_exact_mut(nr) {
        let (ky, kx) = (&ty[ki], &tx[kj]);
        dst[cols..].fill(T::ZERO);
        let (mut n, mut oy, mut ox) = (n0, oy0, ox0);
        let mut done = 0;
        while done < cols {
            let run = (g.ow - ox).min(cols - done);
            let d = &mut dst[done..done + run];
            if (ky.lo..ky.hi).contains(&oy) {
                let iy = ky.i0 + (oy - ky.lo) * sh;
                let x_c = &x[(n * g.c_in + ci) * in_plane..][..in_plane];
                // Output columns ox..ox + run; those in kx.lo..kx.hi read the input, the rest padding.
                let live_start = ox.max(kx.lo).min(ox + run);
                let live_end = (ox + run).min(kx.hi).max(live_start);
                d[..live_start - ox].fill(T::ZERO);
                d[live_end - ox..].fill(T::ZERO);
                if live_start < live_end {
                    let ix = kx.i0 + (live_start - kx.lo) * sw;
                    copy_strided(&mut d[live_start - ox..live_end - ox], &x_c[iy * g.w + ix..(iy + 1) * g.w], sw);
                }
            } else {
                d.fill(T::ZERO);
            }
            done += run;
            (oy, ox) = (oy + 1, 0);
            if oy == g.oh {
                (n, oy) = (n + 1, 0);
            }
        }
        kj += 1;
        if kj == g.kw {
            (ki, kj) = (ki + 1, 0);
            if ki == g.kh {
                (ci, ki) = (ci + 1, 0);
            }
        }
    }
}

// ------------------------------------------------------------------------ the ladder

/// The rungs of the CPU convolution ladder, plainest first (docs/cpu-gemm.md's last section):
/// each kernel below can run on any of them, so that the tests hold every rung to the
/// reference tier and `cargo bench --bench conv -- conv_ladder` shows what each step buys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvRung {
    /// The definition: the reference tier's loop nest (`reference::conv::for_each_tap`) in this
    /// element type, on one thread.
    Direct,
    /// im2col of one whole image and one GEMM per image (forward, backward-weight); Wᵀ · dy and
    /// col2im for backward-data (images side by side on small planes).
    Im2col,
    /// The forward as an implicit GEMM, images side by side as `images_per_gemm` groups them:
    /// the GEMM packs its B panels straight from the images (`pack_unfolded_panel`), so the
    /// unfolded operand is never written.
    /// Backward-data at stride 1 is a forward of dy (the full correlation) and runs the same
    /// way; the other kernels have no implicit form here and run as on `Im2col`.
    ImplicitGemm,
    /// The implicit GEMM on the phase grid (`cpu::phase_grid`): the input split into its stride
    /// phases once, and every B panel copied out of them in contiguous runs, the output
    /// computed `(kW − 1)·dW / sW` columns wider and cropped. Backward-data without dilation
    /// runs by sub-pixel classes, each a stride-1 correlation of dy on the same grid (at stride
    /// 1, the full correlation), and backward-weight with dy and the phases in channel-blocked
    /// layouts that the micro-kernel reads as its packed panels.
    PhaseGrid,
    /// Winograd's F(2×2, 3×3) (`cpu::winograd`): 3×3 kernels at stride 1 as 16 GEMMs between
    /// transformed kernels and input tiles, 4/9 of the multiply-adds; the forward where it
    /// applies, and backward-data as the forward of the full correlation (also 3×3, stride 1).
    /// Other geometries, and backward-weight, run as on `Im2col`.
    Winograd,
    /// What the ops run: images side by side on small planes, strips of output rows on large
    /// ones, and stride-1 backward-data as the full correlation.
    Chosen,
}

impl ConvRung {
    /// Every rung, plainest first.
    pub const ALL: [ConvRung; 6] = [
        ConvRung::Direct,
        ConvRung::Im2col,
        ConvRung::ImplicitGemm,
        ConvRung::PhaseGrid,
        ConvRung::Winograd,
        ConvRung::Chosen,
    ];

    /// The rung's name in benchmarks and test messages.
    pub fn name(self) -> &'static str {
        match self {
            ConvRung::Direct => "direct",
            ConvRung::Im2col => "im2col",
            ConvRung::ImplicitGemm => "implicit-gemm",
            ConvRung::PhaseGrid => "phase-grid",
            ConvRung::Winograd => "winograd",
            ConvRung::Chosen => "chosen",
        }
    }
}

/// [`conv2d_forward`] on `rung`.
// x: [N, C_in, H, W]   w: [C_out, C_in, kH, kW]   bias: [C_out]   ->   y: [N, C_out, OH, OW]
pub fn conv2d_forward_on<T: Float>(rung: ConvRung, x: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry) -> Vec<T> {
    match rung {
        ConvRung::Direct => {
            let plane = g.out_plane().max(1);
            let mut y: Vec<T> = (0..g.y_len()).map(|i| bias.map_or(T::ZERO, |b| b[(i / plane) % g.c_out])).collect();
            reference::for_each_tap(g, |yi, xi, wi| y[yi] += x[xi] * w[wi]);
            y
        }
        ConvRung::Im2col => forward_in_strips(x, w, bias, g, Some(g.oh), false),
        ConvRung::ImplicitGemm => forward_by_implicit_gemm(x, w, bias, g),
        ConvRung::PhaseGrid => phase_grid::conv2d_forward(x, w, bias, g),
        ConvRung::Winograd if winograd::applies(g) => winograd::conv2d_forward(x, w, bias, g),
        ConvRung::Winograd => forward_in_strips(x, w, bias, g, Some(g.oh), false),
        ConvRung::Chosen => conv2d_forward(x, w, bias, g),
    }
}

/// [`conv2d_backward_data`] on `rung`.
// grad_y: [N, C_out, OH, OW]   w: [C_out, C_in, kH, kW]   ->   dx: [N, C_in, H, W]
pub fn conv2d_backward_data_on<T: Float>(rung: ConvRung, grad_y: &[T], w: &[T], g: &Conv2dGeometry) -> Vec<T> {
    match rung {
        ConvRung::Direct => {
            let mut dx = vec![T::ZERO; g.x_len()];
            reference::for_each_tap(g, |yi, xi, wi| dx[xi] += grad_y[yi] * w[wi]);
            dx
        }
        ConvRung::Im2col => backward_data_by_col2im(grad_y, w, None, g, false),
        ConvRung::ImplicitGemm => match g.full_correlation() {
            Some(full) => forward_by_implicit_gemm(grad_y, &flipped_transpose(w, g), None, &full),
            None => backward_data_by_col2im(grad_y, w, None, g, false),
        },
        ConvRung::PhaseGrid if phase_grid::backward_data_applies(g) => {
            phase_grid::conv2d_backward_data(grad_y, w, None, g)
        }
        ConvRung::PhaseGrid => backward_data_by_col2im(grad_y, w, None, g, false),
        ConvRung::Winograd => match g.full_correlation().filter(winograd::applies) {
            Some(full) => winograd::conv2d_forward(grad_y, &flipped_transpose(w, g), None, &full),
            None => backward_data_by_col2im(grad_y, w, None, g, false),
        },
        ConvRung::Chosen => conv2d_backward_data(grad_y, w, None, g),
    }
}

/// [`conv2d_backward_weight`] on `rung`.
// grad_y: [N, C_out, OH, OW]   x: [N, C_in, H, W]   ->   dw: [C_out, C_in, kH, kW]
pub fn conv2d_backward_weight_on<T: Float>(rung: ConvRung, grad_y: &[T], x: &[T], g: &Conv2dGeometry) -> Vec<T> {
    match rung {
        ConvRung::Direct => {
            let mut dw = vec![T::ZERO; g.weight_len()];
            reference::for_each_tap(g, |yi, xi, wi| dw[wi] += grad_y[yi] * x[xi]);
            dw
        }
        ConvRung::PhaseGrid => phase_grid::conv2d_backward_weight(grad_y, x, g),
        ConvRung::Im2col | ConvRung::ImplicitGemm | ConvRung::Winograd => {
            backward_weight_in_strips(grad_y, x, g, Some(g.oh), false)
        }
        ConvRung::Chosen => conv2d_backward_weight(grad_y, x, g),
    }
}

/// db for y = conv2d(x, w) + b: b\[c\] was added to every y[n, c, oy, ox], so db\[c\] is their sum.
// grad_y: [N, C_out, OH, OW]   ->   db: [C_out]
pub fn conv2d_backward_bias<T: Float>(grad_y: &[T], [batch, channels, plane]: [usize; 3]) -> Vec<T> {
    channel_sums(grad_y, batch, channels, plane)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn the_tuner_times_the_two_cuts_taking_turns_after_a_warm_up_each() {
        let mut order = Vec::new();
        let times = time_cuts(&[tuning::SIDE_BY_SIDE, tuning::PER_IMAGE], |cut| order.push(cut.to_string()));
        assert_eq!(times.len(), 2);
        let turns: Vec<&str> = order.iter().map(String::as_str).collect();
        assert_eq!(turns, [tuning::SIDE_BY_SIDE, tuning::PER_IMAGE].repeat(4));
    }

    #[test]
    fn copy_strided_takes_every_stride_th_element_for_every_length() {
        let src: Vec<f32> = (0..100).map(|i| i as f32 + 0.5).collect();
        for stride in 1..=3 {
            for n in 0..=33 {
                // The source ends right after the last element read, or runs on past it.
                for len in [(n.max(1) - 1) * stride + 1, n * stride + 5] {
                    let mut dst = vec![f32::NAN; n];
                    copy_strided(&mut dst, &src[..len.min(src.len())], stride);
                    let expected: Vec<f32> = (0..n).map(|j| src[j * stride]).collect();
                    assert_eq!(dst, expected, "stride {stride}, n {n}, source length {len}");
                }
            }
        }
    }

    #[test]
    fn add_strided_adds_onto_every_stride_th_element_and_leaves_the_others_bit_exact() {
        let mut rng = Rng::new(3);
        for stride in 1..=3 {
            for n in 0..=33 {
                for extra in [0, 7] {
                    let len = (n.max(1) - 1) * stride + 1 + extra;
                    // −0.0 between the updated elements: it must keep its sign.
                    let before: Vec<f32> =
                        (0..len).map(|i| if i % 3 == 1 { -0.0 } else { rng.uniform(-1.0, 1.0) as f32 }).collect();
                    let src: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
                    let mut dst = before.clone();
                    add_strided(&mut dst, &src, stride);
                    for (i, (&after, &was)) in dst.iter().zip(&before).enumerate() {
                        let expected = if i % stride == 0 && i / stride < n { was + src[i / stride] } else { was };
                        assert_eq!(after.to_bits(), expected.to_bits(), "stride {stride}, n {n}, element {i}");
                    }
                }
            }
        }
    }

    /// One test case, conv2d's view: x [n, c_in, h, w], weight [c_out, c_in, kh, kw].
    #[derive(Clone, Copy, Debug)]
    struct Case {
        n: usize,
        c_in: usize,
        c_out: usize,
        hw: [usize; 2],
        k: [usize; 2],
        s: [usize; 2],
        p: [usize; 2],
        d: [usize; 2],
        /// conv_transpose2d only.
        op: [usize; 2],
    }

    /// `c` is [c_in, c_out].
    const fn case(
        n: usize,
        c: [usize; 2],
        hw: [usize; 2],
        k: [usize; 2],
        s: [usize; 2],
        p: [usize; 2],
        d: [usize; 2],
    ) -> Case {
        Case { n, c_in: c[0], c_out: c[1], hw, k, s, p, d, op: [0, 0] }
    }

    /// Odd sizes, batch 1 and 3, stride 2, padding 1 and 2, dilation 2, non-square kernels,
    /// C_in ≠ C_out, pointwise, and kernels exactly as large as the padded input (the last one
    /// has taps that lie entirely in the padding).
    const CASES: &[Case] = &[
        case(1, [3, 5], [7, 9], [3, 3], [1, 1], [1, 1], [1, 1]),
        case(3, [2, 4], [9, 7], [3, 3], [2, 2], [1, 1], [1, 1]),
        case(3, [4, 3], [11, 10], [3, 5], [2, 1], [2, 1], [1, 1]),
        case(1, [3, 2], [9, 11], [3, 3], [1, 2], [2, 2], [2, 2]),
        case(3, [2, 3], [10, 13], [2, 3], [2, 3], [0, 2], [2, 1]),
        case(3, [5, 4], [6, 7], [1, 1], [1, 1], [0, 0], [1, 1]),
        case(1, [3, 2], [5, 6], [1, 1], [2, 2], [1, 0], [1, 1]),
        case(3, [2, 2], [3, 4], [5, 6], [1, 1], [1, 1], [1, 1]),
        case(5, [3, 4], [8, 8], [4, 4], [2, 2], [1, 1], [1, 1]),
        case(1, [2, 3], [4, 3], [2, 7], [1, 1], [1, 2], [1, 1]),
        case(3, [2, 2], [5, 3], [3, 7], [2, 2], [1, 2], [1, 1]),
        // 210 output pixels: three images share a GEMM, and the last group has two.
        case(5, [3, 4], [15, 14], [3, 3], [1, 1], [1, 1], [1, 1]),
        // Taps that are shifted planes (stride 1, output rows as wide as the input's): dilated,
        // and with rows lost at the top and bottom (no padding along the height).
        case(3, [3, 2], [6, 5], [3, 3], [1, 1], [2, 2], [2, 2]),
        case(3, [2, 3], [7, 6], [3, 3], [1, 1], [0, 1], [1, 1]),
        // ResNet-18's smallest planes: 2×2 under a 3×3 kernel.
        case(4, [3, 2], [2, 2], [3, 3], [1, 1], [1, 1], [1, 1]),
        // Taps that are shifted phase planes (input = stride × output along both axes): stride
        // 3, stride 2 along the height only, and stride 2 dilated (the first and last on
        // planes small enough for the tap table).
        case(3, [2, 3], [9, 6], [3, 3], [3, 3], [0, 0], [1, 1]),
        case(3, [3, 2], [8, 5], [3, 3], [2, 1], [1, 1], [1, 1]),
        case(3, [2, 2], [8, 8], [3, 3], [2, 2], [2, 2], [2, 2]),
        // The same two on planes above the tap-table size, so their phases are split.
        case(2, [2, 3], [15, 12], [3, 3], [3, 3], [0, 0], [1, 1]),
        case(2, [2, 2], [12, 12], [3, 3], [2, 2], [2, 2], [2, 2]),
        // More output channels than one block of the weight gradient's final sum (16), the
        // last block partial.
        case(3, [2, 19], [6, 5], [3, 3], [1, 1], [1, 1], [1, 1]),
    ];

    /// conv_transpose2d cases: x [n, c_in, h, w], weight [c_in, c_out, kh, kw].
    const T_CASES: &[Case] = &[
        Case { op: [0, 0], ..case(1, [3, 5], [4, 5], [3, 3], [1, 1], [1, 1], [1, 1]) },
        Case { op: [1, 1], ..case(3, [4, 2], [5, 4], [3, 3], [2, 2], [1, 1], [1, 1]) },
        Case { op: [0, 1], ..case(3, [3, 4], [4, 4], [4, 4], [2, 2], [1, 1], [1, 1]) },
        Case { op: [1, 0], ..case(1, [2, 3], [5, 3], [3, 2], [2, 3], [2, 1], [2, 1]) },
        Case { op: [1, 1], ..case(3, [2, 3], [4, 5], [3, 3], [1, 1], [2, 2], [2, 2]) },
        Case { op: [1, 0], ..case(3, [3, 2], [4, 5], [1, 1], [1, 1], [0, 0], [2, 1]) },
        Case { op: [0, 0], ..case(3, [4, 3], [5, 6], [1, 1], [1, 1], [0, 0], [1, 1]) },
        Case { op: [2, 1], ..case(2, [2, 3], [3, 4], [2, 3], [3, 2], [0, 1], [1, 2]) },
        // DCGAN's ConvT(4,2,1): its taps are shifted phase planes of the output.
        Case { op: [0, 0], ..case(3, [3, 2], [4, 3], [4, 4], [2, 2], [1, 1], [1, 1]) },
        Case { op: [0, 0], ..case(2, [2, 3], [5, 4], [4, 4], [2, 2], [1, 1], [1, 1]) },
        // Grouped GEMMs with a partial last group, as in the conv2d cases.
        Case { op: [0, 0], ..case(5, [4, 3], [15, 14], [3, 3], [1, 1], [1, 1], [1, 1]) },
    ];

    fn conv_geom(c: &Case) -> Conv2dGeometry {
        Conv2dGeometry::conv2d([c.n, c.c_in, c.hw[0], c.hw[1]], [c.c_out, c.c_in, c.k[0], c.k[1]], c.s, c.p, c.d)
            .expect("test case fits")
    }

    fn transpose_geom(c: &Case) -> Conv2dGeometry {
        Conv2dGeometry::conv_transpose2d(
            [c.n, c.c_in, c.hw[0], c.hw[1]],
            [c.c_in, c.c_out, c.k[0], c.k[1]],
            c.s,
            c.p,
            c.op,
            c.d,
        )
        .expect("test case fits")
    }

    fn random(len: usize, rng: &mut Rng) -> Vec<f64> {
        (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
    }

    /// Random x, w and grad_y for geometry `g` (a transposed convolution's weight has as many
    /// elements as the convolution's).
    fn operands(g: &Conv2dGeometry, rng: &mut Rng) -> [Vec<f64>; 3] {
        [random(g.x_len(), rng), random(g.weight_len(), rng), random(g.y_len(), rng)]
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * scale, "{what}: element {i}: got {g}, want {w}");
        }
    }

    fn assert_rel(a: f64, b: f64, what: &str) {
        assert!((a - b).abs() <= 1e-10 * a.abs().max(b.abs()).max(1e-300), "{what}: {a} vs {b}");
    }

    /// Every conv2d geometry of the cases: CASES, and the conv2d side of each T_CASES entry
    /// (the geometry conv_transpose2d's kernels unfold).
    fn all_conv_geometries() -> Vec<Conv2dGeometry> {
        CASES.iter().map(conv_geom).chain(T_CASES.iter().map(|c| transpose_geom(c).transposed())).collect()
    }

    /// Every walk that can unfold `g`: rows and the tap table always, phase blocks where its
    /// taps are shifted phase planes.
    fn every_unfolding(g: &Conv2dGeometry) -> Vec<(&'static str, Unfolding)> {
        let (ty, tx) = geometry_taps(g);
        let mut plans = vec![("rows", Unfolding::Rows { ty, tx }), ("table", Unfolding::Table(tap_table(g)))];
        if taps_are_shifted_phases(g) {
            plans.push(("phases", Unfolding::Phases(phase_blocks(g))));
        }
        plans
    }

    /// The input pixel (channel plane index) tap (ki, kj) reads for output pixel (oy, ox), by
    /// the definition, or `None` in the padding.
    fn tap_source(g: &Conv2dGeometry, (ki, kj): (usize, usize), (oy, ox): (usize, usize)) -> Option<usize> {
        let iy = (oy * g.stride[0] + ki * g.dilation[0]).checked_sub(g.padding[0]).filter(|&iy| iy < g.h)?;
        let ix = (ox * g.stride[1] + kj * g.dilation[1]).checked_sub(g.padding[1]).filter(|&ix| ix < g.w)?;
        Some(iy * g.w + ix)
    }

    #[test]
    fn every_unfolding_walk_writes_every_entry_of_im2col_over_whatever_the_buffer_held() {
        // The buffer starts as NaN: an entry a walk leaves unwritten (a padding zero skipped)
        // would only pass by luck on a freshly zeroed buffer.
        let mut rng = Rng::new(11);
        for g in all_conv_geometries() {
            let images = g.batch.min(3);
            let (plane, hw, in_img) = (g.out_plane(), g.h * g.w, g.in_image());
            let ld = images * plane;
            let x = random(images * in_img, &mut rng);
            for (name, plan) in every_unfolding(&g) {
                let mut col = vec![f64::NAN; g.col_rows() * ld];
                for i in 0..images {
                    im2col(&x[i * in_img..(i + 1) * in_img], &g, &plan, &mut col, ld, i * plane, 0..g.oh);
                }
                for (r, row) in col.chunks_exact(ld).enumerate() {
                    let (ci, tap) = (r / (g.kh * g.kw), r % (g.kh * g.kw));
                    for (j, &got) in row.iter().enumerate() {
                        let (i, p) = (j / plane, j % plane);
                        let source = tap_source(&g, (tap / g.kw, tap % g.kw), (p / g.ow, p % g.ow));
                        let want = source.map_or(0.0, |s| x[i * in_img + ci * hw + s]);
                        assert_eq!(got, want, "{name} walk, {g:?}: row {r}, column {j}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_unfolding_walk_unfolds_any_strip_of_output_rows_as_the_definition_says() {
        // Each strip lands in a NaN buffer of its own width, at a column offset, so an entry
        // written outside the strip's columns or left unwritten inside them fails.
        let mut rng = Rng::new(13);
        for g in all_conv_geometries() {
            let (hw, in_img) = (g.h * g.w, g.in_image());
            let x = random(in_img, &mut rng);
            for (name, plan) in every_unfolding(&g) {
                for strip in 1..=g.oh {
                    for first in (0..g.oh).step_by(strip) {
                        let rows = first..(first + strip).min(g.oh);
                        let (offset, width) = (3, rows.len() * g.ow);
                        let ld = offset + width + 2;
                        let mut col = vec![f64::NAN; g.col_rows() * ld];
                        im2col(&x[..in_img], &g, &plan, &mut col, ld, offset, rows.clone());
                        for (r, row) in col.chunks_exact(ld).enumerate() {
                            let (ci, tap) = (r / (g.kh * g.kw), r % (g.kh * g.kw));
                            assert!(row[..offset].iter().chain(&row[offset + width..]).all(|v| v.is_nan()));
                            for (j, &got) in row[offset..offset + width].iter().enumerate() {
                                let (oy, ox) = (rows.start + j / g.ow, j % g.ow);
                                let source = tap_source(&g, (tap / g.kw, tap % g.kw), (oy, ox));
                                let want = source.map_or(0.0, |s| x[ci * hw + s]);
                                assert_eq!(got, want, "{name} walk, rows {rows:?} of {g:?}: row {r}, column {j}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_unfolding_walk_adds_col2im_onto_the_pixel_each_entry_came_from() {
        let mut rng = Rng::new(12);
        for g in all_conv_geometries() {
            let images = g.batch.min(3);
            let (plane, hw, in_img) = (g.out_plane(), g.h * g.w, g.in_image());
            let ld = images * plane;
            let dcol = random(g.col_rows() * ld, &mut rng);
            let dx0 = random(images * in_img, &mut rng);
            // The definition: dx starts as dx0 and every live entry is added onto its pixel.
            let mut want = dx0.clone();
            for (r, row) in dcol.chunks_exact(ld).enumerate() {
                let (ci, tap) = (r / (g.kh * g.kw), r % (g.kh * g.kw));
                for (j, &v) in row.iter().enumerate() {
                    let (i, p) = (j / plane, j % plane);
                    if let Some(s) = tap_source(&g, (tap / g.kw, tap % g.kw), (p / g.ow, p % g.ow)) {
                        want[i * in_img + ci * hw + s] += v;
                    }
                }
            }
            for (name, plan) in every_unfolding(&g) {
                let (mut dcol, mut dx) = (dcol.clone(), dx0.clone());
                for (i, dx_i) in dx.chunks_exact_mut(in_img).enumerate() {
                    col2im(&mut dcol, &g, &plan, ld, i * plane, dx_i);
                }
                assert_close(&dx, &want, 1e-12, &format!("{name} walk, {g:?}"));
            }
        }
    }

    #[test]
    fn a_kernel_hanging_over_a_small_plane_is_cropped_to_the_taps_that_reach_it() {
        // 3×3, padding 1 on a 1×1 plane: only the centre tap reads the input.
        let g = Conv2dGeometry::conv2d([2, 4, 1, 1], [3, 4, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        let live = g.live_taps().expect("dead taps");
        assert_eq!((live.geometry.kh, live.geometry.kw, live.geometry.padding, live.first), (1, 1, [0, 0], [1, 1]));
        // 3×3 at stride 2, padding 1 on a 2×2 plane: the one output reads taps 1 and 2.
        let g = Conv2dGeometry::conv2d([1, 2, 2, 2], [2, 2, 3, 3], [2, 2], [1, 1], [1, 1]).unwrap();
        let live = g.live_taps().expect("dead taps");
        assert_eq!((live.geometry.kh, live.geometry.kw, live.first), (2, 2, [1, 1]));
        // Every tap reaches a 4×4 plane.
        let g = Conv2dGeometry::conv2d([1, 2, 4, 4], [2, 2, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        assert!(g.live_taps().is_none());
        // Crop and embed are inverse on the live block, and embed zeroes the rest.
        let g = Conv2dGeometry::conv2d([1, 2, 1, 1], [3, 2, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        let live = g.live_taps().unwrap();
        let w: Vec<f64> = (0..g.weight_len()).map(|i| i as f64).collect();
        let cropped = crop_to_live(&live, &w, &g);
        assert_eq!(cropped, (0..6).map(|f| (f * 9 + 4) as f64).collect::<Vec<_>>());
        let full = embed_live_grad(&live, &cropped, &g);
        assert_eq!(full.iter().filter(|&&v| v != 0.0).count(), 6, "one live tap per filter");
        assert_eq!(full[9 + 4], 13.0);
    }

    #[test]
    fn conv2d_3x3_on_known_4x4_image() {
        // x = 1..16 row by row; w is asymmetric so a flipped kernel would be caught.
        let x: Vec<f64> = (1..=16).map(|v| v as f64).collect();
        #[rustfmt::skip]
        let w = vec![
            1.0, 2.0,  0.0,
            0.0, 1.0, -1.0,
            3.0, 0.0,  1.0,
        ];
        // No padding, stride 1: y[0,0] = 1·1 + 2·2 + 0·3 + 0·5 + 1·6 − 1·7 + 3·9 + 0·10 + 1·11 = 42;
        // x is a ramp (+1 per column, +4 per row) and Σw = 7, so each step right adds 7, down 28.
        let g = Conv2dGeometry::conv2d([1, 1, 4, 4], [1, 1, 3, 3], [1, 1], [0, 0], [1, 1]).unwrap();
        assert_eq!(conv2d_forward(&x, &w, None, &g), vec![42.0, 49.0, 70.0, 77.0]);
        // Padding 1, stride 2 (taps at rows/cols −1..1 and 1..3), plus bias 0.5:
        // y[0,0] = (1·1 − 1·2) + (0·5 + 1·6) = 5
        // y[0,1] = (0·2 + 1·3 − 1·4) + (3·6 + 0·7 + 1·8) = 25
        // y[1,0] = (2·5 + 0·6) + (1·9 − 1·10) + (0·13 + 1·14) = 23
        // y[1,1] = (1·6 + 2·7 + 0·8) + (0·10 + 1·11 − 1·12) + (3·14 + 0·15 + 1·16) = 77
        let g = Conv2dGeometry::conv2d([1, 1, 4, 4], [1, 1, 3, 3], [2, 2], [1, 1], [1, 1]).unwrap();
        assert_eq!(conv2d_forward(&x, &w, Some(&[0.5]), &g), vec![5.5, 25.5, 23.5, 77.5]);
    }

    #[test]
    fn conv2d_forward_matches_the_reference() {
        let mut rng = Rng::new(1);
        for c in CASES {
            let g = conv_geom(c);
            let x = random(c.n * c.c_in * c.hw[0] * c.hw[1], &mut rng);
            let w = random(c.c_out * c.c_in * c.k[0] * c.k[1], &mut rng);
            let b = random(c.c_out, &mut rng);
            let want = reference::conv2d(&x, &w, Some(&b), &g);
            assert_close(&conv2d_forward(&x, &w, Some(&b), &g), &want, 1e-12, &format!("{c:?}"));
            let want = reference::conv2d(&x, &w, None, &g);
            assert_close(&conv2d_forward(&x, &w, None, &g), &want, 1e-12, &format!("{c:?} no bias"));
        }
    }

    #[test]
    fn conv2d_forward_in_strips_of_any_height_matches_the_reference() {
        let mut rng = Rng::new(14);
        for g in all_conv_geometries() {
            let [x, w, _] = operands(&g, &mut rng);
            let b = random(g.c_out, &mut rng);
            let want = reference::conv2d(&x, &w, Some(&b), &g);
            for strip in 1..=g.oh {
                let got = forward_in_strips(&x, &w, Some(&b), &g, Some(strip), false);
                assert_close(&got, &want, 1e-12, &format!("strips of {strip} rows, {g:?}"));
            }
        }
    }

    #[test]
    fn conv2d_backward_weight_in_strips_of_any_height_matches_the_reference_either_way_round() {
        let mut rng = Rng::new(15);
        for g in all_conv_geometries() {
            let [x, _, dy] = operands(&g, &mut rng);
            let want = reference::conv2d_backward_weight(&dy, &x, &g);
            for dw_rows in [false, true] {
                for strip in 1..=g.oh {
                    let got = backward_weight_in_strips(&dy, &x, &g, Some(strip), dw_rows);
                    assert_close(&got, &want, 1e-12, &format!("strips of {strip} rows, dW rows {dw_rows}, {g:?}"));
                }
            }
        }
    }

    #[test]
    fn conv2d_backward_weight_as_dy_times_col_transposed_with_images_side_by_side_matches_the_reference() {
        let mut rng = Rng::new(17);
        for g in all_conv_geometries() {
            let [x, _, dy] = operands(&g, &mut rng);
            let want = reference::conv2d_backward_weight(&dy, &x, &g);
            let got = backward_weight_in_strips(&dy, &x, &g, None, true);
            assert_close(&got, &want, 1e-12, &format!("images side by side, {g:?}"));
        }
    }

    #[test]
    fn backward_data_as_a_full_correlation_at_stride_one_matches_the_reference() {
        let mut rng = Rng::new(16);
        let mut checked = 0;
        for g in all_conv_geometries() {
            let Some(full) = g.full_correlation() else { continue };
            let [_, w, dy] = operands(&g, &mut rng);
            let b = random(g.c_in, &mut rng);
            let want = reference::conv_transpose2d(&dy, &w, Some(&b), &g.transposed());
            for strip in 1..=full.oh {
                let got = forward_in_strips(&dy, &flipped_transpose(&w, &g), Some(&b), &full, Some(strip), false);
                assert_close(&got, &want, 1e-12, &format!("strips of {strip} rows, {g:?}"));
            }
            checked += 1;
        }
        assert!(checked >= 5, "only {checked} geometries at stride 1");
    }

    #[test]
    fn the_indirect_gemm_is_timed_only_where_its_vector_tile_runs() {
        // B2's 64→64 layer on 8×8 planes: channels enough for the indirect GEMM.
        let g = Conv2dGeometry::conv2d([64, 64, 8, 8], [64, 64, 3, 3], [1, 1], [1, 1], [1, 1]).expect("fits");
        assert!(!indirect_offered::<f64>(&g), "f64 runs only the portable tile");
        assert_eq!(indirect_offered::<f32>(&g), indirect::has_vector_tile::<f32>());
        let three = Conv2dGeometry::conv2d([64, 3, 32, 32], [32, 3, 3, 3], [2, 2], [1, 1], [1, 1]).expect("fits");
        assert!(!indirect_offered::<f32>(&three), "3 input channels");
    }

    #[test]
    fn every_cut_and_way_the_tuner_may_choose_matches_the_reference() {
        let mut rng = Rng::new(19);
        let (mut winograd_geometries, mut phase_grids, mut channel_blocked) = (0, 0, 0);
        for g in all_conv_geometries() {
            let [x, w, dy] = operands(&g, &mut rng);
            let (b_out, b_in) = (random(g.c_out, &mut rng), random(g.c_in, &mut rng));
            let mut cuts = vec![tuning::SIDE_BY_SIDE, tuning::PER_IMAGE, tuning::PHASE_GRID, tuning::INDIRECT];
            if winograd_fits(&g) {
                cuts.extend([tuning::WINOGRAD, tuning::WINOGRAD_4X4]);
                winograd_geometries += 1;
            }
            let want = reference::conv2d(&x, &w, Some(&b_out), &g);
            for cut in cuts {
                assert_close(
                    &forward_by_cut(cut, &x, &w, Some(&b_out), &g, false),
                    &want,
                    1e-12,
                    &format!("{cut}, {g:?}"),
                );
            }
            let mut cuts = vec![
                tuning::SIDE_BY_SIDE,
                tuning::PER_IMAGE,
                tuning::SIDE_BY_SIDE_DW_ROWS,
                tuning::INDIRECT,
                tuning::DIRECT,
            ];
            if phase_grid::weight_gradient_applies::<f64>(&g) {
                cuts.push(tuning::CHANNEL_BLOCKED);
                channel_blocked += 1;
            }
            if winograd_fits(&g) {
                cuts.push(tuning::WINOGRAD_4X4);
            }
            let want = reference::conv2d_backward_weight(&dy, &x, &g);
            for cut in cuts {
                assert_close(&backward_weight_by_cut(cut, &dy, &x, &g), &want, 1e-12, &format!("{cut}, {g:?}"));
            }
            let Some(full) = g.full_correlation() else { continue };
            let mut ways = vec![tuning::COL2IM, tuning::FULL_CORRELATION, tuning::INDIRECT];
            if phase_grid::backward_data_applies(&g) {
                ways.push(tuning::PHASE_GRID);
                phase_grids += 1;
            }
            if winograd_fits(&full) {
                ways.extend([tuning::WINOGRAD, tuning::WINOGRAD_4X4]);
            }
            // Backward-data with a bias is conv_transpose2d's forward.
            let want = reference::conv_transpose2d(&dy, &w, Some(&b_in), &g.transposed());
            for way in ways {
                let got = backward_data_by_way(way, &dy, &w, Some(&b_in), &g, false);
                assert_close(&got, &want, 1e-12, &format!("{way}, {g:?}"));
            }
        }
        assert!(winograd_geometries >= 3, "only {winograd_geometries} geometries for Winograd");
        assert!(phase_grids >= 3, "only {phase_grids} geometries for the phase grid's backward-data");
        assert!(channel_blocked >= 3, "only {channel_blocked} geometries for the channel-blocked weight gradient");
    }

    #[test]
    fn every_cut_and_way_with_its_relu_gives_the_bits_of_the_relu_after_it() {
        let mut rng = Rng::new(23);
        let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let relu_after = |mut v: Vec<f64>| {
            relu_in_place(&mut v);
            bits(&v)
        };
        for g in all_conv_geometries() {
            let [x, w, dy] = operands(&g, &mut rng);
            let (b_out, b_in) = (random(g.c_out, &mut rng), random(g.c_in, &mut rng));
            let mut cuts = vec![tuning::SIDE_BY_SIDE, tuning::PER_IMAGE, tuning::PHASE_GRID, tuning::INDIRECT];
            if winograd_fits(&g) {
                cuts.extend([tuning::WINOGRAD, tuning::WINOGRAD_4X4]);
            }
            if shifted_rows::applies(&g) {
                cuts.push(tuning::SHIFTED_ROWS);
            }
            for cut in cuts {
                let fused = forward_by_cut(cut, &x, &w, Some(&b_out), &g, true);
                let after = forward_by_cut(cut, &x, &w, Some(&b_out), &g, false);
                assert!(fused.contains(&0.0), "{cut}, {g:?}: no output the ReLU cut");
                assert_eq!(bits(&fused), relu_after(after), "{cut}, {g:?}");
            }
            let mut ways = vec![tuning::COL2IM];
            if let Some(full) = g.full_correlation() {
                ways.extend([tuning::FULL_CORRELATION, tuning::INDIRECT]);
                if phase_grid::backward_data_applies(&g) {
                    ways.push(tuning::PHASE_GRID);
                }
                if winograd_fits(&full) {
                    ways.extend([tuning::WINOGRAD, tuning::WINOGRAD_4X4]);
                }
            }
            for way in ways {
                let fused = backward_data_by_way(way, &dy, &w, Some(&b_in), &g, true);
                let after = backward_data_by_way(way, &dy, &w, Some(&b_in), &g, false);
                assert_eq!(bits(&fused), relu_after(after), "{way}, {g:?}");
            }
        }
    }

    #[test]
    fn every_rung_of_every_conv2d_kernel_matches_the_reference() {
        let mut rng = Rng::new(17);
        for g in all_conv_geometries() {
            let [x, w, dy] = operands(&g, &mut rng);
            let b = random(g.c_out, &mut rng);
            let want = [
                reference::conv2d(&x, &w, Some(&b), &g),
                reference::conv2d_backward_data(&dy, &w, &g),
                reference::conv2d_backward_weight(&dy, &x, &g),
            ];
            for rung in ConvRung::ALL {
                let got = [
                    conv2d_forward_on(rung, &x, &w, Some(&b), &g),
                    conv2d_backward_data_on(rung, &dy, &w, &g),
                    conv2d_backward_weight_on(rung, &dy, &x, &g),
                ];
                for ((kernel, got), want) in ["forward", "backward_data", "backward_weight"].iter().zip(&got).zip(&want)
                {
                    assert_close(got, want, 1e-12, &format!("{kernel} on {}, {g:?}", rung.name()));
                }
            }
        }
    }

    #[test]
    fn every_rung_of_the_forward_in_f32_matches_f64() {
        // The f32 GEMM runs the SIMD micro-kernels, and the implicit GEMM its own packing.
        let mut rng = Rng::new(5);
        for g in all_conv_geometries() {
            let [x, w, _] = operands(&g, &mut rng);
            let b = random(g.c_out, &mut rng);
            let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<_>>();
            for (bias, named) in [(Some(&b), "with bias"), (None, "no bias")] {
                let want = reference::conv2d(&x, &w, bias.map(|b| b.as_slice()), &g);
                let bias32 = bias.map(|b| to32(b));
                for rung in ConvRung::ALL {
                    let got = conv2d_forward_on(rung, &to32(&x), &to32(&w), bias32.as_deref(), &g);
                    let got: Vec<f64> = got.iter().map(|&v| v as f64).collect();
                    assert_close(&got, &want, 1e-5, &format!("forward on {}, {named}, {g:?}", rung.name()));
                }
            }
        }
    }

    #[test]
    fn the_implicit_gemm_forward_packs_panels_across_depth_blocks_and_output_rows() {
        // K = 32·9 = 288 is more than one depth block of every kernel (kc 256 or less), so
        // panels start inside a channel's taps; 7 or 13 output columns a row, so a 32-wide
        // panel spans several output rows, and stride, padding and dilation move the taps.
        let mut rng = Rng::new(8);
        for c in [
            case(2, [32, 20], [13, 14], [3, 3], [2, 2], [1, 1], [1, 1]),
            case(2, [32, 17], [11, 17], [3, 3], [1, 1], [2, 0], [2, 2]),
        ] {
            let g = conv_geom(&c);
            let [x, w, _] = operands(&g, &mut rng);
            let want = reference::conv2d(&x, &w, None, &g);
            let got = conv2d_forward_on(ConvRung::ImplicitGemm, &x, &w, None, &g);
            assert_close(&got, &want, 1e-12, &format!("f64, {g:?}"));
            let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<_>>();
            let got = conv2d_forward_on(ConvRung::ImplicitGemm, &to32(&x), &to32(&w), None, &g);
            let got: Vec<f64> = got.iter().map(|&v| v as f64).collect();
            assert_close(&got, &want, 1e-5, &format!("f32, {g:?}"));
        }
    }

    #[test]
    fn conv2d_backward_data_is_the_adjoint_of_forward() {
        // ⟨conv(x), g⟩ = ⟨x, backward_data(g)⟩ for random x and g: the defining property.
        let mut rng = Rng::new(3);
        for c in CASES {
            let g = conv_geom(c);
            let [x, w, gy] = operands(&g, &mut rng);
            let lhs = dot(&conv2d_forward(&x, &w, None, &g), &gy);
            let rhs = dot(&x, &conv2d_backward_data(&gy, &w, None, &g));
            assert_rel(lhs, rhs, &format!("{c:?}"));
        }
    }

    #[test]
    fn conv2d_backward_weight_is_the_adjoint_in_w() {
        // ⟨conv(x; w), g⟩ = ⟨w, backward_weight(g, x)⟩.
        let mut rng = Rng::new(4);
        for c in CASES {
            let g = conv_geom(c);
            let [x, w, gy] = operands(&g, &mut rng);
            let lhs = dot(&conv2d_forward(&x, &w, None, &g), &gy);
            let rhs = dot(&w, &conv2d_backward_weight(&gy, &x, &g));
            assert_rel(lhs, rhs, &format!("{c:?}"));
        }
    }

    #[test]
    fn conv2d_backward_weight_matches_the_reference_per_weight() {
        // dW[co, ci, ki, kj] = ∂⟨conv(x; w), g⟩/∂w = ⟨conv(x; e_{co,ci,ki,kj}), g⟩ (linear in w).
        let mut rng = Rng::new(5);
        for c in &CASES[..5] {
            let g = conv_geom(c);
            let x = random(g.x_len(), &mut rng);
            let gy = random(g.y_len(), &mut rng);
            let nw = c.c_out * c.c_in * g.kh * g.kw;
            let want: Vec<f64> = (0..nw)
                .map(|i| {
                    let mut e = vec![0.0; nw];
                    e[i] = 1.0;
                    dot(&reference::conv2d(&x, &e, None, &g), &gy)
                })
                .collect();
            assert_close(&conv2d_backward_weight(&gy, &x, &g), &want, 1e-12, &format!("{c:?}"));
        }
    }

    #[test]
    fn backward_weight_on_planes_of_at_most_four_pixels_matches_the_reference_for_every_batch_split() {
        // Output planes of 2×2 and 1×2 pixels take the direct dW path; batches of 1, 3, 5 and
        // 67 split into one, two or several image groups per thread.
        let mut rng = Rng::new(15);
        let shapes = [
            (1, [2, 2], [3, 3], [1, 1], [1, 1]),
            (3, [2, 2], [3, 3], [1, 1], [1, 1]),
            (67, [4, 4], [3, 3], [2, 2], [1, 1]),
            (5, [1, 2], [1, 1], [1, 1], [0, 0]),
        ];
        for (n, [h, w], [kh, kw], stride, padding) in shapes {
            let g = Conv2dGeometry::conv2d([n, 3, h, w], [4, 3, kh, kw], stride, padding, [1, 1]).unwrap();
            assert!(g.out_plane() <= 4, "{g:?}");
            let (x, gy) = (random(g.x_len(), &mut rng), random(g.y_len(), &mut rng));
            let want = reference::conv2d_backward_weight(&gy, &x, &g);
            assert_close(&conv2d_backward_weight(&gy, &x, &g), &want, 1e-12, &format!("{g:?}"));
        }
    }

    #[test]
    fn conv2d_backward_data_matches_scatter_definition() {
        // dx is the scatter of g through the kernel: exactly the reference conv_transpose2d of g.
        let mut rng = Rng::new(6);
        for c in CASES {
            let g = conv_geom(c);
            let w = random(g.weight_len(), &mut rng);
            let gy = random(g.y_len(), &mut rng);
            let want = reference::conv_transpose2d(&gy, &w, None, &g.transposed());
            assert_close(&conv2d_backward_data(&gy, &w, None, &g), &want, 1e-12, &format!("{c:?}"));
        }
    }

    #[test]
    fn conv2d_backward_bias_sums_over_batch_and_pixels() {
        let mut rng = Rng::new(7);
        for c in CASES {
            let g = conv_geom(c);
            let gy = random(g.y_len(), &mut rng);
            let plane = g.oh * g.ow;
            let want: Vec<f64> = (0..c.c_out)
                .map(|co| (0..c.n).map(|n| gy[(n * c.c_out + co) * plane..][..plane].iter().sum::<f64>()).sum())
                .collect();
            assert_close(&conv2d_backward_bias(&gy, [g.batch, g.c_out, g.oh * g.ow]), &want, 1e-12, &format!("{c:?}"));
            // And it is the adjoint of adding a bias: ⟨conv(x; b) − conv(x; 0), g⟩ = ⟨b, db⟩.
            let x = random(g.x_len(), &mut rng);
            let w = random(g.weight_len(), &mut rng);
            let b = random(c.c_out, &mut rng);
            let with: f64 = dot(&conv2d_forward(&x, &w, Some(&b), &g), &gy);
            let without: f64 = dot(&conv2d_forward(&x, &w, None, &g), &gy);
            assert!((with - without - dot(&b, &want)).abs() < 1e-10 * (1.0 + with.abs()));
        }
    }

    // conv_transpose2d as its ops run it: conv2d's kernels on the transposed geometry.
    fn conv_transpose2d_forward(x: &[f64], w: &[f64], bias: Option<&[f64]>, g: &Conv2dGeometry) -> Vec<f64> {
        conv2d_backward_data(x, w, bias, &g.transposed())
    }

    fn conv_transpose2d_backward_data(grad_y: &[f64], w: &[f64], g: &Conv2dGeometry) -> Vec<f64> {
        conv2d_forward(grad_y, w, None, &g.transposed())
    }

    fn conv_transpose2d_backward_weight(grad_y: &[f64], x: &[f64], g: &Conv2dGeometry) -> Vec<f64> {
        conv2d_backward_weight(x, grad_y, &g.transposed())
    }

    #[test]
    fn conv_transpose2d_forward_matches_the_reference_scatter() {
        let mut rng = Rng::new(8);
        for c in T_CASES {
            let g = transpose_geom(c);
            let x = random(g.x_len(), &mut rng);
            let w = random(g.weight_len(), &mut rng);
            let b = random(c.c_out, &mut rng);
            let want = reference::conv_transpose2d(&x, &w, Some(&b), &g);
            assert_close(&conv_transpose2d_forward(&x, &w, Some(&b), &g), &want, 1e-12, &format!("{c:?}"));
            let want = reference::conv_transpose2d(&x, &w, None, &g);
            assert_close(&conv_transpose2d_forward(&x, &w, None, &g), &want, 1e-12, &format!("{c:?} no bias"));
        }
    }

    #[test]
    fn conv_transpose2d_output_size_with_output_padding() {
        // k4 s2 p1 doubles; k3 s2 p1 op1 doubles too; op with dilation > stride grows by op.
        let g = Conv2dGeometry::conv_transpose2d([1, 2, 8, 8], [2, 3, 4, 4], [2, 2], [1, 1], [0, 0], [1, 1]).unwrap();
        assert_eq!((g.oh, g.ow), (16, 16));
        let g = Conv2dGeometry::conv_transpose2d([1, 2, 5, 7], [2, 3, 3, 3], [2, 2], [1, 1], [1, 1], [1, 1]).unwrap();
        assert_eq!((g.oh, g.ow), (10, 14));
        let g = Conv2dGeometry::conv_transpose2d([1, 2, 4, 5], [2, 3, 1, 1], [1, 1], [0, 0], [1, 0], [2, 1]).unwrap();
        assert_eq!((g.oh, g.ow), (5, 5));
    }

    #[test]
    fn conv_transpose2d_backward_data_is_the_adjoint_of_forward() {
        let mut rng = Rng::new(9);
        for c in T_CASES {
            let g = transpose_geom(c);
            let [x, w, gy] = operands(&g, &mut rng);
            let lhs = dot(&conv_transpose2d_forward(&x, &w, None, &g), &gy);
            let rhs = dot(&x, &conv_transpose2d_backward_data(&gy, &w, &g));
            assert_rel(lhs, rhs, &format!("{c:?}"));
        }
    }

    #[test]
    fn conv_transpose2d_backward_weight_is_the_adjoint_in_w() {
        let mut rng = Rng::new(10);
        for c in T_CASES {
            let g = transpose_geom(c);
            let [x, w, gy] = operands(&g, &mut rng);
            let lhs = dot(&conv_transpose2d_forward(&x, &w, None, &g), &gy);
            let rhs = dot(&w, &conv_transpose2d_backward_weight(&gy, &x, &g));
            assert_rel(lhs, rhs, &format!("{c:?}"));
        }
    }

    #[test]
    fn conv_transpose2d_backward_bias_sums_over_batch_and_pixels() {
        let mut rng = Rng::new(11);
        for c in T_CASES {
            let g = transpose_geom(c);
            let gy = random(g.y_len(), &mut rng);
            let b = random(c.c_out, &mut rng);
            let x = random(g.x_len(), &mut rng);
            let w = random(g.weight_len(), &mut rng);
            let with = dot(&conv_transpose2d_forward(&x, &w, Some(&b), &g), &gy);
            let without = dot(&conv_transpose2d_forward(&x, &w, None, &g), &gy);
            let db = conv2d_backward_bias(&gy, [g.batch, g.c_out, g.oh * g.ow]); // the same reduction serves both ops
            assert_rel(with - without, dot(&b, &db), &format!("{c:?}"));
        }
    }

    #[test]
    fn weight_gradient_is_deterministic_and_batch_split_independent() {
        // The per-thread partial sums are added in a fixed order: the same call twice gives
        // bit-identical results, and running the images one at a time and summing agrees.
        let c = case(7, [3, 4], [9, 8], [3, 3], [2, 1], [1, 1], [1, 1]);
        let g = conv_geom(&c);
        let mut rng = Rng::new(12);
        let x = random(g.x_len(), &mut rng);
        let gy = random(g.y_len(), &mut rng);
        let a = conv2d_backward_weight(&gy, &x, &g);
        assert_eq!(a, conv2d_backward_weight(&gy, &x, &g));
        let one = Conv2dGeometry { batch: 1, ..g };
        let (xi, yi) = (c.c_in * g.h * g.w, c.c_out * g.oh * g.ow);
        let mut sum = vec![0.0; a.len()];
        for n in 0..c.n {
            let dw = conv2d_backward_weight(&gy[n * yi..(n + 1) * yi], &x[n * xi..(n + 1) * xi], &one);
            sum.iter_mut().zip(&dw).for_each(|(s, d)| *s += d);
        }
        assert_close(&a, &sum, 1e-12, "batched vs one at a time");
    }

    #[test]
    fn empty_batch_gives_empty_outputs_and_zero_weight_gradient() {
        let g = Conv2dGeometry::conv2d([0, 2, 5, 5], [3, 2, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
        let w = vec![1.0f64; 3 * 2 * 9];
        assert!(conv2d_forward(&[], &w, None, &g).is_empty());
        assert!(conv2d_backward_data(&[], &w, None, &g).is_empty());
        assert_eq!(conv2d_backward_weight::<f64>(&[], &[], &g), vec![0.0; 54]);
        assert_eq!(conv2d_backward_bias::<f64>(&[], [g.batch, g.c_out, g.oh * g.ow]), vec![0.0; 3]);
    }
}
