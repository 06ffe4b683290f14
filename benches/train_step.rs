//! One full VAE training step — forward, loss, backward, Adam update — for the workloads B1–B5
//! of `docs/architectures.md` (loss: MSE on sigmoid outputs + 1.0·KL, Adam lr 1e-3),
//! printed as a table: median ms/step, images/s, peak memory, and the share of each op family.
//!
//! ```text
//! cargo bench --bench train_step                          # B1–B5 on the CPU
//! cargo bench --bench train_step -- --workloads B2,B4 --steps 20
//! cargo bench --bench train_step -- --device gpu          # on the GPU adapter (if any)
//! cargo bench --bench train_step -- --device gpu --dispatches-per-submit 8
//! cargo bench --bench train_step -- --device gpu --submit-inline
//! cargo bench --bench train_step -- --device gpu --no-conv-split-k
//! cargo bench --bench train_step -- --tune-kernels          # CPU kernels by timing, as train does
//! cargo bench --bench train_step -- --device gpu --tune-kernels   # GPU tiles, splits and rungs by timing
//! cargo bench --bench train_step -- --device gpu --kernel-times   # each kernel's GPU time per step
//! cargo bench --bench train_step -- --device gpu --conv-rung winograd   # every convolution on one rung
//! ```
//! `--dispatches-per-submit N` submits every N launches instead of the context's default
//! (`gpu::context::DISPATCHES_PER_SUBMIT`): fewer submits against an earlier start of the GPU.
//! `--submit-inline` finishes and submits the recorded commands on the recording thread instead
//! of the context's thread for it (`gpu::SubmitPolicy::on_a_thread`). `--no-conv-split-k` keeps
//! every convolution's K in one piece (`gpu::Context::set_conv_split_k`). `--conv-rung NAME`
//! runs every convolution kernel on that rung of the GPU ladder (`direct`, `tiled16`,
//! `implicit_gemm`, `winograd`: `gpu::Context::pin_conv_rung`, as `train --conv-rung`). `--kernel-times`
//! adds, after everything else, steps timed by the GPU's own clock (`gpu::kernel_timer`): each
//! kernel's launches and GPU time per step, how much of the step they fill, and the three
//! longest kernels' time by grid of workgroups (one kernel serves several layers).
//! Each workload runs in a child process of its own, so its peak memory is its own:
//! `peak RSS` is the process's resident high-water mark during the timed steps minus its
//! resident size before the model was built (what `benches/pytorch_train_step.py` reports for
//! PyTorch); `peak heap` is the exact peak of live heap bytes during a step, from a counting
//! allocator (parameters, gradients, Adam moments, activations), CPU runs only.
//! On a GPU it also prints `host recording: X ms/step (Y µs/dispatch)`: a timed step's wall time
//! minus the time the host spent blocked on the device (`gpu::Counters::device_wait_ns`), the
//! part of a step a fast GPU cannot hide, since the launches are recorded before they run,
//! and `host CPU`: the CPU time of the thread that records the step (`CLOCK_THREAD_CPUTIME_ID`),
//! which, unlike wall time, other processes and a software adapter's own threads cannot inflate.
//! The op-family shares come from `tensor::profile`, over separate, profiled steps (on the GPU
//! profiling waits for each op, so its shares are of a slower step; the ms/step is not).

use std::alloc::{GlobalAlloc, Layout};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nn::optim::{Adam, AdamConfig};
use nn::{Init, Module};
use tensor::cpu::caching_allocator::CachingAllocator;
use tensor::{profile, DType, Device, DevicePreference, Rng, Tensor};
use vae::loss::{Objective, ReconLoss};
use vae::model::{Arch, ModelConfig, OutputActivation, Vae};
use vae::train::{train_step, LossSetup};

