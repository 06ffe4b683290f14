//! Pooling launchers (`shaders/pool.wgsl`): max pool with u32 argmax indices, average pool
//! (count_include_pad = true) and global average pool, forwards and backwards.

use crate::buffer_pool::GpuBuffer;
use crate::context::Context;
use crate::descriptors::Pool2dGeometry;
use crate::descriptors::ReduceOp;
use crate::error::{invalid, Result};
use crate::kernels::reduce::{reduce, ReduceDims};
use crate::kernels::{need, WG};
use crate::pipeline_cache::{KernelDef, Shader};

/// The WGSL source of `shaders/pool.wgsl`.
pub static SHADER: Shader = Shader { name: "pool.wgsl", source: include_str!("../../../shaders/pool.wgsl") };
/// Max pooling; also writes each window's argmax index.
pub static MAX_FORWARD: KernelDef = KernelDef::new(&SHADER, "max_forward", 1, 2);
/// Gradient of max pooling, gathered per input pixel from the saved indices.
pub static MAX_BACKWARD: KernelDef = KernelDef::new(&SHADER, "max_backward", 2, 1);
/// Average pooling (padding counts toward the divisor).
pub static AVG_FORWARD: KernelDef = KernelDef::new(&SHADER, "avg_forward", 1, 1);
/// Gradient of average pooling.
pub static AVG_BACKWARD: KernelDef = KernelDef::new(&SHADER, "avg_backward", 1, 1);
/// Gradient of the per-plane mean: dy/plane to every element.
pub static GLOBAL_BACKWARD: KernelDef = KernelDef::new(&SHADER, "global_backward", 1, 1);

/// Mirrors `struct Params` in pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Independent planes (N·C).
    pub planes: u32,
    /// Input height.
    pub h: u32,
    /// Input width.
    pub w: u32,
    /// Output height.
    pub oh: u32,
    /// Output width.
    pub ow: u32,
    /// Window height.
    pub kh: u32,
    /// Window width.
    pub kw: u32,
    /// Vertical stride.
    pub sh: u32,
    /// Horizontal stride.
    pub sw: u32,
    /// Padding at top and bottom.
    pub ph: u32,
    /// Padding at left and right.
    pub pw: u32,
    /// Padding to the shader's 16-byte struct alignment; always 0.
    pub _pad: u32,
}

fn launch_params(g: &Pool2dGeometry, kernel: &'static str) -> Result<Params> {
    if g.kernel.contains(&0) || g.stride.contains(&0) {
        return Err(invalid(kernel, format!("zero kernel or stride in {g:?}")));
    }
    if g.x_len().max(g.y_len()) > u32::MAX as usize {
        return Err(invalid(kernel, format!("{g:?} exceeds u32 indexing")));
    }
    Ok(Params {
        planes: g.planes as u32,
        h: g.h as u32,
        w: g.w as u32,
        oh: g.oh as u32,
        ow: g.ow as u32,
        kh: g.kernel[0] as u32,
        kw: g.kernel[1] as u32,
        sh: g.stride[0] as u32,
        sw: g.stride[1] as u32,
        ph: g.padding[0] as u32,
        pw: g.padding[1] as u32,
        _pad: 0,
    })
}

fn grid(ctx: &Context, kernel: &'static str, invocations: usize) -> Result<[u32; 3]> {
    ctx.grid_1d(kernel, (invocations as u64).div_ceil(WG))
}

/// y = window max; `indices` (u32, read back with `Context::read_u32`) = plane-relative
/// flat index iy·W + ix of each maximum.
// x: [P, H, W] → y: [P, OH, OW], indices: [P, OH, OW] (u32)
pub fn max_forward(ctx: &Context, g: &Pool2dGeometry, x: &GpuBuffer, y: &GpuBuffer, indices: &GpuBuffer) -> Result<()> {
    const K: &str = "max_pool2d_forward";
    let p = launch_params(g, K)?;
    need(K, "x", x, g.x_len())?;
    need(K, "y", y, g.y_len())?;
    need(K, "indices", indices, g.y_len())?;
    ctx.dispatch(&MAX_FORWARD, &p, &[x], &[y, indices], grid(ctx, K, g.y_len())?)
}

