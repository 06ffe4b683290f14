//! The element-wise op table: one row per op, and everything else follows from the rows.
//!
//! A unary op is a [`UnaryDef`]: its name, its definition in Rust (a [`UnaryFormula`],
//! generic over the float type, with the backward beside the forward), the same two formulas
//! as WGSL expressions, and which value the backward needs (the input x, the output y, or
//! nothing). From the rows:
//! - the CPU kernels are `cpu::elementwise::map` over the formula, monomorphised per op and
//!   per float type when the row is built (so every loop is the op's own, and vectorises);
//! - the GPU op code of a row is its position in [`UNARY_OPS`], and the shader's `switch`
//!   (`shaders/elementwise.wgsl`) is assembled from the rows' WGSL, one pipeline per op used
//!   (the code its pipeline constant);
//! - autograd's backward of every unary op is the row's backward (one fused pass), and the
//!   table-wide tests (CPU against the f64 definition, GPU against the CPU, finite-difference
//!   gradient checks) iterate over [`UNARY_OPS`], so a new row is tested without a new test.
//!
//! Binary ops ([`BinaryDef`], [`BINARY_OPS`]) are the same idea without a backward: theirs
//! involves broadcasting, so autograd composes it from other ops.
//!
//! Adding an op: a unit struct with its [`UnaryFormula`] impl, a `static` row, and the row in
//! [`UNARY_OPS`], all in this file (see `SILU`, the last one added).

use crate::dtype::Float;
use crate::shape::Layout;

/// The definition of an element-wise op of one operand, written once for f32 and f64.
/// `alpha` and `beta` are the op's scalar parameters (a slope, an exponent, clamp bounds; 0
/// when it has none).
pub trait UnaryFormula {
    /// y = f(x).
    fn forward<T: Float>(x: T, alpha: T, beta: T) -> T;
    /// ∂L/∂x from g = ∂L/∂y and the saved value `s` (x, y or unused, as the row's
    /// [`Saved`] says).
    fn backward<T: Float>(g: T, s: T, alpha: T, beta: T) -> T;
}

/// The definition of an element-wise op of two operands.
pub trait BinaryFormula {
    /// out = f(a, b).
    fn apply<T: Float>(a: T, b: T) -> T;
}

/// What a unary op's backward reads besides the upstream gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    /// The input x.
    Input,
    /// The output y (cheaper for ops whose derivative is a function of y, like eˣ or σ).
    Output,
    /// Nothing: the derivative is a constant (−x, x + s, x·s).
    Nothing,
}

/// Where an op is defined and smooth enough to test: the table-wide tests draw inputs here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Every real number.
    Real,
    /// x > 0 (logarithms, square roots, fractional powers).
    Positive,
}

/// A CPU forward kernel: out = f(x) with the op's (α, β).
pub type UnaryKernel<T> = fn(&[T], T, T) -> Vec<T>;
/// A CPU backward kernel: ∂L/∂x from (g, saved) with the op's (α, β).
pub type UnaryBackwardKernel<T> = fn(&[T], &[T], T, T) -> Vec<T>;
/// A CPU binary kernel on dense, equal-length operands.
pub type BinaryKernel<T> = fn(&[T], &[T]) -> Vec<T>;
/// A CPU binary kernel on two layouts broadcast to the same shape.
pub type BinaryStridedKernel<T> = fn(&[T], &Layout, &[T], &Layout) -> Vec<T>;

/// One row of the unary table.
pub struct UnaryDef {
    /// The op's name in snake case (profiles, error messages, autograd's graph).
    pub name: &'static str,
    /// The forward as a WGSL expression of `x`, `alpha` and `beta` (f32).
    pub wgsl: &'static str,
    /// The backward as a WGSL expression of `g`, `s`, `alpha` and `beta`.
    pub backward_wgsl: &'static str,
    /// What the backward reads.
    pub saves: Saved,
    /// Where the op is defined (for the table-wide tests).
    pub domain: Domain,
    /// Parameters the table-wide tests run the op with (an op without parameters ignores them).
    pub test_params: (f64, f64),
    /// The CPU forward, in f32 and f64.
    pub forward_f32: UnaryKernel<f32>,
    /// See `forward_f32`.
    pub forward_f64: UnaryKernel<f64>,
    /// The CPU backward, in f32 and f64.
    pub backward_f32: UnaryBackwardKernel<f32>,
    /// See `backward_f32`.
    pub backward_f64: UnaryBackwardKernel<f64>,
}

