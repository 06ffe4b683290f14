//! Batch normalisation on vars, in training mode (batch statistics, returned so the layer can
//! update its running statistics) and evaluation mode (given running statistics).

use tensor::ops::batch_norm::{
    batch_norm_eval as batch_norm_eval_forward, batch_norm_eval_backward, batch_norm_train as batch_norm_train_forward,
    batch_norm_train_backward,
};
use tensor::{Result, Tensor};

use crate::ops::elementwise::grad_if;
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

/// x: [N, C, H, W] or [N, C]; gamma, beta: \[C\]. y = (x − mean)/√(var + eps)·γ + β with the
/// batch's per-channel mean and biased variance.
pub fn batch_norm_train(x: &Var, gamma: Option<&Var>, beta: Option<&Var>, eps: f64) -> Result<(Var, BatchStats)> {
    let xv = x.value();
    let gv = gamma.map(|g| g.value());
    let out = batch_norm_train_forward(&xv, gv.as_ref(), beta.map(|b| b.value()).as_ref(), eps)?;
    let stats = BatchStats { mean: out.mean.clone(), var_unbiased: out.var_unbiased.clone() };
    let (mean, inv_std) = (out.mean, out.inv_std);
    let need = [x.requires_grad(), gamma.is_some_and(|g| g.requires_grad()), beta.is_some_and(|b| b.requires_grad())];
    let (has_gamma, has_beta) = (gamma.is_some(), beta.is_some());
    // The mean and variance depend on x too, which is why dx is not simply dy·γ·inv_std:
    // see tensor::cpu::batch_norm for the derivation.
    let y = Var::from_op("batch_norm_train", out.y, &inputs(x, gamma, beta), move |g| {
        let grads = batch_norm_train_backward(g, &xv, &mean, &inv_std, gv.as_ref())?;
        let mut v = vec![grad_if(need[0], || Ok(grads.dx))?];
        if has_gamma {
            v.push(grad_if(need[1], || Ok(grads.dgamma.clone()))?);
        }
        if has_beta {
            v.push(grad_if(need[2], || Ok(grads.dbeta.clone()))?);
        }
        Ok(v)
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
    let need = [x.requires_grad(), gamma.is_some_and(|g| g.requires_grad()), beta.is_some_and(|b| b.requires_grad())];
    let (has_gamma, has_beta) = (gamma.is_some(), beta.is_some());
    Ok(Var::from_op("batch_norm_eval", out, &inputs(x, gamma, beta), move |g| {
        let grads = batch_norm_eval_backward(g, &xv, &rm, &rv, gv.as_ref(), eps)?;
        let mut v = vec![grad_if(need[0], || Ok(grads.dx))?];
        if has_gamma {
            v.push(grad_if(need[1], || Ok(grads.dgamma.clone()))?);
        }
        if has_beta {
            v.push(grad_if(need[2], || Ok(grads.dbeta.clone()))?);
        }
        Ok(v)
    }))
}
