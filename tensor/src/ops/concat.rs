//! Joining and selecting along an axis: cat, stack, index_select (a batch of rows) and its
//! adjoint index_add: shapes checked here, rows copied by `crate::cpu::concat` on the CPU.
//!
//! On the GPU, cat is one strided copy per part into its slice of the output, and the index
//! ops are one gather kernel each; the indices (host data already) are uploaded, so no
//! tensor data comes back to the host.

use std::sync::Arc;

use gpu::kernels::elementwise::{contiguous_strides, copy_strided};
use gpu::kernels::index::{self as gpu_kernel, IndexDims};

use crate::cpu::concat as kernel;
use crate::device::same_device;
use crate::dtype::{with_float_type, Float};
use crate::error::{gpu_err, invalid, shape_err, Result, TensorError};
use crate::gpu_parts::index::run_index_gpu;
use crate::gpu_parts::{for_each_row_part, gpu_alloc_rows, StorageView};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::shape::{normalize_axis, numel};
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Concatenates tensors along `axis`; all other dims must agree.
pub fn cat(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
    let _profile = tensors.first().map(|t| profile::scope(OpFamily::Copy, "cat", t));
    fn run<T: Float>(ts: &[Tensor], a: usize, out_shape: &[usize]) -> Result<Tensor> {
        let inner = numel(&out_shape[a + 1..]);
        let parts: Vec<(&[T], usize)> =
            ts.iter().map(|t| Ok((t.cpu_slice::<T>()?, t.shape()[a] * inner))).collect::<Result<_>>()?;
        let out = kernel::cat(&parts, numel(&out_shape[..a]), out_shape[a] * inner);
        Ok(Tensor::from_kernel(out, out_shape))
    }
    let Some(first) = tensors.first() else {
        return invalid("cat", "needs at least one tensor");
    };
    let a = normalize_axis("cat", axis, first.rank())?;
    same_device("cat", &tensors.iter().map(|t| t.device()).collect::<Vec<_>>())?;
    let mut out_shape = first.shape().to_vec();
    out_shape[a] = 0;
    for t in tensors {
        if t.dtype() != first.dtype() {
            return Err(TensorError::DType { op: "cat", expected: first.dtype(), got: t.dtype() });
        }
        let ok = t.rank() == first.rank()
            && t.shape().iter().zip(first.shape()).enumerate().all(|(i, (x, y))| i == a || x == y);
        if !ok {
            return shape_err(
                "cat",
                format!("shape {:?} does not match {:?} outside axis {a}", t.shape(), first.shape()),
            );
        }
        out_shape[a] += t.shape()[a];
    }
    match first.storage() {
        Storage::Cpu(_) => {
            let ts: Vec<Tensor> = tensors.iter().map(|t| t.contiguous()).collect::<Result<_>>()?;
            with_float_type!(first.dtype(), T => run::<T>(&ts, a, &out_shape))
        }
        Storage::Reference(_) => {
            let values: Vec<Vec<f64>> = tensors.iter().map(|t| reference::values(t)).collect::<Result<_>>()?;
            let parts: Vec<(&[f64], usize)> = values.iter().zip(tensors).map(|(v, t)| (&v[..], t.shape()[a])).collect();
            let out = reference::concat::cat(&parts, numel(&out_shape[..a]), numel(&out_shape[a + 1..]));
            Ok(reference::tensor(out, &out_shape, first.dtype()))
        }
        Storage::Gpu(_) => cat_gpu(tensors, a, &out_shape),
    }
}

/// Each part is copied, through its own strides, into the slice of the output that starts
/// at its offset along `a`: the output's strides with the part's shape. A contiguous part
/// whose slice is one run of the output (every axis before `a` of size 1: the loss terms'
/// scalars gathered each step) goes by one copy command instead of a kernel launch.
// parts: [.., n_i, ..] → out: [.., Σ n_i, ..]
fn cat_gpu(parts: &[&Tensor], a: usize, out_shape: &[usize]) -> Result<Tensor> {
    const OP: &str = "cat";
    let ctx = Arc::clone(parts[0].gpu_storage(OP)?.context());
    let out = gpu_alloc_rows(&ctx, out_shape, OP)?;
    let strides = contiguous_strides(out_shape);
    let one_run = out_shape[..a].iter().all(|&d| d == 1);
    let mut start = 0;
    for t in parts {
        let whole = (one_run && t.is_contiguous()).then(|| t.gpu_storage(OP)).transpose()?;
        if let (Some(Some(from)), Some(into)) = (whole.map(|s| s.single_buffer()), out.single_buffer()) {
            let at = start * strides[a];
            ctx.copy_range(from, t.layout().offset, into, at, t.numel()).map_err(gpu_err(OP))?;
            start += t.shape()[a];
            continue;
        }
        let dst = StorageView { storage: &out, strides: strides.clone(), offset: start * strides[a] };
        for_each_row_part(&ctx, OP, &[t.gpu_view(OP)?], &dst, t.shape(), |ctx, src, dst, shape| {
            copy_strided(ctx, &src[0], dst, shape)
        })?;
        start += t.shape()[a];
    }
    Ok(Tensor::from_gpu_storage(out, out_shape))
}