/// The row fields a new op writes by hand; [`UnaryDef::new`] adds the kernels.
pub struct UnaryRow {
    /// See [`UnaryDef::name`].
    pub name: &'static str,
    /// See [`UnaryDef::wgsl`].
    pub wgsl: &'static str,
    /// See [`UnaryDef::backward_wgsl`].
    pub backward_wgsl: &'static str,
    /// See [`UnaryDef::saves`].
    pub saves: Saved,
    /// See [`UnaryDef::domain`].
    pub domain: Domain,
    /// See [`UnaryDef::test_params`].
    pub test_params: (f64, f64),
}

impl UnaryDef {
    /// The row with its CPU kernels instantiated from the formula `F`.
    pub const fn new<F: UnaryFormula>(row: UnaryRow) -> Self {
        use crate::cpu::elementwise::{unary_backward_kernel, unary_kernel};
        UnaryDef {
            name: row.name,
            wgsl: row.wgsl,
            backward_wgsl: row.backward_wgsl,
            saves: row.saves,
            domain: row.domain,
            test_params: row.test_params,
            forward_f32: unary_kernel::<f32, F>,
            forward_f64: unary_kernel::<f64, F>,
            backward_f32: unary_backward_kernel::<f32, F>,
            backward_f64: unary_backward_kernel::<f64, F>,
        }
    }

    /// The row's position in [`UNARY_OPS`]: its op code in the shader.
    pub fn code(&'static self) -> u32 {
        let i = UNARY_OPS.iter().position(|d| std::ptr::eq(*d, self));
        i.expect("every UnaryDef is listed in UNARY_OPS") as u32
    }
}

impl std::fmt::Debug for UnaryDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// One row of the binary table.
pub struct BinaryDef {
    /// The op's name in snake case.
    pub name: &'static str,
    /// out = f(a, b) as a WGSL expression of `a` and `b`.
    pub wgsl: &'static str,
    /// The CPU kernel on dense operands, in f32 and f64.
    pub dense_f32: BinaryKernel<f32>,
    /// See `dense_f32`.
    pub dense_f64: BinaryKernel<f64>,
    /// The CPU kernel on broadcast layouts, in f32 and f64.
    pub strided_f32: BinaryStridedKernel<f32>,
    /// See `strided_f32`.
    pub strided_f64: BinaryStridedKernel<f64>,
}

impl BinaryDef {
    /// The row `name`, `wgsl` with its CPU kernels instantiated from the formula `F`.
    pub const fn new<F: BinaryFormula>(name: &'static str, wgsl: &'static str) -> Self {
        use crate::cpu::elementwise::{binary_kernel, binary_strided_kernel};
        BinaryDef {
            name,
            wgsl,
            dense_f32: binary_kernel::<f32, F>,
            dense_f64: binary_kernel::<f64, F>,
            strided_f32: binary_strided_kernel::<f32, F>,
            strided_f64: binary_strided_kernel::<f64, F>,
        }
    }

    /// The row's position in [`BINARY_OPS`]: its op code in the shader.
    pub fn code(&'static self) -> u32 {
        let i = BINARY_OPS.iter().position(|d| std::ptr::eq(*d, self));
        i.expect("every BinaryDef is listed in BINARY_OPS") as u32
    }
}

impl std::fmt::Debug for BinaryDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// A unary op with its parameters: what `ops::elementwise::unary` takes.
#[derive(Clone, Copy, Debug)]
pub struct UnaryOp {
    /// The row.
    pub def: &'static UnaryDef,
    /// First parameter (slope, exponent, lower bound, scalar), 0 if none.
    pub alpha: f64,
    /// Second parameter (upper bound of a clamp), 0 if none.
    pub beta: f64,
}

