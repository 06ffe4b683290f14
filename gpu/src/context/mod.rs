//! The GPU context: adapter choice, the device's real limits, the one pending command
//! encoder every launch records into, and the transfers (upload, read-back, fill, copy).
//!
//! Batching. Each launch records a dispatch into the context's pending encoder, and the
//! context submits it every [`DISPATCHES_PER_SUBMIT`] launches, so that the GPU starts on a
//! step's first kernels while the host is still recording the rest: recording overlaps
//! execution, and a step costs about the larger of the two instead of their sum. (A submit
//! costs the driver microseconds; one per 32 launches is a small share of their recording.)
//! The submits themselves (the ring's write, `CommandEncoder::finish`, the queue submit) run on
//! a thread of the context's, in the order the encoders were handed over, so the recording
//! thread goes on recording meanwhile ([`SubmitPolicy`]).
//! [`Context::flush`] submits what is pending; [`Context::read`] flushes and waits.
//!
//! Host cost. A step records hundreds of launches, and on a fast GPU the CPU time spent
//! recording them, not the kernels, sets the step time at small batches. So a launch creates
//! as little as it can: consecutive launches share one open compute pass (closed only when a
//! transfer or the submit needs the encoder), and their parameters go into one CPU-side block,
//! copied to the GPU's parameter ring with one `write_buffer` at the submit; each launch binds
//! its slot of the ring with a dynamic offset instead of creating a uniform buffer of its own.
//! Bind groups are cached by the buffers they bind (see [`crate::bind_groups`]).
//!
//! Errors. wgpu reports validation and out-of-memory errors asynchronously to a handler that
//! panics by default; the context installs its own handler that stores the first error, and
//! `flush`/`read` return it as [`GpuError::Device`]. Launchers check sizes and limits up
//! front, so a well-formed call never reaches wgpu's validation.

mod dispatch;

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::bind_groups::BindGroupCache;
use crate::buffer_pool::{BufferPool, BufferWindow, GpuBuffer, PoolStats};
use crate::counters::{Counters, LiveCounters};
use crate::error::{invalid, GpuError, Result};
use crate::kernel_timer::{read_chunks, KernelTime, KernelTimer};
use crate::kernels::GemmTile;
use crate::pipeline_cache::{KernelDef, PipelineCache};

/// Launches recorded per submit by default (see the module docs): also the parameter ring's
/// slots. [`Context::with_submit_policy`] sets another count, for benches that
/// measure the trade-off on a given GPU.
pub const DISPATCHES_PER_SUBMIT: usize = 32;

/// Which adapters [`Context::new`] may choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterPreference {
    /// A discrete, integrated or virtual GPU; a CPU (software) adapter counts as none.
    /// This is what a user-level `auto` device wants: a real GPU if any, else the crate's
    /// caller uses its own CPU kernels (which beat a software rasteriser's compute).
    HardwareOnly,
    /// The best adapter there is, falling back to a software one (Mesa's lavapipe, WARP):
    /// what tests and CI use.
    AnyIncludingSoftware,
}

/// The kind of device behind an adapter (wgpu's `DeviceType`, re-stated so callers need not
/// depend on wgpu).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// A separate GPU with its own memory.
    DiscreteGpu,
    /// A GPU sharing memory with the CPU.
    IntegratedGpu,
    /// A virtual or hosted GPU.
    VirtualGpu,
    /// A software implementation running on the CPU (lavapipe / llvmpipe, WARP, SwiftShader).
    Cpu,
    /// Anything wgpu cannot classify.
    Other,
}

impl DeviceKind {
    fn from_wgpu(t: wgpu::DeviceType) -> Self {
        match t {
            wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu,
            wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu,
            wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu,
            wgpu::DeviceType::Cpu => DeviceKind::Cpu,
            wgpu::DeviceType::Other => DeviceKind::Other,
        }
    }

    /// Lower is better: the order [`Context::new`] prefers adapters in.
    fn rank(self) -> u32 {
        match self {
            DeviceKind::DiscreteGpu => 0,
            DeviceKind::IntegratedGpu => 1,
            DeviceKind::VirtualGpu => 2,
            DeviceKind::Other => 3,
            DeviceKind::Cpu => 4,
        }
    }
}

/// The device limits the kernels care about, as granted (the adapter's own limits are
/// requested, not wgpu's conservative defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceLimits {
    /// Largest buffer a kernel can bind, in bytes (128 MiB on lavapipe).
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer that can be created, in bytes: the largest tensor (2 GiB on lavapipe).
    pub max_buffer_size: u64,
    /// A bound range of a buffer must start at a multiple of this many bytes (32 on lavapipe).
    pub min_storage_buffer_offset_alignment: u32,
    /// Largest workgroup count along each of x, y, z (65535 on most devices).
    pub max_compute_workgroups_per_dimension: u32,
    /// Most threads in one workgroup (x·y·z).
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroup shared memory, in bytes.
    pub max_compute_workgroup_storage_size: u32,
    /// Most storage buffers one shader stage can bind.
    pub max_storage_buffers_per_shader_stage: u32,
}

impl DeviceLimits {
    fn from_wgpu(l: &wgpu::Limits) -> Self {
        DeviceLimits {
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_buffer_size: l.max_buffer_size,
            min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
        }
    }
}

/// What was chosen: for logs, `--device` listings and the `auto` decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterInfo {
    /// The adapter's name as the driver reports it.
    pub name: String,
    /// "Vulkan", "Metal", "Dx12", "Gl".
    pub backend: String,
    /// Discrete, integrated, virtual, software or other.
    pub kind: DeviceKind,
    /// Driver name (may be empty).
    pub driver: String,
    /// Driver version or other details (may be empty).
    pub driver_info: String,
    /// The limits the device was created with.
    pub limits: DeviceLimits,
}

