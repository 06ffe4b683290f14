//! What a context has been asked to do, counted: launches, workgroups, buffers and bind groups
//! created, bytes moved between host and device, submits and host waits, and the time those
//! waits took.
//!
//! Timings on one GPU say little about another (and on a software driver, little about any),
//! but these counts carry over: a step that records 900 launches, creates buffers every
//! iteration or reads results back mid-step pays for it on every GPU. The counters are always
//! on (a relaxed atomic add per event, next to a launch that costs microseconds); read them
//! with [`crate::Context::counters`] before and after the work, and subtract
//! ([`Counters::since`]).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a context's counters (totals since it was created).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Compute launches recorded (one `dispatch_workgroups` each).
    pub dispatches: u64,
    /// Workgroups launched, summed over the dispatches' grids.
    pub workgroups: u64,
    /// Buffers the pool had to create: its misses. A warm training step creates none.
    pub buffers_created: u64,
    /// Their total size, in bytes.
    pub bytes_created: u64,
    /// Bind groups created: launches whose buffers the bind-group cache had not seen bound
    /// that way before. A warm training step creates none.
    pub bind_groups_created: u64,
    /// Host → device transfers ([`crate::Context::upload`], [`crate::Context::write`]).
    pub uploads: u64,
    /// Their total size, in bytes.
    pub bytes_uploaded: u64,
    /// Device → host read-backs ([`crate::Context::read`]): each one submits and waits for the
    /// GPU, a full host↔device round trip.
    pub reads: u64,
    /// Their total size, in bytes.
    pub bytes_read: u64,
    /// Copies from one device buffer to another ([`crate::Context::copy`]): commands, not
    /// launches, but each costs the host a recording as a launch does.
    pub copies: u64,
    /// Their total size, in bytes.
    pub bytes_copied: u64,
    /// Bytes zeroed by clear commands ([`crate::Context::zeros`]).
    pub bytes_cleared: u64,
    /// Command buffers submitted to the queue.
    pub submits: u64,
    /// Waits for the GPU to go idle ([`crate::Context::synchronize`]: benchmarks and the
    /// profiler; a training step itself needs none).
    pub waits: u64,
    /// Nanoseconds the host spent blocked on the device, in read-backs and waits: the one
    /// time here. A step's wall time minus it is the host's own time (recording launches,
    /// and everything above the context), which a fast GPU cannot hide while it idles.
    pub device_wait_ns: u64,
}

impl Counters {
    /// Nothing counted.
    pub const ZERO: Counters = Counters {
        dispatches: 0,
        workgroups: 0,
        buffers_created: 0,
        bytes_created: 0,
        bind_groups_created: 0,
        uploads: 0,
        bytes_uploaded: 0,
        reads: 0,
        bytes_read: 0,
        copies: 0,
        bytes_copied: 0,
        bytes_cleared: 0,
        submits: 0,
        waits: 0,
        device_wait_ns: 0,
    };

    /// `self - earlier`, field by field: what happened between two snapshots.
    pub fn since(&self, earlier: &Counters) -> Counters {
        self.field_by_field(earlier, u64::saturating_sub)
    }

    /// `self + other`, field by field.
    pub fn plus(&self, other: &Counters) -> Counters {
        self.field_by_field(other, |a, b| a + b)
    }

    /// `f` applied to each pair of corresponding fields.
    fn field_by_field(&self, other: &Counters, f: impl Fn(u64, u64) -> u64) -> Counters {
        Counters {
            dispatches: f(self.dispatches, other.dispatches),
            workgroups: f(self.workgroups, other.workgroups),
            buffers_created: f(self.buffers_created, other.buffers_created),
            bytes_created: f(self.bytes_created, other.bytes_created),
            bind_groups_created: f(self.bind_groups_created, other.bind_groups_created),
            uploads: f(self.uploads, other.uploads),
            bytes_uploaded: f(self.bytes_uploaded, other.bytes_uploaded),
            reads: f(self.reads, other.reads),
            bytes_read: f(self.bytes_read, other.bytes_read),
            copies: f(self.copies, other.copies),
            bytes_copied: f(self.bytes_copied, other.bytes_copied),
            bytes_cleared: f(self.bytes_cleared, other.bytes_cleared),
            submits: f(self.submits, other.submits),
            waits: f(self.waits, other.waits),
            device_wait_ns: f(self.device_wait_ns, other.device_wait_ns),
        }
    }
}

impl Default for Counters {
    fn default() -> Self {
        Counters::ZERO
    }
}

/// The live counters inside a context (everything but the pool's, which the pool keeps).
#[derive(Default)]
pub(crate) struct LiveCounters {
    pub(crate) dispatches: AtomicU64,
    pub(crate) workgroups: AtomicU64,
    pub(crate) bind_groups_created: AtomicU64,
    pub(crate) uploads: AtomicU64,
    pub(crate) bytes_uploaded: AtomicU64,
    pub(crate) reads: AtomicU64,
    pub(crate) bytes_read: AtomicU64,
    pub(crate) copies: AtomicU64,
    pub(crate) bytes_copied: AtomicU64,
    pub(crate) bytes_cleared: AtomicU64,
    pub(crate) submits: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) device_wait_ns: AtomicU64,
}

impl LiveCounters {
    /// Adds `n` to one counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The current values, with the pool's creation counts filled in by the caller.
    pub(crate) fn snapshot(&self, buffers_created: u64, bytes_created: u64) -> Counters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            dispatches: get(&self.dispatches),
            workgroups: get(&self.workgroups),
            buffers_created,
            bytes_created,
            bind_groups_created: get(&self.bind_groups_created),
            uploads: get(&self.uploads),
            bytes_uploaded: get(&self.bytes_uploaded),
            reads: get(&self.reads),
            bytes_read: get(&self.bytes_read),
            copies: get(&self.copies),
            bytes_copied: get(&self.bytes_copied),
            bytes_cleared: get(&self.bytes_cleared),
            submits: get(&self.submits),
            waits: get(&self.waits),
            device_wait_ns: get(&self.device_wait_ns),
        }
    }
}
