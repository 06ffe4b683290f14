//! conv2d's forward as an indirect GEMM (Marat Dukhan, "The Indirect Convolution Algorithm",
//! 2019): a cut the tuner may choose for the forward, and for backward-data as the full
//! correlation.
//!
//! On channels-last images, the input a tap reads for output pixel m is one row of C_in
//! contiguous values, the row of pixel (n, oy·sh + ki·dh − ph, ox·sw + kj·dw − pw). The
//! convolution is then Y(m, co) = Σ_tap Σ_ci row(m, tap)(ci) · W(tap, ci, co), a GEMM whose
//! A operand is im2col's transpose, never written: the micro-kernel finds each of its MR
//! pixels' rows through a table of offsets (one per pixel and tap; a tap that falls in the
//! padding points at a row of zeros) and broadcasts A's values straight from them, while B,
//! the weights, is packed once per call in panels of NR output channels. Nothing is unfolded
//! and nothing of the input is packed; what it costs instead is one channels-last copy of the
//! input per group of images. Images sit side by side for free (a tile's pixels may come from
//! two images), and the one tile of MR pixels runs the whole depth kH·kW·C_in in registers.

use rayon::prelude::*;

use crate::cpu::conv::init_planes;
use crate::cpu::elementwise::{relu_in_place, relu_scalar};
use crate::cpu::phase_grid::interleave;
use crate::descriptors::Conv2dGeometry;
use crate::dtype::{same_type_slice, same_type_slice_mut, Float};

/// The most pixels a tile has: MR = 14 (AVX-512).
const MAX_MR: usize = 14;

/// The largest tile: MR = 14 pixels × NR = 32 output channels (AVX-512).
const MAX_TILE: usize = MAX_MR * 32;

/// Input channels of a panel's filters packed at a time (see `conv2d_forward`).
const PACK_CHANNELS: usize = 16;

/// Output planes up to this many pixels order a group's pixels by position (ResNet-18's 4×4
/// and smaller in B2).
const SKIPPING_MAX_PLANE: usize = 16;

/// y = conv2d(x, w) + bias by the indirect GEMM (see the module docs): for each group of
/// images, copy them channels-last, then for each tile of MR output pixels and each panel of
/// NR output channels, one micro-kernel call over every tap and input channel.
// x: [N, C_in, H, W]   w: [C_out, C_in, kH, kW]   bias: [C_out]   ->   y: [N, C_out, OH, OW]
pub fn conv2d_forward<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry) -> Vec<T> {
    conv2d_forward_then(x, w, bias, g, false)
}

