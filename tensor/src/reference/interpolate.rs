//! Integer-factor 2-D upsampling of P independent [H, W] planes to [H·sh, W·sw], by definition
//! (PyTorch's `F.interpolate(scale_factor=(sh, sw))`, align_corners = false). Both modes are linear
//! maps y = A·x given by their taps; the backward is Aᵀ, the same taps run in reverse.

/// The inputs output position `o` (of n·s) reads along one axis, with their weights.
fn taps(o: usize, n: usize, s: usize, bilinear: bool) -> [(usize, f64); 2] {
    if !bilinear {
        return [(o / s, 1.0), (o / s, 0.0)]; // nearest: the input o/s
    }
    // The output pixel's centre in input coordinates, clamped at the first pixel's centre.
    let src = ((o as f64 + 0.5) / s as f64 - 0.5).max(0.0);
    let i0 = (src.floor() as usize).min(n - 1);
    let i1 = (i0 + 1).min(n - 1);
    let l1 = src - i0 as f64;
    [(i0, 1.0 - l1), (i1, l1)]
}

/// y[p, oy, ox] = Σ over the row taps (iy, a) and column taps (ix, b) of a·b·x[p, iy, ix].
// x: [P, H, W] → y: [P, H·sh, W·sw]
pub fn upsample(x: &[f64], planes: usize, [h, w]: [usize; 2], [sh, sw]: [usize; 2], bilinear: bool) -> Vec<f64> {
    let mut y = vec![0.0; planes * h * sh * w * sw];
    for p in 0..planes {
        for oy in 0..h * sh {
            for ox in 0..w * sw {
                for (iy, a) in taps(oy, h, sh, bilinear) {
                    for (ix, b) in taps(ox, w, sw, bilinear) {
                        y[(p * h * sh + oy) * w * sw + ox] += a * b * x[(p * h + iy) * w + ix];
                    }
                }
            }
        }
    }
    y
}

/// The backward: dx[p, iy, ix] = Σ over the outputs that read it of a·b·dy.
// dy: [P, H·sh, W·sw] → dx: [P, H, W]
pub fn upsample_backward(
    dy: &[f64],
    planes: usize,
    [h, w]: [usize; 2],
    [sh, sw]: [usize; 2],
    bilinear: bool,
) -> Vec<f64> {
    let mut dx = vec![0.0; planes * h * w];
    for p in 0..planes {
        for oy in 0..h * sh {
            for ox in 0..w * sw {
                for (iy, a) in taps(oy, h, sh, bilinear) {
                    for (ix, b) in taps(ox, w, sw, bilinear) {
                        dx[(p * h + iy) * w + ix] += a * b * dy[(p * h * sh + oy) * w * sw + ox];
                    }
                }
            }
        }
    }
    dx
}
