//! Batch normalisation on vars, in training mode (batch statistics, returned so the layer can
//! update its running statistics) and evaluation mode (given running statistics).

use tensor::ops::batch_norm::{
    batch_norm_eval as batch_norm_eval_forward, batch_norm_eval_backward, batch_norm_train as batch_norm_train_forward,
    batch_norm_train_backward, BatchNormGrads,
};
use tensor::{Result, Tensor};

use crate::var::Var;

/// The batch statistics of a training-mode forward, per channel (\[C\]), for running averages.
#[derive(Clone, Debug)]
pub struct BatchStats {
    /// Per-channel batch mean, `[C]`.
    pub mean: Tensor,
    /// Unbiased variance (m/(m − 1) times the biased one), as PyTorch folds into running_var.
    pub var_unbiased: Tensor,
}

fn inputs<'a>(x: &'a Var, gamma: Option<&'a Var>, beta: Option<&'a Var>) -> Vec<&'a Var> {
    let mut v = vec![x];
    v.extend(gamma);
    v.extend(beta);
    v
}

/// Which of x, γ, β are inputs of the op and need a gradient, noted at the forward.
#[derive(Clone, Copy)]
struct GradsWanted {
    x: bool,
    /// `None` when γ is not an input; else whether it requires a gradient.
    gamma: Option<bool>,
    beta: Option<bool>,
}

impl GradsWanted {
    fn of(x: &Var, gamma: Option<&Var>, beta: Option<&Var>) -> GradsWanted {
        GradsWanted {
            x: x.requires_grad(),
            gamma: gamma.map(|g| g.requires_grad()),
            beta: beta.map(|b| b.requires_grad()),
        }
    }

    /// The gradients in the order of [`inputs`]: one per input, `None` where none is needed.
    fn select(self, grads: BatchNormGrads) -> Vec<Option<Tensor>> {
        let mut v = vec![self.x.then_some(grads.dx)];
        v.extend(self.gamma.map(|need| need.then_some(grads.dgamma)));
        v.extend(self.beta.map(|need| need.then_some(grads.dbeta)));
        v
    }
}

/// x: [N, C, H, W] or [N, C]; gamma, beta: \[C\]. y = (x − mean)/√(var + eps)·γ + β with the
/// batch's per-channel mean and biased variance.
pub fn batch_norm_train(x: &Var, gamma: Option<&Var>, beta: Option<&Var>, eps: f64) -> Result<(Var, BatchStats)> {
    let xv = x.value();
    let gv = gamma.map(|g| g.value());
    let out = batch_norm_train_forward(&xv, gv.as_ref(), beta.map(|b| b.value()).as_ref(), eps)?;
    let stats = BatchStats { mean: out.mean.clone(), var_unbiased: out.var_unbiased.clone() };
    let (mean, inv_std) = (out.mean, out.inv_std);
    let wanted = GradsWanted::of(x, gamma, beta);
    // The mean and variance depend on x too, which is why dx is not simply dy·γ·inv_std:
    // see tensor::cpu::batch_norm for the derivation.
    let y = Var::from_op("batch_norm_train", out.y, &inputs(x, gamma, beta), move |g| {
        Ok(wanted.select(batch_norm_train_backward(g, &xv, &mean, &inv_std, gv.as_ref())?))
    });
    Ok((y, stats))
}

/// Evaluation mode: y = (x − running_mean)/√(running_var + eps)·γ + β, an affine map of x.
pub fn batch_norm_eval(
    x: &Var,
    running_mean: &Tensor,
    running_var: &Tensor,
    gamma: Option<&Var>,
    beta: Option<&Var>,
    eps: f64,
) -> Result<Var> {
    let xv = x.value();
    let gv = gamma.map(|g| g.value());
    let out =
        batch_norm_eval_forward(&xv, running_mean, running_var, gv.as_ref(), beta.map(|b| b.value()).as_ref(), eps)?;
    let (rm, rv) = (running_mean.clone(), running_var.clone());
    let wanted = GradsWanted::of(x, gamma, beta);
    Ok(Var::from_op("batch_norm_eval", out, &inputs(x, gamma, beta), move |g| {
        Ok(wanted.select(batch_norm_eval_backward(g, &xv, &rm, &rv, gv.as_ref(), eps)?))
    }))
}
