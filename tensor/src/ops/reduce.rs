//! Reductions over any set of axes, with keep-dim: sum, mean, max, min, argmax, argmin,
//! var, logsumexp; and `sum_to_shape`, the reverse of broadcasting that backward passes use.

use gpu::kernels::reduce::{self as gpu_kernel, ReduceDims};

use crate::cpu::reduce as kernel;
pub use crate::descriptors::ReduceOp;
use crate::dtype::{with_float_type, Float};
use crate::error::{shape_err, Result};
use crate::gpu_parts::reduce::reduce_in_pieces_of_r;
use crate::gpu_parts::{run_gpu_in_parts, splits_into_parts, Cut};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::shape::{normalize_axis, numel};
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Sorted, de-duplicated axes; an empty list means "all axes".
fn resolve_axes(op: &'static str, axes: &[isize], rank: usize) -> Result<Vec<usize>> {
    if axes.is_empty() {
        return Ok((0..rank).collect());
    }
    let mut out = axes.iter().map(|&a| normalize_axis(op, a, rank)).collect::<Result<Vec<_>>>()?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The result shape: reduced axes removed, or kept as size 1.
fn reduced_shape(shape: &[usize], axes: &[usize], keepdim: bool) -> Vec<usize> {
    let mut out = vec![];
    for (i, &d) in shape.iter().enumerate() {
        if !axes.contains(&i) {
            out.push(d);
        } else if keepdim {
            out.push(1);
        }
    }
    out
}

/// Views x as [outer, r, inner] with the reduced axes as the middle block, copying (permuting
/// the reduced axes to the end) only when they are not already adjacent.
fn as_outer_r_inner(x: &Tensor, axes: &[usize]) -> Result<(Tensor, usize, usize, usize)> {
    let shape = x.shape();
    let adjacent = axes.windows(2).all(|w| w[1] == w[0] + 1);
    if adjacent && !axes.is_empty() {
        let (first, last) = (axes[0], axes[axes.len() - 1]);
        let outer = numel(&shape[..first]);
        let r = numel(&shape[first..=last]);
        let inner = numel(&shape[last + 1..]);
        return Ok((x.contiguous()?, outer, r, inner));
    }
    let kept: Vec<usize> = (0..x.rank()).filter(|i| !axes.contains(i)).collect();
    let perm: Vec<usize> = kept.iter().chain(axes.iter()).copied().collect();
    let outer = kept.iter().map(|&i| shape[i]).product();
    let r = axes.iter().map(|&i| shape[i]).product();
    Ok((x.permute(&perm)?.contiguous()?, outer, r, 1))
}

/// Reduces `axes` of x with `op` (an empty `axes` reduces everything to a scalar).
pub fn reduce(x: &Tensor, axes: &[isize], keepdim: bool, op: ReduceOp) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Reduce, "reduce", x);
    fn run<T: Float>(
        x: &Tensor,
        outer: usize,
        r: usize,
        inner: usize,
        op: ReduceOp,
        shape: &[usize],
    ) -> Result<Tensor> {
        Ok(Tensor::from_kernel(kernel::reduce(x.cpu_slice::<T>()?, outer, r, inner, op), shape))
    }
    let name = "reduce";
    let axes = resolve_axes(name, axes, x.rank())?;
    if axes.iter().any(|&a| x.shape()[a] == 0) && op != ReduceOp::Sum {
        return shape_err(name, format!("cannot reduce an empty axis of shape {:?} with {op:?}", x.shape()));
    }
    let out_shape = reduced_shape(x.shape(), &axes, keepdim);
    let (xc, outer, r, inner) = as_outer_r_inner(x, &axes)?;
    match xc.storage() {
        Storage::Cpu(_) => with_float_type!(x.dtype(), T => run::<T>(&xc, outer, r, inner, op, &out_shape)),
        Storage::Reference(_) => {
            let y = reference::reduce::reduce(&reference::values(&xc)?, [outer, r, inner], op);
            Ok(reference::tensor(y, &out_shape, x.dtype()))
        }
        Storage::Gpu(s) => {
            let max_len = s.context().max_binding_len();
            if !splits_into_parts(s.context(), &[r * inner, inner]) {
                return reduce_in_pieces_of_r(&xc, [outer, r, inner], op, max_len)?.reshape(&out_shape);
            }
            // Each part of `outer` reduces its own rows (one part when x fits one binding).
            let d = ReduceDims { outer, reduce: r, inner };
            let [y] = run_gpu_in_parts(
                name,
                outer,
                &[(Some(&xc), Cut::Rows)],
                [(&out_shape, Cut::Rows)],
                |ctx, part, i, [o]| {
                    gpu_kernel::reduce(ctx, op, i[0].expect("x"), o, ReduceDims { outer: part.rows, ..d })
                },
            )?;
            Ok(y)
        }
    }
}

