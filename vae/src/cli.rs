//! The command lines of the binaries, as clap parsers: each binary parses its struct and calls
//! the library. They live here, not in `src/bin/`, so that tests can parse every command the
//! docs quote with the binaries' own parsers (`tests/docs_commands.rs`): a renamed flag or a
//! refused value in a documented command fails CI.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Parser;
use tensor::DevicePreference;

use crate::data::DatasetKind;
use crate::model::Arch;
use crate::runs::RunConfig;
use crate::tools::eval::command::EvalArgs;

/// Train a VAE and write a run folder (configuration, per-epoch CSV, checkpoints, pictures).
#[derive(Parser, Debug)]
#[command(name = "train", version, about)]
pub struct TrainCli {
    /// The run's configuration: the flags of [`RunConfig`].
    #[command(flatten)]
    pub config: RunConfig,
    /// Where the model runs.
    #[command(flatten)]
    pub compute: DeviceArgs,
    /// Run folder (default: runs/ARCH-DATASET-SEED). A new run refuses a folder holding another.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Continue a run from its training checkpoint (e.g. runs/x/last.safetensors). The run keeps
    /// its configuration: of its flags only --epochs and --patience may change (and --device,
    /// --threads, --profile, which are not part of it).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// After each epoch, print where the training steps' time went: per op family (matmul,
    /// conv, …, optimizer, and "other" for autograd and host code) and the slowest ops.
    /// On the GPU every op is waited for, so steps get slower while profiling.
    #[arg(long)]
    pub profile: bool,
    /// How the CPU chooses between kernels that compute the same thing. `measured`: the first
    /// time this machine needs a choice, the candidates are timed (the f32 GEMM micro-kernel and
    /// its block sizes, each small-plane convolution's cut: images per GEMM, and for the
    /// weight gradient which way round each GEMM runs; at stride 1, backward-data by col2im or
    /// as a full correlation; a few seconds in all,
    /// each printed as a `tuning:` line) and the fastest is kept for later runs in
    /// cpu-kernel-choices.tsv beside $VAE_KERNEL_CACHE (default ~/.cache/vae-stack/). `rule`:
    /// the widest instruction set and the size rules, nothing timed (what the tests set).
    #[arg(long, value_enum, default_value = "measured", env = "VAE_CPU_KERNELS")]
    pub cpu_kernels: ChooseKernels,
    /// Run every f32 product on the CPU with this GEMM kernel (instruction set, tile and block
    /// depth, e.g. avx2-6x16-kc512), over --cpu-kernels; the values this CPU runs are listed
    /// when another is given. The kernel another CPU ran (its run's provenance.json names it)
    /// repeats that CPU's sums, so its numbers, bit for bit.
    #[arg(long)]
    pub cpu_gemm: Option<String>,
    /// Replay the CPU kernels the run in this folder chose (its provenance.json): its f32 GEMM
    /// kernel, each convolution's cut and way, and its thread count unless --threads names
    /// another; nothing timed, over --cpu-kernels. A run made on another CPU then comes back
    /// here bit for bit, whether its choices were measured there or pinned.
    #[arg(long, value_name = "RUN", conflicts_with = "cpu_gemm")]
    pub cpu_kernels_from: Option<PathBuf>,
    /// How a GPU chooses between kernels that compute the same thing. `measured`: the first
    /// time this adapter and driver need a choice for a shape class, the candidates are timed
    /// (each GEMM's tile, whether to split a long K, how many slices a convolution's weight
    /// gradient cuts its K into, and the rung of its ladder each matrix product (naive, tiled16,
    /// the tile) and convolution kernel (direct, tiled16, implicit_gemm, winograd) runs on;
    /// seconds once per machine, tens on a software adapter, each printed as a `tuning:` line)
    /// and the fastest is kept for later runs in $VAE_KERNEL_CACHE (default
    /// ~/.cache/vae-stack/kernel-choices.tsv). `rule`: the size rules and every ladder's top
    /// rung, nothing timed (what the tests set). No effect on a CPU.
    #[arg(long, value_enum, default_value = "measured", env = "VAE_GPU_KERNELS")]
    pub gpu_kernels: ChooseKernels,
    /// On a GPU, run every GEMM (matrix products, convolutions) on this tile: over the size
    /// rule and over --gpu-kernels. No effect on a CPU.
    #[arg(long, value_parser = ["square64", "wide128"])]
    pub gemm_tile: Option<String>,
    /// On a GPU, run every convolution kernel (conv2d and conv_transpose2d, forward and both
    /// gradients) on this rung of its ladder: `direct` (the definition, one invocation per
    /// output), `tiled16` (a GEMM on 16×16 tiles in workgroup memory), `implicit_gemm` (the
    /// default) or `winograd` (F(2×2, 3×3) for 3×3 kernels at stride 1, the implicit GEMM for
    /// the rest), over --gpu-kernels. No effect on a CPU.
    #[arg(long, value_parser = ["direct", "tiled16", "implicit_gemm", "winograd"])]
    pub conv_rung: Option<String>,
}

