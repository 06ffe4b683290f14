//! Matrix multiply: [m, k]·[k, n] → [m, n], batched [B, m, k]·[B, k, n] → [B, m, n], and a 2-D
//! operand broadcast over the batch of a 3-D one. Operands go to the GEMM as strided views of
//! their storage, so transposed (or narrowed) inputs are never copied.

use std::sync::Arc;

use gpu::kernels::matmul::{matmul as gpu_matmul, MatmulArgs};
use gpu::GpuBuffer;

use crate::cpu::gemm::{gemm_batched, MatBatch, MatRef};
use crate::device::same_device;
use crate::dtype::{DType, Float};
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
        Storage::Cpu(_) => match a.dtype() {
            DType::F32 => matmul_cpu::<f32>(a, b, dims),
            DType::F64 => matmul_cpu::<f64>(a, b, dims),
        },
        Storage::Reference(_) => matmul_reference(a, b, dims),
        Storage::Gpu(_) => matmul_gpu(a, b, dims),
    }
}

/// The GPU arm: like the CPU one, each operand is passed as strided matrices over its own
/// buffer (a transposed or narrowed view is read in place; a 2-D operand has batch stride 0).
fn matmul_gpu(a: &Tensor, b: &Tensor, dims: Dims) -> Result<Tensor> {
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
    match [whole(a.storage, max_len), whole(b.storage, max_len), whole(&c, max_len)] {
        [Some(a_buf), Some(b_buf), Some(c_buf)] => {
            let [batch, m, k, n] = sizes;
            let args = MatmulArgs { a: a.on(a_buf), b: b.on(b_buf), c: c_buf, batch, m, n, k, accumulate: false };
            gpu_matmul(&ctx, &args).map_err(gpu_err(OP))?;
        }
        _ => matmul_in_parts(&ctx, a, b, &c, sizes)?,
    }
    Ok(Tensor::from_gpu_storage(c, &out_shape))
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
    use crate::rng::Rng;

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        Tensor::rand_uniform(shape, -1.0, 1.0, DType::F32, &mut Rng::new(seed))
    }

    /// The textbook triple loop on dense row-major data, in f64.
    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * (1.0 + w.abs()), "element {i}: got {g}, want {w}");
        }
    }

    #[test]
    fn matmul_2d_matches_hand_computed_product() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
        let b = Tensor::from_vec(vec![7.0f32, 8.0, 9.0, 10.0, 11.0, 12.0], &[3, 2]).unwrap();
        let c = matmul(&a, &b).unwrap();
        assert_eq!(c.shape(), &[2, 2]);
        assert_eq!(c.to_vec_f32().unwrap(), vec![58.0, 64.0, 139.0, 154.0]);
    }

    #[test]
    fn matmul_2d_f64_matches_naive() {
        let (m, k, n) = (37, 53, 29);
        let a = rand(&[m, k], 1).to_dtype(DType::F64).unwrap();
        let b = rand(&[k, n], 2).to_dtype(DType::F64).unwrap();
        let c = matmul(&a, &b).unwrap();
        assert_eq!(c.dtype(), DType::F64);
        assert_close(
            &c.to_vec_f64().unwrap(),
            &naive(&a.to_vec_f64().unwrap(), &b.to_vec_f64().unwrap(), m, k, n),
            1e-12,
        );
    }

    #[test]
    fn batched_matmul_multiplies_each_batch_entry() {
        let (bs, m, k, n) = (5, 19, 23, 17);
        let (a, b) = (rand(&[bs, m, k], 3), rand(&[bs, k, n], 4));
        let c = matmul(&a, &b).unwrap();
        assert_eq!(c.shape(), &[bs, m, n]);
        let (av, bv, cv) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap(), c.to_vec_f64().unwrap());
        for i in 0..bs {
            let want = naive(&av[i * m * k..(i + 1) * m * k], &bv[i * k * n..(i + 1) * k * n], m, k, n);
            assert_close(&cv[i * m * n..(i + 1) * m * n], &want, 1e-5);
        }
    }

    #[test]
    fn two_d_operand_broadcasts_over_the_batch() {
        let (bs, m, k, n) = (4, 9, 70, 11);
        let (a3, b2) = (rand(&[bs, m, k], 5), rand(&[k, n], 6));
        let (a2, b3) = (rand(&[m, k], 7), rand(&[bs, k, n], 8));
        let (c_ab, c_ba) = (matmul(&a3, &b2).unwrap(), matmul(&a2, &b3).unwrap());
        assert_eq!((c_ab.shape(), c_ba.shape()), (&[bs, m, n][..], &[bs, m, n][..]));
        let (a3v, b2v, a2v, b3v) =
            (a3.to_vec_f64().unwrap(), b2.to_vec_f64().unwrap(), a2.to_vec_f64().unwrap(), b3.to_vec_f64().unwrap());
        let (c_abv, c_bav) = (c_ab.to_vec_f64().unwrap(), c_ba.to_vec_f64().unwrap());
        for i in 0..bs {
            let want = naive(&a3v[i * m * k..(i + 1) * m * k], &b2v, m, k, n);
            assert_close(&c_abv[i * m * n..(i + 1) * m * n], &want, 1e-5);
            let want = naive(&a2v, &b3v[i * k * n..(i + 1) * k * n], m, k, n);
            assert_close(&c_bav[i * m * n..(i + 1) * m * n], &want, 1e-5);
        }
    }

    #[test]
    fn transposed_operands_match_their_contiguous_copies() {
        // x.transpose(-1, -2) swaps the last two strides: the GEMM reads it in place.
        let at = rand(&[3, 40, 30], 9).transpose(-1, -2).unwrap(); // [3, 30, 40]
        let bt = rand(&[3, 20, 40], 10).transpose(-1, -2).unwrap(); // [3, 40, 20]
        assert!(!at.is_contiguous() && !bt.is_contiguous());
        let (ac, bc) = (at.contiguous_copy().unwrap(), bt.contiguous_copy().unwrap());
        let want = matmul(&ac, &bc).unwrap().to_vec_f32().unwrap();
        assert_eq!(matmul(&at, &bt).unwrap().to_vec_f32().unwrap(), want);
        assert_eq!(matmul(&at, &bc).unwrap().to_vec_f32().unwrap(), want);
        assert_eq!(matmul(&ac, &bt).unwrap().to_vec_f32().unwrap(), want);
        // A 2-D transposed weight shared over a batch (the Linear layer's x · wᵀ).
        let w = rand(&[25, 40], 11);
        let x = rand(&[3, 30, 40], 12);
        let want = matmul(&x, &w.transpose(0, 1).unwrap().contiguous_copy().unwrap()).unwrap().to_vec_f32().unwrap();
        assert_eq!(matmul(&x, &w.transpose(0, 1).unwrap()).unwrap().to_vec_f32().unwrap(), want);
    }

    #[test]
    fn narrowed_and_permuted_views_are_read_in_place() {
        // A view with an offset and a row stride wider than its columns.
        let big = rand(&[4, 50, 60], 13);
        let a = big.narrow(1, 7, 30).unwrap().narrow(2, 5, 45).unwrap(); // [4, 30, 45]
        let b = rand(&[45, 8], 14);
        let want = matmul(&a.contiguous_copy().unwrap(), &b).unwrap().to_vec_f32().unwrap();
        assert_eq!(matmul(&a, &b).unwrap().to_vec_f32().unwrap(), want);
        // Batch as the middle dimension of the storage: [m, B, k] permuted to [B, m, k].
        let p = rand(&[30, 4, 45], 15).permute(&[1, 0, 2]).unwrap();
        let want = matmul(&p.contiguous_copy().unwrap(), &b).unwrap().to_vec_f32().unwrap();
        assert_eq!(matmul(&p, &b).unwrap().to_vec_f32().unwrap(), want);
    }

    #[test]
    fn empty_dimensions_give_empty_or_zero_results() {
        let c = matmul(&rand(&[0, 3], 1), &rand(&[3, 4], 2)).unwrap();
        assert_eq!(c.shape(), &[0, 4]);
        let c = matmul(&Tensor::zeros(&[2, 0], DType::F32), &Tensor::zeros(&[0, 3], DType::F32)).unwrap();
        assert_eq!(c.to_vec_f32().unwrap(), vec![0.0; 6]);
    }

    #[test]
    fn shape_mismatches_are_errors_naming_both_shapes() {
        let err = matmul(&rand(&[2, 3], 1), &rand(&[4, 5], 2)).unwrap_err();
        assert!(
            matches!(&err, TensorError::Shape { op: "matmul", msg } if msg.contains("[2, 3]") && msg.contains("[4, 5]"))
        );
        let err = matmul(&rand(&[2, 3, 4], 1), &rand(&[3, 4, 5], 2)).unwrap_err();
        assert!(matches!(&err, TensorError::Shape { msg, .. } if msg.contains("batch")));
        assert!(matches!(matmul(&rand(&[3], 1), &rand(&[3, 4], 2)), Err(TensorError::Shape { .. })));
        assert!(matches!(matmul(&rand(&[1, 2, 3, 4], 1), &rand(&[4, 4], 2)), Err(TensorError::Shape { .. })));
    }

    #[test]
    fn dtype_mismatch_is_an_error() {
        let err = matmul(&rand(&[2, 3], 1), &rand(&[3, 2], 2).to_dtype(DType::F64).unwrap()).unwrap_err();
        assert_eq!(err, TensorError::DType { op: "matmul", expected: DType::F32, got: DType::F64 });
    }
}
