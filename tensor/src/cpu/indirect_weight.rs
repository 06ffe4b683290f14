//! conv2d's weight gradient as an indirect GEMM: a cut the tuner may choose for backward-weight,
//! beside `cpu::indirect`'s forward.
//!
//! For one tap (ki, kj), dW(co, ci, tap) = Σ_m dy(m, co) · x(row(m, tap), ci), where m runs
//! over the output pixels of every image and row(m, tap) is the input pixel that tap reads
//! for m. On channels-last images both factors are rows: dy's row m holds every output
//! channel, x's row(m, tap) every input channel. So each tap is a GEMM whose depth is the
//! pixels themselves, dW_tapᵀ [C_in, C_out] = Σ_m x(row(m, tap))ᵀ · dy(m), and a list of
//! offset pairs, one per pixel whose input is inside the image, says where each step's two
//! rows start. The micro-kernel broadcasts MR input channels from the x row and multiplies
//! them into NR output channels loaded from the dy row: both operands are read where they
//! lie, nothing is unfolded or packed, and a pixel that would read padding is not in the list
//! at all, so the padding costs nothing (5 of a 3×3 kernel's 9 taps at each pixel of a 2×2
//! plane, where im2col multiplies the zeros). What it costs is one channels-last copy of x
//! and of dy.
//!
//! The pixels go a chunk of output rows at a time, so that the chunk's rows stay in L2 while
//! every tile reads them; within a chunk the tasks (NR output channels by MR input channels,
//! every tap) are independent and run in parallel, each adding into its own part of dWᵀ, so
//! the result does not depend on the threads.

use rayon::prelude::*;

use crate::cpu::indirect::channels_last;
use crate::cpu::phase_grid::interleave;
use crate::descriptors::Conv2dGeometry;
use crate::dtype::{same_type_slice, same_type_slice_mut, Float};

/// A chunk's x and dy rows together hold about this many values (256 KiB of f32), so that
/// every tile of the chunk finds them in L2. Each tile running its tap's whole depth instead
/// read a 64→64 layer's 2 MB of rows on an 8×8 plane from L3 once per tile, and stalled on
/// its loads (3.9 ms against the channel-blocked cut's 2.6, Xeon model 207).
const CHUNK_VALUES: usize = 1 << 16;

/// dW = ∂L/∂w by the indirect GEMM (see the module docs): channels-last copies of x and dy;
/// then, a chunk of output rows at a time, every block of MR input channels and NR output
/// channels of dWᵀ in parallel, one micro-kernel call per tap, added into dWᵀ; dWᵀ is
/// transposed into dW at the end.
// grad_y: [N, C_out, OH, OW]   x: [N, C_in, H, W]   ->   dw: [C_out, C_in, kH, kW]
pub fn conv2d_backward_weight<T: Float>(grad_y: &[T], x: &[T], g: &Conv2dGeometry) -> Vec<T> {
    let rows_per_chunk = (CHUNK_VALUES / ((g.c_in + g.c_out) * g.ow).max(1)).max(1);
    backward_weight_in_chunks(grad_y, x, g, rows_per_chunk)
}

/// [`conv2d_backward_weight`] with chunks of `rows_per_chunk` output rows (the tests walk
/// several).
fn backward_weight_in_chunks<T: Float>(grad_y: &[T], x: &[T], g: &Conv2dGeometry, rows_per_chunk: usize) -> Vec<T> {
    let taps = g.kh * g.kw;
    let mut dw = vec![T::ZERO; g.weight_len()];
    if dw.is_empty() || g.batch == 0 || g.out_plane() == 0 {
        return dw;
    }
    let kernel = TileKernel::<T>::for_type();
    let (mr, nr) = (kernel.mr, kernel.nr);
    // [N·H·W + 1, C_in], then MR values more: the last block of input channels may be partial,
    // and its tile reads MR values of every row (the rows after it, or zeros; never stored).
    let mut rows = channels_last(x, g.c_in, g.h * g.w);
    rows.resize(rows.len() + mr, T::ZERO);
    // [N·OH·OW (+ 1), C_out]
    let dy_rows = channels_last(grad_y, g.c_out, g.out_plane());
    // dWᵀ a panel of NR output channels at a time: [panels, blocks·MR, taps, NR], whose first
    // C_in·taps rows in each panel are dW's columns in dW's order. A task per (panel, block).
    let (panels, blocks) = (g.c_out.div_ceil(nr), g.c_in.div_ceil(mr));
    let row_stride = taps * nr;
    let mut dw_t = vec![T::ZERO; panels * blocks * mr * row_stride];
    let all_rows = g.batch * g.oh;
    for chunk in (0..all_rows).step_by(rows_per_chunk) {
        let output_rows = chunk..(chunk + rows_per_chunk).min(all_rows);
        let pairs: Vec<OffsetPairs> = (0..taps).map(|tap| offset_pairs(g, tap, output_rows.clone())).collect();
        dw_t.par_chunks_exact_mut(mr * row_stride).enumerate().for_each(|(task, out)| {
            let (co0, ci0) = ((task / blocks) * nr, (task % blocks) * mr);
            for (tap, pairs) in pairs.iter().enumerate().filter(|(_, pairs)| !pairs.pairs.is_empty()) {
                let at = [ci0, co0, nr.min(g.c_out - co0)];
                kernel.run(&rows, &dy_rows, pairs, at, (out, tap * nr, row_stride));
            }
        });
    }
    // dW[co][ci·taps + tap] = dWᵀ[panel][ci·taps + tap][co − panel·NR], a panel per task.
    let columns = g.c_in * taps;
    let panel_len = blocks * mr * row_stride;
    dw.par_chunks_mut(nr * columns).zip(dw_t.par_chunks_exact(panel_len)).for_each(|(filters, panel)| {
        let count = filters.len() / columns;
        interleave(filters, columns, columns, 1, |k| &panel[k * nr..][..count]);
    });
    dw
}

