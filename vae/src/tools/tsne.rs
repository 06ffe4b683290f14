//! Exact t-SNE (van der Maaten & Hinton 2008): embeds [n, d] points (latent means, say) in
//! 2-D so that neighbours stay neighbours, for plots of the latent space coloured by label.
//!
//! The method in three steps:
//! 1. Input affinities. For each point i, a Gaussian over the others,
//!    p_{j|i} = exp(−β_i‖x_i − x_j‖²) / Σ_{k≠i} exp(−β_i‖x_i − x_k‖²),
//!    with β_i = 1/(2σ_i²) found by binary search so that the perplexity 2^{H(P_i)} (= e^H
//!    with H in nats) equals the requested one: dense regions get narrow Gaussians, sparse
//!    ones wide. Symmetrised, p_ij = (p_{j|i} + p_{i|j}) / 2n, so Σ_ij p_ij = 1.
//! 2. Output affinities, a Student-t with one degree of freedom over the 2-D points y:
//!    q_ij = w_ij / Z, w_ij = (1 + ‖y_i − y_j‖²)⁻¹, Z = Σ_{k≠l} w_kl. Its heavy tail lets
//!    moderately distant points sit far apart, which is what separates clusters.
//! 3. Gradient descent on KL(P‖Q) = Σ p_ij ln(p_ij / q_ij), whose gradient is
//!    ∂C/∂y_i = 4 Σ_j (p_ij − q_ij) · w_ij · (y_i − y_j),
//!    with momentum (0.5, then 0.8 after 250 iterations), per-coordinate adaptive gains
//!    (Jacobs 1988, as in the authors' reference `tsne.py`), and early exaggeration
//!    (P × 12 for the first 250 iterations, which pulls clusters together first).
//!
//! Cost: O(n²·d) once for the distances, then O(n²) per iteration; memory two n² f64
//! matrices (distances and P: 16 MB at n = 1000, 400 MB at 5000), hence [`MAX_POINTS`].
//! Rows are spread over cores with rayon; every reduction sums per-row results in a fixed order, so a seed gives the
//! same embedding whatever the thread count.

use rayon::prelude::*;
use tensor::{Float, Rng};

use crate::tools::linalg::{input_err, Result};

/// The most points [`tsne`] accepts: exact t-SNE holds two n² f64 matrices (400 MB here) and
/// its 1,000 iterations each touch all of P. Subsample above it (or use Barnes–Hut t-SNE,
/// which this module does not implement).
pub const MAX_POINTS: usize = 5_000;

/// The knobs of [`tsne`]; `Default` gives the paper's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TsneOptions {
    /// The effective number of neighbours each point's Gaussian covers (5–50; 30 default).
    /// Must be below n − 1.
    pub perplexity: f64,
    /// Number of gradient-descent iterations.
    pub iterations: usize,
    /// The step size η; `None` picks max(n / (4·early_exaggeration), 50), the rule of
    /// Belkina et al. (2019) in scikit-learn's convention (≥ 1.2's "auto"; its gradient
    /// carries the same factor 4 as ours). A fixed 200 (the paper's value) diverges for
    /// small n: on 90 points it leaves KL at 0.73 where "auto" (50) reaches 0.012.
    pub learning_rate: Option<f64>,
    /// P is multiplied by this for the first `exaggeration_iters` iterations.
    pub early_exaggeration: f64,
    /// How many initial iterations use `early_exaggeration`.
    pub exaggeration_iters: usize,
    /// Momentum of the gradient updates before `momentum_switch`.
    pub initial_momentum: f64,
    /// Momentum of the gradient updates from `momentum_switch` on.
    pub final_momentum: f64,
    /// The iteration at which momentum switches from initial to final.
    pub momentum_switch: usize,
    /// Seeds the initial embedding, y ~ N(0, 10⁻⁴·I).
    pub seed: u64,
}

impl Default for TsneOptions {
    fn default() -> Self {
        TsneOptions {
            perplexity: 30.0,
            iterations: 1000,
            learning_rate: None,
            early_exaggeration: 12.0,
            exaggeration_iters: 250,
            initial_momentum: 0.5,
            final_momentum: 0.8,
            momentum_switch: 250,
            seed: 0,
        }
    }
}

/// The embedding and how well it fits.
#[derive(Clone, Debug, PartialEq)]
pub struct TsneOutput {
    /// y: [n, 2], row-major, centred on the origin.
    pub embedding: Vec<f64>,
    /// KL(P‖Q) of the final embedding, nats.
    pub kl: f64,
}

