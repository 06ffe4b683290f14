//! A caching global allocator for training loops: large blocks are carved from one arena of
//! address space and given back to it when freed, split and coalesced like a heap, so a
//! training step reuses the pages the previous step touched instead of faulting in new ones.
//!
//! Why: a training step allocates the same few hundred large buffers (activations, gradients,
//! im2col scratch) every step, of many different sizes. glibc serves blocks above its mmap
//! threshold (at most 32 MiB) with fresh `mmap`s and trims its heap on free, so every step
//! page-faults its working set in again; a page fault costs ~2.7 µs on these machines (zeroing
//! a warm page costs 0.1 µs), and B1 took 17,000 of them per step. A cache of whole blocks
//! keyed by size either grows to hold every size a step uses or re-faults them: a step's
//! forward buffers are idle while backward needs other sizes, and back. Carving blocks of any
//! size out of one arena lets the memory of one size serve the next: the same idea as
//! PyTorch's GPU caching allocator, which splits and merges blocks inside its segments.
//!
//! Opt-in, per binary (a library must not choose the allocator for its users):
//! ```
//! #[global_allocator]
//! static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator =
//!     tensor::cpu::caching_allocator::CachingAllocator;
//!
//! fn main() {
//!     drop(vec![1.0f32; 1 << 20]); // 4 MiB: its pages go back to the arena when freed
//!     let (reused_before, _) = tensor::cpu::caching_allocator::stats();
//!     let again = vec![0.0f32; 1 << 20]; // the same pages, handed out again and zeroed
//! #   #[cfg(target_os = "linux")]
//!     assert!(tensor::cpu::caching_allocator::stats().0 > reused_before);
//!     assert!(again.iter().all(|&x| x == 0.0));
//! }
//! ```
//! How (Linux): the first large request reserves [`ARENA_RESERVE`] bytes of address space
//! (`mmap` with `MAP_NORESERVE`: no memory is committed; a page is backed when first written).
//! Blocks of at least [`MIN_CACHED_BYTES`] (alignment up to a page) are whole pages of it:
//! - a request takes the smallest free extent that holds it (best fit), from its start; the
//!   rest stays free;
//! - with none large enough, it takes fresh pages past the arena's high-water mark, starting
//!   inside the last free extent if that one ends at the mark;
//! - a freed block is merged with free neighbours, so the extents stay as large as they can.
//!
//! Memory: pages stay resident once touched, so the resident size is the arena's high-water
//! mark: the live peak plus what fragmentation costs, bounded because a step's buffers come
//! and go in nearly the same order every step (`train` for 1 and 4 epochs: the same peak RSS).
//! Measured (`cargo bench --bench train_step`, against the previous cache of whole blocks by
//! size class): page faults per step B1 17,000 → 0, B2 53,600 → 1, B3 131,900 → 1; peak RSS
//! B1 99 → 102 MiB, B3 1223 → 1217 MiB; `train` on 4,000 dSprites images for 2 epochs
//! 26.6 → 17.6 s. Like PyTorch's GPU allocator, freed pages are kept for the process's life
//! rather than returned to the system. Blocks under [`MIN_CACHED_BYTES`] (32 KiB), larger
//! alignments, systems other than Linux and a failed reservation are left to the system
//! allocator.
//! Nothing here allocates (the allocator cannot call itself): the free list is a fixed array.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Smaller blocks are left to the system allocator, which keeps them in its arenas. Blocks of
/// 32 to 128 KiB were left there too, until kernels allocated them a task at a time: glibc
/// trims a thread's heap when a freed block at its top leaves 128 KiB free, and the next call
/// faults the pages in again. The direct weight gradient's per-task buffers (37–139 KB) took
/// B5's 32→64 layer 0.58–0.61 ms against 0.38 from the arena, and B3's step 1,939–2,036 page
/// faults against 34–42 (`docs/notebooks/bench/direct_weight_gradient_zen5.txt`).
pub const MIN_CACHED_BYTES: usize = 32 * 1024;
/// Address space reserved for the arena. Not memory: pages are backed only once touched.
pub const ARENA_RESERVE: usize = 1 << 40;
/// Free extents the arena can track. Free extents are separated by live blocks, so there are
/// at most one more than live large blocks; a step has a few hundred.
const MAX_FREE_EXTENTS: usize = 8192;
/// Blocks are whole pages; larger alignments go to the system allocator.
const PAGE: usize = 4096;