/// How a device's kernels are chosen (`train --cpu-kernels`, `train --gpu-kernels`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ChooseKernels {
    /// Timed on this machine the first time, then read from the cache.
    Measured,
    /// The instruction-set and size rules; nothing timed.
    Rule,
}

/// Pins the f32 GEMM kernel by name (`--cpu-gemm` of `train`, `eval` and `classify`), refusing
/// a name this CPU cannot run before any work. Why a user pins one: each product's sums run in
/// the order of its block depth, so a CPU that picks another kernel rounds differently and a
/// trained model drifts like a change of seed; pinned to the kernel another CPU ran (its run's
/// provenance names it), a number made there comes back here bit for bit.
pub fn pin_cpu_gemm(name: Option<&str>) -> crate::error::Result<()> {
    if let Some(name) = name {
        tensor::cpu::gemm::choose_f32_kernel(name, tensor::cpu::gemm::KernelChoice::Pinned)
            .map_err(|e| crate::error::Error::Config(format!("--cpu-gemm: {e}")))?;
    }
    Ok(())
}

/// Replays the CPU kernel choices of the run in `run` (`train --cpu-kernels-from`), before
/// any work: pins its GEMM kernel, installs its convolution choices, and returns the thread
/// count to run on (`threads`, unless 0, else the run's: images go side by side by the thread
/// count, so its bits need as many). Refuses, naming the flag and the file, a run whose
/// choices this build or CPU cannot replay.
pub fn replay_cpu_kernels(run: &std::path::Path, threads: usize) -> crate::error::Result<usize> {
    let choices = crate::provenance::cpu_kernel_choices_of(run)
        .map_err(|e| crate::error::Error::Config(format!("--cpu-kernels-from: {e}")))?;
    let (gemm, classes) = (choices.gemm_kernel, choices.convolutions.len());
    tensor::cpu::tuning::replay(&gemm, choices.convolutions).map_err(|e| {
        crate::error::Error::Config(format!(
            "--cpu-kernels-from {}: {e}",
            run.join(crate::provenance::PROVENANCE_FILE).display()
        ))
    })?;
    println!(
        "kernels: replaying {}'s choices (made on {} with {} threads): GEMM {gemm}, {classes} convolution choice(s)",
        run.display(),
        choices.cpu,
        choices.threads
    );
    if threads != 0 && threads != choices.threads {
        eprintln!(
            "warning: --threads {threads} where {} ran on {}: convolutions put images side by side by the thread \
             count, so convolutional models' numbers will differ from that run's",
            run.display(),
            choices.threads
        );
        return Ok(threads);
    }
    Ok(choices.threads)
}