/// One tap's offset pairs over a chunk of output rows, with the largest offset of each side:
/// what a tile checks before it reads, once instead of pair by pair (a tile per block of
/// channels ran the check over every pair, 3 % of B1's 64→128 weight gradient).
struct OffsetPairs {
    /// (where the pixel's x row starts, where its dy row starts).
    pairs: Vec<(usize, usize)>,
    /// The largest x and dy offsets among `pairs` (0 when there are none).
    largest: (usize, usize),
}

/// For each output pixel of `output_rows` (rows of every image counted together, [0, N·OH))
/// whose input under `tap` is inside the image: (where its x row starts in the channels-last
/// x, where its dy row starts in the channels-last dy).
fn offset_pairs(g: &Conv2dGeometry, tap: usize, output_rows: std::ops::Range<usize>) -> OffsetPairs {
    let (ki, kj) = (tap / g.kw, tap % g.kw);
    let input = |o: usize, axis: usize, k: usize, len: usize| {
        (o * g.stride[axis] + k * g.dilation[axis]).checked_sub(g.padding[axis]).filter(|&i| i < len)
    };
    let mut pairs = Vec::with_capacity(output_rows.len() * g.ow);
    for row in output_rows {
        let (n, oy) = (row / g.oh, row % g.oh);
        let Some(iy) = input(oy, 0, ki, g.h) else { continue };
        for ox in 0..g.ow {
            if let Some(ix) = input(ox, 1, kj, g.w) {
                pairs.push((((n * g.h + iy) * g.w + ix) * g.c_in, (row * g.ow + ox) * g.c_out));
            }
        }
    }
    let largest = pairs.iter().fold((0, 0), |(a_max, b_max), &(a, b)| (a_max.max(a), b_max.max(b)));
    OffsetPairs { pairs, largest }
}

/// The micro-kernel: one MR×NR tile of dWᵀ for one tap, `out[first + i·stride + j] += Σ_k
/// x[a_k + ci0 + i] · dy[b_k + co0 + j]` over the tap's offset pairs (a_k, b_k), for i below
/// MR and j below `columns`.
struct TileKernel<T> {
    mr: usize,
    nr: usize,
    run: TileFn<T>,
}

/// `run(rows, dy_rows, pairs, [ci0, co0, columns], (out, first, stride))`, as [`TileKernel`]
/// describes it.
type TileFn<T> = fn(&[T], &[T], &[(usize, usize)], [usize; 3], Out<'_, T>);

/// Where a tile adds its values: (the slice, the first value's index, the rows' stride).
type Out<'a, T> = (&'a mut [T], usize, usize);

impl<T: Float> TileKernel<T> {
    /// AVX-512's 12×32 where `cpu::indirect::avx512_tile` says so, the portable 4×8 otherwise.
    fn for_type() -> TileKernel<T> {
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::indirect::avx512_tile::<T>() {
            return TileKernel { mr: 12, nr: 32, run: tile_avx512::<T> };
        }
        TileKernel { mr: 4, nr: 8, run: tile_portable::<T, 4, 8> }
    }

    fn run(&self, rows: &[T], dy_rows: &[T], pairs: &OffsetPairs, at: [usize; 3], out: Out<'_, T>) {
        let [ci0, co0, columns] = at;
        let (out_len, first, stride) = (out.0.len(), out.1, out.2);
        let (a, b) = pairs.largest;
        assert!(
            a + ci0 + self.mr <= rows.len()
                && b + co0 + columns <= dy_rows.len()
                && columns <= self.nr
                && columns <= stride
                && first + (self.mr - 1) * stride + columns <= out_len,
            "an indirect weight-gradient tile reads and writes inside its rows"
        );
        (self.run)(rows, dy_rows, &pairs.pairs, at, out)
    }
}

/// The plain kernel: an MR×NR accumulator array, small enough for registers.
fn tile_portable<T: Float, const MR: usize, const NR: usize>(
    rows: &[T],
    dy_rows: &[T],
    pairs: &[(usize, usize)],
    [ci0, co0, columns]: [usize; 3],
    (out, first, stride): Out<'_, T>,
) {
    let mut acc = [[T::ZERO; NR]; MR];
    for &(a, b) in pairs {
        let (x_row, dy_row) = (&rows[a + ci0..a + ci0 + MR], &dy_rows[b + co0..b + co0 + columns]);
        for (acc_i, &v) in acc.iter_mut().zip(x_row) {
            acc_i.iter_mut().zip(dy_row).for_each(|(c, &d)| *c += v * d);
        }
    }
    for (i, acc_i) in acc.iter().enumerate() {
        let row = &mut out[first + i * stride..][..columns];
        row.iter_mut().zip(acc_i).for_each(|(o, &a)| *o += a);
    }
}

