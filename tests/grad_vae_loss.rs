//! Gradient checks of every VAE loss term: reconstruction (mse, bce, bce-logits), the analytic
//! KL, and the β-TCVAE decomposition under both estimators (through z, μ and log σ²).

mod common;

use common::{check, rng, uniform};
use vae::loss::{kl_divergence, reconstruction_loss, tc_decomposition, ReconLoss, TcEstimator};

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
