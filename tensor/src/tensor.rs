//! The `Tensor`: a shared storage plus a layout. Cloning a tensor is cheap (it shares the
//! storage); views (permute, narrow, broadcast) share it too, on either device; kernels run
//! on contiguous data.
//!
//! Data crosses between devices only where asked: `to_device` / `to_cpu` move a tensor, and
//! the read-back points (`to_vec`, `item`, `to_dtype(F64)` of a GPU tensor) copy just the
//! elements of the view to the host, waiting for the GPU work they depend on.

use std::sync::Arc;

use gpu::kernels::elementwise::copy_strided;
use gpu::{Context, GpuBuffer};

use crate::cpu;
use crate::device::Device;
use crate::dtype::{DType, Float};
use crate::error::{gpu_err, invalid, shape_err, Result, TensorError};
use crate::gpu_parts::{chunk_len_for, for_each_row_part, gpu_alloc_rows, run_gpu_in_parts, Cut, StorageView};
use crate::reference;
use crate::rng::Rng;
use crate::shape::{numel, Layout, Shape};
use crate::storage::{CpuStorage, GpuStorage, Storage};

/// An n-dimensional array: a shared [`Storage`] plus a [`Layout`] view of it. Cloning shares the storage.
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
                format!("{} elements cannot fill shape {shape:?} ({} elements)", data.len(), numel(shape)),
            );
        }
        Ok(Tensor::from_cpu(T::into_storage(data), shape))
    }

    /// A tensor of `shape` over a CPU storage whose length is known to match.
    pub(crate) fn from_cpu(storage: CpuStorage, shape: &[usize]) -> Tensor {
        debug_assert_eq!(storage.len(), numel(shape));
        Tensor { storage: Arc::new(Storage::Cpu(storage)), layout: Layout::contiguous(shape) }
    }

    /// Builds a contiguous CPU tensor from a generic kernel's output.
    pub(crate) fn from_kernel<T: Float>(data: Vec<T>, shape: &[usize]) -> Tensor {
        Tensor::from_cpu(T::into_storage(data), shape)
    }

    /// A contiguous tensor of `shape` on the reference device over `storage`.
    pub(crate) fn from_reference_storage(storage: CpuStorage, shape: &[usize]) -> Tensor {
        debug_assert_eq!(storage.len(), numel(shape));
        Tensor { storage: Arc::new(Storage::Reference(storage)), layout: Layout::contiguous(shape) }
    }

    /// A contiguous GPU tensor of `shape` over `buffer` (which holds at least numel elements).
    pub(crate) fn from_gpu(buffer: GpuBuffer, ctx: Arc<Context>, shape: &[usize]) -> Tensor {
        debug_assert!(buffer.len() >= numel(shape));
        Tensor::from_gpu_storage(GpuStorage::new(buffer, ctx), shape)
    }

    /// A contiguous GPU tensor of `shape` over `storage` (which holds at least numel elements).
    pub(crate) fn from_gpu_storage(storage: GpuStorage, shape: &[usize]) -> Tensor {
        debug_assert!(storage.len() >= numel(shape));
        Tensor { storage: Arc::new(Storage::Gpu(storage)), layout: Layout::contiguous(shape) }
    }

    /// A rank-0 tensor holding `v`, on the CPU.
    pub fn scalar<T: Float>(v: T) -> Tensor {
        Tensor::from_kernel(vec![v], &[])
    }

    /// A CPU tensor of `shape` filled with `value`.
    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Tensor {
        match dtype {
            DType::F32 => Tensor::from_kernel(vec![value as f32; numel(shape)], shape),
            DType::F64 => Tensor::from_kernel(vec![value; numel(shape)], shape),
        }
    }

    /// A CPU tensor of zeros.
    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {
        Tensor::full(shape, 0.0, dtype)
    }

    /// A CPU tensor of ones.
    pub fn ones(shape: &[usize], dtype: DType) -> Tensor {
        Tensor::full(shape, 1.0, dtype)
    }

    /// A tensor of `shape` filled with `value` on `device`. The GPU holds f32 only, so an
    /// f64 request there is a `Device` error; so is a size beyond the adapter's buffer limit
    /// (a `Limit` error naming it).
    pub fn full_on(shape: &[usize], value: f64, dtype: DType, device: &Device) -> Result<Tensor> {
        const OP: &str = "full";
        match device {
            Device::Cpu => Ok(Tensor::full(shape, value, dtype)),
            Device::Reference => Ok(reference::tensor(vec![value; numel(shape)], shape, dtype)),
            Device::Gpu(g) => {
                check_gpu_dtype(OP, dtype)?;
                let ctx = g.context();
                let storage = gpu_alloc_rows(ctx, shape, OP)?;
                for chunk in storage.chunks() {
                    // A cleared buffer is a copy-engine command, cheaper than the fill kernel.
                    if value == 0.0 { ctx.clear(chunk) } else { ctx.fill(chunk, value as f32) }.map_err(gpu_err(OP))?;
                }
                Ok(Tensor::from_gpu_storage(storage, shape))
            }
        }
    }

    /// A tensor of zeros on `device`; errors as [`Tensor::full_on`].
    pub fn zeros_on(shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::full_on(shape, 0.0, dtype, device)
    }

    /// A tensor of ones on `device`; errors as [`Tensor::full_on`].
    pub fn ones_on(shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::full_on(shape, 1.0, dtype, device)
    }

    /// A zero tensor with the shape, dtype and device of `self`; errors as [`Tensor::full_on`].
    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::zeros_on(self.shape(), self.dtype(), &self.device())
    }

    /// Uniform samples in [lo, hi).
    pub fn rand_uniform(shape: &[usize], lo: f64, hi: f64, dtype: DType, rng: &mut Rng) -> Tensor {
        let v: Vec<f64> = (0..numel(shape)).map(|_| rng.uniform(lo, hi)).collect();
        Tensor::from_f64_values(v, shape, dtype)
    }

    /// Normal samples with the given mean and standard deviation: the values of
    /// `rng.normal()` drawn in order, whatever the thread count. The draws are made here and
    /// the transcendental part of each sample on rayon's threads, since a training step
    /// draws its noise on the thread that records its GPU work.
    pub fn rand_normal(shape: &[usize], mean: f64, std: f64, dtype: DType, rng: &mut Rng) -> Tensor {
        use rayon::prelude::*;
        let bits: Vec<[u64; 2]> = (0..numel(shape)).map(|_| rng.normal_bits()).collect();
        let sample = move |b: &[u64; 2]| mean + std * crate::rng::normal_from_bits(*b);
        const MIN_PER_THREAD: usize = 1024;
        match dtype {
            DType::F64 => {
                Tensor::from_kernel(bits.par_iter().with_min_len(MIN_PER_THREAD).map(sample).collect(), shape)
            }
            DType::F32 => Tensor::from_kernel(
                bits.par_iter().with_min_len(MIN_PER_THREAD).map(|b| sample(b) as f32).collect::<Vec<f32>>(),
                shape,
            ),
        }
    }

    /// 0, 1, ..., n-1 as a 1-D tensor.
    pub fn arange(n: usize, dtype: DType) -> Tensor {
        Tensor::from_f64_values((0..n).map(|i| i as f64).collect(), &[n], dtype)
    }

    /// A CPU tensor of `dtype` from f64 values computed on the host (cannot fail).
    fn from_f64_values(v: Vec<f64>, shape: &[usize], dtype: DType) -> Tensor {
        match dtype {
            DType::F64 => Tensor::from_kernel(v, shape),
            DType::F32 => Tensor::from_kernel(v.into_iter().map(|x| x as f32).collect::<Vec<f32>>(), shape),
        }
    }

    // ---------------------------------------------------------------- accessors

    /// Size of each axis.
    pub fn shape(&self) -> &[usize] {
        &self.layout.shape
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.layout.rank()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }

    /// Shape, strides and offset into the storage.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The storage this tensor views (possibly shared with others).
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }

    /// The device holding the storage.
    pub fn device(&self) -> Device {
        match &*self.storage {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Reference(_) => Device::Reference,
            Storage::Gpu(s) => Device::from_context(Arc::clone(s.context())),
        }
    }

    /// True when the storage is on a GPU.
    pub fn is_gpu(&self) -> bool {
        matches!(&*self.storage, Storage::Gpu(_))
    }

    /// True when the elements are laid out row-major without gaps (size-1 axes ignored); the offset may be non-zero.
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

    /// True when another tensor holds this one's storage too (a clone or a view): an in-place
    /// kernel would change that tensor as well, so in-place ops copy first (copy-on-write).
    pub fn storage_is_shared(&self) -> bool {
        Arc::strong_count(&self.storage) > 1
    }

    // ---------------------------------------------------------------- moving between devices

    /// The same elements on `device` (a shared clone when already there). Moving to the GPU
    /// needs f32 (convert with `to_dtype(DType::F32)` first) and a size within the adapter's
    /// buffer limit; moving to the CPU reads the view's elements back.
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        const OP: &str = "to_device";
        if self.device() == *device {
            return Ok(self.clone());
        }
        match (&*self.storage, device) {
            (Storage::Cpu(_), Device::Gpu(g)) => {
                if self.dtype() != DType::F32 {
                    return Err(TensorError::Device {
                        op: OP,
                        msg: format!(
                            "the GPU holds f32 only, this tensor of shape {:?} is {:?}; convert it with to_dtype(DType::F32) first",
                            self.shape(),
                            self.dtype()
                        ),
                    });
                }
                let t = self.contiguous()?;
                let values = t.cpu_slice::<f32>()?;
                let ctx = g.context();
                let storage = gpu_alloc_rows(ctx, self.shape(), OP)?;
                for (chunk, part) in storage.chunks().iter().zip(values.chunks(storage.chunk_len().max(1))) {
                    ctx.write(chunk, part).map_err(gpu_err(OP))?;
                }
                Ok(Tensor::from_gpu_storage(storage, self.shape()))
            }
            (Storage::Gpu(_), Device::Cpu) => Ok(Tensor::from_kernel(self.read_back(OP)?, self.shape())),
            // Another GPU context: through the host (wgpu cannot copy between devices).
            (Storage::Gpu(_), Device::Gpu(_)) => self.to_cpu()?.to_device(device),
            (Storage::Cpu(_), Device::Cpu) | (Storage::Reference(_), Device::Reference) => Ok(self.clone()),
            // Both in host memory: the view's elements, copied as they are.
            // Between the two host devices: the view's elements, gathered once.
            (Storage::Cpu(s), Device::Reference) => {
                Ok(Tensor::from_reference_storage(gathered(s, &self.layout), self.shape()))
            }
            (Storage::Reference(s), Device::Cpu) => Ok(Tensor::from_cpu(gathered(s, &self.layout), self.shape())),
            (Storage::Gpu(_), Device::Reference) => {
                Ok(Tensor::from_reference_storage(CpuStorage::F32(self.read_back(OP)?), self.shape()))
            }
            (Storage::Reference(_), Device::Gpu(_)) => self.to_cpu()?.to_device(device),
        }
    }

    /// The same elements in CPU memory (a shared clone when already there).
    pub fn to_cpu(&self) -> Result<Tensor> {
        self.to_device(&Device::Cpu)
    }

    /// A GPU tensor's view, in row-major order, copied to the host. Only the view's elements
    /// cross: a view that is not its whole buffer is first gathered on the device.
    fn read_back(&self, op: &'static str) -> Result<Vec<f32>> {
        let s = self.gpu_storage(op)?;
        let whole = self.is_contiguous() && self.layout.offset == 0 && s.len() == self.numel();
        let t = if whole { self.clone() } else { self.gpu_copy(op)? };
        let s = t.gpu_storage(op)?;
        let chunks: Vec<&GpuBuffer> = s.chunks().iter().collect();
        let mut v: Vec<f32> = s.context().read_together(&chunks).map_err(gpu_err(op))?.concat();
        v.truncate(self.numel());
        Ok(v)
    }

    // ---------------------------------------------------------------- GPU glue for the ops

    /// The GPU storage of a GPU tensor (a `Device` error naming `op` for a CPU one).
    pub(crate) fn gpu_storage(&self, op: &'static str) -> Result<&GpuStorage> {
        match &*self.storage {
            Storage::Gpu(s) => Ok(s),
            Storage::Cpu(_) | Storage::Reference(_) => Err(TensorError::Device {
                op,
                msg: format!("expected a GPU tensor, got one on {}", self.device().name()),
            }),
        }
    }

    /// The tensor as a strided view of its GPU storage, for launchers that read any layout.
    pub(crate) fn gpu_view(&self, op: &'static str) -> Result<StorageView<'_>> {
        let storage = self.gpu_storage(op)?;
        Ok(StorageView { storage, strides: self.layout.strides.clone(), offset: self.layout.offset })
    }

    /// A GPU tensor whose elements sit densely at the start of its buffer (what the dense
    /// launchers take): `self` when already so, else a strided-copy.
    pub(crate) fn gpu_dense(&self, op: &'static str) -> Result<Tensor> {
        self.gpu_storage(op)?;
        if self.is_contiguous() && self.layout.offset == 0 {
            Ok(self.clone())
        } else {
            self.gpu_copy(op)
        }
    }

    /// The buffer of [`Self::gpu_dense`]'s result, borrowed: a `Limit` error naming `op` for a
    /// tensor in several buffers (larger than one may be), which `op` binds whole.
    pub(crate) fn gpu_buffer(&self, op: &'static str) -> Result<&GpuBuffer> {
        debug_assert!(self.is_contiguous() && self.layout.offset == 0);
        self.gpu_storage(op)?.buffer(op)
    }

    /// A fresh dense copy of a GPU tensor's view (the strided-copy kernel), in chunks of whole
    /// rows of its leading axis when it is larger than one buffer.
    pub(crate) fn gpu_copy(&self, op: &'static str) -> Result<Tensor> {
        let s = self.gpu_storage(op)?;
        let ctx = s.context();
        let shape = self.shape();
        let out = gpu_alloc_rows(ctx, shape, op)?;
        let (src, dst) = (self.gpu_view(op)?, StorageView::dense(&out, shape));
        for_each_row_part(ctx, op, &[src], &dst, shape, |ctx, src, dst, shape| copy_strided(ctx, &src[0], dst, shape))?;
        Ok(Tensor::from_gpu_storage(out, shape))
    }

    /// `self` laid out as a fresh GPU tensor of its shape is: dense from the start of one
    /// buffer when it fits one, else in exactly the chunks [`gpu_alloc_rows`] makes (a copy
    /// when it lies otherwise: a strided view, or a tensor reshaped from one chunked along
    /// another axis). Tensors of one shape so laid out pair up buffer by buffer.
    pub(crate) fn gpu_dense_as_allocated(&self, op: &'static str) -> Result<Tensor> {
        let t = self.gpu_dense(op)?;
        let s = t.gpu_storage(op)?;
        let chunk_len = chunk_len_for(s.context(), t.shape(), op)?;
        let as_allocated = match s.single_buffer() {
            Some(_) => chunk_len == t.numel(),
            None => s.len() == t.numel() && s.chunk_len() == chunk_len,
        };
        if as_allocated {
            Ok(t)
        } else {
            t.gpu_copy(op)
        }
    }

    /// Makes `self` the sole owner of a dense buffer holding exactly its elements, copying
    /// first when the storage is shared or the view is partial (copy-on-write, as
    /// `cpu_slice_mut`), and returns that storage for an in-place kernel.
    pub(crate) fn gpu_storage_mut(&mut self, op: &'static str) -> Result<&GpuStorage> {
        let s = self.gpu_storage(op)?;
        let dense = self.is_contiguous() && self.layout.offset == 0 && s.len() == self.numel();
        if !dense || Arc::get_mut(&mut self.storage).is_none() {
            *self = self.gpu_copy(op)?;
        }
        self.gpu_storage(op)
    }

    // ---------------------------------------------------------------- CPU data access

    /// The elements of a contiguous CPU (or reference-device) tensor of element type `T`, as a slice.
    /// Kernels call this after `contiguous()`; any other case is a caller bug reported as an
    /// error, and so is a GPU tensor (read it with `to_vec` or move it with `to_cpu`).
    pub fn cpu_slice<T: Float>(&self) -> Result<&[T]> {
        let s = self.cpu_storage("cpu_slice")?;
        if !self.is_contiguous() {
            return invalid("cpu_slice", "tensor is not contiguous; call contiguous() first");
        }
        match T::slice(s) {
            Some(v) => Ok(&v[self.layout.offset..self.layout.offset + self.numel()]),
            None => Err(TensorError::DType { op: "cpu_slice", expected: T::DTYPE, got: s.dtype() }),
        }
    }

    /// Mutable access to a contiguous CPU tensor's elements. Copies the storage first if it is
    /// shared with another tensor (copy-on-write), so other tensors never see the change.
    pub fn cpu_slice_mut<T: Float>(&mut self) -> Result<&mut [T]> {
        const OP: &str = "cpu_slice_mut";
        self.cpu_storage(OP)?;
        let dense = self.is_contiguous() && self.layout.offset == 0 && self.storage.len() == self.numel();
        if !dense || Arc::get_mut(&mut self.storage).is_none() {
            *self = self.contiguous_copy()?;
        }
        let n = self.numel();
        let Some(Storage::Cpu(s) | Storage::Reference(s)) = Arc::get_mut(&mut self.storage) else {
            unreachable!("a fresh contiguous copy of a tensor in host memory is an unshared host storage");
        };
        let got = s.dtype();
        match T::slice_mut(s) {
            Some(v) => Ok(&mut v[..n]),
            None => Err(TensorError::DType { op: OP, expected: T::DTYPE, got }),
        }
    }

    fn cpu_storage(&self, op: &'static str) -> Result<&CpuStorage> {
        match &*self.storage {
            Storage::Cpu(s) | Storage::Reference(s) => Ok(s),
            Storage::Gpu(_) => Err(TensorError::Device {
                op,
                msg: format!(
                    "the tensor of shape {:?} lives on {}; read it with to_vec() or move it with to_cpu()",
                    self.shape(),
                    self.device().name()
                ),
            }),
        }
    }

    /// All elements in row-major order, converted to `T` (a read-back for a GPU tensor: an
    /// error if the device was lost).
    pub fn to_vec<T: Float>(&self) -> Result<Vec<T>> {
        if self.is_gpu() {
            let v = self.read_back("to_vec")?;
            return Ok(v.into_iter().map(|x| T::from_f64(x as f64)).collect());
        }
        let t = self.to_dtype(T::DTYPE)?.contiguous()?;
        Ok(t.cpu_slice::<T>()?.to_vec())
    }

    /// All elements in row-major order as f32; see [`Tensor::to_vec`].
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        self.to_vec::<f32>()
    }

    /// All elements in row-major order as f64; see [`Tensor::to_vec`].
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        self.to_vec::<f64>()
    }

    /// [`Tensor::to_vec_f64`] of several tensors, with one host round trip for those on the
    /// GPU (per context): a step reads its loss terms and its optimizer's flag together.
    pub fn to_vecs_f64(tensors: &[&Tensor]) -> Result<Vec<Vec<f64>>> {
        const OP: &str = "to_vecs_f64";
        let mut out: Vec<Option<Vec<f64>>> = vec![None; tensors.len()];
        // Dense, whole copies of the GPU tensors, each read as one buffer.
        let mut on_gpu: Vec<(usize, Tensor)> = Vec::new();
        for (i, t) in tensors.iter().enumerate() {
            match t.storage() {
                Storage::Cpu(_) | Storage::Reference(_) => out[i] = Some(t.to_vec_f64()?),
                Storage::Gpu(s) if t.is_contiguous() && t.layout.offset == 0 && s.len() == t.numel() => {
                    on_gpu.push((i, (*t).clone()))
                }
                Storage::Gpu(_) => on_gpu.push((i, t.gpu_copy(OP)?)),
            }
        }
        while let Some((_, first)) = on_gpu.first() {
            let ctx = Arc::clone(first.gpu_storage(OP)?.context());
            let (here, rest): (Vec<_>, Vec<_>) = on_gpu
                .into_iter()
                .partition(|(_, t)| matches!(t.storage(), Storage::Gpu(s) if Arc::ptr_eq(s.context(), &ctx)));
            // Every chunk of every tensor in one read, then each tensor's chunks joined.
            let storages = here.iter().map(|(_, t)| t.gpu_storage(OP)).collect::<Result<Vec<_>>>()?;
            let buffers: Vec<&GpuBuffer> = storages.iter().flat_map(|s| s.chunks()).collect();
            let mut values = ctx.read_together(&buffers).map_err(gpu_err(OP))?.into_iter();
            for ((i, t), s) in here.iter().zip(&storages) {
                let v: Vec<f32> = values.by_ref().take(s.chunks().len()).flatten().collect();
                out[*i] = Some(v[..t.numel()].iter().map(|&x| x as f64).collect());
            }
            on_gpu = rest;
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return shape_err("item", format!("item() needs exactly one element, got shape {:?}", self.shape()));
        }
        Ok(self.to_vec::<f64>()?[0])
    }

    /// Converts the element type (a no-op returning a clone when it already matches).
    /// f64 lives only on the CPU, so converting a GPU tensor to f64 reads it back (an error if
    /// the device was lost).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        if self.is_gpu() {
            return self.to_cpu()?.to_dtype(dtype);
        }
        if self.device().is_reference() {
            return Ok(reference::tensor(reference::values(self)?, self.shape(), dtype));
        }
        fn cast<S: Float, D: Float>(t: &Tensor) -> Result<Tensor> {
            let s = t.cpu_slice::<S>()?;
            Ok(Tensor::from_kernel(s.iter().map(|&x| D::from_f64(x.to_f64())).collect(), t.shape()))
        }
        let t = self.contiguous()?;
        match (t.dtype(), dtype) {
            (DType::F64, DType::F32) => cast::<f64, f32>(&t),
            (DType::F32, DType::F64) => cast::<f32, f64>(&t),
            _ => Ok(t),
        }
    }

    // ---------------------------------------------------------------- views and copies

    /// A contiguous tensor with the same elements: `self` (shared) when already contiguous.
    /// On the GPU a copy can fail: a broadcast view larger than the adapter's buffer limit, or
    /// a lost device.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            Ok(self.clone())
        } else {
            self.contiguous_copy()
        }
    }

    /// Always copies into fresh, dense storage (on the tensor's device); fails as
    /// [`Self::contiguous`].
    pub fn contiguous_copy(&self) -> Result<Tensor> {
        let _profile = crate::profile::scope(crate::profile::OpFamily::Copy, "contiguous", self);
        match &*self.storage {
            Storage::Cpu(s) => Ok(Tensor::from_cpu(gathered(s, &self.layout), self.shape())),
            Storage::Reference(s) => Ok(reference::tensor(reference::values(self)?, self.shape(), s.dtype())),
            Storage::Gpu(_) => self.gpu_copy("contiguous"),
        }
    }

    pub(crate) fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor { storage: self.storage.clone(), layout }
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
        let t = self.contiguous()?;
        let mut layout = Layout::contiguous(shape);
        layout.offset = t.layout.offset;
        Ok(t.with_layout(layout))
    }

    /// Reshape where at most one entry is -1, inferred from the element count.
    pub fn reshape_infer(&self, shape: &[isize]) -> Result<Tensor> {
        let known: usize = shape.iter().filter(|&&d| d >= 0).map(|&d| d as usize).product();
        let unknown = shape.iter().filter(|&&d| d < 0).count();
        if unknown > 1 || (unknown == 1 && (known == 0 || !self.numel().is_multiple_of(known))) {
            return shape_err("reshape", format!("cannot reshape {:?} into {shape:?}", self.shape()));
        }
        let resolved: Shape =
            shape.iter().map(|&d| if d < 0 { self.numel() / known.max(1) } else { d as usize }).collect();
        self.reshape(&resolved)
    }

    /// Reorders dimensions (a view): output dim i is input dim `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.permute(perm)?))
    }

    /// Swaps two dimensions (a view).
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let rank = self.rank();
        let (a, b) =
            (crate::shape::normalize_axis("transpose", a, rank)?, crate::shape::normalize_axis("transpose", b, rank)?);
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
                format!("range {start}..{} is out of bounds for axis {a} of shape {:?}", start + len, self.shape()),
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
            return Err(TensorError::Axis { op: "unsqueeze", axis: axis as isize, rank: self.rank() });
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
                format!("axis {a} of shape {:?} has size {}, not 1", self.shape(), self.shape()[a]),
            );
        }
        let mut shape = self.shape().to_vec();
        shape.remove(a);
        self.reshape(&shape)
    }

    /// Flattens all dims from `start` on into one: [N, C, H, W].flatten_from(1) = [N, C·H·W].
    pub fn flatten_from(&self, start: usize) -> Result<Tensor> {
        if start > self.rank() {
            return Err(TensorError::Axis { op: "flatten", axis: start as isize, rank: self.rank() });
        }
        let mut shape = self.shape()[..start].to_vec();
        shape.push(numel(&self.shape()[start..]));
        self.reshape(&shape)
    }
}

