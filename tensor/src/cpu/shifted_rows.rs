//! conv2d's forward at stride 1 for a few output channels (a decoder's last layer, to an
//! image's three colours), row by row.
//!
//! As a GEMM, such a layer is W [C_out, K] · col [K, P] with C_out = 3: the micro-kernel's 14
//! (or 6, or 4) rows of A hold 3 real ones, and the unfolded operand, K·P values, is written
//! and read back for 3 multiply-adds each. resnet-bn's last layer (64 → 3 channels on 64×64)
//! ran at 15–22 GFLOP/s that way on a Xeon (model 207), 6 % of a decode's time. Read instead
//! as what it is: at stride 1, output row oy of channel co is a sum over input channels ci
//! and taps (ky, kx) of input row oy + ky − ph, shifted by kx − pw and scaled by one weight,
//!
//!   y[co, oy, ox] = b\[co\] + Σ_ci Σ_ky Σ_kx w[co, ci, ky, kx] · x[ci, oy + ky − ph, ox + kx − pw]
//!
//! (0 outside the input). Each term is one scaled row added onto another. A task takes a band
//! of output rows of one image and copies the input rows they read, zero-padded, so that every
//! term is a whole row long; then, for 32 output pixels of all C_out channels at a time,
//! the sums stay in registers over every input channel and tap, each shifted block of input is
//! read once for all channels, and nothing is unfolded. The loops are plain Rust that the
//! compiler vectorises, compiled for the widest vectors the CPU has.
//!
//! On the layer above (batch 16 and 32, Xeon model 207) that is 0.21–0.26 ms a code against
//! 0.91–1.04 by the GEMM, and 0.33–0.39 against 2.4–2.5 for one image. It is not offered for
//! backward-data into three channels (the full correlation of resnet-bn's first layer's
//! gradient, 64 → 3): col2im's GEMM has 27 real rows there, and ran 1.7–1.8 times faster.

use rayon::prelude::*;

use crate::cpu::conv::init_planes;
use crate::cpu::gemm::SharedOut;
use crate::descriptors::Conv2dGeometry;
use crate::dtype::{same_type_slice, same_type_slice_mut, Float};

/// The most output channels the cut is offered for: each term reads a whole input row for
/// C_out rows of multiply-adds, and with many output channels the GEMM's tiles are full.
pub(crate) const MAX_OUTPUT_CHANNELS: usize = 4;

/// Output rows one task computes (all channels of one image): bands, so that a batch of one
/// image still splits over the threads.
const BAND_ROWS: usize = 8;

/// Whether this cut runs the geometry: stride 1, no dilation, at most
/// [`MAX_OUTPUT_CHANNELS`] output channels.
pub(crate) fn applies(g: &Conv2dGeometry) -> bool {
    g.stride == [1, 1] && g.dilation == [1, 1] && g.c_out <= MAX_OUTPUT_CHANNELS
}

/// y = conv2d(x, w) + bias at stride 1 without dilation, row by row (see the module docs), in
/// parallel over bands of output rows.
// x: [N, C_in, H, W]   w: [C_out, C_in, kH, kW]   bias: [C_out]   ->   y: [N, C_out, OH, OW]
pub fn conv2d_forward<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry) -> Vec<T> {
    assert!(g.stride == [1, 1] && g.dilation == [1, 1], "the row-by-row convolution runs stride 1 without dilation");
    let mut y = vec![T::ZERO; g.y_len()];
    if y.is_empty() {
        return y;
    }
    init_planes(&mut y, bias, g.out_plane());
    let bands = g.oh.div_ceil(BAND_ROWS);
    let out = SharedOut(y.as_mut_ptr());
    let padded_width = padded_width(g);
    // w as [C_in, kH, kW, C_out]: a term's C_out weights side by side.
    let taps = g.kh * g.kw;
    let mut w_by_tap = vec![T::ZERO; w.len()];
    for (i, &v) in w.iter().enumerate() {
        let (co, rest) = (i / (g.c_in * taps), i % (g.c_in * taps));
        w_by_tap[rest * g.c_out + co] = v;
    }
    (0..g.batch * bands).into_par_iter().for_each_init(Vec::new, |padded, task| {
        let (image, band) = (task / bands, task % bands);
        let rows = band * BAND_ROWS..((band + 1) * BAND_ROWS).min(g.oh);
        // The input rows the band reads, every channel's, zero-padded to whole register blocks
        // of output plus the kernel's reach: each term is then whole blocks long.
        let band_rows = rows.len() + g.kh - 1;
        padded.clear();
        padded.resize(g.c_in * band_rows * padded_width, T::ZERO);
        let x_image = &x[image * g.in_image()..][..g.in_image()];
        for (ci, rows_ci) in padded.chunks_exact_mut(band_rows * padded_width).enumerate() {
            for (r, row) in rows_ci.chunks_exact_mut(padded_width).enumerate() {
                // Padded row r is input row rows.start + r − ph, its column c input column c − pw.
                let Some(iy) = (rows.start + r).checked_sub(g.padding[0]).filter(|&iy| iy < g.h) else { continue };
                let x_row = &x_image[(ci * g.h + iy) * g.w..][..g.w];
                let (skip, take) = (g.padding[1].min(padded_width), g.w.min(padded_width.saturating_sub(g.padding[1])));
                row[skip..skip + take].copy_from_slice(&x_row[..take]);
            }
        }
        for (r, oy) in rows.enumerate() {
            // SAFETY: each output row (image, co, oy) belongs to one band of one image, so to one task.
            let mut y_rows: Vec<&mut [T]> = (0..g.c_out)
                .map(|co| unsafe { out.slice(((image * g.c_out + co) * g.oh + oy) * g.ow, g.ow) })
                .collect();
            add_terms(&mut y_rows, Band { padded, rows: band_rows, w_by_tap: &w_by_tap, g }, r);
        }
    });
    y
}