/// Squared Euclidean distances. x: [n, d] → [n, n]; rows in parallel, O(n²·d).
fn squared_distances(x: &[f64], n: usize, d: usize) -> Vec<f64> {
    let mut dist = vec![0.0; n * n];
    dist.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        let xi = &x[i * d..(i + 1) * d];
        for (j, out) in row.iter_mut().enumerate() {
            let xj = &x[j * d..(j + 1) * d];
            *out = xi.iter().zip(xj).map(|(a, b)| (a - b) * (a - b)).sum();
        }
    });
    dist
}

/// The entropy H (nats) of the row p_{j|i} ∝ exp(−β·D_ij), j ≠ i, and the row itself.
///
/// With E_j = exp(−β(D_ij − D_min)) (the shift by the smallest distance cancels in the
/// normalisation and keeps the largest term at 1, so nothing underflows to 0/0),
///   H = −Σ p_j ln p_j = −Σ p_j (−β(D_ij − D_min) − ln ΣE) = ln ΣE + β·Σ p_j (D_ij − D_min).
fn row_entropy(dist_row: &[f64], i: usize, beta: f64, p: &mut [f64]) -> f64 {
    let d_min = dist_row.iter().enumerate().filter(|&(j, _)| j != i).fold(f64::INFINITY, |m, (_, &v)| m.min(v));
    let mut sum = 0.0;
    for (j, (pj, &dij)) in p.iter_mut().zip(dist_row).enumerate() {
        *pj = if j == i { 0.0 } else { (-beta * (dij - d_min)).exp() };
        sum += *pj;
    }
    let mut weighted = 0.0;
    for (pj, &dij) in p.iter_mut().zip(dist_row) {
        *pj /= sum;
        if *pj > 0.0 {
            weighted += *pj * (dij - d_min);
        }
    }
    sum.ln() + beta * weighted
}

/// Calibrates one row: finds β_i = 1/(2σ_i²) with e^{H(P_i)} = `perplexity` by bisection
/// on β (H falls monotonically as β grows: a narrower Gaussian concentrates on fewer
/// neighbours). dist_row: \[n\] squared distances from point i (entry i is ignored).
/// Returns p_{·|i}: \[n\] (zero at i, summing to 1) and β_i.
///
/// Bisection in the style of the reference `x2p`: double or halve β until the target is
/// bracketed, then halve the bracket, until |H − ln perplexity| < 1e-10 or 200 steps (the
/// bracket is then below 2⁻¹⁰⁰ of its start; ties in distance can make some targets
/// unreachable exactly, and the closest β found is kept).
fn calibrate_row(dist_row: &[f64], i: usize, perplexity: f64) -> (Vec<f64>, f64) {
    let target = perplexity.ln();
    let mut p = vec![0.0; dist_row.len()];
    let (mut beta, mut lo, mut hi) = (1.0, 0.0, f64::INFINITY);
    // Scale the first guess to the data so the search starts near the answer: β ≈ 1/mean D.
    let mean_d = dist_row.iter().sum::<f64>() / (dist_row.len().max(2) - 1) as f64;
    if mean_d > 0.0 && mean_d.is_finite() {
        beta = 1.0 / mean_d;
    }
    for _ in 0..200 {
        let h = row_entropy(dist_row, i, beta, &mut p);
        let diff = h - target;
        if diff.abs() < 1e-10 {
            break;
        }
        if diff > 0.0 {
            // Too flat: sharpen.
            lo = beta;
            beta = if hi.is_finite() { 0.5 * (beta + hi) } else { beta * 2.0 };
        } else {
            hi = beta;
            beta = 0.5 * (beta + lo);
        }
    }
    row_entropy(dist_row, i, beta, &mut p);
    (p, beta)
}

/// The symmetric joint affinities p_ij = (p_{j|i} + p_{i|j}) / 2n, floored at 1e-12 off the
/// diagonal (as the reference code: keeps ln(p/q) finite). x: [n, d] → P: [n, n].
fn joint_probabilities(x: &[f64], n: usize, d: usize, perplexity: f64) -> Vec<f64> {
    let dist = squared_distances(x, n, d);
    let cond: Vec<f64> =
        (0..n).into_par_iter().flat_map_iter(|i| calibrate_row(&dist[i * n..(i + 1) * n], i, perplexity).0).collect();
    let mut p = vec![0.0; n * n];
    p.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for (j, pij) in row.iter_mut().enumerate() {
            if i != j {
                *pij = ((cond[i * n + j] + cond[j * n + i]) / (2.0 * n as f64)).max(1e-12);
            }
        }
    });
    p
}

