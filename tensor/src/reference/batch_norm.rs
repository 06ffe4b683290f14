//! Batch normalisation over x viewed as [N, C, S], by definition: statistics per channel over
//! its m = N·S elements.

use crate::descriptors::BatchNormGeometry;

/// Index of x[n, c, s].
fn at(d: BatchNormGeometry, n: usize, c: usize, s: usize) -> usize {
    (n * d.c + c) * d.s + s
}

/// The values of channel c.
fn channel(x: &[f64], d: BatchNormGeometry, c: usize) -> Vec<f64> {
    (0..d.n).flat_map(|n| (0..d.s).map(move |s| at(d, n, c, s))).map(|i| x[i]).collect()
}

/// Training forward: mean_c, var_c = Σ(x − mean)²/m (biased), x̂ = (x − mean)/√(var + eps),
/// y = γ·x̂ + β. Returns y and, per channel, (mean, 1/√(var + eps), var·m/(m − 1)).
pub fn train_forward(
    x: &[f64],
    d: BatchNormGeometry,
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<(f64, f64, f64)>) {
    let m = d.m() as f64;
    let mut y = vec![0.0; x.len()];
    let mut stats = Vec::new();
    for c in 0..d.c {
        let v = channel(x, d, c);
        let mean = v.iter().sum::<f64>() / m;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / m;
        let inv_std = 1.0 / (var + eps).sqrt();
        for n in 0..d.n {
            for s in 0..d.s {
                let i = at(d, n, c, s);
                y[i] = gamma[c] * (x[i] - mean) * inv_std + beta[c];
            }
        }
        stats.push((mean, inv_std, var * m / (m - 1.0)));
    }
    (y, stats)
}

/// Training backward from the forward's saved per-channel mean and 1/√(var + eps) (the batch
/// statistics depend on x):
///   dβ = Σ dy,  dγ = Σ dy·x̂,  dx = γ/√(var + eps) · (dy − dβ/m − x̂·dγ/m).
pub fn train_backward(
    dy: &[f64],
    x: &[f64],
    d: BatchNormGeometry,
    gamma: &[f64],
    [mean, inv_std]: [&[f64]; 2],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let m = d.m() as f64;
    let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; x.len()], vec![0.0; d.c], vec![0.0; d.c]);
    for c in 0..d.c {
        let idx: Vec<usize> = (0..d.n).flat_map(|n| (0..d.s).map(move |s| at(d, n, c, s))).collect();
        for &i in &idx {
            dbeta[c] += dy[i];
            dgamma[c] += dy[i] * (x[i] - mean[c]) * inv_std[c];
        }
        for &i in &idx {
            let x_hat = (x[i] - mean[c]) * inv_std[c];
            dx[i] = gamma[c] * inv_std[c] * (dy[i] - dbeta[c] / m - x_hat * dgamma[c] / m);
        }
    }
    (dx, dgamma, dbeta)
}

/// Eval forward with running statistics: y = γ·(x − running_mean)/√(running_var + eps) + β.
pub fn eval_forward(
    x: &[f64],
    d: BatchNormGeometry,
    mean: &[f64],
    var: &[f64],
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let c = (i / d.s) % d.c;
            gamma[c] * (x[i] - mean[c]) / (var[c] + eps).sqrt() + beta[c]
        })
        .collect()
}

/// Eval backward: the forward is affine in x with constant statistics, so
/// dx = dy·γ/√(running_var + eps), dγ = Σ dy·x̂, dβ = Σ dy.
pub fn eval_backward(
    dy: &[f64],
    x: &[f64],
    d: BatchNormGeometry,
    [mean, var]: [&[f64]; 2],
    gamma: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; x.len()], vec![0.0; d.c], vec![0.0; d.c]);
    for i in 0..x.len() {
        let c = (i / d.s) % d.c;
        let inv_std = 1.0 / (var[c] + eps).sqrt();
        dx[i] = dy[i] * gamma[c] * inv_std;
        dgamma[c] += dy[i] * (x[i] - mean[c]) * inv_std;
        dbeta[c] += dy[i];
    }
    (dx, dgamma, dbeta)
}

/// The running statistic after one batch: running·(1 − momentum) + batch·momentum.
pub fn update_running(running: &[f64], batch: &[f64], momentum: f64) -> Vec<f64> {
    running.iter().zip(batch).map(|(r, b)| r * (1.0 - momentum) + b * momentum).collect()
}
