//! The nearest-upsampled convolution's own kernels (`ops::upsampled_conv` has the algebra):
//! the phases' 2×2 kernels from the 3×3 one and back, parallel over output channels; its
//! phases put in place and back, P = N·C independent channels, each four (H + 1)×(W + 1)
//! phase planes against one [2H, 2W] plane, parallel over planes; and the forward by the
//! layer's own Winograd transform, in blocks of rows of the small image, parallel over blocks.

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use crate::cpu::conv;
use crate::cpu::gemm::SharedOut;
use crate::cpu::tuning;
use crate::cpu::upsampled_weight;
use crate::cpu::vectorized;
use crate::cpu::winograd_blocked::{add, block_rows, kernel_transforms, run_blocks_into_new, subtract};
use crate::descriptors::Conv2dGeometry;
use crate::dtype::Float;

/// Where tap k ∈ {0, 1, 2} of a 3×3 kernel's row (or column) lands in the 2×2 kernel of phase
/// a ∈ {0, 1}: ⌊(k + 1 − a)/2⌋, so 0 → 0, 2 → 1, and the middle tap joins the first (a = 1)
/// or the last (a = 0).
pub fn phase_tap(k: usize, a: usize) -> usize {
    (k + 1 - a) / 2
}

/// The four phases' 2×2 kernels: w2[o, 2a + b, i, ty, tx] = Σ of w[o, i, ky, kx] over the taps
/// with phase_tap(ky, a) = ty and phase_tap(kx, b) = tx.
// w: [C_out, C_in, 3, 3] → w2: [C_out, 4, C_in, 2, 2]
pub fn phase_weights<T: Float>(w: &[T], c_out: usize, c_in: usize) -> Vec<T> {
    let mut w2 = vec![T::ZERO; c_out * 16 * c_in];
    w2.par_chunks_mut(16 * c_in).zip(w.par_chunks(9 * c_in)).for_each(|(out, w)| {
        for (i, taps) in w.chunks_exact(9).enumerate() {
            for phase in 0..4 {
                let (a, b) = (phase / 2, phase % 2);
                let o = &mut out[(phase * c_in + i) * 4..][..4];
                for (k, &v) in taps.iter().enumerate() {
                    o[2 * phase_tap(k / 3, a) + phase_tap(k % 3, b)] += v;
                }
            }
        }
    });
    w2
}

/// The adjoint of [`phase_weights`]: each 3×3 tap gathers the gradients of the four 2×2 taps
/// it landed on, one per phase.
// dw2: [C_out, 4, C_in, 2, 2] → dw: [C_out, C_in, 3, 3]
pub fn phase_weights_backward<T: Float>(dw2: &[T], c_out: usize, c_in: usize) -> Vec<T> {
    let mut dw = vec![T::ZERO; c_out * 9 * c_in];
    dw.par_chunks_mut(9 * c_in).zip(dw2.par_chunks(16 * c_in)).for_each(|(dw, d2)| {
        for (i, taps) in dw.chunks_exact_mut(9).enumerate() {
            for phase in 0..4 {
                let (a, b) = (phase / 2, phase % 2);
                let d = &d2[(phase * c_in + i) * 4..][..4];
                for (k, v) in taps.iter_mut().enumerate() {
                    *v += d[2 * phase_tap(k / 3, a) + phase_tap(k % 3, b)];
                }
            }
        }
    });
    dw
}

