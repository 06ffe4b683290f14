//! A caching global allocator for training loops: large blocks are kept when freed and handed
//! out again for the next request of the same size; a request of a new size recycles an idle
//! block of another size (Linux: `mremap`, which keeps its pages resident) instead of faulting
//! in fresh memory.
//!
//! Why: a training step allocates the same few hundred large buffers (activations, gradients,
//! im2col scratch) every step. glibc serves blocks above its mmap threshold (at most 32 MiB)
//! with fresh `mmap`s and trims its heap on free, so every step page-faults its working set
//! in again: ~12,000 page faults per step on workload B5, a quarter of its CPU time. PyTorch's
//! GPU caching allocator solves the same problem the same way.
//!
//! Opt-in, per binary (a library must not choose the allocator for its users):
//! ```
//! #[global_allocator]
//! static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator =
//!     tensor::cpu::caching_allocator::CachingAllocator;
//!
//! fn main() {
//!     let (hits_before, _) = tensor::cpu::caching_allocator::stats();
//!     drop(vec![1.0f32; 1 << 20]); // 4 MiB: kept by the cache when freed
//!     let again = vec![0.0f32; 1 << 20]; // the same size: served from the cache, zeroed
//!     assert!(tensor::cpu::caching_allocator::stats().0 > hits_before);
//!     assert!(again.iter().all(|&x| x == 0.0));
//! }
//! ```
//! Blocks of at least [`MIN_CACHED_BYTES`] (and alignment up to a page) are page mappings of
//! their own, their lengths rounded up to a size class (8 per doubling), cached up to
//! [`SLOTS`] blocks and [`MAX_IDLE_BYTES`] idle bytes; smaller ones are left to the system
//! allocator.
//!
//! Memory: a step's buffers of one size are idle while it needs another size (forward
//! activations during backward, and back), so an exact-size cache alone either grows to hold
//! both or evicts and re-faults both every step. Here a request that finds no idle block of its
//! class takes the best-fitting idle block instead: a slightly larger one (≤ 25 % more) whole,
//! else one resized to the request with `mremap`, which keeps its pages resident (only a grown
//! tail is faulted in). Idle blocks are released only while live + idle bytes exceed the
//! highest live total so far, so idle memory fills the room below a step's peak but never adds
//! to it. Measured (`cargo bench --bench train_step`): B3's peak RSS 1321 → 1223 MiB (after backward began freeing activations).
//! Nothing here allocates (the allocator cannot call itself): the cache is a fixed array.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Smaller blocks are left to the system allocator, which keeps them in its arenas anyway.
pub const MIN_CACHED_BYTES: usize = 128 * 1024;
/// How many idle blocks the cache holds at most.
pub const SLOTS: usize = 1024;
/// How many idle bytes the cache holds at most.
pub const MAX_IDLE_BYTES: usize = 4 << 30;
/// A larger idle block is handed out whole only if it exceeds the request by at most
/// 1/OVERSIZE_DIVISOR; a larger one is cut to size, so one small request cannot tie up a big
/// block. (Measured: allowing 2× cut B1's page faults 17k → 14k per step but raised B3's peak
/// RSS 1223 → 1322 MiB, above PyTorch's; no limit: B1 ~300 faults per step, B3 1780 MiB.)
const OVERSIZE_DIVISOR: usize = 4;
/// Blocks are whole pages; larger alignments than this go to the system allocator.
const PAGE: usize = 4096;

/// Page mappings for the large blocks: mmap/mremap/munmap on Linux; elsewhere page-aligned
/// blocks of the system allocator, which cannot be resized in place (`remap` declines).
mod pages {
    #[cfg(target_os = "linux")]
    mod imp {
        /// A fresh zero-filled mapping of `len` bytes (a multiple of the page), or null.
        pub unsafe fn map(len: usize) -> *mut u8 {
            // SAFETY: an anonymous private mapping at an address of the kernel's choosing
            // touches no existing memory.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                std::ptr::null_mut()
            } else {
                p.cast()
            }
        }

        /// Resizes a mapping (moving it if it must), keeping its pages; null on failure, when
        /// the old mapping is left as it was.
        pub unsafe fn remap(p: *mut u8, old_len: usize, new_len: usize) -> *mut u8 {
            // SAFETY: the caller owns the mapping [p, p + old_len) and nothing else refers to it.
            let q = unsafe { libc::mremap(p.cast(), old_len, new_len, libc::MREMAP_MAYMOVE) };
            if q == libc::MAP_FAILED {
                std::ptr::null_mut()
            } else {
                q.cast()
            }
        }