impl AdapterInfo {
    fn from_adapter(a: &wgpu::Adapter) -> Self {
        let i = a.get_info();
        AdapterInfo {
            name: i.name,
            backend: format!("{:?}", i.backend),
            kind: DeviceKind::from_wgpu(i.device_type),
            driver: i.driver,
            driver_info: i.driver_info,
            limits: DeviceLimits::from_wgpu(&a.limits()),
        }
    }

    /// True for a CPU (software) adapter such as lavapipe.
    pub fn is_software(&self) -> bool {
        self.kind == DeviceKind::Cpu
    }
}

impl std::fmt::Display for AdapterInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?}, {}", self.name, self.kind, self.backend)?;
        if !self.driver.is_empty() {
            write!(f, ", {} {}", self.driver, self.driver_info)?;
        }
        write!(f, ")")
    }
}

/// Bytes of the parameter ring per launch: every kernel's `Params` fits, and WebGPU caps
/// `min_uniform_buffer_offset_alignment` at 256, so every slot is a valid dynamic offset.
pub const PARAMS_SLOT: usize = 256;

struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    /// The compute pass consecutive launches record into, open on `encoder` (its borrow of
    /// the encoder is released by `forget_lifetime`; it must be closed before the encoder is
    /// used for anything else: see [`Pending::encoder`]).
    pass: Option<wgpu::ComputePass<'static>>,
    /// The pending launches' parameters, slot i at byte i·PARAMS_SLOT, for the ring.
    params: Vec<u8>,
    dispatches: usize,
    /// Each launch's GPU time, once [`Context::enable_kernel_timer`] turned it on.
    timer: Option<KernelTimer>,
}

impl Pending {
    /// The pending encoder (created if needed), with the open compute pass closed first:
    /// wgpu refuses to record anything else on an encoder while a pass is open.
    fn encoder(&mut self, device: &wgpu::Device) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("gpu pending") })
        })
    }

    /// The open compute pass (opened on the pending encoder if needed).
    fn pass(&mut self, device: &wgpu::Device) -> &mut wgpu::ComputePass<'static> {
        if self.pass.is_none() {
            let pass = self
                .encoder(device)
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("gpu launches"),
                    timestamp_writes: None,
                })
                .forget_lifetime();
            self.pass = Some(pass);
        }
        self.pass.as_mut().expect("opened above")
    }

    /// Records one dispatch: into the open compute pass, or, with the kernel timer on, into a
    /// pass of its own whose beginning and end write the GPU's clock.
    fn launch(
        &mut self,
        device: &wgpu::Device,
        k: &KernelDef,
        pipeline: &wgpu::ComputePipeline,
        bind_group: &wgpu::BindGroup,
        params_offset: u32,
        grid: [u32; 3],
    ) {
        let record = |pass: &mut wgpu::ComputePass| {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind_group, &[params_offset]);
            pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
        };
        let Some(mut timer) = self.timer.take() else {
            record(self.pass(device));
            return;
        };
        let encoder = self.encoder(device);
        let (query_set, index) = timer.slot(device, k, grid);
        record(&mut encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(k.entry),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set,
                beginning_of_pass_write_index: Some(index),
                end_of_pass_write_index: Some(index + 1),
            }),
        }));
        timer.after_launch(encoder);
        self.timer = Some(timer);
    }
}

/// How a [`Context`] submits what it records ([`Context::with_submit_policy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubmitPolicy {
    /// Launches recorded before each automatic submit.
    pub dispatches: usize,
    /// Finish and submit the recorded commands on a thread of their own, so that the
    /// recording thread goes on meanwhile.
    pub on_a_thread: bool,
}

impl Default for SubmitPolicy {
    /// [`DISPATCHES_PER_SUBMIT`] launches a submit, from a thread of its own.
    fn default() -> Self {
        SubmitPolicy { dispatches: DISPATCHES_PER_SUBMIT, on_a_thread: true }
    }
}

/// Recorded commands on their way to the GPU: the encoder and its launches' parameters, which
/// are written to the parameter ring first.
struct Submission {
    encoder: wgpu::CommandEncoder,
    params: Vec<u8>,
}

enum SubmitterJob {
    Submit(Submission),
    /// Answer once every earlier job is done.
    Fence(mpsc::SyncSender<()>),
}

