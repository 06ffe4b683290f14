//! Losses whose gradient needs care at the edge of their domain, written as one op each so that
//! the backward can be the stable formula rather than the chain rule through its parts.

use tensor::{Result, TensorError};

use crate::ops::elementwise::grad_if;
use crate::var::Var;

/// Binary cross-entropy on probabilities, element-wise:
///   ℓ = −[t·max(ln y, −100) + (1 − t)·max(ln(1 − y), −100)],
/// with PyTorch's clamp of the logs at −100, so a saturated y (exactly 0 or 1, which sigmoid
/// returns in f32 for logits beyond about ±17) costs 100, not infinity.
/// y, t: the same shape → the same shape.
///
/// Backward, as PyTorch's `binary_cross_entropy`:
///   ∂ℓ/∂y = (y − t) / max(y·(1 − y), 10⁻¹²),   ∂ℓ/∂t = max(ln(1 − y), −100) − max(ln y, −100).
/// The chain rule through `log` and `clamp` would give 0/0 = NaN at y ∈ {0, 1}: the clamp's
/// gradient is 0 there and log's is 1/0. The formula above is the exact derivative inside
/// (0, 1), and stays finite and of the right sign at the edges.
pub fn binary_cross_entropy(y: &Var, t: &Var) -> Result<Var> {
    if y.shape() != t.shape() {
        return Err(TensorError::Shape {
            op: "binary_cross_entropy",
            msg: format!("probabilities {:?} and targets {:?} differ in shape", y.shape(), t.shape()),
        });
    }
    let (yv, tv) = (y.value(), t.value());
    let log_y = yv.log()?.clamp(-100.0, 0.0)?;
    let log_1my = yv.neg()?.add_scalar(1.0)?.log()?.clamp(-100.0, 0.0)?;
    let out = tv.mul(&log_y)?.add(&tv.neg()?.add_scalar(1.0)?.mul(&log_1my)?)?.neg()?;
    let (ny, nt) = (y.requires_grad(), t.requires_grad());
    Ok(Var::from_op("binary_cross_entropy", out, &[y, t], move |g| {
        let dy = grad_if(ny, || {
            // y(1 − y) ≤ ¼, so the upper bound never binds.
            let denom = yv.mul(&yv.neg()?.add_scalar(1.0)?)?.clamp(1e-12, 1.0)?;
            g.mul(&yv.sub(&tv)?)?.div(&denom)
        })?;
        let dt = grad_if(nt, || g.mul(&log_1my.sub(&log_y)?))?;
        Ok(vec![dy, dt])
    }))
}
