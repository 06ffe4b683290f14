//! Upsampling by an integer scale over [N, C, H, W]: nearest neighbour or bilinear
//! (align_corners = false, PyTorch's default).

use autograd::ops::interpolate::{upsample_bilinear2d, upsample_nearest2d};
use autograd::Var;

use crate::error::{config_err, Result};
use crate::module::Module;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsampleMode {
    Nearest,
    /// Bilinear with align_corners = false.
    Bilinear,
}

/// x: [N, C, H, W] → [N, C, scale·H, scale·W].
#[derive(Clone, Copy, Debug)]
pub struct Upsample {
    pub scale: usize,
    pub mode: UpsampleMode,
}

impl Upsample {
    pub fn new(scale: usize, mode: UpsampleMode) -> Result<Upsample> {
        if scale == 0 {
            return config_err("Upsample", "scale must be positive");
        }
        Ok(Upsample { scale, mode })
    }

    pub fn nearest(scale: usize) -> Result<Upsample> {
        Upsample::new(scale, UpsampleMode::Nearest)
    }

    pub fn bilinear(scale: usize) -> Result<Upsample> {
        Upsample::new(scale, UpsampleMode::Bilinear)
    }
}

impl Module for Upsample {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(match self.mode {
            UpsampleMode::Nearest => upsample_nearest2d(x, self.scale)?,
            UpsampleMode::Bilinear => upsample_bilinear2d(x, self.scale)?,
        })
    }
}
