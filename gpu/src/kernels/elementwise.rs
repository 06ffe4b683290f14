//! Element-wise launchers. `shaders/strided.wgsl` holds the strided-view machinery and the
//! kernels that need nothing else (strided copy, `where`, fill); `shaders/elementwise.wgsl`
//! holds the op kernels (unary, unary backward, binary), whose `switch`es are filled from an
//! op table: this crate knows how to launch an op by its code, the table (the `tensor`
//! crate's `elementwise_table`) knows what each code computes. [`ElementwiseShader::new`]
//! assembles the two files into one shader, and each op launched gets its own pipeline of
//! it, the op's code fixed as the pipeline constant `OP` (see the shader's header for why).
//!
//! Every operand is a strided view ([`View`]): NumPy broadcasting through stride-0 axes,
//! permuted and narrowed layouts read in place.

use crate::buffer_pool::GpuBuffer;
use crate::context::Context;
use crate::error::{invalid, Result};
use crate::kernels::{window_len, windows, WG};
use crate::pipeline_cache::{KernelDef, PipelineConstant, Shader};

/// The WGSL source of `shaders/strided.wgsl`.
pub static STRIDED: Shader = Shader { name: "strided.wgsl", source: include_str!("../../../shaders/strided.wgsl") };
/// The template `shaders/elementwise.wgsl`, before its switches are filled.
pub const OPS_TEMPLATE: &str = include_str!("../../../shaders/elementwise.wgsl");
/// `dst` = `src` over strided views.
pub static COPY: KernelDef = KernelDef::new(&STRIDED, "copy", 1, 1);
/// out = cond ≠ 0 ? a : b, over strided views.
pub static WHERE: KernelDef = KernelDef::new(&STRIDED, "where_select", 3, 1);
/// Fills a buffer with one value.
pub static FILL: KernelDef = KernelDef::new(&STRIDED, "fill", 0, 1);
/// The VAE's sample z = μ + e^{½·log σ²}·ε from (μ, log σ², ε), through [`map3`].
pub static REPARAMETERIZE: KernelDef = KernelDef::new(&STRIDED, "reparameterize", 3, 1);
/// Its gradient with respect to log σ², ((g·ε)·e^{½·log σ²})·½, from (g, log σ², ε).
pub static REPARAMETERIZE_BACKWARD: KernelDef = KernelDef::new(&STRIDED, "reparameterize_backward", 3, 1);
/// The gradient of (a − b)² with respect to a, g·(a − b)·2, from (g, a, b).
pub static SQUARED_DIFFERENCE_BACKWARD: KernelDef = KernelDef::new(&STRIDED, "squared_difference_backward", 3, 1);

/// Highest rank the shader's Params hold (after merging contiguous axes, see [`coalesce`]).
pub const MAX_RANK: usize = 6;

/// Mirrors `struct Params` in strided.wgsl (208 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Number of output elements.
    pub n: u32,
    /// Number of axes in `shape` and the stride arrays.
    pub rank: u32,
    /// 1 when every view is dense from its offset: the shader skips the index math.
    pub contiguous: u32,
    /// First scalar parameter (slope, exponent, lower bound, scalar).
    pub alpha: f32,
    /// Second scalar parameter (upper bound of a clamp).
    pub beta: f32,
    /// Padding to the shader's 16-byte struct alignment; always 0.
    pub _pad: [u32; 3],
    /// Element offsets of o, a, b, c.
    pub offsets: [u32; 4],
    /// Iteration shape (first `rank` entries used).
    pub shape: [u32; 8],
    /// Strides of the output view, in elements.
    pub o_strides: [u32; 8],
    /// Strides of operand a, in elements (0 broadcasts).
    pub a_strides: [u32; 8],
    /// Strides of operand b, in elements (0 broadcasts).
    pub b_strides: [u32; 8],
    /// Strides of operand c (the `where` condition), in elements.
    pub c_strides: [u32; 8],
}

/// An op of the table with its scalar parameters, as the shader takes it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OpCode {
    /// The row's position in its table (the `case` of the shader's switch, given to the
    /// pipeline as its constant `OP`).
    pub code: u32,
    /// First scalar parameter (`alpha` in the row's WGSL).
    pub alpha: f32,
    /// Second scalar parameter (`beta`).
    pub beta: f32,
}

