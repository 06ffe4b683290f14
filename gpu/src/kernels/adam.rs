//! Optimiser launchers (`shaders/adam.wgsl`): one fused in-place Adam/AdamW step, and SGD
//! with momentum; each optionally skipped on the device when a flag is set (`unless_flagged`:
//! a one-element buffer as [`crate::kernels::reduce::flag_non_finite`] leaves it), so that a
//! training step need not read its finiteness check back before recording its update.

use crate::buffer_pool::GpuBuffer;
use crate::context::Context;
use crate::descriptors::{AdamHyper, SgdHyper};
use crate::error::{invalid, Result};
use crate::kernels::{need, window_len, windows, WG};
use crate::pipeline_cache::{KernelDef, Shader};

/// The WGSL source of `shaders/adam.wgsl`.
pub static SHADER: Shader = Shader { name: "adam.wgsl", source: include_str!("../../../shaders/adam.wgsl") };
/// Fused Adam/AdamW step: reads grad; updates param, m, v in place.
pub static ADAM: KernelDef = KernelDef::new(&SHADER, "adam", 1, 3);
/// SGD step with momentum: reads grad; updates param and the momentum buffer in place.
pub static SGD: KernelDef = KernelDef::new(&SHADER, "sgd", 1, 2);
/// [`ADAM`] that changes nothing when its flag (the second input, one element) is nonzero.
pub static ADAM_UNLESS_FLAGGED: KernelDef = KernelDef::new(&SHADER, "adam_unless_flagged", 2, 3);
/// [`SGD`] that changes nothing when its flag (the second input, one element) is nonzero.
pub static SGD_UNLESS_FLAGGED: KernelDef = KernelDef::new(&SHADER, "sgd_unless_flagged", 2, 2);

/// Mirrors `struct AdamParams` in adam.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AdamParams {
    /// Number of elements.
    pub n: u32,
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay rate.
    pub beta1: f32,
    /// Second-moment decay rate.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Weight decay factor.
    pub weight_decay: f32,
    /// 1: AdamW (decoupled decay); 0: Adam (L2 added to the gradient).
    pub decoupled: u32,
    /// Bias correction 1 − β1ᵗ.
    pub bc1: f32,
    /// Bias correction 1 − β2ᵗ.
    pub bc2: f32,
    /// Padding to the shader's 16-byte struct alignment; always 0.
    pub _pad: [u32; 3],
}

/// Mirrors `struct SgdParams` in adam.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SgdParams {
    /// Number of elements.
    pub n: u32,
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0: none).
    pub momentum: f32,
    /// Dampening of the gradient added to the momentum buffer.
    pub dampening: f32,
    /// Weight decay factor.
    pub weight_decay: f32,
    /// 1: Nesterov momentum.
    pub nesterov: u32,
    /// 1 on the first step: the momentum buffer is set to the gradient.
    pub first_step: u32,
    /// Padding to the shader's 16-byte struct alignment; always 0.
    pub _pad: u32,
}

/// The buffers of one parameter tensor, all of the same length.
#[derive(Clone, Copy, Debug)]
pub struct AdamState<'a> {
    /// The parameter, updated in place.
    pub param: &'a GpuBuffer,
    /// Its gradient (read only).
    pub grad: &'a GpuBuffer,
    /// First-moment estimate, updated in place.
    pub m: &'a GpuBuffer,
    /// Second-moment estimate, updated in place.
    pub v: &'a GpuBuffer,
}

/// One Adam/AdamW step over `param.len()` elements, updating param, m and v in place.
// param, grad, m, v: [n]
pub fn adam_step(ctx: &Context, h: &AdamHyper, s: &AdamState) -> Result<()> {
    adam_launch(ctx, h, s, None)
}

/// [`adam_step`], taking effect only if `flag[0]` is zero when the launch runs.
// param, grad, m, v: [n]; flag: [≥ 1] (u32 bits; nonzero: skip)
pub fn adam_step_unless_flagged(ctx: &Context, h: &AdamHyper, s: &AdamState, flag: &GpuBuffer) -> Result<()> {
    adam_launch(ctx, h, s, Some(flag))
}

