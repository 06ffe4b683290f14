//! Linear (fully connected) layer: y = x·Wᵀ + b, with PyTorch's weight layout and init.

use autograd::ops::matmul::{linear, linear_relu};
use autograd::Var;

use crate::error::{config_err, Result};
use crate::init::{default_bias, default_weight, Init};
use crate::module::Module;

/// x: [N, in_features] → [N, out_features]. weight: [out_features, in_features], bias: \[out_features\].
#[derive(Debug)]
pub struct Linear {
    /// `[out_features, in_features]`.
    pub weight: Var,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<Var>,
}

impl Linear {
    /// A linear layer with a bias, initialised like `torch.nn.Linear`.
    pub fn new(in_features: usize, out_features: usize, init: &mut Init) -> Result<Linear> {
        Linear::build(in_features, out_features, true, init)
    }

    /// A linear layer without a bias.
    pub fn without_bias(in_features: usize, out_features: usize, init: &mut Init) -> Result<Linear> {
        Linear::build(in_features, out_features, false, init)
    }

    fn build(in_features: usize, out_features: usize, bias: bool, init: &mut Init) -> Result<Linear> {
        if in_features == 0 || out_features == 0 {
            return config_err("Linear", format!("features must be positive, got {in_features} → {out_features}"));
        }
        let shape = [out_features, in_features];
        let weight = Var::parameter(default_weight(&shape, init)?);
        let bias = if bias { Some(Var::parameter(default_bias(out_features, &shape, init)?)) } else { None };
        Ok(Linear { weight, bias })
    }

    /// A layer over existing parameters (weight tying, gradient checks).
    pub fn from_parameters(weight: Var, bias: Option<Var>) -> Result<Linear> {
        let w = weight.shape();
        if w.len() != 2 {
            return config_err("Linear", format!("weight must be [out_features, in_features], got {w:?}"));
        }
        if let Some(b) = &bias {
            if b.shape() != [w[0]] {
                return config_err(
                    "Linear",
                    format!("bias has shape {:?}, expected [{}] for weight {w:?}", b.shape(), w[0]),
                );
            }
        }
        Ok(Linear { weight, bias })
    }

    /// Input width: the weight's second dimension.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Output width: the weight's first dimension.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(linear(x, &self.weight, self.bias.as_ref())?)
    }

    fn forward_then_relu(&self, x: &Var) -> Result<Var> {
        Ok(linear_relu(x, &self.weight, self.bias.as_ref())?)
    }

    fn visit_parameters(&self, visit: &mut dyn FnMut(&str, &Var)) {
        visit("weight", &self.weight);
        if let Some(b) = &self.bias {
            visit("bias", b);
        }
    }
}
