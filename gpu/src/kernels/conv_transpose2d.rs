//! conv_transpose2d launchers. No shader of their own: conv_transpose2d is by definition
//! the adjoint (in x) of the conv2d whose input is the transpose's output, so with
//! `c = g.transposed()` (that conv2d's geometry; the transpose's [C_in, C_out, kH, kW]
//! weight is read as c's [c_out, c_in, kH, kW] weight, the same memory):
//!
//!   forward          y  = conv2d backward_data(dy := x, w) on c, plus bias\[co\]
//!   backward_data    dx = conv2d forward(x := dy, w) on c
//!   backward_weight  dW = conv2d backward_weight(dy := x, x := dy) on c
//!   backward_bias    db = the channel sums of dy, as for conv2d
//!
//! all in `shaders/conv2d.wgsl`. output_padding only makes the transpose's output (c's
//! input) larger; c's kernels take OH/OW as given, so nothing else changes. The forward's
//! rung 1 is, by the same identity, conv2d's `backward_data_direct` ([`forward_direct`]).

use crate::buffer_pool::GpuBuffer;
use crate::context::Context;
use crate::descriptors::Conv2dGeometry;
use crate::error::Result;
use crate::kernels::conv2d;
use crate::kernels::Output;

/// y = conv_transpose2d(x, weight) + bias.
// x: [N, C_in, H, W], weight: [C_in, C_out, kH, kW], bias: [C_out] → y: [N, C_out, OH, OW]
pub fn forward(
    ctx: &Context,
    g: &Conv2dGeometry,
    x: &GpuBuffer,
    weight: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    y: &GpuBuffer,
) -> Result<()> {
    conv2d::backward_data_with_bias(ctx, &g.transposed(), x, weight, bias, y, Output::Overwrite)
}

/// y = conv_transpose2d(x, weight) + bias by its definition (rung 1: each output pixel
/// gathers the taps that reach it), as [`forward`] is on the implicit GEMM.
// x: [N, C_in, H, W], weight: [C_in, C_out, kH, kW], bias: [C_out] → y: [N, C_out, OH, OW]
pub fn forward_direct(
    ctx: &Context,
    g: &Conv2dGeometry,
    x: &GpuBuffer,
    weight: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    y: &GpuBuffer,
) -> Result<()> {
    conv2d::backward_data_direct(ctx, &g.transposed(), [x, weight], bias, y, Output::Overwrite)
}

// dy: [N, C_out, OH, OW], weight: [C_in, C_out, kH, kW] → dx: [N, C_in, H, W]
/// Gradient of a conv_transpose2d w.r.t. its input: a conv2d of dy (`g` is the transpose's geometry).
pub fn backward_data(
    ctx: &Context,
    g: &Conv2dGeometry,
    dy: &GpuBuffer,
    weight: &GpuBuffer,
    dx: &GpuBuffer,
    mode: Output,
) -> Result<()> {
    let c = g.transposed();
    match mode {
        Output::Overwrite => conv2d::forward(ctx, &c, dy, weight, None, dx),
        Output::Accumulate => conv2d::forward_accumulate(ctx, &c, dy, weight, dx),
    }
}

// dy: [N, C_out, OH, OW], x: [N, C_in, H, W] → dw: [C_in, C_out, kH, kW]
/// Gradient of a conv_transpose2d w.r.t. its weight.
pub fn backward_weight(
    ctx: &Context,
    g: &Conv2dGeometry,
    dy: &GpuBuffer,
    x: &GpuBuffer,
    dw: &GpuBuffer,
    mode: Output,
) -> Result<()> {
    conv2d::backward_weight(ctx, &g.transposed(), x, dy, dw, mode)
}

// dy: [N, C_out, OH, OW] → db: [C_out]
/// Gradient of a conv_transpose2d w.r.t. its bias: dy summed over batch and pixels.
pub fn backward_bias(ctx: &Context, g: &Conv2dGeometry, dy: &GpuBuffer, db: &GpuBuffer, mode: Output) -> Result<()> {
    conv2d::backward_bias(ctx, [g.batch, g.c_out, g.oh * g.ow], dy, db, mode)
}