/// dW of y = conv2d(upsample_nearest(x, 2), w, stride 1, padding 1): by the rule through the
/// phases (their gradient put back in place, their 2×2 kernels' weight gradient, gathered into
/// the 3×3 kernel); with tuning on, the layer's own Winograd transform, transposed
/// (`cpu::upsampled_weight`), is timed against it where both sides have
/// `conv::WINOGRAD_WEIGHT_MIN_CHANNELS` channels or more, as the 3×3 convolution's.
// grad_y: [N, C_out, 2H, 2W]   x: [N, C_in, H, W]   ->   dw: [C_out, C_in, 3, 3]
pub fn conv2d_nearest_upsampled_backward_weight<T: Float>(
    grad_y: &[T],
    x: &[T],
    sizes: [usize; 4],
    c_out: usize,
) -> Vec<T> {
    let [n, c_in, h, w] = sizes;
    let Some(phases) = phase_geometry(sizes, c_out) else {
        return vec![T::ZERO; c_out * c_in * 9];
    };
    let way = if c_in.min(c_out) >= conv::WINOGRAD_WEIGHT_MIN_CHANNELS && n * h * w > 0 {
        let ways = [tuning::PHASES, tuning::WINOGRAD];
        let run = |way: &str| drop(backward_weight_by_way(way, grad_y, x, sizes, c_out, &phases));
        let what = "upsampled weight gradient's way";
        conv::tuned_choice::<T>(what, "conv2d_nearest_upsampled_backward_weight", &phases, &ways, tuning::PHASES, run)
    } else {
        tuning::PHASES.to_string()
    };
    backward_weight_by_way(&way, grad_y, x, sizes, c_out, &phases)
}

/// The phases' 2×2 convolution: [N, C_in, H, W] to [N, 4·C_out, H + 1, W + 1], padding 1.
fn phase_geometry([n, c_in, h, w]: [usize; 4], c_out: usize) -> Option<Conv2dGeometry> {
    Conv2dGeometry::conv2d([n, c_in, h, w], [4 * c_out, c_in, 2, 2], [1, 1], [1, 1], [1, 1])
}

/// [`conv2d_nearest_upsampled_backward_weight`] by the way the tuner names.
fn backward_weight_by_way<T: Float>(
    way: &str,
    grad_y: &[T],
    x: &[T],
    [n, c_in, h, w]: [usize; 4],
    c_out: usize,
    phases: &Conv2dGeometry,
) -> Vec<T> {
    if way == tuning::WINOGRAD {
        return upsampled_weight::conv2d_nearest_upsampled_backward_weight(grad_y, x, [n, c_in, h, w], c_out);
    }
    let grad_phases = interleave_phases_backward(grad_y, n * c_out, h, w);
    phase_weights_backward(&conv::conv2d_backward_weight(&grad_phases, x, phases), c_out, c_in)
}

/// Interleaves the four phase planes of each channel into one plane twice the size:
/// y[2i + a, 2j + b] = phases[2a + b][i + a, j + b] (`ops::upsampled_conv` has the algebra).
// phases: [P, 4, H + 1, W + 1] → y: [P, 2H, 2W]
pub fn interleave_phases<T: Float>(phases: &[T], planes: usize, h: usize, w: usize) -> Vec<T> {
    let (ph, pw) = (h + 1, w + 1);
    let mut y = vec![T::ZERO; planes * 4 * h * w];
    if h * w == 0 {
        return y;
    }
    y.par_chunks_mut(4 * h * w).zip(phases.par_chunks(4 * ph * pw)).for_each(|(yp, four)| {
        for (r, row) in yp.chunks_exact_mut(2 * w).enumerate() {
            let (i, a) = (r / 2, r % 2);
            // Row r interleaves phase (a, 0) and phase (a, 1), both at their row i + a.
            let even = &four[(2 * a * ph + i + a) * pw..][..pw];
            let odd = &four[((2 * a + 1) * ph + i + a) * pw..][..pw];
            for (j, pair) in row.chunks_exact_mut(2).enumerate() {
                pair[0] = even[j];
                pair[1] = odd[j + 1];
            }
        }
    });
    y
}