/// The elements of `layout` over host storage `s`, densely, in row-major order.
fn gathered(s: &CpuStorage, layout: &Layout) -> CpuStorage {
    match s {
        CpuStorage::F32(v) => CpuStorage::F32(cpu::copy::gather_layout(v, layout)),
        CpuStorage::F64(v) => CpuStorage::F64(cpu::copy::gather_layout(v, layout)),
    }
}

/// Refuses a dtype the GPU cannot hold (it holds f32 only).
pub(crate) fn check_gpu_dtype(op: &'static str, dtype: DType) -> Result<()> {
    if dtype != DType::F32 {
        return Err(TensorError::Device { op, msg: format!("the GPU holds f32 only, got {dtype:?}") });
    }
    Ok(())
}

/// A GPU buffer of `len` elements for the output of `op` (a `Limit` error beyond the
/// adapter's buffer size).
pub(crate) fn gpu_alloc(ctx: &Context, len: usize, op: &'static str) -> Result<GpuBuffer> {
    ctx.alloc(len).map_err(gpu_err(op))
}

/// One GPU launch of `op` with tensor operands, none of them cut: makes the `inputs` dense
/// (an absent optional operand stays `None`), allocates one output per shape in `outputs` on
/// the inputs' context, runs `launch` on the buffers, and wraps the outputs as contiguous
/// tensors. The first input must be present (it names the context); the op has already
/// checked devices and shapes. [`run_gpu_in_parts`] with every operand `Cut::Whole`: an
/// operand larger than one GPU binding is refused by the launch, naming the limit.
pub(crate) fn run_gpu<const N: usize>(
    op: &'static str,
    inputs: &[Option<&Tensor>],
    outputs: [&[usize]; N],
    launch: impl Fn(&Context, &[Option<&GpuBuffer>], [&GpuBuffer; N]) -> gpu::Result<()>,
) -> Result<[Tensor; N]> {
    let inputs: Vec<(Option<&Tensor>, Cut)> = inputs.iter().map(|&t| (t, Cut::Whole)).collect();
    run_gpu_in_parts(op, 1, &inputs, outputs.map(|s| (s, Cut::Whole)), |ctx, _, i, o| launch(ctx, i, o))
}