/// Borrows, for speed, the CPU kernel choices the run in `run` measured (`explore`): the same
/// layers at the run's batch size then run the cuts its training timed, on the same kinds of
/// CPU. Only choices made on this CPU model are taken; anything else (another CPU, a GPU run, a
/// run without recorded choices, a kernel this build lacks) leaves the size rules in charge.
/// Returns the line that says which.
pub fn borrow_cpu_kernels(run: &std::path::Path) -> String {
    let here = crate::provenance::cpu_model();
    let borrowed = crate::provenance::cpu_kernel_choices_of(run)
        .map_err(|e| match e {
            crate::error::Error::Config(why) => why,
            other => other.to_string(),
        })
        .and_then(|choices| {
            if choices.cpu == here {
                Ok(choices)
            } else {
                Err(format!("its choices were made on {}, this is {here}", choices.cpu))
            }
        })
        .and_then(|choices| {
            let line = format!(
                "CPU kernels: the run's own measured choices (GEMM {}, {} convolution choice(s)); other sizes by the rules",
                choices.gemm_kernel,
                choices.convolutions.len()
            );
            tensor::cpu::tuning::replay_for_speed(&choices.gemm_kernel, choices.convolutions).map(|()| line)
        });
    borrowed.unwrap_or_else(|why| format!("CPU kernels: by the size rules ({why})"))
}

/// Where `--cpu-kernels measured` keeps the CPU's choices: `cpu-kernel-choices.tsv` beside
/// [`kernel_cache_path`] (a file of its own: each tuner drops lines whose choices it does not know).
pub fn cpu_kernel_cache_path() -> Option<PathBuf> {
    kernel_cache_path().map(|path| path.with_file_name("cpu-kernel-choices.tsv"))
}

/// Where `--gpu-kernels measured` keeps the GPU's choices: `$VAE_KERNEL_CACHE`, else
/// `~/.cache/vae-stack/kernel-choices.tsv` (`None` with neither variable set: measured, not kept).
pub fn kernel_cache_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VAE_KERNEL_CACHE") {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME")?;
    Some(PathBuf::from(home).join(".cache").join("vae-stack").join("kernel-choices.tsv"))
}

/// Explore a trained VAE in the browser: move latent coordinates, mix two images' codes, draw
/// samples, read the run's curves.
#[derive(Parser, Debug)]
#[command(name = "explore", version, about)]
pub struct ExploreCli {
    /// The trained model to explore.
    #[command(flatten)]
    pub model: TrainedModelArgs,
    /// Address or host name to listen on. Anything but a loopback address lets other machines
    /// use the explorer (a warning says so). Requests whose Host header names another site are
    /// refused (DNS rebinding), unless this is 0.0.0.0 or :: (every address).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: a free one, chosen by the system).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Where the model decodes.
    #[command(flatten)]
    pub compute: DeviceArgs,
    /// Test images per page of the page's grid (it pages through all --max-test of them).
    #[arg(long, default_value_t = 48)]
    pub grid: usize,
    /// The page offers at most this many test images, and the KL that orders the sliders is
    /// averaged over them.
    #[arg(long, default_value_t = 2000)]
    pub max_test: usize,
}

/// `--device` and `--threads`: the same two flags, with the same default, in every binary that
/// runs a model on a chosen device (`train`, `explore`).
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct DeviceArgs {
    /// Device (auto: a hardware GPU if there is one, else the CPU; reference: every op as its
    /// plain definition, one thread, f64 arithmetic: slow, and the place to step through a
    /// step in a debugger).
    #[arg(long, default_value = "auto", value_parser = device_parser())]
    pub device: DevicePreference,
    /// CPU threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl DeviceArgs {
    /// Sizes the CPU thread pool (before any parallel op) and opens the device.
    pub fn open(&self) -> crate::error::Result<tensor::Device> {
        crate::train::set_cpu_threads(self.threads)?;
        Ok(tensor::Device::from_preference(self.device)?)
    }
}

/// `--run` and `--checkpoint`: the same two flags in every tool that loads a trained model
/// (`eval`, `explore`).
#[derive(clap::Args, Debug, Clone)]
pub struct TrainedModelArgs {
    /// The run folder written by `train` (holds config.json and the checkpoints).
    #[arg(long)]
    pub run: PathBuf,
    /// The checkpoint to load (default: RUN/best.safetensors).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
}

