//! `train`: trains a VAE preset on a dataset and leaves a run folder to look at:
//! `config.json`, `metrics.csv` (one row per epoch), `last.safetensors` and `best.safetensors`
//! (training checkpoints: model, optimizer, position, RNG, configuration), a reconstruction
//! grid and a grid of samples from N(0, I) per epoch, and `loss.png`.
//!
//! With no flags: the `conv` preset on 20,000 procedurally generated dSprites images, a few
//! minutes on a 2-core CPU.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use autograd::{no_grad, Var};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use nn::checkpoint::{load_model, load_training_checkpoint, save_training_checkpoint, LoadOptions, TrainingState};
use nn::optim::{Adam, AdamConfig, EarlyStopping, LrSchedule, MetricGoal, Optimizer};
use nn::{Init, Module};
use serde::{Deserialize, Serialize};
use tensor::{Device, DevicePreference, Rng, Tensor};
use vae::data::{self, BatchOptions, Batches, Dataset, DatasetKind, Normalization};
use vae::error::{Error, Result};
use vae::loss::ReconLoss;
use vae::model::{Arch, ModelConfig, OutputActivation, Vae};
use vae::runs::{data_load_options, parse_normalization, parse_split};
use vae::train::{evaluate, objective_from_flags, standard_normal, train_step, LossSetup, StatsMean, StepStats};

/// Large tensors are freed and re-allocated every step; caching them avoids re-faulting the
/// working set in from the OS each time (see tensor/src/cpu/caching_allocator.rs).
#[global_allocator]
static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator = tensor::cpu::caching_allocator::CachingAllocator;

/// Train a VAE and write a run folder (configuration, per-epoch CSV, checkpoints, pictures).
#[derive(Parser, Debug, Clone, Serialize, Deserialize)]
#[command(name = "train", version, about)]
struct Args {
    /// Model preset: dense, basic, conv, resnet18, resnet18-nobn or resnet-bn.
    #[arg(long, default_value = "conv")]
    arch: String,
    /// Dataset: dsprites (generated, no download), fashion-mnist, mnist, cifar10, stl10 or folder.
    #[arg(long, default_value = "dsprites")]
    dataset: String,
    /// Where the dataset's files are (default: the dataset's standard location).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Resize images to SIZE×SIZE (default: the dataset's own size; 64 for stl10 and folders).
    #[arg(long)]
    image_size: Option<usize>,
    /// Use at most this many images (default: 20000 for dsprites, all for the others).
    #[arg(long)]
    max_images: Option<usize>,
    /// Pascal-VOC annotation folder for bounding-box crops (folder datasets, e.g. Stanford Dogs).
    #[arg(long)]
    annotation_dir: Option<PathBuf>,
    /// Centre-crop folder images to a square before resizing (CelebA).
    #[arg(long)]
    center_crop: bool,
    /// Train/validation/test split ratios.
    #[arg(long, default_value = "10:1:1")]
    split: String,
    /// Input normalisation: zero-one, minus-one-one (for --output tanh) or mean-std (per channel).
    #[arg(long, default_value = "zero-one")]
    normalize: String,
    /// Latent size z.
    #[arg(long, default_value_t = 10)]
    z_dim: usize,
    /// Objective: beta-vae (k1·recon + β·KL) or beta-tcvae (recon + α·MI + β·TC + γ·DW-KL).
    #[arg(long, default_value = "beta-vae")]
    loss: String,
    /// β: the KL weight (beta-vae) or the total-correlation weight (beta-tcvae).
    #[arg(long, default_value_t = 1.0)]
    beta: f64,
    /// α: the mutual-information weight (beta-tcvae).
    #[arg(long, default_value_t = 1.0)]
    alpha: f64,
    /// γ: the dimension-wise KL weight (beta-tcvae).
    #[arg(long, default_value_t = 1.0)]
    gamma: f64,
    /// k1: the reconstruction weight (beta-vae).
    #[arg(long, default_value_t = 1.0)]
    k1: f64,
    /// Use minibatch-stratified instead of minibatch-weighted sampling (beta-tcvae).
    #[arg(long)]
    stratified: bool,
    /// Reconstruction loss: mse, bce or bce-logits.
    #[arg(long, default_value = "bce-logits")]
    recon: String,
    /// Decoder output activation: logits (for bce-logits), sigmoid or tanh.
    #[arg(long, default_value = "logits")]
    output: String,
    /// Number of epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam learning rate (the start of any schedule).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Learning-rate schedule per epoch: constant, linear (to --lr-final), step (×--lr-gamma
    /// every --lr-step epochs) or cosine (to --lr-final).
    #[arg(long, default_value = "constant")]
    lr_schedule: String,
    #[arg(long, default_value_t = 1e-5)]
    lr_final: f64,
    #[arg(long, default_value_t = 10)]
    lr_step: usize,
    #[arg(long, default_value_t = 0.1)]
    lr_gamma: f64,
    /// Stop after this many epochs without a better validation loss (0: never).
    #[arg(long, default_value_t = 5)]
    patience: usize,
    /// Gaussian noise (this standard deviation) added to the encoder's input while training.
    #[arg(long, default_value_t = 0.0)]
    input_noise: f64,
    /// Device: auto, cpu or gpu.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Random seed (model initialisation, data split and order, sampling noise).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// CPU threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Run folder (default: runs/ARCH-DATASET-SEED).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Continue a run from its training checkpoint (e.g. runs/x/last.safetensors).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start the encoder from a classifier checkpoint written by `classify`.
    #[arg(long)]
    pretrained_encoder: Option<PathBuf>,
    /// Keep the (pre-trained) encoder's weights fixed.
    #[arg(long)]
    freeze_encoder: bool,
    /// After each epoch, print where the training steps' time went: per op family (matmul,
    /// conv, …, optimizer, and "other" for autograd and host code) and the slowest ops.
    /// On the GPU every op is waited for, so steps get slower while profiling.
    #[arg(long)]
    #[serde(default)]
    profile: bool,
}