/// The WGSL expressions of an op table, each list in op-code order.
#[derive(Clone, Copy, Debug)]
pub struct OpTable<'a> {
    /// Unary forwards, expressions of `x`, `alpha`, `beta`.
    pub unary: &'a [&'a str],
    /// Unary backwards, expressions of `g`, `s`, `alpha`, `beta`.
    pub unary_backward: &'a [&'a str],
    /// Binary ops, expressions of `a`, `b`.
    pub binary: &'a [&'a str],
}

/// `shaders/strided.wgsl` followed by `shaders/elementwise.wgsl` with one `case` per row of
/// `table` in each switch.
pub fn assemble(table: &OpTable) -> String {
    let cases = |exprs: &[&str]| {
        let lines: Vec<String> =
            exprs.iter().enumerate().map(|(i, e)| format!("case {i}u: {{ return {e}; }}")).collect();
        lines.join("\n        ")
    };
    let ops = OPS_TEMPLATE
        .replace("{{UNARY_CASES}}", &cases(table.unary))
        .replace("{{UNARY_BACKWARD_CASES}}", &cases(table.unary_backward))
        .replace("{{BINARY_CASES}}", &cases(table.binary));
    format!("{}\n{ops}", STRIDED.source)
}

/// The op kernels compiled from one op table. Build it once per process (the shader text is
/// kept for the life of the process, as the pipeline cache keeps its pipelines).
#[derive(Debug, Clone, Copy)]
pub struct ElementwiseShader {
    shader: &'static Shader,
}

impl ElementwiseShader {
    /// The shader for `table` (see [`assemble`]).
    pub fn new(table: &OpTable) -> Self {
        let source: &'static str = Box::leak(assemble(table).into_boxed_str());
        ElementwiseShader { shader: Box::leak(Box::new(Shader { name: "elementwise.wgsl", source })) }
    }

    /// The pipeline of `entry` for the op in row `code` of its table (the WGSL's `OP`).
    fn kernel(&self, entry: &'static str, inputs: u32, code: u32) -> KernelDef {
        let constant = Some(PipelineConstant { name: "OP", value: code });
        KernelDef { shader: self.shader, entry, inputs, outputs: 1, constant }
    }

    /// out = op(x) over `shape`, both strided.
    // x, out: views at `shape`
    pub fn unary(&self, ctx: &Context, op: OpCode, x: &View, out: &View, shape: &[usize]) -> Result<()> {
        let p = params("unary", op, shape, [Some(out), Some(x), None, None])?;
        launch(ctx, &self.kernel("unary", 1, op.code), &p, &[x.buf], out.buf)
    }

    /// out = op's backward(g, saved) over `shape`, all three strided.
    // g, saved, out: views at `shape`
    pub fn unary_backward(
        &self,
        ctx: &Context,
        op: OpCode,
        g: &View,
        saved: &View,
        out: &View,
        shape: &[usize],
    ) -> Result<()> {
        let p = params("unary_backward", op, shape, [Some(out), Some(g), Some(saved), None])?;
        launch(ctx, &self.kernel("unary_backward", 2, op.code), &p, &[g.buf, saved.buf], out.buf)
    }

    /// out = op(a, b) at the broadcast shape `shape`, all three strided.
    // a, b: views at `shape` (stride 0 on broadcast axes), out: a view at `shape`
    pub fn binary(&self, ctx: &Context, code: u32, a: &View, b: &View, out: &View, shape: &[usize]) -> Result<()> {
        let op = OpCode { code, ..Default::default() };
        let p = params("binary", op, shape, [Some(out), Some(a), Some(b), None])?;
        launch(ctx, &self.kernel("binary", 2, code), &p, &[a.buf, b.buf], out.buf)
    }
}

/// A strided view of a buffer, read (or written) at the launch's iteration shape: element
/// (i_0, …) is at `offset + Σ i_d·strides[d]` (strides in elements; 0 repeats, i.e.
/// broadcasts, an axis). `strides.len()` must equal the iteration rank.
#[derive(Clone, Debug)]
pub struct View<'a> {
    /// The buffer viewed.
    pub buf: &'a GpuBuffer,
    /// One stride per iteration axis, in elements.
    pub strides: Vec<usize>,
    /// Element index of position (0, …, 0).
    pub offset: usize,
}

