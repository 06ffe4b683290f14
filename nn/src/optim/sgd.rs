//! Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight
//! decay, exactly as `torch.optim.SGD`:
//! d = g + wd·p; buf = d on the first step, else momentum·buf + (1 − dampening)·d;
//! d = d + momentum·buf (Nesterov) or buf; p ← p − lr·d.

use std::collections::BTreeMap;

use autograd::Var;
use tensor::ops::optim::{sgd_update, sgd_update_unless_flagged, SgdHyper};
use tensor::ops::packed::zeros_packed_like;
use tensor::Tensor;

use super::{
    after_packed_attempt, ensure_settled, host_flag, index_by_name, non_negative, packed_state, packed_step,
    parse_state_name, settled, state_like_param, Optimizer, OptimizerStateTensor, Unsettled,
};
use crate::error::{config_err, Result, StateMismatch};
use crate::module::BufferKind;

/// Hyper-parameters of [`Sgd`] (PyTorch's `torch.optim.SGD`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0: plain SGD).
    pub momentum: f64,
    /// Dampening of the gradient added to the momentum buffer.
    pub dampening: f64,
    /// L2 penalty: wd·p is added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum (needs momentum > 0 and dampening 0).
    pub nesterov: bool,
}

impl SgdConfig {
    /// Plain SGD: no momentum, no weight decay.
    pub fn new(lr: f64) -> Self {
        SgdConfig { lr, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, nesterov: false }
    }

    /// Sets the momentum factor.
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets the dampening.
    pub fn dampening(mut self, dampening: f64) -> Self {
        self.dampening = dampening;
        self
    }

    /// Sets the L2 weight decay.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Turns Nesterov momentum on or off.
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }
}

const MOMENTUM_BUFFER: &str = "momentum_buffer";

/// Stochastic gradient descent with optional momentum, dampening, weight decay and Nesterov.
pub struct Sgd {
    params: Vec<(String, Var)>,
    /// The hyper-parameters (the learning rate changes with [`Optimizer::set_learning_rate`]).
    pub config: SgdConfig,
    /// One buffer per parameter once it has taken a step with momentum.
    momentum_buffers: Vec<Option<Tensor>>,
    /// The last step, while its flag is unread ([`Optimizer::step_unless_non_finite`]).
    unsettled: Option<Unsettled>,
}

impl Sgd {
    /// Errors on negative rates, or Nesterov without momentum or with dampening.
    pub fn new(params: Vec<(String, Var)>, config: SgdConfig) -> Result<Sgd> {
        let c = config;
        if ![c.lr, c.momentum, c.weight_decay].into_iter().all(non_negative) {
            return config_err("SGD", format!("lr, momentum and weight decay must be ≥ 0, got {c:?}"));
        }
        if c.nesterov && (c.momentum <= 0.0 || c.dampening != 0.0) {
            return config_err("SGD", "Nesterov momentum needs momentum > 0 and dampening 0");
        }
        let n = params.len();
        Ok(Sgd { params, config, momentum_buffers: vec![None; n], unsettled: None })
    }

    /// The kernel's hyper-parameters; `first_step` sets the momentum buffer to the gradient.
    fn hyper(&self, first_step: bool) -> SgdHyper {
        let c = self.config;
        SgdHyper {
            lr: c.lr,
            momentum: c.momentum,
            dampening: c.dampening,
            weight_decay: c.weight_decay,
            nesterov: c.nesterov,
            first_step,
        }
    }