/// Where recorded encoders are finished and submitted: on the recording thread, or on a
/// thread of its own that does so in the order they were handed over, so that the recording
/// thread goes on recording meanwhile (encoding a pass into the driver's commands,
/// `CommandEncoder::finish`, and the queue submit were about half the recording thread's
/// time on lavapipe, and a driver's submit may block).
struct Submitter {
    queue: wgpu::Queue,
    /// The launches' parameters on the GPU: `dispatches_per_submit` slots of PARAMS_SLOT
    /// bytes, written from each submission's parameters before its commands.
    ring: wgpu::Buffer,
    /// `None` when no thread could be started: then the caller submits.
    jobs: Mutex<Option<mpsc::Sender<SubmitterJob>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Submission {
    fn run(self, queue: &wgpu::Queue, ring: &wgpu::Buffer) {
        if !self.params.is_empty() {
            queue.write_buffer(ring, 0, &self.params);
        }
        queue.submit([self.encoder.finish()]);
    }
}

impl Submitter {
    /// Submits on a thread of its own when `on_a_thread` (and the system starts one), else on
    /// the caller's.
    fn start(queue: &wgpu::Queue, ring: wgpu::Buffer, on_a_thread: bool) -> Submitter {
        let thread = on_a_thread.then(mpsc::channel::<SubmitterJob>).and_then(|(jobs, received)| {
            let (queue, ring) = (queue.clone(), ring.clone());
            let run = move || {
                for job in received {
                    match job {
                        SubmitterJob::Submit(s) => s.run(&queue, &ring),
                        SubmitterJob::Fence(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            };
            Some((jobs, std::thread::Builder::new().name("gpu submit".into()).spawn(run).ok()?))
        });
        let (jobs, thread) = thread.unzip();
        Submitter { queue: queue.clone(), ring, jobs: Mutex::new(jobs), thread: Mutex::new(thread) }
    }

    /// Queues `s` behind everything handed over before (the caller holds the pending lock,
    /// which orders the hand-overs).
    fn submit(&self, s: Submission) {
        let jobs = self.jobs.lock().unwrap();
        let unsent = match jobs.as_ref() {
            Some(jobs) => jobs.send(SubmitterJob::Submit(s)).err().map(|mpsc::SendError(job)| job),
            None => Some(SubmitterJob::Submit(s)),
        };
        // No thread, or it stopped (nothing is left in its channel then): submit here.
        if let Some(SubmitterJob::Submit(s)) = unsent {
            s.run(&self.queue, &self.ring);
        }
    }

    /// Blocks until everything handed over before has been submitted.
    fn fence(&self) -> Result<()> {
        let (done, finished) = mpsc::sync_channel(1);
        let sent = self.jobs.lock().unwrap().as_ref().map(|jobs| jobs.send(SubmitterJob::Fence(done)).is_ok());
        let stopped = || GpuError::Device("the thread submitting GPU work stopped".into());
        match sent {
            None => Ok(()),
            Some(true) => finished.recv().map_err(|_| stopped()),
            Some(false) => Err(stopped()),
        }
    }
}

impl Drop for Submitter {
    /// Closes the channel, so the thread submits what is left and ends, and joins it.
    fn drop(&mut self) {
        self.jobs.lock().unwrap().take();
        if let Some(thread) = self.thread.lock().unwrap().take() {
            let _ = thread.join();
        }
    }
}

/// A wgpu device and queue, the buffer pool, the pipeline cache and the pending commands.
/// `Send + Sync`: share one per process (e.g. in a `OnceLock`).
pub struct Context {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: AdapterInfo,
    pool: BufferPool,
    pipelines: PipelineCache,
    bind_groups: Mutex<BindGroupCache>,
    pending: Mutex<Pending>,
    /// Where the recorded encoders are finished and submitted, in order, with the parameter
    /// ring the launches bind.
    submitter: Submitter,
    /// Launches recorded before the pending commands are submitted.
    dispatches_per_submit: usize,
    counters: LiveCounters,
    /// The first asynchronous wgpu error not yet reported (see the module docs).
    error: Arc<Mutex<Option<String>>>,
    /// The GEMM tile every launch uses, when forced ([`Context::with_gemm_tile`]).
    forced_gemm_tile: std::sync::OnceLock<GemmTile>,
    /// The convolution rung [`Context::pin_conv_rung`] forced on every launch of the tensor ops.
    forced_conv_rung: std::sync::OnceLock<crate::kernels::conv2d::ConvRung>,
    /// Kernel choices by measurement, once [`Context::enable_tuning`] turned them on.
    tuner: std::sync::OnceLock<crate::tuning::Tuner>,
    /// Whether convolutions with few output tiles split their K ([`Context::set_conv_split_k`]).
    conv_split_k: AtomicBool,
}

/// Where [`Context::alloc_packed`] puts buffers of `lens` elements: each start the first
/// multiple of `align` at or after the previous end; and the elements all of them span.
fn packed_layout(lens: &[usize], align: usize) -> (Vec<usize>, usize) {
    let mut starts = Vec::with_capacity(lens.len());
    let mut end = 0usize;
    for &len in lens {
        let start = end.next_multiple_of(align);
        starts.push(start);
        end = start + len;
    }
    (starts, end)
}

/// The uniform buffer that holds the parameters of `slots` pending launches.
fn params_ring(device: &wgpu::Device, slots: usize) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("gpu params ring"),
        size: (slots * PARAMS_SLOT) as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// A wgpu instance for the native compute backends (Vulkan, Metal, DX12). GL is left out
/// unless asked for with `WGPU_BACKEND` (e.g. `WGPU_BACKEND=gl`): its compute support is
/// partial, and probing it prints EGL warnings on headless machines. The environment is left
/// as the host made it: a binary that wants Mesa's Wayland probe quiet on a headless machine
/// sets `XDG_RUNTIME_DIR` for itself (the `vae` binaries do, see `vae::cli::RuntimeDir`).
fn new_instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if std::env::var_os("WGPU_BACKEND").is_none() {
        desc.backends = wgpu::Backends::PRIMARY;
    }
    wgpu::Instance::new(desc)
}

/// Every adapter wgpu can see, best first, without creating a device.
pub fn available_adapters() -> Vec<AdapterInfo> {
    let instance = new_instance();
    let mut adapters: Vec<AdapterInfo> = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(AdapterInfo::from_adapter)
        .collect();
    adapters.sort_by_key(|a| (a.kind.rank(), a.backend == "Gl"));
    adapters
}

impl Context {
    /// Opens the best adapter allowed by `pref` (discrete > integrated > virtual > other >
    /// CPU; Vulkan/Metal/Dx12 before GL) and a device with that adapter's own limits.
    /// The `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`-style environment variables wgpu reads are
    /// honoured. Prints nothing: see [`Context::info`].
    pub fn new(pref: AdapterPreference) -> Result<Self> {
        Self::with_submit_policy(pref, SubmitPolicy::default())
    }

    /// [`Self::new`], submitting as `policy` says: every `policy.dispatches` launches (one at
    /// least) instead of every [`DISPATCHES_PER_SUBMIT`] (fewer submits against an earlier
    /// start of the GPU), and from a thread of its own or not. Both are trade-offs that
    /// depend on the GPU, its driver and the host's free cores, which `cargo bench --bench
    /// train_step -- --dispatches-per-submit N` and `-- --submit-inline` measure.
    pub fn with_submit_policy(pref: AdapterPreference, policy: SubmitPolicy) -> Result<Self> {
        let instance = new_instance();
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let usable =
            |a: &wgpu::Adapter| a.get_downlevel_capabilities().flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS);
        let allowed = |a: &wgpu::Adapter| {
            pref == AdapterPreference::AnyIncludingSoftware || a.get_info().device_type != wgpu::DeviceType::Cpu
        };
        let best = adapters.iter().filter(|a| usable(a) && allowed(a)).min_by_key(|a| {
            let i = a.get_info();
            (DeviceKind::from_wgpu(i.device_type).rank(), i.backend == wgpu::Backend::Gl)
        });
        let Some(adapter) = best else {
            let seen: Vec<String> = adapters.iter().map(|a| AdapterInfo::from_adapter(a).to_string()).collect();
            let why = if seen.is_empty() {
                "wgpu found no adapter (no Vulkan/Metal/DX12 driver; WGPU_BACKEND=gl tries OpenGL)".to_string()
            } else if pref == AdapterPreference::HardwareOnly {
                format!("only software or compute-less adapters were found: {}", seen.join("; "))
            } else {
                format!("no adapter supports compute shaders: {}", seen.join("; "))
            };
            return Err(GpuError::NoAdapter(why));
        };
        let info = AdapterInfo::from_adapter(adapter);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("gpu context"),
            required_limits: adapter.limits(),
            // For the kernel timer ([`Context::enable_kernel_timer`]), where the adapter has them.
            required_features: adapter.features() & wgpu::Features::TIMESTAMP_QUERY,
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device(format!("requesting a device on {info}: {e}")))?;
        let error = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&error);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = slot.lock().unwrap();
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        let pool = BufferPool::new(info.limits.max_buffer_size);
        let dispatches_per_submit = policy.dispatches.max(1);
        let ring = params_ring(&device, dispatches_per_submit);
        Ok(Context {
            submitter: Submitter::start(&queue, ring, policy.on_a_thread),
            device,
            queue,
            info,
            pool,
            pipelines: PipelineCache::default(),
            bind_groups: Mutex::new(BindGroupCache::default()),
            pending: Mutex::new(Pending { encoder: None, pass: None, params: Vec::new(), dispatches: 0, timer: None }),
            dispatches_per_submit,
            counters: LiveCounters::default(),
            error,
            forced_gemm_tile: std::sync::OnceLock::new(),
            forced_conv_rung: std::sync::OnceLock::new(),
            tuner: std::sync::OnceLock::new(),
            conv_split_k: AtomicBool::new(true),
        })
    }