impl<'a> View<'a> {
    /// The whole buffer as a dense row-major array of `shape`.
    pub fn dense(buf: &'a GpuBuffer, shape: &[usize]) -> Self {
        View { buf, strides: contiguous_strides(shape), offset: 0 }
    }

    /// A dense array of shape `from` read at the broadcast shape `to` (NumPy rule: align the
    /// shapes from the right; size-1 and missing axes repeat). The caller has checked that
    /// `from` broadcasts to `to`.
    pub fn broadcast(buf: &'a GpuBuffer, from: &[usize], to: &[usize]) -> Self {
        let dense = contiguous_strides(from);
        let lead = to.len() - from.len();
        let strides =
            (0..to.len()).map(|d| if d < lead || from[d - lead] == 1 { 0 } else { dense[d - lead] }).collect();
        View { buf, strides, offset: 0 }
    }

    /// Any strided view (a permuted, narrowed or expanded tensor layout).
    pub fn strided(buf: &'a GpuBuffer, strides: &[usize], offset: usize) -> Self {
        View { buf, strides: strides.to_vec(), offset }
    }

    /// One past the largest element index this view touches at `shape` (0 for an empty shape).
    fn extent(&self, shape: &[usize]) -> usize {
        if shape.contains(&0) {
            return 0;
        }
        self.offset + shape.iter().zip(&self.strides).map(|(&n, &s)| (n - 1) * s).sum::<usize>() + 1
    }
}

/// Row-major strides of a shape, in elements.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// Merges axes that every view walks contiguously (stride\[d\] = stride[d+1]·shape[d+1]) and
/// drops size-1 axes, so a rank-8 dense tensor becomes rank 1. Returns the new shape and each
/// view's strides.
pub fn coalesce(shape: &[usize], strides: &[&[usize]]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut out_shape: Vec<usize> = Vec::new();
    let mut out_strides: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        let mergeable = !out_shape.is_empty()
            && strides.iter().zip(&out_strides).all(|(s, o)| *o.last().unwrap() == s[d] * shape[d]);
        if mergeable {
            *out_shape.last_mut().unwrap() *= shape[d];
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                *o.last_mut().unwrap() = s[d];
            }
        } else {
            out_shape.push(shape[d]);
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                o.push(s[d]);
            }
        }
    }
    (out_shape, out_strides)
}

fn pack(v: &[usize]) -> [u32; 8] {
    let mut out = [0u32; 8];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = x as u32;
    }
    out
}

/// Builds Params for views o, a, b, c (absent operands reuse o's layout) at `shape`, after
/// checking ranks, extents and the element count.
fn params(kernel: &'static str, op: OpCode, shape: &[usize], views: [Option<&View>; 4]) -> Result<Params> {
    let n: usize = shape.iter().product();
    if n > u32::MAX as usize {
        return Err(invalid(kernel, format!("{n} elements exceed u32 indexing")));
    }
    for (name, v) in ["output", "a", "b", "c"].iter().zip(&views) {
        if let Some(v) = v {
            if v.strides.len() != shape.len() {
                return Err(invalid(
                    kernel,
                    format!("{name} has {} strides for a rank-{} shape {shape:?}", v.strides.len(), shape.len()),
                ));
            }
            crate::kernels::need(kernel, name, v.buf, v.extent(shape))?;
        }
    }
    let o = views[0].expect("output view");
    let all: Vec<&View> = views.iter().map(|v| v.unwrap_or(o)).collect();
    let stride_refs: Vec<&[usize]> = all.iter().map(|v| v.strides.as_slice()).collect();
    let (cshape, cstrides) = coalesce(shape, &stride_refs);
    if cshape.len() > MAX_RANK {
        return Err(invalid(
            kernel,
            format!(
                "shape {shape:?} needs rank {} after merging contiguous axes; the kernel takes ≤ {MAX_RANK}",
                cshape.len()
            ),
        ));
    }
    let contiguous = cshape.len() <= 1 && cstrides.iter().all(|s| s.first().is_none_or(|&x| x == 1));
    Ok(Params {
        n: n as u32,
        rank: cshape.len() as u32,
        contiguous: contiguous as u32,
        alpha: op.alpha,
        beta: op.beta,
        _pad: [0; 3],
        offsets: [all[0].offset as u32, all[1].offset as u32, all[2].offset as u32, all[3].offset as u32],
        shape: pack(&cshape),
        o_strides: pack(&cstrides[0]),
        a_strides: pack(&cstrides[1]),
        b_strides: pack(&cstrides[2]),
        c_strides: pack(&cstrides[3]),
    })
}

