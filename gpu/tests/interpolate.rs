//! interpolate.wgsl against the reference tier (`tensor::reference::interpolate`): nearest and
//! bilinear (align_corners = false, PyTorch's source-index rule) upsampling, forward and
//! backward, at awkward sizes and unequal factors per axis.

use crate::common;

use common::*;
use gpu::kernels::interpolate::{backward, forward, Mode, UpsampleDims};
use tensor::reference::interpolate as reference;

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
            let bilinear = mode == Mode::Bilinear;
            let want = reference::upsample(&f64s(&x).0, d.planes, [d.h, d.w], d.scale, bilinear);
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
            let (dy64, dya) = f64s(&dy);
            let bilinear = mode == Mode::Bilinear;
            let want = reference::upsample_backward(&dy64, d.planes, [d.h, d.w], d.scale, bilinear);
            let scale = reference::upsample_backward(&dya, d.planes, [d.h, d.w], d.scale, bilinear);
            assert_close(&format!("{mode:?} backward {d:?}"), &rng, &ctx.read(&dx).unwrap(), &want, |i| scale[i]);
        }
    }
}
