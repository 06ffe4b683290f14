//! The nearest-upsampled convolution's own kernels (`ops::upsampled_conv` has the algebra):
//! the phases' 2×2 kernels from the 3×3 one and back, parallel over output channels; and its
//! phases put in place and back, P = N·C independent channels, each four (H + 1)×(W + 1)
//! phase planes against one [2H, 2W] plane, parallel over planes.

use rayon::prelude::*;

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