        /// Returns a mapping to the system.
        pub unsafe fn unmap(p: *mut u8, len: usize) {
            // SAFETY: the caller owns the mapping and drops every reference to it.
            unsafe { libc::munmap(p.cast(), len) };
        }
    }

    #[cfg(not(target_os = "linux"))]
    mod imp {
        use std::alloc::{GlobalAlloc, Layout, System};

        fn layout(len: usize) -> Layout {
            Layout::from_size_align(len, super::super::PAGE).expect("a page multiple is a valid layout")
        }

        pub unsafe fn map(len: usize) -> *mut u8 {
            unsafe { System.alloc_zeroed(layout(len)) }
        }

        pub unsafe fn remap(_p: *mut u8, _old_len: usize, _new_len: usize) -> *mut u8 {
            std::ptr::null_mut()
        }

        pub unsafe fn unmap(p: *mut u8, len: usize) {
            unsafe { System.dealloc(p, layout(len)) }
        }
    }

    pub use imp::{map, remap, unmap};
}

#[derive(Clone, Copy)]
struct Slot {
    /// The mapping's length in bytes (a multiple of the page).
    len: usize,
    /// The block's address; 0 marks an empty slot.
    addr: usize,
}

const EMPTY: Slot = Slot { len: 0, addr: 0 };

struct Cache {
    slots: [Slot; SLOTS],
    idle_bytes: usize,
    /// Bytes of the blocks handed out and not yet freed (their real lengths).
    live_bytes: usize,
    /// The highest `live_bytes` so far: the cap on live + idle.
    live_peak: usize,
    /// Live blocks handed out larger than asked for, with their real length.
    oversized: [Slot; SLOTS],
}

static CACHE: Mutex<Cache> =
    Mutex::new(Cache { slots: [EMPTY; SLOTS], idle_bytes: 0, live_bytes: 0, live_peak: 0, oversized: [EMPTY; SLOTS] });
static HITS: AtomicUsize = AtomicUsize::new(0);
static MISSES: AtomicUsize = AtomicUsize::new(0);
static RECYCLED: AtomicUsize = AtomicUsize::new(0);

/// A [`GlobalAlloc`] that caches large freed blocks (see the module docs).
pub struct CachingAllocator;

/// Large allocations served from the cache (same length, or a recycled block of another), and
/// those that needed fresh memory from the system, so far.
pub fn stats() -> (usize, usize) {
    (HITS.load(Ordering::Relaxed) + RECYCLED.load(Ordering::Relaxed), MISSES.load(Ordering::Relaxed))
}

/// How a block was obtained: whether its memory may hold old data (`alloc_zeroed` must clear it).
enum Got {
    Reused(*mut u8),
    Fresh(*mut u8),
}

impl Cache {
    fn take(&mut self, i: usize) -> Slot {
        let slot = self.slots[i];
        self.slots[i] = EMPTY;
        self.idle_bytes -= slot.len;
        slot
    }

    /// A block of at least `len` bytes (a page multiple): an idle one of that length, else the
    /// smallest larger idle one (handed out whole: its pages are resident, and cutting them
    /// off would only fault them in again when a larger request comes), else the largest
    /// idle one grown to `len`, else a fresh mapping; then idle blocks are released while
    /// live + idle bytes exceed the highest live total so far.
    fn get(&mut self, len: usize) -> Got {
        let (got, real_len) = self.reuse_or_map(len);
        let (Got::Reused(p) | Got::Fresh(p)) = got;
        if !p.is_null() {
            self.live_bytes += real_len;
            self.live_peak = self.live_peak.max(self.live_bytes);
        }
        self.trim_idle();
        got
    }

    /// The block and its real length (more than `len` for a larger block handed out whole).
    fn reuse_or_map(&mut self, len: usize) -> (Got, usize) {
        if let Some(i) = self.slots.iter().position(|s| s.addr != 0 && s.len == len) {
            HITS.fetch_add(1, Ordering::Relaxed);
            return (Got::Reused(self.take(i).addr as *mut u8), len);
        }
        // No idle block has exactly `len` bytes here, so a fit of at least `len` is larger.
        let fit = self.best_fit(len);
        let free_record = self.oversized.iter().position(|s| s.addr == 0);
        let close = fit.filter(|&i| self.slots[i].len >= len && self.slots[i].len <= len + len / OVERSIZE_DIVISOR);
        if let (Some(i), Some(r)) = (close, free_record) {
            let block = self.take(i);
            self.oversized[r] = block; // dealloc will be told `len`; this remembers the rest
            RECYCLED.fetch_add(1, Ordering::Relaxed);
            return (Got::Reused(block.addr as *mut u8), block.len);
        }
        if let Some(i) = fit {
            let chosen = self.take(i);
            // SAFETY: `chosen` is an idle mapping owned by the cache alone, now taken out of it.
            let p = unsafe { pages::remap(chosen.addr as *mut u8, chosen.len, len) };
            if !p.is_null() {
                RECYCLED.fetch_add(1, Ordering::Relaxed);
                return (Got::Reused(p), len);
            }
            // SAFETY: as above; the failed remap left the mapping as it was.
            unsafe { pages::unmap(chosen.addr as *mut u8, chosen.len) };
        }
        MISSES.fetch_add(1, Ordering::Relaxed);
        // SAFETY: a fresh mapping of a page-multiple length.
        (Got::Fresh(unsafe { pages::map(len) }), len)
    }