impl UnaryOp {
    /// An op without parameters.
    pub fn new(def: &'static UnaryDef) -> Self {
        UnaryOp { def, alpha: 0.0, beta: 0.0 }
    }

    /// An op with its parameters.
    pub fn with(def: &'static UnaryDef, alpha: f64, beta: f64) -> Self {
        UnaryOp { def, alpha, beta }
    }

    /// The op's name.
    pub fn name(&self) -> &'static str {
        self.def.name
    }
}

/// A binary op: what `ops::elementwise::binary` takes.
pub type BinaryOp = &'static BinaryDef;

// ---------------------------------------------------------------------------------------
// The unary rows. WGSL helpers the expressions may call: sigmoid(x), powf(x, e), is_nan(x)
// (all in shaders/elementwise.wgsl).

/// All unary rows; a row's index is its GPU op code.
pub static UNARY_OPS: [&UnaryDef; 17] = [
    &NEG,
    &EXP,
    &LOG,
    &SQRT,
    &ABS,
    &RELU,
    &SIGMOID,
    &TANH,
    &SOFTPLUS,
    &RECIP,
    &SQUARE,
    &LEAKY_RELU,
    &POWF,
    &CLAMP,
    &ADD_SCALAR,
    &MUL_SCALAR,
    &SILU,
];

/// −x.
pub static NEG: UnaryDef = UnaryDef::new::<Neg>(UnaryRow {
    name: "neg",
    wgsl: "-x",
    backward_wgsl: "-g",
    saves: Saved::Nothing,
    domain: Domain::Real,
    test_params: (0.0, 0.0),
});
struct Neg;
impl UnaryFormula for Neg {
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        -x
    }
    fn backward<T: Float>(g: T, _: T, _: T, _: T) -> T {
        -g
    }
}

/// eˣ; the backward reuses y = eˣ.
pub static EXP: UnaryDef = UnaryDef::new::<Exp>(UnaryRow {
    name: "exp",
    wgsl: "exp(x)",
    backward_wgsl: "g * s",
    saves: Saved::Output,
    domain: Domain::Real,
    test_params: (0.0, 0.0),
});
struct Exp;
impl UnaryFormula for Exp {
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x.exp()
    }
    fn backward<T: Float>(g: T, y: T, _: T, _: T) -> T {
        g * y
    }
}

/// Natural logarithm.
pub static LOG: UnaryDef = UnaryDef::new::<Log>(UnaryRow {
    name: "log",
    wgsl: "log(x)",
    backward_wgsl: "g / s",
    saves: Saved::Input,
    domain: Domain::Positive,
    test_params: (0.0, 0.0),
});
struct Log;
impl UnaryFormula for Log {
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x.ln()
    }
    fn backward<T: Float>(g: T, x: T, _: T, _: T) -> T {
        g / x
    }
}

/// √x; d√x/dx = 1/(2√x), from y.
pub static SQRT: UnaryDef = UnaryDef::new::<Sqrt>(UnaryRow {
    name: "sqrt",
    wgsl: "sqrt(x)",
    backward_wgsl: "g / s * 0.5",
    saves: Saved::Output,
    domain: Domain::Positive,
    test_params: (0.0, 0.0),
});
struct Sqrt;
impl UnaryFormula for Sqrt {
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x.sqrt()
    }
    fn backward<T: Float>(g: T, y: T, _: T, _: T) -> T {
        g / y * T::from_f64(0.5)
    }
}

/// |x|; the gradient is sign(x) (0 at 0, as in PyTorch).
pub static ABS: UnaryDef = UnaryDef::new::<Abs>(UnaryRow {
    name: "abs",
    wgsl: "abs(x)",
    backward_wgsl: "select(select(0.0, -g, s < 0.0), g, s > 0.0)",
    saves: Saved::Input,
    domain: Domain::Real,
    test_params: (0.0, 0.0),
});
struct Abs;
impl UnaryFormula for Abs {
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x.abs()
    }
    fn backward<T: Float>(g: T, x: T, _: T, _: T) -> T {
        if x > T::ZERO {
            g
        } else if x < T::ZERO {
            -g
        } else {
            T::ZERO
        }
    }
}