/// Counts live heap bytes and their high-water mark, over the caching allocator that `train`
/// uses (or over the system allocator with `VAE_SYSTEM_ALLOCATOR=1`, to compare).
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = inner_alloc(layout, false);
        if !p.is_null() {
            let live = LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = inner_alloc(layout, true);
        if !p.is_null() {
            let live = LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        inner_dealloc(p, layout);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

/// Set once at the start of `main`, before any large block is allocated: a block must go back
/// to the allocator that handed it out.
static USE_SYSTEM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn use_system() -> bool {
    USE_SYSTEM.load(Ordering::Relaxed)
}

unsafe fn inner_alloc(layout: Layout, zeroed: bool) -> *mut u8 {
    match (use_system(), zeroed) {
        (true, false) => std::alloc::System.alloc(layout),
        (true, true) => std::alloc::System.alloc_zeroed(layout),
        (false, false) => CachingAllocator.alloc(layout),
        (false, true) => CachingAllocator.alloc_zeroed(layout),
    }
}

unsafe fn inner_dealloc(p: *mut u8, layout: Layout) {
    if use_system() {
        std::alloc::System.dealloc(p, layout)
    } else {
        CachingAllocator.dealloc(p, layout)
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// A row of the spec's benchmark table.
struct Workload {
    name: &'static str,
    arch: Arch,
    input: [usize; 3],
    z_dim: usize,
    batch: usize,
}

const WORKLOADS: [Workload; 5] = [
    Workload { name: "B1", arch: Arch::Conv, input: [3, 64, 64], z_dim: 32, batch: 64 },
    Workload { name: "B2", arch: Arch::ResNet18, input: [3, 32, 32], z_dim: 128, batch: 64 },
    Workload { name: "B3", arch: Arch::ResNetBn, input: [3, 64, 64], z_dim: 128, batch: 32 },
    Workload { name: "B4", arch: Arch::Dense, input: [1, 28, 28], z_dim: 16, batch: 128 },
    Workload { name: "B5", arch: Arch::Basic, input: [3, 32, 32], z_dim: 128, batch: 64 },
];

struct Options {
    device: String,
    workloads: Vec<String>,
    /// Timed steps (after warm-up); 0 picks a count that takes about 10 s.
    steps: usize,
    profile_steps: usize,
    /// Launches per submit on the GPU; `None`: the context's default.
    dispatches_per_submit: Option<usize>,
    /// Submit from the recording thread (`gpu::SubmitPolicy::on_a_thread` false).
    submit_inline: bool,
    /// Convolutions never split their K (`gpu::Context::set_conv_split_k(false)`).
    no_conv_split_k: bool,
    /// Kernels chosen by timing during the warm-up steps, kept for this process only: on the
    /// CPU the GEMM kernel and the convolutions' cuts (`tensor::cpu::tuning`), on a GPU the
    /// tiles, K splits and convolution rungs (`gpu::tuning`), as `train` does by default.
    tune_kernels: bool,
    /// Each kernel's GPU time per step, from timestamp queries (`gpu::kernel_timer`).
    kernel_times: bool,
    /// Every convolution kernel on this rung of the GPU ladder (`gpu::Context::pin_conv_rung`).
    conv_rung: Option<String>,
    child: Option<String>,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        device: "cpu".into(),
        workloads: WORKLOADS.iter().map(|w| w.name.to_string()).collect(),
        steps: 0,
        profile_steps: 3,
        dispatches_per_submit: None,
        submit_inline: false,
        no_conv_split_k: false,
        tune_kernels: false,
        kernel_times: false,
        conv_rung: None,
        child: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--bench" => {} // cargo bench passes it to harness-less benches
            "--device" => o.device = value("--device")?,
            "--workloads" => o.workloads = value("--workloads")?.split(',').map(|s| s.trim().to_uppercase()).collect(),
            "--steps" => o.steps = value("--steps")?.parse().map_err(|e| format!("--steps: {e}"))?,
            "--profile-steps" => {
                o.profile_steps = value("--profile-steps")?.parse().map_err(|e| format!("--profile-steps: {e}"))?
            }
            "--dispatches-per-submit" => {
                let n: usize =
                    value("--dispatches-per-submit")?.parse().map_err(|e| format!("--dispatches-per-submit: {e}"))?;
                if n == 0 {
                    return Err("--dispatches-per-submit: expected at least 1".into());
                }
                o.dispatches_per_submit = Some(n);
            }
            "--submit-inline" => o.submit_inline = true,
            "--no-conv-split-k" => o.no_conv_split_k = true,
            "--tune-kernels" => o.tune_kernels = true,
            "--kernel-times" => o.kernel_times = true,
            "--conv-rung" => {
                let name = value("--conv-rung")?;
                if gpu::kernels::conv2d::ConvRung::from_name(&name).is_none() {
                    let names = gpu::kernels::conv2d::ConvRung::ALL.map(|rung| rung.name()).join(", ");
                    return Err(format!("--conv-rung: unknown rung '{name}' (expected one of {names})"));
                }
                o.conv_rung = Some(name);
            }
            "--child" => o.child = Some(value("--child")?),
            other if other.starts_with("--") => return Err(format!("unknown flag {other}")),
            _ => {} // a criterion-style name filter: ignored
        }
    }
    if o.dispatches_per_submit.is_some() && o.device != "gpu" {
        return Err(format!("--dispatches-per-submit needs --device gpu, got --device {}", o.device));
    }
    if o.submit_inline && o.device != "gpu" {
        return Err(format!("--submit-inline needs --device gpu, got --device {}", o.device));
    }
    if o.no_conv_split_k && o.device != "gpu" {
        return Err(format!("--no-conv-split-k needs --device gpu, got --device {}", o.device));
    }
    if o.kernel_times && o.device != "gpu" {
        return Err(format!("--kernel-times needs --device gpu, got --device {}", o.device));
    }
    if o.conv_rung.is_some() && o.device != "gpu" {
        return Err(format!("--conv-rung needs --device gpu, got --device {}", o.device));
    }
    for w in &o.workloads {
        if !WORKLOADS.iter().any(|k| k.name == w) {
            return Err(format!("--workloads: unknown workload '{w}' (expected B1, B2, B3, B4 or B5)"));
        }
    }
    Ok(o)
}

/// `VmRSS` or `VmHWM` of this process in bytes (Linux), else 0.
fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Resets the resident high-water mark (Linux ≥ 4.0), so `VmHWM` covers what follows.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// What one child process measures and prints as one line for the parent.
struct Measurement {
    median_ms: f64,
    min_ms: f64,
    /// CPU time (user + system, all threads) per step: steadier than wall time on a busy machine.
    cpu_ms: f64,
    steps: usize,
    peak_rss: u64,
    peak_heap: usize,
    /// Minor page faults per timed step: memory the step had to fault in (fresh or recycled).
    faults_per_step: f64,
    profile: String,
}

fn measure(
    w: &Workload,
    device: &Device,
    steps: usize,
    profile_steps: usize,
    kernel_times: bool,
) -> Result<Measurement, String> {
    let rss_before = proc_status_bytes("VmRSS:");
    let mut init = Init::new(0);
    let config = ModelConfig { arch: w.arch, input: w.input, z_dim: w.z_dim };
    let model = Vae::new(config, &mut init).map_err(|e| e.to_string())?;
    model.to_device(device).map_err(|e| e.to_string())?;
    let mut optimizer = Adam::new(model.named_parameters(), AdamConfig::new(1e-3)).map_err(|e| e.to_string())?;
    let setup = LossSetup {
        recon: ReconLoss::Mse,
        output: OutputActivation::Sigmoid,
        objective: Objective::BetaVae { k1: 1.0, beta: 1.0 },
        input_noise_std: 0.0,
    };
    let mut rng = Rng::new(1);
    let [c, h, wd] = w.input;
    let x = Tensor::rand_uniform(&[w.batch, c, h, wd], 0.0, 1.0, DType::F32, &mut rng)
        .to_device(device)
        .map_err(|e| e.to_string())?;
    let mut step = |i: usize| -> Result<(), String> {
        train_step(&model, &mut optimizer, &x, &setup, &mut rng, (0, i)).map_err(|e| e.to_string())?;
        if let Device::Gpu(g) = device {
            g.context().synchronize().map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    // Warm-up: Adam's moments, pipeline compilation, the allocator's first touches.
    let heap_before = LIVE_BYTES.load(Ordering::Relaxed);
    PEAK_BYTES.store(heap_before, Ordering::Relaxed);
    let t0 = Instant::now();
    step(0)?;
    step(1)?;
    let warm = t0.elapsed() / 2;
    let steps = if steps > 0 {
        steps
    } else {
        (Duration::from_secs(10).as_secs_f64() / warm.as_secs_f64()).clamp(5.0, 50.0) as usize
    };
    reset_peak_rss();
    let gpu_context = match device {
        Device::Gpu(g) => Some(g.context()),
        Device::Cpu | Device::Reference => None,
    };
    let counters = || gpu_context.map(|ctx| ctx.counters());
    let counted_before = counters();
    if let Some(ctx) = gpu_context {
        ctx.reset_peak_live_bytes();
    }
    let mut times = Vec::with_capacity(steps);
    // Per step on a GPU: its wall time minus the time spent blocked on the device.
    let mut host_times = Vec::with_capacity(steps);
    let mut host_cpu_times = Vec::with_capacity(steps);
    let cpu_start = process_cpu_seconds();
    let submit_cpu_start = submit_thread_cpu_ns();
    let faults_start = process_stat_field(7);
    for i in 0..steps {
        let waited_before = counters().map(|c| c.device_wait_ns);
        let thread_cpu_before = profile::thread_cpu_ns();
        let t = Instant::now();
        step(2 + i)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        times.push(ms);
        host_cpu_times.push((profile::thread_cpu_ns() - thread_cpu_before) as f64 / 1e6);
        if let (Some(after), Some(before)) = (counters().map(|c| c.device_wait_ns), waited_before) {
            host_times.push(ms - (after - before) as f64 / 1e6);
        }
    }
    let cpu_ms = (process_cpu_seconds() - cpu_start) * 1e3 / steps as f64;
    let submit_cpu_ms =
        submit_thread_cpu_ns().zip(submit_cpu_start).map(|(end, start)| (end - start) as f64 / 1e6 / steps as f64);
    // The timed steps, unprofiled: what a step submits and waits for on its own.
    let timed_counts = counters().zip(counted_before).map(|(after, before)| after.since(&before));
    let gpu_memory = gpu_context.map(|ctx| ctx.pool_stats());
    let faults_per_step = (process_stat_field(7) - faults_start) / steps as f64;
    let peak_rss = proc_status_bytes("VmHWM:").saturating_sub(rss_before);
    let peak_heap =
        PEAK_BYTES.load(Ordering::Relaxed).saturating_sub(heap_before.min(LIVE_BYTES.load(Ordering::Relaxed)));
    times.sort_by(|a, b| a.total_cmp(b));
    let median_ms = times[times.len() / 2];

    profile::reset();
    profile::set_enabled(true);
    let profiled_before = counters();
    let t = Instant::now();
    for i in 0..profile_steps {
        step(1000 + i)?;
    }
    let wall = t.elapsed();
    profile::set_enabled(false);
    let report = profile::snapshot();
    let mut profile = format!("{}\n{}", report.table(wall, profile_steps), report.top_ops(12, profile_steps));
    if let (Some(after), Some(before), Some(timed)) = (counters(), profiled_before, timed_counts) {
        let per_step = |n: u64| n as f64 / steps as f64;
        host_times.sort_by(|a, b| a.total_cmp(b));
        let host_ms = host_times[host_times.len() / 2];
        host_cpu_times.sort_by(|a, b| a.total_cmp(b));
        let host_cpu_ms = host_cpu_times[host_cpu_times.len() / 2];
        let dispatches = per_step(timed.dispatches).max(1.0);
        // What the host spends before the GPU can run a step's work: recording launches (our
        // code above the context, wgpu's encoding) and submitting, not waiting on the device.
        profile.push_str(&format!(
            "\nhost recording: {host_ms:.2} ms/step ({:.1} µs/dispatch; median over the timed steps of wall time minus \
             time blocked on the device)",
            host_ms * 1e3 / dispatches
        ));
        profile.push_str(&format!(
            "\nhost CPU: {host_cpu_ms:.2} ms/step ({:.1} µs/dispatch; median over the timed steps of the recording \
             thread's CPU time)",
            host_cpu_ms * 1e3 / dispatches
        ));
        if let Some(ms) = submit_cpu_ms {
            profile.push_str(&format!(
                "\nsubmitting thread CPU: {ms:.2} ms/step ({:.1} µs/dispatch; mean over the timed steps: encoding the \
                 recorded passes and submitting them, off the recording thread)",
                ms * 1e3 / dispatches
            ));
        }
        if let Some(pool) = gpu_memory {
            let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
            profile.push_str(&format!(
                "\nGPU memory: peak {:.1} MiB in use during the timed steps (buffers handed out by the pool, by size \
                 class: the counterpart of torch.cuda.max_memory_allocated), {:.1} MiB held by the pool after them (in \
                 use and idle)",
                mib(pool.peak_live_bytes),
                mib(pool.live_bytes + pool.idle_bytes)
            ));
        }
        profile.push_str(&format!(
            "\nGPU work per step (profiled steps; the timed steps, unprofiled: {:.0} dispatches, {:.0} copies, {:.1} new \
             buffers, {:.1} new bind groups, {:.1} submits, {:.1} read-backs):\n{}",
            per_step(timed.dispatches),
            per_step(timed.copies),
            per_step(timed.buffers_created),
            per_step(timed.bind_groups_created),
            per_step(timed.submits),
            per_step(timed.reads),
            report.gpu_table(&after.since(&before), profile_steps)
        ));
    }
    // Last: the timer puts each launch in a pass of its own from now on.
    if let (true, Some(ctx)) = (kernel_times, gpu_context) {
        profile.push_str(&kernel_time_table(ctx, &mut step, profile_steps.max(1), median_ms)?);
    }
    Ok(Measurement { median_ms, min_ms: times[0], cpu_ms, steps, peak_rss, peak_heap, faults_per_step, profile })
}

/// Each kernel's GPU time per step by the device's clock, over `steps` more steps, the longest
/// first, and what share of `step_ms` (the timed steps' median) all of them fill: the rest of
/// a step is the GPU waiting, between launches or for the host.
fn kernel_time_table(
    ctx: &gpu::Context,
    step: &mut dyn FnMut(usize) -> Result<(), String>,
    steps: usize,
    step_ms: f64,
) -> Result<String, String> {
    if !ctx.enable_kernel_timer() {
        return Ok(format!("\nGPU time per kernel: not measured, {} has no timestamp queries\n", ctx.info()));
    }
    ctx.reset_kernel_times().map_err(|e| e.to_string())?;
    let t = Instant::now();
    for i in 0..steps {
        step(2000 + i)?;
    }
    let wall_ms = t.elapsed().as_secs_f64() * 1e3 / steps as f64;
    let times = ctx.kernel_times().map_err(|e| e.to_string())?;
    let per_step = |x: u64| x as f64 / steps as f64;
    let total_ns: u64 = times.iter().map(|k| k.gpu_ns).sum();
    let mut s = format!(
        "\nGPU time per kernel (timestamp queries over {steps} steps with the timer on: {wall_ms:.2} ms/step wall, \
         a pass per launch):\n{:<58} {:>9} {:>12} {:>7}\n",
        "kernel", "launches", "GPU ms/step", "share"
    );
    for k in &times {
        s.push_str(&format!(
            "{:<58} {:>9.1} {:>12.3} {:>6.1}%\n",
            with_op_name(&k.kernel),
            per_step(k.launches),
            per_step(k.gpu_ns) / 1e6,
            100.0 * k.gpu_ns as f64 / total_ns.max(1) as f64
        ));
    }
    let gpu_ms = per_step(total_ns) / 1e6;
    s.push_str(&format!(
        "{:<58} {:>9.1} {:>12.3}   ({:.0}% of the timed steps' median {step_ms:.2} ms)\n",
        "all kernels",
        per_step(times.iter().map(|k| k.launches).sum()),
        gpu_ms,
        100.0 * gpu_ms / step_ms
    ));
    // A kernel serves several layers; its grids of workgroups tell them apart.
    s.push_str("the three longest kernels by grid of workgroups [x, y, z]:\n");
    for k in times.iter().take(3) {
        s.push_str(&format!("{}\n", with_op_name(&k.kernel)));
        for g in &k.grids {
            let grid = format!("{:?}", g.grid);
            s.push_str(&format!("  {grid:<56} {:>9.1} {:>12.3}\n", per_step(g.launches), per_step(g.gpu_ns) / 1e6));
        }
    }
    Ok(s)
}

/// An element-wise kernel's name with its op's: `elementwise.wgsl:unary[OP=5]` is compiled for
/// row 5 of `tensor::elementwise_table`'s unary table.
fn with_op_name(kernel: &str) -> String {
    use tensor::elementwise_table::{BINARY_OPS, UNARY_OPS};
    let Some((entry, code)) = kernel.strip_suffix(']').and_then(|k| k.split_once("[OP=")) else {
        return kernel.to_string();
    };
    let name = code.parse::<usize>().ok().and_then(|code| match entry {
        "elementwise.wgsl:unary" | "elementwise.wgsl:unary_backward" => UNARY_OPS.get(code).map(|d| d.name),
        "elementwise.wgsl:binary" => BINARY_OPS.get(code).map(|d| d.name),
        _ => None,
    });
    match name {
        Some(name) => format!("{entry} ({name})"),
        None => kernel.to_string(),
    }
}

/// Runs in the child: measures one workload and prints `RESULT ...` plus the profile table.
fn run_child(name: &str, o: &Options) -> Result<(), String> {
    let w = WORKLOADS.iter().find(|w| w.name == name).ok_or_else(|| format!("unknown workload {name}"))?;
    let pref: DevicePreference = o.device.parse().map_err(|e: tensor::TensorError| e.to_string())?;
    let device = if o.dispatches_per_submit.is_none() && !o.submit_inline {
        Device::from_preference(pref).map_err(|e| e.to_string())?
    } else {
        let policy = gpu::SubmitPolicy {
            dispatches: o.dispatches_per_submit.unwrap_or(gpu::SubmitPolicy::default().dispatches),
            on_a_thread: !o.submit_inline,
        };
        let any = gpu::AdapterPreference::AnyIncludingSoftware;
        let ctx = gpu::Context::with_submit_policy(any, policy).map_err(|e| e.to_string())?;
        Device::from_context(std::sync::Arc::new(ctx))
    };
    if o.tune_kernels {
        tensor::cpu::tuning::enable_tuning(None);
    }
    if let Some(ctx) = device.gpu_context() {
        ctx.set_conv_split_k(!o.no_conv_split_k);
        if let Some(rung) = o.conv_rung.as_deref().and_then(gpu::kernels::conv2d::ConvRung::from_name) {
            ctx.pin_conv_rung(rung);
        }
        if o.tune_kernels {
            ctx.enable_tuning(None);
        }
    }
    let m = measure(w, &device, o.steps, o.profile_steps, o.kernel_times)?;
    println!(
        "RESULT {} {} {:.3} {:.3} {:.3} {} {} {} {:.0}",
        w.name,
        device.describe().replace(' ', "_"),
        m.median_ms,
        m.min_ms,
        m.cpu_ms,
        m.steps,
        m.peak_rss,
        m.peak_heap,
        m.faults_per_step
    );
    print!("{}", m.profile);
    Ok(())
}

fn main() {
    USE_SYSTEM.store(std::env::var_os("VAE_SYSTEM_ALLOCATOR").is_some_and(|v| v == "1"), Ordering::Relaxed);
    let o = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("train_step bench: {e}");
            std::process::exit(2);
        }
    };
    if let Some(name) = &o.child {
        if let Err(e) = run_child(name, &o) {
            eprintln!("train_step bench {name}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("train_step bench: cannot find my own executable: {e}");
            std::process::exit(1);
        }
    };
    println!("threads: {} (rayon)", rayon::current_num_threads());
    if let Some(n) = o.dispatches_per_submit {
        println!("dispatches per submit: {n}");
    }
    if o.submit_inline {
        println!("submits from the recording thread");
    }
    if o.no_conv_split_k {
        println!("convolutions never split their K");
    }
    if o.tune_kernels {
        println!("kernels chosen by timing in each workload's warm-up steps (--tune-kernels)");
    }
    if let Some(rung) = &o.conv_rung {
        println!("every convolution on the {rung} rung (--conv-rung)");
    }
    let mut rows = Vec::new();
    let mut profiles = Vec::new();
    for name in &o.workloads {
        let w = WORKLOADS.iter().find(|w| w.name == name).expect("validated in parse_options");
        let mut cmd = Command::new(&exe);
        cmd.args(["--child", name, "--device", &o.device, "--steps", &o.steps.to_string()]);
        cmd.args(["--profile-steps", &o.profile_steps.to_string()]);
        if let Some(n) = o.dispatches_per_submit {
            cmd.args(["--dispatches-per-submit", &n.to_string()]);
        }
        if o.submit_inline {
            cmd.arg("--submit-inline");
        }
        if o.no_conv_split_k {
            cmd.arg("--no-conv-split-k");
        }
        if o.tune_kernels {
            cmd.arg("--tune-kernels");
        }
        if o.kernel_times {
            cmd.arg("--kernel-times");
        }
        if let Some(rung) = &o.conv_rung {
            cmd.args(["--conv-rung", rung]);
        }
        let out = match cmd.output() {
            Ok(out) => out,
            Err(e) => {
                eprintln!("{name}: could not start: {e}");
                continue;
            }
        };
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            eprintln!("{name}: failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            continue;
        }
        let Some(result) = text.lines().find(|l| l.starts_with("RESULT ")) else {
            eprintln!("{name}: no result line in:\n{text}");
            continue;
        };
        let f: Vec<&str> = result.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN);
        let (median, min, cpu, steps, rss, heap, faults) = (num(3), num(4), num(5), num(6), num(7), num(8), num(9));
        let preset =
            format!("{} {}×{}×{} z{} b{}", w.arch.name(), w.input[0], w.input[1], w.input[2], w.z_dim, w.batch);
        let mib = |b: f64| b / (1024.0 * 1024.0);
        rows.push(format!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {} | {:.0} | {:.0} | {:.0} |",
            name,
            preset,
            f[2].replace('_', " "),
            median,
            min,
            cpu,
            w.batch as f64 / (median / 1e3),
            steps,
            mib(rss),
            mib(heap),
            faults
        ));
        profiles.push(format!(
            "{name} ({preset}):\n{}",
            text.lines().filter(|l| !l.starts_with("RESULT")).collect::<Vec<_>>().join("\n")
        ));
    }
    println!();
    println!(
        "| workload | preset | device | median ms/step | min ms/step | CPU ms/step | images/s | steps | peak RSS MiB | peak heap MiB | page faults/step |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!("{r}");
    }
    println!();
    for p in &profiles {
        println!("{p}\n");
    }
}

/// Field `i` of /proc/self/stat, counting from the one after the parenthesised command name
/// (so minflt is 7, utime 11, stime 12); 0 where unreadable.
fn process_stat_field(i: usize) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace().nth(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0)
}

/// CPU time of the GPU context's submitting thread (named "gpu submit"), in ns, from its
/// /proc schedstat; `None` without one (submits from the recording thread, or not Linux).
fn submit_thread_cpu_ns() -> Option<u64> {
    std::fs::read_dir("/proc/self/task").ok()?.flatten().find_map(|task| {
        let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
        if comm.trim() != "gpu submit" {
            return None;
        }
        std::fs::read_to_string(task.path().join("schedstat")).ok()?.split_whitespace().next()?.parse().ok()
    })
}

/// User + system CPU time of this process (all threads), from /proc/self/stat; 0 elsewhere.
fn process_cpu_seconds() -> f64 {
    // USER_HZ is 100 on every Linux this runs on.
    (process_stat_field(11) + process_stat_field(12)) / 100.0
}
