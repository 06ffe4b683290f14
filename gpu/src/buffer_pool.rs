//! Reusable storage buffers, bucketed by size, and the [`GpuBuffer`] handle that gives its
//! buffer back to the pool when dropped.
//!
//! A training step allocates the same few hundred sizes every iteration; creating a wgpu
//! buffer costs a driver allocation (and, on some drivers, zeroing), so dropped buffers are
//! kept in per-size-class free lists and handed out again. Sizes are rounded up to one of
//! four classes per power of two (4·2^k, 5·2^k, 6·2^k, 7·2^k bytes) below 1 MiB, so at most
//! 25 % of a small buffer is slack while nearby sizes still share buffers, and to one of
//! sixteen from 1 MiB on (at most 6.25 %): the large buffers (activations, the optimizer's
//! packs) are where slack adds up to memory a step cannot use.
//!
//! Reuse is safe without waiting for the GPU: every use of a buffer is recorded into the
//! context's single pending command encoder (or a later one), and the GPU executes commands
//! in recording order, so a buffer handed out again is only written after the earlier
//! commands that read it. (Uploads never use `queue.write_buffer`, which would jump that
//! queue; see `Context::upload`.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Storage buffers are bound, copied from (read-back) and copied to (upload, clear).
pub(crate) const USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// [`PoolShared::memory_limit`] when none is set.
const NO_LIMIT: u64 = u64::MAX;

/// Smallest buffer the pool creates, in bytes.
const MIN_BYTES: u64 = 256;

/// Counters for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// wgpu buffers created since the context was made (allocations the free lists could not
    /// serve: the pool's misses).
    pub created: u64,
    /// Total size of the buffers created, in bytes.
    pub created_bytes: u64,
    /// Allocations served from a free list instead.
    pub reused: u64,
    /// Buffers currently idle in the free lists, and their total size.
    pub idle_buffers: u64,
    /// Total size of the idle buffers, in bytes.
    pub idle_bytes: u64,
    /// Total size of the buffers handed out and not yet given back (in use by tensors), in
    /// bytes, counted by size class: the counterpart of PyTorch's memory_allocated.
    pub live_bytes: u64,
    /// The most `live_bytes` has been since the context was made or
    /// `Context::reset_peak_live_bytes`: the counterpart of PyTorch's max_memory_allocated.
    pub peak_live_bytes: u64,
}

struct FreeLists {
    by_class: HashMap<u64, Vec<(wgpu::Buffer, u64)>>,
    stats: PoolStats,
    /// Ids of the buffers released to the driver since the last [`BufferPool::take_released`]:
    /// the context's bind-group cache must forget them, or its bind groups would keep them
    /// alive.
    released: Vec<u64>,
}

/// The pool's shared state: every [`GpuBuffer`] holds an `Arc` to it so its `Drop` can return
/// the buffer.
pub(crate) struct PoolShared {
    free: Mutex<FreeLists>,
    /// Idle buffers beyond this many bytes are released to the driver instead of kept.
    max_idle_bytes: AtomicU64,
    /// The most bytes the pool may hold, in use and idle ([`NO_LIMIT`] when unlimited).
    memory_limit: AtomicU64,
    next_id: AtomicU64,
}

/// The buffer pool of one [`crate::Context`].
pub(crate) struct BufferPool {
    shared: Arc<PoolShared>,
    /// The largest class: the device's max_buffer_size (a buffer above the binding limit is
    /// bound a window at a time, see [`GpuBuffer::window`]).
    max_bytes: u64,
}

/// From this size on, sixteen size classes per power of two instead of four.
const FINE_CLASSES_FROM: u64 = 1 << 20;

/// Size class of a request of `bytes` bytes: rounded up to a multiple of 2^(⌊log2 bytes⌋ − 2),
/// or of 2^(⌊log2 bytes⌋ − 4) from [`FINE_CLASSES_FROM`] on, capped at `max_bytes` (requests
/// above it are refused before this is called).
pub(crate) fn size_class(bytes: u64, max_bytes: u64) -> u64 {
    let b = bytes.max(MIN_BYTES);
    let fraction_bits = if b >= FINE_CLASSES_FROM { 4 } else { 2 };
    let step = 1u64 << (63 - b.leading_zeros() - fraction_bits);
    b.div_ceil(step).saturating_mul(step).min(max_bytes.max(b))
}

