//! Evaluation metrics: image sharpness (variance of the Laplacian), a Fréchet distance
//! between Gaussian fits of classifier features, and how evenly generated samples spread over
//! the classes a classifier assigns them. How well a code's latents match ground-truth factors
//! (MIG, the FactorVAE score) is [`crate::tools::disentanglement`].
//!
//! Shapes are explicit in every signature: images are [N, C, H, W] f32 slices, feature and
//! latent matrices [n, d] row-major slices whose row count is `len / d`. Bad shapes or values
//! are an [`InputError`] naming the function and the shape; nothing here panics on input.

use rayon::prelude::*;
use tensor::Float;

pub use crate::tools::linalg::InputError;
use crate::tools::linalg::{self, check_len, input_err, Result};

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
pub(crate) fn rows_f64<T: Float>(op: &'static str, what: &str, x: &[T], d: usize) -> Result<(Vec<f64>, usize)> {
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

// ---------------------------------------------------------------- class spread

/// Entropy H = −Σ p ln p in nats of a histogram of counts (empty bins contribute 0).
pub(crate) fn entropy_from_counts(counts: &[usize]) -> f64 {
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