/// [`conv2d_forward`], with each output through a ReLU as it is stored when `relu`.
pub fn conv2d_forward_then<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry, relu: bool) -> Vec<T> {
    let (out_img, in_img, plane) = (g.out_image(), g.in_image(), g.out_plane());
    let mut y = vec![T::ZERO; g.batch * out_img];
    if y.is_empty() {
        return y;
    }
    if g.col_rows() == 0 || plane == 0 {
        init_planes(&mut y, bias, plane);
        if relu {
            relu_in_place(&mut y);
        }
        return y;
    }
    let kernel = TileKernel::<T>::for_type();
    let (mr, nr) = (kernel.mr, kernel.nr);
    let taps = g.kh * g.kw;
    // B: the weights in panels of NR output channels, each [taps·C_in, NR] (zero past C_out).
    let panels = g.c_out.div_ceil(nr);
    // The panels in parallel, each through a small block: 16 input channels of its filters
    // copied out in runs, then written a packed row at a time. Read in the panel's order, a
    // 256→256 layer's 2.4 MB of weights took a quarter of its forward on a 2×2 plane on one
    // thread; written down the panel's columns, every tap's store was C_in·NR floats from the
    // last (8 KiB on a 64→64 layer), all in one set of L1.
    let mut packed = vec![T::ZERO; panels * taps * g.c_in * nr];
    let filter_len = g.c_in * taps;
    packed.par_chunks_exact_mut(taps * g.c_in * nr).enumerate().for_each(|(panel, b)| {
        let filters = nr.min(g.c_out - panel * nr);
        let mut block = vec![T::ZERO; nr * PACK_CHANNELS * taps];
        for ci0 in (0..g.c_in).step_by(PACK_CHANNELS) {
            let channels = PACK_CHANNELS.min(g.c_in - ci0);
            for (j, run) in block.chunks_exact_mut(PACK_CHANNELS * taps).take(filters).enumerate() {
                let filter = (panel * nr + j) * filter_len;
                run[..channels * taps].copy_from_slice(&w[filter + ci0 * taps..][..channels * taps]);
            }
            for tap in 0..taps {
                for ci in 0..channels {
                    let row = &mut b[(tap * g.c_in + ci0 + ci) * nr..][..filters];
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = block[(j * PACK_CHANNELS + ci) * taps + tap];
                    }
                }
            }
        }
    });
    // On small output planes the taps that fall in the padding are many (5 of a 3×3 kernel's
    // 9 at every position of a 2×2 output), so the group's pixels are ordered by position,
    // image after image: a tile's pixels share their position, and a tap that is padding for
    // all of them is skipped. That wants groups of MR images or more: one group a thread. On
    // larger planes the pixels keep the images' order, whose tiles read neighbouring rows,
    // and a group is a few tiles' worth of images.
    let by_position = plane <= SKIPPING_MAX_PLANE;
    let threads = rayon::current_num_threads();
    let per_thread = g.batch.div_ceil(threads);
    let group = match by_position {
        true => per_thread.max(1),
        false => images_per_group(g.batch, plane, in_img, mr, threads),
    };
    y.par_chunks_mut(group * out_img).enumerate().for_each(|(gi, y_g)| {
        let (n0, images) = (gi * group, y_g.len() / out_img);
        let rows = channels_last(&x[n0 * in_img..(n0 + images) * in_img], g.c_in, g.h * g.w);
        let zero_row = images * g.h * g.w;
        let pixels = images * plane;
        // Pixel m of the group as (image, output position).
        let pixel = |m: usize| if by_position { (m % images, m / images) } else { (m / plane, m % plane) };
        // Every tile's live taps and their rows' offsets: [tiles, taps] and [tiles, taps, MR].
        let tiles = pixels.div_ceil(mr);
        let (mut live, mut offsets) = (vec![(0, 0); tiles], vec![0; tiles * taps * mr]);
        let mut tap_index = vec![0; tiles * taps];
        let ([sh, sw], [ph, pw], [dh, dw]) = (g.stride, g.padding, g.dilation);
        // A pixel's input row and column under tap (0, 0), which padding makes negative.
        let mut origins = [(0, 0, 0); MAX_MR];
        for (t, m0) in (0..pixels).step_by(mr).enumerate() {
            let (tile_offsets, tile_taps) = (&mut offsets[t * taps * mr..], &mut tap_index[t * taps..]);
            // Found once a tile, not once a tap: the divisions that place a pixel cost more
            // than the rest of the table (15 % of B1's 32→64 forward when done per tap).
            let real = mr.min(pixels - m0);
            for (i, origin) in origins[..real].iter_mut().enumerate() {
                let (n, p) = pixel(m0 + i);
                let (oy, ox) = (p / g.ow, p % g.ow);
                *origin = (n, (oy * sh) as isize - ph as isize, (ox * sw) as isize - pw as isize);
            }
            let mut count = 0;
            for tap in 0..taps {
                let (dy, dx) = (((tap / g.kw) * dh) as isize, ((tap % g.kw) * dw) as isize);
                let tap_offsets = &mut tile_offsets[count * mr..(count + 1) * mr];
                let mut any_live = false;
                for (i, offset) in tap_offsets.iter_mut().enumerate() {
                    let row = origins[..real].get(i).and_then(|&(n, y0, x0)| {
                        let (iy, ix) = (y0 + dy, x0 + dx);
                        let inside = (0..g.h as isize).contains(&iy) && (0..g.w as isize).contains(&ix);
                        inside.then(|| (n * g.h + iy as usize) * g.w + ix as usize)
                    });
                    any_live |= row.is_some();
                    *offset = row.unwrap_or(zero_row) * g.c_in;
                }
                // A tap that is padding for every pixel of the tile is left out of its list.
                if any_live {
                    tile_taps[count] = tap;
                    count += 1;
                }
            }
            live[t] = (count, m0);
        }
        // A panel of weights outside, the tiles inside: the panel (kH·kW·C_in·NR values) stays
        // in L2 while every tile reads it. The other way round, a 512→512 layer's weights
        // (9.4 MB, beyond L2) were read again for each tile of 14 pixels.
        let mut tile = [T::ZERO; MAX_TILE];
        let mut first_channel_at = [0; MAX_MR];
        for (panel, b) in packed.chunks_exact(taps * g.c_in * nr).enumerate() {
            let channels = panel * nr..((panel + 1) * nr).min(g.c_out);
            for (t, &(count, m0)) in live.iter().enumerate() {
                let tile_offsets = &offsets[t * taps * mr..][..count * mr];
                kernel.run(&rows, tile_offsets, &tap_index[t * taps..][..count], g.c_in, b, &mut tile[..mr * nr]);
                // Where each pixel's value of the panel's first channel goes; the next channel's
                // is a plane further on. Channel by channel, a tile's pixels of one image are
                // neighbours in y.
                let first_channel_at = &mut first_channel_at[..pixels.min(m0 + mr) - m0];
                for (i, at) in first_channel_at.iter_mut().enumerate() {
                    let (n, p) = pixel(m0 + i);
                    *at = (n * g.c_out + channels.start) * plane + p;
                }
                let real = first_channel_at.len();
                if first_channel_at.windows(2).all(|pair| pair[1] == pair[0] + 1) {
                    // The tile's pixels are neighbours in y: each channel's values are one run.
                    let bias = bias.map(|b| &b[channels.clone()]);
                    let y_run = &mut y_g[first_channel_at[0]..];
                    store_transposed(&tile[..real * nr], nr, channels.len(), bias, relu, y_run, plane);
                    continue;
                }
                for (j, co) in channels.clone().enumerate() {
                    let b = bias.map(|b| b[co]);
                    for (i, &at) in first_channel_at.iter().enumerate() {
                        let v = b.map_or(tile[i * nr + j], |b| tile[i * nr + j] + b);
                        y_g[at + j * plane] = if relu { relu_scalar(v) } else { v };
                    }
                }
            }
        }
    });
    y
}

