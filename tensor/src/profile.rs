//! Where the time goes: an opt-in per-op-family timer. Tier: tooling.
//!
//! Every public op in [`crate::ops`] opens a [`scope`] for its family on entry. While profiling
//! is off (the default) a scope is one relaxed atomic load. While it is on, the outermost scope
//! on the calling thread adds its wall time to its family's total (an op that calls another op,
//! e.g. `var` calling `reduce`, is counted once, under the outer family). GPU ops only record
//! commands, so with profiling on a scope over a GPU tensor waits for the GPU before it stops
//! its clock: slower, but the table then says where the GPU time went. A GPU scope also bills
//! its family with what the context counted while it was open ([`gpu::Counters`]: launches,
//! workgroups, buffers created, bytes moved, read-backs), read before the profiler's own wait
//! so that wait is not billed; [`ProfileReport::gpu_table`] prints them.
//!
//! Used by `cargo bench --bench train_step` and `train --profile`:
//! ```
//! use tensor::{profile, Tensor};
//! profile::reset();
//! profile::set_enabled(true);
//! let x = Tensor::from_vec(vec![1.0f32, -2.0, 3.0], &[3]).unwrap();
//! let _y = x.relu().unwrap();
//! profile::set_enabled(false);
//! let report = profile::snapshot();
//! assert_eq!(report.calls(profile::OpFamily::Elementwise), 1);
//! ```

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// CPU time of the calling thread in nanoseconds (user + system: time blocked or preempted
/// does not count, nor do other threads, a software GPU adapter's own included): how the
/// benchmarks time the host's share of recording GPU work. 0 where the clock is unreadable.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant libc defines.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What a GPU context counted (launches, workgroups, buffers, transfers), as the GPU table
/// takes it.
pub use gpu::Counters as GpuCounters;

use crate::storage::Storage;
use crate::tensor::Tensor;

/// The op families a training step is made of, in the order the tables print them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpFamily {
    /// Matrix products.
    Matmul,
    /// Convolutions, forward and backward.
    Conv,
    /// Transposed convolutions, forward and backward.
    ConvTranspose,
    /// Batch normalisation, forward and backward.
    BatchNorm,
    /// Upsampling / interpolation.
    Interpolate,
    /// Max and average pooling.
    Pool,
    /// Unary and binary element-wise ops.
    Elementwise,
    /// Sums, means, maxima and other reductions.
    Reduce,
    /// Materialising strided views, concatenation, gathers and scatters.
    Copy,
    /// Fused optimizer updates.
    Optimizer,
}

impl OpFamily {
    /// Every family, in table order.
    pub const ALL: [OpFamily; 10] = [
        OpFamily::Matmul,
        OpFamily::Conv,
        OpFamily::ConvTranspose,
        OpFamily::BatchNorm,
        OpFamily::Interpolate,
        OpFamily::Pool,
        OpFamily::Elementwise,
        OpFamily::Reduce,
        OpFamily::Copy,
        OpFamily::Optimizer,
    ];

    /// The family's name as printed in tables.
    pub fn name(self) -> &'static str {
        match self {
            OpFamily::Matmul => "matmul",
            OpFamily::Conv => "conv",
            OpFamily::ConvTranspose => "conv-transpose",
            OpFamily::BatchNorm => "batch norm",
            OpFamily::Interpolate => "interpolation",
            OpFamily::Pool => "pooling",
            OpFamily::Elementwise => "element-wise",
            OpFamily::Reduce => "reduction",
            OpFamily::Copy => "copy/concat",
            OpFamily::Optimizer => "optimizer",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const FAMILIES: usize = OpFamily::ALL.len();

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; FAMILIES] = [const { AtomicU64::new(0) }; FAMILIES];
static CALLS: [AtomicU64; FAMILIES] = [const { AtomicU64::new(0) }; FAMILIES];
/// Per family: what the GPU context counted inside its scopes. Touched only while profiling.
static GPU: Mutex<[gpu::Counters; FAMILIES]> = Mutex::new([gpu::Counters::ZERO; FAMILIES]);
/// Per op name: (family, nanos, calls). Touched only while profiling.
static BY_OP: Mutex<Vec<OpTotal>> = Mutex::new(Vec::new());

/// One op's totals.
#[derive(Clone, Debug, PartialEq)]
pub struct OpTotal {
    /// The op's name.
    pub name: &'static str,
    /// The family it is counted under.
    pub family: OpFamily,
    /// Total wall time spent in the op.
    pub time: Duration,
    /// Number of calls.
    pub calls: u64,
}

thread_local! {
    /// How many scopes are open on this thread: only the outermost one records.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Turns the timers on or off (process-wide).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether the timers are on.
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Zeroes every family's total.
pub fn reset() {
    for family in OpFamily::ALL {
        NANOS[family.index()].store(0, Ordering::Relaxed);
        CALLS[family.index()].store(0, Ordering::Relaxed);
    }
    BY_OP.lock().unwrap_or_else(|e| e.into_inner()).clear();
    *GPU.lock().unwrap_or_else(|e| e.into_inner()) = [gpu::Counters::ZERO; FAMILIES];
}

/// The totals so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileReport {
    nanos: [u64; FAMILIES],
    calls: [u64; FAMILIES],
    gpu: [gpu::Counters; FAMILIES],
    /// Every op seen, slowest first.
    pub ops: Vec<OpTotal>,
}

impl ProfileReport {
    /// Total time spent in `family`.
    pub fn time(&self, family: OpFamily) -> Duration {
        Duration::from_nanos(self.nanos[family.index()])
    }