/// Everything resolved from the flags.
struct Run {
    args: Args,
    dir: PathBuf,
    epochs: usize,
    setup: LossSetup,
    normalization: Normalization,
    train: Arc<Dataset>,
    val: Arc<Dataset>,
}

fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value.parse::<T>().map_err(|e| Error::Config(format!("--{flag}: {e}")))
}

fn load_data(args: &Args) -> Result<(Dataset, Dataset, Normalization)> {
    let kind: DatasetKind = parse("dataset", &args.dataset)?;
    let opts = data_load_options(kind, args.max_images, args.seed, args.center_crop, args.annotation_dir.clone());
    let ds = data::load(kind, args.data_dir.as_deref(), args.image_size, &opts)?;
    for s in &ds.skipped {
        eprintln!("skipped {}: {}", s.path.display(), s.reason);
    }
    let splits = ds.split(parse_split("--split", &args.split)?, args.seed)?;
    let normalization = parse_normalization("--normalize", &args.normalize, &splits.train)?;
    if splits.val.is_empty() {
        return Err(Error::Config(format!("--split {} leaves no validation images out of {}", args.split, ds.len())));
    }
    Ok((splits.train, splits.val, normalization))
}

fn setup_run(args: Args) -> Result<Run> {
    if args.batch_size == 0 {
        return Err(Error::Config("--batch-size must be at least 1".into()));
    }
    let _: DevicePreference = parse("device", &args.device)?;
    let (train, val, normalization) = load_data(&args)?;
    let recon: ReconLoss = parse("recon", &args.recon)?;
    let output: OutputActivation = parse("output", &args.output)?;
    if recon == ReconLoss::BceLogits && output != OutputActivation::Logits {
        return Err(Error::Config(format!(
            "--recon bce-logits works on raw logits: use --output logits, not {}",
            args.output
        )));
    }
    if recon != ReconLoss::BceLogits && output == OutputActivation::Logits {
        return Err(Error::Config(format!(
            "--recon {} needs --output sigmoid or tanh (raw logits are for bce-logits)",
            args.recon
        )));
    }
    let objective =
        objective_from_flags(&args.loss, args.beta, args.alpha, args.gamma, args.k1, train.len(), args.stratified)?;
    let setup = LossSetup { recon, output, objective, input_noise_std: args.input_noise };
    let dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/{}-{}-{}", args.arch, args.dataset, args.seed)));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io { path: dir.clone(), source: e })?;
    let epochs = args.epochs.unwrap_or(3);
    Ok(Run { args, dir, epochs, setup, normalization, train: Arc::new(train), val: Arc::new(val) })
}

