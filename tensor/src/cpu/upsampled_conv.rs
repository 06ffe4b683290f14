//! The phases of a nearest-upsampled convolution (`ops::upsampled_conv`) put in place, and
//! back: P = N·C independent channels, each four (H + 1)×(W + 1) phase planes against one
//! [2H, 2W] plane, parallel over planes.

use rayon::prelude::*;

use crate::dtype::Float;

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
