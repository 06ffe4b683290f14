//! Element-wise launchers (`shaders/elementwise.wgsl`): unary and binary maps over strided
//! views (NumPy broadcasting through stride-0 axes), `where`, strided copy and fill.

use crate::buffer_pool::GpuBuffer;
use crate::context::Context;
use crate::error::{invalid, Result};
use crate::kernels::WG;
use crate::pipeline_cache::{KernelDef, Shader};

/// The WGSL source of `shaders/elementwise.wgsl`.
pub static SHADER: Shader =
    Shader { name: "elementwise.wgsl", source: include_str!("../../../shaders/elementwise.wgsl") };
/// out = f(a) for a [`UnaryOp`], over strided views.
pub static UNARY: KernelDef = KernelDef { shader: &SHADER, entry: "unary", inputs: 1, outputs: 1 };
/// out = f(a, b) for a [`BinaryOp`], over strided (broadcast) views.
pub static BINARY: KernelDef = KernelDef { shader: &SHADER, entry: "binary", inputs: 2, outputs: 1 };
/// out = cond ≠ 0 ? a : b, over strided views.
pub static WHERE: KernelDef = KernelDef { shader: &SHADER, entry: "where_select", inputs: 3, outputs: 1 };
/// Fills a buffer with one value.
pub static FILL: KernelDef = KernelDef { shader: &SHADER, entry: "fill", inputs: 0, outputs: 1 };

/// Highest rank the shader's Params hold (after merging contiguous axes, see [`coalesce`]).
pub const MAX_RANK: usize = 6;

/// Mirrors `struct Params` in elementwise.wgsl (208 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    /// Number of output elements.
    pub n: u32,
    /// Op code (the shader's switch).
    pub op: u32,
    /// Number of axes in `shape` and the stride arrays.
    pub rank: u32,
    /// 1 when every view is dense from its offset: the shader skips the index math.
    pub contiguous: u32,
    /// First scalar parameter (slope, exponent, lower bound, scalar).
    pub alpha: f32,
    /// Second scalar parameter (upper bound of a clamp).
    pub beta: f32,
    /// Padding to the shader's 16-byte struct alignment; always 0.
    pub _pad: [u32; 2],
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

/// Element-wise functions of one operand (same list and semantics as the CPU kernels).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// The strided copy.
    Identity,
    /// −x.
    Neg,
    /// eˣ.
    Exp,
    /// Natural logarithm.
    Log,
    /// √x.
    Sqrt,
    /// |x|.
    Abs,
    /// max(x, 0).
    Relu,
    /// 1 / (1 + e⁻ˣ).
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// ln(1 + eˣ) = max(x, 0) + ln(1 + e^−|x|).
    Softplus,
    /// 1 / x.
    Recip,
    /// x².
    Square,
    /// x where x > 0, slope·x elsewhere.
    LeakyRelu(f32),
    /// xᵖ.
    Powf(f32),
    /// x clamped to `[lo, hi]`.
    Clamp(f32, f32),
    /// x + s.
    AddScalar(f32),
    /// x · s.
    MulScalar(f32),
}

impl UnaryOp {
    /// (op code, alpha, beta) as elementwise.wgsl numbers them.
    fn code(self) -> (u32, f32, f32) {
        use UnaryOp::*;
        match self {
            Identity => (0, 0.0, 0.0),
            Neg => (1, 0.0, 0.0),
            Exp => (2, 0.0, 0.0),
            Log => (3, 0.0, 0.0),
            Sqrt => (4, 0.0, 0.0),
            Abs => (5, 0.0, 0.0),
            Relu => (6, 0.0, 0.0),
            Sigmoid => (7, 0.0, 0.0),
            Tanh => (8, 0.0, 0.0),
            Softplus => (9, 0.0, 0.0),
            Recip => (10, 0.0, 0.0),
            Square => (11, 0.0, 0.0),
            LeakyRelu(s) => (12, s, 0.0),
            Powf(e) => (13, e, 0.0),
            Clamp(lo, hi) => (14, lo, hi),
            AddScalar(s) => (15, s, 0.0),
            MulScalar(s) => (16, s, 0.0),
        }
    }
}

/// Element-wise functions of two operands. The `*Grad` ops take (upstream gradient, saved
/// forward value) and return the input gradient, so a backward is one pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BinaryOp {
    /// a + b.
    Add,
    /// a − b.
    Sub,
    /// a · b.
    Mul,
    /// a / b.
    Div,
    /// max(a, b).
    Max,
    /// min(a, b).
    Min,
    /// Comparisons give 1.0 where true, 0.0 where false.
    Gt,
    /// a ≥ b.
    Ge,
    /// a < b.
    Lt,
    /// a ≤ b.
    Le,
    /// a = b.
    Eq,
    /// saved x: g where x > 0, else 0.
    ReluGrad,
    /// saved x: g where x > 0, else slope·g.
    LeakyReluGrad(f32),
    /// saved y = σ(x): g·y·(1 − y).
    SigmoidGrad,
    /// saved y = tanh(x): g·(1 − y²).
    TanhGrad,
    /// saved x: g·sign(x).
    AbsGrad,
    /// saved x: g·σ(x).
    SoftplusGrad,
    /// saved x: g where lo ≤ x ≤ hi, else 0.
    ClampGrad(f32, f32),
    /// α·a + β·b (fused scale-and-add: running statistics, SGD without momentum, …).
    Axpby(f32, f32),
}

