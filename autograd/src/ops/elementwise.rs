//! Element-wise ops on vars, forward and backward together. Broadcast inputs get their
//! gradient summed back to their own shape (`sum_to_shape`).

use tensor::elementwise_table::{self as table, Saved};
use tensor::ops::elementwise::{
    binary, reparameterize as reparameterize_forward, reparameterize_backward, squared_difference_backward, unary,
    unary_backward, where_cond, UnaryOp,
};
use tensor::ops::reduce::sum_to_shape;
use tensor::{Result, Tensor};

use crate::var::Var;

/// Computes an input's gradient only if that input takes one.
pub(crate) fn grad_if(need: bool, f: impl FnOnce() -> Result<Tensor>) -> Result<Option<Tensor>> {
    if need {
        f().map(Some)
    } else {
        Ok(None)
    }
}

/// a + b, element-wise with broadcasting; each input's gradient is g summed back to its shape.
pub fn add(a: &Var, b: &Var) -> Result<Var> {
    let out = a.value().add(&b.value())?;
    let (sa, sb, na, nb) = (a.shape(), b.shape(), a.requires_grad(), b.requires_grad());
    // out = a + b: both inputs receive g, summed over the dims they were broadcast along.
    Ok(Var::from_op("add", out, &[a, b], move |g| {
        Ok(vec![grad_if(na, || sum_to_shape(g, &sa))?, grad_if(nb, || sum_to_shape(g, &sb))?])
    }))
}

/// a − b, element-wise with broadcasting.
pub fn sub(a: &Var, b: &Var) -> Result<Var> {
    let out = a.value().sub(&b.value())?;
    let (sa, sb, na, nb) = (a.shape(), b.shape(), a.requires_grad(), b.requires_grad());
    Ok(Var::from_op("sub", out, &[a, b], move |g| {
        Ok(vec![grad_if(na, || sum_to_shape(g, &sa))?, grad_if(nb, || sum_to_shape(&g.neg()?, &sb))?])
    }))
}

/// a · b, element-wise with broadcasting.
pub fn mul(a: &Var, b: &Var) -> Result<Var> {
    let (av, bv) = (a.value(), b.value());
    let out = av.mul(&bv)?;
    let (sa, sb, na, nb) = (a.shape(), b.shape(), a.requires_grad(), b.requires_grad());
    // d(a·b)/da = b, d(a·b)/db = a.
    Ok(Var::from_op("mul", out, &[a, b], move |g| {
        Ok(vec![grad_if(na, || sum_to_shape(&g.mul(&bv)?, &sa))?, grad_if(nb, || sum_to_shape(&g.mul(&av)?, &sb))?])
    }))
}

/// a / b, element-wise with broadcasting.
pub fn div(a: &Var, b: &Var) -> Result<Var> {
    let (av, bv) = (a.value(), b.value());
    let out = av.div(&bv)?;
    let (sa, sb, na, nb) = (a.shape(), b.shape(), a.requires_grad(), b.requires_grad());
    // d(a/b)/da = 1/b; d(a/b)/db = −a/b².
    Ok(Var::from_op("div", out, &[a, b], move |g| {
        Ok(vec![
            grad_if(na, || sum_to_shape(&g.div(&bv)?, &sa))?,
            grad_if(nb, || sum_to_shape(&g.mul(&av)?.div(&bv.square()?)?.neg()?, &sb))?,
        ])
    }))
}

/// where(cond, a, b): the gradient goes to a where cond ≠ 0 and to b elsewhere.
/// `cond` is a plain tensor of 0/1 (comparisons make one); it takes no gradient.
pub fn where_cond_var(cond: &Tensor, a: &Var, b: &Var) -> Result<Var> {
    let out = where_cond(cond, &a.value(), &b.value())?;
    let (sa, sb, na, nb, c) = (a.shape(), b.shape(), a.requires_grad(), b.requires_grad(), cond.clone());
    Ok(Var::from_op("where", out, &[a, b], move |g| {
        let zero = Tensor::zeros_on(&[], g.dtype(), &g.device())?;
        Ok(vec![
            grad_if(na, || sum_to_shape(&where_cond(&c, g, &zero)?, &sa))?,
            grad_if(nb, || sum_to_shape(&where_cond(&c, &zero, g)?, &sb))?,
        ])
    }))
}