/// x viewed as [outer, n_in, inner] around axis `a`, with `n_out` rows in the output.
fn index_dims(shape: &[usize], a: usize, n_in: usize, n_out: usize) -> IndexDims {
    IndexDims { outer: numel(&shape[..a]), n_in, n_out, inner: numel(&shape[a + 1..]) }
}

fn to_u32(op: &'static str, v: &[usize]) -> Result<Vec<u32>> {
    v.iter().map(|&i| u32::try_from(i).or_else(|_| invalid(op, format!("index {i} exceeds u32")))).collect()
}

/// Stacks equal-shaped tensors along a new axis `axis` (0..=rank).
pub fn stack(tensors: &[&Tensor], axis: usize) -> Result<Tensor> {
    let expanded = tensors.iter().map(|t| t.unsqueeze(axis)).collect::<Result<Vec<_>>>()?;
    cat(&expanded.iter().collect::<Vec<_>>(), axis as isize)
}

/// Picks entries `indices` of `axis`: out[.., i, ..] = x[.., indices\[i\], ..].
pub fn index_select(x: &Tensor, axis: isize, indices: &[usize]) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Copy, "index_select", x);
    fn run<T: Float>(x: &Tensor, a: usize, idx: &[usize], out_shape: &[usize]) -> Result<Tensor> {
        let (outer, inner) = (numel(&x.shape()[..a]), numel(&x.shape()[a + 1..]));
        let out = kernel::index_select(x.cpu_slice::<T>()?, outer, x.shape()[a], inner, idx);
        Ok(Tensor::from_kernel(out, out_shape))
    }
    let a = normalize_axis("index_select", axis, x.rank())?;
    if let Some(&bad) = indices.iter().find(|&&i| i >= x.shape()[a]) {
        return shape_err("index_select", format!("index {bad} is out of range for axis {a} of shape {:?}", x.shape()));
    }
    let mut out_shape = x.shape().to_vec();
    out_shape[a] = indices.len();
    match x.storage() {
        Storage::Cpu(_) => {
            let x = x.contiguous()?;
            with_float_type!(x.dtype(), T => run::<T>(&x, a, indices, &out_shape))
        }
        Storage::Reference(_) => {
            let dims = [numel(&x.shape()[..a]), x.shape()[a], numel(&x.shape()[a + 1..])];
            let out = reference::concat::index_select(&reference::values(x)?, dims, indices);
            Ok(reference::tensor(out, &out_shape, x.dtype()))
        }
        Storage::Gpu(s) => {
            const OP: &str = "index_select";
            let idx = s.context().upload_u32(&to_u32(OP, indices)?).map_err(gpu_err(OP))?;
            let d = index_dims(x.shape(), a, x.shape()[a], indices.len());
            run_index_gpu(OP, x, d, &out_shape, |ctx, d, w, x, o| gpu_kernel::index_select(ctx, d, w, x, &idx, o))
        }
    }
}

/// The adjoint of index_select: a tensor of `shape` with zeros, plus src[.., j, ..] added at
/// row indices\[j\] of `axis` (repeated indices accumulate).
pub fn index_add_zeros(src: &Tensor, axis: isize, indices: &[usize], shape: &[usize]) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Copy, "index_add_zeros", src);
    fn run<T: Float>(src: &Tensor, a: usize, idx: &[usize], shape: &[usize]) -> Result<Tensor> {
        let (outer, inner) = (numel(&shape[..a]), numel(&shape[a + 1..]));
        let out = kernel::index_add_zeros(src.cpu_slice::<T>()?, outer, shape[a], inner, idx);
        Ok(Tensor::from_kernel(out, shape))
    }
    let a = normalize_axis("index_add", axis, shape.len())?;
    let mut expect = shape.to_vec();
    expect[a] = indices.len();
    if src.shape() != expect.as_slice() || indices.iter().any(|&i| i >= shape[a]) {
        return shape_err(
            "index_add",
            format!("source {:?} with {} indices does not fit {shape:?} on axis {a}", src.shape(), indices.len()),
        );
    }
    match src.storage() {
        Storage::Cpu(_) => {
            let src = src.contiguous()?;
            with_float_type!(src.dtype(), T => run::<T>(&src, a, indices, shape))
        }
        Storage::Reference(_) => {
            let dims = [numel(&shape[..a]), shape[a], numel(&shape[a + 1..])];
            let out = reference::concat::index_add_zeros(&reference::values(src)?, dims, indices);
            Ok(reference::tensor(out, shape, src.dtype()))
        }
        Storage::Gpu(s) => {
            const OP: &str = "index_add";
            // The scatter-add becomes a gather: the sources of each target row, grouped on
            // the host from the (host) index list.
            let (row_start, src_rows) = gpu_kernel::group_by_target(indices, shape[a]).map_err(gpu_err(OP))?;
            let ctx = s.context();
            let row_start = ctx.upload_u32(&row_start).map_err(gpu_err(OP))?;
            let src_rows = ctx.upload_u32(&src_rows).map_err(gpu_err(OP))?;
            let d = index_dims(shape, a, indices.len(), shape[a]);
            run_index_gpu(OP, src, d, shape, |ctx, d, w, src, o| {
                gpu_kernel::index_add(ctx, d, w, src, &row_start, &src_rows, o)
            })
        }
    }
}