/// The f32 kernel for AVX-512: 12 rows × two 16-lane vectors of accumulators (24 of the 32
/// registers), loaded from `out` and stored back (masked past `columns`); each step two loads
/// of the dy row (masked likewise) and 12 broadcasts from the x row.
#[cfg(target_arch = "x86_64")]
fn tile_avx512<T: Float>(rows: &[T], dy_rows: &[T], pairs: &[(usize, usize)], at: [usize; 3], out: Out<'_, T>) {
    let (out, first, stride) = out;
    let (Some(rows), Some(dy_rows), Some(out)) =
        (same_type_slice::<T, f32>(rows), same_type_slice::<T, f32>(dy_rows), same_type_slice_mut::<T, f32>(out))
    else {
        unreachable!("the AVX-512 tile is chosen for f32 only");
    };
    assert!(at[2] <= 32 && first + 11 * stride + at[2] <= out.len());
    // SAFETY: `TileKernel::for_type` chose this kernel on a CPU with AVX-512F, and `run`
    // asserted that every x row read (a + ci0 + 12) and dy row read (b + co0 + columns) is in
    // bounds (by the pairs' largest offsets, which `offset_pairs` found among them), as is each
    // of the 12 output rows' `columns` values; the masked loads and stores touch no lane past
    // `columns`.
    unsafe { tile_avx512_f32(rows.as_ptr(), dy_rows.as_ptr(), pairs, at, out[first..].as_mut_ptr(), stride) }
}

/// # Safety
/// AVX-512F; `rows + a + ci0 .. + 12` and `dy_rows + b + co0 .. + columns` readable for every
/// pair (a, b), `columns` ≤ 32, `out + i·stride .. + columns` writable for i < 12.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512_f32(
    rows: *const f32,
    dy_rows: *const f32,
    pairs: &[(usize, usize)],
    [ci0, co0, columns]: [usize; 3],
    out: *mut f32,
    stride: usize,
) {
    use std::arch::x86_64::*;
    let lanes = |n: usize| if n >= 16 { 0xffff } else { (1u16 << n) - 1 };
    // The second vector's lanes start 16 values on, past a row's end when `columns` ≤ 16: its
    // address is computed wrapping (no allocation is promised there) and its mask is empty.
    let (mask0, mask1) = (lanes(columns), lanes(columns.saturating_sub(16)));
    // SAFETY: the caller's contract, for the output rows.
    let mut acc: [[__m512; 2]; 12] = std::array::from_fn(|i| unsafe {
        let row = out.add(i * stride);
        [_mm512_maskz_loadu_ps(mask0, row), _mm512_maskz_loadu_ps(mask1, row.wrapping_add(16))]
    });
    for &(a, b) in pairs {
        // SAFETY: the caller's contract, for this pair's rows.
        unsafe {
            let (x_row, dy_row) = (rows.add(a + ci0), dy_rows.add(b + co0));
            let (d0, d1) =
                (_mm512_maskz_loadu_ps(mask0, dy_row), _mm512_maskz_loadu_ps(mask1, dy_row.wrapping_add(16)));
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let v = _mm512_set1_ps(*x_row.add(i));
                acc_i[0] = _mm512_fmadd_ps(v, d0, acc_i[0]);
                acc_i[1] = _mm512_fmadd_ps(v, d1, acc_i[1]);
            }
        }
    }
    for (i, acc_i) in acc.iter().enumerate() {
        // SAFETY: the caller's contract, for the output rows.
        unsafe {
            let row = out.add(i * stride);
            _mm512_mask_storeu_ps(row, mask0, acc_i[0]);
            _mm512_mask_storeu_ps(row.wrapping_add(16), mask1, acc_i[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_support::{assert_within, odd_geometries, ramp, to_f32};
    use crate::reference::conv as reference;

    #[test]
    fn the_indirect_weight_gradient_matches_the_reference() {
        // In chunks of every output row alone, of a few rows (crossing from one image into the
        // next), and of all rows.
        for g in odd_geometries() {
            let (dy, x) = (ramp(g.y_len()), ramp(g.x_len()));
            let want = reference::conv2d_backward_weight(&dy, &x, &g);
            for rows_per_chunk in [1, 3, g.batch * g.oh] {
                let what = format!("{g:?}, {rows_per_chunk} rows a chunk");
                let got = backward_weight_in_chunks(&dy, &x, &g, rows_per_chunk);
                assert_within(&what, got.into_iter(), &want, 1e-12);
                let got = backward_weight_in_chunks(&to_f32(&dy), &to_f32(&x), &g, rows_per_chunk);
                assert_within(&format!("f32, {what}"), got.iter().map(|&a| a as f64), &want, 1e-5);
            }
        }
    }
}
