//! The phases of a nearest-upsampled convolution (`ops::upsampled_conv`) put in place and
//! back, by definition: element by element, from the formula.

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