fn lr_schedule(args: &Args, epochs: usize) -> Result<LrSchedule> {
    let s = match args.lr_schedule.as_str() {
        "constant" => LrSchedule::Constant { lr: args.lr },
        "linear" => LrSchedule::Linear { start: args.lr, end: args.lr_final, steps: epochs.saturating_sub(1).max(1) },
        "step" => LrSchedule::Step { lr: args.lr, gamma: args.lr_gamma, every: args.lr_step.max(1) },
        "cosine" => LrSchedule::Cosine { lr: args.lr, min_lr: args.lr_final, steps: epochs.saturating_sub(1).max(1) },
        other => {
            return Err(Error::Config(format!("--lr-schedule '{other}' (expected constant, linear, step or cosine)")))
        }
    };
    s.validate()?;
    Ok(s)
}

fn write_file(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::Io { path: path.to_path_buf(), source: e })
}

const CSV_HEADER: &str = "epoch,lr,seconds,train_loss,train_recon,train_kl,train_mi,train_tc,train_dwkl,val_loss,val_recon,val_kl,val_mi,val_tc,val_dwkl";

fn csv_fields(s: &StepStats) -> String {
    let o = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
    format!("{:.6},{:.6},{:.6},{},{},{}", s.loss, s.recon, s.kl, o(s.mi), o(s.tc), o(s.dwkl))
}

fn describe(s: &StepStats) -> String {
    let mut out = format!("loss {:.3} (recon {:.3}, kl {:.3}", s.loss, s.recon, s.kl);
    if let (Some(mi), Some(tc), Some(dw)) = (s.mi, s.tc, s.dwkl) {
        out += &format!(", mi {mi:.3}, tc {tc:.3}, dwkl {dw:.3}");
    }
    out + ")"
}

/// A fixed batch of validation images for the reconstruction grid.
fn preview_batch(val: &Dataset, norm: &Normalization, n: usize) -> Result<Tensor> {
    let idx: Vec<usize> = (0..n.min(val.len())).collect();
    Ok(val.batch(&idx, norm)?.images)
}

/// Reconstruction grid (originals over reconstructions) and samples from N(0, I).
fn save_pictures(run: &Run, model: &Vae, preview: &Tensor, prior_z: &Tensor, epoch: usize) -> Result<()> {
    model.set_training(false);
    let result = no_grad(|| -> Result<()> {
        let shape = preview.shape().to_vec();
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
        let recon = run.setup.output.to_image(&model.forward(&Var::constant(preview.clone()))?.value())?;
        let originals = run.normalization.invert_tensor(preview)?;
        let recon = match run.setup.output {
            OutputActivation::Tanh => run.normalization.invert_tensor(&recon)?,
            _ => recon,
        };
        let rows = [originals.to_vec_f32(), recon.to_vec_f32()];
        vae::plot::save_rows(&run.dir.join(format!("recon_epoch{epoch:03}.png")), &[&rows[0], &rows[1]], n, c, h, w)?;
        let samples = run.setup.output.to_image(&model.decode(&Var::constant(prior_z.clone()))?.value())?;
        let samples = match run.setup.output {
            OutputActivation::Tanh => run.normalization.invert_tensor(&samples)?,
            _ => samples,
        };
        let k = prior_z.shape()[0];
        vae::plot::save_image_grid(
            &run.dir.join(format!("samples_epoch{epoch:03}.png")),
            &samples.to_vec_f32(),
            k,
            c,
            h,
            w,
            8,
        )?;
        Ok(())
    });
    model.set_training(true);
    result
}