/// What a band's terms read: its padded input rows (`rows` a channel, C_in channels), the
/// weights as [C_in, kH, kW, C_out], and the geometry.
#[derive(Clone, Copy)]
struct Band<'a, T> {
    padded: &'a [T],
    rows: usize,
    w_by_tap: &'a [T],
    g: &'a Conv2dGeometry,
}

/// Adds onto one output row of every channel (`y_rows[co]`, row `r` of its band) all its terms:
/// for each input channel and tap, the padded input row shifted by the tap, scaled by the
/// weight.
fn add_terms<T: Float>(y_rows: &mut [&mut [T]], band: Band<T>, r: usize) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(padded), Some(w_by_tap)) =
        (same_type_slice::<T, f32>(band.padded), same_type_slice::<T, f32>(band.w_by_tap))
    {
        let mut rows: Vec<&mut [f32]> =
            y_rows.iter_mut().map(|r| same_type_slice_mut::<T, f32>(r).expect("T is f32")).collect();
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: this CPU has AVX-512F.
            return unsafe { add_terms_avx512(&mut rows, padded, w_by_tap, band.rows, band.g, r) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2.
            return unsafe { add_terms_avx2(&mut rows, padded, w_by_tap, band.rows, band.g, r) };
        }
    }
    add_terms_plain(y_rows, band, r);
}

/// [`add_terms`] compiled for AVX-512: the same loops, so the same bits (a multiply, then an
/// add: Rust never fuses them).
///
/// The band's slices come as arguments of their own, not inside a [`Band`]: passed inside one
/// (here or through `cpu::vectorized`), the compiler left the loops scalar, about ten times
/// slower (2.2 against 0.19–0.25 ms a code at 16 codes into 3 channels, Xeon model 207).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_terms_avx512(
    y_rows: &mut [&mut [f32]],
    padded: &[f32],
    w_by_tap: &[f32],
    rows: usize,
    g: &Conv2dGeometry,
    r: usize,
) {
    add_terms_plain(y_rows, Band { padded, rows, w_by_tap, g }, r);
}

/// [`add_terms`] compiled for AVX2 (its slices passed as for [`add_terms_avx512`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_terms_avx2(
    y_rows: &mut [&mut [f32]],
    padded: &[f32],
    w_by_tap: &[f32],
    rows: usize,
    g: &Conv2dGeometry,
    r: usize,
) {
    add_terms_plain(y_rows, Band { padded, rows, w_by_tap, g }, r);
}

/// Output pixels one register block holds per channel: two AVX-512 vectors (four channels'
/// sums and the input block fill 10 of the 32 registers).
const LANES: usize = 32;

/// A padded row's length: whole register blocks of output, plus the kernel's reach.
fn padded_width(g: &Conv2dGeometry) -> usize {
    g.ow.next_multiple_of(LANES) + g.kw - 1
}

/// The terms for `C` output channels, [`LANES`] output pixels at a time: their sums stay in
/// registers over every input channel and tap, and each shifted input block is read once for
/// all `C` channels.
#[inline(always)]
fn add_terms_plain<T: Float>(y_rows: &mut [&mut [T]], band: Band<T>, r: usize) {
    match y_rows.len() {
        1 => add_terms_to::<T, 1>(y_rows, band, r),
        2 => add_terms_to::<T, 2>(y_rows, band, r),
        3 => add_terms_to::<T, 3>(y_rows, band, r),
        4 => add_terms_to::<T, 4>(y_rows, band, r),
        c => unreachable!("the row-by-row convolution runs 1 to {MAX_OUTPUT_CHANNELS} output channels, not {c}"),
    }
}

