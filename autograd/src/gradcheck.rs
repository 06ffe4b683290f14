//! Finite-difference gradient checking.
//!
//! Method: run the function in f64, reduce its output to a scalar with fixed random weights
//! L = Σ wᵢ·yᵢ (so a backward that ignores or mis-routes its upstream gradient fails), and
//! compare every analytic ∂L/∂xⱼ with the central difference (L(x + εeⱼ) − L(x − εeⱼ)) / 2ε.
//!
//! Error bound: central differences have truncation error ε²·|L'''|/6 and rounding error
//! about u·|L|/ε (u = 2⁻⁵³ ≈ 1.1e-16). With ε = 1e-6 and quantities of order 1–100 that is
//! ≲ 1e-10 + 1e-8, well under the 1e-6 tolerance, so a real bug (errors of order 1) cannot
//! hide. The error reported is max_j |analytic_j − numeric_j| / max(max_j |numeric_j|, 1e-3):
//! relative to the gradient's scale, so components that are legitimately ~0 do not divide by ~0.

use tensor::{DType, Result, Rng, Tensor, TensorError};

use crate::graph::no_grad;
use crate::var::Var;

/// Result of one check: the worst relative error per input.
#[derive(Debug, Clone)]
pub struct GradcheckReport {
    /// For each input, in order: max_j |analytic_j − numeric_j| / max(max_j |numeric_j|, 1e-3)
    /// (0 for skipped inputs).
    pub max_rel_error: Vec<f64>,
}

impl GradcheckReport {
    /// The largest error over all inputs.
    pub fn worst(&self) -> f64 {
        self.max_rel_error.iter().cloned().fold(0.0, f64::max)
    }
}

/// Options: the finite-difference step, the tolerance, and which inputs to check.
#[derive(Clone, Debug)]
pub struct GradcheckOptions {
    /// Finite-difference step ε (default 1e-6).
    pub eps: f64,
    /// Largest accepted relative error (default 1e-6).
    pub tol: f64,
    /// Inputs that take part but whose gradient is not checked (e.g. an index tensor).
    pub skip: Vec<usize>,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions { eps: 1e-6, tol: 1e-6, skip: vec![] }
    }
}

/// Checks the analytic gradients of `f` at `inputs` (converted to f64) against central finite
/// differences; returns Err describing the worst element when any input's error exceeds `tol`.
pub fn gradcheck(
    f: impl Fn(&[Var]) -> Result<Var>,
    inputs: &[Tensor],
    opts: &GradcheckOptions,
) -> Result<GradcheckReport> {
    let inputs: Vec<Tensor> =
        inputs.iter().map(|t| t.to_dtype(DType::F64)?.contiguous_copy()).collect::<Result<_>>()?;
    let vars: Vec<Var> = inputs.iter().map(|t| Var::parameter(t.clone())).collect();
    let out = f(&vars)?;
    if out.dtype() != DType::F64 {
        return Err(TensorError::Invalid { op: "gradcheck", msg: "the function must compute in f64".into() });
    }
    let out_shape = out.shape();
    let mut rng = Rng::new(0x5EED);
    // Weights in [0.5, 1.5) with random signs: non-uniform, never zero.
    let w: Vec<f64> = (0..out_shape.iter().product::<usize>())
        .map(|_| rng.uniform(0.5, 1.5) * if rng.next_f64() < 0.5 { -1.0 } else { 1.0 })
        .collect();
    let weights = Tensor::from_vec(w, &out_shape)?;
    out.backward_with(weights.clone())?;

    let scalar_loss = |xs: &[Tensor]| -> Result<f64> {
        no_grad(|| {
            let vs: Vec<Var> = xs.iter().map(|t| Var::constant(t.clone())).collect();
            f(&vs)?.value().mul(&weights)?.sum_all()?.item()
        })
    };

    let mut report = GradcheckReport { max_rel_error: vec![] };
    for (i, v) in vars.iter().enumerate() {
        if opts.skip.contains(&i) {
            report.max_rel_error.push(0.0);
            continue;
        }
        let analytic = match v.grad() {
            Some(g) => g.to_vec_f64()?,
            None => vec![0.0; inputs[i].numel()],
        };
        let base = inputs[i].to_vec_f64()?;
        let mut numeric = vec![0.0; base.len()];
        for j in 0..base.len() {
            let probe = |delta: f64| -> Result<f64> {
                let mut p = base.clone();
                p[j] += delta;
                let mut xs = inputs.clone();
                xs[i] = Tensor::from_vec(p, inputs[i].shape())?;
                scalar_loss(&xs)
            };
            numeric[j] = (probe(opts.eps)? - probe(-opts.eps)?) / (2.0 * opts.eps);
        }
        let scale = numeric.iter().fold(1e-3f64, |m, x| m.max(x.abs()));
        let (mut worst, mut at) = (0.0f64, 0);
        for j in 0..base.len() {
            let e = (analytic[j] - numeric[j]).abs() / scale;
            if e > worst {
                worst = e;
                at = j;
            }
        }
        if worst > opts.tol || worst.is_nan() {
            return Err(TensorError::Invalid {
                op: "gradcheck",
                msg: format!(
                    "input {i} (shape {:?}): relative error {worst:.3e} > {:.1e} at element {at}: analytic {} vs numeric {}",
                    inputs[i].shape(),
                    opts.tol,
                    analytic[at],
                    numeric[at]
                ),
            });
        }
        report.max_rel_error.push(worst);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> Tensor {
        Tensor::from_vec(vec![0.3f64, -1.2, 2.0, 0.7], &[2, 2]).unwrap()
    }

    #[test]
    fn a_correct_backward_passes() {
        let report = gradcheck(|v| v[0].exp()?.mul(&v[0]), &[input()], &GradcheckOptions::default()).unwrap();
        assert!(report.worst() < 1e-7, "{report:?}");
    }

    #[test]
    fn a_backward_off_by_one_percent_is_caught() {
        // exp with a deliberately wrong derivative: 1.01·eˣ instead of eˣ.
        let wrong_exp = |x: &Var| -> Result<Var> {
            let out = x.value().exp()?;
            let y = out.clone();
            Ok(Var::from_op("wrong_exp", out, &[x], move |g| Ok(vec![Some(g.mul(&y)?.mul_scalar(1.01)?)])))
        };
        let err = gradcheck(|v| wrong_exp(&v[0]), &[input()], &GradcheckOptions::default()).unwrap_err();
        assert!(err.to_string().contains("relative error"), "{err}");
    }

    #[test]
    fn a_backward_that_ignores_the_upstream_gradient_is_caught() {
        // Returns eˣ instead of g·eˣ: only the random output weights expose it.
        let lazy_exp = |x: &Var| -> Result<Var> {
            let out = x.value().exp()?;
            let y = out.clone();
            Ok(Var::from_op("lazy_exp", out, &[x], move |_g| Ok(vec![Some(y.clone())])))
        };
        assert!(gradcheck(|v| lazy_exp(&v[0]), &[input()], &GradcheckOptions::default()).is_err());
    }
}