/// The VAE's sample z = μ + e^{½·log σ²}·ε as one op (`tensor::ops::elementwise::reparameterize`);
/// ε is a plain tensor (the noise) and takes no gradient. ∂z/∂μ passes g on as it is, and
/// ∂z/∂log σ² is ½·g·ε·e^{½·log σ²}, one pass (`reparameterize_backward`). The same values, bit
/// for bit on the CPU, as `mu.add(&logvar.mul_scalar(0.5)?.exp()?.mul(&Var::constant(eps))?)`.
// mu, logvar, eps: the same shape (e.g. [N, z]) → z: that shape
pub fn reparameterize(mu: &Var, logvar: &Var, eps: &Tensor) -> Result<Var> {
    let (lv, e) = (logvar.value(), eps.clone());
    let z = reparameterize_forward(&mu.value(), &lv, &e)?;
    let (nm, nl) = (mu.requires_grad(), logvar.requires_grad());
    Ok(Var::from_op("reparameterize", z, &[mu, logvar], move |g| {
        Ok(vec![grad_if(nm, || Ok(g.clone()))?, grad_if(nl, || reparameterize_backward(g, &lv, &e))?])
    }))
}

/// (a − b)² element-wise with broadcasting, as one op (the table's `squared_difference` row):
/// a squared-error loss's terms in one launch each way where `sub` then `square` are two
/// forward. ∂/∂a is g·(a − b)·2 in one pass (`squared_difference_backward`), ∂/∂b its negation.
/// The same values, bit for bit on the CPU, as `a.sub(b)?.square()`.
pub fn squared_difference(a: &Var, b: &Var) -> Result<Var> {
    let (av, bv) = (a.value(), b.value());
    let out = binary(&av, &bv, &table::SQUARED_DIFFERENCE)?;
    let (sa, sb, na, nb, shape) = (a.shape(), b.shape(), a.requires_grad(), b.requires_grad(), out.shape().to_vec());
    Ok(Var::from_op("squared_difference", out, &[a, b], move |g| {
        let (ab, bb) = (av.broadcast_to(&shape)?, bv.broadcast_to(&shape)?);
        let grad_a = squared_difference_backward(g, &ab, &bb)?;
        Ok(vec![grad_if(na, || sum_to_shape(&grad_a, &sa))?, grad_if(nb, || sum_to_shape(&grad_a.neg()?, &sb))?])
    }))
}

/// μ² + e^{log σ²} − 1 − log σ² element-wise: twice KL(N(μ, σ²) ‖ N(0, 1)) per latent, as one
/// op (the table's `twice_gaussian_kl` row) where `square`, `exp_minus_one_minus_x` and `add`
/// are three launches forward. The backward is those rows' own (2μ·g and (e^{log σ²} − 1)·g),
/// so values and gradients are bit for bit the three ops' on the CPU.
// mu, logvar: the same shape (e.g. [N, z]) → that shape
pub fn twice_gaussian_kl(mu: &Var, logvar: &Var) -> Result<Var> {
    let (mv, lv) = (mu.value(), logvar.value());
    if mv.shape() != lv.shape() {
        return Err(tensor::TensorError::Shape {
            op: "twice_gaussian_kl",
            msg: format!("mu {:?} and logvar {:?} must have one shape", mv.shape(), lv.shape()),
        });
    }
    let out = binary(&mv, &lv, &table::TWICE_GAUSSIAN_KL)?;
    let (nm, nl) = (mu.requires_grad(), logvar.requires_grad());
    Ok(Var::from_op("twice_gaussian_kl", out, &[mu, logvar], move |g| {
        Ok(vec![
            grad_if(nm, || unary_backward(g, &mv, UnaryOp::new(&table::SQUARE)))?,
            grad_if(nl, || unary_backward(g, &lv, UnaryOp::new(&table::EXP_MINUS_ONE_MINUS_X)))?,
        ])
    }))
}

