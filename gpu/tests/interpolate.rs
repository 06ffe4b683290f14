//! interpolate.wgsl against f64 references: nearest and bilinear (align_corners = false,
//! PyTorch's source-index rule) upsampling, forward and backward, at awkward sizes.

mod common;

use common::*;
use gpu::kernels::interpolate::{backward, forward, Mode, UpsampleDims};

/// PyTorch's taps for output o of an axis of input length n and factor s:
/// src = max((o + 0.5)/s − 0.5, 0), i0 = min(⌊src⌋, n − 1), i1 = min(i0 + 1, n − 1).
fn taps(o: usize, n: usize, s: usize) -> [(usize, f64); 2] {
    let src = ((o as f64 + 0.5) / s as f64 - 0.5).max(0.0);
    let i0 = (src.floor() as usize).min(n - 1);
    let i1 = (i0 + 1).min(n - 1);
    let l1 = (src - i0 as f64).clamp(0.0, 1.0);
    [(i0, 1.0 - l1), (i1, l1)]
}

/// The forward as a list of (output index, input index, weight) terms.
fn terms(mode: Mode, d: UpsampleDims) -> Vec<(usize, usize, f64)> {
    let (oh, ow) = (d.h * d.scale[0], d.w * d.scale[1]);
    let mut t = Vec::new();
    for p in 0..d.planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let o = (p * oh + oy) * ow + ox;
                match mode {
                    Mode::Nearest => t.push((o, (p * d.h + oy / d.scale[0]) * d.w + ox / d.scale[1], 1.0)),
                    Mode::Bilinear => {
                        for (iy, wy) in taps(oy, d.h, d.scale[0]) {
                            for (ix, wx) in taps(ox, d.w, d.scale[1]) {
                                t.push((o, (p * d.h + iy) * d.w + ix, wy * wx));
                            }
                        }
                    }
                }
            }
        }
    }
    t
}

fn cases() -> Vec<UpsampleDims> {
    [
        (1, 1, 1, [2, 2]),
        (6, 7, 5, [2, 2]),
        (2, 33, 2, [3, 2]),
        (3, 4, 9, [4, 3]),
        (1, 5, 5, [1, 1]),
        (2, 16, 16, [2, 2]),
    ]
    .into_iter()
    .map(|(planes, h, w, scale)| UpsampleDims { planes, h, w, scale })
    .collect()
}

#[test]
fn upsample_forward_matches_pytorch_rule() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for d in cases() {
        let x = rng.signed(d.x_len());
        let xb = upload(ctx, &x);
        for mode in [Mode::Nearest, Mode::Bilinear] {
            let y = poisoned(ctx, d.y_len());
            forward(ctx, mode, d, &xb, &y).unwrap();
            let mut want = vec![0.0; d.y_len()];
            for (o, i, w) in terms(mode, d) {
                want[o] += w * x[i] as f64;
            }
            assert_close_unit(&format!("{mode:?} forward {d:?}"), &rng, &ctx.read(&y).unwrap(), &want);
        }
    }
}

#[test]
fn upsample_backward_is_the_adjoint_of_the_forward() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for d in cases() {
        let dy = rng.signed(d.y_len());
        let dyb = upload(ctx, &dy);
        for mode in [Mode::Nearest, Mode::Bilinear] {
            let dx = poisoned(ctx, d.x_len());
            backward(ctx, mode, d, &dyb, &dx).unwrap();
            let (mut want, mut scale) = (vec![0.0; d.x_len()], vec![0.0; d.x_len()]);
            for (o, i, w) in terms(mode, d) {
                want[i] += w * dy[o] as f64;
                scale[i] += (w * dy[o] as f64).abs();
            }
            assert_close(&format!("{mode:?} backward {d:?}"), &rng, &ctx.read(&dx).unwrap(), &want, |i| scale[i]);
        }
    }
}
