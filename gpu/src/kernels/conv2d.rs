//! conv2d launchers (`shaders/conv2d.wgsl`): forward, backward-data, backward-weight and
//! backward-bias as implicit GEMMs, plus the geometry they share with conv_transpose2d.

use crate::buffer_pool::GpuBuffer;
use crate::context::Context;
use crate::descriptors::Conv2dGeometry;
use crate::error::{invalid, Result};
use crate::kernels::{need, Output};
use crate::pipeline_cache::{KernelDef, Shader};

/// The WGSL source of `shaders/conv2d.wgsl`.
pub static SHADER: Shader = Shader { name: "conv2d.wgsl", source: include_str!("../../../shaders/conv2d.wgsl") };
/// y = conv(x, weight) + bias as an implicit GEMM, one output tile per workgroup.
pub static FORWARD: KernelDef = KernelDef { shader: &SHADER, entry: "forward", inputs: 3, outputs: 1 };
/// dx from dy and the weight.
pub static BACKWARD_DATA: KernelDef = KernelDef { shader: &SHADER, entry: "backward_data", inputs: 3, outputs: 1 };
/// dweight from dy and x.
pub static BACKWARD_WEIGHT: KernelDef = KernelDef { shader: &SHADER, entry: "backward_weight", inputs: 3, outputs: 1 };
/// dbias: dy summed over batch and pixels.
pub static BACKWARD_BIAS: KernelDef = KernelDef { shader: &SHADER, entry: "backward_bias", inputs: 1, outputs: 1 };

/// Side of the square output tile one workgroup computes.
const TILE: u64 = 64;

/// Mirrors `struct Params` in conv2d.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Batch size N.
    pub batch: u32,
    /// Input channels.
    pub c_in: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output channels.
    pub c_out: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// Kernel height.
    pub kh: u32,
    /// Kernel width.
    pub kw: u32,
    /// Vertical stride.
    pub stride_h: u32,
    /// Horizontal stride.
    pub stride_w: u32,
    /// Zero padding at top and bottom.
    pub pad_h: u32,
    /// Zero padding at left and right.
    pub pad_w: u32,
    /// Vertical dilation.
    pub dil_h: u32,
    /// Horizontal dilation.
    pub dil_w: u32,
    /// 1 when a bias buffer is bound.
    pub has_bias: u32,
    /// 1: add to the output instead of overwriting it.
    pub accumulate: u32,
    /// Padding to the shader's 16-byte struct alignment; always 0.
    pub _pad: [u32; 3],
}

impl Conv2dGeometry {
    fn params(&self, has_bias: bool, out: Output) -> Params {
        Params {
            batch: self.batch as u32,
            c_in: self.c_in as u32,
            h: self.h as u32,
            w: self.w as u32,
            c_out: self.c_out as u32,
            oh: self.oh as u32,
            ow: self.ow as u32,
            kh: self.kh as u32,
            kw: self.kw as u32,
            stride_h: self.stride[0] as u32,
            stride_w: self.stride[1] as u32,
            pad_h: self.padding[0] as u32,
            pad_w: self.padding[1] as u32,
            dil_h: self.dilation[0] as u32,
            dil_w: self.dilation[1] as u32,
            has_bias: has_bias as u32,
            accumulate: (out == Output::Accumulate) as u32,
            _pad: [0; 3],
        }
    }

