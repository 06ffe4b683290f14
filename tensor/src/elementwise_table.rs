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
//! [`UNARY_OPS`], all in this file (see `EXP_MINUS_ONE_MINUS_X`, the last one added).

use crate::dtype::Float;
use crate::shape::Layout;

/// The definition of an element-wise op of one operand, written once for f32 and f64.
/// `alpha` and `beta` are the op's scalar parameters (a slope, an exponent, clamp bounds; 0
/// when it has none).
///
/// Every formula's functions here and in [`BinaryFormula`] are `#[inline(always)]`: a kernel
/// (`cpu::elementwise::unary_kernel` and the others) calls one per element through its type
/// parameter, and where LLVM chose not to inline one (σ's, the longest body) each element
/// became a call and the loop stopped vectorising: the f32 sigmoid op took 2.5× as long as the
/// same loop inlined (`cargo bench --bench norm_interp -- elementwise`).
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

/// A point of a unary op's mathematical definition, as PyTorch computes it in float64, at the
/// row's `test_params`: the op maps `x` to `y`, and its derivative there is `dy_dx` (PyTorch's
/// choice where the op has a kink: 0 for |x| and ReLU at 0, the slope for leaky ReLU at 0, 0
/// for a clamp at its bounds). The table-wide tests hold both kernels to these numbers, which
/// come from outside the formula: a row wrong the same way in Rust and in WGSL fails here.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnaryPoint {
    /// The input.
    pub x: f64,
    /// The op's value at `x`.
    pub y: f64,
    /// The op's derivative at `x`.
    pub dy_dx: f64,
}

/// A point of a binary op's definition: the op maps (`a`, `b`) to `out` (NaN where PyTorch
/// gives NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BinaryPoint {
    /// The first operand.
    pub a: f64,
    /// The second operand.
    pub b: f64,
    /// The op's value.
    pub out: f64,
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
    /// Known values of the op's definition at `test_params` (at least three).
    pub known: &'static [UnaryPoint],
    /// The CPU forward, in f32 and f64.
    pub forward_f32: UnaryKernel<f32>,
    /// See `forward_f32`.
    pub forward_f64: UnaryKernel<f64>,
    /// The CPU backward, in f32 and f64.
    pub backward_f32: UnaryBackwardKernel<f32>,
    /// See `backward_f32`.
    pub backward_f64: UnaryBackwardKernel<f64>,
    /// The formula at one point, in f64: what the reference device maps over a tensor.
    pub reference: fn(f64, f64, f64) -> f64,
    /// The backward formula at one point (g, saved, α, β), in f64, for the reference device.
    pub reference_backward: fn(f64, f64, f64, f64) -> f64,
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
    /// See [`UnaryDef::known`].
    pub known: &'static [UnaryPoint],
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
            known: row.known,
            forward_f32: unary_kernel::<f32, F>,
            forward_f64: unary_kernel::<f64, F>,
            backward_f32: unary_backward_kernel::<f32, F>,
            backward_f64: unary_backward_kernel::<f64, F>,
            reference: F::forward::<f64>,
            reference_backward: F::backward::<f64>,
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
    /// Known values of the op's definition (at least two).
    pub known: &'static [BinaryPoint],
    /// The CPU kernel on dense operands, in f32 and f64.
    pub dense_f32: BinaryKernel<f32>,
    /// See `dense_f32`.
    pub dense_f64: BinaryKernel<f64>,
    /// The CPU kernel on broadcast layouts, in f32 and f64.
    pub strided_f32: BinaryStridedKernel<f32>,
    /// See `strided_f32`.
    pub strided_f64: BinaryStridedKernel<f64>,
    /// The formula at one point, in f64: what the reference device maps over two tensors.
    pub reference: fn(f64, f64) -> f64,
}

