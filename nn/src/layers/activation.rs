//! Element-wise activation layers: ReLU, LeakyReLU, SiLU, Sigmoid, Tanh. Any shape → same shape.

use autograd::Var;

use crate::error::Result;
use crate::module::Module;

/// max(x, 0).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReLU;

impl Module for ReLU {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.relu()?)
    }

    fn is_relu(&self) -> bool {
        true
    }
}

/// x for x > 0, negative_slope·x otherwise (PyTorch's default slope is 0.01).
#[derive(Clone, Copy, Debug)]
pub struct LeakyReLU {
    /// Slope for x ≤ 0.
    pub negative_slope: f64,
}

impl LeakyReLU {
    /// A leaky ReLU with slope `negative_slope` for x ≤ 0.
    pub fn new(negative_slope: f64) -> LeakyReLU {
        LeakyReLU { negative_slope }
    }
}

impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU { negative_slope: 0.01 }
    }
}

impl Module for LeakyReLU {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.leaky_relu(self.negative_slope)?)
    }
}

/// x·σ(x) (PyTorch's `nn.SiLU`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SiLU;

impl Module for SiLU {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.silu()?)
    }
}

/// 1/(1 + e⁻ˣ).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sigmoid;

impl Module for Sigmoid {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.sigmoid()?)
    }
}

/// tanh(x), element-wise.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tanh;

impl Module for Tanh {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.tanh()?)
    }
}