/// Any row of the element-wise op table as a var: the forward is the row's, and so is the
/// backward, one fused pass over (g, the saved x or y).
pub fn unary_op(x: &Var, op: UnaryOp) -> Result<Var> {
    let xv = x.value();
    let out = unary(&xv, op)?;
    let saved = match op.def.saves {
        Saved::Input => Some(xv),
        Saved::Output => Some(out.clone()),
        Saved::Nothing => None,
    };
    Ok(Var::from_op(op.name(), out, &[x], move |g| {
        // A row that saves nothing ignores the saved operand: g stands in for it.
        Ok(vec![Some(unary_backward(g, saved.as_ref().unwrap_or(g), op)?)])
    }))
}

/// max(x, 0); the gradient is 0 where x ≤ 0.
pub fn relu(x: &Var) -> Result<Var> {
    unary_op(x, UnaryOp::new(&table::RELU))
}

/// The gradient before a ReLU that an op applies as its epilogue (`linear_relu`,
/// `conv2d_relu`, `conv_transpose2d_relu`), from g and the op's output y: g where y > 0, else
/// 0, the ReLU row's own backward. Without a ReLU (`None`), g.
pub(crate) fn before_fused_relu(g: &Tensor, relu_output: Option<&Tensor>) -> Result<Tensor> {
    match relu_output {
        Some(y) => unary_backward(g, y, UnaryOp::new(&table::RELU)),
        None => Ok(g.clone()),
    }
}

/// x where x > 0, slope·x elsewhere.
pub fn leaky_relu(x: &Var, slope: f64) -> Result<Var> {
    unary_op(x, UnaryOp::with(&table::LEAKY_RELU, slope, 0.0))
}

/// 1 / (1 + e⁻ˣ).
pub fn sigmoid(x: &Var) -> Result<Var> {
    unary_op(x, UnaryOp::new(&table::SIGMOID))
}

/// x·σ(x) (SiLU).
pub fn silu(x: &Var) -> Result<Var> {
    unary_op(x, UnaryOp::new(&table::SILU))
}

/// eˣ − 1 − x (with x = log σ², twice the KL of N(0, σ²) from N(0, 1)).
pub fn exp_minus_one_minus_x(x: &Var) -> Result<Var> {
    unary_op(x, UnaryOp::new(&table::EXP_MINUS_ONE_MINUS_X))
}

/// Hyperbolic tangent.
pub fn tanh(x: &Var) -> Result<Var> {
    unary_op(x, UnaryOp::new(&table::TANH))
}

/// |x|; the gradient is sign(x).
pub fn abs(x: &Var) -> Result<Var> {
    unary_op(x, UnaryOp::new(&table::ABS))
}

/// ln(1 + eˣ), computed stably.
pub fn softplus(x: &Var) -> Result<Var> {
    unary_op(x, UnaryOp::new(&table::SOFTPLUS))
}

/// x clamped to `[lo, hi]`; the gradient is 0 outside the open range (at a bound too, as in
/// PyTorch).
pub fn clamp(x: &Var, lo: f64, hi: f64) -> Result<Var> {
    unary_op(x, UnaryOp::with(&table::CLAMP, lo, hi))
}

/// −x.
pub fn neg(x: &Var) -> Result<Var> {
    unary_op(x, UnaryOp::new(&table::NEG))
}

/// eˣ.
pub fn exp(x: &Var) -> Result<Var> {
    unary_op(x, UnaryOp::new(&table::EXP))
}

/// Natural logarithm.
pub fn log(x: &Var) -> Result<Var> {
    unary_op(x, UnaryOp::new(&table::LOG))
}

