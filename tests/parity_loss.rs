//! The losses written as one op (binary cross-entropy on probabilities, the squared difference,
//! the Gaussian KL per latent) and the VAE's sample (`reparameterize`) on the GPU against the
//! reference device: forward and the gradients, at odd sizes and at saturated probabilities
//! (exactly 0 and 1).

use crate::common;

use autograd::ops::elementwise::{reparameterize, squared_difference, twice_gaussian_kl};
use autograd::ops::loss::binary_cross_entropy;
use common::parity::*;
use common::rng;
use tensor::Tensor;

#[test]
fn binary_cross_entropy_matches_the_reference_inside_and_at_saturation() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    // 1,031 probabilities: random ones in (0, 1), then exact 0s and 1s every 7th element.
    let inside = uniform32(&[1031], 0.01, 0.99, &mut r);
    let t = uniform32(&[1031], 0.0, 1.0, &mut r);
    assert_backward_parity("binary_cross_entropy inside", &gpu, &[inside.clone(), t.clone()], |v| {
        binary_cross_entropy(&v[0], &v[1])
    });
    // Saturated gradients are ±1e12: compared on their own, the interior above stays visible.
    let mut y = inside.to_vec_f32().unwrap();
    for (i, v) in y.iter_mut().enumerate().filter(|(i, _)| i % 7 == 0) {
        *v = if i % 14 == 0 { 0.0 } else { 1.0 };
    }
    let y = Tensor::from_vec(y, &[1031]).unwrap().to_device(&inside.device()).unwrap();
    assert_backward_parity("binary_cross_entropy saturated", &gpu, &[y, t], |v| binary_cross_entropy(&v[0], &v[1]));
}

#[test]
fn reparameterize_matches_the_reference_at_an_odd_size() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    // 37 × 13: not a whole number of workgroups; log σ² from −8 (σ ≈ 0.02) to 4.
    let (mu, logvar) = (uniform32(&[37, 13], -2.0, 2.0, &mut r), uniform32(&[37, 13], -8.0, 4.0, &mut r));
    let eps = uniform32(&[37, 13], -3.0, 3.0, &mut r);
    assert_backward_parity("reparameterize", &gpu, &[mu, logvar], |v| {
        let eps = eps.to_device(&v[0].value().device())?;
        reparameterize(&v[0], &v[1], &eps)
    });
}

#[test]
fn squared_difference_matches_the_reference_at_an_odd_size_and_broadcast() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let (y, t) = (uniform32(&[37, 13], -2.0, 2.0, &mut r), uniform32(&[37, 13], -2.0, 2.0, &mut r));
    assert_backward_parity("squared_difference", &gpu, &[y.clone(), t], |v| squared_difference(&v[0], &v[1]));
    // A row broadcast against the matrix: its gradient is the negated one summed over the rows.
    let row = uniform32(&[13], -2.0, 2.0, &mut r);
    assert_backward_parity("squared_difference broadcast", &gpu, &[y, row], |v| squared_difference(&v[0], &v[1]));
}

#[test]
fn twice_gaussian_kl_matches_the_reference_at_an_odd_size() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let (mu, logvar) = (uniform32(&[37, 13], -2.0, 2.0, &mut r), uniform32(&[37, 13], -8.0, 4.0, &mut r));
    assert_backward_parity("twice_gaussian_kl", &gpu, &[mu, logvar], |v| twice_gaussian_kl(&v[0], &v[1]));
}
