//! VAE objectives: reconstruction losses, the analytic KL, β-VAE, and β-TCVAE with the
//! minibatch-weighted (MWS) and minibatch-stratified (MSS) estimators of Chen et al. (2018).
//!
//! Conventions (docs/architectures.md, "Losses"): every term is summed over a
//! sample's pixels or latents and averaged over the batch. Every component is returned
//! unweighted, next to the weighted total that is back-propagated.

use autograd::Var;
use tensor::{Result, Tensor, TensorError};

/// How the decoder output is compared with the target (`--recon`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReconLoss {
    /// Σ (y − t)², on outputs passed through sigmoid or tanh.
    #[value(name = "mse")]
    Mse,
    /// −Σ [t ln y + (1 − t) ln(1 − y)] on sigmoid outputs (logs clamped at −100 as PyTorch).
    #[value(name = "bce")]
    Bce,
    /// The same on logits x, computed stably as Σ [max(x, 0) − x·t + ln(1 + e^−|x|)].
    #[value(name = "bce-logits")]
    BceLogits,
}

/// Which sampling estimator β-TCVAE uses for log q(z) and log Πⱼ q(zⱼ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcEstimator {
    /// MWS: q(z) ≈ 1/(N·M) Σⱼ q(z|xⱼ) over the M codes of the minibatch.
    MinibatchWeighted,
    /// MSS: the same sum with stratified weights: 1/N on the sample itself, (N−M+1)/(N·(M−1)) on
    /// one other sample, 1/(M−1) on the rest; needs M ≥ 2.
    MinibatchStratified,
}

/// The training objective.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Objective {
    /// k1·recon + β·KL (β = 1, k1 = 1: the plain VAE).
    BetaVae {
        /// Weight k1 of the reconstruction term.
        k1: f64,
        /// Weight β of the KL term.
        beta: f64,
    },
    /// recon + α·MI + β·TC + γ·DW-KL, with the dataset size N needed by the estimators.
    BetaTcVae {
        /// Weight α of the index-code mutual information.
        alpha: f64,
        /// Weight β of the total correlation.
        beta: f64,
        /// Weight γ of the dimension-wise KL.
        gamma: f64,
        /// N, the number of training images (used by the estimators' weights).
        dataset_size: usize,
        /// Which estimator of log q(z) and log Πⱼ q(zⱼ) to use.
        estimator: TcEstimator,
    },
}

/// The loss of one batch: the weighted total to back-propagate, and its terms, not yet read
/// back (on a GPU, a training step reads them once, at its end, with its optimizer's flag:
/// [`LossTerms::values_with`]).
pub struct LossTerms {
    /// The weighted objective (a scalar) to back-propagate.
    pub total: Var,
    /// The objective and each component, `[K]` in the order of [`LossValues::NAMES`] (the
    /// first three for β-VAE, all six for β-TCVAE), on the loss's device.
    terms: Tensor,
}

impl LossTerms {
    /// The terms gathered into one tensor, on the loss's device, unread.
    fn gather(total: Var, terms: &[&Var]) -> Result<LossTerms> {
        let values = terms.iter().map(|s| s.value().reshape(&[1])).collect::<Result<Vec<Tensor>>>()?;
        let terms = tensor::ops::concat::cat(&values.iter().collect::<Vec<_>>(), 0)?;
        Ok(LossTerms { total, terms })
    }

    /// The terms, as a tensor `[K]` (see the field): what a caller checks for non-finite values
    /// on the device.
    pub fn terms(&self) -> &Tensor {
        &self.terms
    }

    /// The terms' values (one host round trip on a GPU).
    pub fn values(&self) -> Result<LossValues> {
        Ok(Self::to_values(&self.terms.to_vec_f64()?))
    }

    /// The terms' values and `extra`'s one value, in one host round trip when `extra` is on
    /// the terms' device (a step's loss and its optimizer's non-finite flag).
    pub fn values_with(&self, extra: &Tensor) -> Result<(LossValues, f64)> {
        let read = Tensor::to_vecs_f64(&[&self.terms, extra])?;
        match &read[..] {
            [terms, extra] if extra.len() == 1 => Ok((Self::to_values(terms), extra[0])),
            _ => Err(TensorError::Shape {
                op: "LossTerms::values_with",
                msg: format!("the extra value must be one element, got shape {:?}", extra.shape()),
            }),
        }
    }

    /// The terms as `LossValues`; `gather` always stores three or six, and a missing one of
    /// the first three would read as NaN, which the non-finite check reports, never as 0.
    fn to_values(v: &[f64]) -> LossValues {
        let at = |i: usize| v.get(i).copied();
        LossValues {
            loss: at(0).unwrap_or(f64::NAN),
            recon: at(1).unwrap_or(f64::NAN),
            kl: at(2).unwrap_or(f64::NAN),
            mi: at(3),
            tc: at(4),
            dwkl: at(5),
        }
    }
}