fn save_loss_plot(run: &Run, history: &[(usize, StepStats, StepStats)]) -> Result<()> {
    let series = |name: &str, f: &dyn Fn(&(usize, StepStats, StepStats)) -> f64| {
        (name.to_string(), history.iter().map(|h| (h.0 as f64, f(h))).collect::<Vec<_>>())
    };
    let all = vec![
        series("train loss", &|h| h.1.loss),
        series("val loss", &|h| h.2.loss),
        series("val recon", &|h| h.2.recon),
        series("val kl", &|h| h.2.kl),
    ];
    vae::plot::save_line_plot(&run.dir.join("loss.png"), "loss per epoch", &all, "epoch", "loss")?;
    Ok(())
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run_main(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run_main(mut args: Args) -> Result<()> {
    // Resuming restores the run's own configuration; an explicit --epochs may extend it.
    let resume = args.resume.clone();
    if let Some(path) = &resume {
        let contents = nn::checkpoint::read_safetensors(path)?;
        let config = contents.metadata.get("config").cloned().unwrap_or_default();
        let mut saved: Args = serde_json::from_str(&config).map_err(|e| {
            Error::Config(format!("{}: the checkpoint's configuration is not a train run's: {e}", path.display()))
        })?;
        saved.epochs = args.epochs.or(saved.epochs);
        saved.resume = Some(path.clone());
        saved.run_dir = Some(path.parent().map(Path::to_path_buf).unwrap_or_default());
        args = saved;
    }
    vae::train::set_cpu_threads(args.threads)?;
    let run = setup_run(args)?;
    let args = &run.args;
    let device = Device::from_preference(parse("device", &args.device)?)?;
    let [n_img, c, h, w] = run.train.shape;
    let arch: Arch = parse("arch", &args.arch)?;
    let mut init = Init::new(args.seed);
    let model = Vae::new(ModelConfig { arch, input: [c, h, w], z_dim: args.z_dim }, &mut init)?;
    if let Some(path) = &args.pretrained_encoder {
        let report = load_model(path, &model, &LoadOptions::strict().only_prefix("encoder."))?;
        println!("loaded {} encoder tensors from {}", report.loaded.len(), path.display());
    }
    if args.freeze_encoder {
        let n = model.set_requires_grad_by_prefix("encoder.", false);
        println!("froze {n} encoder parameter tensors");
    }
    model.to_device(&device)?;
    let counts = model.parameter_counts();
    let schedule = lr_schedule(args, run.epochs)?;
    let mut optimizer = Adam::new(model.named_parameters(), AdamConfig::new(schedule.lr_at(0)))?;
    let mut early =
        EarlyStopping::new(if args.patience == 0 { usize::MAX } else { args.patience }, 0.0, MetricGoal::Minimize);
    let mut data_rng = Rng::new(args.seed ^ 0xDA7A);
    let mut noise_rng = Rng::new(args.seed ^ 0x0015E);
    let (mut start_epoch, mut skip_batches) = (0usize, 0usize);
    let mut history: Vec<(usize, StepStats, StepStats)> = vec![];
    let config_json = serde_json::to_string_pretty(args).map_err(|e| Error::Config(e.to_string()))?;

    if let Some(path) = &resume {
        let state = load_training_checkpoint(path, &model, &mut optimizer)?;
        start_epoch = state.epoch as usize;
        skip_batches = state.extra.get("batch_in_epoch").and_then(|v| v.parse().ok()).unwrap_or(0);
        data_rng = Rng::from_state(state.rng_state);
        if let Some(s) = state.extra.get("noise_rng").and_then(|v| serde_json::from_str::<[u64; 4]>(v).ok()) {
            noise_rng = Rng::from_state(s);
        }
        if let Some(s) = state.extra.get("early_stopping").and_then(|v| serde_json::from_str(v).ok()) {
            early = s;
        }
        if let Some(hist) =
            state.extra.get("history").and_then(|v| serde_json::from_str::<Vec<(usize, [f64; 6], [f64; 6])>>(v).ok())
        {
            history = hist.into_iter().map(|(e, a, b)| (e, from_array(a), from_array(b))).collect();
        }
        println!("resumed {} at epoch {}, batch {skip_batches}", path.display(), start_epoch + 1);
    } else {
        write_file(&run.dir.join("config.json"), &config_json)?;
        write_file(&run.dir.join("metrics.csv"), &format!("{CSV_HEADER}\n"))?;
    }
    println!(
        "{arch} on {} ({} train / {} val images, {c}×{h}×{w}), z = {}, {} parameters ({} trainable), CPU threads {}",
        args.dataset,
        n_img,
        run.val.len(),
        args.z_dim,
        counts.total,
        counts.trainable,
        rayon::current_num_threads()
    );
    println!("device: {}", device.describe());
    println!("run folder: {}", run.dir.display());

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // Ctrl-C only sets a flag: the loop saves a checkpoint at the next batch boundary.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    let preview = preview_batch(&run.val, &run.normalization, 8)?.to_device(&device)?;
    let prior_z =
        standard_normal(16, args.z_dim, tensor::DType::F32, &mut Rng::new(args.seed ^ 0x5A3)).to_device(&device)?;
    let val_batches: Vec<Tensor> = {
        let opts = BatchOptions {
            batch_size: args.batch_size,
            shuffle: false,
            drop_last: false,
            normalization: run.normalization.clone(),
        };
        Batches::new(run.val.clone(), &opts, &mut Rng::new(0))?
            .map(|b| b.images.to_device(&device))
            .collect::<tensor::Result<_>>()?
    };
    let batch_opts = BatchOptions {
        batch_size: args.batch_size,
        shuffle: true,
        drop_last: true,
        normalization: run.normalization.clone(),
    };
    let best_path = run.dir.join("best.safetensors");
    let last_path = run.dir.join("last.safetensors");

    for epoch in start_epoch..run.epochs {
        let lr = schedule.lr_at(epoch);
        optimizer.set_learning_rate(lr);
        let epoch_rng_state = data_rng.state();
        let batches = Batches::new(run.train.clone(), &batch_opts, &mut data_rng)?;
        let total = batches.len();
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, run.epochs));
        let started = Instant::now();
        let mut mean = StatsMean::default();
        let (mut step_time, mut steps) = (std::time::Duration::ZERO, 0usize);
        if args.profile {
            tensor::profile::reset();
            tensor::profile::set_enabled(true);
        }
        for (i, batch) in batches.enumerate() {
            if i < skip_batches {
                continue;
            }
            if interrupted.load(Ordering::SeqCst) {
                bar.abandon();
                let state = training_state(epoch, i, epoch_rng_state, &noise_rng, &early, &history, &config_json);
                save_training_checkpoint(&last_path, &model, &optimizer, &state)?;
                println!("interrupted: saved {} (resume with --resume {})", last_path.display(), last_path.display());
                std::process::exit(130);
            }
            let step_started = Instant::now();
            let x = batch.images.to_device(&device)?;
            let stats = match train_step(&model, &mut optimizer, &x, &run.setup, &mut noise_rng, (epoch + 1, i + 1)) {
                Ok(s) => s,
                Err(e @ Error::NonFinite { .. }) => {
                    bar.abandon();
                    let kept = if last_path.exists() {
                        format!("; the last good checkpoint is {}", last_path.display())
                    } else {
                        String::new()
                    };
                    return Err(Error::Config(format!("{e}{kept}")));
                }
                Err(e) => return Err(e),
            };
            step_time += step_started.elapsed();
            steps += 1;
            mean.add(&stats, batch.images.shape()[0]);
            bar.set_message(describe(&mean.mean()));
            bar.inc(1);
        }
        skip_batches = 0;
        bar.finish_and_clear();
        if args.profile {
            tensor::profile::set_enabled(false);
            let report = tensor::profile::snapshot();
            println!("profile of epoch {}'s {steps} training steps:", epoch + 1);
            print!("{}", report.table(step_time, steps));
            print!("{}", report.top_ops(10, steps));
        }
        let train_stats = mean.mean();
        let val_stats = evaluate(&model, val_batches.iter(), &run.setup, &mut Rng::new(args.seed ^ 0xE7A1))?;
        if let Some(what) = vae::train::non_finite_component(&val_stats) {
            return Err(Error::NonFinite { epoch: epoch + 1, step: total, what: format!("validation {what}") });
        }
        let seconds = started.elapsed().as_secs_f64();
        let decision = early.update(val_stats.loss);
        history.push((epoch + 1, train_stats, val_stats));
        append_csv(
            &run.dir.join("metrics.csv"),
            &format!("{},{lr:e},{seconds:.2},{},{}", epoch + 1, csv_fields(&train_stats), csv_fields(&val_stats)),
        )?;
        let state = training_state(epoch + 1, 0, data_rng.state(), &noise_rng, &early, &history, &config_json);
        save_training_checkpoint(&last_path, &model, &optimizer, &state)?;
        if decision.is_best {
            save_training_checkpoint(&best_path, &model, &optimizer, &state)?;
        }
        save_pictures(&run, &model, &preview, &prior_z, epoch + 1)?;
        save_loss_plot(&run, &history)?;
        println!(
            "epoch {}/{}  train {}  val {}  lr {lr:.1e}  {seconds:.1} s{}",
            epoch + 1,
            run.epochs,
            describe(&train_stats),
            describe(&val_stats),
            if decision.is_best { "  [best]" } else { "" }
        );
        if decision.should_stop {
            println!("early stopping: no better validation loss for {} epochs", args.patience);
            break;
        }
    }
    println!("done: {}", run.dir.display());
    Ok(())
}

