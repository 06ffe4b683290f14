//! Matrix multiply: [m, k]·[k, n] → [m, n], batched [B, m, k]·[B, k, n] → [B, m, n], and a 2-D
//! operand broadcast over the batch of a 3-D one. Operands go to the GEMM as strided views of
//! their storage, so transposed (or narrowed) inputs are never copied.

use std::sync::Arc;

use gpu::kernels::matmul::{matmul as gpu_matmul, Epilogue, MatmulArgs};
use gpu::GpuBuffer;

use crate::cpu::gemm::{gemm_batched, MatBatch, MatRef};
use crate::device::same_device;
use crate::dtype::{with_float_type, Float};
use crate::error::{gpu_err, shape_err, Result, TensorError};
use crate::gpu_parts::gpu_alloc_rows;
use crate::gpu_parts::matmul::{matmul_in_parts, StoredMat};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::{GpuStorage, Storage};
use crate::tensor::Tensor;

/// The sizes of one matmul after validation: `batch` is `None` when both operands are 2-D.
#[derive(Clone, Copy, Debug)]
struct Dims {
    batch: Option<usize>,
    m: usize,
    k: usize,
    n: usize,
}

impl Dims {
    fn new(a: &[usize], b: &[usize]) -> Result<Dims> {
        let op = "matmul";
        if !(2..=3).contains(&a.len()) || !(2..=3).contains(&b.len()) {
            return shape_err(op, format!("operands must be 2-D [m, k] or 3-D [batch, m, k], got {a:?} and {b:?}"));
        }
        let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
        let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
        if k != k2 {
            return shape_err(op, format!("inner dimensions differ: {a:?} · {b:?} (k = {k} vs {k2})"));
        }
        let batch = match (a.len(), b.len()) {
            (3, 3) if a[0] != b[0] => {
                return shape_err(op, format!("batch sizes differ: {a:?} · {b:?} ({} vs {})", a[0], b[0]));
            }
            (3, _) => Some(a[0]),
            (_, 3) => Some(b[0]),
            _ => None,
        };
        Ok(Dims { batch, m, k, n })
    }

    fn out_shape(&self) -> Vec<usize> {
        match self.batch {
            Some(batch) => vec![batch, self.m, self.n],
            None => vec![self.m, self.n],
        }
    }
}

/// A CPU tensor's matrices as the kernel reads them, in place: the storage from the view's
/// offset on, with the view's strides (a 2-D operand has batch stride 0).
fn mat_batch<T: Float>(t: &Tensor) -> Result<MatBatch<'_, T>> {
    let Storage::Cpu(s) = t.storage() else {
        return Err(TensorError::Device { op: "matmul", msg: "CPU kernel given a GPU operand".into() });
    };
    let data = T::slice(s).ok_or(TensorError::DType { op: "matmul", expected: T::DTYPE, got: s.dtype() })?;
    let l = t.layout();
    let r = l.rank();
    Ok(MatBatch {
        first: MatRef {
            data: &data[l.offset..],
            rows: l.shape[r - 2],
            cols: l.shape[r - 1],
            row_stride: l.strides[r - 2],
            col_stride: l.strides[r - 1],
        },
        batch_stride: if r == 3 { l.strides[0] } else { 0 },
    })
}

/// a @ b. a: [m, k] or [B, m, k]; b: [k, n] or [B, k, n] → [m, n] or [B, m, n].
/// A 2-D operand is shared by every batch entry of a 3-D one.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let op = "matmul";
    let _profile = profile::scope(OpFamily::Matmul, op, a);
    same_device(op, &[a.device(), b.device()])?;
    if a.dtype() != b.dtype() {
        return Err(TensorError::DType { op, expected: a.dtype(), got: b.dtype() });
    }
    let dims = Dims::new(a.shape(), b.shape())?;
    match a.storage() {
        Storage::Cpu(_) => with_float_type!(a.dtype(), T => matmul_cpu::<T>(a, b, dims)),
        Storage::Reference(_) => matmul_reference(a, b, dims),
        Storage::Gpu(_) => Ok(matmul_gpu(a, b, dims, None, false)?.0),
    }
}