    /// Whether recorded commands are finished and submitted on a thread of their own.
    pub fn submits_on_a_thread(&self) -> bool {
        self.submitter.jobs.lock().unwrap().is_some()
    }

    /// Launches recorded before each automatic submit.
    pub fn dispatches_per_submit(&self) -> usize {
        self.dispatches_per_submit
    }

    /// [`Self::new`], with kernels binding at most `max_binding_bytes` per storage binding (the
    /// device's own limit where that is lower; rounded down to the offset alignment). The ops
    /// then split their launches as they do for tensors beyond the device's own limit, so tests
    /// reach those paths with small tensors, on any adapter. The limit is only ever lowered.
    pub fn with_binding_limit(pref: AdapterPreference, max_binding_bytes: u64) -> Result<Self> {
        let mut ctx = Self::new(pref)?;
        let limits = &mut ctx.info.limits;
        let align = u64::from(limits.min_storage_buffer_offset_alignment).max(4);
        let lowered = (max_binding_bytes / align * align).max(align);
        limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(lowered);
        Ok(ctx)
    }

    /// [`Self::new`], creating buffers of at most `max_buffer_bytes` (the device's own
    /// max_buffer_size where that is lower) and binding at most `max_binding_bytes` (as
    /// [`Self::with_binding_limit`], and never more than a buffer holds). The `tensor` crate
    /// then spreads a tensor over several buffers as it does beyond the device's own limit (4
    /// GiB on an H100), so tests reach that path with small tensors. Limits are only lowered.
    pub fn with_buffer_limit(pref: AdapterPreference, max_buffer_bytes: u64, max_binding_bytes: u64) -> Result<Self> {
        let mut ctx = Self::with_binding_limit(pref, max_binding_bytes.min(max_buffer_bytes))?;
        let limits = &mut ctx.info.limits;
        let align = u64::from(limits.min_storage_buffer_offset_alignment).max(4);
        limits.max_buffer_size = limits.max_buffer_size.min((max_buffer_bytes / align * align).max(align));
        ctx.pool = BufferPool::new(limits.max_buffer_size);
        Ok(ctx)
    }

    /// [`Self::new`], with grids of at most `max_per_dimension` workgroups along each axis (the
    /// device's own max_compute_workgroups_per_dimension where that is lower). Launchers then
    /// slice their grids as they do for work beyond the device's own limit, so tests reach
    /// those paths with small tensors. The limit is only ever lowered.
    pub fn with_workgroup_limit(pref: AdapterPreference, max_per_dimension: u32) -> Result<Self> {
        let mut ctx = Self::new(pref)?;
        let limits = &mut ctx.info.limits;
        limits.max_compute_workgroups_per_dimension =
            limits.max_compute_workgroups_per_dimension.min(max_per_dimension.max(1));
        Ok(ctx)
    }

    /// [`Self::new`], with every tiled GEMM (matmul, and the convolutions' GEMMs of more than
    /// 64 rows) on `tile` whatever its size, so tests check each tile on small problems and
    /// benches compare them.
    pub fn with_gemm_tile(pref: AdapterPreference, tile: GemmTile) -> Result<Self> {
        let ctx = Self::new(pref)?;
        ctx.pin_gemm_tile(tile);
        Ok(ctx)
    }

