//! Disentanglement metrics: how well single latents of a code line up with the ground-truth
//! factors that generated the data. Three views, each as its authors define it:
//!
//! - [`mig_sampled`]: the mutual information gap of Chen et al. (Isolating Sources of
//!   Disentanglement in Variational Autoencoders, 2018) as their paper and code compute it:
//!   entropies of the latents estimated from samples of q(z|x) over the whole factor grid, each
//!   factor's gap normalised by that factor's entropy.
//! - [`mig_discretized`]: the same quantity with the estimator of disentanglement_lib (Locatello
//!   et al. 2019): 20-bin histograms of the posterior means of whatever images are at hand. It
//!   is cheap, but its plug-in bias depends on the number of images, so its numbers are not
//!   Chen et al.'s.
//! - [`factor_vae_score`]: the majority-vote classifier accuracy of Kim and Mnih
//!   (Disentangling by Factorising, 2018), as disentanglement_lib computes it.
//!
//! The sampled MIG and the FactorVAE score take the codes of every combination of the factors,
//! in the order of a [`FactorGrid`] (row-major: the last factor varies fastest, as in the
//! dSprites file). Codes are [n, d] row-major f32 slices: posterior means μ and log-variances
//! log σ². Information is in nats. Bad shapes or values are an [`InputError`].

use rayon::prelude::*;
use tensor::cpu::elementwise::exp_f32;
use tensor::{Float, Rng};

pub use crate::tools::linalg::InputError;
use crate::tools::linalg::{check_len, input_err, Result};
use crate::tools::metrics::entropy_from_counts;

// ---------------------------------------------------------------- the factor grid

/// Every combination of discrete factors, in row-major order: image `i` has factor values
/// `factors_of(i)`, the last factor varying fastest (dSprites' file order, see
/// [`crate::data::dsprites::factors_to_index`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FactorGrid {
    sizes: Vec<usize>,
}

impl FactorGrid {
    /// A grid with `sizes[k]` values of factor k (each ≥ 1, at least one factor).
    pub fn new(sizes: &[usize]) -> Result<FactorGrid> {
        if sizes.is_empty() || sizes.contains(&0) {
            return input_err("FactorGrid::new", format!("factor sizes {sizes:?}: need at least one factor, each ≥ 1"));
        }
        Ok(FactorGrid { sizes: sizes.to_vec() })
    }

    /// The dSprites grid: shape 3 × scale 6 × orientation 40 × pos_x 32 × pos_y 32.
    pub fn dsprites() -> FactorGrid {
        FactorGrid { sizes: crate::data::dsprites::FACTOR_SIZES.to_vec() }
    }

    /// Number of values of each factor.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Number of combinations (images).
    pub fn len(&self) -> usize {
        self.sizes.iter().product()
    }

    /// Whether the grid is empty (never: every factor has at least one value).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// How far apart in the grid's order two images are that differ by one in factor k.
    fn stride(&self, k: usize) -> usize {
        self.sizes[k + 1..].iter().product()
    }

    /// The value of factor k of image i.
    pub fn value(&self, i: usize, k: usize) -> usize {
        (i / self.stride(k)) % self.sizes[k]
    }

    /// Image i with factor k set to value v.
    pub fn with_value(&self, i: usize, k: usize, v: usize) -> usize {
        let s = self.stride(k);
        i - self.value(i, k) * s + v * s
    }

    /// The images whose factor k has value v, in grid order.
    pub fn images_with(&self, k: usize, v: usize) -> Vec<u32> {
        let s = self.stride(k);
        let block = s * self.sizes[k];
        (0..self.len() / block)
            .flat_map(|outer| (0..s).map(move |inner| (outer * block + v * s + inner) as u32))
            .collect()
    }
}