impl BinaryOp {
    fn code(self) -> (u32, f32, f32) {
        use BinaryOp::*;
        match self {
            Add => (0, 0.0, 0.0),
            Sub => (1, 0.0, 0.0),
            Mul => (2, 0.0, 0.0),
            Div => (3, 0.0, 0.0),
            Max => (4, 0.0, 0.0),
            Min => (5, 0.0, 0.0),
            Gt => (6, 0.0, 0.0),
            Ge => (7, 0.0, 0.0),
            Lt => (8, 0.0, 0.0),
            Le => (9, 0.0, 0.0),
            Eq => (10, 0.0, 0.0),
            ReluGrad => (11, 0.0, 0.0),
            LeakyReluGrad(s) => (12, s, 0.0),
            SigmoidGrad => (13, 0.0, 0.0),
            TanhGrad => (14, 0.0, 0.0),
            AbsGrad => (15, 0.0, 0.0),
            SoftplusGrad => (16, 0.0, 0.0),
            ClampGrad(lo, hi) => (17, lo, hi),
            Axpby(a, b) => (18, a, b),
        }
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
fn params(kernel: &'static str, code: (u32, f32, f32), shape: &[usize], views: [Option<&View>; 4]) -> Result<Params> {
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
        op: code.0,
        rank: cshape.len() as u32,
        contiguous: contiguous as u32,
        alpha: code.1,
        beta: code.2,
        _pad: [0; 2],
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

/// out\[i\] = op(x\[i\]) for dense buffers: n = x.len(), out holds at least n.
pub fn unary(ctx: &Context, op: UnaryOp, x: &GpuBuffer, out: &GpuBuffer) -> Result<()> {
    let shape = [x.len()];
    map(ctx, op, &View::dense(x, &shape), &View::dense(out, &shape), &shape)
}

/// out = op(x) over `shape`, both strided: with [`UnaryOp::Identity`] this is the strided
/// copy that makes any layout contiguous (or writes into a strided slice of `out`).
// x, out: views at `shape`
pub fn map(ctx: &Context, op: UnaryOp, x: &View, out: &View, shape: &[usize]) -> Result<()> {
    let p = params("unary", op.code(), shape, [Some(out), Some(x), None, None])?;
    launch(ctx, &UNARY, &p, &[x.buf], out.buf)
}

/// The strided gather: `dst` (any view) = `src` (any view) at `shape`.
pub fn copy_strided(ctx: &Context, src: &View, dst: &View, shape: &[usize]) -> Result<()> {
    map(ctx, UnaryOp::Identity, src, dst, shape)
}

/// out = op(a, b) at the broadcast shape `shape`, written dense row-major into `out`.
// a, b: views at `shape` (stride 0 on broadcast axes) → out: [Π shape]
pub fn binary(ctx: &Context, op: BinaryOp, a: &View, b: &View, out: &GpuBuffer, shape: &[usize]) -> Result<()> {
    let o = View::dense(out, shape);
    let p = params("binary", op.code(), shape, [Some(&o), Some(a), Some(b), None])?;
    launch(ctx, &BINARY, &p, &[a.buf, b.buf], out)
}

/// out = cond ≠ 0 ? a : b at `shape`, written dense.
// cond, a, b: views at `shape` → out: [Π shape]
pub fn where_select(ctx: &Context, cond: &View, a: &View, b: &View, out: &GpuBuffer, shape: &[usize]) -> Result<()> {
    let o = View::dense(out, shape);
    let p = params("where_select", (0, 0.0, 0.0), shape, [Some(&o), Some(a), Some(b), Some(cond)])?;
    launch(ctx, &WHERE, &p, &[cond.buf, a.buf, b.buf], out)
}

/// Sets all `buf.len()` elements to `value`.
pub fn fill(ctx: &Context, buf: &GpuBuffer, value: f32) -> Result<()> {
    let p = Params { n: buf.len() as u32, alpha: value, contiguous: 1, ..Default::default() };
    launch(ctx, &FILL, &p, &[], buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::wgsl_check;

    #[test]
    fn params_size_matches_wgsl() {
        assert_eq!(std::mem::size_of::<Params>() as u32, wgsl_check::struct_size(SHADER.name, SHADER.source, "Params"));
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