/// A run of free pages: byte offsets from the arena's base.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Extent {
    start: usize,
    len: usize,
}

impl Extent {
    fn end(&self) -> usize {
        self.start + self.len
    }
}

/// A block carved from the arena: its offset, and how many of its leading bytes lie below the
/// high-water mark as it was (they may hold old data; the rest is untouched and reads as zero).
#[derive(Debug, PartialEq)]
struct Carved {
    start: usize,
    maybe_dirty: usize,
}

/// The heap inside the reserved address space, in offsets: base-agnostic, so tests can run one
/// of their own.
struct Arena {
    /// Free extents, sorted by start, never adjacent (adjacent ones are merged).
    free: [Extent; MAX_FREE_EXTENTS],
    free_count: usize,
    /// Everything at and above this offset has never been handed out.
    high_water: usize,
    /// The reservation's length in bytes.
    capacity: usize,
}

impl Arena {
    const fn new(capacity: usize) -> Self {
        Arena { free: [Extent { start: 0, len: 0 }; MAX_FREE_EXTENTS], free_count: 0, high_water: 0, capacity }
    }

    fn free_extents(&self) -> &[Extent] {
        &self.free[..self.free_count]
    }

    /// A block of `len` bytes (a page multiple), or `None` when the reservation is used up.
    fn carve(&mut self, len: usize) -> Option<Carved> {
        let best_fit = self.free_extents().iter().enumerate().filter(|(_, e)| e.len >= len).min_by_key(|(_, e)| e.len);
        if let Some((i, _)) = best_fit {
            let start = self.free[i].start;
            self.free[i].start += len;
            self.free[i].len -= len;
            if self.free[i].len == 0 {
                self.remove(i);
            }
            return Some(Carved { start, maybe_dirty: len });
        }
        // Fresh pages past the high-water mark, beginning in the last free extent if it ends there.
        let last = self.free_count.checked_sub(1).filter(|&i| self.free[i].end() == self.high_water);
        let start = last.map_or(self.high_water, |i| self.free[i].start);
        if start + len > self.capacity {
            return None;
        }
        if let Some(i) = last {
            self.remove(i);
        }
        let maybe_dirty = self.high_water - start;
        self.high_water = start + len;
        Some(Carved { start, maybe_dirty })
    }

    /// Returns a block to the free list, merged with its free neighbours. `false` if the list
    /// is full and the block touches no free extent: the caller must then give its pages back
    /// to the system (the address range is then lost to the arena).
    fn release(&mut self, start: usize, len: usize) -> bool {
        let i = self.free_extents().partition_point(|e| e.start < start);
        let joins_previous = i > 0 && self.free[i - 1].end() == start;
        let joins_next = i < self.free_count && self.free[i].start == start + len;
        match (joins_previous, joins_next) {
            (true, true) => {
                self.free[i - 1].len += len + self.free[i].len;
                self.remove(i);
            }
            (true, false) => self.free[i - 1].len += len,
            (false, true) => self.free[i] = Extent { start, len: len + self.free[i].len },
            (false, false) => {
                if self.free_count == MAX_FREE_EXTENTS {
                    return false;
                }
                self.free.copy_within(i..self.free_count, i + 1);
                self.free[i] = Extent { start, len };
                self.free_count += 1;
            }
        }
        true
    }

    fn remove(&mut self, i: usize) {
        self.free.copy_within(i + 1..self.free_count, i);
        self.free_count -= 1;
    }
}

/// The address space behind the arena.
#[derive(Clone, Copy, PartialEq)]
enum Reservation {
    NotYet,
    At(usize),
    Unavailable,
}

struct Heap {
    reservation: Reservation,
    arena: Arena,
}

