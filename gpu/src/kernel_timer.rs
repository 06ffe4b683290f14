//! GPU time per kernel, read from the device's own clock (timestamp queries): a profile that
//! does not change what it measures.
//!
//! `tensor::profile` times each op on the host and waits for the GPU after it: right for the
//! shares of a step on a slow device, wrong on a fast one, where one submit-and-wait (about
//! 0.1 ms on an H100 host) lasts longer than most kernels. Once
//! [`Context::enable_kernel_timer`](crate::Context::enable_kernel_timer) has turned the timer on, each launch records into a compute
//! pass of its own, whose beginning and end write the GPU's clock into a query set; nothing
//! waits, and the launches still go out every few dozen as before. [`Context::kernel_times`](crate::Context::kernel_times)
//! submits, waits once, reads the timestamps back and sums them per kernel (shader, entry point
//! and pipeline constant). A pass per launch costs a pass boundary, where wgpu already places a
//! barrier between dependent launches of one pass: a timed step runs the same kernels in the same
//! order. On Vulkan wgpu writes both timestamps at the bottom of the pipe, so a pass's beginning
//! is stamped once every earlier command is done: a launch's time runs from the end of the one
//! before (or from when its commands reached the GPU) to its own end, barrier and launch gap
//! included, and the launches' times add up without overlapping. An adapter without timestamp
//! queries (`wgpu::Features::TIMESTAMP_QUERY`) cannot be timed: enabling returns false and
//! nothing changes.
//!
//! Data flow: launch → a pass with two timestamp writes into the filling query chunk → when it
//! is full (or when the times are asked for), a resolve into its buffer and a copy to its
//! read-back buffer, recorded on the pending encoder → after the wait, the read-back mapped and
//! each launch's end − beginning added to its kernel's total.

use std::collections::BTreeMap;
use std::sync::mpsc;

use crate::error::{GpuError, Result};
use crate::pipeline_cache::KernelDef;

/// The GPU time of one kernel, summed over its launches since the timer was enabled or reset.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// `shader:entry`, with `[CONSTANT=value]` for a kernel compiled per pipeline constant.
    pub kernel: String,
    /// Launches timed.
    pub launches: u64,
    /// Their GPU time, from each launch's beginning to its end.
    pub gpu_ns: u64,
    /// The same launches by their grid of workgroups (which tells a kernel's layers apart),
    /// the longest first.
    pub grids: Vec<GridTime>,
}

/// The launches of one kernel on one grid of workgroups, and their GPU time.
#[derive(Clone, Debug, PartialEq)]
pub struct GridTime {
    /// Workgroups along x, y and z.
    pub grid: [u32; 3],
    /// Launches timed.
    pub launches: u64,
    /// Their GPU time.
    pub gpu_ns: u64,
}

/// Launches a query set holds (two timestamps each): a few submits' worth.
const LAUNCHES_PER_CHUNK: u32 = 256;

/// One query set with the buffers its timestamps travel through, and the kernel of each
/// launch written to it.
pub(crate) struct QueryChunk {
    set: wgpu::QuerySet,
    /// Where the queries resolve to (`QUERY_RESOLVE`), copied on to `readback`.
    resolved: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Each launch's kernel and grid, in the order of its query pair.
    kernels: Vec<(String, [u32; 3])>,
}

impl QueryChunk {
    fn new(device: &wgpu::Device) -> QueryChunk {
        let bytes = u64::from(2 * LAUNCHES_PER_CHUNK) * 8;
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        QueryChunk {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel timer"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * LAUNCHES_PER_CHUNK,
            }),
            resolved: buffer("kernel timer resolve", wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
            readback: buffer("kernel timer read-back", wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
            kernels: Vec::with_capacity(LAUNCHES_PER_CHUNK as usize),
        }
    }

    /// Records the resolve of the launches written so far and the copy to the read-back buffer.
    fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        let queries = 2 * self.kernels.len() as u32;
        encoder.resolve_query_set(&self.set, 0..queries, &self.resolved, 0);
        encoder.copy_buffer_to_buffer(&self.resolved, 0, &self.readback, 0, Some(u64::from(queries) * 8));
    }
}

/// The timer's state, kept beside the pending commands (under the same lock: a launch's pass
/// and its query slot are taken together).
pub(crate) struct KernelTimer {
    /// Nanoseconds per timestamp tick (`wgpu::Queue::get_timestamp_period`).
    period_ns: f64,
    filling: Option<QueryChunk>,
    /// Full chunks whose resolve is recorded, to be read after the next wait.
    full: Vec<QueryChunk>,
    spare: Vec<QueryChunk>,
    /// Per kernel and grid: launches and GPU nanoseconds read so far.
    totals: BTreeMap<String, BTreeMap<[u32; 3], (u64, u64)>>,
}