impl BinaryDef {
    /// The row `name`, `wgsl`, `known` with its CPU kernels instantiated from the formula `F`.
    pub const fn new<F: BinaryFormula>(name: &'static str, wgsl: &'static str, known: &'static [BinaryPoint]) -> Self {
        use crate::cpu::elementwise::{binary_kernel, binary_strided_kernel};
        BinaryDef {
            name,
            wgsl,
            known,
            dense_f32: binary_kernel::<f32, F>,
            dense_f64: binary_kernel::<f64, F>,
            strided_f32: binary_strided_kernel::<f32, F>,
            strided_f64: binary_strided_kernel::<f64, F>,
            reference: F::apply::<f64>,
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
pub static UNARY_OPS: [&UnaryDef; 18] = [
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
    &EXP_MINUS_ONE_MINUS_X,
];

/// −x.
pub static NEG: UnaryDef = UnaryDef::new::<Neg>(UnaryRow {
    name: "neg",
    wgsl: "-x",
    backward_wgsl: "-g",
    saves: Saved::Nothing,
    domain: Domain::Real,
    test_params: (0.0, 0.0),
    known: &[
        UnaryPoint { x: -2.0, y: 2.0, dy_dx: -1.0 },
        UnaryPoint { x: 0.5, y: -0.5, dy_dx: -1.0 },
        UnaryPoint { x: 3.0, y: -3.0, dy_dx: -1.0 },
    ],
});
struct Neg;
impl UnaryFormula for Neg {
    #[inline(always)]
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        -x
    }
    #[inline(always)]
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
    known: &[
        UnaryPoint { x: -1.0, y: 0.36787944117144233, dy_dx: 0.36787944117144233 },
        UnaryPoint { x: 0.0, y: 1.0, dy_dx: 1.0 },
        UnaryPoint { x: 2.0, y: 7.38905609893065, dy_dx: 7.38905609893065 },
    ],
});
struct Exp;
impl UnaryFormula for Exp {
    #[inline(always)]
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x.exp()
    }
    #[inline(always)]
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
    known: &[
        UnaryPoint { x: 0.5, y: -std::f64::consts::LN_2, dy_dx: 2.0 },
        UnaryPoint { x: 1.0, y: 0.0, dy_dx: 1.0 },
        UnaryPoint { x: 3.0, y: 1.0986122886681098, dy_dx: 0.3333333333333333 },
    ],
});
struct Log;
impl UnaryFormula for Log {
    #[inline(always)]
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x.ln()
    }
    #[inline(always)]
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
    known: &[
        UnaryPoint { x: 0.25, y: 0.5, dy_dx: 1.0 },
        UnaryPoint { x: 2.0, y: std::f64::consts::SQRT_2, dy_dx: 0.35355339059327373 },
        UnaryPoint { x: 9.0, y: 3.0, dy_dx: 0.16666666666666666 },
    ],
});
struct Sqrt;
impl UnaryFormula for Sqrt {
    #[inline(always)]
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x.sqrt()
    }
    #[inline(always)]
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
    known: &[
        UnaryPoint { x: -2.5, y: 2.5, dy_dx: -1.0 },
        UnaryPoint { x: 0.0, y: 0.0, dy_dx: 0.0 },
        UnaryPoint { x: 1.5, y: 1.5, dy_dx: 1.0 },
    ],
});
struct Abs;
impl UnaryFormula for Abs {
    #[inline(always)]
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x.abs()
    }
    #[inline(always)]
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
    known: &[
        UnaryPoint { x: -1.0, y: 0.0, dy_dx: 0.0 },
        UnaryPoint { x: 0.0, y: 0.0, dy_dx: 0.0 },
        UnaryPoint { x: 2.0, y: 2.0, dy_dx: 1.0 },
    ],
});
pub(crate) struct Relu;
impl UnaryFormula for Relu {
    #[inline(always)]
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        // `x <= 0` is false for NaN, so NaN passes through.
        if x <= T::ZERO {
            T::ZERO
        } else {
            x
        }
    }
    #[inline(always)]
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
    known: &[
        UnaryPoint { x: -2.0, y: 0.11920292202211755, dy_dx: 0.1049935854035065 },
        UnaryPoint { x: 0.0, y: 0.5, dy_dx: 0.25 },
        UnaryPoint { x: 1.0, y: 0.7310585786300049, dy_dx: 0.19661193324148185 },
    ],
});
struct Sigmoid;
impl UnaryFormula for Sigmoid {
    #[inline(always)]
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x.sigmoid()
    }
    #[inline(always)]
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
    known: &[
        UnaryPoint { x: -1.0, y: -0.7615941559557649, dy_dx: 0.41997434161402614 },
        UnaryPoint { x: 0.5, y: 0.46211715726000974, dy_dx: 0.7864477329659274 },
        UnaryPoint { x: 3.0, y: 0.9950547536867305, dy_dx: 0.009866037165440211 },
    ],
});
struct Tanh;
impl UnaryFormula for Tanh {
    #[inline(always)]
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x.tanh()
    }
    #[inline(always)]
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
    known: &[
        UnaryPoint { x: -3.0, y: 0.04858735157374206, dy_dx: 0.04742587317756678 },
        UnaryPoint { x: 0.0, y: std::f64::consts::LN_2, dy_dx: 0.5 },
        UnaryPoint { x: 2.0, y: 2.1269280110429727, dy_dx: 0.8807970779778823 },
    ],
});
struct Softplus;
impl UnaryFormula for Softplus {
    #[inline(always)]
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x.max(T::ZERO) + (-x.abs()).exp().ln_1p()
    }
    #[inline(always)]
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
    known: &[
        UnaryPoint { x: 0.5, y: 2.0, dy_dx: -4.0 },
        UnaryPoint { x: 2.0, y: 0.5, dy_dx: -0.25 },
        UnaryPoint { x: 4.0, y: 0.25, dy_dx: -0.0625 },
    ],
});
struct Recip;
impl UnaryFormula for Recip {
    #[inline(always)]
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        T::ONE / x
    }
    #[inline(always)]
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
    known: &[
        UnaryPoint { x: -3.0, y: 9.0, dy_dx: -6.0 },
        UnaryPoint { x: 0.5, y: 0.25, dy_dx: 1.0 },
        UnaryPoint { x: 2.0, y: 4.0, dy_dx: 4.0 },
    ],
});
struct Square;
impl UnaryFormula for Square {
    #[inline(always)]
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x * x
    }
    #[inline(always)]
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
    known: &[
        UnaryPoint { x: -2.0, y: -0.4, dy_dx: 0.2 },
        UnaryPoint { x: 0.0, y: 0.0, dy_dx: 0.2 },
        UnaryPoint { x: 3.0, y: 3.0, dy_dx: 1.0 },
    ],
});
struct LeakyRelu;
impl UnaryFormula for LeakyRelu {
    #[inline(always)]
    fn forward<T: Float>(x: T, slope: T, _: T) -> T {
        if x > T::ZERO {
            x
        } else {
            slope * x
        }
    }
    #[inline(always)]
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
    known: &[
        UnaryPoint { x: 0.5, y: 0.3077861033362291, dy_dx: 1.0464727513431789 },
        UnaryPoint { x: 1.0, y: 1.0, dy_dx: 1.7 },
        UnaryPoint { x: 2.5, y: 4.747861205827337, dy_dx: 3.228545619962589 },
    ],
});
struct Powf;
impl UnaryFormula for Powf {
    #[inline(always)]
    fn forward<T: Float>(x: T, e: T, _: T) -> T {
        x.powf(e)
    }
    #[inline(always)]
    fn backward<T: Float>(g: T, x: T, e: T, _: T) -> T {
        g * x.powf(e - T::ONE) * e
    }
}

