//! Batch normalisation layers with PyTorch's exact semantics: `BatchNorm2d` for
//! [N, C, H, W] and `BatchNorm1d` for [N, C] or [N, C, L].
//!
//! Training mode normalises with the batch's mean and biased variance and then folds the
//! batch statistics into the running ones (momentum 0.1 by default):
//! running_mean ← (1 − momentum)·running_mean + momentum·mean,
//! running_var ← (1 − momentum)·running_var + momentum·var_unbiased (m/(m − 1) times the
//! biased variance, m = N·H·W), and counts num_batches_tracked. Evaluation mode normalises
//! with the running statistics and changes nothing.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};

use autograd::ops::batch_norm::{batch_norm_eval, batch_norm_train};
use autograd::{no_grad, Var};
use tensor::ops::batch_norm::batch_norm_update_running;
use tensor::Tensor;

use crate::error::{config_err, Result};
use crate::init::Init;
use crate::module::{Buffer, Module};

/// Options shared by BatchNorm1d and BatchNorm2d; `Default` is PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance before the square root (1e-5).
    pub eps: f64,
    /// Weight of the new batch in the running statistics (0.1).
    pub momentum: f64,
    /// Learnable per-channel scale (weight, init 1) and shift (bias, init 0).
    pub affine: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig { eps: 1e-5, momentum: 0.1, affine: true }
    }
}

/// A map of each channel c of a layer's output, `y = scale[c]·x + shift[c]`: what a batch norm
/// computes in evaluation mode ([`BatchNorm::eval_channel_affine`]), for the layer before it
/// to absorb ([`Module::fold_batch_norms`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelAffine {
    /// Per-channel factor, `[C]`.
    pub scale: Vec<f64>,
    /// Per-channel offset, `[C]`.
    pub shift: Vec<f64>,
}

/// The state and forward pass shared by BatchNorm1d and BatchNorm2d.
/// weight, bias, running_mean, running_var: \[C\]; num_batches_tracked: [].
#[derive(Debug)]
pub struct BatchNorm {
    /// Per-channel scale γ, `[C]` (`None` without affine parameters).
    pub weight: Option<Var>,
    /// Per-channel shift β, `[C]` (`None` without affine parameters).
    pub bias: Option<Var>,
    /// Running mean, `[C]`, used in evaluation mode.
    pub running_mean: Buffer,
    /// Running unbiased variance, `[C]`, used in evaluation mode.
    pub running_var: Buffer,
    /// Number of training-mode forwards so far (a count, saved as I64).
    pub num_batches_tracked: Buffer,
    /// Added to the variance before the square root.
    pub eps: f64,
    /// Weight of the batch statistics in the running averages.
    pub momentum: f64,
    training: AtomicBool,
    /// The input ranks this layer accepts and how they read, for error messages.
    ranks: &'static [usize],
    layout: &'static str,
    name: &'static str,
}

impl BatchNorm {
    fn build(
        num_features: usize,
        config: BatchNormConfig,
        init: &Init,
        name: &'static str,
        ranks: &'static [usize],
        layout: &'static str,
    ) -> Result<BatchNorm> {
        if num_features == 0 {
            return config_err(name, "num_features must be positive");
        }
        if config.eps.is_nan() || config.eps <= 0.0 || !(0.0..=1.0).contains(&config.momentum) {
            return config_err(name, format!("eps must be > 0 and momentum in [0, 1], got {config:?}"));
        }
        let c = [num_features];
        let (weight, bias) = if config.affine {
            (Some(Var::parameter(Tensor::ones(&c, init.dtype))), Some(Var::parameter(Tensor::zeros(&c, init.dtype))))
        } else {
            (None, None)
        };
        Ok(BatchNorm {
            weight,
            bias,
            running_mean: Buffer::float(Tensor::zeros(&c, init.dtype)),
            running_var: Buffer::float(Tensor::ones(&c, init.dtype)),
            num_batches_tracked: Buffer::count(0),
            eps: config.eps,
            momentum: config.momentum,
            training: AtomicBool::new(true),
            ranks,
            layout,
            name,
        })
    }

    /// Number of channels C.
    pub fn num_features(&self) -> usize {
        self.running_mean.shape()[0]
    }