    /// Number of calls to ops of `family`.
    pub fn calls(&self, family: OpFamily) -> u64 {
        self.calls[family.index()]
    }

    /// What the GPU context counted inside `family`'s scopes (zero for CPU ops).
    pub fn gpu_counters(&self, family: OpFamily) -> gpu::Counters {
        self.gpu[family.index()]
    }

    /// Time in all op families together.
    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.nanos.iter().sum())
    }

    /// `self - earlier`, family by family (the time between two snapshots).
    pub fn since(&self, earlier: &ProfileReport) -> ProfileReport {
        let mut out = ProfileReport::default();
        for i in 0..FAMILIES {
            out.nanos[i] = self.nanos[i].saturating_sub(earlier.nanos[i]);
            out.calls[i] = self.calls[i].saturating_sub(earlier.calls[i]);
            out.gpu[i] = self.gpu[i].since(&earlier.gpu[i]);
        }
        for op in &self.ops {
            let before = earlier.ops.iter().find(|o| o.name == op.name);
            let time = op.time.saturating_sub(before.map_or(Duration::ZERO, |o| o.time));
            let calls = op.calls.saturating_sub(before.map_or(0, |o| o.calls));
            if calls > 0 {
                out.ops.push(OpTotal { time, calls, ..op.clone() });
            }
        }
        out.ops.sort_by_key(|op| std::cmp::Reverse(op.time));
        out
    }
}

/// The totals recorded so far (since the last [`reset`]).
pub fn snapshot() -> ProfileReport {
    let mut out = ProfileReport::default();
    for i in 0..FAMILIES {
        out.nanos[i] = NANOS[i].load(Ordering::Relaxed);
        out.calls[i] = CALLS[i].load(Ordering::Relaxed);
    }
    out.gpu = *GPU.lock().unwrap_or_else(|e| e.into_inner());
    out.ops = BY_OP.lock().unwrap_or_else(|e| e.into_inner()).clone();
    out.ops.sort_by_key(|op| std::cmp::Reverse(op.time));
    out
}

/// An open timer; it records when dropped. See [`scope`].
pub struct Scope {
    family: OpFamily,
    name: &'static str,
    /// Whether this scope raised the thread's depth (profiling was on when it opened).
    counted: bool,
    /// Set on the outermost scope only: the one that records.
    start: Option<Instant>,
    /// Waited on before the clock stops, so GPU work is timed, not just its recording; with
    /// the context's counters when the scope opened.
    gpu: Option<(Arc<gpu::Context>, gpu::Counters)>,
}

