//! Pooling layers over [N, C, H, W]: MaxPool2d, AvgPool2d (count_include_pad, like
//! PyTorch's default) and GlobalAvgPool (→ [N, C, 1, 1]).

use autograd::ops::pool::{avg_pool2d, global_avg_pool2d, max_pool2d};
use autograd::Var;

use crate::error::{config_err, Result};
use crate::module::Module;

/// Kernel, stride and padding of a 2-D pool, as [height, width].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dConfig {
    /// Window size `[kH, kW]`.
    pub kernel: [usize; 2],
    /// Window step `[sH, sW]`.
    pub stride: [usize; 2],
    /// Implicit padding `[pH, pW]` on each side (at most half the kernel).
    pub padding: [usize; 2],
}

impl Pool2dConfig {
    /// PyTorch's default: stride = kernel, no padding.
    pub fn new(kernel: usize) -> Self {
        Pool2dConfig { kernel: [kernel; 2], stride: [kernel; 2], padding: [0; 2] }
    }

    /// The same stride along height and width.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = [stride; 2];
        self
    }

    /// The same padding on all four sides.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = [padding; 2];
        self
    }

    fn check(self, what: &'static str) -> Result<Self> {
        if self.kernel.contains(&0) || self.stride.contains(&0) {
            return config_err(what, format!("kernel and stride must be positive, got {self:?}"));
        }
        if self.padding[0] > self.kernel[0] / 2 || self.padding[1] > self.kernel[1] / 2 {
            return config_err(what, format!("padding must be at most half the kernel, got {self:?}"));
        }
        Ok(self)
    }
}

/// x: [N, C, H, W] → [N, C, OH, OW], the maximum of each window (padding counts as −∞).
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d {
    /// Kernel, stride and padding.
    pub config: Pool2dConfig,
}

impl MaxPool2d {
    /// Errors on a zero kernel or stride, or padding above half the kernel.
    pub fn new(config: Pool2dConfig) -> Result<MaxPool2d> {
        Ok(MaxPool2d { config: config.check("MaxPool2d")? })
    }
}

impl Module for MaxPool2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        let c = self.config;
        Ok(max_pool2d(x, c.kernel, c.stride, c.padding)?)
    }
}

/// x: [N, C, H, W] → [N, C, OH, OW], the mean of each window (zero padding counted in the
/// divisor, PyTorch's count_include_pad = true).
#[derive(Clone, Copy, Debug)]
pub struct AvgPool2d {
    /// Kernel, stride and padding.
    pub config: Pool2dConfig,
}

impl AvgPool2d {
    /// Errors on a zero kernel or stride, or padding above half the kernel.
    pub fn new(config: Pool2dConfig) -> Result<AvgPool2d> {
        Ok(AvgPool2d { config: config.check("AvgPool2d")? })
    }
}

impl Module for AvgPool2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        let c = self.config;
        Ok(avg_pool2d(x, c.kernel, c.stride, c.padding)?)
    }
}

/// x: [N, C, H, W] → [N, C, 1, 1], the mean over each [H, W] plane
/// (PyTorch's `AdaptiveAvgPool2d(1)`).
#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalAvgPool;

impl Module for GlobalAvgPool {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(global_avg_pool2d(x)?)
    }
}
