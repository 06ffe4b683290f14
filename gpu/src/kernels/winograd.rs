//! Winograd launchers (`shaders/winograd.wgsl`): the convolution ladder's
//! [`ConvRung::Winograd`](crate::kernels::conv2d::ConvRung) for 3×3 kernels at stride 1,
//! Winograd's F(2×2, 3×3) after Lavin and Gray, "Fast Algorithms for Convolutional Neural
//! Networks" (2016). Each kernel is transforms around 16 batched matrix products
//! ([`matmul::matmul`], one per position of the 4×4 tile), 16 multiply-adds per 2×2 output
//! tile and input channel where the implicit GEMM takes 36:
//!
//!   forward          U = G·g·Gᵀ, V = Bᵀ·d·B; M_ξ = U_ξ·V_ξ; y = Aᵀ·M·A (+ bias, ReLU)
//!   backward-data    the forward of the full correlation
//!                    ([`Conv2dGeometry::full_correlation`]): dy in, the kernels turned by
//!                    180° and their channels exchanged as U is made (`flip`)
//!   backward-weight  Ê = A·dy·Aᵀ, V as the forward's; P_ξ = Σ_tiles Ê_ξ·V_ξᵀ; dW = Gᵀ·P·G
//!
//! V and M (or Ê) hold 16 values per 2×2 tile per channel, four times the input and the
//! output: the images run in passes of as many as one binding holds (one image at the least,
//! else the rung does not apply and the implicit GEMM runs).

use crate::buffer_pool::GpuBuffer;
use crate::context::Context;
use crate::descriptors::{Conv2dGeometry, ConvKernel};
use crate::error::{invalid, Result};
use crate::kernels::matmul::{self, MatView, MatmulArgs};
use crate::kernels::{need, Output, WG};
use crate::pipeline_cache::{KernelDef, Shader};

/// The WGSL source of `shaders/winograd.wgsl`.
pub static SHADER: Shader = Shader { name: "winograd.wgsl", source: include_str!("../../../shaders/winograd.wgsl") };
/// U [16, C_out, C_in] = G·g·Gᵀ for every kernel (turned and transposed with `flip`).
pub static WEIGHT_TRANSFORM: KernelDef = KernelDef::new(&SHADER, "weight_transform", 1, 1);
/// V [16, C_in, T] = Bᵀ·d·B for every input tile of the pass.
pub static INPUT_TRANSFORM: KernelDef = KernelDef::new(&SHADER, "input_transform", 1, 1);
/// y (+)= Aᵀ·M·A (+ bias, ReLU) for every output tile of the pass; binds M, the bias, y.
pub static OUTPUT_TRANSFORM: KernelDef = KernelDef::new(&SHADER, "output_transform", 2, 1);
/// Ê [16, C_out, T] = A·E·Aᵀ for every 2×2 tile E of dy in the pass.
pub static GRAD_OUTPUT_TRANSFORM: KernelDef = KernelDef::new(&SHADER, "grad_output_transform", 1, 1);
/// dW (+)= Gᵀ·P·G from the summed products P [16, C_out, C_in].
pub static WEIGHT_GRAD_TRANSFORM: KernelDef = KernelDef::new(&SHADER, "weight_grad_transform", 1, 1);

/// Positions of the 4×4 tile: the products per kernel.
const POSITIONS: usize = 16;

/// Mirrors `struct Params` in winograd.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Images in this pass.
    pub images: u32,
    /// The pass's first image.
    pub first_image: u32,
    /// Input channels of the convolution run.
    pub c_in: u32,
    /// Its output channels.
    pub c_out: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// Zero padding at top and bottom.
    pub pad_h: u32,
    /// Zero padding at left and right.
    pub pad_w: u32,
    /// 2×2 tiles down an output plane, ⌈OH/2⌉.
    pub tiles_h: u32,
    /// 2×2 tiles across it, ⌈OW/2⌉.
    pub tiles_w: u32,
    /// 1 when a bias buffer is bound (output transform).
    pub has_bias: u32,
    /// 1: add to the output instead of overwriting it.
    pub accumulate: u32,
    /// 1: ReLU on what the output transform stores.
    pub relu: u32,
    /// 1: the weight is the forward's, read turned by 180° with its channels exchanged.
    pub flip: u32,
}

