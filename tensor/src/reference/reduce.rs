//! Reductions over the middle axis of an [outer, r, inner] view, by definition.

use crate::descriptors::ReduceOp;

/// out[o, i] = op over j of x[o, j, i].
// x: [outer, r, inner] → [outer, inner]
pub fn reduce(x: &[f64], [outer, r, inner]: [usize; 3], op: ReduceOp) -> Vec<f64> {
    let mut out = Vec::new();
    for o in 0..outer {
        for i in 0..inner {
            let v: Vec<f64> = (0..r).map(|j| x[(o * r + j) * inner + i]).collect();
            let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
            let first = |target: f64| v.iter().position(|&x| x == target).unwrap_or(0) as f64;
            out.push(match op {
                ReduceOp::Sum => v.iter().sum(),
                ReduceOp::Mean => v.iter().sum::<f64>() / r as f64,
                ReduceOp::Max => max,
                ReduceOp::Min => min,
                ReduceOp::LogSumExp => max + v.iter().map(|x| (x - max).exp()).sum::<f64>().ln(),
                ReduceOp::ArgMax => first(max),
                ReduceOp::ArgMin => first(min),
            });
        }
    }
    out
}

/// out[o, i] = Σ_j (x[o, j, i] − mean)² / (r − correction), mean over j (correction 1: unbiased).
// x: [outer, r, inner] → [outer, inner]
pub fn variance(x: &[f64], [outer, r, inner]: [usize; 3], correction: usize) -> Vec<f64> {
    let mean = reduce(x, [outer, r, inner], ReduceOp::Mean);
    let mut out = vec![0.0; outer * inner];
    for o in 0..outer {
        for j in 0..r {
            for i in 0..inner {
                let d = x[(o * r + j) * inner + i] - mean[o * inner + i];
                out[o * inner + i] += d * d / (r - correction) as f64;
            }
        }
    }
    out
}
