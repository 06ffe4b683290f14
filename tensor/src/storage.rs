//! Where a tensor's elements physically live: CPU memory (f32 or f64 vectors) or a GPU
//! buffer (f32 only). A `Tensor` is a shared `Storage` plus a `Layout` view of it.

use std::sync::Arc;

use crate::dtype::DType;

/// Elements in CPU memory.
#[derive(Clone, Debug, PartialEq)]
pub enum CpuStorage {
    /// f32 elements.
    F32(Vec<f32>),
    /// f64 elements.
    F64(Vec<f64>),
}

impl CpuStorage {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// f32 elements in a buffer of one GPU context. The buffer goes back to the context's pool
/// when the last tensor viewing it is dropped.
pub struct GpuStorage {
    buffer: gpu::GpuBuffer,
    ctx: Arc<gpu::Context>,
}

impl GpuStorage {
    /// Wraps `buffer`, which must belong to `ctx`.
    pub fn new(buffer: gpu::GpuBuffer, ctx: Arc<gpu::Context>) -> Self {
        GpuStorage { buffer, ctx }
    }

    /// The GPU buffer.
    pub fn buffer(&self) -> &gpu::GpuBuffer {
        &self.buffer
    }

    /// The context owning the buffer.
    pub fn context(&self) -> &Arc<gpu::Context> {
        &self.ctx
    }

    /// Number of f32 elements in the buffer.
    pub fn len(&self) -> usize {
        self.buffer.len()
    }

    /// True when the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }
}

impl std::fmt::Debug for GpuStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuStorage {{ {:?} on {} }}", self.buffer, self.ctx.info().name)
    }
}

/// The storage behind a tensor, on one device. Not `Clone`: a GPU buffer has one owner (a
/// copy is a device command, see `Tensor::contiguous_copy`); tensors share it through an `Arc`.
#[derive(Debug)]
pub enum Storage {
    /// In CPU memory.
    Cpu(CpuStorage),
    /// In a GPU buffer (f32).
    Gpu(GpuStorage),
}

impl Storage {
    /// The element type (always F32 on the GPU).
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            Storage::Gpu(_) => DType::F32,
        }
    }

    /// Number of elements held (a view may use fewer).
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len(),
            Storage::Gpu(s) => s.len(),
        }
    }

    /// True when no elements are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
