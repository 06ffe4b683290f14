//! Evaluation metrics: image sharpness (variance of the Laplacian), a Fréchet distance
//! between Gaussian fits of classifier features, the mutual information gap (MIG) of a
//! latent code against ground-truth factors, and how evenly generated samples spread over
//! the classes a classifier assigns them.
//!
//! Shapes are explicit in every signature: images are [N, C, H, W] f32 slices, feature and
//! latent matrices [n, d] row-major slices whose row count is `len / d`. Bad shapes or values
//! are an [`InputError`] naming the function and the shape; nothing here panics on input.

use rayon::prelude::*;
use tensor::Float;

pub use crate::linalg::InputError;
use crate::linalg::{self, check_len, input_err, Result};

// ---------------------------------------------------------------- sharpness

/// Variance of the Laplacian of one image, a blurriness score (Pech-Pacheco et al. 2000; the
/// seed paper's figure 9): edges give large second derivatives, blur flattens them, so a
/// sharper image has a larger variance. image: [C, H, W] f32 (any range; [0, 1] here).
///
/// The image is first made grey as the mean of its channels, then convolved with
///   [[0, 1, 0], [1, −4, 1], [0, 1, 0]],
/// i.e. L(y, x) = g(y−1, x) + g(y+1, x) + g(y, x−1) + g(y, x+1) − 4·g(y, x), the discrete
/// ∇²g. The result is the population variance (ddof = 0, as NumPy's `.var()`) of L over the
/// valid interior 1 ≤ y ≤ H−2, 1 ≤ x ≤ W−2, (H−2)(W−2) values.
///
/// Differences from the usual `cv2.Laplacian(gray, cv2.CV_64F).var()`, which uses the same
/// kernel (ksize = 1): (1) OpenCV also scores the one-pixel border with reflected padding
/// (BORDER_REFLECT_101); we skip it so padding never invents edges — on 64×64 images that is
/// 252 of 4096 values; (2) OpenCV's grey is 0.299R + 0.587G + 0.114B, ours the plain mean;
/// (3) OpenCV users feed uint8 in [0, 255]: multiply our value by 255² to compare with theirs.
pub fn laplacian_variance(image: &[f32], channels: usize, h: usize, w: usize) -> Result<f64> {
    const OP: &str = "laplacian_variance";
    if image.len() != channels * h * w {
        return input_err(
            OP,
            format!("image has {} values but its shape is [C={channels}, H={h}, W={w}]", image.len()),
        );
    }
    if channels == 0 || h < 3 || w < 3 {
        return input_err(OP, format!("shape [C={channels}, H={h}, W={w}] needs C ≥ 1 and H, W ≥ 3 for a 3×3 kernel"));
    }
    let hw = h * w;
    let grey: Vec<f64> =
        (0..hw).map(|p| (0..channels).map(|c| image[c * hw + p] as f64).sum::<f64>() / channels as f64).collect();
    let g = |y: usize, x: usize| grey[y * w + x];
    let lap: Vec<f64> = (1..h - 1)
        .flat_map(|y| (1..w - 1).map(move |x| (y, x)))
        .map(|(y, x)| g(y - 1, x) + g(y + 1, x) + g(y, x - 1) + g(y, x + 1) - 4.0 * g(y, x))
        .collect();
    let mean = lap.iter().sum::<f64>() / lap.len() as f64;
    Ok(lap.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / lap.len() as f64)
}

/// The mean of [`laplacian_variance`] over a batch. images: [N, C, H, W] f32 → scalar.
/// Images are scored in parallel. Errors when N = 0 or the length disagrees with the shape.
pub fn mean_laplacian_variance(images: &[f32], shape: [usize; 4]) -> Result<f64> {
    let [n, c, h, w] = shape;
    if images.len() != n * c * h * w || n == 0 || c * h * w == 0 {
        return input_err(
            "mean_laplacian_variance",
            format!(
                "images has {} values for shape {shape:?}; expected N·C·H·W values with N, C, H, W ≥ 1",
                images.len()
            ),
        );
    }
    let scores =
        images.par_chunks(c * h * w).map(|img| laplacian_variance(img, c, h, w)).collect::<Result<Vec<f64>>>()?;
    Ok(scores.iter().sum::<f64>() / n as f64)
}

