//! Upsampling launchers (`shaders/interpolate.wgsl`): nearest and bilinear
//! (align_corners = false) by integer factors, forward and backward.

use crate::buffer_pool::GpuBuffer;
use crate::context::Context;
use crate::error::{invalid, Result};
use crate::kernels::{need, WG};
use crate::pipeline_cache::{KernelDef, Shader};

/// The WGSL source of `shaders/interpolate.wgsl`.
pub static SHADER: Shader =
    Shader { name: "interpolate.wgsl", source: include_str!("../../../shaders/interpolate.wgsl") };
/// Nearest-neighbour upsampling by integer factors.
pub static NEAREST_FORWARD: KernelDef = KernelDef::new(&SHADER, "nearest_forward", 1, 1);
/// Gradient of nearest upsampling: sums each input pixel's block.
pub static NEAREST_BACKWARD: KernelDef = KernelDef::new(&SHADER, "nearest_backward", 1, 1);
/// Bilinear upsampling (align_corners = false).
pub static BILINEAR_FORWARD: KernelDef = KernelDef::new(&SHADER, "bilinear_forward", 1, 1);
/// Gradient of bilinear upsampling.
pub static BILINEAR_BACKWARD: KernelDef = KernelDef::new(&SHADER, "bilinear_backward", 1, 1);

/// Mirrors `struct Params` in interpolate.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Independent planes (N·C).
    pub planes: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Vertical scale factor.
    pub sh: u32,
    /// Horizontal scale factor.
    pub sw: u32,
    /// Padding to the shader's 16-byte struct alignment; always 0.
    pub _pad: [u32; 3],
}

/// How upsampling fills new pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Each output pixel copies the input pixel it falls in.
    Nearest,
    /// align_corners = false, as PyTorch's `interpolate(mode="bilinear")`.
    Bilinear,
}

/// `planes` = N·C independent [h, w] inputs, each upsampled to [h·scale\[0\], w·scale\[1\]].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpsampleDims {
    /// Independent planes (N·C).
    pub planes: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// [sh, sw] ≥ 1
    pub scale: [usize; 2],
}

impl UpsampleDims {
    /// Elements of x: planes·h·w.
    pub fn x_len(&self) -> usize {
        self.planes * self.h * self.w
    }

    /// Elements of y: planes·h·w·sh·sw.
    pub fn y_len(&self) -> usize {
        self.x_len() * self.scale[0] * self.scale[1]
    }

    fn params(&self, kernel: &'static str) -> Result<Params> {
        if self.scale.contains(&0) {
            return Err(invalid(kernel, format!("scale factors must be ≥ 1, got {:?}", self.scale)));
        }
        if self.y_len() > u32::MAX as usize {
            return Err(invalid(kernel, format!("{self:?} exceeds u32 indexing")));
        }
        Ok(Params {
            planes: self.planes as u32,
            h: self.h as u32,
            w: self.w as u32,
            sh: self.scale[0] as u32,
            sw: self.scale[1] as u32,
            _pad: [0; 3],
        })
    }
}

// x: [P, H, W] → y: [P, H·sh, W·sw]
/// Upsamples every plane of x by `d.scale` into y.
pub fn forward(ctx: &Context, mode: Mode, d: UpsampleDims, x: &GpuBuffer, y: &GpuBuffer) -> Result<()> {
    const K: &str = "upsample_forward";
    let p = d.params(K)?;
    need(K, "x", x, d.x_len())?;
    need(K, "y", y, d.y_len())?;
    let k = match mode {
        Mode::Nearest => &NEAREST_FORWARD,
        Mode::Bilinear => &BILINEAR_FORWARD,
    };
    let grid = ctx.grid_1d(K, (d.y_len() as u64).div_ceil(WG))?;
    ctx.dispatch(k, &p, &[x], &[y], grid)
}

/// dx = the adjoint of [`forward`] applied to dy (gather form, race-free).
// dy: [P, H·sh, W·sw] → dx: [P, H, W]
pub fn backward(ctx: &Context, mode: Mode, d: UpsampleDims, dy: &GpuBuffer, dx: &GpuBuffer) -> Result<()> {
    const K: &str = "upsample_backward";
    let p = d.params(K)?;
    need(K, "dy", dy, d.y_len())?;
    need(K, "dx", dx, d.x_len())?;
    let k = match mode {
        Mode::Nearest => &NEAREST_BACKWARD,
        Mode::Bilinear => &BILINEAR_BACKWARD,
    };
    let grid = ctx.grid_1d(K, (d.x_len() as u64).div_ceil(WG))?;
    ctx.dispatch(k, &p, &[dy], &[dx], grid)
}
