//! `train`: trains a VAE preset on a dataset and leaves a run folder to look at (see
//! `vae::runs` for its files and what they promise after a crash).
//!
//! With no flags: the `conv` preset on 20,000 procedurally generated dSprites images, a few
//! minutes on a 2-core CPU.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use autograd::{no_grad, Var};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use indicatif::{ProgressBar, ProgressStyle};
use nn::checkpoint::{load_model, load_training_checkpoint, save_training_checkpoint, LoadOptions, TrainingState};
use nn::optim::{Adam, AdamConfig, EarlyStopping, LrSchedule, MetricGoal, Optimizer};
use nn::{Init, Module};
use tensor::{Device, Rng, Tensor};
use vae::cli::TrainCli as Cli;
use vae::data::{BatchOptions, Batches, Dataset, Normalization};
use vae::error::{Error, Result};
use vae::loss::LossValues;
use vae::model::{ModelConfig, OutputActivation, Vae};
use vae::runs::{
    self, EpochMetrics, NewRunDir, RunConfig, BEST_CHECKPOINT, CONFIG_FILE, LAST_CHECKPOINT, METRICS_FILE,
};
use vae::train::{evaluate, standard_normal, train_step, LossSetup, StatsMean};

/// Large tensors are freed and re-allocated every step; caching them avoids re-faulting the
/// working set in from the OS each time (see tensor/src/cpu/caching_allocator.rs).
#[global_allocator]
static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator = tensor::cpu::caching_allocator::CachingAllocator;

/// The flags of [`RunConfig`] a resumed run takes from the command line.
const CHANGEABLE_ON_RESUME: [&str; 2] = ["epochs", "patience"];

/// The checkpoint's configuration, with the changeable flags given on the command line;
/// any other flag given with a different value than the checkpoint's is an error naming both.
fn resumed_config(checkpoint: &Path, saved: &str, given: &RunConfig, matches: &ArgMatches) -> Result<RunConfig> {
    let saved = RunConfig::from_json(saved).map_err(|e| {
        Error::Config(format!("{}: the checkpoint's configuration is not a train run's: {e}", checkpoint.display()))
    })?;
    let to_map = |c: &RunConfig| match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let mut merged = to_map(&saved);
    let mut given = given.clone();
    // Compare paths as stored: absolute.
    for path in [&mut given.data_dir, &mut given.annotation_dir, &mut given.pretrained_encoder].into_iter().flatten() {
        *path = std::path::absolute(&*path).unwrap_or_else(|_| path.clone());
    }
    let given = to_map(&given);
    let shown = |v: &serde_json::Value| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    for arg in Cli::command().get_arguments() {
        let id = arg.get_id().as_str();
        let (Some(old), Some(new)) = (merged.get(id).cloned(), given.get(id)) else { continue };
        if matches.value_source(id) != Some(ValueSource::CommandLine) || old == *new {
            continue;
        }
        if CHANGEABLE_ON_RESUME.contains(&id) {
            merged.insert(id.to_string(), new.clone());
            continue;
        }
        return Err(Error::Config(format!(
            "--{} {} differs from the run's {} ({}): a resumed run keeps its configuration; only --epochs, \
             --patience, --device, --threads and --profile may change",
            arg.get_long().unwrap_or(id),
            shown(new),
            shown(&old),
            checkpoint.display()
        )));
    }
    serde_json::from_value(serde_json::Value::Object(merged))
        .map_err(|e| Error::Config(format!("{}: the checkpoint's configuration: {e}", checkpoint.display())))
}

/// Where training continues from, and the records that go with it.
struct Resume {
    /// The epoch to run next (0-based) and the batch within it to start at.
    epoch: usize,
    batch: usize,
    data_rng: Rng,
    noise_rng: Rng,
    early: EarlyStopping,
    history: Vec<EpochMetrics>,
    /// The means of the batches of `epoch` already trained before the checkpoint.
    partial: StatsMean,
}

