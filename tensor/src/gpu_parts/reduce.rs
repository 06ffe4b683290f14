//! Reductions on the GPU whose reduced block is larger than one storage binding: the block is
//! cut along the reduced axis, each piece reduced by the op itself, and the pieces combined.

use crate::descriptors::ReduceOp;
use crate::error::{Result, TensorError};
use crate::ops::reduce::reduce;
use crate::tensor::Tensor;

/// A GPU reduction whose reduced block is larger than one binding: the block cut along r into
/// pieces that fit, each reduced on its own, and the partial results combined (sums added,
/// maxima and minima compared; a mean is the sum over r). The other reductions do not combine
/// this simply and are refused with a `Limit` error.
// x: [outer, r, inner] (dense) → [outer, inner]
pub(crate) fn reduce_in_pieces_of_r(
    x: &Tensor,
    [outer, r, inner]: [usize; 3],
    op: ReduceOp,
    max_len: usize,
) -> Result<Tensor> {
    const OP: &str = "reduce";
    let too_large = |why: &str| TensorError::Limit {
        op: OP,
        msg: format!(
            "{op:?} over [{outer}, {r}, {inner}] (outer, reduced, inner) is larger than one GPU binding \
             of {max_len} f32 (max_storage_buffer_binding_size), and {why}"
        ),
    };
    let combine: fn(&Tensor, &Tensor) -> Result<Tensor> = match op {
        ReduceOp::Sum | ReduceOp::Mean => Tensor::add,
        ReduceOp::Max => Tensor::maximum,
        ReduceOp::Min => Tensor::minimum,
        _ => return Err(too_large("only sum, mean, max and min are split into pieces")),
    };
    let piece = max_len / (outer * inner).max(1);
    if piece == 0 {
        return Err(too_large("not even one of its reduced elements per outer and inner index fits"));
    }
    let x = x.reshape(&[outer, r, inner])?;
    let partial_op = if op == ReduceOp::Mean { ReduceOp::Sum } else { op };
    let mut total: Option<Tensor> = None;
    for start in (0..r).step_by(piece) {
        let part = reduce(&x.narrow(1, start, piece.min(r - start))?, &[1], false, partial_op)?;
        total = Some(match total {
            None => part,
            Some(t) => combine(&t, &part)?,
        });
    }
    let total = total.ok_or_else(|| too_large("it reduces nothing"))?;
    if op == ReduceOp::Mean {
        total.mul_scalar(1.0 / r as f64)
    } else {
        Ok(total)
    }
}