impl BufferPool {
    pub(crate) fn new(max_bytes: u64) -> Self {
        BufferPool {
            shared: Arc::new(PoolShared {
                free: Mutex::new(FreeLists {
                    by_class: HashMap::new(),
                    stats: PoolStats::default(),
                    released: Vec::new(),
                }),
                max_idle_bytes: AtomicU64::new(2 << 30),
                memory_limit: AtomicU64::new(NO_LIMIT),
                next_id: AtomicU64::new(1),
            }),
            max_bytes,
        }
    }

    /// A buffer of at least `len` f32 elements (contents undefined), or `None` when the free
    /// lists have none and a new one would exceed the memory limit or the driver is out of
    /// memory (the caller may release idle buffers and try again). The caller has checked
    /// `len·4 ≤ max_bytes`.
    pub(crate) fn take(&self, device: &wgpu::Device, len: usize) -> Option<GpuBuffer> {
        let class = self.class_bytes(len);
        let reused = {
            let mut free = self.shared.free.lock().unwrap();
            let hit = free.by_class.get_mut(&class).and_then(|list| {
                // The oldest idle buffer (lowest id), not the last returned: which buffers
                // are idle at each request repeats from one training step to the next, but the
                // order a step's tensors are dropped in need not, and the bind-group cache
                // (crate::bind_groups) hits only if a step gets the same buffers as the last.
                let oldest = (0..list.len()).min_by_key(|&i| list[i].1)?;
                Some(list.swap_remove(oldest))
            });
            if hit.is_some() {
                free.stats.reused += 1;
                free.stats.idle_buffers -= 1;
                free.stats.idle_bytes -= class;
                free.lend(class);
            }
            hit
        };
        let (raw, id) = match reused {
            Some(found) => found,
            None => {
                let raw = self.create(device, class)?;
                let mut free = self.shared.free.lock().unwrap();
                free.stats.created += 1;
                free.stats.created_bytes += class;
                free.lend(class);
                (raw, self.shared.next_id.fetch_add(1, Ordering::Relaxed))
            }
        };
        Some(GpuBuffer { raw: Some(raw), offset: 0, len, id, pool: Some(Arc::clone(&self.shared)), packed_in: None })
    }

    /// A new wgpu buffer of `class` bytes, unless the pool would then hold more than its limit
    /// or the driver reports that it is out of memory (caught in an error scope: uncaught, the
    /// error would surface only at the next read, after everything recorded with the invalid
    /// buffer in between).
    fn create(&self, device: &wgpu::Device, class: u64) -> Option<wgpu::Buffer> {
        let limit = self.shared.memory_limit.load(Ordering::Relaxed);
        let held = {
            let free = self.shared.free.lock().unwrap();
            free.stats.live_bytes + free.stats.idle_bytes
        };
        if held.saturating_add(class) > limit {
            return None;
        }
        let scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let raw = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gpu pool buffer"),
            size: class,
            usage: USAGE,
            mapped_at_creation: false,
        });
        pollster::block_on(scope.pop()).is_none().then_some(raw)
    }

    /// The size class `len` elements take (what [`Self::take`] asks the driver for).
    pub(crate) fn class_bytes(&self, len: usize) -> u64 {
        size_class((len as u64) * 4, self.max_bytes)
    }

    /// Sets the most bytes the pool may hold, in use and idle (`None`: no limit).
    pub(crate) fn set_memory_limit(&self, bytes: Option<u64>) {
        self.shared.memory_limit.store(bytes.unwrap_or(NO_LIMIT), Ordering::Relaxed);
    }

    /// The limit [`Self::set_memory_limit`] set.
    pub(crate) fn memory_limit(&self) -> Option<u64> {
        Some(self.shared.memory_limit.load(Ordering::Relaxed)).filter(|&l| l != NO_LIMIT)
    }

    pub(crate) fn stats(&self) -> PoolStats {
        self.shared.free.lock().unwrap().stats
    }

    pub(crate) fn set_max_idle_bytes(&self, bytes: u64) {
        self.shared.max_idle_bytes.store(bytes, Ordering::Relaxed);
        if bytes == 0 {
            self.trim();
        }
    }

    /// Releases every idle buffer to the driver.
    pub(crate) fn trim(&self) {
        let mut free = self.shared.free.lock().unwrap();
        let idle: Vec<u64> = free.by_class.drain().flat_map(|(_, list)| list.into_iter().map(|(_, id)| id)).collect();
        free.released.extend(idle);
        free.stats.idle_buffers = 0;
        free.stats.idle_bytes = 0;
    }

    /// Starts a new peak of live bytes from what is live now.
    pub(crate) fn reset_peak_live_bytes(&self) {
        let mut free = self.shared.free.lock().unwrap();
        free.stats.peak_live_bytes = free.stats.live_bytes;
    }

    /// The ids of the buffers released since the last call.
    pub(crate) fn take_released(&self) -> Vec<u64> {
        std::mem::take(&mut self.shared.free.lock().unwrap().released)
    }
}