/// √x.
pub fn sqrt(x: &Var) -> Result<Var> {
    unary_op(x, UnaryOp::new(&table::SQRT))
}

/// x².
pub fn square(x: &Var) -> Result<Var> {
    unary_op(x, UnaryOp::new(&table::SQUARE))
}

/// 1 / x.
pub fn recip(x: &Var) -> Result<Var> {
    unary_op(x, UnaryOp::new(&table::RECIP))
}

/// xᵖ for a scalar exponent p.
pub fn powf(x: &Var, p: f64) -> Result<Var> {
    unary_op(x, UnaryOp::with(&table::POWF, p, 0.0))
}

/// x + s for a scalar s.
pub fn add_scalar(x: &Var, s: f64) -> Result<Var> {
    unary_op(x, UnaryOp::with(&table::ADD_SCALAR, s, 0.0))
}

/// x · s for a scalar s.
pub fn mul_scalar(x: &Var, s: f64) -> Result<Var> {
    unary_op(x, UnaryOp::with(&table::MUL_SCALAR, s, 0.0))
}

/// Method shorthands: `x.mul(&w)?.add(&b)?.relu()?`.
impl Var {
    /// self + o, element-wise with broadcasting.
    pub fn add(&self, o: &Var) -> Result<Var> {
        add(self, o)
    }
    /// self − o, element-wise with broadcasting.
    pub fn sub(&self, o: &Var) -> Result<Var> {
        sub(self, o)
    }
    /// self · o, element-wise with broadcasting.
    pub fn mul(&self, o: &Var) -> Result<Var> {
        mul(self, o)
    }
    /// self / o, element-wise with broadcasting.
    pub fn div(&self, o: &Var) -> Result<Var> {
        div(self, o)
    }
    /// −self.
    pub fn neg(&self) -> Result<Var> {
        neg(self)
    }
    /// e^self.
    pub fn exp(&self) -> Result<Var> {
        exp(self)
    }
    /// Natural logarithm.
    pub fn log(&self) -> Result<Var> {
        log(self)
    }
    /// Square root.
    pub fn sqrt(&self) -> Result<Var> {
        sqrt(self)
    }
    /// self².
    pub fn square(&self) -> Result<Var> {
        square(self)
    }
    /// self^p for a scalar exponent p.
    pub fn powf(&self, p: f64) -> Result<Var> {
        powf(self, p)
    }
    /// Absolute value.
    pub fn abs(&self) -> Result<Var> {
        abs(self)
    }
    /// Clamped to `[lo, hi]`; no gradient outside the range.
    pub fn clamp(&self, lo: f64, hi: f64) -> Result<Var> {
        clamp(self, lo, hi)
    }
    /// max(self, 0).
    pub fn relu(&self) -> Result<Var> {
        relu(self)
    }
    /// self where positive, slope·self elsewhere.
    pub fn leaky_relu(&self, slope: f64) -> Result<Var> {
        leaky_relu(self, slope)
    }
    /// Logistic sigmoid.
    pub fn sigmoid(&self) -> Result<Var> {
        sigmoid(self)
    }
    /// self·σ(self) (SiLU).
    pub fn silu(&self) -> Result<Var> {
        silu(self)
    }
    /// e^self − 1 − self (with self = log σ², twice the KL of N(0, σ²) from N(0, 1)).
    pub fn exp_minus_one_minus_x(&self) -> Result<Var> {
        exp_minus_one_minus_x(self)
    }
    /// 1 / self.
    pub fn recip(&self) -> Result<Var> {
        recip(self)
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Result<Var> {
        tanh(self)
    }
    /// ln(1 + e^self).
    pub fn softplus(&self) -> Result<Var> {
        softplus(self)
    }
    /// self + s for a scalar s.
    pub fn add_scalar(&self, s: f64) -> Result<Var> {
        add_scalar(self, s)
    }
    /// self · s for a scalar s.
    pub fn mul_scalar(&self, s: f64) -> Result<Var> {
        mul_scalar(self, s)
    }
}