/// x clamped to [α, β], NaN passing through; the gradient passes where α < x < β (as in
/// PyTorch's clamp with scalar bounds: 0 at a bound).
pub static CLAMP: UnaryDef = UnaryDef::new::<Clamp>(UnaryRow {
    name: "clamp",
    wgsl: "select(min(max(x, alpha), beta), x, is_nan(x))",
    backward_wgsl: "select(0.0, g, s > alpha && s < beta)",
    saves: Saved::Input,
    domain: Domain::Real,
    test_params: (-0.3, 0.4),
    known: &[
        UnaryPoint { x: -1.0, y: -0.3, dy_dx: 0.0 },
        UnaryPoint { x: 0.1, y: 0.1, dy_dx: 1.0 },
        UnaryPoint { x: -0.3, y: -0.3, dy_dx: 0.0 },
        UnaryPoint { x: 0.4, y: 0.4, dy_dx: 0.0 },
        UnaryPoint { x: 2.0, y: 0.4, dy_dx: 0.0 },
    ],
});
struct Clamp;
impl UnaryFormula for Clamp {
    #[inline(always)]
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
    #[inline(always)]
    fn backward<T: Float>(g: T, x: T, lo: T, hi: T) -> T {
        // Strictly inside, as PyTorch: at a bound the gradient is 0.
        if x > lo && x < hi {
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
    known: &[
        UnaryPoint { x: -1.0, y: -0.25, dy_dx: 1.0 },
        UnaryPoint { x: 0.0, y: 0.75, dy_dx: 1.0 },
        UnaryPoint { x: 2.0, y: 2.75, dy_dx: 1.0 },
    ],
});
struct AddScalar;
impl UnaryFormula for AddScalar {
    #[inline(always)]
    fn forward<T: Float>(x: T, s: T, _: T) -> T {
        x + s
    }
    #[inline(always)]
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
    known: &[
        UnaryPoint { x: -1.0, y: 1.5, dy_dx: -1.5 },
        UnaryPoint { x: 0.0, y: 0.0, dy_dx: -1.5 },
        UnaryPoint { x: 2.0, y: -3.0, dy_dx: -1.5 },
    ],
});
struct MulScalar;
impl UnaryFormula for MulScalar {
    #[inline(always)]
    fn forward<T: Float>(x: T, s: T, _: T) -> T {
        x * s
    }
    #[inline(always)]
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
    known: &[
        UnaryPoint { x: -2.0, y: -0.2384058440442351, dy_dx: -0.09078424878489547 },
        UnaryPoint { x: 0.0, y: 0.0, dy_dx: 0.5 },
        UnaryPoint { x: 1.5, y: 1.2263617142904655, dy_dx: 1.041294154299143 },
    ],
});
struct Silu;
impl UnaryFormula for Silu {
    #[inline(always)]
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x * x.sigmoid()
    }
    #[inline(always)]
    fn backward<T: Float>(g: T, x: T, _: T, _: T) -> T {
        let s = x.sigmoid();
        g * s * (T::ONE + x * (T::ONE - s))
    }
}

