//! Reductions over any set of axes, with keep-dim: sum, mean, max, min, argmax, argmin,
//! var, logsumexp; and `sum_to_shape`, the reverse of broadcasting that backward passes use.

use std::sync::Arc;

use gpu::kernels::reduce::{self as gpu_kernel, ReduceDims};
use gpu::{Context, GpuBuffer};

use crate::cpu::reduce as kernel;
pub use crate::descriptors::ReduceOp;
use crate::dtype::{DType, Float};
use crate::error::{gpu_err, shape_err, Result, TensorError};
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
        Storage::Cpu(_) => match x.dtype() {
            DType::F32 => run::<f32>(&xc, outer, r, inner, op, &out_shape),
            DType::F64 => run::<f64>(&xc, outer, r, inner, op, &out_shape),
        },
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
        Storage::Cpu(_) => match x.dtype() {
            DType::F32 => run::<f32>(&xc, outer, r, inner, corr, &out_shape),
            DType::F64 => run::<f64>(&xc, outer, r, inner, corr, &out_shape),
        },
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

    /// True when no element is NaN or ±∞ (see [`all_finite_each`]; on the GPU a host round trip).
    pub fn all_finite(&self) -> Result<bool> {
        Ok(all_finite_each(&[self])?.iter().all(|&finite| finite))
    }
}

/// For each tensor, whether none of its elements is NaN or ±∞. A CPU tensor costs one read
/// pass. The GPU tensors are checked on the device, each by one launch that sets its own slot
/// of a shared flag buffer, and the flags come back in one read: one host round trip however
/// many tensors there are (one per GPU context when they live on several).
pub fn all_finite_each(tensors: &[&Tensor]) -> Result<Vec<bool>> {
    const OP: &str = "all_finite";
    let Some(first) = tensors.first() else { return Ok(Vec::new()) };
    let _profile = profile::scope(OpFamily::Reduce, OP, first);
    let mut finite = vec![true; tensors.len()];
    let mut on_gpu: Vec<(usize, Tensor)> = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        let x = t.contiguous()?;
        match x.storage() {
            Storage::Cpu(_) => {
                finite[i] = match x.dtype() {
                    DType::F32 => kernel::all_finite(x.cpu_slice::<f32>()?),
                    DType::F64 => kernel::all_finite(x.cpu_slice::<f64>()?),
                }
            }
            Storage::Reference(_) => finite[i] = reference::values(&x)?.iter().all(|v| v.is_finite()),
            Storage::Gpu(_) => on_gpu.push((i, x)),
        }
    }
    // One flag buffer and one read per GPU context (tensors on several GPUs: one each).
    while let Some(Storage::Gpu(g)) = on_gpu.first().map(|(_, x)| x.storage()) {
        let ctx = Arc::clone(g.context());
        let on_ctx = |x: &Tensor| matches!(x.storage(), Storage::Gpu(g) if Arc::ptr_eq(g.context(), &ctx));
        let (here, rest): (Vec<_>, Vec<_>) = on_gpu.into_iter().partition(|(_, x)| on_ctx(x));
        let flags = flag_on_gpu(OP, &ctx, here.iter().map(|(_, x)| x), here.len(), |slot| slot)?;
        let flagged = ctx.read_u32(&flags).map_err(gpu_err(OP))?;
        for ((i, _), flag) in here.iter().zip(flagged) {
            finite[*i] = flag == 0;
        }
        on_gpu = rest;
    }
    Ok(finite)
}

/// A one-element tensor on the tensors' device, in the first one's dtype: 1 when an element
/// of any of them is NaN or ±∞, else 0. On the GPU it is computed there and not read back, so
/// the caller may pass it on to a kernel that depends on it (the optimizers'
/// `_unless_flagged` updates) and read it later with whatever else it reads.
// tensors: any shapes, one device → [1]
pub fn non_finite_flag(tensors: &[&Tensor]) -> Result<Tensor> {
    const OP: &str = "non_finite_flag";
    let Some(first) = tensors.first() else {
        return Err(TensorError::Invalid { op: OP, msg: "no tensors to check".into() });
    };
    let _profile = profile::scope(OpFamily::Reduce, OP, first);
    crate::device::same_device(OP, &tensors.iter().map(|t| t.device()).collect::<Vec<_>>())?;
    let Storage::Gpu(g) = first.storage() else {
        let finite = all_finite_each(tensors)?.iter().all(|&f| f);
        let flag = Tensor::from_vec(vec![if finite { 0.0 } else { 1.0 }], &[1])?.to_dtype(first.dtype())?;
        return flag.to_device(&first.device());
    };
    let ctx = Arc::clone(g.context());
    let dense = tensors.iter().map(|t| t.contiguous()).collect::<Result<Vec<_>>>()?;
    let flag = flag_on_gpu(OP, &ctx, dense.iter(), 1, |_| 0)?;
    Ok(Tensor::from_gpu(flag, ctx, &[1]))
}