/// What a training checkpoint carries beyond the model and optimizer.
mod extra {
    pub const BATCH: &str = "batch_in_epoch";
    pub const NOISE_RNG: &str = "noise_rng";
    pub const EARLY_STOPPING: &str = "early_stopping";
    pub const HISTORY: &str = "history";
    pub const PARTIAL: &str = "epoch_partial_means";
}

fn json<T: serde::Serialize>(value: &T) -> String {
    // Plain numbers, options and structs of them: serialising cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// The position to resume from: `epoch` (0-based, the epoch to run next), the batch within it,
/// the data generator's state at that epoch's start (so its shuffle is replayed), and the
/// records a resumed run continues.
fn training_state(
    position: (usize, usize),
    data_rng_state: [u64; 4],
    noise_rng: &Rng,
    early: &EarlyStopping,
    history: &[EpochMetrics],
    partial: &StatsMean,
    config_json: &str,
) -> TrainingState {
    let extra = BTreeMap::from([
        (extra::BATCH.to_string(), position.1.to_string()),
        (extra::NOISE_RNG.to_string(), json(&noise_rng.state())),
        (extra::EARLY_STOPPING.to_string(), json(early)),
        (extra::HISTORY.to_string(), json(&history)),
        (extra::PARTIAL.to_string(), json(partial)),
    ]);
    TrainingState {
        epoch: position.0 as u64,
        step: position.1 as u64,
        rng_state: data_rng_state,
        config_json: config_json.to_string(),
        extra,
    }
}

/// Reads the records of a training checkpoint back; a record that is present but unreadable is
/// an error (never a silently empty history).
fn resume_from(path: &Path, state: TrainingState, patience: usize) -> Result<Resume> {
    fn parse<T: serde::de::DeserializeOwned>(path: &Path, state: &TrainingState, key: &str) -> Result<Option<T>> {
        state
            .extra
            .get(key)
            .map(|text| serde_json::from_str(text))
            .transpose()
            .map_err(|e| Error::Config(format!("{}: the checkpoint's {key} is not readable: {e}", path.display())))
    }
    let mut early = parse::<EarlyStopping>(path, &state, extra::EARLY_STOPPING)?
        .unwrap_or_else(|| EarlyStopping::new(patience, 0.0, MetricGoal::Minimize));
    early.patience = if patience == 0 { usize::MAX } else { patience };
    Ok(Resume {
        epoch: state.epoch as usize,
        batch: parse(path, &state, extra::BATCH)?.unwrap_or(0),
        data_rng: Rng::from_state(state.rng_state),
        noise_rng: Rng::from_state(
            parse(path, &state, extra::NOISE_RNG)?
                .ok_or_else(|| Error::Config(format!("{}: the checkpoint lacks its noise_rng", path.display())))?,
        ),
        early,
        history: parse(path, &state, extra::HISTORY)?.unwrap_or_default(),
        partial: parse(path, &state, extra::PARTIAL)?.unwrap_or_default(),
    })
}

/// Refuses a checkpoint whose position or records cannot belong to this run and its data (an
/// edited or foreign file): each message names the field and what this run allows.
fn check_resume(path: &Path, resume: &Resume, batches_per_epoch: usize, batch_size: usize) -> Result<()> {
    let bad = |field: &str, why: String| {
        Err(Error::Config(format!("--resume {}: the checkpoint's {field} {why}", path.display())))
    };
    if resume.batch >= batches_per_epoch {
        return bad(
            extra::BATCH,
            format!("is {}, but an epoch of this run's data has {batches_per_epoch} batches", resume.batch),
        );
    }
    let trained = resume.batch * batch_size;
    if resume.partial.images() != trained as f64 {
        return bad(
            extra::PARTIAL,
            format!(
                "average {} images, but {} batches of {batch_size} were trained in this epoch",
                resume.partial.images(),
                resume.batch
            ),
        );
    }
    // Checkpoints written before the history was kept carry none.
    let epochs: Vec<usize> = resume.history.iter().map(|row| row.epoch).collect();
    if !epochs.is_empty() && epochs != (1..=resume.epoch).collect::<Vec<_>>() {
        return bad(
            extra::HISTORY,
            format!("lists epochs {epochs:?}, but the checkpoint follows epoch {} (expected 1 to it)", resume.epoch),
        );
    }
    Ok(())
}

/// "loss 1.234 (recon 1.000, kl 0.234)", with the β-TCVAE terms when the run has them.
fn describe(s: &LossValues) -> String {
    let [(_, loss), components @ ..] = s.named();
    let parts: Vec<String> = components.iter().filter_map(|(name, v)| v.map(|v| format!("{name} {v:.3}"))).collect();
    format!("loss {:.3} ({})", loss.unwrap_or(f64::NAN), parts.join(", "))
}

/// Everything resolved before the first step.
struct Run {
    config: RunConfig,
    dir: PathBuf,
    setup: LossSetup,
    normalization: Normalization,
    train: Arc<Dataset>,
    val: Arc<Dataset>,
}

impl Run {
    fn last(&self) -> PathBuf {
        self.dir.join(LAST_CHECKPOINT)
    }

    /// A non-finite value stops the run; the message names the last good checkpoint, or says
    /// that none was written, in which case the same command starts the run again.
    fn non_finite_stop(&self, e: Error) -> Error {
        let Error::NonFinite { epoch, step, what, .. } = e else { return e };
        let kept = if self.last().exists() {
            format!("; the last good checkpoint is {}", self.last().display())
        } else {
            format!(
                "; no checkpoint was written yet, so the same command (with a lower --lr) starts the run again in {}",
                self.dir.display()
            )
        };
        Error::NonFinite { epoch, step, what, kept }
    }
}

fn load_data(config: &RunConfig, dir: PathBuf) -> Result<Run> {
    let ds =
        vae::data::load(config.dataset, config.data_dir.as_deref(), config.image_size, &config.data_load_options())?;
    let splits = ds.split(config.split_ratios()?, config.seed)?;
    if splits.val.is_empty() {
        return Err(Error::Config(format!("--split {} leaves no validation images out of {}", config.split, ds.len())));
    }
    if splits.train.len() < config.batch_size {
        return Err(Error::Config(format!(
            "--batch-size {} is larger than the {} training images: with the incomplete last batch dropped, \
             no step would run (use --batch-size {} or less, or more images)",
            config.batch_size,
            splits.train.len(),
            splits.train.len()
        )));
    }
    let normalization = config.normalization(&splits.train);
    let setup = config.loss_setup(splits.train.len());
    Ok(Run {
        config: config.clone(),
        dir,
        setup,
        normalization,
        train: Arc::new(splits.train),
        val: Arc::new(splits.val),
    })
}

/// The validation images of the reconstruction grid: with labels, the classes in turn (so every
/// dSprites shape shows), else the first `n`.
fn preview_indices(val: &Dataset, n: usize) -> Vec<usize> {
    let Some(labels) = &val.labels else { return (0..n.min(val.len())).collect() };
    let mut classes: Vec<u32> = labels.clone();
    classes.sort_unstable();
    classes.dedup();
    let mut queues: Vec<std::collections::VecDeque<usize>> =
        classes.iter().map(|c| (0..labels.len()).filter(|&i| labels[i] == *c).collect()).collect();
    let mut picked = vec![];
    while picked.len() < n.min(val.len()) {
        for queue in &mut queues {
            if let Some(i) = queue.pop_front() {
                picked.push(i);
            }
        }
    }
    picked.truncate(n);
    picked
}

/// Reconstruction grid (originals over reconstructions) and samples from N(0, I).
fn save_pictures(run: &Run, model: &Vae, preview: &Tensor, prior_z: &Tensor, epoch: usize) -> Result<()> {
    model.set_training(false);
    let result = no_grad(|| -> Result<()> {
        let [n, c, h, w]: [usize; 4] = preview.shape().try_into().map_err(|_| Error::Config("preview shape".into()))?;
        let shown = |raw: &Tensor| -> Result<Tensor> {
            let image = run.setup.output.to_image(raw)?;
            Ok(match run.setup.output {
                OutputActivation::Tanh => run.normalization.invert_tensor(&image)?,
                _ => image,
            })
        };
        let recon = shown(&model.forward(&Var::constant(preview.clone()))?.value())?;
        let originals = run.normalization.invert_tensor(preview)?;
        let rows = [originals.to_vec::<f32>()?, recon.to_vec::<f32>()?];
        vae::plot::save_rows(&run.dir.join(format!("recon_epoch{epoch:03}.png")), &[&rows[0], &rows[1]], n, c, h, w)?;
        let samples = shown(&model.decode(&Var::constant(prior_z.clone()))?.value())?;
        let k = prior_z.shape()[0];
        let path = run.dir.join(format!("samples_epoch{epoch:03}.png"));
        vae::plot::save_image_grid(&path, &samples.to_vec::<f32>()?, k, c, h, w, 8)?;
        Ok(())
    });
    model.set_training(true);
    result
}

fn save_loss_plot(run: &Run, history: &[EpochMetrics]) -> Result<()> {
    if let Some(img) = vae::report::loss_plot(history)? {
        vae::plot::save_png_atomic(&img, &run.dir.join("loss.png"))?;
    }
    Ok(())
}

fn main() {
    let runtime_dir = vae::cli::RuntimeDir::for_this_process();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = run_main(cli, &matches);
    drop(runtime_dir);
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// The run's configuration and folder: the command line's for a new run, the checkpoint's
/// (with the changeable flags applied) for `--resume`.
fn configure(cli: &Cli, matches: &ArgMatches) -> Result<(RunConfig, PathBuf)> {
    let Some(checkpoint) = &cli.resume else {
        let mut config = cli.config.clone();
        config.check()?;
        let dir = cli
            .run_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("runs/{}-{}-{}", config.arch, config.dataset, config.seed)));
        if let NewRunDir::Restarted(stale) = runs::prepare_new_run_dir(&dir)? {
            println!(
                "{} held a run that stopped before its first checkpoint ({} only): starting it again",
                dir.display(),
                stale.join(", ")
            );
        }
        return Ok((config, dir));
    };
    runs::check_resumable(checkpoint)?;
    let contents = nn::checkpoint::read_safetensors(checkpoint)?;
    let saved = contents.metadata.get("config").ok_or_else(|| {
        Error::Config(format!("--resume {}: not a training checkpoint (no run configuration)", checkpoint.display()))
    })?;
    let mut config = resumed_config(checkpoint, saved, &cli.config, matches)?;
    config.check()?;
    let dir = runs::run_dir_of(checkpoint);
    if let Some(given) = &cli.run_dir {
        let same = |p: &Path| std::fs::canonicalize(p).ok();
        if same(given) != same(&dir) {
            return Err(Error::Config(format!(
                "--run-dir {} differs from the folder of --resume {}: a resumed run stays in its folder",
                given.display(),
                checkpoint.display()
            )));
        }
    }
    runs::remove_temporaries(&dir)?;
    Ok((config, dir))
}