/// max(x, 0), NaN passing through (as in PyTorch); relu(x) > 0 exactly where x > 0, so the
/// backward reads y.
pub static RELU: UnaryDef = UnaryDef::new::<Relu>(UnaryRow {
    name: "relu",
    wgsl: "select(select(0.0, x, x > 0.0), x, is_nan(x))",
    backward_wgsl: "select(0.0, g, s > 0.0)",
    saves: Saved::Output,
    domain: Domain::Real,
    test_params: (0.0, 0.0),
});
struct Relu;
impl UnaryFormula for Relu {
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        // `x <= 0` is false for NaN, so NaN passes through.
        if x <= T::ZERO {
            T::ZERO
        } else {
            x
        }
    }
    fn backward<T: Float>(g: T, y: T, _: T, _: T) -> T {
        if y > T::ZERO {
            g
        } else {
            T::ZERO
        }
    }
}

/// 1 / (1 + e⁻ˣ), see `Float::sigmoid`; σ' = y·(1 − y).
pub static SIGMOID: UnaryDef = UnaryDef::new::<Sigmoid>(UnaryRow {
    name: "sigmoid",
    wgsl: "sigmoid(x)",
    backward_wgsl: "g * s * (1.0 - s)",
    saves: Saved::Output,
    domain: Domain::Real,
    test_params: (0.0, 0.0),
});
struct Sigmoid;
impl UnaryFormula for Sigmoid {
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x.sigmoid()
    }
    fn backward<T: Float>(g: T, y: T, _: T, _: T) -> T {
        g * y * (T::ONE - y)
    }
}

/// Hyperbolic tangent; tanh' = 1 − y². (tanh saturates to ±1 in f32 beyond |x| ≈ 9; the
/// WGSL clamps so drivers that compute it from e^{2x} stay away from inf/inf.)
pub static TANH: UnaryDef = UnaryDef::new::<Tanh>(UnaryRow {
    name: "tanh",
    wgsl: "tanh(clamp(x, -15.0, 15.0))",
    backward_wgsl: "g * (1.0 - s * s)",
    saves: Saved::Output,
    domain: Domain::Real,
    test_params: (0.0, 0.0),
});
struct Tanh;
impl UnaryFormula for Tanh {
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x.tanh()
    }
    fn backward<T: Float>(g: T, y: T, _: T, _: T) -> T {
        g * (T::ONE - y * y)
    }
}

/// ln(1 + eˣ), computed as max(x, 0) + ln(1 + e^−|x|), which never overflows; the
/// derivative is σ(x).
pub static SOFTPLUS: UnaryDef = UnaryDef::new::<Softplus>(UnaryRow {
    name: "softplus",
    wgsl: "max(x, 0.0) + log(1.0 + exp(-abs(x)))",
    backward_wgsl: "g * sigmoid(s)",
    saves: Saved::Input,
    domain: Domain::Real,
    test_params: (0.0, 0.0),
});
struct Softplus;
impl UnaryFormula for Softplus {
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x.max(T::ZERO) + (-x.abs()).exp().ln_1p()
    }
    fn backward<T: Float>(g: T, x: T, _: T, _: T) -> T {
        g * x.sigmoid()
    }
}

/// 1 / x; d(1/x)/dx = −1/x² = −y².
pub static RECIP: UnaryDef = UnaryDef::new::<Recip>(UnaryRow {
    name: "recip",
    wgsl: "1.0 / x",
    backward_wgsl: "-g * s * s",
    saves: Saved::Output,
    domain: Domain::Positive,
    test_params: (0.0, 0.0),
});
struct Recip;
impl UnaryFormula for Recip {
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        T::ONE / x
    }
    fn backward<T: Float>(g: T, y: T, _: T, _: T) -> T {
        -g * y * y
    }
}

