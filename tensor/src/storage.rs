//! Where a tensor's elements physically live: CPU memory (f32 or f64 vectors) or a GPU
//! buffer (f32 only). A `Tensor` is a shared `Storage` plus a `Layout` view of it. A tensor
//! on the reference device lives in CPU memory too; its variant says which kernels run on it.

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

/// f32 elements in buffers of one GPU context: one buffer, or, for a tensor larger than the
/// device creates (max_buffer_size: 4 GiB on an H100), several "chunks" of whole rows of its
/// leading axis. Chunk i holds elements `i·chunk_len .. (i + 1)·chunk_len` (the last may hold
/// fewer), so each element has one place, and the ops that cut their launches along rows
/// (`crate::gpu_parts`) keep every part inside one chunk. The buffers go back to the
/// context's pool when the last tensor viewing them is dropped.
pub struct GpuStorage {
    chunks: Vec<gpu::GpuBuffer>,
    /// Elements per chunk (all but the last hold exactly this many).
    chunk_len: usize,
    ctx: Arc<gpu::Context>,
}

impl GpuStorage {
    /// Wraps `buffer`, which must belong to `ctx`.
    pub fn new(buffer: gpu::GpuBuffer, ctx: Arc<gpu::Context>) -> Self {
        GpuStorage { chunk_len: buffer.len(), chunks: vec![buffer], ctx }
    }

    /// Wraps `chunks` of `chunk_len` elements each (the last may be shorter), all of `ctx`.
    pub(crate) fn chunked(chunks: Vec<gpu::GpuBuffer>, chunk_len: usize, ctx: Arc<gpu::Context>) -> Self {
        debug_assert!(chunks.iter().rev().skip(1).all(|c| c.len() == chunk_len));
        GpuStorage { chunks, chunk_len, ctx }
    }

    /// The buffer, when the elements are in one (`None` for a storage in chunks).
    pub fn single_buffer(&self) -> Option<&gpu::GpuBuffer> {
        match self.chunks.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// The buffer, for an op that binds it whole: a `Limit` error naming `op` when the
    /// elements lie in chunks.
    pub(crate) fn buffer(&self, op: &'static str) -> crate::error::Result<&gpu::GpuBuffer> {
        self.single_buffer().ok_or_else(|| crate::error::TensorError::Limit {
            op,
            msg: format!(
                "a tensor of {} f32 is larger than one GPU buffer (max_buffer_size) and lies in {} buffers, and \
                 this op binds it whole",
                self.len(),
                self.chunks.len()
            ),
        })
    }

    /// The buffers holding the elements, in order.
    pub fn chunks(&self) -> &[gpu::GpuBuffer] {
        &self.chunks
    }

    /// Elements per chunk (all but the last hold exactly this many).
    pub fn chunk_len(&self) -> usize {
        self.chunk_len
    }

    /// The chunk holding element `i` and where `i` lies in it.
    pub(crate) fn locate(&self, i: usize) -> (&gpu::GpuBuffer, usize) {
        let c = (i / self.chunk_len.max(1)).min(self.chunks.len() - 1);
        (&self.chunks[c], i - c * self.chunk_len)
    }

    /// The context owning the buffers.
    pub fn context(&self) -> &Arc<gpu::Context> {
        &self.ctx
    }

    /// Number of f32 elements in the buffers.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }

    /// True when the buffers hold no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for GpuStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuStorage {{ {:?} on {} }}", self.chunks, self.ctx.info().name)
    }
}

/// The storage behind a tensor, on one device. Not `Clone`: a GPU buffer has one owner (a
/// copy is a device command, see `Tensor::contiguous_copy`); tensors share it through an `Arc`.
#[derive(Debug)]
pub enum Storage {
    /// In CPU memory, for the fast CPU kernels.
    Cpu(CpuStorage),
    /// In CPU memory, for the reference tier's plain loops (`crate::reference`).
    Reference(CpuStorage),
    /// In a GPU buffer (f32).
    Gpu(GpuStorage),
}

impl Storage {
    /// The element type (always F32 on the GPU).
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) | Storage::Reference(s) => s.dtype(),
            Storage::Gpu(_) => DType::F32,
        }
    }

    /// Number of elements held (a view may use fewer).
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) | Storage::Reference(s) => s.len(),
            Storage::Gpu(s) => s.len(),
        }
    }

    /// True when no elements are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