    /// Chooses the GEMM tile of each shape class by timing both on this device, keeping the
    /// choices in `cache` (`None`: for this context's life only); see [`crate::tuning`]. A
    /// tile forced by [`Self::with_gemm_tile`] still wins. The first call decides; later ones
    /// change nothing and return false.
    pub fn enable_tuning(&self, cache: Option<std::path::PathBuf>) -> bool {
        let key = format!("{} ({}, {} {})", self.info.name, self.info.backend, self.info.driver, self.info.driver_info);
        self.tuner.set(crate::tuning::Tuner::new(key, cache)).is_ok()
    }

    /// The measured choices, when tuning is on and this thread is not timing a convolution's
    /// rungs (those run on the size rules: see [`crate::tuning::on_the_rules`]).
    pub fn tuner(&self) -> Option<&crate::tuning::Tuner> {
        self.tuner.get().filter(|_| !crate::tuning::timing_on_the_rules())
    }

    /// The tile [`Self::with_gemm_tile`] forced, if any.
    pub fn forced_gemm_tile(&self) -> Option<GemmTile> {
        self.forced_gemm_tile.get().copied()
    }

    /// Runs every GEMM of this context on `tile` from now on (`train --gemm-tile`): over the
    /// size rule and over measured choices. The first pin decides; a later one changes nothing
    /// and returns false.
    pub fn pin_gemm_tile(&self, tile: GemmTile) -> bool {
        self.forced_gemm_tile.set(tile).is_ok()
    }

    /// Runs every convolution of the tensor ops (conv2d and conv_transpose2d, each of their
    /// kernels) on `rung` from now on (`train --conv-rung`): over the top rung and over measured
    /// choices. The first pin decides; a later one changes nothing and returns false.
    pub fn pin_conv_rung(&self, rung: crate::kernels::conv2d::ConvRung) -> bool {
        self.forced_conv_rung.set(rung).is_ok()
    }

    /// The rung [`Self::pin_conv_rung`] forced, if any.
    pub fn forced_conv_rung(&self) -> Option<crate::kernels::conv2d::ConvRung> {
        self.forced_conv_rung.get().copied()
    }

    /// Turns off (or on again) the K split of convolutions whose output makes few tiles
    /// (`split_k` in `kernels::conv2d`; on by default), so that a bench can measure what it buys
    /// on the adapter at hand (`train_step -- --no-conv-split-k`).
    pub fn set_conv_split_k(&self, on: bool) {
        self.conv_split_k.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether convolutions with few output tiles split their K.
    pub fn conv_split_k(&self) -> bool {
        self.conv_split_k.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Which adapter this context runs on.
    pub fn info(&self) -> &AdapterInfo {
        &self.info
    }

    /// The device limits granted at creation.
    pub fn limits(&self) -> &DeviceLimits {
        &self.info.limits
    }

    /// True when the adapter is a CPU (software) implementation.
    pub fn is_software(&self) -> bool {
        self.info.is_software()
    }

    /// The underlying wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The underlying wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    // ------------------------------------------------------------ buffers

    /// Refuses a buffer of `len` f32 elements that the device cannot create. A buffer above
    /// max_storage_buffer_binding_size can be created; kernels bind it a window at a time.
    pub fn check_len(&self, len: usize) -> Result<()> {
        let bytes = (len as u64).saturating_mul(4);
        let limit = self.info.limits.max_buffer_size;
        if bytes > limit {
            return Err(GpuError::LimitExceeded {
                what: format!("max_buffer_size (a buffer of {len} f32)"),
                requested: bytes,
                limit,
            });
        }
        Ok(())
    }

    /// Elements `start..start + len` of `buf` as a buffer a kernel can bind on its own: how a
    /// launcher reaches part of a buffer larger than one binding may be. `start` must be a
    /// multiple of [`Self::window_alignment`].
    pub fn window<'a>(&self, buf: &'a GpuBuffer, start: usize, len: usize) -> Result<BufferWindow<'a>> {
        if start.checked_add(len).is_none_or(|end| end > buf.len()) {
            let end = start.saturating_add(len);
            return Err(invalid("window", format!("elements {start}..{end} of a buffer of {}", buf.len())));
        }
        if !start.is_multiple_of(self.window_alignment()) {
            return Err(invalid(
                "window",
                format!("a window starts at a multiple of {} elements, not at {start}", self.window_alignment()),
            ));
        }
        Ok(buf.window(start, len))
    }

    /// The element counts a [`Self::window`] may start at are multiples of this
    /// (min_storage_buffer_offset_alignment in f32s; 8 on lavapipe).
    pub fn window_alignment(&self) -> usize {
        (self.info.limits.min_storage_buffer_offset_alignment as usize / 4).max(1)
    }

    /// The most f32 elements one kernel binding may hold (max_storage_buffer_binding_size).
    pub fn max_binding_len(&self) -> usize {
        (self.info.limits.max_storage_buffer_binding_size / 4) as usize
    }

    /// The most f32 elements one buffer may hold (max_buffer_size).
    pub fn max_buffer_len(&self) -> usize {
        (self.info.limits.max_buffer_size / 4) as usize
    }

    /// A buffer of `len` elements from the pool; its contents are undefined (a reused buffer
    /// holds old data). Err(LimitExceeded) above max_buffer_size.
    /// Err(OutOfMemory) when the device cannot hold it even after the pool has released its
    /// idle buffers.
    pub fn alloc(&self, len: usize) -> Result<GpuBuffer> {
        self.check_len(len)?;
        if let Some(buffer) = self.pool.take(&self.device, len) {
            return Ok(buffer);
        }
        // Out of memory (the driver's or the limit's). The pool's idle buffers are the memory
        // to win back, as PyTorch's caching allocator frees its cached blocks and retries: the
        // commands recorded with them run first (a released buffer lives until they have), and
        // the bind groups cached for them let go.
        self.synchronize()?;
        self.pool.trim();
        self.bind_groups.lock().unwrap().evict(&self.pool.take_released());
        self.pool.take(&self.device, len).ok_or_else(|| GpuError::OutOfMemory {
            requested: self.pool.class_bytes(len),
            in_use: self.pool.stats().live_bytes,
            limit: self.pool.memory_limit(),
        })
    }