#[inline(always)]
fn add_terms_to<T: Float, const C: usize>(y_rows: &mut [&mut [T]], band: Band<T>, r: usize) {
    let Band { padded, rows: band_rows, w_by_tap, g } = band;
    let width = padded_width(g);
    for x0 in (0..g.ow).step_by(LANES) {
        let valid = LANES.min(g.ow - x0);
        let mut sums = [[T::ZERO; LANES]; C];
        for (sum, y_row) in sums.iter_mut().zip(y_rows.iter()) {
            sum[..valid].copy_from_slice(&y_row[x0..x0 + valid]);
        }
        for ci in 0..g.c_in {
            for ky in 0..g.kh {
                let x_row = &padded[(ci * band_rows + r + ky) * width..][..width];
                for kx in 0..g.kw {
                    let block: &[T; LANES] = x_row[x0 + kx..][..LANES].try_into().expect("LANES values");
                    let weights = &w_by_tap[((ci * g.kh + ky) * g.kw + kx) * C..][..C];
                    for (sum, &weight) in sums.iter_mut().zip(weights) {
                        for (s, &v) in sum.iter_mut().zip(block) {
                            *s += weight * v;
                        }
                    }
                }
            }
        }
        for (sum, y_row) in sums.iter().zip(y_rows.iter_mut()) {
            y_row[x0..x0 + valid].copy_from_slice(&sum[..valid]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_support::{assert_within, ramp, to_f32};
    use crate::reference;

    /// Geometries at stride 1: odd planes, kernels of 1×1 to 5×5 (and 4×2), padding none, partial,
    /// full and beyond the kernel (the full correlation's), one to four output channels, a
    /// one-image batch, a one-pixel plane, more rows than a band and rows wider than two
    /// register blocks.
    fn geometries() -> Vec<Conv2dGeometry> {
        let mut out = vec![];
        for (batch, c_in, c_out, [h, w], [kh, kw], [ph, pw]) in [
            (2, 3, 3, [7, 9], [3, 3], [1, 1]),
            (1, 5, 1, [6, 5], [1, 1], [0, 0]),
            (3, 2, 4, [5, 8], [4, 2], [2, 0]),
            (2, 4, 2, [9, 4], [5, 5], [4, 4]),
            (1, 1, 3, [1, 1], [3, 3], [1, 1]),
            (2, 6, 3, [17, 19], [3, 3], [0, 2]),
            (1, 2, 2, [3, 70], [3, 3], [1, 1]),
        ] {
            let g = Conv2dGeometry::conv2d([batch, c_in, h, w], [c_out, c_in, kh, kw], [1, 1], [ph, pw], [1, 1]);
            out.push(g.expect("a valid geometry"));
        }
        out
    }

    #[test]
    fn rows_add_up_to_the_definition_in_f64_and_f32() {
        for g in geometries() {
            let (x, w) =
                (ramp(g.x_len()), ramp(g.c_out * g.c_in * g.kh * g.kw).iter().map(|v| v * 0.5).collect::<Vec<_>>());
            for bias in [None, Some(ramp(g.c_out))] {
                let want = reference::conv::conv2d(&x, &w, bias.as_deref(), &g);
                let got = conv2d_forward(&x, &w, bias.as_deref(), &g);
                assert_within(&format!("f64 {g:?}"), got.into_iter(), &want, 1e-12);
                let bias32 = bias.as_deref().map(to_f32);
                let got = conv2d_forward(&to_f32(&x), &to_f32(&w), bias32.as_deref(), &g);
                assert_within(&format!("f32 {g:?}"), got.into_iter().map(f64::from), &want, 1e-5);
            }
        }
    }

    #[test]
    fn it_applies_at_stride_one_without_dilation_to_few_output_channels() {
        let g = |c_out, stride, dilation| {
            Conv2dGeometry::conv2d([1, 8, 9, 9], [c_out, 8, 3, 3], stride, [1, 1], dilation).expect("valid")
        };
        assert!(applies(&g(3, [1, 1], [1, 1])));
        assert!(applies(&g(MAX_OUTPUT_CHANNELS, [1, 1], [1, 1])));
        assert!(!applies(&g(MAX_OUTPUT_CHANNELS + 1, [1, 1], [1, 1])));
        assert!(!applies(&g(3, [2, 2], [1, 1])));
        assert!(!applies(&g(3, [1, 1], [2, 1])));
    }
}