/// A zeroed buffer of `slots` flags on `ctx` in which slot `slot(i)` is set when the `i`-th of
/// `tensors` (dense, on `ctx`) holds a NaN or ±∞ (`flag_non_finite` in reduce.wgsl).
fn flag_on_gpu<'t>(
    op: &'static str,
    ctx: &Context,
    tensors: impl Iterator<Item = &'t Tensor>,
    slots: usize,
    slot: impl Fn(usize) -> usize,
) -> Result<GpuBuffer> {
    let flags = ctx.zeros(slots).map_err(gpu_err(op))?;
    for (i, x) in tensors.enumerate() {
        let Storage::Gpu(g) = x.storage() else { continue };
        // x is dense: its elements fill its chunks in order (or start its one buffer).
        let mut left = x.numel();
        for chunk in g.chunks() {
            let n = left.min(chunk.len());
            if n == 0 {
                break;
            }
            gpu_kernel::flag_non_finite(ctx, chunk, n, &flags, slot(i)).map_err(gpu_err(op))?;
            left -= n;
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_finite_finds_one_nan_or_infinity_anywhere_in_a_long_tensor() {
        let n = 100_003;
        assert!(Tensor::zeros(&[n], DType::F32).all_finite().unwrap());
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for at in [0, n / 2, n - 1] {
                let mut v = vec![1.0f64; n];
                v[at] = bad;
                let t = Tensor::from_vec(v, &[n]).unwrap();
                assert!(!t.all_finite().unwrap(), "{bad} at {at} (f64)");
                assert!(!t.to_dtype(DType::F32).unwrap().all_finite().unwrap(), "{bad} at {at} (f32)");
            }
        }
    }

    fn x234() -> Tensor {
        Tensor::from_vec((0..24).map(|v| v as f64).collect(), &[2, 3, 4]).unwrap()
    }

    #[test]
    fn sum_over_non_adjacent_axes_with_keepdim() {
        let s = x234().sum(&[0, 2], true).unwrap();
        assert_eq!(s.shape(), &[1, 3, 1]);
        // axis 1 = j: Σ_{i,k} (12 i + 4 j + k) = 12·4 + 8·4 j·... computed directly:
        let expect: Vec<f64> =
            (0..3).map(|j| (0..2).flat_map(|i| (0..4).map(move |k| (12 * i + 4 * j + k) as f64)).sum()).collect();
        assert_eq!(s.to_vec_f64().unwrap(), expect);
    }

    #[test]
    fn max_and_argmax_over_last_axis() {
        let x = Tensor::from_vec(vec![3.0f64, 9.0, 1.0, 4.0, 2.0, 8.0], &[2, 3]).unwrap();
        assert_eq!(x.max(&[-1], false).unwrap().to_vec_f64().unwrap(), vec![9.0, 8.0]);
        assert_eq!(x.argmax(-1, false).unwrap().to_vec_f64().unwrap(), vec![1.0, 2.0]);
        assert_eq!(x.min(&[0], false).unwrap().to_vec_f64().unwrap(), vec![3.0, 2.0, 1.0]);
    }

    #[test]
    fn sum_to_shape_undoes_broadcast() {
        let g = Tensor::ones(&[4, 2, 3], DType::F64);
        let s = sum_to_shape(&g, &[2, 1]).unwrap();
        assert_eq!(s.shape(), &[2, 1]);
        assert_eq!(s.to_vec_f64().unwrap(), vec![12.0, 12.0]);
    }

    #[test]
    fn bad_axis_is_an_error() {
        assert!(x234().sum(&[3], false).is_err());
    }
}
