//! Bind groups kept between launches, keyed by the buffers they bind.
//!
//! Creating a bind group is the largest host cost of a launch after the ring of parameters
//! (validation and usage tracking in wgpu, a descriptor-set allocation in the driver), and a
//! training step binds the same pool buffers to the same binding shapes every iteration (the
//! pool lends the oldest idle buffer of a size class, so a step gets the buffers the last one
//! got, whatever order its tensors were dropped in). So a launch looks its
//! bind group up by (binding shape, each buffer's id and bound length) and creates one only on
//! a miss.
//!
//! A cached bind group holds its buffers alive, so an entry must go when the pool releases one
//! of its buffers to the driver (see [`crate::buffer_pool`]): the context passes the released
//! ids to `BindGroupCache::evict` before each lookup. A buffer back in the pool's free list
//! is still the pool's: its entries stay, ready for the buffer's next loan.

use std::collections::HashMap;

/// Entries beyond this many are all dropped at once: a workload whose bindings never repeat
/// (say, ever-new shapes) must not grow the cache without end; a training step needs a few
/// hundred to a few thousand.
const MAX_ENTRIES: usize = 16_384;

/// What a bind group is cached under: its layout's binding shape (inputs, outputs) and, per
/// storage binding in order, the pool buffer's id and the bound range (offset and length in
/// elements; the offset is not 0 for a window).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct BindGroupKey {
    pub(crate) inputs: u32,
    pub(crate) outputs: u32,
    pub(crate) buffers: Vec<(u64, usize, usize)>,
}

#[derive(Default)]
pub(crate) struct BindGroupCache {
    groups: HashMap<BindGroupKey, wgpu::BindGroup>,
}

impl BindGroupCache {
    /// The cached bind group for `key`, or the one `create` makes (then cached), and whether
    /// it was made.
    pub(crate) fn get_or_create(
        &mut self,
        key: BindGroupKey,
        create: impl FnOnce() -> wgpu::BindGroup,
    ) -> (wgpu::BindGroup, bool) {
        if let Some(group) = self.groups.get(&key) {
            return (group.clone(), false);
        }
        if self.groups.len() >= MAX_ENTRIES {
            self.groups.clear();
        }
        let group = create();
        self.groups.insert(key, group.clone());
        (group, true)
    }

    /// Drops every entry that binds one of `released` (buffer ids the pool let go).
    pub(crate) fn evict(&mut self, released: &[u64]) {
        if released.is_empty() {
            return;
        }
        self.groups.retain(|key, _| !key.buffers.iter().any(|(id, _, _)| released.contains(id)));
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }
}