/// y = x·Wᵀ + b, then ReLU when `relu`: a Linear layer's forward and the ReLU after it. On the
/// GPU one product whose epilogue adds the bias and applies the ReLU, where the three ops are
/// three launches; on the CPU and the reference device those three ops in order, so the values
/// are theirs bit for bit.
// x: [N, in], weight: [out, in] (PyTorch's layout), bias: [out] → [N, out]
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, relu: bool) -> Result<Tensor> {
    let op = "linear";
    let _profile = profile::scope(OpFamily::Matmul, op, x);
    let (xs, ws) = (x.shape(), weight.shape());
    if xs.len() != 2 || ws.len() != 2 || xs[1] != ws[1] {
        return shape_err(op, format!("x must be [N, in] and weight [out, in], got {xs:?} and {ws:?}"));
    }
    if let Some(b) = bias.filter(|b| b.shape() != [ws[0]]) {
        return shape_err(op, format!("bias must be [{}] for weight {ws:?}, got {:?}", ws[0], b.shape()));
    }
    let wt = weight.transpose(0, 1)?;
    let y = match x.storage() {
        Storage::Gpu(_) => {
            let devices: Vec<_> = [x, weight].into_iter().chain(bias).map(Tensor::device).collect();
            same_device(op, &devices)?;
            let bias = bias.map(Tensor::contiguous).transpose()?;
            let (y, finished) = matmul_gpu(x, &wt, Dims::new(xs, wt.shape())?, bias.as_ref(), relu)?;
            if finished {
                return Ok(y);
            }
            y
        }
        _ => matmul(x, &wt)?,
    };
    // The written-out ops: the CPU's and the reference's, and the GPU's when the product ran in
    // parts (larger than one binding).
    let y = match bias {
        Some(b) => y.add(b)?,
        None => y,
    };
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

/// The GPU arm: like the CPU one, each operand is passed as strided matrices over its own
/// buffer (a transposed or narrowed view is read in place; a 2-D operand has batch stride 0).
/// `bias` (contiguous, \[n\]) and `relu` are the epilogue; the flag says whether it was applied
/// (a product or a bias too large for one binding runs without it).
fn matmul_gpu(a: &Tensor, b: &Tensor, dims: Dims, bias: Option<&Tensor>, relu: bool) -> Result<(Tensor, bool)> {
    const OP: &str = "matmul";
    let Dims { batch, m, k, n } = dims;
    let ctx = Arc::clone(a.gpu_storage(OP)?.context());
    let (a, b) = (StoredMat::of(a)?, StoredMat::of(b)?);
    let out_shape = dims.out_shape();
    let c = gpu_alloc_rows(&ctx, &out_shape, OP)?;
    // The buffer of a storage bound whole, when it can be.
    fn whole(s: &GpuStorage, max_len: usize) -> Option<&GpuBuffer> {
        s.single_buffer().filter(|buf| buf.len() <= max_len)
    }
    let (sizes, max_len) = ([batch.unwrap_or(1), m, k, n], ctx.max_binding_len());
    // The epilogue, unless a bias larger than one binding leaves it to the caller.
    let epilogue = match bias {
        Some(t) => {
            whole(t.gpu_storage(OP)?, max_len).map(|buf| Epilogue { bias: Some((buf, t.layout().offset)), relu })
        }
        None => Some(Epilogue { bias: None, relu }),
    };
    match [whole(a.storage, max_len), whole(b.storage, max_len), whole(&c, max_len)] {
        [Some(a_buf), Some(b_buf), Some(c_buf)] => {
            let [batch, m, k, n] = sizes;
            let (a, b, accumulate) = (a.on(a_buf), b.on(b_buf), false);
            let args =
                MatmulArgs { a, b, c: c_buf, batch, m, n, k, accumulate, epilogue: epilogue.unwrap_or_default() };
            gpu_matmul(&ctx, &args).map_err(gpu_err(OP))?;
            Ok((Tensor::from_gpu_storage(c, &out_shape), epilogue.is_some()))
        }
        _ => {
            matmul_in_parts(&ctx, a, b, &c, sizes)?;
            Ok((Tensor::from_gpu_storage(c, &out_shape), false))
        }
    }
}

/// The reference arm: one textbook product per batch entry (a 2-D operand is the same matrix
/// for every entry).
fn matmul_reference(a: &Tensor, b: &Tensor, dims: Dims) -> Result<Tensor> {
    let Dims { batch, m, k, n } = dims;
    let step = |t: &Tensor, len: usize| if t.rank() == 3 { len } else { 0 };
    let (a_step, b_step) = (step(a, m * k), step(b, k * n));
    let (av, bv) = (reference::values(a)?, reference::values(b)?);
    let c: Vec<f64> = (0..batch.unwrap_or(1))
        .flat_map(|i| reference::matmul::matmul(&av[i * a_step..][..m * k], &bv[i * b_step..][..k * n], m, k, n))
        .collect();
    Ok(reference::tensor(c, &dims.out_shape(), a.dtype()))
}

fn matmul_cpu<T: Float>(a: &Tensor, b: &Tensor, dims: Dims) -> Result<Tensor> {
    let Dims { batch, m, k, n } = dims;
    let batch_len = batch.unwrap_or(1);
    let mut out = vec![T::ZERO; batch_len * m * n];
    if out.is_empty() || k == 0 {
        // Nothing to compute: an empty result, or sums over nothing.
        return Ok(Tensor::from_kernel(out, &dims.out_shape()));
    }
    gemm_batched(mat_batch::<T>(a)?, mat_batch::<T>(b)?, batch_len, &mut out);
    Ok(Tensor::from_kernel(out, &dims.out_shape()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn linear_refuses_a_bias_or_a_weight_that_does_not_fit_naming_the_shapes() {
        let (x, w) = (Tensor::zeros(&[4, 3], DType::F32), Tensor::zeros(&[5, 3], DType::F32));
        let err = linear(&x, &w, Some(&Tensor::zeros(&[4], DType::F32)), false).unwrap_err().to_string();
        assert!(err.contains("bias must be [5]") && err.contains("[4]"), "{err}");
        let err = linear(&x, &Tensor::zeros(&[5, 2], DType::F32), None, true).unwrap_err().to_string();
        assert!(err.contains("[4, 3]") && err.contains("[5, 2]"), "{err}");
    }
}