static HEAP: Mutex<Heap> = Mutex::new(Heap { reservation: Reservation::NotYet, arena: Arena::new(ARENA_RESERVE) });
static REUSED: AtomicUsize = AtomicUsize::new(0);
static FRESH: AtomicUsize = AtomicUsize::new(0);

/// Large allocations served from pages the arena had handed out before, and those that needed
/// fresh pages, so far.
pub fn stats() -> (usize, usize) {
    (REUSED.load(Ordering::Relaxed), FRESH.load(Ordering::Relaxed))
}

/// The arena's reservation: `mmap` of address space that commits no memory (Linux).
mod pages {
    #[cfg(target_os = "linux")]
    pub fn reserve(len: usize) -> Option<usize> {
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches
        // no existing memory. MAP_NORESERVE: pages are committed when first written.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        (p != libc::MAP_FAILED).then_some(p as usize)
    }

    /// Returns the pages of [addr, addr + len) to the system; they read as zero when touched again.
    #[cfg(target_os = "linux")]
    pub unsafe fn discard(addr: usize, len: usize) {
        // SAFETY: the caller owns the range and nothing refers to it.
        unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    }

    #[cfg(not(target_os = "linux"))]
    pub fn reserve(_len: usize) -> Option<usize> {
        None
    }

    #[cfg(not(target_os = "linux"))]
    pub unsafe fn discard(_addr: usize, _len: usize) {}
}

fn lock() -> std::sync::MutexGuard<'static, Heap> {
    // Every update leaves the free list sorted and merged before the next can fail, so a
    // poisoned lock is still usable.
    HEAP.lock().unwrap_or_else(|e| e.into_inner())
}

/// The block length for a layout the arena serves (whole pages), or `None` for the system's.
fn arena_len(layout: Layout) -> Option<usize> {
    (layout.size() >= MIN_CACHED_BYTES && layout.align() <= PAGE).then(|| layout.size().next_multiple_of(PAGE))
}

impl Heap {
    /// A block of `len` bytes and how many leading bytes may hold old data; `None` sends the
    /// request to the system allocator.
    fn alloc(&mut self, len: usize) -> Option<(*mut u8, usize)> {
        if self.reservation == Reservation::NotYet {
            self.reservation = pages::reserve(ARENA_RESERVE).map_or(Reservation::Unavailable, Reservation::At);
        }
        let Reservation::At(base) = self.reservation else { return None };
        let carved = self.arena.carve(len)?;
        let counter = if carved.maybe_dirty == len { &REUSED } else { &FRESH };
        counter.fetch_add(1, Ordering::Relaxed);
        Some(((base + carved.start) as *mut u8, carved.maybe_dirty))
    }

    /// Takes back `ptr` if the arena handed it out; `false` if it is the system's.
    fn dealloc(&mut self, ptr: *mut u8, len: usize) -> bool {
        let Reservation::At(base) = self.reservation else { return false };
        let addr = ptr as usize;
        if addr < base || addr >= base + self.arena.capacity {
            return false;
        }
        if !self.arena.release(addr - base, len) {
            // SAFETY: the block was the caller's; it has given it up.
            unsafe { pages::discard(addr, len) };
        }
        true
    }
}

/// A [`GlobalAlloc`] that carves large blocks from a reusable arena (see the module docs).
pub struct CachingAllocator;