/// eˣ − 1 − x (≥ 0, and 0 only at x = 0); the derivative is eˣ − 1. With x = log σ² it is twice
/// KL(N(0, σ²) ‖ N(0, 1)): the variance part of a Gaussian VAE's KL term, one launch each way
/// instead of a chain of exp, add and sub with their backwards.
pub static EXP_MINUS_ONE_MINUS_X: UnaryDef = UnaryDef::new::<ExpMinusOneMinusX>(UnaryRow {
    name: "exp_minus_one_minus_x",
    wgsl: "exp(x) - 1.0 - x",
    backward_wgsl: "g * (exp(s) - 1.0)",
    saves: Saved::Input,
    domain: Domain::Real,
    test_params: (0.0, 0.0),
    known: &[
        UnaryPoint { x: -2.0, y: 1.1353352832366128, dy_dx: -0.8646647167633873 },
        UnaryPoint { x: 0.0, y: 0.0, dy_dx: 0.0 },
        UnaryPoint { x: 1.5, y: 1.9816890703380645, dy_dx: 3.4816890703380645 },
    ],
});
struct ExpMinusOneMinusX;
impl UnaryFormula for ExpMinusOneMinusX {
    #[inline(always)]
    fn forward<T: Float>(x: T, _: T, _: T) -> T {
        x.exp() - T::ONE - x
    }
    #[inline(always)]
    fn backward<T: Float>(g: T, x: T, _: T, _: T) -> T {
        g * (x.exp() - T::ONE)
    }
}