impl FreeLists {
    /// Counts a buffer of `class` bytes handed out.
    fn lend(&mut self, class: u64) {
        self.stats.live_bytes += class;
        self.stats.peak_live_bytes = self.stats.peak_live_bytes.max(self.stats.live_bytes);
    }
}

impl PoolShared {
    fn give_back(&self, raw: wgpu::Buffer, id: u64) {
        let class = raw.size();
        let mut free = self.free.lock().unwrap();
        free.stats.live_bytes -= class;
        if free.stats.idle_bytes + class > self.max_idle_bytes.load(Ordering::Relaxed) {
            free.released.push(id);
            return; // dropping `raw` releases it once the GPU is done with it
        }
        free.stats.idle_buffers += 1;
        free.stats.idle_bytes += class;
        free.by_class.entry(class).or_default().push((raw, id));
    }
}

/// A device buffer of `len` 4-byte elements (f32, or u32 for index outputs) borrowed from
/// the context's pool. Dropping it returns the buffer to the pool; commands already recorded
/// that use it stay valid (the pool only hands it out to commands recorded later).
///
/// Not `Clone`: one owner decides when the memory may be reused. Share it with an `Arc`.
/// A [`BufferWindow`] is a `GpuBuffer` too: elements `offset..offset + len` of another
/// buffer, for binding a part of a buffer larger than a binding may be. So is each buffer of
/// [`crate::Context::alloc_packed`]: a range of one pool buffer shared by several, which goes
/// back to the pool when the last of them is dropped.
pub struct GpuBuffer {
    raw: Option<wgpu::Buffer>,
    /// First element, within the wgpu buffer (0 except for windows and packed buffers).
    offset: usize,
    len: usize,
    id: u64,
    /// The pool to give the buffer back to on drop; `None` for a window or a packed buffer,
    /// which own no buffer of their own.
    pool: Option<Arc<PoolShared>>,
    /// For a packed buffer: the pool buffer it is a range of, kept alive while any range is.
    packed_in: Option<Arc<GpuBuffer>>,
}

impl GpuBuffer {
    /// Number of 4-byte elements (the underlying buffer may be larger: its size class).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Identity of the underlying wgpu buffer (stable across reuse); two live pool buffers
    /// never share one (a window shares its parent's).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Where this buffer's element 0 lies in the underlying wgpu buffer, in elements (0 for a
    /// pool buffer; a window's start).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The underlying wgpu buffer, for callers that record their own commands (a window's
    /// elements start [`Self::offset`] elements into it).
    pub fn raw(&self) -> &wgpu::Buffer {
        self.raw.as_ref().expect("GpuBuffer used after drop")
    }