    /// The slot of the smallest idle block of at least `len` bytes, else of the largest one.
    fn best_fit(&self, len: usize) -> Option<usize> {
        let idle = self.slots.iter().enumerate().filter(|(_, s)| s.addr != 0);
        let enough = idle.clone().filter(|(_, s)| s.len >= len).min_by_key(|(_, s)| s.len);
        enough.or_else(|| idle.max_by_key(|(_, s)| s.len)).map(|(i, _)| i)
    }

    /// Idle memory may fill the room below the highest live total seen (a training step's
    /// peak), never add to it: while live + idle exceeds it, release the smallest idle block
    /// that closes the gap, else the largest.
    fn trim_idle(&mut self) {
        while self.live_bytes + self.idle_bytes > self.live_peak {
            let excess = self.live_bytes + self.idle_bytes - self.live_peak;
            let Some(i) = self.best_fit(excess) else { return };
            let block = self.take(i);
            // SAFETY: an idle block is a mapping owned by the cache alone.
            unsafe { pages::unmap(block.addr as *mut u8, block.len) };
        }
    }

    /// Takes back a block the program freed (`len` from its layout; its real length if it was
    /// handed out larger): kept idle if there is room, else unmapped.
    fn give_back(&mut self, ptr: *mut u8, len: usize) {
        let len = match self.oversized.iter().position(|s| s.addr == ptr as usize) {
            Some(r) => std::mem::replace(&mut self.oversized[r], EMPTY).len,
            None => len,
        };
        self.live_bytes -= len;
        if !self.put(ptr, len) {
            // SAFETY: the block is a mapping of `len` bytes that the caller gave up.
            unsafe { pages::unmap(ptr, len) }
        }
    }

    /// Keeps the block if there is room; returns whether it did.
    fn put(&mut self, ptr: *mut u8, len: usize) -> bool {
        if self.idle_bytes + len > MAX_IDLE_BYTES {
            return false;
        }
        let Some(slot) = self.slots.iter_mut().find(|s| s.addr == 0) else { return false };
        *slot = Slot { len, addr: ptr as usize };
        self.idle_bytes += len;
        true
    }
}

fn lock() -> std::sync::MutexGuard<'static, Cache> {
    // A panic while holding the lock cannot leave the array inconsistent (every update is one
    // slot write plus a counter), so a poisoned lock is still usable.
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The mapping length for a layout this allocator serves itself, or `None` for the system's:
/// the size rounded up to a size class, whole pages with at most 4 significant bits (8
/// classes per doubling, at most 12.5 % larger). Buffers of nearly equal sizes (a layer's
/// activations and its neighbour's) then share one class and reuse each other's blocks; the
/// rounding costs little resident memory, because pages past the requested size are only
/// faulted in if a larger request of the same class used them.
fn mapped_len(layout: Layout) -> Option<usize> {
    if layout.size() < MIN_CACHED_BYTES || layout.align() > PAGE {
        return None;
    }
    let pages = layout.size().div_ceil(PAGE);
    let shift = (usize::BITS - pages.leading_zeros()).saturating_sub(4);
    Some(pages.div_ceil(1 << shift) << shift << PAGE.trailing_zeros())
}

unsafe impl GlobalAlloc for CachingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match mapped_len(layout) {
            Some(len) => match lock().get(len) {
                Got::Reused(p) | Got::Fresh(p) => p,
            },
            // SAFETY: forwarded as given.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match mapped_len(layout) {
            Some(len) => match lock().get(len) {
                // A reused block holds old data; zeroing warm memory is far cheaper than
                // faulting in fresh zero pages.
                Got::Reused(p) => {
                    // SAFETY: p is a block of at least layout.size() bytes owned by the caller.
                    unsafe { std::ptr::write_bytes(p, 0, layout.size()) };
                    p
                }
                Got::Fresh(p) => p, // a fresh mapping reads as zeros (or p is null)
            },
            // SAFETY: forwarded as given.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match mapped_len(layout) {
            Some(len) => lock().give_back(ptr, len),
            // SAFETY: forwarded as given.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    // realloc keeps GlobalAlloc's default (alloc + copy + dealloc), so a block's mapping length
    // always follows from the layout it is freed with.
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache is process-wide: these tests take turns so one's misses cannot release
    /// another's cached block mid-test.
    static TURN: Mutex<()> = Mutex::new(());

