//! Layers that only change a batch's shape: Flatten ([N, …] → [N, ∏…]) and Reshape
//! ([N, …] → [N, given per-sample shape]).

use autograd::Var;

use crate::error::{config_err, Result};
use crate::module::Module;

/// x: [N, d1, d2, …] → [N, d1·d2·…] (PyTorch's `nn.Flatten()`, start_dim = 1).
#[derive(Clone, Copy, Debug, Default)]
pub struct Flatten;

impl Module for Flatten {
    fn forward(&self, x: &Var) -> Result<Var> {
        if x.shape().is_empty() {
            return config_err("Flatten", "input must have a batch dimension, got a scalar");
        }
        Ok(x.flatten_from(1)?)
    }
}

/// x: [N, …] → [N, sample_shape…]; the per-sample element counts must agree
/// (`Reshape::new(&[64, 4, 4])` turns [N, 1024] into [N, 64, 4, 4]).
#[derive(Clone, Debug)]
pub struct Reshape {
    /// The shape of one sample after the reshape (without the batch axis).
    pub sample_shape: Vec<usize>,
}

impl Reshape {
    /// Reshapes each sample to `sample_shape`.
    pub fn new(sample_shape: &[usize]) -> Reshape {
        Reshape { sample_shape: sample_shape.to_vec() }
    }
}

impl Module for Reshape {
    fn forward(&self, x: &Var) -> Result<Var> {
        let s = x.shape();
        let Some(&n) = s.first() else {
            return config_err("Reshape", "input must have a batch dimension, got a scalar");
        };
        let mut shape = vec![n];
        shape.extend_from_slice(&self.sample_shape);
        Ok(x.reshape(&shape)?)
    }
}