/// The convolution `kernel` of `g` runs as by Winograd: `g` itself for the forward and the
/// weight gradient, the full correlation for backward-data; `None` where the rung does not
/// apply (see [`applies`]).
fn winograd_run(ctx: &Context, kernel: ConvKernel, g: &Conv2dGeometry) -> Option<Conv2dGeometry> {
    let run = match kernel {
        ConvKernel::BackwardData => g.full_correlation()?,
        ConvKernel::Forward | ConvKernel::BackwardWeight => *g,
    };
    let computes = [run.kh, run.kw] == [3, 3] && run.stride == [1, 1] && run.dilation == [1, 1];
    // A padded kernel hanging over a small plane (dead taps) runs cropped on the implicit
    // GEMM instead: Winograd's tiles there would be mostly padding.
    let fits = images_per_pass(ctx, &run) > 0 && POSITIONS * run.c_in * run.c_out <= ctx.max_binding_len();
    (computes && run.live_taps().is_none() && g.live_taps().is_none() && fits).then_some(run)
}

/// Whether [`launch`] computes `kernel` of `g` by Winograd: a 3×3 kernel at stride 1 without
/// dilation whose every tap reaches the input (backward-data: whose full correlation is one,
/// padding at most 2), with one image's tiles within a binding.
pub fn applies(ctx: &Context, kernel: ConvKernel, g: &Conv2dGeometry) -> bool {
    winograd_run(ctx, kernel, g).is_some()
}

/// 2×2 tiles of one image's output plane.
fn tiles_per_image(run: &Conv2dGeometry) -> usize {
    run.oh.div_ceil(2) * run.ow.div_ceil(2)
}

/// Images per pass: as many as keep V and M (or Ê), 16 values per tile per channel, within
/// one binding; 0 when one image does not fit.
fn images_per_pass(ctx: &Context, run: &Conv2dGeometry) -> usize {
    let per_image = POSITIONS * run.c_in.max(run.c_out) * tiles_per_image(run);
    (ctx.max_binding_len() / per_image.max(1)).min(run.batch)
}

/// The shader's parameters for `run` (no pass yet).
fn params(run: &Conv2dGeometry) -> Params {
    Params {
        c_in: run.c_in as u32,
        c_out: run.c_out as u32,
        h: run.h as u32,
        w: run.w as u32,
        oh: run.oh as u32,
        ow: run.ow as u32,
        pad_h: run.padding[0] as u32,
        pad_w: run.padding[1] as u32,
        tiles_h: run.oh.div_ceil(2) as u32,
        tiles_w: run.ow.div_ceil(2) as u32,
        ..Default::default()
    }
}

/// The passes over `run`'s batch: (first image, images), each at most `per_pass` images.
fn passes(run: &Conv2dGeometry, per_pass: usize) -> impl Iterator<Item = (usize, usize)> {
    let (batch, per_pass) = (run.batch, per_pass.max(1));
    (0..batch).step_by(per_pass).map(move |first| (first, per_pass.min(batch - first)))
}

/// One invocation per element of `len`.
fn dispatch_1d(
    ctx: &Context,
    k: &KernelDef,
    p: &Params,
    len: usize,
    inputs: &[&GpuBuffer],
    out: &GpuBuffer,
) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    let grid = ctx.grid_1d(k.entry, (len as u64).div_ceil(WG))?;
    ctx.dispatch(k, p, inputs, &[out], grid)
}

/// out (+)= `kernel` of `g` by Winograd, with the conv2d launchers' operands (`[a, b]`: x and
/// the weight, dy and the weight, or dy and x), `bias` and `mode`, and the ReLU epilogue when
/// `relu` (forward and backward-data). The caller checks the operands and that the rung
/// [`applies`]; where it does not, this is an error.
#[allow(clippy::too_many_arguments)] // the conv2d launcher's arguments, as it passes them on
pub fn launch(
    ctx: &Context,
    kernel: ConvKernel,
    g: &Conv2dGeometry,
    [a, b]: [&GpuBuffer; 2],
    bias: Option<&GpuBuffer>,
    out: &GpuBuffer,
    mode: Output,
    relu: bool,
) -> Result<()> {
    let Some(run) = winograd_run(ctx, kernel, g) else {
        return Err(invalid(kernel.name(), format!("Winograd does not apply to {g:?}")));
    };
    let per_pass = images_per_pass(ctx, &run);
    match kernel {
        ConvKernel::Forward => forward_in_passes(ctx, &run, false, [a, b], bias, out, mode, relu, per_pass),
        ConvKernel::BackwardData => forward_in_passes(ctx, &run, true, [a, b], bias, out, mode, relu, per_pass),
        ConvKernel::BackwardWeight => backward_weight_in_passes(ctx, &run, [a, b], out, mode, per_pass),
    }
}