unsafe impl GlobalAlloc for CachingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match arena_len(layout).and_then(|len| lock().alloc(len)) {
            Some((p, _)) => p,
            // SAFETY: forwarded as given.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match arena_len(layout).and_then(|len| lock().alloc(len)) {
            Some((p, maybe_dirty)) => {
                // Only pages below the high-water mark can hold old data; zeroing warm memory
                // is far cheaper than faulting in fresh pages.
                // SAFETY: p is a block of at least layout.size() bytes owned by the caller.
                unsafe { std::ptr::write_bytes(p, 0, maybe_dirty.min(layout.size())) };
                p
            }
            // SAFETY: forwarded as given.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let in_arena = arena_len(layout).is_some_and(|len| lock().dealloc(ptr, len));
        if !in_arena {
            // SAFETY: not the arena's, so the system allocator's, forwarded as given.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    // realloc keeps GlobalAlloc's default (alloc + copy + dealloc): a block's length always
    // follows from the layout it is freed with.
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn arena() -> Box<Arena> {
        Box::new(Arena::new(64 * MIB))
    }

    #[test]
    fn a_freed_block_is_handed_out_again_for_the_same_size() {
        let mut a = arena();
        let first = a.carve(MIB).unwrap();
        assert_eq!(first, Carved { start: 0, maybe_dirty: 0 }, "fresh pages hold no old data");
        assert!(a.release(first.start, MIB));
        assert_eq!(a.carve(MIB), Some(Carved { start: 0, maybe_dirty: MIB }));
        assert_eq!(a.high_water, MIB, "no fresh pages were needed");
    }

    #[test]
    fn a_smaller_request_is_carved_from_a_free_extent_and_the_rest_stays_free() {
        let mut a = arena();
        let big = a.carve(4 * MIB).unwrap();
        let _fence = a.carve(PAGE).unwrap(); // keeps the extent from reaching the high-water mark
        a.release(big.start, 4 * MIB);
        assert_eq!(a.carve(MIB).unwrap().start, 0);
        assert_eq!(a.free_extents(), [Extent { start: MIB, len: 3 * MIB }]);
        assert_eq!(a.carve(3 * MIB), Some(Carved { start: MIB, maybe_dirty: 3 * MIB }));
        assert_eq!(a.free_count, 0);
    }

    #[test]
    fn freed_neighbours_merge_into_one_extent_that_serves_a_request_as_large_as_both() {
        let mut a = arena();
        let blocks: Vec<_> = (0..3).map(|_| a.carve(MIB).unwrap().start).collect();
        let _fence = a.carve(PAGE).unwrap();
        a.release(blocks[0], MIB);
        a.release(blocks[2], MIB);
        assert_eq!(a.free_count, 2);
        a.release(blocks[1], MIB); // joins both neighbours
        assert_eq!(a.free_extents(), [Extent { start: 0, len: 3 * MIB }]);
        let high_water = a.high_water;
        assert_eq!(a.carve(3 * MIB).unwrap().start, 0);
        assert_eq!(a.high_water, high_water);
    }

    #[test]
    fn the_smallest_free_extent_that_fits_is_chosen() {
        let mut a = arena();
        let large = a.carve(4 * MIB).unwrap().start;
        let _fence = a.carve(PAGE).unwrap();
        let snug = a.carve(2 * MIB).unwrap().start;
        let _fence = a.carve(PAGE).unwrap();
        a.release(large, 4 * MIB);
        a.release(snug, 2 * MIB);
        assert_eq!(a.carve(2 * MIB - PAGE).unwrap().start, snug, "the 2 MiB extent, not the 4 MiB one");
    }

    #[test]
    fn a_request_larger_than_every_free_extent_grows_the_last_one_past_the_high_water_mark() {
        let mut a = arena();
        let _fence = a.carve(PAGE).unwrap();
        let tail = a.carve(MIB).unwrap().start;
        a.release(tail, MIB);
        let grown = a.carve(3 * MIB).unwrap();
        assert_eq!(grown, Carved { start: tail, maybe_dirty: MIB }, "only the first MiB was handed out before");
        assert_eq!(a.high_water, tail + 3 * MIB);
    }

    #[test]
    fn a_request_beyond_the_reservation_is_declined() {
        let mut a = arena();
        assert!(a.carve(60 * MIB).is_some());
        assert_eq!(a.carve(8 * MIB), None);
        assert!(a.carve(4 * MIB).is_some(), "what still fits is served");
    }

    #[test]
    fn a_full_free_list_declines_a_block_that_touches_no_free_extent() {
        let mut a = Box::new(Arena::new(4 * MAX_FREE_EXTENTS * PAGE));
        let starts: Vec<_> = (0..2 * MAX_FREE_EXTENTS + 1).map(|_| a.carve(PAGE).unwrap().start).collect();
        for &s in starts.iter().step_by(2).take(MAX_FREE_EXTENTS) {
            assert!(a.release(s, PAGE));
        }
        assert_eq!(a.free_count, MAX_FREE_EXTENTS);
        assert!(!a.release(starts[2 * MAX_FREE_EXTENTS], PAGE), "no room and no neighbour to merge with");
        assert!(a.release(starts[1], PAGE), "a block between two free extents merges, needing no room");
        assert_eq!(a.free_count, MAX_FREE_EXTENTS - 1);
    }

    /// The process-wide arena is shared by the tests below: they take turns.
    static TURN: Mutex<()> = Mutex::new(());

    #[test]
    #[cfg(target_os = "linux")]
    fn the_global_allocator_reuses_freed_pages_and_zeroes_them_when_asked() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let layout = Layout::from_size_align(3 * MIB + 12, 8).unwrap();
        unsafe {
            let a = CachingAllocator.alloc(layout);
            assert!(!a.is_null());
            std::ptr::write_bytes(a, 0xAB, layout.size());
            CachingAllocator.dealloc(a, layout);
            let (reused, fresh) = stats();
            let b = CachingAllocator.alloc_zeroed(layout);
            assert_eq!(stats(), (reused + 1, fresh), "served from freed pages, no fresh ones");
            assert!(std::slice::from_raw_parts(b, layout.size()).iter().all(|&x| x == 0));
            CachingAllocator.dealloc(b, layout);
        }
    }