/// The Student-t weights' normaliser Z = Σ_{i≠j} (1 + ‖y_i − y_j‖²)⁻¹. y: [n, 2].
/// Per-row sums are collected in order, then added sequentially (reproducible).
fn student_t_normalizer(y: &[f64], n: usize) -> f64 {
    let rows: Vec<f64> =
        (0..n).into_par_iter().map(|i| (0..n).filter(|&j| j != i).map(|j| w(y, i, j)).sum::<f64>()).collect();
    rows.iter().sum()
}

/// w_ij = (1 + ‖y_i − y_j‖²)⁻¹ for y: [n, 2].
#[inline]
fn w(y: &[f64], i: usize, j: usize) -> f64 {
    let (dx, dy) = (y[2 * i] - y[2 * j], y[2 * i + 1] - y[2 * j + 1]);
    1.0 / (1.0 + dx * dx + dy * dy)
}

/// KL(P‖Q) = Σ_{i≠j} p_ij ln(p_ij / q_ij) of the embedding y: [n, 2] against P: [n, n].
fn kl_divergence(p: &[f64], y: &[f64], n: usize) -> f64 {
    let z = student_t_normalizer(y, n);
    let rows: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| {
            (0..n)
                .filter(|&j| j != i && p[i * n + j] > 0.0)
                .map(|j| {
                    let pij = p[i * n + j];
                    pij * (pij / (w(y, i, j) / z)).ln()
                })
                .sum::<f64>()
        })
        .collect();
    rows.iter().sum()
}

/// ∂C/∂y for C = KL(α·P ‖ Q): grad_i = 4 Σ_j (α·p_ij − w_ij / Z) · w_ij · (y_i − y_j).
/// y: [n, 2], p: [n, n] → grad: [n, 2].
///
/// Z needs every w before any gradient can be finished, but Z is a scalar, so one pass over
/// the pairs suffices: split grad_i = 4·(α·A_i − B_i / Z) with
///   A_i = Σ_j p_ij w_ij (y_i − y_j),  B_i = Σ_j w_ij² (y_i − y_j),  Z = Σ_i Σ_{j≠i} w_ij,
/// accumulate A_i, B_i and the row sum of w per row (in parallel), then combine. The j = i
/// term needs no branch: y_i − y_i = 0 and p_ii = 0, and its w_ii = 1 is taken off the row
/// sum. w is never stored, so memory stays at P alone.
fn gradient(p: &[f64], y: &[f64], n: usize, exaggeration: f64, grad: &mut [f64]) {
    // Split coordinates so the inner loop reads two contiguous arrays (vectorises).
    let (ys0, ys1): (Vec<f64>, Vec<f64>) = y.chunks(2).map(|c| (c[0], c[1])).unzip();
    let rows: Vec<([f64; 2], [f64; 2], f64)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let (yi0, yi1) = (ys0[i], ys1[i]);
            let p_row = &p[i * n..(i + 1) * n];
            let (mut a0, mut a1, mut b0, mut b1, mut zi) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for ((&yj0, &yj1), &pij) in ys0.iter().zip(&ys1).zip(p_row) {
                let (d0, d1) = (yi0 - yj0, yi1 - yj1);
                let wij = 1.0 / (1.0 + d0 * d0 + d1 * d1);
                let (pw, ww) = (pij * wij, wij * wij);
                a0 += pw * d0;
                a1 += pw * d1;
                b0 += ww * d0;
                b1 += ww * d1;
                zi += wij;
            }
            ([a0, a1], [b0, b1], zi - 1.0)
        })
        .collect();
    let z: f64 = rows.iter().map(|r| r.2).sum();
    for (g, (a, b, _)) in grad.chunks_mut(2).zip(&rows) {
        g[0] = 4.0 * (exaggeration * a[0] - b[0] / z);
        g[1] = 4.0 * (exaggeration * a[1] - b[1] / z);
    }
}