fn adam_launch(ctx: &Context, h: &AdamHyper, s: &AdamState, flag: Option<&GpuBuffer>) -> Result<()> {
    const K: &str = "adam";
    if h.step == 0 {
        return Err(invalid(K, "step counts from 1 (bias correction 1 − β^0 would be 0)"));
    }
    let n = s.param.len();
    need(K, "grad", s.grad, n)?;
    need(K, "m", s.m, n)?;
    need(K, "v", s.v, n)?;
    if let Some(flag) = flag {
        need(K, "flag", flag, 1)?;
    }
    if n > window_len(ctx) {
        // The update is element-wise: a parameter larger than one binding goes a window at a time.
        for (start, len) in windows(ctx, n) {
            let [param, grad, m, v] = [s.param, s.grad, s.m, s.v].map(|b| ctx.window(b, start, len));
            let (param, grad, m, v) = (param?, grad?, m?, v?);
            adam_launch(ctx, h, &AdamState { param: &param, grad: &grad, m: &m, v: &v }, flag)?;
        }
        return Ok(());
    }
    // The shader computes in f32; the bias corrections are taken in f64 first, as on the CPU.
    let t = h.step.min(i32::MAX as u64) as i32;
    let [bc1, bc2] = [h.beta1, h.beta2].map(|beta| (1.0 - beta.powi(t)) as f32);
    let [lr, beta1, beta2, eps, weight_decay] = [h.lr, h.beta1, h.beta2, h.eps, h.weight_decay].map(|v| v as f32);
    let decoupled = h.decoupled_weight_decay as u32;
    let p = AdamParams { n: n as u32, lr, beta1, beta2, eps, weight_decay, decoupled, bc1, bc2, _pad: [0; 3] };
    let grid = ctx.grid_1d(K, (n as u64).div_ceil(WG))?;
    match flag {
        None => ctx.dispatch(&ADAM, &p, &[s.grad], &[s.param, s.m, s.v], grid),
        Some(flag) => ctx.dispatch(&ADAM_UNLESS_FLAGGED, &p, &[s.grad, flag], &[s.param, s.m, s.v], grid),
    }
}

/// One SGD step updating `param` (and the momentum buffer `buf`, needed when momentum ≠ 0)
/// in place.
// param, grad, buf: [n]
pub fn sgd_step(
    ctx: &Context,
    h: &SgdHyper,
    param: &GpuBuffer,
    grad: &GpuBuffer,
    buf: Option<&GpuBuffer>,
) -> Result<()> {
    sgd_launch(ctx, h, param, grad, buf, None)
}

/// [`sgd_step`], taking effect only if `flag[0]` is zero when the launch runs.
// param, grad, buf: [n]; flag: [≥ 1] (u32 bits; nonzero: skip)
pub fn sgd_step_unless_flagged(
    ctx: &Context,
    h: &SgdHyper,
    param: &GpuBuffer,
    grad: &GpuBuffer,
    buf: Option<&GpuBuffer>,
    flag: &GpuBuffer,
) -> Result<()> {
    sgd_launch(ctx, h, param, grad, buf, Some(flag))
}

fn sgd_launch(
    ctx: &Context,
    h: &SgdHyper,
    param: &GpuBuffer,
    grad: &GpuBuffer,
    buf: Option<&GpuBuffer>,
    flag: Option<&GpuBuffer>,
) -> Result<()> {
    const K: &str = "sgd";
    let n = param.len();
    need(K, "grad", grad, n)?;
    if let Some(b) = buf {
        need(K, "momentum buffer", b, n)?;
    }
    if let Some(flag) = flag {
        need(K, "flag", flag, 1)?;
    }
    if n > window_len(ctx) {
        // Element-wise, like Adam: a window at a time.
        for (start, len) in windows(ctx, n) {
            let (p, g) = (ctx.window(param, start, len)?, ctx.window(grad, start, len)?);
            let b = buf.map(|b| ctx.window(b, start, len)).transpose()?;
            sgd_launch(ctx, h, &p, &g, b.as_deref(), flag)?;
        }
        return Ok(());
    }
    let scratch;
    let buf = match buf {
        Some(b) => {
            need(K, "momentum buffer", b, n)?;
            b
        }
        None if h.momentum != 0.0 => return Err(invalid(K, "momentum ≠ 0 needs a momentum buffer")),
        None => {
            // The binding needs a buffer; with momentum 0 the kernel never touches it.
            scratch = ctx.alloc(1)?;
            &scratch
        }
    };
    let [lr, momentum, dampening, weight_decay] = [h.lr, h.momentum, h.dampening, h.weight_decay].map(|v| v as f32);
    let (nesterov, first_step) = (h.nesterov as u32, h.first_step as u32);
    let p = SgdParams { n: n as u32, lr, momentum, dampening, weight_decay, nesterov, first_step, _pad: 0 };
    let grid = ctx.grid_1d(K, (n as u64).div_ceil(WG))?;
    match flag {
        None => ctx.dispatch(&SGD, &p, &[grad], &[param, buf], grid),
        Some(flag) => ctx.dispatch(&SGD_UNLESS_FLAGGED, &p, &[grad, flag], &[param, buf], grid),
    }
}