// ---------------------------------------------------------------------------------------
// The binary rows. Comparisons give 1 where true and 0 where false, in the operands' type.

/// All binary rows; a row's index is its GPU op code.
pub static BINARY_OPS: [&BinaryDef; 13] =
    [&ADD, &SUB, &MUL, &DIV, &MAX, &MIN, &GT, &GE, &LT, &LE, &EQ, &SQUARED_DIFFERENCE, &TWICE_GAUSSIAN_KL];

/// a + b.
pub static ADD: BinaryDef = BinaryDef::new::<Add>(
    "add",
    "a + b",
    &[BinaryPoint { a: 1.5, b: -2.0, out: -0.5 }, BinaryPoint { a: 0.25, b: 0.5, out: 0.75 }],
);
struct Add;
impl BinaryFormula for Add {
    #[inline(always)]
    fn apply<T: Float>(a: T, b: T) -> T {
        a + b
    }
}

/// a − b.
pub static SUB: BinaryDef = BinaryDef::new::<Sub>(
    "sub",
    "a - b",
    &[BinaryPoint { a: 1.5, b: -2.0, out: 3.5 }, BinaryPoint { a: 0.25, b: 0.5, out: -0.25 }],
);
struct Sub;
impl BinaryFormula for Sub {
    #[inline(always)]
    fn apply<T: Float>(a: T, b: T) -> T {
        a - b
    }
}

/// a · b.
pub static MUL: BinaryDef = BinaryDef::new::<Mul>(
    "mul",
    "a * b",
    &[BinaryPoint { a: 1.5, b: -2.0, out: -3.0 }, BinaryPoint { a: 0.25, b: 0.5, out: 0.125 }],
);
struct Mul;
impl BinaryFormula for Mul {
    #[inline(always)]
    fn apply<T: Float>(a: T, b: T) -> T {
        a * b
    }
}

/// a / b.
pub static DIV: BinaryDef = BinaryDef::new::<Div>(
    "div",
    "a / b",
    &[BinaryPoint { a: 3.0, b: -4.0, out: -0.75 }, BinaryPoint { a: 1.0, b: 8.0, out: 0.125 }],
);
struct Div;
impl BinaryFormula for Div {
    #[inline(always)]
    fn apply<T: Float>(a: T, b: T) -> T {
        a / b
    }
}