/// x².
pub static SQUARE: UnaryDef = UnaryDef::new::<Square>(UnaryRow {
    name: "square",
    wgsl: "x * x",
    backward_wgsl: "g * s * 2.0",
    saves: Saved::Input,
    domain: Domain::Real,
    test_params: (0.0, 0.0),
});
struct Square;
impl UnaryFormula for Square {
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x * x
    }
    fn backward<T: Float>(g: T, x: T, _: T, _: T) -> T {
        g * x * T::from_f64(2.0)
    }
}

/// x where x > 0, α·x elsewhere (α: the slope), NaN passing through.
pub static LEAKY_RELU: UnaryDef = UnaryDef::new::<LeakyRelu>(UnaryRow {
    name: "leaky_relu",
    wgsl: "select(select(alpha * x, x, x > 0.0), x, is_nan(x))",
    backward_wgsl: "select(alpha * g, g, s > 0.0)",
    saves: Saved::Input,
    domain: Domain::Real,
    test_params: (0.2, 0.0),
});
struct LeakyRelu;
impl UnaryFormula for LeakyRelu {
    fn forward<T: Float>(x: T, slope: T, _: T) -> T {
        if x > T::ZERO {
            x
        } else {
            slope * x
        }
    }
    fn backward<T: Float>(g: T, x: T, slope: T, _: T) -> T {
        if x > T::ZERO {
            g
        } else {
            slope * g
        }
    }
}

/// x^α for a scalar exponent α; the derivative is α·x^(α−1).
pub static POWF: UnaryDef = UnaryDef::new::<Powf>(UnaryRow {
    name: "powf",
    wgsl: "powf(x, alpha)",
    backward_wgsl: "g * powf(s, alpha - 1.0) * alpha",
    saves: Saved::Input,
    domain: Domain::Positive,
    test_params: (1.7, 0.0),
});
struct Powf;
impl UnaryFormula for Powf {
    fn forward<T: Float>(x: T, e: T, _: T) -> T {
        x.powf(e)
    }
    fn backward<T: Float>(g: T, x: T, e: T, _: T) -> T {
        g * x.powf(e - T::ONE) * e
    }
}

/// x clamped to [α, β], NaN passing through; the gradient passes where α ≤ x ≤ β (as in
/// PyTorch, the bounds included).
pub static CLAMP: UnaryDef = UnaryDef::new::<Clamp>(UnaryRow {
    name: "clamp",
    wgsl: "select(min(max(x, alpha), beta), x, is_nan(x))",
    backward_wgsl: "select(0.0, g, s >= alpha && s <= beta)",
    saves: Saved::Input,
    domain: Domain::Real,
    test_params: (-0.3, 0.4),
});
struct Clamp;
impl UnaryFormula for Clamp {
    fn forward<T: Float>(x: T, lo: T, hi: T) -> T {
        // Comparisons, not max/min: those return the other operand for NaN.
        if x < lo {
            lo
        } else if x > hi {
            hi
        } else {
            x
        }
    }
    fn backward<T: Float>(g: T, x: T, lo: T, hi: T) -> T {
        if x >= lo && x <= hi {
            g
        } else {
            T::ZERO
        }
    }
}

/// x + α.
pub static ADD_SCALAR: UnaryDef = UnaryDef::new::<AddScalar>(UnaryRow {
    name: "add_scalar",
    wgsl: "x + alpha",
    backward_wgsl: "g",
    saves: Saved::Nothing,
    domain: Domain::Real,
    test_params: (0.75, 0.0),
});
struct AddScalar;
impl UnaryFormula for AddScalar {
    fn forward<T: Float>(x: T, s: T, _: T) -> T {
        x + s
    }
    fn backward<T: Float>(g: T, _: T, _: T, _: T) -> T {
        g
    }
}

/// x·α.
pub static MUL_SCALAR: UnaryDef = UnaryDef::new::<MulScalar>(UnaryRow {
    name: "mul_scalar",
    wgsl: "x * alpha",
    backward_wgsl: "g * alpha",
    saves: Saved::Nothing,
    domain: Domain::Real,
    test_params: (-1.5, 0.0),
});
struct MulScalar;
impl UnaryFormula for MulScalar {
    fn forward<T: Float>(x: T, s: T, _: T) -> T {
        x * s
    }
    fn backward<T: Float>(g: T, _: T, s: T, _: T) -> T {
        g * s
    }
}

