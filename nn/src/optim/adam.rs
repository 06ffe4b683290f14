//! Adam and AdamW, exactly as `torch.optim.Adam` / `AdamW` (amsgrad off):
//! m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g², m̂ = m/(1 − β1ᵗ), v̂ = v/(1 − β2ᵗ),
//! p ← p − lr·m̂/(√v̂ + eps). Adam's weight decay adds wd·p to g first; AdamW instead
//! multiplies p by (1 − lr·wd) before the update. The step count t is kept per parameter
//! and advances only when that parameter takes a step.

use std::collections::BTreeMap;

use autograd::Var;
use tensor::ops::optim::{adam_update, adam_update_unless_flagged, AdamHyper};
use tensor::ops::packed::zeros_packed_like;
use tensor::Tensor;

use super::{
    after_packed_attempt, count_tensor, count_value, ensure_settled, host_flag, index_by_name, non_negative,
    packed_state, packed_step, parse_state_name, settled, state_like_param, Optimizer, OptimizerStateTensor, Unsettled,
};
use crate::error::{config_err, Result, StateMismatch};
use crate::module::BufferKind;

/// Hyper-parameters of [`Adam`] (and AdamW).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay rate of the first-moment estimate, in [0, 1).
    pub beta1: f64,
    /// Decay rate of the second-moment estimate, in [0, 1).
    pub beta2: f64,
    /// Added to √v̂ in the denominator.
    pub eps: f64,
    /// Weight decay: an L2 term for Adam, direct shrinking for AdamW.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    /// PyTorch's Adam defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay (the
    /// values are defined once, in the kernel's [`AdamHyper::default`]).
    fn default() -> Self {
        let h = AdamHyper::default();
        AdamConfig { lr: h.lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weight_decay: h.weight_decay }
    }
}

impl AdamConfig {
    /// The defaults with learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        AdamConfig { lr, ..AdamConfig::default() }
    }

    /// Sets both moment decay rates.
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// Sets the denominator's epsilon.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Sets the weight decay.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }
}

const EXP_AVG: &str = "exp_avg";
const EXP_AVG_SQ: &str = "exp_avg_sq";
const STEP: &str = "step";

/// The per-parameter state: step count t and the two moment estimates, shaped like the parameter.
#[derive(Clone, Debug)]
struct AdamState {
    step: u64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// Adam or AdamW (PyTorch's semantics): one fused kernel per parameter, or one for all of them
/// when they are packed on a GPU (see the module docs of [`crate::optim`]).
pub struct Adam {
    params: Vec<(String, Var)>,
    /// The hyper-parameters (the learning rate changes with [`Optimizer::set_learning_rate`]).
    pub config: AdamConfig,
    /// AdamW when true.
    decoupled_weight_decay: bool,
    state: Vec<Option<AdamState>>,
    /// The last step, while its flag is unread ([`Optimizer::step_unless_non_finite`]).
    unsettled: Option<Unsettled>,
}

impl Adam {
    /// Adam: weight decay is an L2 term added to the gradient.
    pub fn new(params: Vec<(String, Var)>, config: AdamConfig) -> Result<Adam> {
        Adam::build(params, config, false)
    }

    /// AdamW: weight decay shrinks the weights directly, p ← p·(1 − lr·wd).
    pub fn adamw(params: Vec<(String, Var)>, config: AdamConfig) -> Result<Adam> {
        Adam::build(params, config, true)
    }

    fn build(params: Vec<(String, Var)>, config: AdamConfig, decoupled_weight_decay: bool) -> Result<Adam> {
        let c = config;
        let beta_ok = |b: f64| (0.0..1.0).contains(&b);
        let rates_ok = [c.lr, c.eps, c.weight_decay].into_iter().all(non_negative);
        if !rates_ok || !beta_ok(c.beta1) || !beta_ok(c.beta2) {
            return config_err("Adam", format!("need lr, eps, weight decay ≥ 0 and betas in [0, 1), got {c:?}"));
        }
        let n = params.len();
        Ok(Adam { params, config, decoupled_weight_decay, state: vec![None; n], unsettled: None })
    }

    /// True for AdamW (decoupled weight decay).
    pub fn is_adamw(&self) -> bool {
        self.decoupled_weight_decay
    }

    /// The kernel's hyper-parameters for step `step` (counted from 1).
    fn hyper(&self, step: u64) -> AdamHyper {
        let c = self.config;
        AdamHyper {
            lr: c.lr,
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            weight_decay: c.weight_decay,
            decoupled_weight_decay: self.decoupled_weight_decay,
            step,
        }
    }

