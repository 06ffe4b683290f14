//! Element-wise kernels: unary maps, binary maps (same shape or broadcast through strided
//! layouts), and the fused gradient helpers the autograd backward passes use.

use rayon::prelude::*;

use crate::dtype::Float;
use crate::shape::Layout;

/// Below this many elements a kernel runs on one thread: rayon's fork/join costs more.
pub const PARALLEL_THRESHOLD: usize = 1 << 15;
const CHUNK: usize = 1 << 13;

/// Element-wise functions of one tensor. Parameters are carried as f64 and converted once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
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
    /// 1 / (1 + e⁻ˣ), see [`sigmoid`].
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// ln(1 + eˣ), computed stably as max(x, 0) + ln(1 + e^−|x|).
    Softplus,
    /// 1 / x.
    Recip,
    /// x².
    Square,
    /// x where x > 0, slope·x elsewhere.
    LeakyRelu(f64),
    /// xᵖ.
    Powf(f64),
    /// x clamped to `[lo, hi]`.
    Clamp(f64, f64),
    /// x + s.
    AddScalar(f64),
    /// x · s.
    MulScalar(f64),
}

/// Element-wise functions of two tensors (broadcast to a common shape).
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
    /// Comparisons give 1 where true, 0 where false.
    Gt,
    /// a ≥ b.
    Ge,
    /// a < b.
    Lt,
    /// a ≤ b.
    Le,
    /// a = b.
    Eq,
    /// Gradient helpers, `(grad_out, saved) -> grad_in`, fused so backward is one pass.
    /// relu: saved = x, g where x > 0.
    ReluGrad,
    /// leaky_relu(slope): saved = x, g or slope·g.
    LeakyReluGrad(f64),
    /// sigmoid: saved = y = σ(x), g·y·(1 − y).
    SigmoidGrad,
    /// tanh: saved = y = tanh(x), g·(1 − y²).
    TanhGrad,
    /// abs: saved = x, g·sign(x).
    AbsGrad,
    /// softplus: saved = x, g·σ(x).
    SoftplusGrad,
    /// clamp(lo, hi): saved = x, g where lo ≤ x ≤ hi (PyTorch passes the bounds through).
    ClampGrad(f64, f64),
}

impl UnaryOp {
    /// The op's name in snake case (profiles, error messages).
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Abs => "abs",
            UnaryOp::Relu => "relu",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Softplus => "softplus",
            UnaryOp::Recip => "recip",
            UnaryOp::Square => "square",
            UnaryOp::LeakyRelu(_) => "leaky_relu",
            UnaryOp::Powf(_) => "powf",
            UnaryOp::Clamp(_, _) => "clamp",
            UnaryOp::AddScalar(_) => "add_scalar",
            UnaryOp::MulScalar(_) => "mul_scalar",
        }
    }
}

impl BinaryOp {
    /// The op's name in snake case (profiles, error messages).
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Eq => "eq",
            BinaryOp::ReluGrad => "relu_grad",
            BinaryOp::LeakyReluGrad(_) => "leaky_relu_grad",
            BinaryOp::SigmoidGrad => "sigmoid_grad",
            BinaryOp::TanhGrad => "tanh_grad",
            BinaryOp::AbsGrad => "abs_grad",
            BinaryOp::SoftplusGrad => "softplus_grad",
            BinaryOp::ClampGrad(_, _) => "clamp_grad",
        }
    }
}

/// 1 / (1 + e⁻ˣ), branching on the sign of x so that exp never overflows.
#[inline(always)]
pub fn sigmoid<T: Float>(x: T) -> T {
    // Two branches so exp never overflows.
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

/// ln(1 + eˣ) as max(x, 0) + ln(1 + e^−|x|), which never overflows.
#[inline(always)]
pub fn softplus<T: Float>(x: T) -> T {
    x.max(T::ZERO) + (-x.abs()).exp().ln_1p()
}

/// out\[i\] = f(x\[i\]), in parallel for large inputs.
pub fn map<T: Float>(x: &[T], f: impl Fn(T) -> T + Sync + Send) -> Vec<T> {
    let mut out = vec![T::ZERO; x.len()];
    if x.len() < PARALLEL_THRESHOLD {
        out.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v));
    } else {
        out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(o, i)| {
            o.iter_mut().zip(i).for_each(|(o, &v)| *o = f(v));
        });
    }
    out
}