/// Checks that codes: [grid.len(), d] hold finite values.
fn check_codes(op: &'static str, what: &str, codes: &[f32], grid: &FactorGrid, d: usize) -> Result<()> {
    if d == 0 {
        return input_err(op, format!("{what}: latent size d = 0"));
    }
    check_len(op, what, codes.len(), [grid.len(), d])?;
    if let Some(idx) = codes.iter().position(|v| !v.is_finite()) {
        return input_err(
            op,
            format!("{what} [{}, {d}] holds {} at row {}, column {}", grid.len(), codes[idx], idx / d, idx % d),
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- Chen et al.'s MIG

/// Chen et al.'s number of samples per entropy estimate (`n_samples` in their code).
pub const CHEN_ENTROPY_SAMPLES: usize = 10_000;

/// The factors of dSprites that Chen et al.'s MIG scores: scale, orientation, pos_x, pos_y.
/// Their code conditions on these four and normalises by ln 6, ln 40, ln 32, ln 32; shape is
/// left out (its three values are not ordered, and no single Gaussian latent can hold them).
pub const CHEN_DSPRITES_FACTORS: [usize; 4] = [1, 2, 3, 4];

/// The sampled MIG's verdict on one factor.
#[derive(Clone, Debug, PartialEq)]
pub struct SampledFactorGap {
    /// The factor's index in the grid.
    pub factor: usize,
    /// H(v_k) = ln |v_k| (every value is equally frequent on the grid), nats.
    pub entropy: f64,
    /// I(z_j; v_k) = H(z_j) − H(z_j | v_k) for every latent j, nats (estimates: may dip
    /// slightly below 0).
    pub mutual_info: Vec<f64>,
    /// The latent with the largest I(z_j; v_k).
    pub best_latent: usize,
    /// (I⁽¹⁾ − I⁽²⁾) / H(v_k), the top two clamped at 0 as Chen et al. do.
    pub gap: f64,
}

/// The result of [`mig_sampled`].
#[derive(Clone, Debug, PartialEq)]
pub struct SampledMig {
    /// The mean gap over the scored factors.
    pub mig: f64,
    /// H(z_j) for every latent, nats.
    pub marginal_entropies: Vec<f64>,
    /// One entry per scored factor, in the order asked for.
    pub factors: Vec<SampledFactorGap>,
}

/// Σ over the members n of exp(log q(z_s | x_n) − shift) for every sample s, with
/// q(z | x_n) = N(μ_n, σ_n²) in one dimension. Returns ln of the sum plus the shift, i.e.
/// ln Σ_n q(z_s | x_n), per sample.
///
/// Why it is shaped this way: the marginal of dSprites sums 737,280 components for each of
/// 10,000 samples and 10 latents (7·10¹⁰ exponentials, five times over for the conditionals).
/// Samples go in blocks so that a tile of components stays in cache while every sample of the
/// block sweeps it, the exponential is the arithmetic-only `exp_f32` so the sweep vectorises,
/// and the shift is the largest −ln σ_n, so no term exceeds 1 and none overflows; the sample's
/// own component is within a few nats of the shift, so the sum never underflows either.
fn log_mixture_density(samples: &[f32], mu: &[f32], inv_sigma: &[f32], log_norm: &[f32]) -> Vec<f64> {
    const SAMPLE_BLOCK: usize = 32;
    const TILE: usize = 2048;
    let shift = log_norm.iter().fold(f32::NEG_INFINITY, |m, &c| m.max(c));
    let shifted: Vec<f32> = log_norm.iter().map(|c| c - shift).collect();
    let mut out = vec![0.0f64; samples.len()];
    out.par_chunks_mut(SAMPLE_BLOCK).zip(samples.par_chunks(SAMPLE_BLOCK)).for_each(|(out, zs)| {
        let mut sums = [0.0f64; SAMPLE_BLOCK];
        for start in (0..mu.len()).step_by(TILE) {
            let end = (start + TILE).min(mu.len());
            let (m, inv, c) = (&mu[start..end], &inv_sigma[start..end], &shifted[start..end]);
            for (sum, &z) in sums.iter_mut().zip(zs) {
                *sum += tile_sum_best(z, m, inv, c) as f64;
            }
        }
        for (o, s) in out.iter_mut().zip(sums) {
            *o = s.ln() + shift as f64;
        }
    });
    out
}

/// Σ_n exp(c_n − ½((z − μ_n)·inv_n)²) over one tile, in f32. The sum runs in LANES separate
/// accumulators: one running sum is a chain of dependent additions that the compiler may not
/// reorder, so it would not vectorise; LANES independent ones are one vector register.
#[inline(always)]
fn tile_sum(z: f32, mu: &[f32], inv_sigma: &[f32], log_norm: &[f32]) -> f32 {
    const LANES: usize = 8;
    let term = |m: f32, inv: f32, c: f32| {
        let u = (z - m) * inv;
        exp_f32(c - 0.5 * u * u)
    };
    let mut acc = [0.0f32; LANES];
    let (m8, inv8, c8) = (mu.chunks_exact(LANES), inv_sigma.chunks_exact(LANES), log_norm.chunks_exact(LANES));
    let tail: f32 =
        m8.remainder().iter().zip(inv8.remainder()).zip(c8.remainder()).map(|((&m, &i), &c)| term(m, i, c)).sum();
    for ((m, inv), c) in m8.zip(inv8).zip(c8) {
        for l in 0..LANES {
            acc[l] += term(m[l], inv[l], c[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// [`tile_sum`] compiled for AVX2 with FMA (8 lanes instead of SSE2's 4) where the CPU has
/// them: the sampled MIG of a conv run on every second orientation and position of dSprites
/// (92,160 images, 4,000 samples) took 19 s instead of 29–31 s on an AMD EPYC (Zen 3).
fn tile_sum_best(z: f32, mu: &[f32], inv_sigma: &[f32], log_norm: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2(z: f32, mu: &[f32], inv_sigma: &[f32], log_norm: &[f32]) -> f32 {
            tile_sum(z, mu, inv_sigma, log_norm)
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU was just checked to have AVX2 and FMA, all the function needs.
            return unsafe { avx2(z, mu, inv_sigma, log_norm) };
        }
    }
    tile_sum(z, mu, inv_sigma, log_norm)
}

/// Draws the indices of `count` distinct members (all of them when there are fewer).
fn choose(members: &[u32], count: usize, rng: &mut Rng) -> Vec<u32> {
    let mut pool = members.to_vec();
    let count = count.min(pool.len());
    for i in 0..count {
        let j = i + rng.below(pool.len() - i);
        pool.swap(i, j);
    }
    pool.truncate(count);
    pool
}

/// The per-latent entropies H(z_j) = E[−ln q(z_j)] of the aggregate posterior of `members`,
/// q(z_j) = (1/|members|) Σ_n q(z_j | x_n), estimated from the pre-drawn samples z_s ~ q(z|x_s)
/// of up to `samples` randomly chosen members (Chen et al.'s `estimate_entropies`).
fn aggregate_entropies(
    members: &[u32],
    draws: &[f32],
    mu: &[f32],
    sigma: &[f32],
    d: usize,
    samples: usize,
    rng: &mut Rng,
) -> Vec<f64> {
    let chosen = choose(members, samples, rng);
    let ln_count = (members.len() as f64).ln();
    const HALF_LN_2PI: f32 = 0.918_938_5;
    (0..d)
        .map(|j| {
            let col = |v: &[f32], n: u32| v[n as usize * d + j];
            let m: Vec<f32> = members.iter().map(|&n| col(mu, n)).collect();
            let inv: Vec<f32> = members.iter().map(|&n| 1.0 / col(sigma, n)).collect();
            let c: Vec<f32> = members.iter().map(|&n| -col(sigma, n).ln() - HALF_LN_2PI).collect();
            let zs: Vec<f32> = chosen.iter().map(|&s| col(draws, s)).collect();
            let log_q = log_mixture_density(&zs, &m, &inv, &c);
            -(log_q.iter().sum::<f64>() / log_q.len() as f64 - ln_count)
        })
        .collect()
}

/// Chen et al.'s mutual information gap:
///
///   MIG = 1/K · Σ_k (I(z_{j⁽¹⁾}; v_k) − I(z_{j⁽²⁾}; v_k)) / H(v_k),
///
/// over the K factors in `scored`, with j⁽¹⁾, j⁽²⁾ the latents sharing the most information with
/// v_k. I(z_j; v_k) = H(z_j) − H(z_j | v_k), where the entropies are those of the aggregate
/// posterior q(z_j) = 1/N Σ_n q(z_j|x_n) over all N images of the grid, and
/// H(z_j | v_k) = Σ_v p(v) H(z_j | v_k = v) uses the aggregate over the images with v_k = v.
/// Each entropy is estimated as E[−ln q(z_j)] from one sample z ~ q(z|x) per image (drawn once,
/// with `seed`), averaging over `samples` randomly chosen images (Chen et al.: 10,000), with
/// ln q(z_j) computed exactly over all the set's N components. H(v_k) = ln |v_k|.
///
/// mu, logvar: [grid.len(), d] in grid order. A code whose latents copy the factors scores 1;
/// one that ignores them scores 0. Cost: (1 + Σ_k 1) · samples · N · d Gaussian densities.
pub fn mig_sampled(
    grid: &FactorGrid,
    mu: &[f32],
    logvar: &[f32],
    d: usize,
    scored: &[usize],
    samples: usize,
    seed: u64,
) -> Result<SampledMig> {
    const OP: &str = "mig_sampled";
    check_codes(OP, "mu", mu, grid, d)?;
    check_codes(OP, "logvar", logvar, grid, d)?;
    if samples == 0 || scored.is_empty() {
        return input_err(
            OP,
            format!("{samples} samples and {} scored factors: need at least one of each", scored.len()),
        );
    }
    if let Some(&k) = scored.iter().find(|&&k| k >= grid.sizes.len() || grid.sizes[k] < 2) {
        return input_err(
            OP,
            format!("factor {k} cannot be scored in a grid of sizes {:?} (needs ≥ 2 values)", grid.sizes),
        );
    }
    let sigma: Vec<f32> = logvar.iter().map(|lv| (0.5 * lv).exp()).collect();
    if let Some(idx) = sigma.iter().position(|s| !(s.is_normal() && s.is_finite())) {
        return input_err(
            OP,
            format!("logvar {} at row {}, column {} gives σ = {}", logvar[idx], idx / d, idx % d, sigma[idx]),
        );
    }
    let mut rng = Rng::new(seed);
    let draws: Vec<f32> = mu.iter().zip(&sigma).map(|(m, s)| m + s * rng.normal() as f32).collect();
    let all: Vec<u32> = (0..grid.len() as u32).collect();
    let marginal = aggregate_entropies(&all, &draws, mu, &sigma, d, samples, &mut rng);
    let factors = scored
        .iter()
        .map(|&k| {
            let values = grid.sizes[k];
            let mut conditional = vec![0.0f64; d];
            for v in 0..values {
                let members = grid.images_with(k, v);
                let h = aggregate_entropies(&members, &draws, mu, &sigma, d, samples, &mut rng);
                conditional.iter_mut().zip(h).for_each(|(c, h)| *c += h / values as f64);
            }
            let mutual_info: Vec<f64> = marginal.iter().zip(&conditional).map(|(h, hc)| h - hc).collect();
            let entropy = (values as f64).ln();
            let mut order: Vec<usize> = (0..d).collect();
            order.sort_by(|&a, &b| mutual_info[b].total_cmp(&mutual_info[a]));
            let top = |r: usize| order.get(r).map_or(0.0, |&j| mutual_info[j].max(0.0));
            SampledFactorGap {
                factor: k,
                entropy,
                best_latent: order[0],
                gap: (top(0) - top(1)) / entropy,
                mutual_info,
            }
        })
        .collect::<Vec<_>>();
    let mig = factors.iter().map(|f| f.gap).sum::<f64>() / factors.len() as f64;
    Ok(SampledMig { mig, marginal_entropies: marginal, factors })
}

// ---------------------------------------------------------------- disentanglement_lib's MIG

/// MIG's verdict on one ground-truth factor ([`mig_discretized`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FactorGap {
    /// H(v_k) in nats.
    pub entropy: f64,
    /// The latent j with the largest I(z_j; v_k).
    pub best_latent: usize,
    /// The largest I(z_j; v_k) over j, nats.
    pub top1: f64,
    /// The second-largest I(z_j; v_k) over j, nats (0 when d = 1).
    pub top2: f64,
    /// (top1 − top2) / H(v_k), in [0, 1].
    pub gap: f64,
}

/// The result of [`mig_discretized`].
#[derive(Clone, Debug, PartialEq)]
pub struct MigReport {
    /// The mean of the gaps of the factors that vary.
    pub mig: f64,
    /// One entry per factor, `None` for a factor that takes a single value in the data
    /// (H = 0, the gap is undefined; it is left out of the mean).
    pub gaps: Vec<Option<FactorGap>>,
    /// I(z_j; v_k) in nats: [d, k], entry (j, k) at `j * k_count + k`.
    pub mutual_info: Vec<f64>,
    /// H(v_k) in nats: \[k\].
    pub entropies: Vec<f64>,
}

/// Bins used by disentanglement_lib's MIG (`discretizer_kwargs.num_bins`).
pub const DEFAULT_MIG_BINS: usize = 20;

/// Discrete mutual information I(a; b) = Σ p(a,b) ln(p(a,b) / (p(a) p(b))) in nats, from
/// the counts `joint[a * nb + b]` over n samples. With counts, p(a,b)/(p(a)p(b)) =
/// c_ab·n / (c_a·c_b). Empty cells contribute 0 (the limit of p ln p).
fn mutual_info_from_counts(joint: &[usize], na: usize, nb: usize, n: usize) -> f64 {
    let ca: Vec<usize> = (0..na).map(|a| joint[a * nb..(a + 1) * nb].iter().sum()).collect();
    let cb: Vec<usize> = (0..nb).map(|b| (0..na).map(|a| joint[a * nb + b]).sum()).collect();
    let nf = n as f64;
    let mut mi = 0.0;
    for a in 0..na {
        for b in 0..nb {
            let c = joint[a * nb + b];
            if c > 0 {
                let c = c as f64;
                mi += c / nf * (c * nf / (ca[a] as f64 * cb[b] as f64)).ln();
            }
        }
    }
    mi.max(0.0)
}

/// Bins column j of x: [n, d] into `bins` equal-width bins over [min, max] of that column, as
/// disentanglement_lib's `_histogram_discretize` (NumPy `digitize` against the left edges):
/// bin = ⌊(x − min) / (max − min) · bins⌋, with x = max put in the last bin. A constant
/// column lands in bin 0 (its mutual information with anything is then 0).
fn discretize_column(x: &[f64], d: usize, j: usize, bins: usize) -> Vec<usize> {
    let col = x.iter().skip(j).step_by(d);
    let (lo, hi) = col.clone().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let width = hi - lo;
    col.map(|&v| if width > 0.0 { (((v - lo) / width * bins as f64) as usize).min(bins - 1) } else { 0 }).collect()
}

/// The mutual information gap with the discretised estimator of disentanglement_lib
/// (Locatello et al. 2019), on whatever samples are at hand:
///
///   MIG = 1/K' · Σ_k (I(z_{j⁽¹⁾}; v_k) − I(z_{j⁽²⁾}; v_k)) / H(v_k),
///
/// where j⁽¹⁾, j⁽²⁾ are the latents with the largest and second-largest mutual information
/// with factor v_k, and the sum runs over the K' factors that vary (H(v_k) > 0).
///
/// latents: [n, d] (e.g. posterior means μ(x)), each column discretised into `bins`
/// equal-width bins (see `discretize_column`; 20 in disentanglement_lib). factors: [n, k]
/// discrete factor indices, factor k taking values in 0..factor_sizes\[k\]; H(v_k) is the
/// empirical entropy. The plug-in estimator is biased upwards for small n (about
/// (bins − 1)(|v_k| − 1) / 2n nats), which is why its values are not Chen et al.'s: use
/// [`mig_sampled`] on the full grid to compare with them.
pub fn mig_discretized<T: Float>(
    latents: &[T],
    d: usize,
    factors: &[usize],
    factor_sizes: &[usize],
    bins: usize,
) -> Result<MigReport> {
    const OP: &str = "mig_discretized";
    let (z, n) = crate::tools::metrics::rows_f64(OP, "latents", latents, d)?;
    let k = factor_sizes.len();
    if n == 0 || k == 0 || bins < 2 {
        return input_err(OP, format!("latents [{n}, {d}], {k} factors, {bins} bins: need n ≥ 1, k ≥ 1, bins ≥ 2"));
    }
    check_len(OP, "factors", factors.len(), [n, k])?;
    if let Some(idx) = (0..n * k).find(|&idx| factors[idx] >= factor_sizes[idx % k]) {
        return input_err(
            OP,
            format!(
                "factors [{n}, {k}]: row {} has value {} for factor {}, which has {} values",
                idx / k,
                factors[idx],
                idx % k,
                factor_sizes[idx % k]
            ),
        );
    }

    let entropies: Vec<f64> = (0..k)
        .map(|f| {
            let mut counts = vec![0usize; factor_sizes[f]];
            (0..n).for_each(|i| counts[factors[i * k + f]] += 1);
            entropy_from_counts(&counts)
        })
        .collect();
    // One task per latent: bin it, then one joint histogram per factor. Row j of the result
    // is I(z_j; v_·).
    let mutual_info: Vec<f64> = (0..d)
        .into_par_iter()
        .flat_map_iter(|j| {
            let zb = discretize_column(&z, d, j, bins);
            (0..k)
                .map(|f| {
                    let nv = factor_sizes[f];
                    let mut joint = vec![0usize; bins * nv];
                    (0..n).for_each(|i| joint[zb[i] * nv + factors[i * k + f]] += 1);
                    mutual_info_from_counts(&joint, bins, nv, n)
                })
                .collect::<Vec<_>>()
        })
        .collect();

    let gaps: Vec<Option<FactorGap>> = (0..k)
        .map(|f| {
            // An entropy of exactly 0 means one value; anything else has H ≥ (1/n)·ln n.
            if entropies[f] <= 0.0 {
                return None;
            }
            let mut order: Vec<usize> = (0..d).collect();
            order.sort_by(|&a, &b| mutual_info[b * k + f].total_cmp(&mutual_info[a * k + f]));
            let top1 = mutual_info[order[0] * k + f];
            let top2 = order.get(1).map_or(0.0, |&j| mutual_info[j * k + f]);
            Some(FactorGap {
                entropy: entropies[f],
                best_latent: order[0],
                top1,
                top2,
                gap: (top1 - top2) / entropies[f],
            })
        })
        .collect();
    let varying: Vec<f64> = gaps.iter().flatten().map(|g| g.gap).collect();
    if varying.is_empty() {
        return input_err(OP, format!("all {k} factors take a single value over the {n} samples; MIG is undefined"));
    }
    Ok(MigReport { mig: varying.iter().sum::<f64>() / varying.len() as f64, gaps, mutual_info, entropies })
}

/// [`mig_discretized`] against dSprites' factors (shape, scale, orientation, pos_x,
/// pos_y; sizes [`crate::data::dsprites::FACTOR_SIZES`]). latents: [n, d]; factors: \[n\].
pub fn dsprites_mig_discretized<T: Float>(
    latents: &[T],
    d: usize,
    factors: &[[u16; 5]],
    bins: usize,
) -> Result<MigReport> {
    let flat: Vec<usize> = factors.iter().flat_map(|f| f.map(usize::from)).collect();
    mig_discretized(latents, d, &flat, &crate::data::dsprites::FACTOR_SIZES, bins)
}

// ---------------------------------------------------------------- the FactorVAE score

/// The settings of [`factor_vae_score`]; the defaults are disentanglement_lib's.
#[derive(Clone, Debug, PartialEq)]
pub struct FactorVaeOptions {
    /// Images per vote, all sharing the value of one factor (64).
    pub batch_size: usize,
    /// Votes that train the majority-vote classifier (10,000).
    pub train_votes: usize,
    /// Votes it is scored on (5,000).
    pub eval_votes: usize,
    /// Latents whose variance over the grid is at most this are collapsed and left out (0.05).
    pub prune_variance: f64,
    /// Seed of the votes.
    pub seed: u64,
}

impl Default for FactorVaeOptions {
    fn default() -> Self {
        FactorVaeOptions { batch_size: 64, train_votes: 10_000, eval_votes: 5_000, prune_variance: 0.05, seed: 0 }
    }
}

/// The result of [`factor_vae_score`].
#[derive(Clone, Debug, PartialEq)]
pub struct FactorVaeScore {
    /// The classifier's accuracy on the evaluation votes: the FactorVAE score.
    pub score: f64,
    /// Its accuracy on the votes it was built from.
    pub train_accuracy: f64,
    /// The latents kept (variance over the grid above the threshold).
    pub active_latents: Vec<usize>,
    /// The factor each active latent votes for (same order as `active_latents`).
    pub latent_factor: Vec<usize>,
}

/// What one vote of [`factor_vae_score`] needs: the codes, the latents kept, and their
/// variances over the grid.
struct Voter<'a> {
    grid: &'a FactorGrid,
    mu: &'a [f32],
    d: usize,
    active: Vec<usize>,
    global_var: Vec<f64>,
    batch: usize,
}

impl Voter<'_> {
    /// The active latent (its place in `active`) whose variance, relative to its variance over
    /// the grid, is smallest within a batch of images that share factor k's value.
    fn vote(&self, k: usize, rng: &mut Rng) -> usize {
        let grid = self.grid;
        let first = rng.below(grid.len());
        let fixed = grid.value(first, k);
        let images: Vec<usize> = (0..self.batch)
            .map(|b| if b == 0 { first } else { grid.with_value(rng.below(grid.len()), k, fixed) })
            .collect();
        let mut best = (f64::INFINITY, 0);
        for (slot, &j) in self.active.iter().enumerate() {
            let col: Vec<f64> = images.iter().map(|&i| self.mu[i * self.d + j] as f64).collect();
            let ratio = sample_variance(&col) / self.global_var[j];
            if ratio < best.0 {
                best = (ratio, slot);
            }
        }
        best.1
    }
}

/// Variance with Bessel's correction (NumPy's `var(ddof=1)`).
fn sample_variance(x: &[f64]) -> f64 {
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (x.len() - 1) as f64
}

/// Kim and Mnih's FactorVAE score, as disentanglement_lib computes it. Each vote picks a
/// factor k at random, draws `batch_size` images sharing one value of k (the others uniform),
/// divides each active latent's variance over the batch by its variance over the whole grid,
/// and votes (latent with the smallest ratio → k). A majority-vote classifier maps each latent
/// to the factor it was most often the answer for; the score is its accuracy on fresh votes.
/// A code in which each factor has a latent of its own scores 1; a code that ignores the
/// factors scores about 1/K.
///
/// mu: [grid.len(), d] posterior means in grid order. With no active latent the score is 0.
pub fn factor_vae_score(grid: &FactorGrid, mu: &[f32], d: usize, opts: &FactorVaeOptions) -> Result<FactorVaeScore> {
    const OP: &str = "factor_vae_score";
    check_codes(OP, "mu", mu, grid, d)?;
    if opts.batch_size < 2 || opts.train_votes == 0 || opts.eval_votes == 0 {
        return input_err(OP, format!("{opts:?}: need a batch of ≥ 2 images and ≥ 1 vote of each kind"));
    }
    let global_var: Vec<f64> =
        (0..d).map(|j| sample_variance(&(0..grid.len()).map(|i| mu[i * d + j] as f64).collect::<Vec<_>>())).collect();
    let active: Vec<usize> = (0..d).filter(|&j| global_var[j] > opts.prune_variance).collect();
    if active.is_empty() {
        return Ok(FactorVaeScore { score: 0.0, train_accuracy: 0.0, active_latents: vec![], latent_factor: vec![] });
    }
    let factors = grid.sizes.len();
    let mut rng = Rng::new(opts.seed);
    let voter = Voter { grid, mu, d, active, global_var, batch: opts.batch_size };
    let votes = |n: usize, rng: &mut Rng| -> Vec<(usize, usize)> {
        (0..n)
            .map(|_| {
                let k = rng.below(factors);
                (k, voter.vote(k, rng))
            })
            .collect()
    };
    let train = votes(opts.train_votes, &mut rng);
    let eval = votes(opts.eval_votes, &mut rng);
    // counts[slot][k]: how often active latent `slot` answered for factor k.
    let mut counts = vec![vec![0usize; factors]; voter.active.len()];
    train.iter().for_each(|&(k, slot)| counts[slot][k] += 1);
    let latent_factor: Vec<usize> =
        counts.iter().map(|c| (0..factors).fold(0, |best, k| if c[k] > c[best] { k } else { best })).collect();
    let accuracy =
        |v: &[(usize, usize)]| v.iter().filter(|&&(k, slot)| latent_factor[slot] == k).count() as f64 / v.len() as f64;
    Ok(FactorVaeScore {
        score: accuracy(&eval),
        train_accuracy: accuracy(&train),
        active_latents: voter.active.clone(),
        latent_factor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::metrics::entropy_from_counts;
    use std::f64::consts::LN_2;

    #[test]
    fn mutual_info_matches_a_hand_computed_table() {
        // z bins (0, 1, 1, 1), v = (0, 0, 1, 1): p(0,0) = p(1,0) = 1/4, p(1,1) = 1/2,
        // p(z) = (1/4, 3/4), p(v) = (1/2, 1/2):
        // I = ¼ ln 2 + ¼ ln(2/3) + ½ ln(4/3).
        let joint = [1, 0, 1, 2];
        let expected = 0.25 * LN_2 + 0.25 * (2.0f64 / 3.0).ln() + 0.5 * (4.0f64 / 3.0).ln();
        assert!((mutual_info_from_counts(&joint, 2, 2, 4) - expected).abs() < 1e-15);
        // Against H(z) + H(v) − H(z, v), an independent route.
        let h = entropy_from_counts(&[1, 3]) + entropy_from_counts(&[2, 2]) - entropy_from_counts(&joint);
        assert!((h - expected).abs() < 1e-15);
    }

    #[test]
    fn discretization_uses_equal_width_bins_with_max_in_the_last() {
        // Column 0 spans [0, 10]; with 5 bins of width 2: 0→0, 1.9→0, 2→1, 9.99→4, 10→4.
        let x = [0.0, 7.0, 1.9, 7.0, 2.0, 7.0, 9.99, 7.0, 10.0, 7.0];
        assert_eq!(discretize_column(&x, 2, 0, 5), vec![0, 0, 1, 4, 4]);
        assert_eq!(discretize_column(&x, 2, 1, 5), vec![0; 5], "constant column");
    }

    #[test]
    fn mig_is_one_for_an_axis_aligned_code_and_skips_constant_factors() {
        // Factor 0 has 2 values, factor 1 is constant, factor 2 has 4 values. Latent 0
        // copies factor 2, latent 1 copies factor 0, latent 2 is noise independent of both
        // (its 4 values cycle through every factor combination equally).
        let n = 64;
        let (mut z, mut f) = (Vec::new(), Vec::new());
        for i in 0..n {
            let (v0, v2) = (i % 2, (i / 2) % 4);
            let noise = (i / 8) % 4;
            z.extend([v2 as f32, v0 as f32 * 3.0 - 1.0, noise as f32]);
            f.extend([v0, 0, v2]);
        }
        let r = mig_discretized(&z, 3, &f, &[2, 1, 4], 4).unwrap();
        assert_eq!(r.gaps[1], None);
        let g0 = r.gaps[0].clone().unwrap();
        let g2 = r.gaps[2].clone().unwrap();
        assert_eq!((g0.best_latent, g2.best_latent), (1, 0));
        assert!((g0.entropy - LN_2).abs() < 1e-12 && (g2.entropy - 4f64.ln()).abs() < 1e-12);
        assert!((g0.top1 - LN_2).abs() < 1e-12 && g0.top2.abs() < 1e-12);
        assert!((r.mig - 1.0).abs() < 1e-12, "{r:?}");
        assert!(r.mutual_info[2 * 3 + 2].abs() < 1e-12, "noise latent carries no information");
    }

    #[test]
    fn mig_of_a_mixed_code_is_lower_and_matches_brute_force() {
        // Latents z = R·v + noise with R a 45° rotation: each factor lives in two latents,
        // so the gap shrinks. Check the reported gaps by recomputing I from the definition.
        let mut rng = tensor::Rng::new(9);
        let n = 4000;
        let mut f = Vec::with_capacity(2 * n);
        let (mut aligned, mut mixed) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let (a, b) = (rng.below(8), rng.below(8));
            f.extend([a, b]);
            let (x, y) = (a as f64 + 0.1 * rng.normal(), b as f64 + 0.1 * rng.normal());
            aligned.extend([x, y]);
            mixed.extend([(x + y) / 2f64.sqrt(), (x - y) / 2f64.sqrt()]);
        }
        let ra = mig_discretized(&aligned, 2, &f, &[8, 8], 20).unwrap();
        let rm = mig_discretized(&mixed, 2, &f, &[8, 8], 20).unwrap();
        assert!(ra.mig > 0.8, "aligned {}", ra.mig);
        assert!(rm.mig < 0.3, "mixed {}", rm.mig);

        // Brute force: I(z_j; v_k) = Σ_{z,v} p(z,v) ln(p(z,v) / (p(z)p(v))) by scanning all
        // samples for every cell, with the bins recomputed from scratch.
        for j in 0..2 {
            let col: Vec<f64> = (0..n).map(|i| mixed[i * 2 + j]).collect();
            let lo = col.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = col.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let bin = |v: f64| (((v - lo) / (hi - lo) * 20.0).floor() as usize).min(19);
            for k in 0..2 {
                let mut mi = 0.0;
                for zb in 0..20 {
                    for v in 0..8 {
                        let pzv = (0..n).filter(|&i| bin(col[i]) == zb && f[i * 2 + k] == v).count() as f64 / n as f64;
                        let pz = (0..n).filter(|&i| bin(col[i]) == zb).count() as f64 / n as f64;
                        let pv = (0..n).filter(|&i| f[i * 2 + k] == v).count() as f64 / n as f64;
                        if pzv > 0.0 {
                            mi += pzv * (pzv / (pz * pv)).ln();
                        }
                    }
                }
                assert!((rm.mutual_info[j * 2 + k] - mi).abs() < 1e-12, "I(z{j}; v{k})");
            }
        }
    }

    #[test]
    fn mig_rejects_bad_inputs_with_shapes_in_the_message() {
        let z = [0.0f32, 1.0, 2.0, 3.0];
        let err = mig_discretized(&z, 2, &[0, 5], &[3], 10).unwrap_err().to_string();
        assert!(err.contains("value 5") && err.contains("3 values"), "{err}");
        assert!(mig_discretized(&z, 2, &[0, 1, 2], &[3], 10).is_err(), "3 rows for n = 2");
        assert!(mig_discretized(&z, 3, &[0, 1], &[3], 10).is_err(), "4 values, d = 3");
        assert!(mig_discretized(&z, 2, &[1, 1], &[3], 10).is_err(), "every factor constant");
        // dSprites' factor arrays go through the same path.
        let fs = [[0u16, 1, 2, 3, 4], [1, 1, 2, 3, 4]];
        let r = dsprites_mig_discretized(&z, 2, &fs, 2).unwrap();
        assert_eq!(r.gaps.iter().filter(|g| g.is_some()).count(), 1, "only shape varies");
    }
}

#[cfg(test)]
mod known_answers {
    //! The estimators on codes whose answer is known: latents that copy the factors, latents
    //! that ignore them, and one latent whose information about a factor is a one-dimensional
    //! integral computed here by quadrature.
    use super::*;

    /// Codes for every image of `grid`: latent j of image i has mean `mean(i, j)` and
    /// standard deviation `std(j)`. Returns (mu, logvar): [grid.len(), d].
    fn codes(
        grid: &FactorGrid,
        d: usize,
        mean: impl Fn(usize, usize) -> f32,
        std: impl Fn(usize) -> f32,
    ) -> (Vec<f32>, Vec<f32>) {
        let mu = (0..grid.len() * d).map(|idx| mean(idx / d, idx % d)).collect();
        let logvar = (0..grid.len() * d).map(|idx| 2.0 * std(idx % d).ln()).collect();
        (mu, logvar)
    }

    #[test]
    fn factor_grid_indexes_like_the_dsprites_file() {
        let g = FactorGrid::dsprites();
        assert_eq!(g.len(), crate::data::dsprites::NUM_IMAGES);
        for i in [0, 1, 33, 40_961, 737_279] {
            let f = crate::data::dsprites::index_to_factors(i);
            assert!((0..5).all(|k| g.value(i, k) == f[k] as usize), "image {i}");
        }
        let i = crate::data::dsprites::factors_to_index([2, 3, 17, 5, 9]);
        assert_eq!(g.with_value(i, 2, 4), crate::data::dsprites::factors_to_index([2, 3, 4, 5, 9]));
        let with = g.images_with(1, 5);
        assert_eq!(with.len(), g.len() / 6);
        assert!(with.iter().all(|&i| g.value(i as usize, 1) == 5));
        assert!(FactorGrid::new(&[3, 0]).is_err() && FactorGrid::new(&[]).is_err());
    }

    #[test]
    fn sampled_mig_is_one_for_latents_that_copy_the_factors() {
        // Factor 0 (4 values) in latent 1, factor 1 (3 values) in latent 0, both as narrow
        // Gaussians at the factor's value: H(z_j) = ln |v| + H(component), H(z_j | v) =
        // H(component), so I = ln |v| = H(v) and the other latent has I = 0.
        let grid = FactorGrid::new(&[4, 3, 50]).unwrap();
        let (mu, logvar) = codes(
            &grid,
            3,
            |i, j| match j {
                0 => grid.value(i, 1) as f32,
                1 => grid.value(i, 0) as f32,
                _ => 0.0,
            },
            |_| 0.01,
        );
        let r = mig_sampled(&grid, &mu, &logvar, 3, &[0, 1], 2000, 7).unwrap();
        assert!((r.mig - 1.0).abs() < 0.02, "{r:?}");
        assert_eq!((r.factors[0].best_latent, r.factors[1].best_latent), (1, 0));
        assert!((r.factors[0].mutual_info[1] - 4f64.ln()).abs() < 0.02, "{r:?}");
    }

    #[test]
    fn sampled_mig_is_zero_for_a_code_that_ignores_the_factors() {
        // Means drawn at random per image, whatever its factors: no latent knows any factor.
        let grid = FactorGrid::new(&[4, 3, 200]).unwrap();
        let mut rng = Rng::new(3);
        let noise: Vec<f32> = (0..grid.len() * 2).map(|_| rng.normal() as f32).collect();
        let (mu, logvar) = codes(&grid, 2, |i, j| noise[i * 2 + j], |_| 0.3);
        let r = mig_sampled(&grid, &mu, &logvar, 2, &[0, 1], 2400, 1).unwrap();
        assert!(r.mig < 0.02, "{r:?}");
    }

    #[test]
    fn sampled_mutual_information_matches_a_quadrature_of_the_definition() {
        // Latent 0 of an image with factor-0 value v is N(v, σ_v²), σ_v = 0.3·2^v: the
        // aggregate posterior is an equal mixture of four Gaussians 1 apart, q(z | v) one of
        // them, so I(z; v) = H(mixture) − ¼ Σ_v ½ ln(2πe σ_v²); they overlap, so I is well
        // below ln 4, and the widths differ, so a density that drops its −ln σ term is caught.
        // Latent 1 is N(0, 1) for every image: it carries nothing.
        let sigma = |v: usize| 0.3 * 2f64.powi(v as i32);
        let grid = FactorGrid::new(&[4, 2, 1000]).unwrap();
        let mu: Vec<f32> =
            (0..grid.len() * 2).map(|idx| if idx % 2 == 0 { grid.value(idx / 2, 0) as f32 } else { 0.0 }).collect();
        let logvar: Vec<f32> = (0..grid.len() * 2)
            .map(|idx| if idx % 2 == 0 { 2.0 * sigma(grid.value(idx / 2, 0)).ln() as f32 } else { 0.0 })
            .collect();
        let r = mig_sampled(&grid, &mu, &logvar, 2, &[0, 1], 8000, 11).unwrap();

        let tau = 2.0 * std::f64::consts::PI;
        let density = |z: f64| {
            (0..4)
                .map(|v| (-(z - v as f64).powi(2) / (2.0 * sigma(v) * sigma(v))).exp() / (sigma(v) * tau.sqrt()))
                .sum::<f64>()
                / 4.0
        };
        let (lo, hi, steps) = (-20.0, 23.0, 100_000);
        let dz = (hi - lo) / steps as f64;
        let h_mixture: f64 = (0..steps)
            .map(|s| {
                let p = density(lo + (s as f64 + 0.5) * dz);
                if p > 0.0 {
                    -p * p.ln() * dz
                } else {
                    0.0
                }
            })
            .sum();
        let h_components =
            (0..4).map(|v| 0.5 * (tau * std::f64::consts::E * sigma(v) * sigma(v)).ln()).sum::<f64>() / 4.0;
        let exact = h_mixture - h_components;
        assert!(exact > 0.3 && exact < 4f64.ln() - 0.3, "the test case should overlap: I = {exact}");
        let got = r.factors[0].mutual_info[0];
        assert!((got - exact).abs() < 0.03, "estimated {got}, quadrature {exact}");
        assert!(r.factors[0].mutual_info[1].abs() < 0.03 && r.factors[1].mutual_info[0].abs() < 0.03, "{r:?}");
        // The gap is the difference of the top two (clamped at 0), normalised by H(v) = ln 4.
        let second = r.factors[0].mutual_info[1].max(0.0);
        assert!((r.factors[0].gap - (got - second) / 4f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn sampled_mig_rejects_bad_inputs_naming_the_shape() {
        let grid = FactorGrid::new(&[2, 3]).unwrap();
        let (mu, lv) = (vec![0.0f32; 12], vec![0.0f32; 12]);
        assert!(mig_sampled(&grid, &mu, &lv, 2, &[0], 10, 0).is_ok());
        let err = mig_sampled(&grid, &mu[..10], &lv, 2, &[0], 10, 0).unwrap_err().to_string();
        assert!(err.contains("mu") && err.contains("[6, 2]"), "{err}");
        assert!(mig_sampled(&grid, &mu, &lv, 2, &[2], 10, 0).is_err(), "no factor 2");
        assert!(mig_sampled(&grid, &mu, &lv, 2, &[], 10, 0).is_err(), "nothing to score");
        let mut nan = mu.clone();
        nan[5] = f32::NAN;
        let err = mig_sampled(&grid, &nan, &lv, 2, &[0], 10, 0).unwrap_err().to_string();
        assert!(err.contains("row 2, column 1"), "{err}");
    }

    #[test]
    fn factor_vae_score_is_one_when_each_factor_has_a_latent_of_its_own() {
        // Latent j = factor (2 − j)'s value plus a little per-image noise; latent 3 is collapsed.
        let grid = FactorGrid::new(&[5, 6, 7]).unwrap();
        let mut rng = Rng::new(5);
        let jitter: Vec<f32> = (0..grid.len() * 4).map(|_| 0.01 * rng.normal() as f32).collect();
        let (mu, _) = codes(
            &grid,
            4,
            |i, j| if j < 3 { grid.value(i, 2 - j) as f32 + jitter[i * 4 + j] } else { 0.001 * jitter[i * 4 + j] },
            |_| 1.0,
        );
        let r = factor_vae_score(&grid, &mu, 4, &FactorVaeOptions::default()).unwrap();
        assert_eq!(r.score, 1.0, "{r:?}");
        assert_eq!(r.active_latents, vec![0, 1, 2], "latent 3 is collapsed");
        assert_eq!(r.latent_factor, vec![2, 1, 0]);
    }

    #[test]
    fn factor_vae_score_is_chance_for_a_code_that_ignores_the_factors() {
        let grid = FactorGrid::new(&[5, 6, 7]).unwrap();
        let mut rng = Rng::new(8);
        let noise: Vec<f32> = (0..grid.len() * 3).map(|_| rng.normal() as f32).collect();
        let r = factor_vae_score(&grid, &noise, 3, &FactorVaeOptions::default()).unwrap();
        // Three factors: a guess is right a third of the time; a majority vote over noise
        // can do a little better by chance, nowhere near a disentangled code.
        assert!(r.score < 0.45, "{r:?}");
        // A fully collapsed code has no active latent and scores 0.
        let flat = vec![0.0f32; grid.len() * 3];
        assert_eq!(factor_vae_score(&grid, &flat, 3, &FactorVaeOptions::default()).unwrap().score, 0.0);
    }

    #[test]
    fn factor_vae_score_ignores_a_mixed_pair_only_partly() {
        // Latents 0 and 1 are the sum and difference of factors 0 and 1: fixing either factor
        // shrinks both latents' variance equally, so votes split and accuracy falls well short
        // of the aligned code's 1.
        let grid = FactorGrid::new(&[6, 6, 6]).unwrap();
        let (mu, _) = codes(
            &grid,
            3,
            |i, j| {
                let (a, b, c) = (grid.value(i, 0) as f32, grid.value(i, 1) as f32, grid.value(i, 2) as f32);
                [a + b, a - b, c][j]
            },
            |_| 1.0,
        );
        let r = factor_vae_score(&grid, &mu, 3, &FactorVaeOptions::default()).unwrap();
        assert!(r.score < 0.9 && r.score > 0.5, "{r:?}");
    }
}