/// Images a group of [`conv2d_forward`] takes on planes ordered by image: a few tiles' worth
/// at least, and as many as leave the fewest tiles on the busiest thread. The last tile of a
/// group is partly empty rows: groups of two 8×8 planes are 10 tiles for 128 pixels (9 % of
/// the multiply-adds on nothing), groups of eight 37 tiles for 512 (1 %), and the batch still
/// splits evenly over the threads. A group's channels-last copy stays within L2.
fn images_per_group(batch: usize, plane: usize, in_img: usize, mr: usize, threads: usize) -> usize {
    const MAX_GROUP_VALUES: usize = 1 << 17;
    let per_thread = batch.div_ceil(threads).max(1);
    let fewest = (8 * mr).div_ceil(plane.max(1)).clamp(1, per_thread);
    let most = (MAX_GROUP_VALUES / in_img.max(1)).clamp(fewest, per_thread);
    // Tiles on the busiest thread, the first group size to reach the least of them.
    let busiest = |group: usize| batch.div_ceil(group).div_ceil(threads) * (group * plane).div_ceil(mr);
    (fewest..=most).min_by_key(|&group| busiest(group)).unwrap_or(fewest)
}

/// y\[j·plane + i\] = tile\[i·nr + j\] + bias\[j\] (through a ReLU when `relu`) for each of
/// the tile's pixels i and its first `channels` channels j: a tile whose pixels are
/// neighbours in y, stored a channel's run at a time. f32 goes through 4×4 transposes: one
/// value at a time, the stores took a sixth of B1's 32→64 forward.
// tile: [pixels, nr]   y: [channels, plane] from the tile's first pixel
fn store_transposed<T: Float>(
    tile: &[T],
    nr: usize,
    channels: usize,
    bias: Option<&[T]>,
    relu: bool,
    y: &mut [T],
    plane: usize,
) {
    let pixels = tile.len() / nr;
    assert!(channels <= nr && bias.is_none_or(|b| b.len() == channels));
    assert!(channels == 0 || y.len() >= (channels - 1) * plane + pixels);
    let (mut pixels_done, mut channels_done) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if let (Some(tile), Some(y)) = (same_type_slice::<T, f32>(tile), same_type_slice_mut::<T, f32>(y)) {
        let bias = bias.map(|b| same_type_slice::<T, f32>(b).expect("T is f32"));
        transpose_sse::store(tile, nr, channels, bias, relu, y, plane);
        (pixels_done, channels_done) = (pixels / 4 * 4, channels / 4 * 4);
    }
    // What the 4×4 blocks left: the last channels of every pixel, then the last pixels.
    let mut store = |i: usize, j: usize| {
        let v = bias.map_or(tile[i * nr + j], |b| tile[i * nr + j] + b[j]);
        y[j * plane + i] = if relu { relu_scalar(v) } else { v };
    };
    for i in 0..pixels_done {
        (channels_done..channels).for_each(|j| store(i, j));
    }
    for i in pixels_done..pixels {
        (0..channels).for_each(|j| store(i, j));
    }
}