    #[test]
    fn blocks_allocated_and_freed_by_many_threads_at_once_never_overlap() {
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        std::thread::scope(|scope| {
            for thread in 0..4u8 {
                scope.spawn(move || {
                    let mut rng = crate::Rng::new(thread as u64);
                    let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
                    for round in 0..300usize {
                        if live.len() == 6 || (!live.is_empty() && rng.uniform(0.0, 1.0) < 0.4) {
                            let (p, layout, mark) = live.swap_remove(rng.uniform(0.0, live.len() as f64) as usize);
                            // SAFETY: p is a live block of `layout` that this thread filled with `mark`.
                            let block = unsafe { std::slice::from_raw_parts(p, layout.size()) };
                            assert!(block.iter().all(|&x| x == mark), "another block overwrote this one");
                            unsafe { CachingAllocator.dealloc(p, layout) };
                        } else {
                            let size = MIN_CACHED_BYTES + rng.uniform(0.0, (3 * MIB) as f64) as usize;
                            let layout = Layout::from_size_align(size, 64).unwrap();
                            let mark = thread.wrapping_mul(64).wrapping_add(round as u8);
                            // SAFETY: a valid non-zero layout; the block is written only within it.
                            let p = unsafe { CachingAllocator.alloc(layout) };
                            assert!(!p.is_null());
                            unsafe { std::ptr::write_bytes(p, mark, size) };
                            live.push((p, layout, mark));
                        }
                    }
                    for (p, layout, _) in live {
                        unsafe { CachingAllocator.dealloc(p, layout) };
                    }
                });
            }
        });
    }

    #[test]
    fn small_and_over_aligned_blocks_are_left_to_the_system_allocator() {
        assert_eq!(arena_len(Layout::from_size_align(MIN_CACHED_BYTES - 1, 8).unwrap()), None);
        assert_eq!(arena_len(Layout::from_size_align(MIN_CACHED_BYTES, 2 * PAGE).unwrap()), None);
        assert_eq!(arena_len(Layout::from_size_align(MIN_CACHED_BYTES + 1, 8).unwrap()), Some(MIN_CACHED_BYTES + PAGE));
    }

    #[test]
    fn a_kernels_scratch_of_tens_of_kib_is_the_arenas() {
        // The direct weight gradient's buffers on B5's 8×8 planes: a 37 KB bordered copy of x
        // and a 74 KB partial, allocated a task at a time.
        for bytes in [37 * 1024, 74 * 1024] {
            assert!(arena_len(Layout::from_size_align(bytes, 64).unwrap()).is_some(), "{bytes} bytes");
        }
    }
}