/// `--threads` and `--cpu-gemm`: the same two flags in every tool that runs on the CPU only
/// (`classify`, `eval`).
#[derive(clap::Args, Debug, Clone)]
pub struct CpuArgs {
    /// CPU threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Run every f32 product on the CPU with this GEMM kernel, as `train --cpu-gemm` (the
    /// kernel a run's provenance names repeats that CPU's sums).
    #[arg(long)]
    pub cpu_gemm: Option<String>,
}

impl CpuArgs {
    /// Sizes the CPU thread pool and pins the GEMM kernel, before any work.
    pub fn apply(&self) -> crate::error::Result<()> {
        crate::train::set_cpu_threads(self.threads)?;
        pin_cpu_gemm(self.cpu_gemm.as_deref())
    }
}

fn device_parser() -> impl TypedValueParser<Value = DevicePreference> {
    PossibleValuesParser::new(["auto", "cpu", "gpu", "reference"]).try_map(|s| s.parse::<DevicePreference>())
}

/// Evaluate a trained VAE: reconstructions, samples, traversals, interpolations, feature
/// maps, t-SNE, robustness pictures, test metrics and disentanglement.
#[derive(Parser, Debug)]
#[command(name = "eval", version, about)]
pub struct EvalCli {
    /// The flags, defined with the command in [`crate::tools::eval::command`].
    #[command(flatten)]
    pub args: EvalArgs,
}

/// Train a grid of VAEs (a study file, or `--grid` axes), here, on a Slurm cluster or through
/// a job list, and summarise them in one table and one validation-loss plot.
#[derive(Parser, Debug)]
#[command(name = "sweep", version, about, args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepCli {
    /// `status`, `collect` or `run-point`; without one, the study's points not yet done are launched.
    #[command(subcommand)]
    pub command: Option<SweepCommand>,
    /// What to launch and how.
    #[command(flatten)]
    pub launch: SweepLaunchArgs,
}

/// What `sweep` launches (a study file or a `--grid`), and how.
#[derive(clap::Args, Debug)]
pub struct SweepLaunchArgs {
    /// The study file (e.g. vae/studies/folkertsma-beta.toml), or a sweep's folder (its study.toml).
    #[arg(long, required_unless_present = "grid", conflicts_with_all = ["name", "grid"])]
    pub study: Option<PathBuf>,
    /// Name of a `--grid` sweep (its folder under --root).
    #[arg(long, requires = "grid")]
    pub name: Option<String>,
    /// One axis of a one-off grid, FLAG=V1,V2,... with FLAG a `train` flag (repeatable); the
    /// flags every run shares follow `--`.
    #[arg(long, requires = "name")]
    pub grid: Vec<String>,
    /// Where sweeps are written (default: the study's `root`, else runs/sweeps).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Who runs the points: here (`local`), a Slurm job array (`slurm`), or nobody yet: one
    /// command per line in SWEEP_DIR/jobs.txt (`print`).
    #[arg(long, value_enum, default_value = "local")]
    pub launcher: crate::tools::sweep::Launcher,
    /// Points at once: local (default 1, the cores divided among them), or the Slurm array's
    /// limit (%N; default none).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: Option<u64>,
    /// CPU threads of each point (default: the cores divided among --jobs; under Slurm, the
    /// CPUs of each task, --cpus-per-task).
    #[arg(long)]
    pub threads: Option<usize>,
    /// A point that has failed this many times is not started again.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
    /// An sbatch option for every task, KEY=VALUE or KEY (repeatable; over the study's
    /// `[slurm]` table): partition=gpu, time=02:00:00, cpus-per-task=4, mem=8G, gres=gpu:1.
    #[arg(long = "slurm-opt", value_name = "KEY=VALUE")]
    pub slurm_opt: Vec<String>,
    /// With --launcher slurm: print the job array's script instead of submitting it.
    #[arg(long)]
    pub dry_run: bool,
    /// The `train` flags every point of a --grid sweep shares (after `--`).
    #[arg(last = true)]
    pub train_args: Vec<String>,
}