fn to_array(s: &StepStats) -> [f64; 6] {
    [s.loss, s.recon, s.kl, s.mi.unwrap_or(f64::NAN), s.tc.unwrap_or(f64::NAN), s.dwkl.unwrap_or(f64::NAN)]
}

fn from_array(a: [f64; 6]) -> StepStats {
    let opt = |v: f64| if v.is_nan() { None } else { Some(v) };
    StepStats { loss: a[0], recon: a[1], kl: a[2], mi: opt(a[3]), tc: opt(a[4]), dwkl: opt(a[5]) }
}

/// The position to resume from: `epoch` (0-based, the epoch to run next), the batch within it,
/// and the data generator's state at that epoch's start (so its shuffle is replayed).
fn training_state(
    epoch: usize,
    batch_in_epoch: usize,
    data_rng_state: [u64; 4],
    noise_rng: &Rng,
    early: &EarlyStopping,
    history: &[(usize, StepStats, StepStats)],
    config_json: &str,
) -> TrainingState {
    let mut extra = BTreeMap::new();
    extra.insert("batch_in_epoch".to_string(), batch_in_epoch.to_string());
    extra.insert("noise_rng".to_string(), serde_json::to_string(&noise_rng.state()).unwrap_or_default());
    extra.insert("early_stopping".to_string(), serde_json::to_string(early).unwrap_or_default());
    let hist: Vec<(usize, [f64; 6], [f64; 6])> =
        history.iter().map(|(e, a, b)| (*e, to_array(a), to_array(b))).collect();
    extra.insert("history".to_string(), serde_json::to_string(&hist).unwrap_or_default());
    TrainingState {
        epoch: epoch as u64,
        step: batch_in_epoch as u64,
        rng_state: data_rng_state,
        config_json: config_json.to_string(),
        extra,
    }
}

fn append_csv(path: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    writeln!(f, "{line}").map_err(|e| Error::Io { path: path.to_path_buf(), source: e })
}
