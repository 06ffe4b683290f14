//! Optimizers (SGD, Adam, AdamW), gradient clipping, learning-rate schedules and early
//! stopping.
//!
//! An optimizer holds the model's parameters by name (`model.named_parameters()`); `step()`
//! updates every parameter that requires a gradient and has one, in place, with ONE fused
//! kernel per parameter (`tensor::ops::optim`). Its state (step counts, moment or momentum
//! buffers) is exported and imported by parameter name for training checkpoints.

pub mod adam;
pub mod early_stopping;
pub mod schedule;
pub mod sgd;

pub use adam::{Adam, AdamConfig};
pub use early_stopping::{EarlyStopping, EarlyStoppingDecision, MetricGoal};
pub use schedule::LrSchedule;
pub use sgd::{Sgd, SgdConfig};

use std::collections::BTreeMap;

use autograd::Var;
use tensor::{DType, Tensor};

use crate::error::{Error, Result, ShapeMismatch, StateMismatch};
use crate::module::BufferKind;

/// One tensor of optimizer state, named `<kind>.<parameter name>` (`exp_avg.fc.weight`).
#[derive(Clone, Debug)]
pub struct OptimizerStateTensor {
    /// `<kind>.<parameter name>`.
    pub name: String,
    /// The state tensor.
    pub value: Tensor,
    /// `Count` for step counters (saved as I64), `Float` for buffers.
    pub kind: BufferKind,
}

/// What every optimizer offers a training loop and a checkpoint.
pub trait Optimizer {
    /// Updates every parameter that requires a gradient and has one; others are skipped.
    fn step(&mut self) -> Result<()>;

    /// Clears the gradients of all the optimizer's parameters.
    fn zero_grad(&self) {
        self.parameters().iter().for_each(|(_, p)| p.zero_grad());
    }

    /// The current learning rate.
    fn learning_rate(&self) -> f64;

    /// Sets the learning rate (schedules call this each step or epoch).
    fn set_learning_rate(&mut self, lr: f64);

    /// The named parameters this optimizer updates.
    fn parameters(&self) -> &[(String, Var)];

    /// All state, named by kind and parameter name.
    fn state_tensors(&self) -> Vec<OptimizerStateTensor>;

    /// Restores state exported by `state_tensors` (converted to each parameter's dtype).
    /// Every tensor must name a parameter of this optimizer with that parameter's shape.
    fn load_state_tensors(&mut self, tensors: &BTreeMap<String, Tensor>) -> std::result::Result<(), StateMismatch>;
}

/// Refuses a step whose gradients hold a NaN or an infinity, before anything changes: such a
/// step would write non-finite values into the parameters, after which every loss is NaN and
/// the last checkpoint is the only good model left. The error names the first such parameter.
/// One read pass per gradient on the CPU; on the GPU one launch per gradient and a single
/// read-back for all of them (`tensor::ops::reduce::all_finite_each`).
pub fn check_gradients_finite(params: &[(String, Var)]) -> Result<()> {
    let grads: Vec<(&String, Tensor)> =
        params.iter().filter(|(_, p)| p.requires_grad()).filter_map(|(n, p)| p.grad().map(|g| (n, g))).collect();
    let tensors: Vec<&Tensor> = grads.iter().map(|(_, g)| g).collect();
    let finite = tensor::ops::reduce::all_finite_each(&tensors)?;
    match grads.iter().zip(finite).find(|(_, finite)| !finite) {
        Some(((name, _), _)) => Err(Error::NonFiniteGradient { parameter: name.to_string() }),
        None => Ok(()),
    }
}

/// Scales the gradients of `params` so their global L2 norm is at most `max_norm`, like
/// `torch.nn.utils.clip_grad_norm_` (coefficient max_norm/(norm + 1e-6), applied only when
/// below 1). Returns the norm before clipping. Parameters without a gradient are ignored.
pub fn clip_grad_norm(params: &[Var], max_norm: f64) -> Result<f64> {
    let grads: Vec<(&Var, Tensor)> = params.iter().filter_map(|p| p.grad().map(|g| (p, g))).collect();
    let mut sum_sq = 0.0;
    for (_, g) in &grads {
        sum_sq += g.to_vec_f64()?.iter().map(|x| x * x).sum::<f64>();
    }
    let norm = sum_sq.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for (p, g) in grads {
            p.set_grad(Some(g.mul_scalar(coef)?));
        }
    }
    Ok(norm)
}

/// x ≥ 0 (false for NaN): the check on rates and coefficients.
fn non_negative(x: f64) -> bool {
    x >= 0.0
}

/// Index of each parameter by name, for loading state.
fn index_by_name(params: &[(String, Var)]) -> BTreeMap<&str, usize> {
    params.iter().enumerate().map(|(i, (n, _))| (n.as_str(), i)).collect()
}

/// Takes `<kind>.<param>` apart into (kind, param index), if `kind` is one of `kinds` and
/// the parameter exists.
fn parse_state_name<'a>(name: &'a str, kinds: &[&'a str], index: &BTreeMap<&str, usize>) -> Option<(&'a str, usize)> {
    let (kind, param) = name.split_once('.')?;
    let kind = kinds.iter().find(|k| **k == kind)?;
    index.get(param).map(|&i| (*kind, i))
}

/// A state tensor converted to the parameter's dtype, or a shape mismatch recorded.
fn state_like_param(name: &str, t: &Tensor, param: &Var, mismatch: &mut StateMismatch) -> Option<Tensor> {
    let model = param.shape();
    if t.shape() != model.as_slice() {
        mismatch.shape_mismatches.push(ShapeMismatch { name: name.to_string(), file: t.shape().to_vec(), model });
        return None;
    }
    // The state lives where its parameter lives (a checkpoint is read onto the CPU; a model
    // may since have moved to the GPU).
    match t.to_dtype(param.dtype()).and_then(|t| t.contiguous_copy()).and_then(|t| t.to_device(&param.value().device()))
    {
        Ok(state) => Some(state),
        Err(e) => {
            mismatch.unexpected.push(format!("{name} (cannot be placed on the parameter's device: {e})"));
            None
        }
    }
}

/// A step counter read back from a state tensor (any float or integer-valued tensor of one element).
fn count_value(t: &Tensor) -> Option<u64> {
    let v = t.item().ok()?;
    (v >= 0.0 && v.fract() == 0.0).then_some(v as u64)
}

fn count_tensor(n: u64) -> Tensor {
    Tensor::full(&[], n as f64, DType::F64)
}