    /// The whole step as one launch per gradient pack ([`super::packed_step`]), guarded by
    /// the device's finiteness flag, when every parameter is on the GPU with a gradient and
    /// all have taken the same number of steps (their bias corrections are then one value).
    /// Returns the flag and whether this was the first step, or `None`, having changed nothing,
    /// when that is not the case.
    fn step_packed(&mut self, also: &[&Tensor]) -> Result<Option<(Tensor, bool)>> {
        let mut steps = self.state.iter().map(|s| s.as_ref().map(|s| s.step));
        let first = steps.next().flatten();
        if !steps.all(|s| s == first) {
            return Ok(None);
        }
        let Some(mut packed) = packed_step(&self.params, also)? else { return Ok(None) };
        if first.is_none() {
            let values: Vec<&Tensor> = packed.values.iter().collect();
            let (m, v) = (zeros_packed_like(&values)?, zeros_packed_like(&values)?);
            for ((state, exp_avg), exp_avg_sq) in self.state.iter_mut().zip(m).zip(v) {
                *state = Some(AdamState { step: 0, exp_avg, exp_avg_sq });
            }
        }
        let h = self.hyper(first.unwrap_or(0) + 1);
        let states: Vec<&mut AdamState> = self.state.iter_mut().flatten().collect();
        let (mut m, mut v): (Vec<&mut Tensor>, Vec<&mut Tensor>) = states
            .into_iter()
            .map(|s| {
                s.step += 1;
                (&mut s.exp_avg, &mut s.exp_avg_sq)
            })
            .unzip();
        let m_runs = packed_state(&mut m, &packed.runs)?;
        let v_runs = packed_state(&mut v, &packed.runs)?;
        for ((run, mut m_run), mut v_run) in packed.runs.iter_mut().zip(m_runs).zip(v_runs) {
            adam_update_unless_flagged(&mut run.params, &run.grads, &mut m_run, &mut v_run, &h, &packed.non_finite)?;
        }
        Ok(Some((packed.non_finite, first.is_none())))
    }
}

impl Optimizer for Adam {
    fn step_unless_non_finite(&mut self, also: &[&Tensor]) -> Result<Tensor> {
        ensure_settled(self.unsettled, "Adam")?;
        let packed = self.step_packed(also)?;
        if let Some(flag) = after_packed_attempt(&mut self.unsettled, &self.params, also, packed)? {
            return Ok(flag);
        }
        let hyper = self.hyper(0);
        for ((_, p), state) in self.params.iter().zip(self.state.iter_mut()) {
            if !p.requires_grad() {
                continue;
            }
            let Some(g) = p.grad() else { continue };
            if state.is_none() {
                let zeros = p.value().zeros_like()?;
                *state = Some(AdamState { step: 0, exp_avg: zeros.clone(), exp_avg_sq: zeros });
            }
            let Some(s) = state.as_mut() else { continue };
            s.step += 1;
            let h = AdamHyper { step: s.step, ..hyper };
            p.update_value(|v| adam_update(v, &g, &mut s.exp_avg, &mut s.exp_avg_sq, &h))?;
        }
        host_flag(false)
    }

    fn settle_step(&mut self, non_finite: bool) -> Result<()> {
        let unsettled = self.unsettled.take();
        if non_finite && matches!(unsettled, Some(Unsettled::Guarded { .. })) {
            // The update was vetoed on the device: the moments are as they were, so only the
            // step counts go back (a state whose count returns to 0 was made for this step).
            for state in &mut self.state {
                if let Some(s) = state {
                    s.step -= 1;
                    if s.step == 0 {
                        *state = None;
                    }
                }
            }
        }
        settled(&self.params, non_finite)
    }

    fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn parameters(&self) -> &[(String, Var)] {
        &self.params
    }

    fn state_tensors(&self) -> Vec<OptimizerStateTensor> {
        let mut out = vec![];
        for ((name, _), s) in self.params.iter().zip(&self.state) {
            let Some(s) = s else { continue };
            let named = |kind: &str, value: Tensor, k: BufferKind| OptimizerStateTensor {
                name: format!("{kind}.{name}"),
                value,
                kind: k,
            };
            out.push(named(STEP, count_tensor(s.step), BufferKind::Count));
            out.push(named(EXP_AVG, s.exp_avg.clone(), BufferKind::Float));
            out.push(named(EXP_AVG_SQ, s.exp_avg_sq.clone(), BufferKind::Float));
        }
        out
    }

    fn load_state_tensors(&mut self, tensors: &BTreeMap<String, Tensor>) -> std::result::Result<(), StateMismatch> {
        let index = index_by_name(&self.params);
        let mut mismatch = StateMismatch::default();
        // Per parameter: (step, exp_avg, exp_avg_sq) as found.
        let mut found: Vec<(Option<u64>, Option<Tensor>, Option<Tensor>)> = vec![(None, None, None); self.params.len()];
        for (name, t) in tensors {
            let Some((kind, i)) = parse_state_name(name, &[STEP, EXP_AVG, EXP_AVG_SQ], &index) else {
                mismatch.unexpected.push(name.clone());
                continue;
            };
            let param = &self.params[i].1;
            match kind {
                STEP => match count_value(t) {
                    Some(n) => found[i].0 = Some(n),
                    None => mismatch.unexpected.push(format!("{name} (not a step count)")),
                },
                EXP_AVG => found[i].1 = state_like_param(name, t, param, &mut mismatch),
                _ => found[i].2 = state_like_param(name, t, param, &mut mismatch),
            }
        }
        let mut state = vec![None; self.params.len()];
        for (i, f) in found.into_iter().enumerate() {
            let name = &self.params[i].0;
            match f {
                (Some(step), Some(exp_avg), Some(exp_avg_sq)) => {
                    state[i] = Some(AdamState { step, exp_avg, exp_avg_sq })
                }
                // A parameter that never took a step has no state at all.
                (None, None, None) => {}
                (step, m, v) => {
                    for (kind, present) in [(STEP, step.is_some()), (EXP_AVG, m.is_some()), (EXP_AVG_SQ, v.is_some())] {
                        let full = format!("{kind}.{name}");
                        // A misshaped tensor is already reported as such, not also as missing.
                        if !present && !mismatch.shape_mismatches.iter().any(|s| s.name == full) {
                            mismatch.missing.push(full);
                        }
                    }
                }
            }
        }
        if !mismatch.is_empty() {
            return Err(mismatch);
        }
        self.state = state;
        Ok(())
    }
}