/// x·σ(x) (SiLU, also called swish); the derivative is σ(x)·(1 + x·(1 − σ(x))).
pub static SILU: UnaryDef = UnaryDef::new::<Silu>(UnaryRow {
    name: "silu",
    wgsl: "x * sigmoid(x)",
    backward_wgsl: "g * sigmoid(s) * (1.0 + s * (1.0 - sigmoid(s)))",
    saves: Saved::Input,
    domain: Domain::Real,
    test_params: (0.0, 0.0),
});
struct Silu;
impl UnaryFormula for Silu {
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x * x.sigmoid()
    }
    fn backward<T: Float>(g: T, x: T, _: T, _: T) -> T {
        let s = x.sigmoid();
        g * s * (T::ONE + x * (T::ONE - s))
    }
}

// ---------------------------------------------------------------------------------------
// The binary rows. Comparisons give 1 where true and 0 where false, in the operands' type.

/// All binary rows; a row's index is its GPU op code.
pub static BINARY_OPS: [&BinaryDef; 11] = [&ADD, &SUB, &MUL, &DIV, &MAX, &MIN, &GT, &GE, &LT, &LE, &EQ];

/// a + b.
pub static ADD: BinaryDef = BinaryDef::new::<Add>("add", "a + b");
struct Add;
impl BinaryFormula for Add {
    fn apply<T: Float>(a: T, b: T) -> T {
        a + b
    }
}

/// a − b.
pub static SUB: BinaryDef = BinaryDef::new::<Sub>("sub", "a - b");
struct Sub;
impl BinaryFormula for Sub {
    fn apply<T: Float>(a: T, b: T) -> T {
        a - b
    }
}

/// a · b.
pub static MUL: BinaryDef = BinaryDef::new::<Mul>("mul", "a * b");
struct Mul;
impl BinaryFormula for Mul {
    fn apply<T: Float>(a: T, b: T) -> T {
        a * b
    }
}

/// a / b.
pub static DIV: BinaryDef = BinaryDef::new::<Div>("div", "a / b");
struct Div;
impl BinaryFormula for Div {
    fn apply<T: Float>(a: T, b: T) -> T {
        a / b
    }
}

/// max(a, b), NaN if either is (as `torch.maximum`; `f32::max` would return the other one).
pub static MAX: BinaryDef = BinaryDef::new::<Max>("max", "select(select(max(a, b), b, is_nan(b)), a, is_nan(a))");
struct Max;
impl BinaryFormula for Max {
    fn apply<T: Float>(a: T, b: T) -> T {
        #[allow(clippy::eq_op)] // a != a: a is NaN
        if a > b || a != a {
            a
        } else {
            b
        }
    }
}

/// min(a, b), NaN if either is (as `torch.minimum`).
pub static MIN: BinaryDef = BinaryDef::new::<Min>("min", "select(select(min(a, b), b, is_nan(b)), a, is_nan(a))");
struct Min;
impl BinaryFormula for Min {
    fn apply<T: Float>(a: T, b: T) -> T {
        #[allow(clippy::eq_op)]
        if a < b || a != a {
            a
        } else {
            b
        }
    }
}

/// 1 where a > b.
pub static GT: BinaryDef = BinaryDef::new::<Gt>("gt", "select(0.0, 1.0, a > b)");
struct Gt;
impl BinaryFormula for Gt {
    fn apply<T: Float>(a: T, b: T) -> T {
        one_if(a > b)
    }
}

/// 1 where a ≥ b.
pub static GE: BinaryDef = BinaryDef::new::<Ge>("ge", "select(0.0, 1.0, a >= b)");
struct Ge;
impl BinaryFormula for Ge {
    fn apply<T: Float>(a: T, b: T) -> T {
        one_if(a >= b)
    }
}