// ---------------------------------------------------------------- Fréchet distance

/// A Gaussian fitted to feature vectors: the mean and the unbiased covariance.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianFit {
    /// d, the feature size.
    pub dim: usize,
    /// μ: \[d\].
    pub mean: Vec<f64>,
    /// Σ: [d, d].
    pub cov: Vec<f64>,
}

/// Converts an [n, d] matrix to f64 after checking its shape and that every value is finite.
fn rows_f64<T: Float>(op: &'static str, what: &str, x: &[T], d: usize) -> Result<(Vec<f64>, usize)> {
    if d == 0 || !x.len().is_multiple_of(d) {
        return input_err(op, format!("{what} has {} values, not a whole number of rows of d = {d}", x.len()));
    }
    let n = x.len() / d;
    let mut out = Vec::with_capacity(x.len());
    for (idx, v) in x.iter().enumerate() {
        let v = v.to_f64();
        if !v.is_finite() {
            return input_err(op, format!("{what} [{n}, {d}] holds {v} at row {}, column {}", idx / d, idx % d));
        }
        out.push(v);
    }
    Ok((out, n))
}

/// Fits μ and Σ to feats: [n, d] (n ≥ 2). Fit the reference set once and reuse it with
/// [`frechet_distance_gaussians`] when scoring several models against it.
pub fn fit_gaussian<T: Float>(feats: &[T], d: usize) -> Result<GaussianFit> {
    let (x, n) = rows_f64("fit_gaussian", "feats", feats, d)?;
    if n < 2 {
        return input_err("fit_gaussian", format!("feats has shape [{n}, {d}]; a covariance needs at least 2 rows"));
    }
    Ok(GaussianFit { dim: d, mean: linalg::mean_rows(&x, n, d)?, cov: linalg::covariance(&x, n, d)? })
}

/// The Fréchet (2-Wasserstein) distance between two Gaussians,
///   d² = ‖μa − μb‖² + Tr(Σa + Σb − 2·(Σa^½ Σb Σa^½)^½).
///
/// Why this form: the textbook Tr((Σa Σb)^½) takes the square root of a non-symmetric matrix.
/// Σa Σb = Σa^½ (Σa^½ Σb Σa^½) Σa^-½ is similar to M = Σa^½ Σb Σa^½, which is symmetric PSD,
/// so both have the same eigenvalues λ ≥ 0 and Tr((Σa Σb)^½) = Tr(M^½) = Σ √λ. Two symmetric
/// eigendecompositions (Jacobi, O(d³)) compute it with no complex intermediate values.
/// Rounding can push the total a hair below zero for identical fits; it is clamped at 0.
pub fn frechet_distance_gaussians(a: &GaussianFit, b: &GaussianFit) -> Result<f64> {
    const OP: &str = "frechet_distance";
    let d = a.dim;
    if b.dim != d {
        return input_err(OP, format!("feature sizes differ: {} vs {}", a.dim, b.dim));
    }
    for (name, g) in [("a", a), ("b", b)] {
        if g.mean.len() != d {
            return input_err(OP, format!("{name}.mean has {} values, expected [{d}]", g.mean.len()));
        }
        check_len(OP, &format!("{name}.cov"), g.cov.len(), [d, d])?;
    }
    let mean_term: f64 = a.mean.iter().zip(&b.mean).map(|(x, y)| (x - y).powi(2)).sum();
    let sa = linalg::sym_sqrt(&a.cov, d)?;
    let m = linalg::matmul(&linalg::matmul(&sa, &b.cov, d, d, d)?, &sa, d, d, d)?;
    let tr_sqrt_m: f64 = linalg::sym_eigen(&m, d)?.values.iter().map(|l| l.max(0.0).sqrt()).sum();
    let total = mean_term + linalg::trace(&a.cov, d)? + linalg::trace(&b.cov, d)? - 2.0 * tr_sqrt_m;
    Ok(total.max(0.0))
}