    /// Caps the bytes this context's buffers may take, in use and idle (`None`: only the
    /// device's memory), as `torch.cuda.set_per_process_memory_fraction` does: a buffer that
    /// would go over it is refused with [`GpuError::OutOfMemory`] once the pool's idle buffers
    /// have been released. For sharing a GPU, and for seeing how a run behaves on a smaller one.
    pub fn set_memory_limit(&self, bytes: Option<u64>) {
        self.pool.set_memory_limit(bytes);
    }

    /// Buffers of `lens[i]` elements, packed into one device buffer: buffer i starts at the
    /// first multiple of [`Self::window_alignment`] after buffer i − 1 ends, so a kernel can
    /// bind each alone, and [`Self::packed_whole`] binds them all at once (a multi-tensor
    /// optimizer step is one launch this way, where it would be one per tensor). The device
    /// buffer goes back to the pool when the last of them is dropped. Contents undefined.
    pub fn alloc_packed(&self, lens: &[usize]) -> Result<Vec<GpuBuffer>> {
        let (starts, total) = packed_layout(lens, self.window_alignment());
        let whole = Arc::new(self.alloc(total)?);
        Ok(starts.iter().zip(lens).map(|(&start, &len)| GpuBuffer::packed_range(&whole, start, len)).collect())
    }

    /// The elements one [`Self::alloc_packed`] of `lens` spans, alignment padding included:
    /// more than [`Self::max_buffer_len`] and the pack cannot be made.
    pub fn packed_len(&self, lens: &[usize]) -> usize {
        packed_layout(lens, self.window_alignment()).1
    }

    /// When `bufs` are, in order, all the buffers one [`Self::alloc_packed`] call made: one
    /// buffer over all of them, the alignment padding between them included (elements there
    /// are whatever was written to them). `None` for any other list.
    pub fn packed_whole(&self, bufs: &[&GpuBuffer]) -> Option<GpuBuffer> {
        let span = self.packed_span(bufs)?;
        let whole = bufs.first()?.packed_in()?;
        (span.offset() == whole.offset() && span.len() == whole.len()).then_some(span)
    }

    /// When `bufs` are, in order, consecutive buffers of one [`Self::alloc_packed`] call: one
    /// buffer from the first one's start to the last one's end, the padding between them
    /// included. Every start in a pack is aligned, so the span's layout is that of a fresh
    /// pack of the same lengths, and a kernel may pair the two element by element (an
    /// optimizer step over a run of parameters and their gradients packed on their own).
    /// `None` for any other list.
    pub fn packed_span(&self, bufs: &[&GpuBuffer]) -> Option<GpuBuffer> {
        let whole = bufs.first()?.packed_in()?;
        let lens: Vec<usize> = bufs.iter().map(|b| b.len()).collect();
        let (starts, total) = packed_layout(&lens, self.window_alignment());
        let first = bufs[0].offset();
        let consecutive = bufs
            .iter()
            .zip(&starts)
            .all(|(b, &start)| b.packed_in().is_some_and(|w| Arc::ptr_eq(w, whole)) && b.offset() == first + start);
        consecutive.then(|| GpuBuffer::packed_range(whole, first - whole.offset(), total))
    }

    /// A buffer of `len` zeros (cleared by a recorded command, so it is ordered like a launch).
    pub fn zeros(&self, len: usize) -> Result<GpuBuffer> {
        let buf = self.alloc(len)?;
        self.clear(&buf)?;
        Ok(buf)
    }