    /// Bytes a kernel may touch: the first `len` elements (at least one element, since wgpu
    /// forbids empty bindings).
    pub(crate) fn bytes(&self) -> u64 {
        (self.len.max(1) as u64) * 4
    }

    /// Byte offset of element 0 in the underlying wgpu buffer.
    pub(crate) fn byte_offset(&self) -> u64 {
        self.offset as u64 * 4
    }

    pub(crate) fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.raw(),
            offset: self.byte_offset(),
            size: wgpu::BufferSize::new(self.bytes()),
        })
    }

    /// Elements `start..start + len` of this buffer as a buffer of their own, borrowing this
    /// one (which therefore cannot go back to the pool while the window is in use). The
    /// caller has checked the range and its alignment: `Context::window` does both.
    pub(crate) fn window(&self, start: usize, len: usize) -> BufferWindow<'_> {
        BufferWindow {
            window: GpuBuffer {
                raw: self.raw.clone(),
                offset: self.offset + start,
                len,
                id: self.id,
                pool: None,
                packed_in: None,
            },
            _parent: std::marker::PhantomData,
        }
    }

    /// Elements `start..start + len` of `whole` as a buffer that owns a share of it (the
    /// caller has checked the range and its alignment: `Context::alloc_packed` does).
    pub(crate) fn packed_range(whole: &Arc<GpuBuffer>, start: usize, len: usize) -> GpuBuffer {
        GpuBuffer {
            raw: whole.raw.clone(),
            offset: whole.offset + start,
            len,
            id: whole.id,
            pool: None,
            packed_in: Some(Arc::clone(whole)),
        }
    }

    /// The pool buffer a packed buffer is a range of (`None` for any other buffer).
    pub(crate) fn packed_in(&self) -> Option<&Arc<GpuBuffer>> {
        self.packed_in.as_ref()
    }
}

/// A range of a [`GpuBuffer`], usable wherever a `GpuBuffer` is (it dereferences to one):
/// how a kernel reads or writes part of a tensor larger than one storage binding may be.
pub struct BufferWindow<'a> {
    window: GpuBuffer,
    _parent: std::marker::PhantomData<&'a GpuBuffer>,
}

impl std::fmt::Debug for BufferWindow<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.window.fmt(f)
    }
}

impl std::ops::Deref for BufferWindow<'_> {
    type Target = GpuBuffer;
    fn deref(&self) -> &GpuBuffer {
        &self.window
    }
}

impl std::fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pool.is_none() {
            let kind = if self.packed_in.is_some() { "packed" } else { "window" };
            return write!(f, "GpuBuffer {{ id: {}, {kind} {}..{} }}", self.id, self.offset, self.offset + self.len);
        }
        write!(f, "GpuBuffer {{ id: {}, len: {} }}", self.id, self.len)
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let (Some(raw), Some(pool)) = (self.raw.take(), &self.pool) {
            pool.give_back(raw, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_waste_at_most_a_quarter_and_respect_the_cap() {
        for bytes in (4..1 << 20).step_by(4092) {
            let c = size_class(bytes, u64::MAX);
            assert!(c >= bytes && c >= MIN_BYTES, "{bytes} -> {c}");
            assert!(c <= MIN_BYTES.max(bytes + bytes / 4 + 4), "{bytes} -> {c}");
        }
        assert_eq!(size_class(1000, 512), 1000);
        assert_eq!(size_class((127 << 20) + 4, 128 << 20), 128 << 20);
    }

    #[test]
    fn size_classes_from_a_mebibyte_on_waste_at_most_a_sixteenth() {
        for bytes in (1u64 << 20..1 << 30).step_by(999_983) {
            let c = size_class(bytes, u64::MAX);
            assert!(c >= bytes && c <= bytes + bytes / 16 + 4, "{bytes} -> {c}");
        }
        assert_eq!(size_class(100 << 20, 128 << 20), 100 << 20);
        assert_eq!(size_class((100 << 20) + 4, 128 << 20), 104 << 20);
        assert_eq!(size_class((4 << 20) + (100 << 10), u64::MAX), (4 << 20) + (256 << 10));
    }
}