    /// True in training mode (batch statistics; running ones updated).
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    /// What this layer computes in evaluation mode, y = scale·x + shift per channel, with
    /// scale = γ/√(running_var + eps) and shift = β − running_mean·scale (in f64); `None` in
    /// training mode, where it normalises with each batch's own statistics.
    pub fn eval_channel_affine(&self) -> Result<Option<ChannelAffine>> {
        if self.is_training() {
            return Ok(None);
        }
        let c = self.num_features();
        let values = |v: Option<&Var>, default: f64| match v {
            Some(v) => v.value().to_vec_f64(),
            None => Ok(vec![default; c]),
        };
        let (gamma, beta) = (values(self.weight.as_ref(), 1.0)?, values(self.bias.as_ref(), 0.0)?);
        let (mean, var) = (self.running_mean.value().to_vec_f64()?, self.running_var.value().to_vec_f64()?);
        let scale: Vec<f64> = gamma.iter().zip(&var).map(|(g, v)| g / (v + self.eps).sqrt()).collect();
        let shift = beta.iter().zip(&mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
        Ok(Some(ChannelAffine { scale, shift }))
    }

    fn check_input(&self, x: &Var) -> Result<()> {
        let s = x.shape();
        if !self.ranks.contains(&s.len()) || s[1] != self.num_features() {
            return config_err(
                self.name,
                format!("input must be {} with C = {}, got shape {s:?}", self.layout, self.num_features()),
            );
        }
        Ok(())
    }

    fn forward(&self, x: &Var) -> Result<Var> {
        self.check_input(x)?;
        let (gamma, beta) = (self.weight.as_ref(), self.bias.as_ref());
        if !self.is_training() {
            return Ok(batch_norm_eval(
                x,
                &self.running_mean.value(),
                &self.running_var.value(),
                gamma,
                beta,
                self.eps,
            )?);
        }
        let s = x.shape();
        let values_per_channel = s[0] * s[2..].iter().product::<usize>();
        if values_per_channel < 2 {
            // The unbiased variance divides by m − 1 (PyTorch refuses the same input).
            return config_err(self.name, format!("training needs more than 1 value per channel, got input {s:?}"));
        }
        let (y, stats) = batch_norm_train(x, gamma, beta, self.eps)?;
        let m = self.momentum;
        no_grad(|| -> Result<()> {
            let (mean, var) = batch_norm_update_running(
                &self.running_mean.value(),
                &self.running_var.value(),
                &stats.mean,
                &stats.var_unbiased,
                m,
            )?;
            self.running_mean.set_value(mean);
            self.running_var.set_value(var);
            self.num_batches_tracked.set_value(self.num_batches_tracked.value().add_scalar(1.0)?);
            Ok(())
        })?;
        Ok(y)
    }

    fn visit_parameters(&self, visit: &mut dyn FnMut(&str, &Var)) {
        if let Some(w) = &self.weight {
            visit("weight", w);
        }
        if let Some(b) = &self.bias {
            visit("bias", b);
        }
    }

    fn visit_buffers(&self, visit: &mut dyn FnMut(&str, &Buffer)) {
        visit("running_mean", &self.running_mean);
        visit("running_var", &self.running_var);
        visit("num_batches_tracked", &self.num_batches_tracked);
    }

    /// Replaces the affine parameters (gradient checks).
    fn with_parameters(mut self, weight: Option<Var>, bias: Option<Var>) -> Result<BatchNorm> {
        let c = [self.num_features()];
        for (what, p) in [("weight", &weight), ("bias", &bias)] {
            if let Some(p) = p {
                if p.shape() != c {
                    return config_err(self.name, format!("{what} has shape {:?}, expected {c:?}", p.shape()));
                }
            }
        }
        self.weight = weight;
        self.bias = bias;
        Ok(self)
    }
}

/// Batch norm over x: [N, C, H, W] → same shape, per channel C.
pub type BatchNorm2d = BatchNormNd<2>;

/// Batch norm over x: [N, C] or [N, C, L] → same shape, per feature C.
pub type BatchNorm1d = BatchNormNd<1>;

/// The layer [`BatchNorm2d`] (`D` = 2) and [`BatchNorm1d`] (`D` = 1) name: a [`BatchNorm`]
/// that accepts the input ranks of its kind (any other `D` does not compile).
#[derive(Debug)]
pub struct BatchNormNd<const D: usize>(BatchNorm);

impl<const D: usize> BatchNormNd<D> {
    /// The layer's name, the input ranks it accepts and their layout, for error messages.
    const INPUT: (&'static str, &'static [usize], &'static str) = match D {
        1 => ("BatchNorm1d", &[2, 3], "[N, C] or [N, C, L]"),
        2 => ("BatchNorm2d", &[4], "[N, C, H, W]"),
        _ => panic!("batch norm layers exist for 1 and 2 spatial dimensions"),
    };

    /// PyTorch's defaults: eps 1e-5, momentum 0.1, weight 1, bias 0, running mean 0, var 1.
    /// `init` gives the dtype (batch norm draws no random numbers).
    pub fn new(num_features: usize, init: &Init) -> Result<Self> {
        Self::with_config(num_features, BatchNormConfig::default(), init)
    }

    /// A batch norm with the given eps, momentum and affine flag.
    pub fn with_config(num_features: usize, config: BatchNormConfig, init: &Init) -> Result<Self> {
        let (name, ranks, layout) = Self::INPUT;
        Ok(BatchNormNd(BatchNorm::build(num_features, config, init, name, ranks, layout)?))
    }

    /// This layer with its affine parameters replaced by the given vars (\[C\] each).
    pub fn with_parameters(self, weight: Option<Var>, bias: Option<Var>) -> Result<Self> {
        Ok(BatchNormNd(self.0.with_parameters(weight, bias)?))
    }
}

impl<const D: usize> Deref for BatchNormNd<D> {
    type Target = BatchNorm;
    fn deref(&self) -> &BatchNorm {
        &self.0
    }
}

impl<const D: usize> Module for BatchNormNd<D> {
    fn forward(&self, x: &Var) -> Result<Var> {
        self.0.forward(x)
    }
    fn visit_parameters(&self, visit: &mut dyn FnMut(&str, &Var)) {
        self.0.visit_parameters(visit)
    }
    fn visit_buffers(&self, visit: &mut dyn FnMut(&str, &Buffer)) {
        self.0.visit_buffers(visit)
    }
    fn set_own_training(&self, training: bool) {
        self.0.training.store(training, Ordering::Relaxed);
    }
    fn eval_channel_affine(&self) -> Result<Option<ChannelAffine>> {
        self.0.eval_channel_affine()
    }
}
