//! The `Tensor`: a shared storage plus a layout. Cloning a tensor is cheap (it shares the
//! storage); views (permute, narrow, broadcast) share it too; kernels run on contiguous data.

use std::sync::Arc;

use crate::cpu;
use crate::device::Device;
use crate::dtype::{DType, Float};
use crate::error::{invalid, shape_err, Result, TensorError};
use crate::rng::Rng;
use crate::shape::{numel, Layout, Shape};
use crate::storage::{CpuStorage, Storage};

#[derive(Clone, Debug)]
pub struct Tensor {
    storage: Arc<Storage>,
    layout: Layout,
}

impl Tensor {
    // ---------------------------------------------------------------- construction

    /// A tensor of `shape` owning `data` (row-major). Errors if the lengths disagree.
    pub fn from_vec<T: Float>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        if data.len() != numel(shape) {
            return shape_err(
                "from_vec",
                format!(
                    "{} elements cannot fill shape {shape:?} ({} elements)",
                    data.len(),
                    numel(shape)
                ),
            );
        }
        Ok(Tensor::from_cpu(T::into_storage(data), shape))
    }

    /// A tensor of `shape` over a CPU storage whose length is known to match.
    pub(crate) fn from_cpu(storage: CpuStorage, shape: &[usize]) -> Tensor {
        debug_assert_eq!(storage.len(), numel(shape));
        Tensor {
            storage: Arc::new(Storage::Cpu(storage)),
            layout: Layout::contiguous(shape),
        }
    }

    /// Builds a contiguous CPU tensor from a generic kernel's output.
    pub(crate) fn from_kernel<T: Float>(data: Vec<T>, shape: &[usize]) -> Tensor {
        Tensor::from_cpu(T::into_storage(data), shape)
    }

    pub fn scalar<T: Float>(v: T) -> Tensor {
        Tensor::from_kernel(vec![v], &[])
    }

    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Tensor {
        match dtype {
            DType::F32 => Tensor::from_kernel(vec![value as f32; numel(shape)], shape),
            DType::F64 => Tensor::from_kernel(vec![value; numel(shape)], shape),
        }
    }

    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {
        Tensor::full(shape, 0.0, dtype)
    }

    pub fn ones(shape: &[usize], dtype: DType) -> Tensor {
        Tensor::full(shape, 1.0, dtype)
    }

    /// A zero tensor with the shape, dtype and device of `self`.
    pub fn zeros_like(&self) -> Tensor {
        Tensor::zeros(self.shape(), self.dtype())
    }

    /// Uniform samples in [lo, hi).
    pub fn rand_uniform(shape: &[usize], lo: f64, hi: f64, dtype: DType, rng: &mut Rng) -> Tensor {
        let v: Vec<f64> = (0..numel(shape)).map(|_| rng.uniform(lo, hi)).collect();
        Tensor::from_kernel(v, shape).to_dtype(dtype)
    }

    /// Normal samples with the given mean and standard deviation.
    pub fn rand_normal(
        shape: &[usize],
        mean: f64,
        std: f64,
        dtype: DType,
        rng: &mut Rng,
    ) -> Tensor {
        let v: Vec<f64> = (0..numel(shape))
            .map(|_| mean + std * rng.normal())
            .collect();
        Tensor::from_kernel(v, shape).to_dtype(dtype)
    }

    /// 0, 1, ..., n-1 as a 1-D tensor.
    pub fn arange(n: usize, dtype: DType) -> Tensor {
        Tensor::from_kernel((0..n).map(|i| i as f64).collect(), &[n]).to_dtype(dtype)
    }

    // ---------------------------------------------------------------- accessors

    pub fn shape(&self) -> &[usize] {
        &self.layout.shape
    }

    pub fn rank(&self) -> usize {
        self.layout.rank()
    }

    pub fn numel(&self) -> usize {
        self.layout.numel()
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }

    pub fn device(&self) -> Device {
        match &*self.storage {
            Storage::Cpu(_) => Device::Cpu,
        }
    }

    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// Size of dimension `axis` (negative counts from the end).
    pub fn dim(&self, axis: isize) -> Result<usize> {
        let a = crate::shape::normalize_axis("dim", axis, self.rank())?;
        Ok(self.layout.shape[a])
    }

    /// True when both tensors view the very same storage (used by tests and optimizers).
    pub fn shares_storage_with(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    // ---------------------------------------------------------------- CPU data access

    /// The elements of a contiguous CPU tensor of element type `T`, as a slice.
    /// Kernels call this after `contiguous()`; any other case is a caller bug reported as an error.
    pub fn cpu_slice<T: Float>(&self) -> Result<&[T]> {
        if !self.is_contiguous() {
            return invalid(
                "cpu_slice",
                "tensor is not contiguous; call contiguous() first",
            );
        }
        let Storage::Cpu(s) = &*self.storage;
        match T::slice(s) {
            Some(v) => Ok(&v[self.layout.offset..self.layout.offset + self.numel()]),
            None => Err(TensorError::DType {
                op: "cpu_slice",
                expected: T::DTYPE,
                got: s.dtype(),
            }),
        }
    }

    /// Mutable access to a contiguous CPU tensor's elements. Copies the storage first if it is
    /// shared with another tensor (copy-on-write), so other tensors never see the change.
    pub fn cpu_slice_mut<T: Float>(&mut self) -> Result<&mut [T]> {
        if !self.is_contiguous() || self.layout.offset != 0 || self.storage_len() != self.numel() {
            *self = self.contiguous_copy();
        }
        let (offset, n) = (self.layout.offset, self.numel());
        let Storage::Cpu(s) = Arc::make_mut(&mut self.storage);
        let got = s.dtype();
        match T::slice_mut(s) {
            Some(v) => Ok(&mut v[offset..offset + n]),
            None => Err(TensorError::DType {
                op: "cpu_slice_mut",
                expected: T::DTYPE,
                got,
            }),
        }
    }

    fn storage_len(&self) -> usize {
        let Storage::Cpu(s) = &*self.storage;
        s.len()
    }

    /// All elements in row-major order, converted to `T`.
    pub fn to_vec<T: Float>(&self) -> Vec<T> {
        let t = self.to_dtype(T::DTYPE).contiguous();
        match t.cpu_slice::<T>() {
            Ok(s) => s.to_vec(),
            Err(_) => unreachable!("to_dtype + contiguous produce a contiguous tensor of type T"),
        }
    }

    pub fn to_vec_f32(&self) -> Vec<f32> {
        self.to_vec::<f32>()
    }

    pub fn to_vec_f64(&self) -> Vec<f64> {
        self.to_vec::<f64>()
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return shape_err(
                "item",
                format!(
                    "item() needs exactly one element, got shape {:?}",
                    self.shape()
                ),
            );
        }
        Ok(self.to_vec::<f64>()[0])
    }

    /// Converts the element type (a no-op returning a clone when it already matches).
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        let t = self.contiguous();
        match (dtype, t.dtype()) {
            (DType::F32, DType::F64) => {
                let v = t
                    .cpu_slice::<f64>()
                    .map(|s| s.iter().map(|&x| x as f32).collect::<Vec<_>>());
                Tensor::from_kernel(v.unwrap_or_default(), t.shape())
            }
            (DType::F64, DType::F32) => {
                let v = t
                    .cpu_slice::<f32>()
                    .map(|s| s.iter().map(|&x| x as f64).collect::<Vec<_>>());
                Tensor::from_kernel(v.unwrap_or_default(), t.shape())
            }
            _ => t,
        }
    }

    // ---------------------------------------------------------------- views and copies

    /// A contiguous tensor with the same elements: `self` (shared) when already contiguous.
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            self.clone()
        } else {
            self.contiguous_copy()
        }
    }

    /// Always copies into fresh, dense storage.
    pub fn contiguous_copy(&self) -> Tensor {
        let Storage::Cpu(s) = &*self.storage;
        match s {
            CpuStorage::F32(v) => {
                Tensor::from_kernel(cpu::copy::gather_layout(v, &self.layout), self.shape())
            }
            CpuStorage::F64(v) => {
                Tensor::from_kernel(cpu::copy::gather_layout(v, &self.layout), self.shape())
            }
        }
    }

    pub(crate) fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor {
            storage: self.storage.clone(),
            layout,
        }
    }

    /// Same elements, new shape (one dimension may be given as `usize::MAX`... no: use
    /// `reshape_infer` for -1). Views when contiguous, copies otherwise.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return shape_err(
                "reshape",
                format!(
                    "cannot reshape {:?} ({} elements) into {shape:?} ({} elements)",
                    self.shape(),
                    self.numel(),
                    numel(shape)
                ),
            );
        }
        let t = self.contiguous();
        let mut layout = Layout::contiguous(shape);
        layout.offset = t.layout.offset;
        Ok(t.with_layout(layout))
    }

    /// Reshape where at most one entry is -1, inferred from the element count.
    pub fn reshape_infer(&self, shape: &[isize]) -> Result<Tensor> {
        let known: usize = shape
            .iter()
            .filter(|&&d| d >= 0)
            .map(|&d| d as usize)
            .product();
        let unknown = shape.iter().filter(|&&d| d < 0).count();
        if unknown > 1 || (unknown == 1 && (known == 0 || self.numel() % known != 0)) {
            return shape_err(
                "reshape",
                format!("cannot reshape {:?} into {shape:?}", self.shape()),
            );
        }
        let resolved: Shape = shape
            .iter()
            .map(|&d| {
                if d < 0 {
                    self.numel() / known.max(1)
                } else {
                    d as usize
                }
            })
            .collect();
        self.reshape(&resolved)
    }

    /// Reorders dimensions (a view): output dim i is input dim `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.permute(perm)?))
    }

    /// Swaps two dimensions (a view).
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let rank = self.rank();
        let (a, b) = (
            crate::shape::normalize_axis("transpose", a, rank)?,
            crate::shape::normalize_axis("transpose", b, rank)?,
        );
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// A view of `len` entries of `axis` starting at `start`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let a = crate::shape::normalize_axis("narrow", axis, self.rank())?;
        if start + len > self.shape()[a] {
            return shape_err(
                "narrow",
                format!(
                    "range {start}..{} is out of bounds for axis {a} of shape {:?}",
                    start + len,
                    self.shape()
                ),
            );
        }
        let mut layout = self.layout.clone();
        layout.offset += start * layout.strides[a];
        layout.shape[a] = len;
        Ok(self.with_layout(layout))
    }

    /// A view repeating size-1 dims up to `shape` (NumPy broadcasting).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.broadcast_to(shape)?))
    }

    /// Inserts a size-1 dimension at `axis` (0..=rank).
    pub fn unsqueeze(&self, axis: usize) -> Result<Tensor> {
        if axis > self.rank() {
            return Err(TensorError::Axis {
                op: "unsqueeze",
                axis: axis as isize,
                rank: self.rank(),
            });
        }
        let mut shape = self.shape().to_vec();
        shape.insert(axis, 1);
        self.reshape(&shape)
    }

    /// Removes a size-1 dimension.
    pub fn squeeze(&self, axis: isize) -> Result<Tensor> {
        let a = crate::shape::normalize_axis("squeeze", axis, self.rank())?;
        if self.shape()[a] != 1 {
            return shape_err(
                "squeeze",
                format!(
                    "axis {a} of shape {:?} has size {}, not 1",
                    self.shape(),
                    self.shape()[a]
                ),
            );
        }
        let mut shape = self.shape().to_vec();
        shape.remove(a);
        self.reshape(&shape)
    }

    /// Flattens all dims from `start` on into one: [N, C, H, W].flatten_from(1) = [N, C·H·W].
    pub fn flatten_from(&self, start: usize) -> Result<Tensor> {
        if start > self.rank() {
            return Err(TensorError::Axis {
                op: "flatten",
                axis: start as isize,
                rank: self.rank(),
            });
        }
        let mut shape = self.shape()[..start].to_vec();
        shape.push(numel(&self.shape()[start..]));
        self.reshape(&shape)
    }
}