fn launch(ctx: &Context, k: &KernelDef, p: &Params, inputs: &[&GpuBuffer], out: &GpuBuffer) -> Result<()> {
    let grid = ctx.grid_1d(k.entry, (p.n as u64).div_ceil(WG))?;
    ctx.dispatch(k, p, inputs, &[out], grid)
}

/// The strided gather: `dst` (any view) = `src` (any view) at `shape` (what makes any layout
/// contiguous, or writes into a strided slice of `dst`).
pub fn copy_strided(ctx: &Context, src: &View, dst: &View, shape: &[usize]) -> Result<()> {
    let p = params("copy", OpCode::default(), shape, [Some(dst), Some(src), None, None])?;
    launch(ctx, &COPY, &p, &[src.buf], dst.buf)
}

/// out = cond ≠ 0 ? a : b at `shape`, all four strided.
// cond, a, b, out: views at `shape`
pub fn where_select(ctx: &Context, cond: &View, a: &View, b: &View, out: &View, shape: &[usize]) -> Result<()> {
    let p = params("where_select", OpCode::default(), shape, [Some(out), Some(a), Some(b), Some(cond)])?;
    launch(ctx, &WHERE, &p, &[cond.buf, a.buf, b.buf], out.buf)
}

/// One of the three-operand maps of `shaders/strided.wgsl` ([`REPARAMETERIZE`],
/// [`REPARAMETERIZE_BACKWARD`], [`SQUARED_DIFFERENCE_BACKWARD`]): out = f(a, b, c) element by
/// element, every view read through its strides.
// a, b, c, out: views at `shape`
pub fn map3(
    ctx: &Context,
    kernel: &'static KernelDef,
    [a, b, c]: [&View; 3],
    out: &View,
    shape: &[usize],
) -> Result<()> {
    let p = params(kernel.entry, OpCode::default(), shape, [Some(out), Some(a), Some(b), Some(c)])?;
    launch(ctx, kernel, &p, &[a.buf, b.buf, c.buf], out.buf)
}

/// Sets all `buf.len()` elements to `value` (a buffer larger than one binding a window at a
/// time).
pub fn fill(ctx: &Context, buf: &GpuBuffer, value: f32) -> Result<()> {
    if buf.len() > window_len(ctx) {
        for (start, len) in windows(ctx, buf.len()) {
            let window = ctx.window(buf, start, len)?;
            fill(ctx, &window, value)?;
        }
        return Ok(());
    }
    let p = Params { n: buf.len() as u32, alpha: value, contiguous: 1, ..Default::default() };
    launch(ctx, &FILL, &p, &[], buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::wgsl_check;

    #[test]
    fn an_assembled_shader_validates_and_numbers_its_cases_by_row() {
        let table = OpTable { unary: &["-x", "x * alpha"], unary_backward: &["g", "g * alpha"], binary: &["a + b"] };
        let src = assemble(&table);
        wgsl_check::module("assembled elementwise.wgsl", &crate::pipeline_cache::with_grid(&src));
        assert!(src.contains("case 1u: { return x * alpha; }"), "{src}");
        assert!(!src.contains("_CASES}}"), "a placeholder was left unfilled");
    }

    #[test]
    fn coalesce_merges_dense_axes_and_keeps_broadcast_ones() {
        let shape = [2, 3, 4];
        let dense = contiguous_strides(&shape);
        let (s, st) = coalesce(&shape, &[&dense, &dense]);
        assert_eq!((s, st), (vec![24], vec![vec![1], vec![1]]));
        let bias = [0, 1, 0]; // a [3] bias over [2, 3, 4] as [1, 3, 1]
        let (s, st) = coalesce(&shape, &[&dense, &bias]);
        assert_eq!(s, vec![2, 3, 4]);
        assert_eq!(st[1], vec![0, 1, 0]);
        let (s, _) = coalesce(&[1, 5, 1], &[&[5, 1, 1]]);
        assert_eq!(s, vec![5]);
    }
}