/// 1 where a < b.
pub static LT: BinaryDef = BinaryDef::new::<Lt>("lt", "select(0.0, 1.0, a < b)");
struct Lt;
impl BinaryFormula for Lt {
    fn apply<T: Float>(a: T, b: T) -> T {
        one_if(a < b)
    }
}

/// 1 where a ≤ b.
pub static LE: BinaryDef = BinaryDef::new::<Le>("le", "select(0.0, 1.0, a <= b)");
struct Le;
impl BinaryFormula for Le {
    fn apply<T: Float>(a: T, b: T) -> T {
        one_if(a <= b)
    }
}

/// 1 where a = b.
pub static EQ: BinaryDef = BinaryDef::new::<Eq>("eq", "select(0.0, 1.0, a == b)");
struct Eq;
impl BinaryFormula for Eq {
    fn apply<T: Float>(a: T, b: T) -> T {
        one_if(a == b)
    }
}

#[inline(always)]
fn one_if<T: Float>(cond: bool) -> T {
    if cond {
        T::ONE
    } else {
        T::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Inputs in a row's domain, with the f32 values and their exact f64 copies.
    fn inputs(def: &UnaryDef, n: usize, rng: &mut Rng) -> (Vec<f32>, Vec<f64>) {
        let x32: Vec<f32> = (0..n)
            .map(|_| {
                let u = rng.next_f64() as f32;
                match def.domain {
                    Domain::Positive => 0.05 + 4.0 * u,
                    Domain::Real => 12.0 * u - 6.0,
                }
            })
            .collect();
        let x64 = x32.iter().map(|&v| v as f64).collect();
        (x32, x64)
    }

    #[test]
    fn every_rows_f32_kernels_match_its_f64_definition() {
        // The f32 loops are what training runs (with arithmetic-only eˣ and σ for speed); the
        // f64 instantiation of the same formula is the definition they are held to.
        let mut rng = Rng::new(7);
        for def in UNARY_OPS {
            let (a, b) = def.test_params;
            let (x32, x64) = inputs(def, 4099, &mut rng);
            let (g32, g64) = inputs(&NEG, 4099, &mut rng); // any real upstream gradient
            let y32 = (def.forward_f32)(&x32, a as f32, b as f32);
            let y64 = (def.forward_f64)(&x64, a, b);
            let dx32 = (def.backward_f32)(&g32, &x32, a as f32, b as f32);
            let dx64 = (def.backward_f64)(&g64, &x64, a, b);
            for (what, got, want) in [("forward", &y32, &y64), ("backward", &dx32, &dx64)] {
                for i in 0..got.len() {
                    let err = (got[i] as f64 - want[i]).abs();
                    let tol = 1e-5 * (1.0 + want[i].abs());
                    assert!(err <= tol, "{} {what} at x = {}: f32 {} vs f64 {}", def.name, x64[i], got[i], want[i]);
                }
            }
        }
    }

    #[test]
    fn sigmoid_and_softplus_are_stable_at_extremes() {
        let f = |d: &UnaryDef, x: f64| (d.forward_f64)(&[x], 0.0, 0.0)[0];
        assert_eq!(f(&SIGMOID, -1000.0), 0.0);
        assert_eq!(f(&SIGMOID, 1000.0), 1.0);
        assert!((f(&SOFTPLUS, 1000.0) - 1000.0).abs() < 1e-12);
        assert!(f(&SOFTPLUS, -1000.0) >= 0.0 && f(&SOFTPLUS, -1000.0) < 1e-300);
        assert!((f(&SOFTPLUS, 0.0) - 2f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn names_are_unique_and_codes_are_table_positions() {
        for (i, d) in UNARY_OPS.iter().enumerate() {
            assert_eq!(d.code(), i as u32, "{}", d.name);
            assert!(UNARY_OPS.iter().filter(|e| e.name == d.name).count() == 1, "{} twice", d.name);
        }
        for (i, d) in BINARY_OPS.iter().enumerate() {
            assert_eq!(d.code(), i as u32, "{}", d.name);
            assert!(BINARY_OPS.iter().filter(|e| e.name == d.name).count() == 1, "{} twice", d.name);
        }
    }
}