/// Starts timing op `name` of `family` whose operands live where `operand` lives.
#[inline]
pub fn scope(family: OpFamily, name: &'static str, operand: &Tensor) -> Scope {
    if !ENABLED.load(Ordering::Relaxed) {
        return Scope { family, name, counted: false, start: None, gpu: None };
    }
    let depth = DEPTH.with(|d| {
        d.set(d.get() + 1);
        d.get()
    });
    if depth > 1 {
        return Scope { family, name, counted: true, start: None, gpu: None };
    }
    let gpu = match operand.storage() {
        Storage::Gpu(g) => Some(Arc::clone(g.context())),
        Storage::Cpu(_) | Storage::Reference(_) => None,
    };
    // Work queued by earlier, unprofiled code must not be billed to this op.
    let gpu = gpu.map(|ctx| {
        let _ = ctx.synchronize();
        let counters = ctx.counters();
        (ctx, counters)
    });
    Scope { family, name, counted: true, start: Some(Instant::now()), gpu }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(start) = self.start {
            if let Some((ctx, at_start)) = &self.gpu {
                let counted = ctx.counters().since(at_start);
                let mut gpu = GPU.lock().unwrap_or_else(|e| e.into_inner());
                gpu[self.family.index()] = gpu[self.family.index()].plus(&counted);
                drop(gpu);
                // A failed wait surfaces at the next read of a result; the timer just stops.
                let _ = ctx.synchronize();
            }
            let nanos = start.elapsed().as_nanos() as u64;
            NANOS[self.family.index()].fetch_add(nanos, Ordering::Relaxed);
            CALLS[self.family.index()].fetch_add(1, Ordering::Relaxed);
            let mut ops = BY_OP.lock().unwrap_or_else(|e| e.into_inner());
            match ops.iter_mut().find(|o| o.name == self.name) {
                Some(o) => {
                    o.time += Duration::from_nanos(nanos);
                    o.calls += 1;
                }
                None => ops.push(OpTotal {
                    name: self.name,
                    family: self.family,
                    time: Duration::from_nanos(nanos),
                    calls: 1,
                }),
            }
        }
        if self.counted {
            DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
}

impl ProfileReport {
    /// A text table: each family's time per step and share of `wall` (the whole step's time,
    /// `steps` steps), plus "other" — autograd bookkeeping, allocation, host code.
    pub fn table(&self, wall: Duration, steps: usize) -> String {
        let steps = steps.max(1) as f64;
        let wall_ms = wall.as_secs_f64() * 1e3 / steps;
        let mut out = format!("{:<16} {:>10} {:>8} {:>7}\n", "op family", "ms/step", "calls", "share");
        let mut row = |name: &str, ms: f64, calls: String| {
            let share = if wall_ms > 0.0 { 100.0 * ms / wall_ms } else { 0.0 };
            out.push_str(&format!("{name:<16} {ms:>10.2} {calls:>8} {share:>6.1}%\n"));
        };
        for family in OpFamily::ALL {
            let ms = self.time(family).as_secs_f64() * 1e3 / steps;
            row(family.name(), ms, format!("{:.0}", self.calls(family) as f64 / steps));
        }
        let other = (wall_ms - self.total().as_secs_f64() * 1e3 / steps).max(0.0);
        row("other", other, String::new());
        row("step", wall_ms, String::new());
        out
    }

    /// What each family asked of the GPU per step: launches, workgroups (thousands), buffers
    /// the pool had to create and their MiB, MiB uploaded, device-to-device copies and their
    /// MiB, MiB read back, and read-backs (host round trips). `step` is the context's count over the same
    /// `steps` steps: what no op family accounts for (autograd's own buffers, the batch
    /// upload, the loss read-back) is printed as "other".
    pub fn gpu_table(&self, step: &gpu::Counters, steps: usize) -> String {
        let steps = steps.max(1) as f64;
        let mib = |b: u64| b as f64 / steps / (1u64 << 20) as f64;
        let mut out = format!(
            "{:<16} {:>10} {:>10} {:>8} {:>8} {:>9} {:>7} {:>9} {:>9} {:>6}\n",
            "op family",
            "dispatches",
            "kilo-wg",
            "new bufs",
            "new MiB",
            "up MiB",
            "copies",
            "copy MiB",
            "read MiB",
            "reads"
        );
        let mut row = |name: &str, c: &gpu::Counters| {
            out.push_str(&format!(
                "{name:<16} {:>10.0} {:>10.1} {:>8.1} {:>8.1} {:>9.2} {:>7.0} {:>9.2} {:>9.3} {:>6.1}\n",
                c.dispatches as f64 / steps,
                c.workgroups as f64 / steps / 1e3,
                c.buffers_created as f64 / steps,
                mib(c.bytes_created),
                mib(c.bytes_uploaded),
                c.copies as f64 / steps,
                mib(c.bytes_copied),
                mib(c.bytes_read),
                c.reads as f64 / steps,
            ));
        };
        let mut in_families = gpu::Counters::ZERO;
        for family in OpFamily::ALL {
            row(family.name(), &self.gpu[family.index()]);
            in_families = in_families.plus(&self.gpu[family.index()]);
        }
        row("other", &step.since(&in_families));
        row("step", step);
        out
    }

    /// The `n` slowest ops, one line each: name, family, ms per step, calls per step.
    pub fn top_ops(&self, n: usize, steps: usize) -> String {
        let steps = steps.max(1) as f64;
        let mut out = format!("{:<34} {:<16} {:>10} {:>8}\n", "op", "family", "ms/step", "calls");
        for op in self.ops.iter().take(n) {
            out.push_str(&format!(
                "{:<34} {:<16} {:>10.2} {:>8.0}\n",
                op.name,
                op.family.name(),
                op.time.as_secs_f64() * 1e3 / steps,
                op.calls as f64 / steps
            ));
        }
        out
    }
}