/// [`store_transposed`]'s 4×4 blocks of f32.
#[cfg(target_arch = "x86_64")]
mod transpose_sse {
    use crate::cpu::gemm::transpose_sse::transpose4;
    use std::arch::x86_64::*;

    /// Every whole 4×4 block of pixels and channels; the caller stores the rest.
    pub(super) fn store(
        tile: &[f32],
        nr: usize,
        channels: usize,
        bias: Option<&[f32]>,
        relu: bool,
        y: &mut [f32],
        plane: usize,
    ) {
        let pixels = tile.len() / nr;
        assert!(channels <= nr && (channels < 4 || y.len() >= (channels / 4 * 4 - 1) * plane + pixels / 4 * 4));
        for j0 in (0..channels / 4 * 4).step_by(4) {
            for i0 in (0..pixels / 4 * 4).step_by(4) {
                // SAFETY: SSE is part of x86-64. Pixels i0..i0+4 ≤ pixels of the tile each hold
                // channels j0..j0+4 ≤ channels ≤ nr; y holds (j0 + 3)·plane + i0 + 4 values
                // (asserted above).
                unsafe {
                    let row = |i: usize| _mm_loadu_ps(tile.as_ptr().add((i0 + i) * nr + j0));
                    let runs = transpose4([row(0), row(1), row(2), row(3)]);
                    for (j, mut run) in runs.into_iter().enumerate() {
                        if let Some(bias) = bias {
                            run = _mm_add_ps(run, _mm_set1_ps(bias[j0 + j]));
                        }
                        if relu {
                            // The table's ReLU: 0 where v ≤ 0 (−0 too), v elsewhere (NaN too).
                            run = _mm_andnot_ps(_mm_cmple_ps(run, _mm_setzero_ps()), run);
                        }
                        _mm_storeu_ps(y.as_mut_ptr().add((j0 + j) * plane + i0), run);
                    }
                }
            }
        }
    }
}

/// The images channels-last, then one row of zeros (the padding taps' row): each image's
/// planes written down the columns of its rows, four channels at a time through 4×4
/// transposes (`phase_grid::interleave`), the images in parallel.
// x: [images, channels, plane]   ->   [images·plane + 1, channels]
pub(crate) fn channels_last<T: Float>(x: &[T], channels: usize, plane: usize) -> Vec<T> {
    let mut rows = vec![T::ZERO; x.len() + channels];
    if plane == 0 {
        return rows;
    }
    let images = x.par_chunks_exact(channels * plane).zip(rows.par_chunks_exact_mut(channels * plane));
    images.for_each(|(image, rows_n)| image_channels_last(image, channels, plane, channels, rows_n));
    rows
}