/// out\[i\] = f(a\[i\], b\[i\]) for equal-length inputs.
pub fn zip_map<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync + Send) -> Vec<T> {
    debug_assert_eq!(a.len(), b.len());
    let mut out = vec![T::ZERO; a.len()];
    if a.len() < PARALLEL_THRESHOLD {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
    } else {
        out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).zip(b.par_chunks(CHUNK)).for_each(|((o, a), b)| {
            for ((o, &x), &y) in o.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        });
    }
    out
}

/// out\[i\] = f(a\[ia\], b\[ib\]) where ia, ib walk `la` and `lb`, two layouts already broadcast
/// to the same shape (stride 0 on broadcast dims). Rows of the last dimension run tight.
pub fn zip_map_strided<T: Float>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Vec<T> {
    let shape = &la.shape;
    let n = la.numel();
    let mut out = vec![T::ZERO; n];
    if n == 0 {
        return out;
    }
    let rank = shape.len();
    if rank == 0 {
        out[0] = f(a[la.offset], b[lb.offset]);
        return out;
    }
    let inner = shape[rank - 1];
    let (sa, sb) = (la.strides[rank - 1], lb.strides[rank - 1]);
    let row_base = |mut row: usize| {
        // Decompose the row number over the outer dims into storage offsets.
        let (mut oa, mut ob) = (la.offset, lb.offset);
        for d in (0..rank - 1).rev() {
            let i = row % shape[d];
            row /= shape[d];
            oa += i * la.strides[d];
            ob += i * lb.strides[d];
        }
        (oa, ob)
    };
    let do_row = |row: usize, o: &mut [T]| {
        let (oa, ob) = row_base(row);
        for (j, o) in o.iter_mut().enumerate() {
            *o = f(a[oa + j * sa], b[ob + j * sb]);
        }
    };
    if inner == 0 {
        return out;
    }
    if n < PARALLEL_THRESHOLD {
        out.chunks_mut(inner).enumerate().for_each(|(r, o)| do_row(r, o));
    } else {
        out.par_chunks_mut(inner).enumerate().for_each(|(r, o)| do_row(r, o));
    }
    out
}

/// Applies a unary op.
pub fn unary<T: Float>(x: &[T], op: UnaryOp) -> Vec<T> {
    let c = T::from_f64;
    match op {
        UnaryOp::Neg => map(x, |v| -v),
        UnaryOp::Exp => map(x, |v| v.exp()),
        UnaryOp::Log => map(x, |v| v.ln()),
        UnaryOp::Sqrt => map(x, |v| v.sqrt()),
        UnaryOp::Abs => map(x, |v| v.abs()),
        UnaryOp::Relu => map(x, |v| if v > T::ZERO { v } else { T::ZERO }),
        UnaryOp::Sigmoid => map(x, sigmoid),
        UnaryOp::Tanh => map(x, |v| v.tanh()),
        UnaryOp::Softplus => map(x, softplus),
        UnaryOp::Recip => map(x, |v| T::ONE / v),
        UnaryOp::Square => map(x, |v| v * v),
        UnaryOp::LeakyRelu(s) => {
            let s = c(s);
            map(x, move |v| if v > T::ZERO { v } else { s * v })
        }
        UnaryOp::Powf(p) => {
            let p = c(p);
            map(x, move |v| v.powf(p))
        }
        UnaryOp::Clamp(lo, hi) => {
            let (lo, hi) = (c(lo), c(hi));
            map(x, move |v| v.max(lo).min(hi))
        }
        UnaryOp::AddScalar(s) => {
            let s = c(s);
            map(x, move |v| v + s)
        }
        UnaryOp::MulScalar(s) => {
            let s = c(s);
            map(x, move |v| v * s)
        }
    }
}