/// Runs t-SNE on x: [n, d] (f32 or f64) → [n, 2]. See the module doc for the method.
/// Errors on a ragged or non-finite x, n < 3, n > [`MAX_POINTS`], or a perplexity outside
/// (0, n − 1) (a row has only n − 1 neighbours to spread over).
pub fn tsne<T: Float>(x: &[T], d: usize, opts: &TsneOptions) -> Result<TsneOutput> {
    const OP: &str = "tsne";
    if d == 0 || !x.len().is_multiple_of(d) {
        return input_err(OP, format!("x has {} values, not a whole number of rows of d = {d}", x.len()));
    }
    let n = x.len() / d;
    if !(3..=MAX_POINTS).contains(&n) {
        return input_err(OP, format!("x has shape [{n}, {d}]; t-SNE here takes 3 to {MAX_POINTS} points (subsample)"));
    }
    if !(opts.perplexity > 0.0 && opts.perplexity < (n - 1) as f64) {
        return input_err(
            OP,
            format!("perplexity {} must lie in (0, n − 1) = (0, {}) for x [{n}, {d}]", opts.perplexity, n - 1),
        );
    }
    let eta = opts.learning_rate.unwrap_or((n as f64 / (4.0 * opts.early_exaggeration)).max(50.0));
    if !(eta > 0.0 && eta.is_finite()) {
        return input_err(OP, format!("learning rate {eta} must be positive and finite"));
    }
    let mut xf = Vec::with_capacity(x.len());
    for (idx, v) in x.iter().enumerate() {
        let v = v.to_f64();
        if !v.is_finite() {
            return input_err(OP, format!("x [{n}, {d}] holds {v} at row {}, column {}", idx / d, idx % d));
        }
        xf.push(v);
    }

    let p = joint_probabilities(&xf, n, d, opts.perplexity);
    let mut rng = Rng::new(opts.seed);
    // y ~ N(0, 10⁻⁴·I): standard deviation 10⁻².
    let mut y: Vec<f64> = (0..2 * n).map(|_| 1e-2 * rng.normal()).collect();
    let mut velocity = vec![0.0; 2 * n];
    let mut gains = vec![1.0; 2 * n];
    let mut grad = vec![0.0; 2 * n];
    for it in 0..opts.iterations {
        let exaggeration = if it < opts.exaggeration_iters { opts.early_exaggeration } else { 1.0 };
        let momentum = if it < opts.momentum_switch { opts.initial_momentum } else { opts.final_momentum };
        gradient(&p, &y, n, exaggeration, &mut grad);
        for k in 0..2 * n {
            // The velocity is a running sum of −η·gain·grad. If sign(grad) ≠ sign(velocity),
            // this gradient agrees with the direction of travel: grow the step. If they agree
            // in sign, the gradient flipped (we overshot): shrink it. Floored at 0.01.
            gains[k] = if (grad[k] > 0.0) != (velocity[k] > 0.0) { gains[k] + 0.2 } else { gains[k] * 0.8 }.max(0.01);
            velocity[k] = momentum * velocity[k] - eta * gains[k] * grad[k];
            y[k] += velocity[k];
        }
        // KL is invariant to translation; re-centring keeps the coordinates bounded.
        let (mx, my) = (0..n).fold((0.0, 0.0), |(a, b), i| (a + y[2 * i], b + y[2 * i + 1]));
        for i in 0..n {
            y[2 * i] -= mx / n as f64;
            y[2 * i + 1] -= my / n as f64;
        }
    }
    let kl = kl_divergence(&p, &y, n);
    Ok(TsneOutput { embedding: y, kl })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `per_cluster` points around each of `k` centres 10·e_c in `d` dims with N(0, 1) noise.
    fn clusters(k: usize, per_cluster: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = Rng::new(seed);
        let (mut x, mut label) = (Vec::new(), Vec::new());
        for c in 0..k {
            for _ in 0..per_cluster {
                x.extend((0..d).map(|j| (if j == c { 10.0 } else { 0.0 } + rng.normal()) as f32));
                label.push(c);
            }
        }
        (x, label)
    }

    #[test]
    fn three_gaussian_clusters_separate_in_2d() {
        let (x, label) = clusters(3, 30, 10, 1);
        let out = tsne(&x, 10, &TsneOptions::default()).unwrap();
        let y = &out.embedding;
        let n = label.len();
        assert_eq!(y.len(), 2 * n);
        // Every point's nearest 2-D neighbour comes from its own cluster.
        for i in 0..n {
            let nearest = (0..n).filter(|&j| j != i).min_by(|&a, &b| w(y, i, b).total_cmp(&w(y, i, a))).unwrap();
            assert_eq!(label[nearest], label[i], "point {i}");
        }
        // And clusters are apart: the smallest between-cluster distance exceeds the mean
        // within-cluster distance.
        let dist = |i: usize, j: usize| ((y[2 * i] - y[2 * j]).powi(2) + (y[2 * i + 1] - y[2 * j + 1]).powi(2)).sqrt();
        let (mut within, mut count, mut between) = (0.0, 0, f64::INFINITY);
        for i in 0..n {
            for j in i + 1..n {
                if label[i] == label[j] {
                    within += dist(i, j);
                    count += 1;
                } else {
                    between = between.min(dist(i, j));
                }
            }
        }
        assert!(between > within / count as f64, "between {between}, within {}", within / count as f64);
        assert!(out.kl.is_finite() && out.kl > 0.0);
    }

    #[test]
    fn calibration_hits_the_target_perplexity() {
        let mut rng = Rng::new(4);
        let dist: Vec<f64> = (0..200).map(|_| rng.uniform(0.0, 50.0)).collect();
        for &perp in &[5.0, 30.0, 120.0] {
            let (p, beta) = calibrate_row(&dist, 7, perp);
            assert_eq!(p[7], 0.0);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            // Recompute the perplexity from the returned row by the definition e^{−Σ p ln p}.
            let h: f64 = p.iter().filter(|&&v| v > 0.0).map(|&v| -v * v.ln()).sum();
            assert!((h.exp() - perp).abs() < 1e-3, "target {perp}, got {}", h.exp());
            // And the row is the Gaussian of that β: p_j / p_k = exp(−β(D_j − D_k)).
            let ratio = p[0] / p[1];
            assert!((ratio.ln() + beta * (dist[0] - dist[1])).abs() < 1e-9);
        }
    }

    #[test]
    fn joint_probabilities_are_symmetric_and_sum_to_one() {
        let (x, _) = clusters(2, 10, 3, 2);
        let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let p = joint_probabilities(&xf, 20, 3, 5.0);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        for i in 0..20 {
            assert_eq!(p[i * 20 + i], 0.0);
            for j in 0..20 {
                assert_eq!(p[i * 20 + j], p[j * 20 + i]);
            }
        }
    }

    #[test]
    fn gradient_matches_finite_differences_of_kl() {
        // C(y) = KL(P‖Q(y)); compare ∂C/∂y_k with (C(y + h e_k) − C(y − h e_k)) / 2h.
        let (x, _) = clusters(2, 6, 3, 3);
        let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let n = 12;
        let p = joint_probabilities(&xf, n, 3, 4.0);
        let mut rng = Rng::new(8);
        let y: Vec<f64> = (0..2 * n).map(|_| rng.normal()).collect();
        let mut grad = vec![0.0; 2 * n];
        gradient(&p, &y, n, 1.0, &mut grad);
        let h = 1e-6;
        for k in 0..2 * n {
            let (mut yp, mut ym) = (y.clone(), y.clone());
            yp[k] += h;
            ym[k] -= h;
            let fd = (kl_divergence(&p, &yp, n) - kl_divergence(&p, &ym, n)) / (2.0 * h);
            assert!((fd - grad[k]).abs() < 1e-6, "coordinate {k}: {fd} vs {}", grad[k]);
        }
    }

    #[test]
    fn same_seed_same_embedding_and_bad_inputs_are_rejected() {
        let (x, _) = clusters(3, 5, 4, 5);
        let opts = TsneOptions { perplexity: 4.0, iterations: 60, seed: 3, ..Default::default() };
        let a = tsne(&x, 4, &opts).unwrap();
        assert_eq!(a, tsne(&x, 4, &opts).unwrap());
        assert_ne!(a, tsne(&x, 4, &TsneOptions { seed: 4, ..opts.clone() }).unwrap());
        let err = tsne(&x, 4, &TsneOptions { perplexity: 14.0, ..opts.clone() }).unwrap_err();
        assert!(err.to_string().contains("[15, 4]"), "{err}");
        assert!(tsne(&x[..7], 4, &opts).is_err(), "ragged rows");
        let mut nan = x.clone();
        nan[9] = f32::NAN;
        assert!(tsne(&nan, 4, &opts).unwrap_err().to_string().contains("row 2, column 1"));
    }
}