/// y (+)= conv(x, w) (+ bias, ReLU) of `run` by Winograd, `per_pass` images a pass; with
/// `flip`, w is the weight of the convolution whose full correlation `run` is (backward-data).
/// Checks each buffer's length, not whether Winograd computes `run` ([`applies`]).
#[allow(clippy::too_many_arguments)] // launch's, and how the weight is read and the pass size
pub fn forward_in_passes(
    ctx: &Context,
    run: &Conv2dGeometry,
    flip: bool,
    [x, w]: [&GpuBuffer; 2],
    bias: Option<&GpuBuffer>,
    y: &GpuBuffer,
    mode: Output,
    relu: bool,
    per_pass: usize,
) -> Result<()> {
    const K: &str = "winograd_forward";
    let operands = [("x", x, run.x_len()), ("weight", w, run.weight_len()), ("y", y, run.y_len())];
    for (name, buffer, len) in operands {
        need(K, name, buffer, len)?;
    }
    if let Some(bias) = bias {
        need(K, "bias", bias, run.c_out)?;
    }
    let (c_in, c_out) = (run.c_in, run.c_out);
    let base = Params {
        has_bias: bias.is_some() as u32,
        accumulate: (mode == Output::Accumulate) as u32,
        relu: relu as u32,
        flip: flip as u32,
        ..params(run)
    };
    let u = ctx.alloc(POSITIONS * c_out * c_in)?;
    dispatch_1d(ctx, &WEIGHT_TRANSFORM, &base, c_out * c_in, &[w], &u)?;
    let most = per_pass.min(run.batch) * tiles_per_image(run);
    let (v, m) = (ctx.alloc(POSITIONS * c_in * most)?, ctx.alloc(POSITIONS * c_out * most)?);
    for (first, images) in passes(run, per_pass) {
        let p = Params { images: images as u32, first_image: first as u32, ..base };
        let tiles = images * tiles_per_image(run);
        dispatch_1d(ctx, &INPUT_TRANSFORM, &p, c_in * tiles, &[x], &v)?;
        let a = MatView::row_major(&u, c_out, c_in);
        let b = MatView::row_major(&v, c_in, tiles);
        matmul::matmul(ctx, &MatmulArgs { batch: POSITIONS, ..MatmulArgs::new(a, b, &m, [c_out, tiles, c_in]) })?;
        dispatch_1d(ctx, &OUTPUT_TRANSFORM, &p, c_out * tiles, &[&m, bias.unwrap_or(&m)], y)?;
    }
    Ok(())
}

/// dW (+)= the weight gradient of `run` from dy and x by Winograd, `per_pass` images a pass:
/// the passes' products summed in P, then one transform into dW.
pub fn backward_weight_in_passes(
    ctx: &Context,
    run: &Conv2dGeometry,
    [dy, x]: [&GpuBuffer; 2],
    dw: &GpuBuffer,
    mode: Output,
    per_pass: usize,
) -> Result<()> {
    const K: &str = "winograd_backward_weight";
    for (name, buffer, len) in [("dy", dy, run.y_len()), ("x", x, run.x_len()), ("dw", dw, run.weight_len())] {
        need(K, name, buffer, len)?;
    }
    let (c_in, c_out) = (run.c_in, run.c_out);
    let base = Params { accumulate: (mode == Output::Accumulate) as u32, ..params(run) };
    let most = per_pass.min(run.batch) * tiles_per_image(run);
    let (v, e) = (ctx.alloc(POSITIONS * c_in * most)?, ctx.alloc(POSITIONS * c_out * most)?);
    let sums = ctx.alloc(POSITIONS * c_out * c_in)?;
    for (first, images) in passes(run, per_pass) {
        let p = Params { images: images as u32, first_image: first as u32, ..base };
        let tiles = images * tiles_per_image(run);
        dispatch_1d(ctx, &INPUT_TRANSFORM, &p, c_in * tiles, &[x], &v)?;
        dispatch_1d(ctx, &GRAD_OUTPUT_TRANSFORM, &p, c_out * tiles, &[dy], &e)?;
        let a = MatView::row_major(&e, c_out, tiles);
        let b = MatView::row_major(&v, c_in, tiles).t();
        let args = MatmulArgs {
            batch: POSITIONS,
            accumulate: first > 0,
            ..MatmulArgs::new(a, b, &sums, [c_out, c_in, tiles])
        };
        matmul::matmul(ctx, &args)?;
    }
    dispatch_1d(ctx, &WEIGHT_GRAD_TRANSFORM, &base, c_out * c_in, &[&sums], dw)
}