fn run_main(cli: Cli, matches: &ArgMatches) -> Result<()> {
    let (config, dir) = configure(&cli, matches)?;
    let device = cli.compute.open()?;
    let run = load_data(&config, dir)?;
    let config = &run.config;
    let [n_img, c, h, w] = run.train.shape;
    let model = Vae::new(
        ModelConfig { arch: config.arch, input: [c, h, w], z_dim: config.z_dim },
        &mut Init::new(config.seed),
    )?;
    if let Some(path) = &config.pretrained_encoder {
        if cli.resume.is_none() {
            let report = load_model(path, &model, &LoadOptions::strict().only_prefix("encoder."))?;
            println!("loaded {} encoder tensors from {}", report.loaded.len(), path.display());
        }
    }
    if config.freeze_encoder {
        let n = model.set_requires_grad_by_prefix("encoder.", false);
        println!("froze {n} encoder parameter tensors");
    }
    model.to_device(&device)?;
    let counts = model.parameter_counts();
    let schedule: LrSchedule = config.lr_schedule()?;
    let mut optimizer = Adam::new(model.named_parameters(), AdamConfig::new(schedule.lr_at(0)))?;
    let config_json = config.to_json();

    let mut resume = match &cli.resume {
        Some(path) => {
            let state = load_training_checkpoint(path, &model, &mut optimizer)?;
            let resume = resume_from(path, state, config.patience)?;
            check_resume(path, &resume, Batches::count(n_img, config.batch_size, true), config.batch_size)?;
            if resume.epoch >= config.epochs {
                return Err(Error::Config(format!(
                    "--resume {}: the run has finished its {} epochs; pass --epochs with more than {} to train it further",
                    path.display(),
                    resume.epoch,
                    resume.epoch
                )));
            }
            println!("resumed {} at epoch {}, batch {}", path.display(), resume.epoch + 1, resume.batch);
            resume
        }
        None => {
            runs::write_file(&run.dir.join(CONFIG_FILE), config_json.as_bytes())?;
            Resume {
                epoch: 0,
                batch: 0,
                data_rng: Rng::new(config.seed ^ 0xDA7A),
                noise_rng: Rng::new(config.seed ^ 0x0015E),
                early: EarlyStopping::new(
                    if config.patience == 0 { usize::MAX } else { config.patience },
                    0.0,
                    MetricGoal::Minimize,
                ),
                history: vec![],
                partial: StatsMean::default(),
            }
        }
    };
    // The checkpoint's history is the record: metrics.csv is rewritten from it (after a crash it
    // may lag one epoch behind), and so is the loss plot.
    runs::write_metrics(&run.dir.join(METRICS_FILE), &resume.history)?;
    println!(
        "{} on {} ({} train / {} val images, {c}×{h}×{w}), z = {}, {} parameters ({} trainable), CPU threads {}",
        config.arch,
        config.dataset,
        n_img,
        run.val.len(),
        config.z_dim,
        counts.total,
        counts.trainable,
        rayon::current_num_threads()
    );
    println!("device: {}", device.describe());
    println!("run folder: {}", run.dir.display());
    let invocation = vae::provenance::Invocation::now(resume.epoch + 1, device.describe());
    vae::provenance::record_invocation(&run.dir, counts.total, counts.trainable, invocation, cli.resume.is_some())?;

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        // Ctrl-C only sets a flag: the loop saves a checkpoint at the next batch boundary.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    let preview = run.val.batch(&preview_indices(&run.val, 8), &run.normalization)?.images.to_device(&device)?;
    let prior_z =
        standard_normal(16, config.z_dim, tensor::DType::F32, &mut Rng::new(config.seed ^ 0x5A3)).to_device(&device)?;
    let val_batches: Vec<Tensor> = {
        let opts = BatchOptions {
            batch_size: config.batch_size,
            shuffle: false,
            drop_last: false,
            normalization: run.normalization.clone(),
        };
        Batches::new(run.val.clone(), &opts, &mut Rng::new(0))?
            .map(|b| b.images.to_device(&device))
            .collect::<tensor::Result<_>>()?
    };
    let batch_opts = BatchOptions {
        batch_size: config.batch_size,
        shuffle: true,
        drop_last: true,
        normalization: run.normalization.clone(),
    };

    for epoch in resume.epoch..config.epochs {
        let lr = schedule.lr_at(epoch);
        optimizer.set_learning_rate(lr);
        let epoch_rng_state = resume.data_rng.state();
        let batches = Batches::new(run.train.clone(), &batch_opts, &mut resume.data_rng)?;
        let total = batches.len();
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, config.epochs));
        let started = Instant::now();
        let mut mean = std::mem::take(&mut resume.partial);
        let (mut step_time, mut steps) = (std::time::Duration::ZERO, 0usize);
        // What the GPU was asked to do over the epoch's steps (launches, buffers, transfers),
        // counted only when profiling.
        let gpu_counters = || match &device {
            Device::Gpu(g) if cli.profile => Some(g.context().counters()),
            _ => None,
        };
        let mut gpu_counted = tensor::profile::GpuCounters::ZERO;
        if cli.profile {
            tensor::profile::reset();
            tensor::profile::set_enabled(true);
        }
        let skip = std::mem::take(&mut resume.batch);
        bar.inc(skip as u64);
        for (i, batch) in batches.enumerate().skip(skip) {
            if interrupted.load(Ordering::SeqCst) {
                bar.abandon();
                let state = training_state(
                    (epoch, i),
                    epoch_rng_state,
                    &resume.noise_rng,
                    &resume.early,
                    &resume.history,
                    &mean,
                    &config_json,
                );
                save_training_checkpoint(&run.last(), &model, &optimizer, &state)?;
                println!("interrupted: saved {} (resume with --resume {})", run.last().display(), run.last().display());
                std::process::exit(130);
            }
            let step_started = Instant::now();
            let counted_before = gpu_counters();
            let x = batch.images.to_device(&device)?;
            let stats =
                match train_step(&model, &mut optimizer, &x, &run.setup, &mut resume.noise_rng, (epoch + 1, i + 1)) {
                    Ok(s) => s,
                    Err(e @ Error::NonFinite { .. }) => {
                        bar.abandon();
                        return Err(run.non_finite_stop(e));
                    }
                    Err(e) => return Err(e),
                };
            step_time += step_started.elapsed();
            if let (Some(after), Some(before)) = (gpu_counters(), counted_before) {
                gpu_counted = gpu_counted.plus(&after.since(&before));
            }
            steps += 1;
            mean.add(&stats, batch.images.shape()[0]);
            bar.set_message(describe(&mean.mean()));
            bar.inc(1);
        }
        bar.finish_and_clear();
        if cli.profile {
            tensor::profile::set_enabled(false);
            let report = tensor::profile::snapshot();
            println!("profile of epoch {}'s {steps} training steps:", epoch + 1);
            print!("{}", report.table(step_time, steps));
            print!("{}", report.top_ops(10, steps));
            if let Device::Gpu(_) = device {
                println!("GPU work per step:");
                print!("{}", report.gpu_table(&gpu_counted, steps));
            }
        }
        let train_stats = mean.mean();
        let val_stats = evaluate(&model, val_batches.iter(), &run.setup, &mut Rng::new(config.seed ^ 0xE7A1))?;
        if let Some(what) = val_stats.first_non_finite() {
            let e = Error::NonFinite {
                epoch: epoch + 1,
                step: total,
                what: format!("validation {what}"),
                kept: String::new(),
            };
            return Err(run.non_finite_stop(e));
        }
        let seconds = started.elapsed().as_secs_f64();
        let decision = resume.early.update(val_stats.loss);
        resume.history.push(EpochMetrics::new(epoch + 1, lr, seconds, &train_stats, &val_stats));
        // The order keeps the folder consistent at every instant (see vae::runs).
        let state = training_state(
            (epoch + 1, 0),
            resume.data_rng.state(),
            &resume.noise_rng,
            &resume.early,
            &resume.history,
            &StatsMean::default(),
            &config_json,
        );
        if decision.is_best {
            save_training_checkpoint(&run.dir.join(BEST_CHECKPOINT), &model, &optimizer, &state)?;
        }
        save_training_checkpoint(&run.last(), &model, &optimizer, &state)?;
        runs::write_metrics(&run.dir.join(METRICS_FILE), &resume.history)?;
        save_pictures(&run, &model, &preview, &prior_z, epoch + 1)?;
        save_loss_plot(&run, &resume.history)?;
        println!(
            "epoch {}/{}  train {}  val {}  lr {lr:.1e}  {seconds:.1} s{}",
            epoch + 1,
            config.epochs,
            describe(&train_stats),
            describe(&val_stats),
            if decision.is_best { "  [best]" } else { "" }
        );
        if decision.should_stop {
            println!("early stopping: no better validation loss for {} epochs", config.patience);
            break;
        }
    }
    let report = vae::report::write_report(&run.dir)?;
    println!("done: {} (report: {})", run.dir.display(), report.display());
    Ok(())
}