/// One image's planes written down the first `channels` columns of `rows`, rows `width`
/// values apart (`width` ≥ `channels`; the other columns are left as they are).
// image: [channels, plane]   ->   rows: [plane, width]
pub(crate) fn image_channels_last<T: Float>(image: &[T], channels: usize, plane: usize, width: usize, rows: &mut [T]) {
    // A block of pixels at a time, every channel of it, so that each row's line is filled
    // while it is in L1. Four channels down the whole plane, then the next four, wrote each
    // line of B1's 32-channel rows eight times from L2: 0.27 ms of its 32→64 forward's 1.94.
    for (block, rows_b) in rows[..plane * width].chunks_mut(CHANNELS_LAST_PIXELS * width).enumerate() {
        let first = block * CHANNELS_LAST_PIXELS;
        interleave(rows_b, width, channels, 1, |c| &image[c * plane + first..(c + 1) * plane]);
    }
}

/// Pixels [`channels_last`] writes together (see there).
const CHANNELS_LAST_PIXELS: usize = 64;

/// The micro-kernel: one MR×NR tile, `tile = Σ_tap Σ_ci A · B` over the taps listed, A's rows
/// found through the offsets table ([taps listed, MR]: where pixel i's row for each starts in
/// `rows`) and B a packed panel ([every tap·C_in, NR]).
struct TileKernel<T> {
    mr: usize,
    nr: usize,
    run: TileFn<T>,
}

/// `run(rows, offsets, taps, c_in, b, tile)`, as [`TileKernel`] describes it.
type TileFn<T> = fn(&[T], &[usize], &[usize], usize, &[T], &mut [T]);

impl<T: Float> TileKernel<T> {
    /// AVX-512's 14×32 where [`avx512_tile`] says so, the portable 4×8 otherwise.
    fn for_type() -> TileKernel<T> {
        #[cfg(target_arch = "x86_64")]
        if avx512_tile::<T>() {
            return TileKernel { mr: 14, nr: 32, run: tile_avx512::<T> };
        }
        TileKernel { mr: 4, nr: 8, run: tile_portable::<T, 4, 8> }
    }

    fn run(&self, rows: &[T], offsets: &[usize], taps: &[usize], c_in: usize, b: &[T], tile: &mut [T]) {
        assert!(
            offsets.len() == taps.len() * self.mr
                && offsets.iter().all(|&o| o + c_in <= rows.len())
                && taps.iter().all(|&tap| (tap + 1) * c_in * self.nr <= b.len())
                && tile.len() >= self.mr * self.nr,
            "an indirect tile reads inside its rows and panel"
        );
        (self.run)(rows, offsets, taps, c_in, b, tile)
    }
}

/// Whether the indirect GEMMs run a vector tile for `T` ([`avx512_tile`]). Without one they
/// run the portable 4×8 tile: with the AVX2 GEMM pinned on a Zen 5, the forward took 2–3 times
/// and the weight gradient 10 times as long as the best cut on every layer of B1, B2 and B3
/// (`docs/notebooks/bench/direct_weight_gradient_zen5.txt`).
pub(crate) fn has_vector_tile<T: Float>() -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx512_tile::<T>();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether the indirect GEMMs take their AVX-512 tiles for `T`: f32, where the GEMM runs an
/// AVX-512 kernel (so a process that pins or replays the GEMM's kernel gets the same tiles).
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx512_tile<T: Float>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && crate::cpu::gemm::f32_instruction_set() == "avx512"
        && is_x86_feature_detected!("avx512f")
}