    /// Sets every element of `buf` to zero, by a recorded command (ordered like a launch).
    pub fn clear(&self, buf: &GpuBuffer) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        LiveCounters::add(&self.counters.bytes_cleared, buf.bytes());
        self.record(|enc| enc.clear_buffer(buf.raw(), buf.byte_offset(), Some(buf.bytes())))
    }

    /// Copies `data` into a new buffer. The bytes go through a fresh staging buffer and a
    /// recorded copy rather than `queue.write_buffer`, because a queue write runs before
    /// every pending command: on a reused pool buffer it would overwrite data that earlier
    /// recorded launches have not read yet.
    pub fn upload(&self, data: &[f32]) -> Result<GpuBuffer> {
        let buf = self.alloc(data.len())?;
        self.write(&buf, data)?;
        Ok(buf)
    }

    /// Copies `data` into a new buffer of u32 (index lists for the index kernels), the same
    /// way as [`Self::upload`].
    pub fn upload_u32(&self, data: &[u32]) -> Result<GpuBuffer> {
        let buf = self.alloc(data.len())?;
        self.write_bytes(&buf, data.len(), bytemuck::cast_slice(data))?;
        Ok(buf)
    }

    /// Overwrites the first `data.len()` elements of `buf` (ordered after pending launches).
    pub fn write(&self, buf: &GpuBuffer, data: &[f32]) -> Result<()> {
        self.write_bytes(buf, data.len(), bytemuck::cast_slice(data))
    }

    /// [`Self::write`] of `len` 4-byte elements given as raw bytes.
    fn write_bytes(&self, buf: &GpuBuffer, len: usize, bytes: &[u8]) -> Result<()> {
        if len > buf.len() {
            return Err(invalid("write", format!("{len} elements into a buffer of {}", buf.len())));
        }
        if len == 0 {
            return Ok(());
        }
        let staging = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("gpu upload staging"),
            contents: bytes,
            usage: wgpu::BufferUsages::COPY_SRC,
        });
        LiveCounters::add(&self.counters.uploads, 1);
        LiveCounters::add(&self.counters.bytes_uploaded, bytes.len() as u64);
        self.record(|enc| enc.copy_buffer_to_buffer(&staging, 0, buf.raw(), buf.byte_offset(), Some(staging.size())))
    }

    /// Sets every element of `buf` to `value` (tests poison outputs with NaN this way).
    pub fn fill(&self, buf: &GpuBuffer, value: f32) -> Result<()> {
        crate::kernels::elementwise::fill(self, buf, value)
    }

    /// Copies all of `src` into the start of `dst`.
    pub fn copy(&self, src: &GpuBuffer, dst: &GpuBuffer) -> Result<()> {
        self.copy_range(src, 0, dst, 0, src.len())
    }

    /// Copies elements `src_start..src_start + len` of `src` to `dst` from `dst_start`: a
    /// copy-engine command, bit for bit, at any element offset (a kernel binding must start at
    /// a multiple of [`Self::window_alignment`], a copy need not), ordered like a launch.
    pub fn copy_range(
        &self,
        src: &GpuBuffer,
        src_start: usize,
        dst: &GpuBuffer,
        dst_start: usize,
        len: usize,
    ) -> Result<()> {
        for (what, buf, start) in [("from", src, src_start), ("into", dst, dst_start)] {
            if start.checked_add(len).is_none_or(|end| end > buf.len()) {
                let end = start.saturating_add(len);
                return Err(invalid("copy", format!("elements {start}..{end} {what} a buffer of {}", buf.len())));
            }
        }
        if len == 0 {
            return Ok(());
        }
        if src.id() == dst.id() {
            if src.offset() + src_start == dst.offset() + dst_start {
                return Ok(());
            }
            return Err(invalid("copy", "between two windows of one buffer (wgpu copies between buffers only)"));
        }
        let bytes = len as u64 * 4;
        LiveCounters::add(&self.counters.copies, 1);
        LiveCounters::add(&self.counters.bytes_copied, bytes);
        let (from, to) = (src.byte_offset() + src_start as u64 * 4, dst.byte_offset() + dst_start as u64 * 4);
        self.record(|enc| enc.copy_buffer_to_buffer(src.raw(), from, dst.raw(), to, Some(bytes)))
    }

    /// Submits everything pending, waits for it, and returns the buffer's contents.
    pub fn read(&self, buf: &GpuBuffer) -> Result<Vec<f32>> {
        Ok(bytemuck::cast_vec(self.read_u32(buf)?))
    }

    /// [`Self::read`] for buffers of u32 (max-pool indices): the bits, uninterpreted.
    pub fn read_u32(&self, buf: &GpuBuffer) -> Result<Vec<u32>> {
        Ok(self.read_u32_together(&[buf])?.pop().unwrap_or_default())
    }

    /// [`Self::read`] of several buffers in one host round trip (one staging buffer, one
    /// wait): what a step reads at its end (its loss terms and its optimizer's flag) costs
    /// one wait, not one each. Buffers larger together than one buffer may be (the chunks of
    /// a large tensor) are read in as few round trips as their staging buffers take.
    pub fn read_together(&self, bufs: &[&GpuBuffer]) -> Result<Vec<Vec<f32>>> {
        Ok(self.read_u32_together(bufs)?.into_iter().map(bytemuck::cast_vec).collect())
    }

    /// [`Self::read_together`] for buffers of u32: the bits, uninterpreted.
    pub fn read_u32_together(&self, bufs: &[&GpuBuffer]) -> Result<Vec<Vec<u32>>> {
        let max = self.info.limits.max_buffer_size;
        let mut values = Vec::with_capacity(bufs.len());
        let mut rest = bufs;
        loop {
            // As many buffers as one staging buffer holds (at least one: each fits alone).
            let (mut count, mut bytes) = (0, 0);
            while count < rest.len() && (count == 0 || bytes + rest[count].bytes() <= max) {
                bytes += rest[count].bytes();
                count += 1;
            }
            let (group, after) = rest.split_at(count);
            values.extend(self.read_through_one_staging_buffer(group)?);
            rest = after;
            if rest.is_empty() {
                return Ok(values);
            }
        }
    }

    /// [`Self::read_u32_together`] of buffers whose total fits one buffer.
    fn read_through_one_staging_buffer(&self, bufs: &[&GpuBuffer]) -> Result<Vec<Vec<u32>>> {
        let total: u64 = bufs.iter().map(|b| b.len() as u64 * 4).sum();
        if total == 0 {
            self.flush()?;
            return Ok(bufs.iter().map(|_| Vec::new()).collect());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gpu read-back staging"),
            size: total,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.record(|enc| {
            let mut at = 0;
            for b in bufs.iter().filter(|b| !b.is_empty()) {
                enc.copy_buffer_to_buffer(b.raw(), b.byte_offset(), &staging, at, Some(b.bytes()));
                at += b.bytes();
            }
        })?;
        LiveCounters::add(&self.counters.reads, 1);
        LiveCounters::add(&self.counters.bytes_read, total);
        self.flush()?;
        let slice = staging.slice(..);
        let (tx, rx) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait_for_device().map_err(|e| GpuError::Map(e.to_string()))?;
        rx.recv()
            .map_err(|_| GpuError::Map("the map callback never ran".into()))?
            .map_err(|e| GpuError::Map(e.to_string()))?;
        let all = {
            let view = slice.get_mapped_range().map_err(|e| GpuError::Map(e.to_string()))?;
            bytemuck::pod_collect_to_vec::<u8, u32>(&view[..])
        };
        staging.unmap();
        self.take_error()?;
        let mut rest = &all[..];
        Ok(bufs
            .iter()
            .map(|b| {
                let (this, after) = rest.split_at(b.len());
                rest = after;
                this.to_vec()
            })
            .collect())
    }

    /// Pool counters (created / reused / idle).
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Makes [`PoolStats::peak_live_bytes`] start again from the bytes in use now (a bench
    /// measures the peak of its timed steps this way).
    pub fn reset_peak_live_bytes(&self) {
        self.pool.reset_peak_live_bytes();
    }

    /// Everything counted since the context was made: launches, workgroups, buffers created,
    /// transfers, submits, waits (see [`crate::counters`]).
    pub fn counters(&self) -> Counters {
        let pool = self.pool.stats();
        self.counters.snapshot(pool.created, pool.created_bytes)
    }

    /// Idle pool buffers beyond this many bytes are released (default 2 GiB); 0 also
    /// releases every idle buffer now.
    pub fn set_pool_max_idle_bytes(&self, bytes: u64) {
        self.pool.set_max_idle_bytes(bytes);
    }

    /// Releases every idle pool buffer to the driver.
    pub fn trim_pool(&self) {
        self.pool.trim();
    }

    /// Number of compiled pipelines in the cache.
    pub fn compiled_pipelines(&self) -> usize {
        self.pipelines.len()
    }

    // ------------------------------------------------------------ submission

    /// Submits the pending commands (no wait for the GPU; returns once they are queued).
    /// Returns the first wgpu error seen since the last check, if any.
    pub fn flush(&self) -> Result<()> {
        // Hand over while holding the lock: another thread must not record into (and submit) a
        // newer encoder before this one is queued, or its commands would run first, e.g.
        // writing a pool buffer that this encoder's commands still read.
        let queued = {
            let mut p = self.pending.lock().unwrap();
            self.submit(&mut p);
            self.submitter.fence()
        };
        queued?;
        self.take_error()
    }

    /// Hands `p`'s commands to the submitting thread, with its launches' parameters, which
    /// that thread writes to the ring first (they land before the commands submitted next,
    /// which read them). The caller holds the lock.
    fn submit(&self, p: &mut Pending) {
        p.dispatches = 0;
        p.pass = None;
        // Launches record into the encoder, so parameters never come without one. The next
        // block is allocated at its full size at once, not grown launch by launch.
        let params = std::mem::replace(&mut p.params, Vec::with_capacity(self.dispatches_per_submit * PARAMS_SLOT));
        if let Some(encoder) = p.encoder.take() {
            self.submitter.submit(Submission { encoder, params });
            LiveCounters::add(&self.counters.submits, 1);
        }
    }

    /// Submits the pending commands and blocks until the GPU has run them (benchmarks).
    pub fn synchronize(&self) -> Result<()> {
        self.flush()?;
        LiveCounters::add(&self.counters.waits, 1);
        self.wait_for_device().map_err(|e| GpuError::Device(e.to_string()))?;
        self.take_error()
    }

    /// Blocks until the device has run everything submitted, counting the time it took.
    fn wait_for_device(&self) -> std::result::Result<(), wgpu::PollError> {
        let start = std::time::Instant::now();
        let polled = self.device.poll(wgpu::PollType::wait_indefinitely());
        LiveCounters::add(&self.counters.device_wait_ns, start.elapsed().as_nanos() as u64);
        polled.map(|_| ())
    }

    /// Turns on the kernel timer (see [`crate::kernel_timer`]): from now on every launch's GPU
    /// time is measured, for [`Self::kernel_times`]. False, and nothing changes, where the
    /// adapter has no timestamp queries.
    pub fn enable_kernel_timer(&self) -> bool {
        if !self.device.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return false;
        }
        let mut p = self.pending.lock().unwrap();
        if p.timer.is_none() {
            p.timer = Some(KernelTimer::new(self.queue.get_timestamp_period()));
        }
        true
    }

    /// Whether [`Self::enable_kernel_timer`] turned the timer on.
    pub fn kernel_timer_enabled(&self) -> bool {
        self.pending.lock().unwrap().timer.is_some()
    }

    /// The GPU time of every kernel launched since the timer was enabled or reset, the longest
    /// first (empty when the timer is off). Submits and waits for the GPU, as
    /// [`Self::synchronize`] does.
    pub fn kernel_times(&self) -> Result<Vec<KernelTime>> {
        let chunks = {
            let mut p = self.pending.lock().unwrap();
            let Some(mut timer) = p.timer.take() else {
                return Ok(Vec::new());
            };
            timer.close_filling(p.encoder(&self.device));
            let chunks = timer.take_full();
            p.timer = Some(timer);
            chunks
        };
        self.synchronize()?;
        let stamps = read_chunks(&self.device, &chunks)?;
        let mut p = self.pending.lock().unwrap();
        let timer =
            p.timer.as_mut().ok_or_else(|| GpuError::Device("the kernel timer was turned off while read".into()))?;
        timer.add(chunks, stamps);
        Ok(timer.times())
    }

    /// Forgets the kernel times read so far (the timer stays on).
    pub fn reset_kernel_times(&self) -> Result<()> {
        self.kernel_times()?;
        if let Some(timer) = self.pending.lock().unwrap().timer.as_mut() {
            timer.reset();
        }
        Ok(())
    }

    /// Launches recorded since the last submit.
    pub fn pending_dispatches(&self) -> usize {
        self.pending.lock().unwrap().dispatches
    }

    fn take_error(&self) -> Result<()> {
        match self.error.lock().unwrap().take() {
            Some(msg) => Err(GpuError::Device(msg)),
            None => Ok(()),
        }
    }

    /// Bind groups the cache holds (for tests: released buffers must leave it).
    pub fn cached_bind_groups(&self) -> usize {
        self.bind_groups.lock().unwrap().len()
    }

    /// Runs `f` on the pending encoder (creating one if needed).
    fn record(&self, f: impl FnOnce(&mut wgpu::CommandEncoder)) -> Result<()> {
        f(self.pending.lock().unwrap().encoder(&self.device));
        Ok(())
    }
}