/// Variance over `axes`, dividing by n − 1 when `unbiased` (torch.var's default), else n.
pub fn var(x: &Tensor, axes: &[isize], keepdim: bool, unbiased: bool) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Reduce, "var", x);
    fn run<T: Float>(x: &Tensor, o: usize, r: usize, i: usize, corr: usize, shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::from_kernel(kernel::variance(x.cpu_slice::<T>()?, o, r, i, corr), shape))
    }
    let axes = resolve_axes("var", axes, x.rank())?;
    let out_shape = reduced_shape(x.shape(), &axes, keepdim);
    let (xc, outer, r, inner) = as_outer_r_inner(x, &axes)?;
    let corr = usize::from(unbiased);
    if r <= corr {
        return shape_err(
            "var",
            format!("unbiased variance needs at least 2 elements per group, shape {:?}", x.shape()),
        );
    }
    match xc.storage() {
        Storage::Cpu(_) => with_float_type!(x.dtype(), T => run::<T>(&xc, outer, r, inner, corr, &out_shape)),
        Storage::Reference(_) => {
            let y = reference::reduce::variance(&reference::values(&xc)?, [outer, r, inner], corr);
            Ok(reference::tensor(y, &out_shape, x.dtype()))
        }
        // Two passes instead of a kernel of its own: Σ (x − mean)² / (r − corr), the same
        // centred formula the CPU kernel uses, so cancellation does not differ.
        Storage::Gpu(_) => {
            let axes: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
            let centred = x.sub(&reduce(x, &axes, true, ReduceOp::Mean)?)?;
            reduce(&centred.square()?, &axes, keepdim, ReduceOp::Sum)?.mul_scalar(1.0 / (r - corr) as f64)
        }
    }
}

/// Sums `grad` down to `shape`, undoing a NumPy broadcast from `shape` to `grad.shape()`.
pub fn sum_to_shape(grad: &Tensor, shape: &[usize]) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Reduce, "sum_to_shape", grad);
    if grad.shape() == shape {
        return Ok(grad.clone());
    }
    let g = grad.shape();
    if g.len() < shape.len() {
        return shape_err("sum_to_shape", format!("cannot sum {g:?} down to the higher-rank shape {shape:?}"));
    }
    let lead = g.len() - shape.len();
    let mut axes: Vec<isize> = (0..lead as isize).collect();
    for (i, &s) in shape.iter().enumerate() {
        if s == 1 && g[lead + i] != 1 {
            axes.push((lead + i) as isize);
        } else if s != g[lead + i] {
            return shape_err("sum_to_shape", format!("{g:?} is not a broadcast of {shape:?}"));
        }
    }
    if axes.is_empty() {
        return grad.reshape(shape);
    }
    reduce(grad, &axes, true, ReduceOp::Sum)?.reshape(shape)
}

impl Tensor {
    /// Sum over `axes` (all axes if empty; negative axes count from the end); `keepdim` keeps them as size 1.
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        reduce(self, axes, keepdim, ReduceOp::Sum)
    }
    /// Mean over `axes` (all if empty); `keepdim` keeps them as size 1.
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        reduce(self, axes, keepdim, ReduceOp::Mean)
    }
    /// Maximum over `axes` (all if empty).
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        reduce(self, axes, keepdim, ReduceOp::Max)
    }
    /// Minimum over `axes` (all if empty).
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        reduce(self, axes, keepdim, ReduceOp::Min)
    }
    /// ln Σ exp over `axes` (all if empty), computed without overflow.
    pub fn logsumexp(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        reduce(self, axes, keepdim, ReduceOp::LogSumExp)
    }
    /// Index of the maximum along one axis (as float values).
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        reduce(self, &[axis], keepdim, ReduceOp::ArgMax)
    }
    /// Index of the minimum along one axis (as float values).
    pub fn argmin(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        reduce(self, &[axis], keepdim, ReduceOp::ArgMin)
    }
    /// Variance over `axes` (all if empty); `unbiased` divides by n − 1 instead of n.
    pub fn var(&self, axes: &[isize], keepdim: bool, unbiased: bool) -> Result<Tensor> {
        var(self, axes, keepdim, unbiased)
    }
    /// Sum of all elements as a scalar tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        reduce(self, &[], false, ReduceOp::Sum)
    }
}