/// max(a, b), NaN if either is (as `torch.maximum`; `f32::max` would return the other one).
pub static MAX: BinaryDef = BinaryDef::new::<Max>(
    "max",
    "select(select(max(a, b), b, is_nan(b)), a, is_nan(a))",
    &[
        BinaryPoint { a: 1.0, b: 2.0, out: 2.0 },
        BinaryPoint { a: -1.0, b: -3.0, out: -1.0 },
        BinaryPoint { a: f64::NAN, b: 1.0, out: f64::NAN },
        BinaryPoint { a: 1.0, b: f64::NAN, out: f64::NAN },
    ],
);
struct Max;
impl BinaryFormula for Max {
    #[inline(always)]
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
pub static MIN: BinaryDef = BinaryDef::new::<Min>(
    "min",
    "select(select(min(a, b), b, is_nan(b)), a, is_nan(a))",
    &[
        BinaryPoint { a: 1.0, b: 2.0, out: 1.0 },
        BinaryPoint { a: -1.0, b: -3.0, out: -3.0 },
        BinaryPoint { a: f64::NAN, b: 1.0, out: f64::NAN },
        BinaryPoint { a: 1.0, b: f64::NAN, out: f64::NAN },
    ],
);
struct Min;
impl BinaryFormula for Min {
    #[inline(always)]
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
pub static GT: BinaryDef = BinaryDef::new::<Gt>(
    "gt",
    "select(0.0, 1.0, a > b)",
    &[
        BinaryPoint { a: 2.0, b: 1.0, out: 1.0 },
        BinaryPoint { a: 1.0, b: 1.0, out: 0.0 },
        BinaryPoint { a: 1.0, b: 2.0, out: 0.0 },
    ],
);
struct Gt;
impl BinaryFormula for Gt {
    #[inline(always)]
    fn apply<T: Float>(a: T, b: T) -> T {
        one_if(a > b)
    }
}

/// 1 where a ≥ b.
pub static GE: BinaryDef = BinaryDef::new::<Ge>(
    "ge",
    "select(0.0, 1.0, a >= b)",
    &[
        BinaryPoint { a: 2.0, b: 1.0, out: 1.0 },
        BinaryPoint { a: 1.0, b: 1.0, out: 1.0 },
        BinaryPoint { a: 1.0, b: 2.0, out: 0.0 },
    ],
);
struct Ge;
impl BinaryFormula for Ge {
    #[inline(always)]
    fn apply<T: Float>(a: T, b: T) -> T {
        one_if(a >= b)
    }
}

/// 1 where a < b.
pub static LT: BinaryDef = BinaryDef::new::<Lt>(
    "lt",
    "select(0.0, 1.0, a < b)",
    &[
        BinaryPoint { a: 2.0, b: 1.0, out: 0.0 },
        BinaryPoint { a: 1.0, b: 1.0, out: 0.0 },
        BinaryPoint { a: 1.0, b: 2.0, out: 1.0 },
    ],
);
struct Lt;
impl BinaryFormula for Lt {
    #[inline(always)]
    fn apply<T: Float>(a: T, b: T) -> T {
        one_if(a < b)
    }
}

/// 1 where a ≤ b.
pub static LE: BinaryDef = BinaryDef::new::<Le>(
    "le",
    "select(0.0, 1.0, a <= b)",
    &[
        BinaryPoint { a: 2.0, b: 1.0, out: 0.0 },
        BinaryPoint { a: 1.0, b: 1.0, out: 1.0 },
        BinaryPoint { a: 1.0, b: 2.0, out: 1.0 },
    ],
);
struct Le;
impl BinaryFormula for Le {
    #[inline(always)]
    fn apply<T: Float>(a: T, b: T) -> T {
        one_if(a <= b)
    }
}

/// 1 where a = b.
pub static EQ: BinaryDef = BinaryDef::new::<Eq>(
    "eq",
    "select(0.0, 1.0, a == b)",
    &[
        BinaryPoint { a: 2.0, b: 2.0, out: 1.0 },
        BinaryPoint { a: 2.0, b: 3.0, out: 0.0 },
        BinaryPoint { a: f64::NAN, b: f64::NAN, out: 0.0 },
    ],
);
struct Eq;
impl BinaryFormula for Eq {
    #[inline(always)]
    fn apply<T: Float>(a: T, b: T) -> T {
        one_if(a == b)
    }
}

/// (a − b)²: a squared-error loss's terms in one launch where `sub` and `square` are two. The
/// difference is rounded before it is squared, so the values are `a.sub(b).square()`'s bit for bit.
pub static SQUARED_DIFFERENCE: BinaryDef = BinaryDef::new::<SquaredDifference>(
    "squared_difference",
    "(a - b) * (a - b)",
    &[BinaryPoint { a: 1.5, b: -2.0, out: 12.25 }, BinaryPoint { a: 0.25, b: 0.5, out: 0.0625 }],
);
struct SquaredDifference;
impl BinaryFormula for SquaredDifference {
    #[inline(always)]
    fn apply<T: Float>(a: T, b: T) -> T {
        let d = a - b;
        d * d
    }
}

/// a² + eᵇ − 1 − b with a = μ and b = log σ²: twice KL(N(μ, σ²) ‖ N(0, 1)), a Gaussian VAE's KL
/// term per latent, in one launch where `square`, `exp_minus_one_minus_x` and `add` are three.
/// The operations are those three's in their order, so the values are theirs bit for bit.
pub static TWICE_GAUSSIAN_KL: BinaryDef = BinaryDef::new::<TwiceGaussianKl>(
    "twice_gaussian_kl",
    "a * a + (exp(b) - 1.0 - b)",
    &[BinaryPoint { a: 1.5, b: 0.0, out: 2.25 }, BinaryPoint { a: 2.0, b: -1.0, out: 4.367879441171443 }],
);
struct TwiceGaussianKl;
impl BinaryFormula for TwiceGaussianKl {
    #[inline(always)]
    fn apply<T: Float>(a: T, b: T) -> T {
        a * a + (b.exp() - T::ONE - b)
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
    fn every_formula_is_inlined_into_its_kernel_loop() {
        // A formula left to LLVM's judgement may become a call per element (see
        // `UnaryFormula`); a row added without the attribute fails here, not in a benchmark.
        let source = include_str!("elementwise_table.rs");
        let lines: Vec<&str> = source.lines().collect();
        let mut bodies = 0;
        for (i, line) in lines.iter().enumerate() {
            let is_formula = ["fn forward<T: Float>", "fn backward<T: Float>", "fn apply<T: Float>"]
                .iter()
                .any(|f| line.trim_start().starts_with(f));
            if is_formula && line.trim_end().ends_with('{') {
                bodies += 1;
                assert_eq!(
                    lines[i - 1].trim(),
                    "#[inline(always)]",
                    "line {}: {line:?} is not #[inline(always)]",
                    i + 1
                );
            }
        }
        assert_eq!(bodies, 2 * UNARY_OPS.len() + BINARY_OPS.len(), "a formula body was not found");
    }

    /// `got` within `rel` of `want` (relative, or absolute near 0), NaN only where NaN is wanted.
    fn close(got: f64, want: f64, rel: f64) -> bool {
        if want.is_nan() {
            return got.is_nan();
        }
        (got - want).abs() <= rel * want.abs().max(1.0)
    }

    #[test]
    fn every_unary_row_meets_its_known_values_in_f64_and_f32() {
        for def in UNARY_OPS {
            assert!(def.known.len() >= 3, "{}: give at least three known values", def.name);
            let (a, b) = def.test_params;
            for p in def.known {
                let saved = |y: f64| match def.saves {
                    Saved::Input => p.x,
                    Saved::Output => y,
                    Saved::Nothing => f64::NAN,
                };
                let y64 = (def.forward_f64)(&[p.x], a, b)[0];
                let d64 = (def.backward_f64)(&[1.0], &[saved(y64)], a, b)[0];
                assert!(close(y64, p.y, 1e-14), "{}({}) = {y64} in f64, PyTorch {}", def.name, p.x, p.y);
                assert!(close(d64, p.dy_dx, 1e-14), "{}'({}) = {d64} in f64, PyTorch {}", def.name, p.x, p.dy_dx);
                let y32 = (def.forward_f32)(&[p.x as f32], a as f32, b as f32)[0];
                let d32 = (def.backward_f32)(&[1.0], &[saved(y32 as f64) as f32], a as f32, b as f32)[0];
                assert!(close(y32 as f64, p.y, 1e-6), "{}({}) = {y32} in f32, PyTorch {}", def.name, p.x, p.y);
                assert!(close(d32 as f64, p.dy_dx, 1e-6), "{}'({}) = {d32} in f32, PyTorch {}", def.name, p.x, p.dy_dx);
            }
        }
    }

    #[test]
    fn every_binary_row_meets_its_known_values_in_f64_and_f32() {
        for def in BINARY_OPS {
            assert!(def.known.len() >= 2, "{}: give at least two known values", def.name);
            for p in def.known {
                let out64 = (def.dense_f64)(&[p.a], &[p.b])[0];
                let out32 = (def.dense_f32)(&[p.a as f32], &[p.b as f32])[0];
                assert!(close(out64, p.out, 1e-15), "{}({}, {}) = {out64}, PyTorch {}", def.name, p.a, p.b, p.out);
                assert!(
                    close(out32 as f64, p.out, 1e-7),
                    "{}({}, {}) = {out32} in f32, PyTorch {}",
                    def.name,
                    p.a,
                    p.b,
                    p.out
                );
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