/// The plain kernel: an MR×NR accumulator array, small enough for registers.
fn tile_portable<T: Float, const MR: usize, const NR: usize>(
    rows: &[T],
    offsets: &[usize],
    taps: &[usize],
    c_in: usize,
    b: &[T],
    tile: &mut [T],
) {
    let mut acc = [[T::ZERO; NR]; MR];
    for (&tap, tap_offsets) in taps.iter().zip(offsets.chunks_exact(MR)) {
        let a: [&[T]; MR] = std::array::from_fn(|i| &rows[tap_offsets[i]..tap_offsets[i] + c_in]);
        for (ci, b_row) in b[tap * c_in * NR..(tap + 1) * c_in * NR].chunks_exact(NR).enumerate() {
            for (acc_i, a_i) in acc.iter_mut().zip(&a) {
                let v = a_i[ci];
                acc_i.iter_mut().zip(b_row).for_each(|(c, &bj)| *c += v * bj);
            }
        }
    }
    for (row, acc_i) in tile.chunks_exact_mut(NR).zip(&acc) {
        row.copy_from_slice(acc_i);
    }
}

/// The f32 kernel for AVX-512: 14 rows × two 16-lane vectors of accumulators (28 of the 32
/// registers), each step two loads of B and 14 broadcasts of A, one from each pixel's row.
#[cfg(target_arch = "x86_64")]
fn tile_avx512<T: Float>(rows: &[T], offsets: &[usize], taps: &[usize], c_in: usize, b: &[T], tile: &mut [T]) {
    let (Some(rows), Some(b), Some(tile)) =
        (same_type_slice::<T, f32>(rows), same_type_slice::<T, f32>(b), same_type_slice_mut::<T, f32>(tile))
    else {
        unreachable!("the AVX-512 tile is chosen for f32 only");
    };
    assert!(tile.len() >= 14 * 32 && offsets.len().is_multiple_of(14));
    // SAFETY: `TileKernel::for_type` chose this kernel on a CPU with AVX-512F, and `run`
    // asserted that every row read (offset + c_in) and the panel (taps·c_in·32) are in bounds.
    unsafe { tile_avx512_f32(rows.as_ptr(), offsets, taps, c_in, b.as_ptr(), tile.as_mut_ptr()) }
}