impl KernelTimer {
    pub(crate) fn new(period_ns: f32) -> KernelTimer {
        KernelTimer {
            period_ns: f64::from(period_ns),
            filling: None,
            full: Vec::new(),
            spare: Vec::new(),
            totals: BTreeMap::new(),
        }
    }

    /// The query set and the two indices the next launch of `k` on `grid` writes its
    /// timestamps to.
    pub(crate) fn slot(&mut self, device: &wgpu::Device, k: &KernelDef, grid: [u32; 3]) -> (&wgpu::QuerySet, u32) {
        let spare = &mut self.spare;
        let chunk = self.filling.get_or_insert_with(|| spare.pop().unwrap_or_else(|| QueryChunk::new(device)));
        let index = 2 * chunk.kernels.len() as u32;
        let name = match k.constant {
            Some(c) => format!("{}:{}[{}={}]", k.shader.name, k.entry, c.name, c.value),
            None => format!("{}:{}", k.shader.name, k.entry),
        };
        chunk.kernels.push((name, grid));
        (&chunk.set, index)
    }

    /// After a launch: a full chunk is resolved on `encoder` and set aside for reading.
    pub(crate) fn after_launch(&mut self, encoder: &mut wgpu::CommandEncoder) {
        if self.filling.as_ref().is_some_and(|c| c.kernels.len() == LAUNCHES_PER_CHUNK as usize) {
            self.close_filling(encoder);
        }
    }

    /// Resolves the chunk being filled, if it holds any launch, on `encoder`.
    pub(crate) fn close_filling(&mut self, encoder: &mut wgpu::CommandEncoder) {
        if let Some(chunk) = self.filling.take() {
            if chunk.kernels.is_empty() {
                self.spare.push(chunk);
            } else {
                chunk.resolve(encoder);
                self.full.push(chunk);
            }
        }
    }

    /// The chunks resolved so far, to be read once the GPU has run their commands.
    pub(crate) fn take_full(&mut self) -> Vec<QueryChunk> {
        std::mem::take(&mut self.full)
    }

    /// Adds the launches of `chunks` (read back by [`read_chunks`]) to the totals, and keeps the
    /// chunks for reuse.
    pub(crate) fn add(&mut self, chunks: Vec<QueryChunk>, stamps: Vec<Vec<u64>>) {
        for (mut chunk, stamps) in chunks.into_iter().zip(stamps) {
            for (i, (kernel, grid)) in chunk.kernels.drain(..).enumerate() {
                let ticks = stamps[2 * i + 1].saturating_sub(stamps[2 * i]);
                let total = self.totals.entry(kernel).or_default().entry(grid).or_insert((0, 0));
                total.0 += 1;
                total.1 += (ticks as f64 * self.period_ns).round() as u64;
            }
            self.spare.push(chunk);
        }
    }

    /// The totals, the longest first.
    pub(crate) fn times(&self) -> Vec<KernelTime> {
        let mut times: Vec<KernelTime> = self
            .totals
            .iter()
            .map(|(kernel, grids)| {
                let mut grids: Vec<GridTime> =
                    grids.iter().map(|(&grid, &(launches, gpu_ns))| GridTime { grid, launches, gpu_ns }).collect();
                grids.sort_by(|a, b| b.gpu_ns.cmp(&a.gpu_ns).then_with(|| a.grid.cmp(&b.grid)));
                KernelTime {
                    kernel: kernel.clone(),
                    launches: grids.iter().map(|g| g.launches).sum(),
                    gpu_ns: grids.iter().map(|g| g.gpu_ns).sum(),
                    grids,
                }
            })
            .collect();
        times.sort_by(|a, b| b.gpu_ns.cmp(&a.gpu_ns).then_with(|| a.kernel.cmp(&b.kernel)));
        times
    }

    pub(crate) fn reset(&mut self) {
        self.totals.clear();
    }
}

/// The timestamps of `chunks`, whose commands the GPU has run: each chunk's read-back buffer
/// mapped and copied out.
pub(crate) fn read_chunks(device: &wgpu::Device, chunks: &[QueryChunk]) -> Result<Vec<Vec<u64>>> {
    let mut receivers = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        let (tx, rx) = mpsc::channel();
        let bytes = chunk.kernels.len() as u64 * 16;
        chunk.readback.slice(..bytes).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        receivers.push(rx);
    }
    device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Map(e.to_string()))?;
    chunks
        .iter()
        .zip(receivers)
        .map(|(chunk, rx)| {
            rx.recv()
                .map_err(|_| GpuError::Map("the kernel timer's map callback never ran".into()))?
                .map_err(|e| GpuError::Map(e.to_string()))?;
            let bytes = chunk.kernels.len() as u64 * 16;
            let stamps = {
                let view =
                    chunk.readback.slice(..bytes).get_mapped_range().map_err(|e| GpuError::Map(e.to_string()))?;
                bytemuck::pod_collect_to_vec::<u8, u64>(&view[..])
            };
            chunk.readback.unmap();
            Ok(stamps)
        })
        .collect()
}