    fn check(&self, kernel: &'static str) -> Result<()> {
        if self.stride.contains(&0) || self.dilation.contains(&0) || self.kh == 0 || self.kw == 0 {
            return Err(invalid(kernel, format!("zero stride, dilation or kernel size in {self:?}")));
        }
        let biggest = [
            self.x_len(),
            self.y_len(),
            self.weight_len(),
            self.batch * self.oh * self.ow * self.c_in * self.kh * self.kw,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        if biggest > u32::MAX as usize {
            return Err(invalid(kernel, format!("{self:?} exceeds u32 indexing")));
        }
        Ok(())
    }
}

/// The one launch of the three GEMM modes: grid over the [M, N] output of the mode.
#[allow(clippy::too_many_arguments)]
fn gemm(
    ctx: &Context,
    k: &KernelDef,
    g: &Conv2dGeometry,
    [m, n]: [usize; 2],
    in0: &GpuBuffer,
    in1: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    out: &GpuBuffer,
    mode: Output,
) -> Result<()> {
    let p = g.params(bias.is_some(), mode);
    let grid = ctx.grid_3d(k.entry, [(n as u64).div_ceil(TILE), (m as u64).div_ceil(TILE), 1])?;
    // Without a bias the slot still needs a buffer: any read-only one will do, it is not read.
    ctx.dispatch(k, &p, &[in0, in1, bias.unwrap_or(in0)], &[out], grid)
}

/// y = conv2d(x, weight) + bias.
// x: [N, C_in, H, W], weight: [C_out, C_in, kH, kW], bias: [C_out] → y: [N, C_out, OH, OW]
pub fn forward(
    ctx: &Context,
    g: &Conv2dGeometry,
    x: &GpuBuffer,
    weight: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    y: &GpuBuffer,
) -> Result<()> {
    const K: &str = "conv2d_forward";
    g.check(K)?;
    need(K, "x", x, g.x_len())?;
    need(K, "weight", weight, g.weight_len())?;
    need(K, "y", y, g.y_len())?;
    if let Some(b) = bias {
        need(K, "bias", b, g.c_out)?;
    }
    gemm(ctx, &FORWARD, g, [g.c_out, g.batch * g.oh * g.ow], x, weight, bias, y, Output::Overwrite)
}

/// y += conv2d(x, weight): the forward accumulating into y (conv_transpose2d's
/// backward-data into an existing gradient).
// x: [N, C_in, H, W], weight: [C_out, C_in, kH, kW] → y: [N, C_out, OH, OW]
pub fn forward_accumulate(
    ctx: &Context,
    g: &Conv2dGeometry,
    x: &GpuBuffer,
    weight: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<()> {
    const K: &str = "conv2d_forward";
    g.check(K)?;
    need(K, "x", x, g.x_len())?;
    need(K, "weight", weight, g.weight_len())?;
    need(K, "y", y, g.y_len())?;
    gemm(ctx, &FORWARD, g, [g.c_out, g.batch * g.oh * g.ow], x, weight, None, y, Output::Accumulate)
}

/// dx (+)= ∂L/∂x: each input pixel gathers dy·w over the taps that read it (+ bias\[ci\],
/// used by conv_transpose2d's forward).
// dy: [N, C_out, OH, OW], weight: [C_out, C_in, kH, kW] → dx: [N, C_in, H, W]
pub fn backward_data_with_bias(
    ctx: &Context,
    g: &Conv2dGeometry,
    dy: &GpuBuffer,
    weight: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    dx: &GpuBuffer,
    mode: Output,
) -> Result<()> {
    const K: &str = "conv2d_backward_data";
    g.check(K)?;
    need(K, "dy", dy, g.y_len())?;
    need(K, "weight", weight, g.weight_len())?;
    need(K, "dx", dx, g.x_len())?;
    if let Some(b) = bias {
        need(K, "bias", b, g.c_in)?;
    }
    gemm(ctx, &BACKWARD_DATA, g, [g.c_in, g.batch * g.h * g.w], dy, weight, bias, dx, mode)
}

/// dx (+)= ∂L/∂x = col2im(Wᵀ·dy), computed in gather form.
// dy: [N, C_out, OH, OW], weight: [C_out, C_in, kH, kW] → dx: [N, C_in, H, W]
pub fn backward_data(
    ctx: &Context,
    g: &Conv2dGeometry,
    dy: &GpuBuffer,
    weight: &GpuBuffer,
    dx: &GpuBuffer,
    mode: Output,
) -> Result<()> {
    backward_data_with_bias(ctx, g, dy, weight, None, dx, mode)
}

/// dW (+)= Σ_n dy_n·col_nᵀ.
// dy: [N, C_out, OH, OW], x: [N, C_in, H, W] → dw: [C_out, C_in, kH, kW]
pub fn backward_weight(
    ctx: &Context,
    g: &Conv2dGeometry,
    dy: &GpuBuffer,
    x: &GpuBuffer,
    dw: &GpuBuffer,
    mode: Output,
) -> Result<()> {
    const K: &str = "conv2d_backward_weight";
    g.check(K)?;
    need(K, "dy", dy, g.y_len())?;
    need(K, "x", x, g.x_len())?;
    need(K, "dw", dw, g.weight_len())?;
    gemm(ctx, &BACKWARD_WEIGHT, g, [g.c_out, g.c_in * g.kh * g.kw], dy, x, None, dw, mode)
}

/// db\[c\] (+)= Σ_{n, i} dy[n, c, i]: the bias gradient of conv2d and conv_transpose2d.
// dy: [batch, channels, plane] → db: [channels]
pub fn backward_bias(
    ctx: &Context,
    [batch, channels, plane]: [usize; 3],
    dy: &GpuBuffer,
    db: &GpuBuffer,
    mode: Output,
) -> Result<()> {
    const K: &str = "conv2d_backward_bias";
    let len = batch * channels * plane;
    if len > u32::MAX as usize {
        return Err(invalid(K, format!("dy of [{batch}, {channels}, {plane}] exceeds u32 indexing")));
    }
    need(K, "dy", dy, len)?;
    need(K, "db", db, channels)?;
    let p = Params {
        batch: batch as u32,
        c_out: channels as u32,
        oh: plane as u32,
        ow: 1,
        accumulate: (mode == Output::Accumulate) as u32,
        ..Default::default()
    };
    let grid = ctx.grid_1d(K, channels as u64)?;
    ctx.dispatch(&BACKWARD_BIAS, &p, &[dy], &[db], grid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::wgsl_check;

    #[test]
    fn params_size_matches_wgsl() {
        assert_eq!(std::mem::size_of::<Params>() as u32, wgsl_check::struct_size(SHADER.name, SHADER.source, "Params"));
    }
}