/// The adjoint of [`interleave_phases`]: each phase plane gathers its pixels back,
/// d_phases[2a + b][p, q] = dy[2p − a, 2q − b], and is zero on the row and the column the
/// forward never read (p = 0 or p = H when a is 1 or 0; likewise q).
// dy: [P, 2H, 2W] → d_phases: [P, 4, H + 1, W + 1]
pub fn interleave_phases_backward<T: Float>(dy: &[T], planes: usize, h: usize, w: usize) -> Vec<T> {
    let (ph, pw) = (h + 1, w + 1);
    let mut d = vec![T::ZERO; planes * 4 * ph * pw];
    if h * w == 0 {
        return d;
    }
    d.par_chunks_mut(ph * pw).enumerate().for_each(|(k, plane)| {
        let (a, b) = ((k % 4) / 2, k % 2);
        let dyp = &dy[(k / 4) * 4 * h * w..][..4 * h * w];
        for i in 0..h {
            let src = &dyp[(2 * i + a) * 2 * w..][..2 * w];
            let dst = &mut plane[(i + a) * pw + b..][..w];
            for (j, v) in dst.iter_mut().enumerate() {
                *v = src[2 * j + b];
            }
        }
    });
    d
}

/// The layer's forward by its own Winograd transform. The phases (`ops::upsampled_conv`) spend
/// 16 multiply-adds per input channel and output quad; along one axis, the output pair
/// (2i, 2i + 1) reads the upsampled rows 2i − 1 … 2i + 2, which are the small rows i − 1, i, i,
/// i + 1:
///
///   y(2i) = s(i−1)·g0 + s(i)·(g1 + g2),   y(2i+1) = s(i)·(g0 + g1) + s(i+1)·g2,
///
/// four products, or three:
///
///   m0 = (s(i−1) − s(i))·g0,   m1 = s(i)·(g0 + g1 + g2),   m2 = (s(i) − s(i+1))·g2,
///   y(2i) = m0 + m1,   y(2i+1) = m1 − m2.
///
/// That is a Winograd algorithm (Lavin and Gray, "Fast Algorithms for Convolutional Neural
/// Networks", 2016) for the pair, with transforms whose entries are 0 and ±1. Nested in two
/// dimensions: U = G·g·Gᵀ for each kernel, V = C·s·Cᵀ for each 3×3 neighbourhood s of a small
/// pixel, nine GEMMs M_ξ = U_ξ·V_ξ over the input channels, and each 2×2 output quad as A·M·Aᵀ,
///
///   C = | 1 −1  0 |     G = | 1  0  0 |     A = | 1  1  0 |
///       | 0  1  0 |         | 1  1  1 |         | 0  1 −1 |
///       | 0  1 −1 |         | 0  0  1 |
///
/// 9 multiply-adds per input channel and output quad (36 as written), and no phase made, kept
/// or interleaved. V and M hold nine values per small pixel and channel, so they are made a
/// block of rows at a time, small enough to stay in cache from the transform to the GEMMs to
/// the output (see `block_rows`); the blocks run in parallel, each on one thread while there
/// are at least as many blocks as threads.
// x: [N, C_in, H, W]   w: [C_out, C_in, 3, 3]   bias: [C_out]   ->   y: [N, C_out, 2H, 2W]
pub fn conv2d_nearest_upsampled<T: Float>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    sizes: [usize; 4],
    c_out: usize,
) -> Vec<T> {
    let [_, c_in, h, wd] = sizes;
    in_blocks(x, w, bias, sizes, c_out, block_rows::<T>(h, wd, 9, c_in, c_out))
}

/// [`conv2d_nearest_upsampled`] in blocks of `rows` rows of small pixels (the tests walk
/// several).
fn in_blocks<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, sizes: [usize; 4], c_out: usize, rows: usize) -> Vec<T> {
    let [batch, c_in, h, wd] = sizes;
    let plane = h * wd; // one tile per small pixel
    let len = batch * c_out * 4 * plane;
    if len == 0 {
        return vec![];
    }
    // U[co][ξ][ci], ξ = 3a + b: U_ξ is the [C_out, C_in] matrix of row stride 9·C_in.
    let u = kernel_transforms(w, c_out, c_in, &[[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 1.0]]);

    // A block is a run of rows of small pixels, across images when the planes are small.
    let pass_scratch = || {
        let t = vec![T::ZERO; wd + 2]; // one row with C applied down its column, a zero each side
        let q: [[Vec<T>; 2]; 3] = std::array::from_fn(|_| [vec![T::ZERO; wd], vec![T::ZERO; wd]]);
        (t, q)
    };
    // SAFETY: each small row belongs to one block, whose output pass writes both of its output
    // rows whole.
    unsafe {
        run_blocks_into_new(
            len,
            &u,
            [c_in, c_out, 9],
            [batch * h, wd, rows],
            pass_scratch,
            |block, v, (t, _)| vectorized::run(InputPass { x, sizes, block, v, t }),
            |block, m, (_, q), out| vectorized::run(OutputPass { m, bias, sizes, c_out, block, out, q }),
        )
    }
}