/// The Fréchet distance between Gaussian fits of two feature sets, feats_a: [n, d] and
/// feats_b: [m, d] (n, m ≥ 2), see [`frechet_distance_gaussians`].
///
/// With features from the penultimate layer of OUR classifier this is the formula of the
/// FID (Heusel et al. 2017) but not the FID: FID values are defined on Inception-v3 pool3
/// features of 299×299 images, so numbers from here compare runs with each other, never
/// with published FIDs. Like FID it is biased upwards for small n; compare at equal n.
pub fn frechet_distance<T: Float>(feats_a: &[T], feats_b: &[T], d: usize) -> Result<f64> {
    frechet_distance_gaussians(&fit_gaussian(feats_a, d)?, &fit_gaussian(feats_b, d)?)
}

// ---------------------------------------------------------------- MIG

/// MIG's verdict on one ground-truth factor.
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

/// The result of [`mutual_information_gap`].
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

/// Entropy H = −Σ p ln p in nats of a histogram of counts (empty bins contribute 0).
fn entropy_from_counts(counts: &[usize]) -> f64 {
    let n: usize = counts.iter().sum();
    if n == 0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.ln()
        })
        .sum()
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

/// The mutual information gap of Chen et al. (2018), with the discretised estimator of
/// disentanglement_lib (Locatello et al. 2019):
///
///   MIG = 1/K' · Σ_k (I(z_{j⁽¹⁾}; v_k) − I(z_{j⁽²⁾}; v_k)) / H(v_k),
///
/// where j⁽¹⁾, j⁽²⁾ are the latents with the largest and second-largest mutual information
/// with factor v_k, and the sum runs over the K' factors that vary (H(v_k) > 0). A code in
/// which each factor is captured by one latent alone scores near 1; a code that spreads a
/// factor over several latents, or ignores it, scores near 0.
///
/// latents: [n, d] (e.g. posterior means μ(x)), each column discretised into `bins`
/// equal-width bins (see `discretize_column`; 20 in disentanglement_lib). factors: [n, k]
/// discrete factor indices, factor k taking values in 0..factor_sizes\[k\]. All information
/// quantities are in nats; the ratio is unit-free. The plug-in estimator is biased upwards
/// for small n (about (bins − 1)(|v_k| − 1) / 2n nats); use thousands of samples.
pub fn mutual_information_gap<T: Float>(
    latents: &[T],
    d: usize,
    factors: &[usize],
    factor_sizes: &[usize],
    bins: usize,
) -> Result<MigReport> {
    const OP: &str = "mutual_information_gap";
    let (z, n) = rows_f64(OP, "latents", latents, d)?;
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

/// [`mutual_information_gap`] against dSprites' factors (shape, scale, orientation, pos_x,
/// pos_y; sizes [`crate::data::dsprites::FACTOR_SIZES`]). latents: [n, d]; factors: \[n\].
pub fn dsprites_mig<T: Float>(latents: &[T], d: usize, factors: &[[u16; 5]], bins: usize) -> Result<MigReport> {
    let flat: Vec<usize> = factors.iter().flat_map(|f| f.map(usize::from)).collect();
    mutual_information_gap(latents, d, &flat, &crate::data::dsprites::FACTOR_SIZES, bins)
}

// ---------------------------------------------------------------- class spread

/// How many predictions fall in each class. predicted: \[n\] → counts: \[classes\].
/// Errors on a prediction ≥ `classes`.
pub fn class_histogram(predicted: &[usize], classes: usize) -> Result<Vec<usize>> {
    let mut counts = vec![0usize; classes];
    for (i, &p) in predicted.iter().enumerate() {
        match counts.get_mut(p) {
            Some(c) => *c += 1,
            None => {
                return input_err(
                    "class_histogram",
                    format!("predicted[{i}] = {p} but there are only {classes} classes"),
                )
            }
        }
    }
    Ok(counts)
}

/// H(p) / ln K for the class frequencies p of a histogram over K ≥ 2 classes: 1 when the
/// samples spread evenly over every class, 0 when they all fall in one (mode collapse).
/// Errors when K < 2 or the histogram holds no samples.
pub fn normalized_class_entropy(histogram: &[usize]) -> Result<f64> {
    let n: usize = histogram.iter().sum();
    if histogram.len() < 2 || n == 0 {
        return input_err(
            "normalized_class_entropy",
            format!("histogram over {} classes holding {n} samples; need ≥ 2 classes and ≥ 1 sample", histogram.len()),
        );
    }
    Ok(entropy_from_counts(histogram) / (histogram.len() as f64).ln())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::LN_2;

    #[test]
    fn laplacian_variance_of_a_single_bright_pixel_matches_hand_computation() {
        // 4×4 zeros with g(1, 1) = 1. Valid outputs at (1,1), (1,2), (2,1), (2,2):
        // −4, 1, 1, 0 → mean −0.5, variance (3.5² + 1.5² + 1.5² + 0.5²) / 4 = 17/4.
        let mut img = vec![0.0f32; 16];
        img[5] = 1.0;
        assert!((laplacian_variance(&img, 1, 4, 4).unwrap() - 4.25).abs() < 1e-12);
        // Three channels whose mean is the same grey image score the same.
        let mut rgb = vec![0.0f32; 48];
        rgb[5] = 3.0;
        assert!((laplacian_variance(&rgb, 3, 4, 4).unwrap() - 4.25).abs() < 1e-12);
    }

    #[test]
    fn laplacian_variance_is_zero_on_a_ramp_and_drops_with_blur() {
        // g = 0.1x + 0.05y is linear: ∇²g = 0 everywhere.
        let ramp: Vec<f32> = (0..64).map(|p| 0.1 * (p % 8) as f32 + 0.05 * (p / 8) as f32).collect();
        assert!(laplacian_variance(&ramp, 1, 8, 8).unwrap() < 1e-12);
        // A checkerboard against its 3×3 box blur (interior only): blur must score lower.
        let (h, w) = (16, 16);
        let sharp: Vec<f32> = (0..h * w).map(|p| ((p % w + p / w) % 2) as f32).collect();
        let blurred: Vec<f32> = (0..h * w)
            .map(|p| {
                let (y, x) = ((p / w) as isize, (p % w) as isize);
                let mut s = 0.0;
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        let (yy, xx) = ((y + dy).clamp(0, 15), (x + dx).clamp(0, 15));
                        s += sharp[(yy * 16 + xx) as usize];
                    }
                }
                s / 9.0
            })
            .collect();
        let (a, b) = (laplacian_variance(&sharp, 1, h, w).unwrap(), laplacian_variance(&blurred, 1, h, w).unwrap());
        assert!(b < 0.1 * a, "sharp {a}, blurred {b}");
        // The batch mean is the mean of the two.
        let both: Vec<f32> = sharp.iter().chain(&blurred).copied().collect();
        let m = mean_laplacian_variance(&both, [2, 1, h, w]).unwrap();
        assert!((m - (a + b) / 2.0).abs() < 1e-9);
        assert!(laplacian_variance(&sharp, 1, 16, 15).is_err());
        assert!(laplacian_variance(&[0.0; 4], 1, 2, 2).is_err());
        assert!(mean_laplacian_variance(&both, [3, 1, h, w]).is_err());
    }

    #[test]
    fn frechet_distance_of_1d_fits_is_mean_and_std_differences_squared() {
        // In 1-D, d² = (μa − μb)² + σa² + σb² − 2σaσb = (μa − μb)² + (σa − σb)².
        // a = {0, 2}: μ 1, σ² 2. b = {1, 3, 5, 7}: μ 4, σ² = (9+1+1+9)/3 = 20/3.
        let a = [0.0f32, 2.0];
        let b = [1.0f32, 3.0, 5.0, 7.0];
        let expected = 9.0 + (2f64.sqrt() - (20.0f64 / 3.0).sqrt()).powi(2);
        assert!((frechet_distance(&a, &b, 1).unwrap() - expected).abs() < 1e-12);
    }

    #[test]
    fn frechet_distance_matches_the_closed_form_for_non_commuting_2x2() {
        // For 2×2 PSD A, B: ΣaΣb has eigenvalues λ₁, λ₂ ≥ 0 with λ₁ + λ₂ = tr(AB) and
        // λ₁λ₂ = det A · det B, so Tr((AB)^½) = √λ₁ + √λ₂ = √(tr(AB) + 2√(det A det B)).
        // This checks the Jacobi path against a formula that uses no eigensolver.
        let a = GaussianFit { dim: 2, mean: vec![1.0, 2.0], cov: vec![2.0, 0.5, 0.5, 1.0] };
        let b = GaussianFit { dim: 2, mean: vec![0.0, 4.0], cov: vec![1.0, -0.7, -0.7, 3.0] };
        let tr_ab = 2.0 * 1.0 + 0.5 * -0.7 + 0.5 * -0.7 + 1.0 * 3.0;
        let det = (2.0 * 1.0 - 0.25) * (3.0 - 0.49);
        let tr_sqrt = (tr_ab + 2.0 * f64::sqrt(det)).sqrt();
        let expected = 1.0 + 4.0 + 3.0 + 4.0 - 2.0 * tr_sqrt;
        let got = frechet_distance_gaussians(&a, &b).unwrap();
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
        // Symmetric in its arguments; zero against itself.
        assert!((frechet_distance_gaussians(&b, &a).unwrap() - expected).abs() < 1e-12);
        assert!(frechet_distance_gaussians(&a, &a).unwrap() < 1e-12);
    }

    #[test]
    fn frechet_distance_grows_with_a_mean_shift_and_rejects_bad_shapes() {
        let mut rng = tensor::Rng::new(3);
        let a: Vec<f64> = (0..400 * 3).map(|_| rng.normal()).collect();
        let shifted: Vec<f64> = a.iter().enumerate().map(|(i, &v)| if i % 3 == 0 { v + 2.0 } else { v }).collect();
        // Shifting column 0 by 2 leaves Σ unchanged, so d² is exactly ‖Δμ‖² = 4.
        assert!((frechet_distance(&a, &shifted, 3).unwrap() - 4.0).abs() < 1e-9);
        assert!(frechet_distance(&a, &shifted[..7], 3).is_err(), "7 values are not rows of 3");
        assert!(frechet_distance(&a[..3], &shifted, 3).is_err(), "one row has no covariance");
        let mut nan = a.clone();
        nan[4] = f64::NAN;
        let err = frechet_distance(&nan, &a, 3).unwrap_err().to_string();
        assert!(err.contains("row 1, column 1"), "{err}");
    }

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
        let r = mutual_information_gap(&z, 3, &f, &[2, 1, 4], 4).unwrap();
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
        let ra = mutual_information_gap(&aligned, 2, &f, &[8, 8], 20).unwrap();
        let rm = mutual_information_gap(&mixed, 2, &f, &[8, 8], 20).unwrap();
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
        let err = mutual_information_gap(&z, 2, &[0, 5], &[3], 10).unwrap_err().to_string();
        assert!(err.contains("value 5") && err.contains("3 values"), "{err}");
        assert!(mutual_information_gap(&z, 2, &[0, 1, 2], &[3], 10).is_err(), "3 rows for n = 2");
        assert!(mutual_information_gap(&z, 3, &[0, 1], &[3], 10).is_err(), "4 values, d = 3");
        assert!(mutual_information_gap(&z, 2, &[1, 1], &[3], 10).is_err(), "every factor constant");
        // dSprites' factor arrays go through the same path.
        let fs = [[0u16, 1, 2, 3, 4], [1, 1, 2, 3, 4]];
        let r = dsprites_mig(&z, 2, &fs, 2).unwrap();
        assert_eq!(r.gaps.iter().filter(|g| g.is_some()).count(), 1, "only shape varies");
    }

    #[test]
    fn class_histogram_counts_and_entropy_is_normalised() {
        let h = class_histogram(&[0, 2, 2, 1, 2, 0], 4).unwrap();
        assert_eq!(h, vec![2, 1, 3, 0]);
        assert!(class_histogram(&[0, 4], 4).is_err());
        assert!((normalized_class_entropy(&[5, 5, 5, 5]).unwrap() - 1.0).abs() < 1e-15);
        assert_eq!(normalized_class_entropy(&[0, 9, 0]).unwrap(), 0.0);
        // p = (1/2, 1/4, 1/4, 0): H = 1.5 ln 2, over ln 4 = 2 ln 2 → 0.75.
        assert!((normalized_class_entropy(&[2, 1, 1, 0]).unwrap() - 0.75).abs() < 1e-15);
        assert!(normalized_class_entropy(&[0, 0]).is_err());
        assert!(normalized_class_entropy(&[3]).is_err());
    }
}
