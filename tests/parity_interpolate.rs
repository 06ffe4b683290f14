//! Upsampling on the GPU against the reference device (each op's plain definition): nearest and bilinear (align_corners =
//! false) by factors 1–3, forward and backward, odd plane sizes, and autograd's backward.

use crate::common;

use common::parity::*;
use common::rng;
use tensor::ops::interpolate::{
    upsample_bilinear2d, upsample_bilinear2d_backward, upsample_nearest2d, upsample_nearest2d_backward,
};
use tensor::{Result, Tensor};

#[test]
fn upsampling_forward_and_backward_match_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    for (xs, scale) in [([1, 1, 1, 1], 2), ([2, 3, 7, 5], 2), ([1, 2, 9, 17], 3), ([3, 1, 4, 4], 1), ([1, 70, 5, 6], 2)]
    {
        let x = signed(&xs, &mut r);
        let xg = up(&x, &gpu);
        type Forward = fn(&Tensor, usize) -> Result<Tensor>;
        let forwards: [(&str, Forward); 2] = [("nearest", upsample_nearest2d), ("bilinear", upsample_bilinear2d)];
        for (name, f) in forwards {
            assert_close(&format!("{name} {xs:?} ×{scale}"), &f(&xg, scale).unwrap(), &f(&x, scale).unwrap(), None);
        }
        let gy = signed(&[xs[0], xs[1], xs[2] * scale, xs[3] * scale], &mut r);
        let gyg = up(&gy, &gpu);
        type Backward = fn(&Tensor, &[usize], usize) -> Result<Tensor>;
        let backwards: [(&str, Backward); 2] =
            [("nearest", upsample_nearest2d_backward), ("bilinear", upsample_bilinear2d_backward)];
        for (name, f) in backwards {
            let want = f(&gy, &xs, scale).unwrap();
            let scale_t = f(&abs(&gy), &xs, scale).unwrap();
            assert_close(
                &format!("{name} backward {xs:?} ×{scale}"),
                &f(&gyg, &xs, scale).unwrap(),
                &want,
                Some(&scale_t),
            );
        }
    }
}

#[test]
fn upsampling_autograd_backward_runs_on_the_gpu_and_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let x = signed(&[2, 3, 5, 4], &mut r);
    use autograd::ops::interpolate as ag;
    assert_backward_parity("nearest", &gpu, &[x.clone()], |v| ag::upsample_nearest2d(&v[0], 2));
    assert_backward_parity("bilinear", &gpu, &[x], |v| ag::upsample_bilinear2d(&v[0], 3));
}