/// V = C·s·Cᵀ of every small pixel in the rows `block` of the batch, for every input channel,
/// into v: [C_in, 9, pixels of the block].
struct InputPass<'a, T> {
    x: &'a [T],
    sizes: [usize; 4],
    block: Range<usize>,
    v: &'a mut [T],
    /// One row with C applied down its column, between a zero on each side.
    t: &'a mut [T],
}

impl<T: Float> vectorized::Work for InputPass<'_, T> {
    #[inline(always)]
    fn run(self) {
        let InputPass { x, sizes: [_, c_in, h, wd], block, v, t } = self;
        let (plane, cols) = (h * wd, block.len() * wd);
        for (ci, v_ci) in v.chunks_exact_mut(9 * cols).enumerate() {
            for (r, batch_row) in block.clone().enumerate() {
                let (image, i) = (batch_row / h, batch_row % h);
                let s = &x[(image * c_in + ci) * plane..][..plane];
                let row = |i: usize| &s[i * wd..][..wd];
                let (above, centre, below) = (i.checked_sub(1).map(row), row(i), (i + 1 < h).then(|| row(i + 1)));
                // The zeros either side of the row stand for the pixels beyond the image.
                let (padded, inner) = (&mut *t, 1..wd + 1);
                for a in 0..3 {
                    // C down the column: the difference with the row above, the row, the
                    // difference with the row below (zero beyond the image)...
                    let t = &mut padded[inner.clone()];
                    match (a, above, below) {
                        (0, Some(above), _) => subtract(t, above, centre),
                        (0, None, _) => t.iter_mut().zip(centre).for_each(|(t, &c)| *t = -c),
                        (2, _, Some(below)) => subtract(t, centre, below),
                        _ => t.copy_from_slice(centre),
                    }
                    // ... then along the row, the same three ways: the difference with the
                    // pixel to the left, the pixel, the difference with the pixel to the right.
                    let at = |b: usize| (3 * a + b) * cols + r * wd;
                    subtract(&mut v_ci[at(0)..][..wd], &padded[..wd], &padded[inner.clone()]);
                    v_ci[at(1)..][..wd].copy_from_slice(&padded[inner.clone()]);
                    subtract(&mut v_ci[at(2)..][..wd], &padded[inner.clone()], &padded[2..]);
                }
            }
        }
    }
}

/// Each output quad from its nine M values (m: [C_out, 9, pixels of the block]), plus the
/// bias, written into the two output rows of each small row in `block`.
struct OutputPass<'a, T> {
    m: &'a [T],
    bias: Option<&'a [T]>,
    sizes: [usize; 4],
    c_out: usize,
    block: Range<usize>,
    out: SharedOut<MaybeUninit<T>>,
    /// Three rows of M with A applied along them, each as its even and odd columns.
    q: &'a mut [[Vec<T>; 2]; 3],
}