/// dx\[i\] = Σ of dy over the outputs whose argmax is i.
// dy: [P, OH, OW], indices: [P, OH, OW] (u32) → dx: [P, H, W]
pub fn max_backward(
    ctx: &Context,
    g: &Pool2dGeometry,
    dy: &GpuBuffer,
    indices: &GpuBuffer,
    dx: &GpuBuffer,
) -> Result<()> {
    const K: &str = "max_pool2d_backward";
    let p = launch_params(g, K)?;
    need(K, "dy", dy, g.y_len())?;
    need(K, "indices", indices, g.y_len())?;
    need(K, "dx", dx, g.x_len())?;
    ctx.dispatch(&MAX_BACKWARD, &p, &[dy, indices], &[dx], grid(ctx, K, g.x_len())?)
}

// x: [P, H, W] → y: [P, OH, OW]
/// Average pooling of every plane of x into y.
pub fn avg_forward(ctx: &Context, g: &Pool2dGeometry, x: &GpuBuffer, y: &GpuBuffer) -> Result<()> {
    const K: &str = "avg_pool2d_forward";
    let p = launch_params(g, K)?;
    need(K, "x", x, g.x_len())?;
    need(K, "y", y, g.y_len())?;
    ctx.dispatch(&AVG_FORWARD, &p, &[x], &[y], grid(ctx, K, g.y_len())?)
}

// dy: [P, OH, OW] → dx: [P, H, W]
/// Spreads each dy element evenly over its window into dx (overwrites dx).
pub fn avg_backward(ctx: &Context, g: &Pool2dGeometry, dy: &GpuBuffer, dx: &GpuBuffer) -> Result<()> {
    const K: &str = "avg_pool2d_backward";
    let p = launch_params(g, K)?;
    need(K, "dy", dy, g.y_len())?;
    need(K, "dx", dx, g.x_len())?;
    ctx.dispatch(&AVG_BACKWARD, &p, &[dy], &[dx], grid(ctx, K, g.x_len())?)
}

fn global_params(kernel: &'static str, planes: usize, plane: usize) -> Result<Params> {
    if plane == 0 {
        return Err(invalid(kernel, "empty planes"));
    }
    if planes * plane > u32::MAX as usize {
        return Err(invalid(kernel, format!("{planes} planes of {plane} exceed u32 indexing")));
    }
    Ok(Params { planes: planes as u32, h: 1, w: plane as u32, ..Default::default() })
}

/// y\[p\] = mean of plane p: the mean reduction over each plane (`reduce`, which picks a
/// workgroup per plane for long planes and an invocation per plane for short ones, such as
/// ResNet-18's 1×1 planes at 32×32 input).
// x: [P, plane] → y: [P]
pub fn global_avg_forward(ctx: &Context, planes: usize, plane: usize, x: &GpuBuffer, y: &GpuBuffer) -> Result<()> {
    const K: &str = "global_avg_pool2d_forward";
    // Its checks (empty planes, u32 indexing) name this op rather than the reduction.
    global_params(K, planes, plane)?;
    let dims = ReduceDims { outer: planes, reduce: plane, inner: 1 };
    reduce(ctx, ReduceOp::Mean, x, y, dims)
}

// dy: [P] → dx: [P, plane]
/// dx\[p, i\] = dy\[p\] / plane.
pub fn global_avg_backward(ctx: &Context, planes: usize, plane: usize, dy: &GpuBuffer, dx: &GpuBuffer) -> Result<()> {
    const K: &str = "global_avg_pool2d_backward";
    let p = global_params(K, planes, plane)?;
    need(K, "dy", dy, planes)?;
    need(K, "dx", dx, planes * plane)?;
    ctx.dispatch(&GLOBAL_BACKWARD, &p, &[dy], &[dx], grid(ctx, K, planes * plane)?)
}