    /// The whole step as one launch per gradient pack ([`super::packed_step`]), guarded by
    /// the device's finiteness flag, when every parameter is on the GPU with a gradient and
    /// either none or all have a momentum buffer. Returns the flag and whether the momentum
    /// buffers were made for this step, or `None`, having changed nothing, when that is not
    /// the case.
    fn step_packed(&mut self, also: &[&Tensor]) -> Result<Option<(Tensor, bool)>> {
        let first_step = self.momentum_buffers.iter().all(Option::is_none);
        if !first_step && self.momentum_buffers.iter().any(Option::is_none) {
            return Ok(None);
        }
        let Some(mut packed) = packed_step(&self.params, also)? else { return Ok(None) };
        let h = self.hyper(first_step);
        let flag = &packed.non_finite;
        if self.config.momentum == 0.0 {
            for run in &mut packed.runs {
                sgd_update_unless_flagged(&mut run.params, &run.grads, None, &h, flag)?;
            }
            return Ok(Some((packed.non_finite, false)));
        }
        if first_step {
            let values: Vec<&Tensor> = packed.values.iter().collect();
            for (buf, zeros) in self.momentum_buffers.iter_mut().zip(zeros_packed_like(&values)?) {
                *buf = Some(zeros);
            }
        }
        let mut buffers: Vec<&mut Tensor> = self.momentum_buffers.iter_mut().flatten().collect();
        let momentum_runs = packed_state(&mut buffers, &packed.runs)?;
        for (run, mut momentum) in packed.runs.iter_mut().zip(momentum_runs) {
            sgd_update_unless_flagged(&mut run.params, &run.grads, Some(&mut momentum), &h, flag)?;
        }
        Ok(Some((packed.non_finite, first_step)))
    }
}

impl Optimizer for Sgd {
    fn step_unless_non_finite(&mut self, also: &[&Tensor]) -> Result<Tensor> {
        ensure_settled(self.unsettled, "SGD")?;
        let packed = self.step_packed(also)?;
        if let Some(flag) = after_packed_attempt(&mut self.unsettled, &self.params, also, packed)? {
            return Ok(flag);
        }
        let (c, hyper) = (self.config, self.hyper(false));
        for ((_, p), buf) in self.params.iter().zip(self.momentum_buffers.iter_mut()) {
            if !p.requires_grad() {
                continue;
            }
            let Some(g) = p.grad() else { continue };
            let h = SgdHyper { first_step: buf.is_none(), ..hyper };
            if c.momentum == 0.0 {
                p.update_value(|v| sgd_update(v, &g, None, &h))?;
            } else {
                if buf.is_none() {
                    *buf = Some(p.value().zeros_like()?);
                }
                let Some(b) = buf.as_mut() else { continue };
                p.update_value(|v| sgd_update(v, &g, Some(b), &h))?;
            }
        }
        host_flag(false)
    }

    fn settle_step(&mut self, non_finite: bool) -> Result<()> {
        let unsettled = self.unsettled.take();
        if non_finite && unsettled == Some(Unsettled::Guarded { first: true }) {
            // The vetoed first step left its fresh buffers as it found them (zeros), but a
            // buffer's presence says a step was taken: they go.
            self.momentum_buffers.iter_mut().for_each(|b| *b = None);
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
        self.params
            .iter()
            .zip(&self.momentum_buffers)
            .filter_map(|((name, _), b)| {
                b.as_ref().map(|b| OptimizerStateTensor {
                    name: format!("{MOMENTUM_BUFFER}.{name}"),
                    value: b.clone(),
                    kind: BufferKind::Float,
                })
            })
            .collect()
    }

    fn load_state_tensors(&mut self, tensors: &BTreeMap<String, Tensor>) -> std::result::Result<(), StateMismatch> {
        let index = index_by_name(&self.params);
        let mut mismatch = StateMismatch::default();
        let mut buffers = vec![None; self.params.len()];
        for (name, t) in tensors {
            match parse_state_name(name, &[MOMENTUM_BUFFER], &index) {
                Some((_, i)) => buffers[i] = state_like_param(name, t, &self.params[i].1, &mut mismatch),
                None => mismatch.unexpected.push(name.clone()),
            }
        }
        if !mismatch.is_empty() {
            return Err(mismatch);
        }
        self.momentum_buffers = buffers;
        Ok(())
    }
}