impl<T: Float> vectorized::Work for OutputPass<'_, T> {
    #[inline(always)]
    fn run(self) {
        let OutputPass { m, bias, sizes: [_, _, h, wd], c_out, block, out, q } = self;
        let cols = block.len() * wd;
        for (co, m_co) in m.chunks_exact(9 * cols).enumerate() {
            let b = bias.map_or(T::ZERO, |b| b[co]);
            for (r, batch_row) in block.clone().enumerate() {
                let (image, i) = (batch_row / h, batch_row % h);
                // SAFETY: output rows 2i and 2i + 1 of (image, co) lie within y, and no other
                // block writes them: each small row belongs to one block.
                let pair = unsafe { out.slice(((image * c_out + co) * 2 * h + 2 * i) * 2 * wd, 4 * wd) };
                let (top, bottom) = pair.split_at_mut(2 * wd);
                let m_row = |xi: usize| &m_co[xi * cols + r * wd..][..wd];
                // A along the row for each of M's three rows: q[a] = (M_a0 + M_a1, M_a1 − M_a2).
                for (a, [even, odd]) in q.iter_mut().enumerate() {
                    let [m0, m1, m2] = [m_row(3 * a), m_row(3 * a + 1), m_row(3 * a + 2)];
                    add(even, m0, m1);
                    subtract(odd, m1, m2);
                }
                // Then down the column: rows 2i and 2i + 1 of the output, each pair of columns
                // (2j, 2j + 1) from the even and odd q.
                let [q0, q1, q2] = &*q;
                interleave(top, [&q0[0], &q0[1]], [&q1[0], &q1[1]], false, b);
                interleave(bottom, [&q1[0], &q1[1]], [&q2[0], &q2[1]], true, b);
            }
        }
    }
}

/// One output row from two rows of q, each as its even and odd columns: columns (2j, 2j + 1)
/// are (first + second) + bias, or (first − second) + bias with `minus`.
#[inline(always)]
fn interleave<T: Float>(
    y_row: &mut [MaybeUninit<T>],
    [first_even, first_odd]: [&[T]; 2],
    [second_even, second_odd]: [&[T]; 2],
    minus: bool,
    bias: T,
) {
    let pairs = y_row.chunks_exact_mut(2).zip(first_even.iter().zip(first_odd).zip(second_even.iter().zip(second_odd)));
    if minus {
        for (pair, ((&fe, &fo), (&se, &so))) in pairs {
            pair[0].write(fe - se + bias);
            pair[1].write(fo - so + bias);
        }
    } else {
        for (pair, ((&fe, &fo), (&se, &so))) in pairs {
            pair[0].write(fe + se + bias);
            pair[1].write(fo + so + bias);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_support::{assert_within, ramp, to_f32};
    use crate::reference;

    #[test]
    fn the_winograd_form_equals_upsampling_then_convolving_in_f64_and_f32() {
        // Odd sizes and one pixel, in blocks of one row, of rows that do not divide the image,
        // of one image and a half, and of whole images (the last block short).
        for (batch, c_in, c_out, [h, w]) in [(3, 3, 5, [3, 4]), (2, 2, 3, [1, 1]), (5, 2, 2, [4, 3])] {
            let drawn = ramp(batch * c_in * h * w + c_out * c_in * 9 + c_out);
            let (x, rest) = drawn.split_at(batch * c_in * h * w);
            let (k, b) = rest.split_at(c_out * c_in * 9);
            let sizes = [batch, c_in, h, w];
            let want = reference::upsampled_conv::conv2d_nearest_upsampled(x, k, Some(b), sizes, c_out);
            for rows in [1, 2, h + h / 2, 2 * h] {
                let what = format!("batch {batch}, {c_in}→{c_out}, {h}×{w}, blocks of {rows} rows");
                let got = in_blocks(x, k, Some(b), sizes, c_out, rows);
                assert_within(&format!("{what}, f64"), got.into_iter(), &want, 1e-12);
                let got = in_blocks(&to_f32(x), &to_f32(k), Some(&to_f32(b)), sizes, c_out, rows);
                assert_within(&format!("{what}, f32"), got.into_iter().map(f64::from), &want, 1e-5);
            }
        }
    }

    #[test]
    fn an_empty_plane_gives_an_empty_output_without_dividing_by_its_height() {
        assert!(conv2d_nearest_upsampled::<f32>(&[], &[0.5; 18], None, [2, 2, 0, 3], 1).is_empty());
    }
}