/// `sweep`'s subcommands: what reads a sweep's folders, and what one job of a launcher runs.
#[derive(clap::Subcommand, Debug)]
pub enum SweepCommand {
    /// Print every point as pending, queued, running, done, stopped or failed (attempts, exit
    /// code, the last lines of its log and the log's path, its Slurm task).
    Status(SweepStudyArgs),
    /// Write the summary (table.md, table.csv, val_loss.png, report.html) of the points that are
    /// done, naming those that are not.
    Collect(SweepStudyArgs),
    /// Train one point (resuming it from its checkpoint if it has one) and evaluate it: what
    /// each job of a launcher runs.
    RunPoint(SweepRunPointArgs),
}

/// The study a subcommand reads.
#[derive(clap::Args, Debug)]
pub struct SweepStudyArgs {
    /// The study file, or a sweep's folder (its study.toml).
    #[arg(long)]
    pub study: PathBuf,
    /// Where sweeps are written (default: the study's `root`).
    #[arg(long)]
    pub root: Option<PathBuf>,
}

/// `sweep run-point`'s flags.
#[derive(clap::Args, Debug)]
pub struct SweepRunPointArgs {
    /// The study.
    #[command(flatten)]
    pub study: SweepStudyArgs,
    /// The point's index in the grid (a Slurm array's task id).
    #[arg(long)]
    pub index: usize,
    /// CPU threads of train and eval (default: the CPUs Slurm allocated, else all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Train a ResNet-18 classifier (also the encoder pre-training of Yang and Kobilaski).
#[derive(Parser, Debug)]
#[command(name = "classify", version, about)]
pub struct ClassifyCli {
    /// Dataset with labels: fashion-mnist, mnist, cifar10, stl10 or folder.
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    pub dataset: DatasetKind,
    /// Where the dataset's files are (default: the dataset's standard location).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Resize images to SIZE×SIZE (32 for a `resnet18` VAE on 28×28 data).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Use at most this many images.
    #[arg(long)]
    pub max_images: Option<usize>,
    /// Leave out the dataset's first N images (as `train --skip-images`), e.g. those a VAE trains
    /// and is tested on, so that a judge never sees them.
    #[arg(long, default_value_t = 0)]
    pub skip_images: usize,
    /// Train/validation/test split ratios (as `train`).
    #[arg(long, default_value = "10:1:1")]
    pub split: String,
    /// resnet18 or resnet18-nobn (the other presets are not classifiers).
    #[arg(long, value_enum, default_value = "resnet18")]
    pub arch: Arch,
    /// Number of epochs.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Random seed (initialisation, split, order).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads and GEMM kernel of the CPU it trains on.
    #[command(flatten)]
    pub cpu: CpuArgs,
    /// Where to save the weights (a `.json` description is written beside them).
    #[arg(long, default_value = "runs/classifier/classifier.safetensors")]
    pub out: PathBuf,
}

/// A private `XDG_RUNTIME_DIR` for this process, made when the environment has none.
///
/// Creating a Vulkan instance makes Mesa's drivers probe for a Wayland display, and libwayland
/// prints `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` when that variable
/// is unset (servers, CI, containers): an error line on every GPU run, for a probe compute does
/// not need. Pointed at an empty folder of its own, the probe finds no display and says nothing.
/// The folder has a random name and mode 0700 (another user cannot make it first or look in),
/// and is removed when this value is dropped. Only a binary does this, first thing in `main`,
/// before any thread could read the environment: the libraries leave the environment alone.
pub struct RuntimeDir {
    /// Held for its `Drop`, which removes the folder.
    _dir: Option<tempfile::TempDir>,
}

impl RuntimeDir {
    /// Makes the folder and sets the variable if it is unset; does nothing otherwise. If the
    /// folder cannot be made the variable stays unset and the probe may print its line.
    pub fn for_this_process() -> RuntimeDir {
        if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
            return RuntimeDir { _dir: None };
        }
        let Ok(dir) = tempfile::Builder::new().prefix("vae-runtime-").tempdir() else {
            return RuntimeDir { _dir: None };
        };
        std::env::set_var("XDG_RUNTIME_DIR", dir.path());
        RuntimeDir { _dir: Some(dir) }
    }
}
