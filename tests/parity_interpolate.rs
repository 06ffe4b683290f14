//! Upsampling on the GPU against the reference device (each op's plain definition): nearest and bilinear (align_corners =
//! false) by factors 1–3, forward and backward, odd plane sizes, and autograd's backward.

use crate::common;

use common::parity::*;
use common::rng;
use tensor::ops::interpolate::{
    upsample_bilinear2d, upsample_bilinear2d_backward, upsample_nearest2d, upsample_nearest2d_backward,
};
use tensor::ops::upsampled_conv::{interleave_phases, interleave_phases_backward};
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

/// The nearest-upsampled convolution (a 2×2 convolution and its phases interleaved) on the GPU:
/// values and the gradients of x, the 3×3 weight and the bias.
#[test]
fn the_nearest_upsampled_convolution_runs_on_the_gpu_and_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let inputs = [signed(&[2, 3, 5, 3], &mut r), signed(&[4, 3, 3, 3], &mut r), signed(&[4], &mut r)];
    assert_backward_parity("conv2d_nearest_upsampled", &gpu, &inputs, |v| {
        autograd::ops::conv2d::conv2d_nearest_upsampled(&v[0], &v[1], v.get(2))
    });
}

/// Phases larger than one binding of a small-binding GPU (2.2 MB against 2 MiB): the strided
/// copies run in parts, forward and backward. Just before the backward a NaN tensor of its
/// output's size is released, whose buffer the pool may hand back: the zeros the backward
/// leaves must be written, not assumed.
#[test]
fn interleaving_phases_larger_than_one_binding_matches_the_cpu() {
    let Some(gpu) = small_binding_gpu() else { return };
    let mut r = rng();
    let phases = signed_cpu(&[2, 4 * 64, 33, 33], &mut r);
    let dy = signed_cpu(&[2, 64, 64, 64], &mut r);
    let y = interleave_phases(&up(&phases, &gpu)).unwrap();
    assert_eq!(y.to_vec_f32().unwrap(), interleave_phases(&phases).unwrap().to_vec_f32().unwrap());
    drop(Tensor::full_on(&[2, 4 * 64, 33, 33], f64::NAN, tensor::DType::F32, &gpu).unwrap());
    let d = interleave_phases_backward(&up(&dy, &gpu)).unwrap();
    assert_eq!(d.to_vec_f32().unwrap(), interleave_phases_backward(&dy).unwrap().to_vec_f32().unwrap());
}