/// The values of a batch's loss terms, or their means over many batches: the weighted
/// objective and each component, unweighted. The one definition of the terms: `metrics.csv`'s
/// columns, the checkpoints' history, the progress line and the non-finite check all go
/// through [`LossValues::named`].
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossValues {
    /// The weighted objective that was minimised.
    pub loss: f64,
    /// Reconstruction loss (summed over a sample's pixels, averaged over the batch), unweighted.
    pub recon: f64,
    /// Analytic KL(q(z|x) ‖ p(z)), averaged over the batch (reported for both objectives).
    pub kl: f64,
    /// Index-code mutual information, sampled estimate (β-TCVAE only; `None` for β-VAE).
    pub mi: Option<f64>,
    /// Total correlation KL(q(z) ‖ Πⱼ q(zⱼ)), sampled estimate (β-TCVAE only).
    pub tc: Option<f64>,
    /// Dimension-wise KL Σⱼ KL(q(zⱼ) ‖ p(zⱼ)), sampled estimate (β-TCVAE only).
    pub dwkl: Option<f64>,
}

impl LossValues {
    /// The terms' names, in order.
    pub const NAMES: [&'static str; 6] = ["loss", "recon", "kl", "mi", "tc", "dwkl"];

    /// Each term with its name, in the order of [`LossValues::NAMES`] (`None`: a β-TCVAE term
    /// of a β-VAE).
    pub fn named(&self) -> [(&'static str, Option<f64>); 6] {
        let values = [Some(self.loss), Some(self.recon), Some(self.kl), self.mi, self.tc, self.dwkl];
        std::array::from_fn(|i| (Self::NAMES[i], values[i]))
    }

    /// The terms looked up by name, the inverse of [`LossValues::named`]; `None` when the
    /// objective, the reconstruction or the KL is missing.
    pub fn from_named(value: impl Fn(&str) -> Option<f64>) -> Option<LossValues> {
        Some(LossValues {
            loss: value("loss")?,
            recon: value("recon")?,
            kl: value("kl")?,
            mi: value("mi"),
            tc: value("tc"),
            dwkl: value("dwkl"),
        })
    }

    /// Combines two sets term by term; a term missing from either is missing from the result
    /// unless `self` lacks it, when `other`'s value is taken through `f(0, ·)`.
    pub fn zip_with(&self, other: &LossValues, f: impl Fn(f64, f64) -> f64) -> LossValues {
        let optional = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (_, None) => a,
            (a, Some(b)) => Some(f(a.unwrap_or(0.0), b)),
        };
        LossValues {
            loss: f(self.loss, other.loss),
            recon: f(self.recon, other.recon),
            kl: f(self.kl, other.kl),
            mi: optional(self.mi, other.mi),
            tc: optional(self.tc, other.tc),
            dwkl: optional(self.dwkl, other.dwkl),
        }
    }

    /// Every term present, through `f`.
    pub fn map(&self, f: impl Fn(f64) -> f64) -> LossValues {
        self.zip_with(self, |a, _| f(a))
    }

    /// The names of the terms that are NaN or infinite, in order ("loss, kl"), if any: all of
    /// them, so that a non-finite objective says whether its reconstruction term was finite.
    pub fn non_finite_terms(&self) -> Option<String> {
        let names: Vec<&str> =
            self.named().into_iter().filter(|(_, v)| v.is_some_and(|v| !v.is_finite())).map(|(name, _)| name).collect();
        (!names.is_empty()).then(|| names.join(", "))
    }
}

fn shape_err<T>(op: &'static str, msg: String) -> Result<T> {
    Err(TensorError::Shape { op, msg })
}

/// The batch size N of x: [N, ...] with N ≥ 1; an error naming `op` and the shape otherwise.
fn batch_size(op: &'static str, what: &str, x: &Var) -> Result<usize> {
    match x.shape().first() {
        Some(&n) if n > 0 => Ok(n),
        _ => shape_err(op, format!("{what} must be [N, ...] with N ≥ 1 images, got {:?}", x.shape())),
    }
}

/// [M, D] of the latents (z, μ, log σ²), all three the same shape with M, D ≥ 1.
fn latent_shape(op: &'static str, latents: [(&str, &Var); 3]) -> Result<(usize, usize)> {
    let first = latents[0].1.shape();
    for (name, v) in latents {
        let shape = v.shape();
        if shape.len() != 2 || shape[0] == 0 || shape[1] == 0 || shape != first {
            let all: Vec<String> = latents.iter().map(|(n, v)| format!("{n} {:?}", v.shape())).collect();
            return shape_err(op, format!("{name} must be [M, D] like the others, M, D ≥ 1; got {}", all.join(", ")));
        }
    }
    Ok((first[0], first[1]))
}

/// weight·term; the term itself at weight 1 (the default of every weight), which saves a GPU
/// launch each way per term.
fn weighted(term: &Var, weight: f64) -> Result<Var> {
    if weight == 1.0 {
        Ok(term.clone())
    } else {
        term.mul_scalar(weight)
    }
}

/// Mean over the batch of the per-sample sum over all other axes. x: [N, ...] → scalar.
fn sum_per_sample_mean(x: &Var) -> Result<Var> {
    let n = batch_size("sum_per_sample_mean", "the input", x)? as f64;
    x.sum_all()?.mul_scalar(1.0 / n)
}

/// Reconstruction loss. output, target: [N, C, H, W] (or any [N, ...]) → scalar.
pub fn reconstruction_loss(output: &Var, target: &Var, kind: ReconLoss) -> Result<Var> {
    if output.shape() != target.shape() {
        return Err(TensorError::Shape {
            op: "reconstruction_loss",
            msg: format!("decoder output {:?} does not match the target {:?}", output.shape(), target.shape()),
        });
    }
    let per_pixel = match kind {
        ReconLoss::Mse => autograd::ops::elementwise::squared_difference(output, target)?,
        // One op, so that its gradient stays finite at saturated outputs (see there).
        ReconLoss::Bce => autograd::ops::loss::binary_cross_entropy(output, target)?,
        ReconLoss::BceLogits => {
            // max(x, 0) − x·t + ln(1 + e^−|x|): no exp of a large positive number anywhere.
            output.relu()?.sub(&output.mul(target)?)?.add(&output.abs()?.neg()?.softplus()?)?
        }
    };
    sum_per_sample_mean(&per_pixel)
}

/// KL(N(μ, σ²) ‖ N(0, I)) = ½ Σⱼ (μⱼ² + σⱼ² − 1 − log σⱼ²), summed over latents, batch mean.
/// mu, logvar: [N, z] → scalar. The per-latent part is one op (`twice_gaussian_kl`): the term
/// records a map, the sum and a scaling forward, where written out it was eight launches.
pub fn kl_divergence(mu: &Var, logvar: &Var) -> Result<Var> {
    if mu.shape().len() != 2 || mu.shape() != logvar.shape() {
        return shape_err(
            "kl_divergence",
            format!("mu and logvar must both be [N, z]; got {:?} and {:?}", mu.shape(), logvar.shape()),
        );
    }
    let twice_per_latent = autograd::ops::elementwise::twice_gaussian_kl(mu, logvar)?;
    let n = batch_size("kl_divergence", "mu", mu)? as f64;
    twice_per_latent.sum_all()?.mul_scalar(0.5 / n)
}

/// z = μ + exp(½·logvar)·ε with ε ~ N(0, I) given (so the caller controls the randomness),
/// as one op: one launch on a GPU where the formula written out is four, and one for its
/// backward where it is three (`autograd::ops::elementwise::reparameterize`).
pub fn reparameterize(mu: &Var, logvar: &Var, eps: &Tensor) -> Result<Var> {
    autograd::ops::elementwise::reparameterize(mu, logvar, eps)
}

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// log N(z | μ, exp(logvar)) element-wise: −½ ((z − μ)²·e^−logvar + logvar + ln 2π).
fn log_normal(z: &Var, mu: &Var, logvar: &Var) -> Result<Var> {
    let sq = z.sub(mu)?.square()?.mul(&logvar.neg()?.exp()?)?;
    sq.add(logvar)?.add_scalar(LN_2PI)?.mul_scalar(-0.5)
}

/// Log importance weights of minibatch-stratified sampling, [M, M] with B = M − 1 "other"
/// samples per row (Chen et al. 2018, App. C.2): row i weighs its own posterior q(zᵢ|xᵢ) by 1/N,
/// one other sample (the next one, cyclically) by (N − B)/(N·B), and the remaining B − 1 by 1/B.
/// Each row sums to 1. (The authors' code strides over columns instead of the diagonal, a known
/// bug: rtqichen/beta-tcvae pull request #1; this follows the paper.)
pub fn stratified_log_weights(batch: usize, dataset_size: usize, dtype: tensor::DType) -> Result<Tensor> {
    if batch < 2 {
        return Err(TensorError::Invalid {
            op: "beta_tcvae",
            msg: "stratified sampling needs a batch of at least 2".into(),
        });
    }
    let (n, b) = (dataset_size as f64, (batch - 1) as f64);
    let strat = (n - b) / (n * b);
    let mut w = vec![1.0 / b; batch * batch];
    for i in 0..batch {
        w[i * batch + i] = 1.0 / n;
        w[i * batch + (i + 1) % batch] = strat;
    }
    Tensor::from_vec(w.into_iter().map(f64::ln).collect(), &[batch, batch]).and_then(|t| t.to_dtype(dtype))
}

/// The β-TCVAE decomposition of the sampled KL term over a minibatch:
/// MI = E[log q(z|x) − log q(z)], TC = E[log q(z) − log Πⱼ q(zⱼ)], DW-KL = E[log Πⱼ q(zⱼ) − log p(z)].
/// z, mu, logvar: [M, D]. Returns (MI, TC, DW-KL) as scalar vars; their sum equals
/// E[log q(z|x) − log p(z)] exactly (the sampled KL), by construction.
///
/// A batch of one sample (the last, short batch of an evaluation) has no other sample to
/// stratify over: both estimators then reduce to q(z) ≈ q(z|x)/N, the weighted one's formula,
/// which is used.
pub fn tc_decomposition(
    z: &Var,
    mu: &Var,
    logvar: &Var,
    dataset_size: usize,
    est: TcEstimator,
) -> Result<(Var, Var, Var)> {
    let (m, d) = latent_shape("tc_decomposition", [("z", z), ("mu", mu), ("logvar", logvar)])?;
    let est = if m == 1 { TcEstimator::MinibatchWeighted } else { est };
    // log q(z_i | x_i) and log p(z_i), each [M].
    let log_qz_given_x = log_normal(z, mu, logvar)?.sum(&[1], false)?;
    let zeros = Var::constant(Tensor::zeros_on(&[m, d], z.dtype(), &z.value().device())?);
    let log_pz = log_normal(z, &zeros, &zeros)?.sum(&[1], false)?;
    // mat[i, j, k] = log N(z_ik | μ_jk, σ²_jk): every sample's code under every posterior.
    let mat = log_normal(&z.reshape(&[m, 1, d])?, &mu.reshape(&[1, m, d])?, &logvar.reshape(&[1, m, d])?)?;
    let (log_qz, log_qz_prod) = match est {
        TcEstimator::MinibatchWeighted => {
            // q(z) ≈ 1/(N·M) Σⱼ q(z|xⱼ)
            let log_nm = ((dataset_size * m) as f64).ln();
            let log_qz = mat.sum(&[2], false)?.logsumexp(&[1], false)?.add_scalar(-log_nm)?;
            let log_qz_prod = mat.logsumexp(&[1], false)?.add_scalar(-log_nm)?.sum(&[1], false)?;
            (log_qz, log_qz_prod)
        }
        TcEstimator::MinibatchStratified => {
            let w = stratified_log_weights(m, dataset_size, z.dtype())?.to_device(&z.value().device())?;
            let w = Var::constant(w);
            let log_qz = mat.sum(&[2], false)?.add(&w)?.logsumexp(&[1], false)?;
            let w3 = w.reshape(&[m, m, 1])?;
            let log_qz_prod = mat.add(&w3)?.logsumexp(&[1], false)?.sum(&[1], false)?;
            (log_qz, log_qz_prod)
        }
    };
    let mi = log_qz_given_x.sub(&log_qz)?.mean_all()?;
    let tc = log_qz.sub(&log_qz_prod)?.mean_all()?;
    let dwkl = log_qz_prod.sub(&log_pz)?.mean_all()?;
    Ok((mi, tc, dwkl))
}

/// The full objective for one batch. output: decoder output (logits for BceLogits);
/// target: [N, ...]; mu, logvar, z: [N, D].
pub fn vae_loss(
    output: &Var,
    target: &Var,
    mu: &Var,
    logvar: &Var,
    z: &Var,
    recon_kind: ReconLoss,
    objective: &Objective,
) -> Result<LossTerms> {
    let n = batch_size("vae_loss", "the decoder output", output)?;
    let (m, _) = latent_shape("vae_loss", [("z", z), ("mu", mu), ("logvar", logvar)])?;
    if m != n {
        return shape_err("vae_loss", format!("{n} images but {m} latent codes (z {:?})", z.shape()));
    }
    let recon = reconstruction_loss(output, target, recon_kind)?;
    let kl = kl_divergence(mu, logvar)?;
    match *objective {
        Objective::BetaVae { k1, beta } => {
            let total = weighted(&recon, k1)?.add(&weighted(&kl, beta)?)?;
            LossTerms::gather(total.clone(), &[&total, &recon, &kl])
        }
        Objective::BetaTcVae { alpha, beta, gamma, dataset_size, estimator } => {
            let (mi, tc, dwkl) = tc_decomposition(z, mu, logvar, dataset_size, estimator)?;
            let total = recon.add(&weighted(&mi, alpha)?)?.add(&weighted(&tc, beta)?)?.add(&weighted(&dwkl, gamma)?)?;
            LossTerms::gather(total.clone(), &[&total, &recon, &kl, &mi, &tc, &dwkl])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::{DType, Rng};

    fn rand(shape: &[usize], lo: f64, hi: f64, rng: &mut Rng) -> Tensor {
        Tensor::rand_uniform(shape, lo, hi, DType::F64, rng)
    }

    fn log_normal_scalar(z: f64, mu: f64, lv: f64) -> f64 {
        -0.5 * ((z - mu).powi(2) * (-lv).exp() + lv + LN_2PI)
    }

    fn log_sum_exp(xs: &[f64]) -> f64 {
        let m = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
    }

    /// Plain nested loops over the minibatch: the estimator's definition, term by term.
    fn brute_force_mws(z: &[f64], mu: &[f64], lv: &[f64], m: usize, d: usize, n: usize) -> (f64, f64, f64) {
        let log_nm = ((n * m) as f64).ln();
        let (mut mi, mut tc, mut dw) = (0.0, 0.0, 0.0);
        for i in 0..m {
            let qzx: f64 = (0..d).map(|k| log_normal_scalar(z[i * d + k], mu[i * d + k], lv[i * d + k])).sum();
            let pz: f64 = (0..d).map(|k| log_normal_scalar(z[i * d + k], 0.0, 0.0)).sum();
            let joint: Vec<f64> = (0..m)
                .map(|j| (0..d).map(|k| log_normal_scalar(z[i * d + k], mu[j * d + k], lv[j * d + k])).sum())
                .collect();
            let qz = log_sum_exp(&joint) - log_nm;
            let qz_prod: f64 = (0..d)
                .map(|k| {
                    let per: Vec<f64> =
                        (0..m).map(|j| log_normal_scalar(z[i * d + k], mu[j * d + k], lv[j * d + k])).collect();
                    log_sum_exp(&per) - log_nm
                })
                .sum();
            mi += qzx - qz;
            tc += qz - qz_prod;
            dw += qz_prod - pz;
        }
        (mi / m as f64, tc / m as f64, dw / m as f64)
    }

    #[test]
    fn minibatch_weighted_estimator_matches_brute_force() {
        let mut rng = Rng::new(11);
        let (m, d, n) = (5, 3, 1000);
        let (z, mu, lv) = (
            rand(&[m, d], -2.0, 2.0, &mut rng),
            rand(&[m, d], -1.0, 1.0, &mut rng),
            rand(&[m, d], -1.0, 0.5, &mut rng),
        );
        let (mi, tc, dw) = tc_decomposition(
            &Var::constant(z.clone()),
            &Var::constant(mu.clone()),
            &Var::constant(lv.clone()),
            n,
            TcEstimator::MinibatchWeighted,
        )
        .unwrap();
        let (bmi, btc, bdw) =
            brute_force_mws(&z.to_vec_f64().unwrap(), &mu.to_vec_f64().unwrap(), &lv.to_vec_f64().unwrap(), m, d, n);
        for (got, want) in [(mi, bmi), (tc, btc), (dw, bdw)] {
            let got = got.value().item().unwrap();
            assert!((got - want).abs() < 1e-10 * want.abs().max(1.0), "{got} vs {want}");
        }
    }

    /// The MSS estimates written out from the weights of Chen et al. (2018), App. C.2, row by row:
    /// own posterior 1/N, the next sample (N − M + 1)/(N·(M − 1)), every other 1/(M − 1).
    fn brute_force_mss(z: &[f64], mu: &[f64], lv: &[f64], m: usize, d: usize, n: usize) -> (f64, f64) {
        let (nf, b) = (n as f64, (m - 1) as f64);
        let weight = |i: usize, j: usize| {
            if j == i {
                1.0 / nf
            } else if j == (i + 1) % m {
                (nf - b) / (nf * b)
            } else {
                1.0 / b
            }
        };
        let (mut log_qz, mut log_qz_prod) = (0.0, 0.0);
        for i in 0..m {
            let q = |j: usize, dims: &mut dyn Iterator<Item = usize>| -> f64 {
                dims.map(|k| log_normal_scalar(z[i * d + k], mu[j * d + k], lv[j * d + k])).sum::<f64>().exp()
            };
            log_qz += (0..m).map(|j| weight(i, j) * q(j, &mut (0..d))).sum::<f64>().ln();
            log_qz_prod +=
                (0..d).map(|k| (0..m).map(|j| weight(i, j) * q(j, &mut (k..k + 1))).sum::<f64>().ln()).sum::<f64>();
        }
        (log_qz / m as f64, log_qz_prod / m as f64)
    }

    /// Mean over the batch of log q(z_i|x_i) and log p(z_i), from which MI, TC and DW-KL give
    /// back the estimator's log q(z) and log Πⱼ q(zⱼ).
    fn exact_terms(z: &[f64], mu: &[f64], lv: &[f64], m: usize, d: usize) -> (f64, f64) {
        let qzx: f64 = (0..m * d).map(|e| log_normal_scalar(z[e], mu[e], lv[e])).sum();
        let pz: f64 = (0..m * d).map(|e| log_normal_scalar(z[e], 0.0, 0.0)).sum();
        (qzx / m as f64, pz / m as f64)
    }

    #[test]
    fn minibatch_stratified_estimates_match_the_weights_written_out() {
        let mut rng = Rng::new(12);
        let (m, d, n) = (6, 4, 500);
        let (z, mu, lv) = (
            rand(&[m, d], -2.0, 2.0, &mut rng),
            rand(&[m, d], -1.0, 1.0, &mut rng),
            rand(&[m, d], -1.0, 0.5, &mut rng),
        );
        let (zv, muv, lvv) = (z.to_vec_f64().unwrap(), mu.to_vec_f64().unwrap(), lv.to_vec_f64().unwrap());
        let (mi, tc, dw) = tc_decomposition(
            &Var::constant(z),
            &Var::constant(mu),
            &Var::constant(lv),
            n,
            TcEstimator::MinibatchStratified,
        )
        .unwrap();
        let [mi, tc, dw] = [mi, tc, dw].map(|v| v.value().item().unwrap());
        let (qzx, pz) = exact_terms(&zv, &muv, &lvv, m, d);
        // MI = qzx − log q(z), DW-KL = log Π q(zⱼ) − pz, TC = log q(z) − log Π q(zⱼ).
        let (log_qz, log_qz_prod) = (qzx - mi, dw + pz);
        let (want_qz, want_prod) = brute_force_mss(&zv, &muv, &lvv, m, d, n);
        assert!((log_qz - want_qz).abs() < 1e-10 * want_qz.abs().max(1.0), "log q(z) {log_qz} vs {want_qz}");
        assert!((log_qz_prod - want_prod).abs() < 1e-10 * want_prod.abs().max(1.0), "{log_qz_prod} vs {want_prod}");
        assert!((tc - (want_qz - want_prod)).abs() < 1e-10 * tc.abs().max(1.0), "TC {tc}");
    }

    #[test]
    fn stratified_weights_estimate_q_of_z_without_bias_over_every_stratified_minibatch() {
        // A dataset of N = 6 one-dimensional posteriors; minibatches of M = 3 hold the sample
        // n* = 0 that drew z, one point from stratum A = {1, 2, 3} (N/(M−1) = 3 points, weight
        // 1/(M−1)) and one from stratum B = {4, 5} ((N−M+1)/(M−1) = 2 points, weight
        // (N−M+1)/(N·(M−1))). Averaged over all 3·2 minibatches, Σⱼ wⱼ q(z|xⱼ) must be the
        // exact q(z) = 1/N Σₙ q(z|n).
        let (n, m) = (6, 3);
        let mu = [0.3, -1.0, 0.8, 1.5, -0.4, 2.0];
        let lv = [-0.5, 0.2, -1.0, 0.0, 0.4, -0.2];
        let z = 0.7;
        let q = |j: usize| log_normal_scalar(z, mu[j], lv[j]).exp();
        let exact = (0..n).map(q).sum::<f64>() / n as f64;
        let w: Vec<f64> = stratified_log_weights(m, n, DType::F64).unwrap().exp().unwrap().to_vec_f64().unwrap();
        // Row 0 of the weights: column 0 is n*, column 1 (the next sample) stratum B, column 2 stratum A.
        let (mut total, mut count) = (0.0, 0.0);
        for a in [1, 2, 3] {
            for b in [4, 5] {
                total += w[0] * q(0) + w[1] * q(b) + w[2] * q(a);
                count += 1.0;
            }
        }
        let estimate = total / count;
        assert!((estimate - exact).abs() < 1e-14, "E[q̂(z)] = {estimate}, q(z) = {exact}");
    }

    #[test]
    fn a_stratified_batch_of_one_sample_is_the_weighted_estimate_not_an_error() {
        let mut rng = Rng::new(14);
        let (z, mu, lv) = (
            rand(&[1, 3], -2.0, 2.0, &mut rng),
            rand(&[1, 3], -1.0, 1.0, &mut rng),
            rand(&[1, 3], -1.0, 0.5, &mut rng),
        );
        let vars = [z, mu, lv].map(Var::constant);
        let terms = |est| {
            let (mi, tc, dw) = tc_decomposition(&vars[0], &vars[1], &vars[2], 100, est).unwrap();
            [mi, tc, dw].map(|v| v.value().item().unwrap())
        };
        let (stratified, weighted) = (terms(TcEstimator::MinibatchStratified), terms(TcEstimator::MinibatchWeighted));
        assert!(stratified.iter().all(|v| v.is_finite()), "{stratified:?}");
        assert_eq!(stratified, weighted);
    }

    /// An op of (μ, log σ², ε) and both its gradients, in f32 on the CPU: z, ∂L/∂μ and
    /// ∂L/∂log σ² of L = Σ z·w for a fixed random w, as bit patterns.
    fn value_and_gradients(sample: impl Fn(&Var, &Var, &Tensor) -> Result<Var>) -> [Vec<u32>; 3] {
        let mut rng = Rng::new(7);
        let draw = |lo, hi, rng: &mut Rng| Tensor::rand_uniform(&[13, 7], lo, hi, DType::F32, rng);
        let (mu, logvar) = (Var::parameter(draw(-2.0, 2.0, &mut rng)), Var::parameter(draw(-6.0, 3.0, &mut rng)));
        let (eps, w) = (draw(-3.0, 3.0, &mut rng), Var::constant(draw(-1.0, 1.0, &mut rng)));
        let z = sample(&mu, &logvar, &eps).unwrap();
        z.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
        let bits = |t: Tensor| t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect();
        [bits(z.value()), bits(mu.grad().unwrap()), bits(logvar.grad().unwrap())]
    }

    #[test]
    fn the_fused_reparameterization_gives_the_written_out_ops_bits_on_the_cpu() {
        let fused = value_and_gradients(reparameterize);
        let written_out = value_and_gradients(|mu, logvar, eps| {
            mu.add(&logvar.mul_scalar(0.5)?.exp()?.mul(&Var::constant(eps.clone()))?)
        });
        for (what, (a, b)) in ["z", "∂/∂μ", "∂/∂log σ²"].iter().zip(fused.iter().zip(&written_out)) {
            assert_eq!(a, b, "{what}");
        }
    }

    #[test]
    fn the_fused_squared_difference_gives_sub_then_squares_bits_on_the_cpu() {
        let fused = value_and_gradients(|a, b, _| autograd::ops::elementwise::squared_difference(a, b));
        let written_out = value_and_gradients(|a, b, _| a.sub(b)?.square());
        for (what, (a, b)) in ["(a − b)²", "∂/∂a", "∂/∂b"].iter().zip(fused.iter().zip(&written_out)) {
            assert_eq!(a, b, "{what}");
        }
    }

    #[test]
    fn the_fused_gaussian_kl_gives_the_written_out_ops_bits_on_the_cpu() {
        let fused = value_and_gradients(|mu, logvar, _| autograd::ops::elementwise::twice_gaussian_kl(mu, logvar));
        let written_out = value_and_gradients(|mu, logvar, _| mu.square()?.add(&logvar.exp_minus_one_minus_x()?));
        for (what, (a, b)) in ["2·KL", "∂/∂μ", "∂/∂log σ²"].iter().zip(fused.iter().zip(&written_out)) {
            assert_eq!(a, b, "{what}");
        }
    }

    #[test]
    fn the_reported_values_are_those_of_the_terms_in_order() {
        let mut rng = Rng::new(11);
        let (output, target) =
            (Var::constant(rand(&[3, 5], 0.1, 0.9, &mut rng)), Var::constant(rand(&[3, 5], 0.0, 1.0, &mut rng)));
        let (mu, logvar, z) = (
            Var::constant(rand(&[3, 2], -1.0, 1.0, &mut rng)),
            Var::constant(rand(&[3, 2], -1.0, 0.5, &mut rng)),
            Var::constant(rand(&[3, 2], -1.0, 1.0, &mut rng)),
        );
        let recon = reconstruction_loss(&output, &target, ReconLoss::Bce).unwrap().value().item().unwrap();
        let kl = kl_divergence(&mu, &logvar).unwrap().value().item().unwrap();
        let est = TcEstimator::MinibatchWeighted;
        let (mi, tc, dwkl) = tc_decomposition(&z, &mu, &logvar, 100, est).unwrap();
        let [mi, tc, dwkl] = [mi, tc, dwkl].map(|v| v.value().item().unwrap());
        let objectives = [
            Objective::BetaVae { k1: 2.0, beta: 3.0 },
            Objective::BetaTcVae { alpha: 2.0, beta: 3.0, gamma: 5.0, dataset_size: 100, estimator: est },
        ];
        for objective in objectives {
            let terms = vae_loss(&output, &target, &mu, &logvar, &z, ReconLoss::Bce, &objective).unwrap();
            let (total, t) = (&terms.total, terms.values().unwrap());
            assert_eq!(t.loss, total.value().item().unwrap(), "{objective:?}");
            assert_eq!((t.recon, t.kl), (recon, kl), "{objective:?}");
            match objective {
                Objective::BetaVae { .. } => {
                    assert_eq!((t.mi, t.tc, t.dwkl), (None, None, None));
                    assert!((t.loss - (2.0 * recon + 3.0 * kl)).abs() < 1e-12);
                }
                Objective::BetaTcVae { .. } => {
                    assert_eq!((t.mi, t.tc, t.dwkl), (Some(mi), Some(tc), Some(dwkl)));
                    assert!((t.loss - (recon + 2.0 * mi + 3.0 * tc + 5.0 * dwkl)).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn loss_values_round_trip_through_their_names() {
        let tc = LossValues { loss: 4.0, recon: 3.0, kl: 1.0, mi: Some(0.5), tc: Some(0.25), dwkl: Some(0.125) };
        let named = tc.named();
        assert_eq!(named.map(|(name, _)| name), LossValues::NAMES);
        let lookup = |values: [(&'static str, Option<f64>); 6]| {
            move |name: &str| values.iter().find(|(n, _)| *n == name).and_then(|(_, v)| *v)
        };
        assert_eq!(LossValues::from_named(lookup(named)), Some(tc));
        let beta_vae = LossValues { mi: None, tc: None, dwkl: None, ..tc };
        assert_eq!(LossValues::from_named(lookup(beta_vae.named())), Some(beta_vae));
        assert_eq!(LossValues::from_named(|name| (name != "kl").then_some(1.0)), None, "kl is required");
    }

    #[test]
    fn every_non_finite_term_is_named_and_a_missing_term_is_not_one() {
        let ok = LossValues { loss: 1.0, recon: 1.0, kl: 0.0, ..LossValues::default() };
        assert_eq!(ok.non_finite_terms(), None);
        assert_eq!(
            LossValues { kl: f64::INFINITY, tc: Some(f64::NAN), ..ok }.non_finite_terms().as_deref(),
            Some("kl, tc")
        );
        assert_eq!(LossValues { dwkl: Some(f64::NAN), ..ok }.non_finite_terms().as_deref(), Some("dwkl"));
    }

    #[test]
    fn a_non_finite_loss_says_whether_its_reconstruction_term_was_finite() {
        // β = 0 with an infinite KL: the objective is 0 · ∞ = NaN though the squared error is not.
        let beta_zero = LossValues { loss: f64::NAN, recon: 250.0, kl: f64::INFINITY, ..LossValues::default() };
        assert_eq!(beta_zero.non_finite_terms().as_deref(), Some("loss, kl"));
    }

    #[test]
    fn zip_with_keeps_a_term_that_only_one_side_has() {
        let a = LossValues { loss: 1.0, recon: 2.0, kl: 3.0, mi: None, tc: Some(1.0), dwkl: None };
        let b = LossValues { loss: 10.0, recon: 20.0, kl: 30.0, mi: Some(5.0), tc: Some(2.0), dwkl: None };
        let sum = a.zip_with(&b, |x, y| x + y);
        assert_eq!(sum, LossValues { loss: 11.0, recon: 22.0, kl: 33.0, mi: Some(5.0), tc: Some(3.0), dwkl: None });
        assert_eq!(a.zip_with(&LossValues::default(), |x, y| x + y).tc, Some(1.0));
        assert_eq!(b.map(|v| v / 10.0).mi, Some(0.5));
    }

    #[test]
    fn bad_shapes_are_errors_naming_the_shape_not_panics() {
        let v = |shape: &[usize]| Var::constant(Tensor::zeros(shape, DType::F64));
        let est = TcEstimator::MinibatchWeighted;
        let err = |r: Result<(Var, Var, Var)>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(tc_decomposition(&v(&[4]), &v(&[4]), &v(&[4]), 10, est)).contains("[4]"));
        assert!(!err(tc_decomposition(&v(&[4, 2]), &v(&[4, 3]), &v(&[4, 2]), 10, est)).is_empty());
        assert!(!err(tc_decomposition(&v(&[0, 2]), &v(&[0, 2]), &v(&[0, 2]), 10, est)).is_empty());
        assert!(kl_divergence(&v(&[]), &v(&[])).is_err());
        assert!(kl_divergence(&v(&[2, 3]), &v(&[3, 2])).is_err());
        assert!(reconstruction_loss(&v(&[]), &v(&[]), ReconLoss::Mse).is_err());
        assert!(reconstruction_loss(&v(&[0, 4]), &v(&[0, 4]), ReconLoss::Mse).is_err());
        let objective = Objective::BetaVae { k1: 1.0, beta: 1.0 };
        for bad in [vec![], vec![3]] {
            let r = vae_loss(&v(&[2, 4]), &v(&[2, 4]), &v(&bad), &v(&bad), &v(&bad), ReconLoss::Mse, &objective);
            assert!(r.is_err(), "latents of shape {bad:?} were accepted");
        }
        let r = vae_loss(&v(&[2, 4]), &v(&[2, 4]), &v(&[3, 2]), &v(&[3, 2]), &v(&[3, 2]), ReconLoss::Mse, &objective);
        assert!(r.is_err(), "a batch of 2 images with 3 latent codes was accepted");
    }

    #[test]
    fn stratified_weights_put_one_over_n_on_the_diagonal_and_rows_sum_to_one() {
        let b = 5;
        let w = stratified_log_weights(b, 10, DType::F64).unwrap().exp().unwrap().to_vec_f64().unwrap();
        for i in 0..b {
            assert!((w[i * b + i] - 0.1).abs() < 1e-15);
            let row: f64 = w[i * b..(i + 1) * b].iter().sum();
            assert!((row - 1.0).abs() < 1e-14, "row {i} sums to {row}");
        }
    }

    #[test]
    fn bce_logits_equals_bce_on_sigmoid_outputs() {
        let mut rng = Rng::new(13);
        let x = rand(&[3, 1, 4, 4], -4.0, 4.0, &mut rng);
        let t = rand(&[3, 1, 4, 4], 0.0, 1.0, &mut rng);
        let a =
            reconstruction_loss(&Var::constant(x.clone()), &Var::constant(t.clone()), ReconLoss::BceLogits).unwrap();
        let b = reconstruction_loss(&Var::constant(x.sigmoid().unwrap()), &Var::constant(t), ReconLoss::Bce).unwrap();
        let (a, b) = (a.value().item().unwrap(), b.value().item().unwrap());
        assert!((a - b).abs() < 1e-9 * a.abs(), "{a} vs {b}");
    }

    #[test]
    fn bce_logits_is_finite_for_huge_logits() {
        let x = Tensor::from_vec(vec![1000.0f32, -1000.0], &[1, 2]).unwrap();
        let t = Tensor::from_vec(vec![0.0f32, 1.0], &[1, 2]).unwrap();
        let l = reconstruction_loss(&Var::constant(x), &Var::constant(t), ReconLoss::BceLogits).unwrap();
        assert!((l.value().item().unwrap() - 2000.0).abs() < 1e-3);
    }

    #[test]
    fn kl_of_the_prior_is_zero_and_known_value_matches() {
        let mu = Var::constant(Tensor::from_vec(vec![0.0f64, 1.0], &[1, 2]).unwrap());
        let lv = Var::constant(Tensor::from_vec(vec![0.0f64, 2f64.ln()], &[1, 2]).unwrap());
        // dim 0: prior → 0; dim 1: −½(1 + ln 2 − 1 − 2) = ½(2 − ln 2)
        let kl = kl_divergence(&mu, &lv).unwrap().value().item().unwrap();
        assert!((kl - 0.5 * (2.0 - 2f64.ln())).abs() < 1e-15);
    }

    #[test]
    fn mismatched_output_and_target_are_an_error() {
        let a = Var::constant(Tensor::zeros(&[2, 3], DType::F32));
        let b = Var::constant(Tensor::zeros(&[2, 4], DType::F32));
        assert!(reconstruction_loss(&a, &b, ReconLoss::Mse).is_err());
    }
}