    fn idle_bytes() -> usize {
        lock().idle_bytes
    }

    #[test]
    fn a_freed_large_block_is_handed_out_again_for_the_same_size() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let layout = Layout::from_size_align(MIN_CACHED_BYTES + 4096 * 7 + 12, 8).unwrap();
        unsafe {
            let a = CachingAllocator.alloc(layout);
            assert!(!a.is_null());
            a.write(42);
            CachingAllocator.dealloc(a, layout);
            let b = CachingAllocator.alloc(layout);
            assert_eq!(a, b, "the cached block is reused");
            CachingAllocator.dealloc(b, layout);
        }
    }

    #[test]
    fn a_reused_block_is_zeroed_when_zeroed_memory_is_asked_for() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let layout = Layout::from_size_align(MIN_CACHED_BYTES + 4096 * 11 + 4, 4).unwrap();
        unsafe {
            let a = CachingAllocator.alloc(layout);
            std::ptr::write_bytes(a, 0xAB, layout.size());
            CachingAllocator.dealloc(a, layout);
            let b = CachingAllocator.alloc_zeroed(layout);
            assert_eq!(a, b);
            assert!(std::slice::from_raw_parts(b, layout.size()).iter().all(|&x| x == 0));
            CachingAllocator.dealloc(b, layout);
        }
    }

    #[test]
    fn a_slightly_larger_idle_block_is_lent_whole_and_taken_back_whole() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        // 40 pages (a class of its own) and 36 pages: 40 ≤ 36 + 36/4, so the larger one is lent.
        let larger = Layout::from_size_align(40 * PAGE, 8).unwrap();
        let smaller = Layout::from_size_align(36 * PAGE - 8, 8).unwrap();
        assert_ne!(mapped_len(larger), mapped_len(smaller), "two different size classes");
        unsafe {
            let a = CachingAllocator.alloc(larger);
            CachingAllocator.dealloc(a, larger);
            let b = CachingAllocator.alloc(smaller);
            assert_eq!(a, b, "the idle 40-page block was lent for the 36-page request");
            // Freed with the smaller layout, the block must go back under its real length:
            // the next 40-page request then finds it.
            CachingAllocator.dealloc(b, smaller);
            let c = CachingAllocator.alloc(larger);
            assert_eq!(a, c, "the block came back as 40 pages");
            CachingAllocator.dealloc(c, larger);
        }
    }

    #[test]
    fn size_classes_round_up_by_at_most_an_eighth() {
        for pages in [32, 33, 45, 100, 1000, 4097] {
            let len = mapped_len(Layout::from_size_align(pages * PAGE, 8).unwrap()).unwrap();
            assert!(len >= pages * PAGE && len <= pages * PAGE + pages * PAGE / 8, "{pages} pages → {len} bytes");
        }
        assert_eq!(mapped_len(Layout::from_size_align(MIN_CACHED_BYTES - 1, 8).unwrap()), None);
        assert_eq!(mapped_len(Layout::from_size_align(MIN_CACHED_BYTES, 2 * PAGE).unwrap()), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_miss_shrinks_a_larger_idle_block_in_place_instead_of_mapping_fresh_memory() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let big = Layout::from_size_align(MIN_CACHED_BYTES * 4 + 4096 * 3, 8).unwrap();
        let small = Layout::from_size_align(MIN_CACHED_BYTES * 2 + 100, 8).unwrap();
        unsafe {
            let a = CachingAllocator.alloc(big);
            std::ptr::write_bytes(a, 0xCD, big.size());
            CachingAllocator.dealloc(a, big);
            let (_, misses_before) = stats();
            let b = CachingAllocator.alloc_zeroed(small);
            assert_eq!(a, b, "the idle block was resized in place (mremap keeps the address when shrinking)");
            assert_eq!(stats().1, misses_before, "no fresh mapping was needed");
            assert!(std::slice::from_raw_parts(b, small.size()).iter().all(|&x| x == 0), "recycled memory is zeroed");
            CachingAllocator.dealloc(b, small);
        }
    }
}
