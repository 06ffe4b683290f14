//! The nearest-upsampled convolution's own ops (`ops::upsampled_conv`), by definition: the
//! layer as upsampling then convolving; the phases' 2×2 kernels from the 3×3 kernel and back,
//! and the phases put in place and back, element by element, from the formulas.

use crate::descriptors::Conv2dGeometry;

/// conv2d(upsample_nearest(x, 2), w, stride 1, padding 1) + bias, as written.
// x: [N, C_in, H, W]   w: [C_out, C_in, 3, 3]   bias: [C_out]   ->   y: [N, C_out, 2H, 2W]
pub fn conv2d_nearest_upsampled(
    x: &[f64],
    w: &[f64],
    bias: Option<&[f64]>,
    [n, c_in, h, wd]: [usize; 4],
    c_out: usize,
) -> Vec<f64> {
    let up = super::interpolate::upsample(x, n * c_in, [h, wd], [2, 2], false);
    let g = Conv2dGeometry::conv2d([n, c_in, 2 * h, 2 * wd], [c_out, c_in, 3, 3], [1, 1], [1, 1], [1, 1])
        .expect("a 3×3 kernel with padding 1 fits every image");
    super::conv::conv2d(&up, w, bias, &g)
}

/// The row (or column) of phase a's 2×2 kernel that 3×3 tap k joins: output row 2i + a reads
/// upsampled row 2i + a + k − 1, which is the small image's row ⌊(2i + a + k − 1)/2⌋ = i +
/// ⌊(a + k − 1)/2⌋, and the 2×2 kernel's taps 0 and 1 read rows i + a − 1 and i + a.
fn tap(k: usize, a: usize) -> usize {
    (a + k).div_ceil(2) - a
}

/// w2[o, 2a + b, i, ty, tx] = Σ over (ky, kx) with tap(ky, a) = ty and tap(kx, b) = tx of
/// w[o, i, ky, kx].
// w: [C_out, C_in, 3, 3] → w2: [C_out, 4, C_in, 2, 2]
pub fn phase_weights(w: &[f64], c_out: usize, c_in: usize) -> Vec<f64> {
    let mut w2 = vec![0.0; c_out * 16 * c_in];
    for o in 0..c_out {
        for i in 0..c_in {
            for (a, b, ky, kx) in (0..4).flat_map(|p| (0..9).map(move |k| (p / 2, p % 2, k / 3, k % 3))) {
                w2[((o * 4 + 2 * a + b) * c_in + i) * 4 + 2 * tap(ky, a) + tap(kx, b)] +=
                    w[(o * c_in + i) * 9 + ky * 3 + kx];
            }
        }
    }
    w2
}

/// The adjoint: dw[o, i, ky, kx] = Σ over the four phases (a, b) of dw2[o, 2a + b, i, tap(ky, a),
/// tap(kx, b)].
// dw2: [C_out, 4, C_in, 2, 2] → dw: [C_out, C_in, 3, 3]
pub fn phase_weights_backward(dw2: &[f64], c_out: usize, c_in: usize) -> Vec<f64> {
    let mut dw = vec![0.0; c_out * 9 * c_in];
    for o in 0..c_out {
        for i in 0..c_in {
            for (a, b, ky, kx) in (0..4).flat_map(|p| (0..9).map(move |k| (p / 2, p % 2, k / 3, k % 3))) {
                dw[(o * c_in + i) * 9 + ky * 3 + kx] +=
                    dw2[((o * 4 + 2 * a + b) * c_in + i) * 4 + 2 * tap(ky, a) + tap(kx, b)];
            }
        }
    }
    dw
}

/// The phases of a nearest-upsampled convolution interleaved, by definition:
/// y[p, 2i + a, 2j + b] = phases[p, 2a + b, i + a, j + b].
// phases: [P, 4, H + 1, W + 1] → y: [P, 2H, 2W]
pub fn interleave_phases(phases: &[f64], planes: usize, [h, w]: [usize; 2]) -> Vec<f64> {
    let mut y = vec![0.0; planes * 4 * h * w];
    for p in 0..planes {
        for oy in 0..2 * h {
            for ox in 0..2 * w {
                let (i, a, j, b) = (oy / 2, oy % 2, ox / 2, ox % 2);
                y[(p * 2 * h + oy) * 2 * w + ox] = phases[((p * 4 + 2 * a + b) * (h + 1) + i + a) * (w + 1) + j + b];
            }
        }
    }
    y
}

/// The adjoint: every gradient goes back to the one phase element it was read from; the
/// others are zero.
// dy: [P, 2H, 2W] → d_phases: [P, 4, H + 1, W + 1]
pub fn interleave_phases_backward(dy: &[f64], planes: usize, [h, w]: [usize; 2]) -> Vec<f64> {
    let mut d = vec![0.0; planes * 4 * (h + 1) * (w + 1)];
    for p in 0..planes {
        for oy in 0..2 * h {
            for ox in 0..2 * w {
                let (i, a, j, b) = (oy / 2, oy % 2, ox / 2, ox % 2);
                d[((p * 4 + 2 * a + b) * (h + 1) + i + a) * (w + 1) + j + b] += dy[(p * 2 * h + oy) * 2 * w + ox];
            }
        }
    }
    d
}