/// The scalar function of a binary op (matched once per call, then inlined into the loop).
pub fn binary_fn<T: Float>(op: BinaryOp) -> impl Fn(T, T) -> T + Sync + Send + Copy {
    let c = T::from_f64;
    let b = |cond: bool| if cond { T::ONE } else { T::ZERO };
    // One closure per op would be faster to compile-specialise; a match inside a Copy closure
    // keeps this readable and the branch is perfectly predicted in the loop.
    let (p0, p1) = match op {
        BinaryOp::LeakyReluGrad(s) => (c(s), T::ZERO),
        BinaryOp::ClampGrad(lo, hi) => (c(lo), c(hi)),
        _ => (T::ZERO, T::ZERO),
    };
    move |x: T, y: T| match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        BinaryOp::Max => x.max(y),
        BinaryOp::Min => x.min(y),
        BinaryOp::Gt => b(x > y),
        BinaryOp::Ge => b(x >= y),
        BinaryOp::Lt => b(x < y),
        BinaryOp::Le => b(x <= y),
        BinaryOp::Eq => b(x == y),
        BinaryOp::ReluGrad => {
            if y > T::ZERO {
                x
            } else {
                T::ZERO
            }
        }
        BinaryOp::LeakyReluGrad(_) => {
            if y > T::ZERO {
                x
            } else {
                p0 * x
            }
        }
        BinaryOp::SigmoidGrad => x * y * (T::ONE - y),
        BinaryOp::TanhGrad => x * (T::ONE - y * y),
        BinaryOp::AbsGrad => {
            if y > T::ZERO {
                x
            } else if y < T::ZERO {
                -x
            } else {
                T::ZERO
            }
        }
        BinaryOp::SoftplusGrad => x * sigmoid(y),
        BinaryOp::ClampGrad(_, _) => {
            if y >= p0 && y <= p1 {
                x
            } else {
                T::ZERO
            }
        }
    }
}

/// Same-shape binary op on dense inputs.
pub fn binary<T: Float>(a: &[T], b: &[T], op: BinaryOp) -> Vec<T> {
    match op {
        // The hottest ops get their own monomorphised loop.
        BinaryOp::Add => zip_map(a, b, |x, y| x + y),
        BinaryOp::Sub => zip_map(a, b, |x, y| x - y),
        BinaryOp::Mul => zip_map(a, b, |x, y| x * y),
        BinaryOp::Div => zip_map(a, b, |x, y| x / y),
        _ => zip_map(a, b, binary_fn(op)),
    }
}

/// where(cond, a, b) on dense, same-length inputs: a where cond ≠ 0, else b.
pub fn where_select<T: Float>(cond: &[T], a: &[T], b: &[T]) -> Vec<T> {
    cond.iter().zip(a).zip(b).map(|((&c, &x), &y)| if c != T::ZERO { x } else { y }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_and_softplus_are_stable_at_extremes() {
        assert_eq!(sigmoid(-1000.0f64), 0.0);
        assert_eq!(sigmoid(1000.0f64), 1.0);
        assert!((softplus(1000.0f64) - 1000.0).abs() < 1e-12);
        assert!(softplus(-1000.0f64) >= 0.0 && softplus(-1000.0f64) < 1e-300);
        assert!((softplus(0.0f64) - 2f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn strided_zip_broadcasts_a_column_over_rows() {
        let a = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]; // [2, 3]
        let b = [10.0f64, 20.0]; // [2, 1]
        let la = Layout::contiguous(&[2, 3]);
        let lb = Layout::contiguous(&[2, 1]).broadcast_to(&[2, 3]).unwrap();
        let out = zip_map_strided(&a, &la, &b, &lb, |x, y| x + y);
        assert_eq!(out, vec![11.0, 12.0, 13.0, 24.0, 25.0, 26.0]);
    }
}