/// # Safety
/// AVX-512F; `rows + offsets[k] .. + c_in` readable for every k, `b` holds (tap + 1)·c_in rows
/// of 32 floats for every tap listed, `tile` 14×32 writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512_f32(
    rows: *const f32,
    offsets: &[usize],
    taps: &[usize],
    c_in: usize,
    b: *const f32,
    tile: *mut f32,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; 14];
    for (&tap, tap_offsets) in taps.iter().zip(offsets.chunks_exact(14)) {
        // SAFETY: the caller's contract, for this tap's rows and panel rows.
        unsafe {
            let a: [*const f32; 14] = std::array::from_fn(|i| rows.add(tap_offsets[i]));
            let b_tap = b.add(tap * c_in * 32);
            for ci in 0..c_in {
                let (b0, b1) = (_mm512_loadu_ps(b_tap.add(ci * 32)), _mm512_loadu_ps(b_tap.add(ci * 32 + 16)));
                for (acc_i, a_i) in acc.iter_mut().zip(&a) {
                    let v = _mm512_set1_ps(*a_i.add(ci));
                    acc_i[0] = _mm512_fmadd_ps(v, b0, acc_i[0]);
                    acc_i[1] = _mm512_fmadd_ps(v, b1, acc_i[1]);
                }
            }
        }
    }
    for (i, acc_i) in acc.iter().enumerate() {
        // SAFETY: the tile holds 14 rows of 32 floats.
        unsafe {
            _mm512_storeu_ps(tile.add(i * 32), acc_i[0]);
            _mm512_storeu_ps(tile.add(i * 32 + 16), acc_i[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_support::{assert_within, odd_geometries, ramp, to_f32};
    use crate::reference::conv as reference;

    #[test]
    fn the_indirect_forward_matches_the_reference() {
        for g in odd_geometries() {
            let (x, w, b) = (ramp(g.x_len()), ramp(g.weight_len()), ramp(g.c_out));
            let want = reference::conv2d(&x, &w, Some(&b), &g);
            assert_within(&format!("{g:?}"), conv2d_forward(&x, &w, Some(&b), &g).into_iter(), &want, 1e-12);
            let got = conv2d_forward(&to_f32(&x), &to_f32(&w), Some(&to_f32(&b)), &g);
            assert_within(&format!("f32, {g:?}"), got.iter().map(|&a| a as f64), &want, 1e-5);
        }
    }

    #[test]
    fn a_group_of_small_planes_leaves_few_tile_rows_empty_and_splits_evenly() {
        // B1's 64→128 layer: 8×8 output planes, 64 input channels of 16×16, batch 64.
        let (batch, plane, mr, threads) = (64, 64, 14, 2);
        let group = images_per_group(batch, plane, 64 * 256, mr, threads);
        let pixels = group * plane;
        let empty = pixels.div_ceil(mr) * mr - pixels;
        assert!(empty * 50 <= pixels, "groups of {group}: {empty} empty rows of {pixels}");
        assert_eq!(batch % (group * threads), 0, "groups of {group} do not split the batch evenly");
    }

    #[test]
    fn a_group_stays_within_a_thread_s_share_of_the_batch_and_within_l2() {
        for (batch, plane, in_img, threads) in
            [(64, 64, 16384, 2), (64, 256, 32768, 2), (3, 20, 100, 4), (1, 99, 693, 2)]
        {
            let group = images_per_group(batch, plane, in_img, 14, threads);
            let fewest = (8 * 14usize).div_ceil(plane).min(batch.div_ceil(threads)).max(1);
            assert!((1..=batch.div_ceil(threads)).contains(&group), "{group} images of {batch} on {threads} threads");
            assert!(group == fewest || group * in_img <= 1 << 17, "{group} images of {in_img} values");
        }
    }

    #[test]
    fn pixels_ordered_by_position_are_stored_where_they_belong() {
        // Two images a group on 2×2 planes, one output channel: a tile's pixels go image 0,
        // image 1, image 0, … so its first and last land three values apart, as four neighbours
        // would, while the two between them are swapped.
        let g = Conv2dGeometry::conv2d([4, 3, 2, 2], [1, 3, 3, 3], [1, 1], [1, 1], [1, 1]).expect("the kernel fits");
        let (x, w) = (ramp(g.x_len()), ramp(g.weight_len()));
        let want = reference::conv2d(&x, &w, None, &g);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a pool of two threads");
        let got = pool.install(|| conv2d_forward(&to_f32(&x), &to_f32(&w), None, &g));
        assert_within(&format!("f32, {g:?}"), got.iter().map(|&a| a as f64), &want, 1e-5);
    }

    #[test]
    fn the_f32_forward_without_a_bias_matches_the_reference() {
        for g in odd_geometries() {
            let (x, w) = (ramp(g.x_len()), ramp(g.weight_len()));
            let want = reference::conv2d(&x, &w, None, &g);
            let got = conv2d_forward(&to_f32(&x), &to_f32(&w), None, &g);
            assert_within(&format!("f32, {g:?}"), got.iter().map(|&a| a as f64), &want, 1e-5);
        }
    }

    #[test]
    fn the_f32_forward_with_its_relu_gives_the_bits_of_the_relu_after_it() {
        for g in odd_geometries() {
            // Half the outputs below zero, so that the ReLU has work on every tile, and a NaN,
            // which the ReLU passes on.
            let (mut x, w) = (to_f32(&ramp(g.x_len())), to_f32(&ramp(g.weight_len())));
            x[g.x_len() / 2] = f32::NAN;
            let b: Vec<f32> = (0..g.c_out).map(|c| if c % 2 == 0 { -1e3 } else { 1e3 }).collect();
            for bias in [Some(&b[..]), None] {
                let fused = conv2d_forward_then(&x, &w, bias, &g, true);
                let mut after = conv2d_forward_then(&x, &w, bias, &g, false);
                relu_in_place(&mut after);
                assert!(fused.contains(&0.0), "{g:?}: no output the ReLU cut");
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fused), bits(&after), "bias {}, {g:?}", bias.is_some());
            }
        }
    }
}
