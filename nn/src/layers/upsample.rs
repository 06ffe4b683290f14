//! Upsampling by an integer scale over [N, C, H, W]: nearest neighbour or bilinear
//! (align_corners = false, PyTorch's default).

use autograd::ops::interpolate::{upsample_bilinear2d, upsample_nearest2d};
use autograd::Var;

use crate::error::{config_err, Result};
use crate::module::Module;

/// How [`Upsample`] fills the new pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsampleMode {
    /// Each output pixel copies the input pixel it falls in.
    Nearest,
    /// Bilinear with align_corners = false.
    Bilinear,
}

/// x: [N, C, H, W] → [N, C, scale·H, scale·W].
#[derive(Clone, Copy, Debug)]
pub struct Upsample {
    /// Integer scale factor, the same for height and width (≥ 1).
    pub scale: usize,
    /// Nearest or bilinear.
    pub mode: UpsampleMode,
}

impl Upsample {
    /// Errors if `scale` is 0.
    pub fn new(scale: usize, mode: UpsampleMode) -> Result<Upsample> {
        if scale == 0 {
            return config_err("Upsample", "scale must be positive");
        }
        Ok(Upsample { scale, mode })
    }

    /// Nearest-neighbour upsampling by `scale`.
    pub fn nearest(scale: usize) -> Result<Upsample> {
        Upsample::new(scale, UpsampleMode::Nearest)
    }

    /// Bilinear upsampling by `scale` (align_corners = false).
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

    fn nearest_upsampling_scale(&self) -> Option<usize> {
        (self.mode == UpsampleMode::Nearest).then_some(self.scale)
    }
}
