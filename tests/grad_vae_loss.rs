//! Gradient checks of every VAE loss term: reconstruction (mse, bce, bce-logits), the analytic
//! KL, and the β-TCVAE decomposition under both estimators (through z, μ and log σ²); and of
//! the reparameterised sample, one op.

use crate::common;

use common::{check, rng, uniform};
use vae::loss::{kl_divergence, reconstruction_loss, reparameterize, tc_decomposition, ReconLoss, TcEstimator};

#[test]
fn mse_matches_finite_differences() {
    let mut r = rng();
    let (y, t) = (uniform(&[2, 1, 3, 3], 0.0, 1.0, &mut r), uniform(&[2, 1, 3, 3], 0.0, 1.0, &mut r));
    check(|v| reconstruction_loss(&v[0], &v[1], ReconLoss::Mse), &[y, t]);
}

#[test]
fn bce_on_probabilities_matches_finite_differences() {
    let mut r = rng();
    let (y, t) = (uniform(&[3, 2, 2, 2], 0.05, 0.95, &mut r), uniform(&[3, 2, 2, 2], 0.0, 1.0, &mut r));
    check(|v| reconstruction_loss(&v[0], &v[1], ReconLoss::Bce), &[y, t]);
}

#[test]
fn bce_with_logits_matches_finite_differences() {
    let mut r = rng();
    // The stable form has |x| in it; keep logits away from 0 where that kink sits (the loss
    // itself is smooth there, but finite differences across the kink lose a digit).
    let x = common::away_from_zero(&[2, 3, 2, 2], 1e-3, &mut r);
    let t = uniform(&[2, 3, 2, 2], 0.0, 1.0, &mut r);
    check(|v| reconstruction_loss(&v[0], &v[1], ReconLoss::BceLogits), &[x, t]);
}

#[test]
fn the_reparameterized_sample_matches_finite_differences_in_mu_and_logvar() {
    let mut r = rng();
    let eps = uniform(&[4, 5], -2.0, 2.0, &mut r);
    check(
        |v| reparameterize(&v[0], &v[1], &eps),
        &[uniform(&[4, 5], -1.0, 1.0, &mut r), uniform(&[4, 5], -3.0, 2.0, &mut r)],
    );
}

#[test]
fn analytic_kl_matches_finite_differences() {
    let mut r = rng();
    check(|v| kl_divergence(&v[0], &v[1]), &[uniform(&[4, 5], -1.0, 1.0, &mut r), uniform(&[4, 5], -1.0, 1.0, &mut r)]);
}

fn tc_terms_check(est: TcEstimator) {
    let mut r = rng();
    let (m, d) = (5, 3);
    let inputs =
        [uniform(&[m, d], -2.0, 2.0, &mut r), uniform(&[m, d], -1.0, 1.0, &mut r), uniform(&[m, d], -1.0, 0.5, &mut r)];
    for term in 0..3 {
        check(
            |v| {
                let (mi, tc, dw) = tc_decomposition(&v[0], &v[1], &v[2], 1000, est)?;
                Ok([mi, tc, dw][term].clone())
            },
            &inputs,
        );
    }
}

#[test]
fn tc_terms_with_minibatch_weighted_sampling_match_finite_differences() {
    tc_terms_check(TcEstimator::MinibatchWeighted);
}

#[test]
fn tc_terms_with_minibatch_stratified_sampling_match_finite_differences() {
    tc_terms_check(TcEstimator::MinibatchStratified);
}

/// BCE's gradient with respect to its probabilities y at exactly 0 and 1 (what sigmoid returns
/// in f32 for logits beyond ±17), where ln y or ln(1 − y) is −∞: PyTorch clamps the logs at −100
/// and divides by max(y(1 − y), 1e-12), so the gradient is finite and points the right way.
#[test]
fn bce_on_saturated_probabilities_has_pytorchs_finite_gradient() {
    use autograd::Var;
    use tensor::Tensor;
    // y = sigmoid(±200) in f32 is exactly 1.0 and 0.0 (sigmoid(17) is already 1.0).
    let logits = Tensor::from_vec(vec![200.0f32, -200.0, 200.0, -200.0, 0.0], &[1, 5]).unwrap();
    let y = Var::parameter(logits.sigmoid().unwrap());
    assert_eq!(y.value().to_vec_f32().unwrap()[..4], [1.0, 0.0, 1.0, 0.0]);
    let t = Var::constant(Tensor::from_vec(vec![0.0f32, 1.0, 1.0, 0.0, 0.25], &[1, 5]).unwrap());
    let loss = reconstruction_loss(&y, &t, ReconLoss::Bce).unwrap();
    // Each wrong saturated pixel costs PyTorch's clamped 100; right ones 0; the last ln 2-ish.
    let want_loss = 200.0 - (0.25 * 0.5f64.ln() + 0.75 * 0.5f64.ln());
    assert!((loss.value().item().unwrap() - want_loss).abs() < 1e-4, "{}", loss.value().item().unwrap());
    loss.backward().unwrap();
    let g = y.grad().unwrap().to_vec_f64().unwrap();
    // (y − t) / max(y(1 − y), 1e-12) per pixel (batch of one, summed over pixels).
    let want = [1e12, -1e12, 0.0, 0.0, (0.5 - 0.25) / 0.25];
    for (i, (got, want)) in g.iter().zip(want).enumerate() {
        assert!(got.is_finite(), "pixel {i}: gradient {got}");
        assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "pixel {i}: {got} vs {want}");
    }
}

#[test]
fn bce_on_probabilities_near_saturation_matches_finite_differences() {
    let mut r = rng();
    // Within 1e-4 of 0 and 1, where y(1 − y) is small but above PyTorch's 1e-12 floor.
    let near_zero = uniform(&[1, 1, 2, 2], 1e-5, 1e-4, &mut r);
    let near_one = uniform(&[1, 1, 2, 2], 1.0 - 1e-4, 1.0 - 1e-5, &mut r);
    let t = uniform(&[1, 1, 2, 2], 0.0, 1.0, &mut r);
    // A step 1e-9 keeps y ± step inside (0, 1) and the curvature error far below the tolerance.
    let opts = autograd::gradcheck::GradcheckOptions { eps: 1e-9, ..Default::default() };
    common::check_with(|v| reconstruction_loss(&v[0], &v[1], ReconLoss::Bce), &[near_zero, t.clone()], &opts);
    common::check_with(|v| reconstruction_loss(&v[0], &v[1], ReconLoss::Bce), &[near_one, t], &opts);
}
