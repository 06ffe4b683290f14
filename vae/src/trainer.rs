//! The training loop of a run: what the `train` binary does once its flags are parsed.
//!
//! [`configure`] turns the command line into a run configuration and folder (for `--resume`,
//! the checkpoint's configuration with the flags a resumed run may change). [`Trainer::new`]
//! loads and splits the data, builds the model and optimizer, and either writes the new run's
//! `config.json` or restores a checkpoint's [`Progress`]. [`Trainer::run`] then trains epoch by
//! epoch — `train::train_step` per batch, `train::evaluate` on the validation split — and after
//! each epoch writes, in the order `vae::runs` documents, the checkpoints, `metrics.csv`, the
//! pictures and the loss curve. A stop request (Ctrl-C) is honoured at the next batch boundary
//! with a checkpoint that resumes mid-epoch; a non-finite value stops the run with the last
//! good checkpoint kept.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autograd::{no_grad, Var};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};
use indicatif::{ProgressBar, ProgressStyle};
use nn::checkpoint::{load_model, load_training_checkpoint, save_training_checkpoint, LoadOptions, TrainingState};
use nn::optim::{Adam, AdamConfig, EarlyStopping, LrSchedule, MetricGoal, Optimizer};
use nn::Module;
use tensor::{Device, Rng, Tensor};

use crate::cli::TrainCli;
use crate::data::{BatchOptions, Batches, Dataset, Normalization};
use crate::error::{Error, Result};
use crate::loss::LossValues;
use crate::model::Vae;
use crate::runs::{
    self, EpochMetrics, NewRunDir, RunConfig, BEST_CHECKPOINT, CONFIG_FILE, LAST_CHECKPOINT, METRICS_FILE,
};
use crate::streams::Stream;
use crate::train::{evaluate, standard_normal, train_step, LossSetup, StatsMean};

/// The flags of [`RunConfig`] a resumed run takes from the command line.
const CHANGEABLE_ON_RESUME: [&str; 2] = ["epochs", "patience"];

/// The run's configuration and folder: the command line's for a new run, the checkpoint's
/// (with the changeable flags applied) for `--resume`. `matches` tells which flags were given.
pub fn configure(cli: &TrainCli, matches: &ArgMatches) -> Result<(RunConfig, PathBuf)> {
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
    for arg in TrainCli::command().get_arguments() {
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

/// Where training stands, and the records that go with it: what a training checkpoint carries
/// beyond the model and the optimizer, so that a resumed run continues exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// The epoch to run next (0-based).
    pub epoch: usize,
    /// The batch within that epoch to start at (0 at an epoch boundary).
    pub batch: usize,
    /// The data generator's state at the start of `epoch`, so that its shuffle is replayed.
    pub data_rng: Rng,
    /// The generator of ε (and input noise), where it stands.
    pub noise_rng: Rng,
    /// The early-stopping counter.
    pub early: EarlyStopping,
    /// One row per finished epoch.
    pub history: Vec<EpochMetrics>,
    /// The means of the batches of `epoch` trained so far.
    pub partial: StatsMean,
}

/// The keys of [`Progress`]'s fields in a checkpoint's metadata (epoch and data generator have
/// fields of their own in [`TrainingState`]).
mod key {
    pub const BATCH: &str = "batch_in_epoch";
    pub const NOISE_RNG: &str = "noise_rng";
    pub const EARLY_STOPPING: &str = "early_stopping";
    pub const HISTORY: &str = "history";
    pub const PARTIAL: &str = "epoch_partial_means";
}

impl Progress {
    /// A new run's: nothing trained, the generators seeded from the run's seed.
    pub fn start(config: &RunConfig) -> Progress {
        Progress {
            epoch: 0,
            batch: 0,
            data_rng: Stream::TrainingOrder.rng(config.seed),
            noise_rng: Stream::TrainingNoise.rng(config.seed),
            early: EarlyStopping::new(patience_of(config.patience), 0.0, MetricGoal::Minimize),
            history: vec![],
            partial: StatsMean::default(),
        }
    }

    /// The checkpoint form, with the run's configuration.
    pub fn to_state(&self, config_json: &str) -> TrainingState {
        fn json<T: serde::Serialize>(value: &T) -> String {
            // Plain numbers, options and structs of them: serialising cannot fail.
            serde_json::to_string(value).unwrap_or_default()
        }
        let extra = BTreeMap::from([
            (key::BATCH.to_string(), self.batch.to_string()),
            (key::NOISE_RNG.to_string(), json(&self.noise_rng.state())),
            (key::EARLY_STOPPING.to_string(), json(&self.early)),
            (key::HISTORY.to_string(), json(&self.history)),
            (key::PARTIAL.to_string(), json(&self.partial)),
        ]);
        TrainingState {
            epoch: self.epoch as u64,
            step: self.batch as u64,
            rng_state: self.data_rng.state(),
            config_json: config_json.to_string(),
            extra,
        }
    }

    /// Reads a checkpoint's progress back (`path` names it in errors), with the run's current
    /// `--patience`. A record that is present but unreadable is an error, never a silently
    /// empty history; records older checkpoints lack start empty.
    pub fn from_state(path: &Path, state: &TrainingState, patience: usize) -> Result<Progress> {
        fn parse<T: serde::de::DeserializeOwned>(path: &Path, state: &TrainingState, key: &str) -> Result<Option<T>> {
            state
                .extra
                .get(key)
                .map(|text| serde_json::from_str(text))
                .transpose()
                .map_err(|e| Error::Config(format!("{}: the checkpoint's {key} is not readable: {e}", path.display())))
        }
        let mut early = parse::<EarlyStopping>(path, state, key::EARLY_STOPPING)?
            .unwrap_or_else(|| EarlyStopping::new(patience, 0.0, MetricGoal::Minimize));
        early.patience = patience_of(patience);
        let noise_rng = parse(path, state, key::NOISE_RNG)?
            .ok_or_else(|| Error::Config(format!("{}: the checkpoint lacks its {}", path.display(), key::NOISE_RNG)))?;
        Ok(Progress {
            epoch: state.epoch as usize,
            batch: parse(path, state, key::BATCH)?.unwrap_or(0),
            data_rng: Rng::from_state(state.rng_state),
            noise_rng: Rng::from_state(noise_rng),
            early,
            history: parse(path, state, key::HISTORY)?.unwrap_or_default(),
            partial: parse(path, state, key::PARTIAL)?.unwrap_or_default(),
        })
    }

    /// Refuses progress that cannot belong to a run whose epochs have `batches_per_epoch`
    /// batches of `batch_size` (an edited or foreign checkpoint at `path`): each message names
    /// the field and what this run allows.
    pub fn check_fits(&self, path: &Path, batches_per_epoch: usize, batch_size: usize) -> Result<()> {
        let bad = |field: &str, why: String| {
            Err(Error::Config(format!("--resume {}: the checkpoint's {field} {why}", path.display())))
        };
        if self.batch >= batches_per_epoch {
            return bad(
                key::BATCH,
                format!("is {}, but an epoch of this run's data has {batches_per_epoch} batches", self.batch),
            );
        }
        let trained = self.batch * batch_size;
        if self.partial.images() != trained as f64 {
            return bad(
                key::PARTIAL,
                format!(
                    "average {} images, but {} batches of {batch_size} were trained in this epoch",
                    self.partial.images(),
                    self.batch
                ),
            );
        }
        // Checkpoints written before the history was kept carry none.
        let epochs: Vec<usize> = self.history.iter().map(|row| row.epoch).collect();
        if !epochs.is_empty() && epochs != (1..=self.epoch).collect::<Vec<_>>() {
            return bad(
                key::HISTORY,
                format!("lists epochs {epochs:?}, but the checkpoint follows epoch {} (expected 1 to it)", self.epoch),
            );
        }
        Ok(())
    }
}

/// Whether the run in `dir` has finished training, read from its last checkpoint: it follows
/// the run's last epoch, or early stopping ended the run there (the decision replayed on the
/// checkpoint's history). `false` when there is no checkpoint yet. What a scheduler asks before
/// resuming a run whose process may have died after its last epoch but before saying so.
pub fn training_finished(dir: &Path) -> Result<bool> {
    let path = dir.join(LAST_CHECKPOINT);
    if !path.is_file() {
        return Ok(false);
    }
    let state = nn::checkpoint::read_training_state(&path)?;
    let config = RunConfig::from_json(&state.config_json).map_err(|e| {
        Error::Config(format!("{}: the checkpoint's configuration is not a train run's: {e}", path.display()))
    })?;
    let progress = Progress::from_state(&path, &state, config.patience)?;
    if progress.batch != 0 {
        return Ok(false);
    }
    let mut early = EarlyStopping::new(patience_of(config.patience), 0.0, MetricGoal::Minimize);
    let stopped_early = progress.history.iter().any(|row| early.update(row.val.loss).should_stop);
    Ok(progress.epoch >= config.epochs || stopped_early)
}

/// `--patience 0` means never stop early.
fn patience_of(patience: usize) -> usize {
    if patience == 0 {
        usize::MAX
    } else {
        patience
    }
}

/// The run's training and validation splits (as `RunConfig::load_splits` cuts them for every
/// command) and their normalisation, refused when either split leaves nothing to do.
fn training_splits(config: &RunConfig) -> Result<(Dataset, Dataset, Normalization)> {
    let (splits, normalization) = config.load_splits()?;
    if splits.val.is_empty() {
        let total = splits.train.len() + splits.val.len() + splits.test.len();
        return Err(Error::Config(format!("--split {} leaves no validation images out of {total}", config.split)));
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
    Ok((splits.train, splits.val, normalization))
}

/// How [`Trainer::run`] ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Finished {
    /// Every epoch ran, or early stopping ended the run; the run's report was written.
    Completed {
        /// The run's `report.html`.
        report: PathBuf,
    },
    /// A stop was requested; training resumes from this checkpoint.
    Interrupted {
        /// The mid-epoch checkpoint just written.
        checkpoint: PathBuf,
    },
}

/// What one epoch's training steps left behind.
struct EpochTrained {
    /// The mean of the loss values of the epoch's batches (those of a resumed epoch included).
    train: LossValues,
    /// The batches in an epoch.
    batches: usize,
    /// The steps this invocation ran, and their time (data loading excluded).
    steps: usize,
    step_time: Duration,
    /// What the GPU was asked to do over those steps; counted only when profiling on a GPU.
    gpu_counted: tensor::profile::GpuCounters,
}

/// A run ready to train: data, model, optimizer and where training stands.
pub struct Trainer {
    config: RunConfig,
    config_json: String,
    dir: PathBuf,
    device: Device,
    setup: LossSetup,
    normalization: Normalization,
    train: Arc<Dataset>,
    val: Arc<Dataset>,
    model: Vae,
    optimizer: Adam,
    schedule: LrSchedule,
    progress: Progress,
    /// The run continues from a checkpoint (its provenance gains an invocation).
    resumed: bool,
    /// Print where each epoch's step time went.
    profile: bool,
}

impl Trainer {
    /// Loads the data, builds the model (loading and freezing a pre-trained encoder if the
    /// configuration says so) and the optimizer on `device`, and starts the run in `dir`: from
    /// the checkpoint `resume` if given, else afresh, writing `config.json`. Every check of the
    /// data and the checkpoint happens here, before the first step.
    pub fn new(
        config: RunConfig,
        dir: PathBuf,
        device: Device,
        resume: Option<&Path>,
        profile: bool,
    ) -> Result<Trainer> {
        let (train, val, normalization) = training_splits(&config)?;
        let setup = config.loss_setup(train.len());
        let [_, c, h, w] = train.shape;
        let model = config.new_model([c, h, w])?;
        if let (Some(path), None) = (&config.pretrained_encoder, resume) {
            let report = load_model(path, &model, &LoadOptions::strict().only_prefix("encoder."))?;
            println!("loaded {} encoder tensors from {}", report.loaded.len(), path.display());
        }
        if config.freeze_encoder {
            let n = model.set_requires_grad_by_prefix("encoder.", false);
            println!("froze {n} encoder parameter tensors");
        }
        model.to_device(&device)?;
        let schedule = config.lr_schedule()?;
        let mut optimizer = Adam::new(model.named_parameters(), AdamConfig::new(schedule.lr_at(0)))?;
        let config_json = config.to_json();
        let progress = match resume {
            Some(path) => {
                let state = load_training_checkpoint(path, &model, &mut optimizer)?;
                let progress = Progress::from_state(path, &state, config.patience)?;
                progress.check_fits(path, Batches::count(train.len(), config.batch_size, true), config.batch_size)?;
                progress
            }
            None => {
                runs::write_file(&dir.join(CONFIG_FILE), config_json.as_bytes())?;
                Progress::start(&config)
            }
        };
        let trainer = Trainer {
            config,
            config_json,
            dir,
            device,
            setup,
            normalization,
            train: Arc::new(train),
            val: Arc::new(val),
            model,
            optimizer,
            schedule,
            progress,
            resumed: resume.is_some(),
            profile,
        };
        if let Some(path) = resume {
            let progress = &trainer.progress;
            if progress.epoch >= trainer.config.epochs {
                // Killed after its last checkpoint but before the rest of its folder, the run is
                // still refused: the folder is made whole first, as a resumed run's is.
                trainer.complete_finished_folder()?;
                return Err(Error::Config(format!(
                    "--resume {}: the run has finished its {} epochs; pass --epochs with more than {} to train it further",
                    path.display(),
                    progress.epoch,
                    progress.epoch
                )));
            }
            println!("resumed {} at epoch {}, batch {}", path.display(), progress.epoch + 1, progress.batch);
        }
        Ok(trainer)
    }

    /// What a finished run writes after its last checkpoint: the last row of metrics.csv, the
    /// last epoch's pictures (from the checkpoint's weights, which made them), the loss plot
    /// and report.html, each written again only where a kill left it missing or behind.
    fn complete_finished_folder(&self) -> Result<()> {
        runs::write_metrics(&self.dir.join(METRICS_FILE), &self.progress.history)?;
        let epoch = self.progress.epoch;
        let pictures = [format!("recon_epoch{epoch:03}.png"), format!("samples_epoch{epoch:03}.png")];
        if epoch > 0 && !pictures.iter().all(|p| self.dir.join(p).is_file()) {
            Pictures::new(self)?.save(self, epoch)?;
        }
        if let Some(img) = crate::tools::report::loss_plot(&self.progress.history)? {
            crate::plot::save_png_atomic(&img, &self.dir.join("loss.png"))?;
        }
        crate::tools::report::write_report(&self.dir)?;
        Ok(())
    }

    /// Trains the remaining epochs, writing the run folder as it goes; `stop` is polled before
    /// every batch.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<Finished> {
        // The checkpoint's history is the record: metrics.csv is rewritten from it (after a
        // crash it may lag one epoch behind), and so is the loss plot.
        runs::write_metrics(&self.dir.join(METRICS_FILE), &self.progress.history)?;
        let counts = self.model.parameter_counts();
        let [_, c, h, w] = self.train.shape;
        println!(
            "{} on {} ({} train / {} val images, {c}×{h}×{w}), z = {}, {} parameters ({} trainable), CPU threads {}",
            self.config.arch,
            self.config.dataset,
            self.train.len(),
            self.val.len(),
            self.config.z_dim,
            counts.total,
            counts.trainable,
            rayon::current_num_threads()
        );
        println!("device: {}", self.device.describe());
        println!("run folder: {}", self.dir.display());
        let invocation = crate::provenance::Invocation {
            kernel_choices: crate::provenance::kernel_choices(&self.device),
            ..crate::provenance::Invocation::now(self.progress.epoch + 1, self.device.describe())
        };
        crate::provenance::record_invocation(&self.dir, counts.total, counts.trainable, invocation, self.resumed)?;

        let pictures = Pictures::new(self)?;
        let val_batches = self.validation_batches()?;
        for epoch in self.progress.epoch..self.config.epochs {
            let lr = self.schedule.lr_at(epoch);
            self.optimizer.set_learning_rate(lr);
            let started = Instant::now();
            let Some(trained) = self.train_epoch(epoch, stop)? else {
                return Ok(Finished::Interrupted { checkpoint: self.last() });
            };
            if self.profile {
                self.print_profile(epoch, &trained);
            }
            let train = trained.train;
            let val = evaluate(
                &self.model,
                val_batches.iter(),
                &self.setup,
                &mut Stream::EvaluationNoise.rng(self.config.seed),
            )?;
            if let Some(what) = val.non_finite_terms() {
                let e = Error::NonFinite {
                    epoch: epoch + 1,
                    step: trained.batches,
                    what: format!("validation {what}"),
                    kept: String::new(),
                };
                return Err(self.non_finite_stop(e));
            }
            let seconds = started.elapsed().as_secs_f64();
            let decision = self.progress.early.update(val.loss);
            self.progress.history.push(EpochMetrics::new(epoch + 1, lr, seconds, &train, &val));
            self.progress.epoch = epoch + 1;
            self.progress.batch = 0;
            self.progress.partial = StatsMean::default();
            // The order keeps the folder consistent at every instant (see vae::runs).
            let state = self.progress.to_state(&self.config_json);
            if decision.is_best {
                save_training_checkpoint(&self.dir.join(BEST_CHECKPOINT), &self.model, &self.optimizer, &state)?;
            }
            save_training_checkpoint(&self.last(), &self.model, &self.optimizer, &state)?;
            runs::write_metrics(&self.dir.join(METRICS_FILE), &self.progress.history)?;
            crate::provenance::record_kernel_choices(&self.dir, crate::provenance::kernel_choices(&self.device))?;
            pictures.save(self, epoch + 1)?;
            if let Some(img) = crate::tools::report::loss_plot(&self.progress.history)? {
                crate::plot::save_png_atomic(&img, &self.dir.join("loss.png"))?;
            }
            println!(
                "epoch {}/{}  train {}  val {}  lr {lr:.1e}  {seconds:.1} s{}",
                epoch + 1,
                self.config.epochs,
                describe(&train),
                describe(&val),
                if decision.is_best { "  [best]" } else { "" }
            );
            if let Some(recon) = stalled_validation(&self.progress.history) {
                eprintln!(
                    "warning: the validation reconstruction loss is {recon} in each of epochs {}–{}, to the last \
                     digit: the decoder's output no longer changes, so the model is not learning (a saturated \
                     output, as tanh's at ±1, passes no gradient; a lower --lr may keep it out of saturation)",
                    epoch + 2 - STALLED_EPOCHS,
                    epoch + 1
                );
            }
            if decision.should_stop {
                println!("early stopping: no better validation loss for {} epochs", self.config.patience);
                break;
            }
        }
        let report = crate::tools::report::write_report(&self.dir)?;
        Ok(Finished::Completed { report })
    }

    /// The training steps of one epoch (from the checkpoint's batch when resuming mid-epoch).
    /// `progress.data_rng` moves on to the next epoch's state; on a stop request a mid-epoch
    /// checkpoint is written that replays this epoch's shuffle from its start, and `None` returned.
    fn train_epoch(&mut self, epoch: usize, stop: &AtomicBool) -> Result<Option<EpochTrained>> {
        let batch_opts = BatchOptions {
            batch_size: self.config.batch_size,
            shuffle: true,
            drop_last: true,
            normalization: self.normalization.clone(),
        };
        let epoch_start_rng = self.progress.data_rng.clone();
        let batches = Batches::new(self.train.clone(), &batch_opts, &mut self.progress.data_rng)?;
        let total = batches.len();
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, self.config.epochs));
        if self.profile {
            tensor::profile::reset();
            tensor::profile::set_enabled(true);
        }
        let (mut step_time, mut steps) = (Duration::ZERO, 0usize);
        let gpu_counters = || match &self.device {
            Device::Gpu(g) if self.profile => Some(g.context().counters()),
            _ => None,
        };
        let mut gpu_counted = tensor::profile::GpuCounters::ZERO;
        let skip = self.progress.batch;
        bar.inc(skip as u64);
        for (i, batch) in batches.enumerate().skip(skip) {
            if stop.load(Ordering::SeqCst) {
                bar.abandon();
                let mid_epoch = Progress { data_rng: epoch_start_rng, batch: i, ..self.progress.clone() };
                save_training_checkpoint(
                    &self.last(),
                    &self.model,
                    &self.optimizer,
                    &mid_epoch.to_state(&self.config_json),
                )?;
                return Ok(None);
            }
            let step_started = Instant::now();
            let counted_before = gpu_counters();
            let x = batch.images.to_device(&self.device)?;
            let position = (epoch + 1, i + 1);
            let values =
                train_step(&self.model, &mut self.optimizer, &x, &self.setup, &mut self.progress.noise_rng, position)
                    .map_err(|e| {
                    bar.abandon();
                    self.non_finite_stop(e)
                })?;
            step_time += step_started.elapsed();
            if let (Some(after), Some(before)) = (gpu_counters(), counted_before) {
                gpu_counted = gpu_counted.plus(&after.since(&before));
            }
            steps += 1;
            self.progress.partial.add(&values, batch.images.shape()[0]);
            bar.set_message(describe(&self.progress.partial.mean()));
            bar.inc(1);
        }
        bar.finish_and_clear();
        if self.profile {
            tensor::profile::set_enabled(false);
        }
        let train = self.progress.partial.mean();
        Ok(Some(EpochTrained { train, batches: total, steps, step_time, gpu_counted }))
    }

    /// Where the epoch's step time went, per op family and per op, and on the GPU what it was
    /// asked to do.
    fn print_profile(&self, epoch: usize, trained: &EpochTrained) {
        let report = tensor::profile::snapshot();
        let steps = trained.steps;
        println!("profile of epoch {}'s {steps} training steps:", epoch + 1);
        print!("{}", report.table(trained.step_time, steps));
        print!("{}", report.top_ops(10, steps));
        if let Device::Gpu(g) = &self.device {
            println!("GPU work per step:");
            print!("{}", report.gpu_table(&trained.gpu_counted, steps));
            let pool = g.context().pool_stats();
            let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
            println!(
                "GPU memory: peak {:.1} MiB in use since the run started (buffers by size class), {:.1} MiB held by \
                 the pool now (in use and idle)",
                mib(pool.peak_live_bytes),
                mib(pool.live_bytes + pool.idle_bytes)
            );
        }
    }

    /// The validation split as device tensors, in order, the last batch possibly smaller.
    fn validation_batches(&self) -> Result<Vec<Tensor>> {
        let opts = BatchOptions {
            batch_size: self.config.batch_size,
            shuffle: false,
            drop_last: false,
            normalization: self.normalization.clone(),
        };
        Ok(Batches::new(self.val.clone(), &opts, &mut Rng::new(0))?
            .map(|b| b.images.to_device(&self.device))
            .collect::<tensor::Result<_>>()?)
    }

    fn last(&self) -> PathBuf {
        self.dir.join(LAST_CHECKPOINT)
    }

    /// A non-finite value stops the run; the message names the last good checkpoint, or says
    /// that none was written, in which case the same command starts the run again. Other
    /// errors pass through.
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

/// The fixed inputs of the per-epoch pictures: validation images to reconstruct and codes
/// drawn once from N(0, I) to decode, so the pictures of successive epochs compare.
struct Pictures {
    /// [8, C, H, W], normalised, on the device.
    preview: Tensor,
    /// [16, z], on the device.
    prior_z: Tensor,
}

impl Pictures {
    fn new(t: &Trainer) -> Result<Pictures> {
        let preview = t.val.batch(&preview_indices(&t.val, 8), &t.normalization)?.images.to_device(&t.device)?;
        let mut rng = Stream::PriorSamples.rng(t.config.seed);
        let prior_z = standard_normal(16, t.config.z_dim, tensor::DType::F32, &mut rng).to_device(&t.device)?;
        Ok(Pictures { preview, prior_z })
    }

    /// `recon_epochNNN.png` (originals over reconstructions) and `samples_epochNNN.png`.
    fn save(&self, t: &Trainer, epoch: usize) -> Result<()> {
        t.model.set_training(false);
        let result = no_grad(|| -> Result<()> {
            let [n, c, h, w]: [usize; 4] =
                self.preview.shape().try_into().map_err(|_| Error::Config("preview shape".into()))?;
            let shown = |raw: &Tensor| t.setup.output.to_image(raw, &t.normalization);
            let recon = shown(&t.model.forward(&Var::constant(self.preview.clone()))?.value())?;
            let originals = t.normalization.invert_tensor(&self.preview)?;
            let rows = [originals.to_vec::<f32>()?, recon.to_vec::<f32>()?];
            let path = t.dir.join(format!("recon_epoch{epoch:03}.png"));
            crate::plot::save_rows(&path, &[&rows[0], &rows[1]], n, c, h, w)?;
            let samples = shown(&t.model.decode(&Var::constant(self.prior_z.clone()))?.value())?;
            let path = t.dir.join(format!("samples_epoch{epoch:03}.png"));
            crate::plot::save_image_grid(&path, &samples.to_vec::<f32>()?, self.prior_z.shape()[0], c, h, w, 8)?;
            Ok(())
        });
        t.model.set_training(true);
        result
    }
}

/// The validation images of the reconstruction grid: with labels, the classes in turn (so every
/// dSprites shape shows), else the first `n`.
fn preview_indices(val: &Dataset, n: usize) -> Vec<usize> {
    let Some(labels) = &val.labels else { return (0..n.min(val.len())).collect() };
    let mut classes: Vec<u32> = labels.clone();
    classes.sort_unstable();
    classes.dedup();
    let mut queues: Vec<VecDeque<usize>> =
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

/// "loss 1.234 (recon 1.000, kl 0.234)", with the β-TCVAE terms when the run has them.
fn describe(s: &LossValues) -> String {
    let [(_, loss), components @ ..] = s.named();
    let parts: Vec<String> = components.iter().filter_map(|(name, v)| v.map(|v| format!("{name} {v:.3}"))).collect();
    format!("loss {:.3} ({})", loss.unwrap_or(f64::NAN), parts.join(", "))
}

/// Epochs in a row with the same validation reconstruction loss, to the last bit, after which
/// a run says it is not learning: a loss summed over thousands of pixels in f64 that repeats
/// exactly means the decoder's outputs did not move (one repeat may be chance on tiny data).
const STALLED_EPOCHS: usize = 3;

/// The validation reconstruction loss when the last [`STALLED_EPOCHS`] epochs of `history`
/// (and not the one before them) had exactly that value: `Some` once per stall, at the epoch
/// that makes it [`STALLED_EPOCHS`] long.
fn stalled_validation(history: &[EpochMetrics]) -> Option<f64> {
    let recon = history.last()?.val.recon;
    let same = history.iter().rev().take_while(|e| e.val.recon.to_bits() == recon.to_bits()).count();
    (same == STALLED_EPOCHS).then_some(recon)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs_with_val_recon(recons: &[f64]) -> Vec<EpochMetrics> {
        let train = LossValues { loss: 1.0, recon: 1.0, ..LossValues::default() };
        let row = |(i, &recon): (usize, &f64)| {
            EpochMetrics::new(i + 1, 1e-3, 1.0, &train, &LossValues { loss: recon, recon, ..LossValues::default() })
        };
        recons.iter().enumerate().map(row).collect()
    }

    #[test]
    fn a_run_whose_validation_recon_repeats_to_the_last_bit_for_three_epochs_is_stalled() {
        let stuck = 805.9312651367187;
        assert_eq!(stalled_validation(&epochs_with_val_recon(&[stuck, stuck])), None, "two epochs: not yet");
        assert_eq!(stalled_validation(&epochs_with_val_recon(&[stuck, stuck, stuck])), Some(stuck));
        assert_eq!(stalled_validation(&epochs_with_val_recon(&[900.0, stuck, stuck, stuck])), Some(stuck));
        // Said once per stall: the fourth equal epoch does not repeat the warning.
        assert_eq!(stalled_validation(&epochs_with_val_recon(&[stuck, stuck, stuck, stuck])), None);
    }

    #[test]
    fn a_run_whose_validation_recon_moves_even_in_the_last_bit_is_not_stalled() {
        let next = f64::from_bits(805.9312651367187f64.to_bits() + 1);
        assert_eq!(stalled_validation(&epochs_with_val_recon(&[805.9312651367187, 805.9312651367187, next])), None);
        assert_eq!(stalled_validation(&epochs_with_val_recon(&[3.0, 2.0, 1.0])), None);
        assert_eq!(stalled_validation(&[]), None);
    }

    /// Progress two epochs and three batches into a run, with a record of each epoch.
    fn progress_mid_run() -> Progress {
        let mut p = Progress::start(&RunConfig { seed: 7, patience: 3, ..RunConfig::default() });
        let values = LossValues { loss: 2.0, recon: 1.5, kl: 0.5, ..LossValues::default() };
        for epoch in 1..=2 {
            p.early.update(3.0 - epoch as f64);
            p.history.push(EpochMetrics::new(epoch, 1e-3, 1.0, &values, &values));
        }
        p.epoch = 2;
        p.batch = 3;
        for _ in 0..3 {
            p.partial.add(&values, 4);
        }
        p.data_rng.next_u64();
        p.noise_rng.next_u64();
        p
    }

    #[test]
    fn progress_comes_back_unchanged_from_its_checkpoint_form() {
        let p = progress_mid_run();
        let back = Progress::from_state(Path::new("x.safetensors"), &p.to_state("{}"), 3).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn progress_comes_back_bit_for_bit_even_where_a_fast_float_parse_rounds_wrong() {
        // JSON read by a float parse that is not correctly rounded (serde_json's default) comes
        // back one unit in the last place off for values like this one: a resumed run's
        // history, and from it metrics.csv, and its early-stopping record would then differ from
        // an uninterrupted run's.
        let awkward = f64::from_bits(0x3fc5_793d_4c06_9069); // 0.16776243412198547
        let values = LossValues { loss: awkward, recon: awkward, kl: awkward, ..LossValues::default() };
        let mut p = progress_mid_run();
        p.early.update(awkward);
        p.history.push(EpochMetrics::new(3, 1e-3, awkward, &values, &values));
        p.partial.add(&values, 4);
        let back = Progress::from_state(Path::new("x.safetensors"), &p.to_state("{}"), 3).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn the_patience_of_a_resumed_run_is_the_one_given_now() {
        let p = progress_mid_run();
        let back = Progress::from_state(Path::new("x.safetensors"), &p.to_state("{}"), 0).unwrap();
        assert_eq!(back.early.patience, usize::MAX, "--patience 0: never stop early");
        let back = Progress::from_state(Path::new("x.safetensors"), &p.to_state("{}"), 9).unwrap();
        assert_eq!(back.early.patience, 9);
    }

    #[test]
    fn an_unreadable_record_is_an_error_naming_the_file_and_the_record() {
        let mut state = progress_mid_run().to_state("{}");
        state.extra.insert(key::HISTORY.to_string(), "[not json".to_string());
        let err = Progress::from_state(Path::new("runs/a/last.safetensors"), &state, 3).unwrap_err().to_string();
        assert!(err.contains("runs/a/last.safetensors") && err.contains("history is not readable"), "{err}");
    }

    #[test]
    fn a_checkpoint_without_its_noise_generator_is_refused() {
        let mut state = progress_mid_run().to_state("{}");
        state.extra.remove(key::NOISE_RNG);
        let err = Progress::from_state(Path::new("c.safetensors"), &state, 3).unwrap_err().to_string();
        assert!(err.contains("lacks its noise_rng"), "{err}");
    }

    #[test]
    fn progress_that_does_not_fit_the_run_names_the_field() {
        let p = progress_mid_run();
        let path = Path::new("c.safetensors");
        assert!(p.check_fits(path, 10, 4).is_ok());
        let err = p.check_fits(path, 3, 4).unwrap_err().to_string();
        assert!(err.contains("batch_in_epoch is 3, but an epoch of this run's data has 3 batches"), "{err}");
        let err = p.check_fits(path, 10, 8).unwrap_err().to_string();
        assert!(err.contains("epoch_partial_means average 12 images, but 3 batches of 8"), "{err}");
        let err = Progress { epoch: 3, ..p }.check_fits(path, 10, 4).unwrap_err().to_string();
        assert!(err.contains("history lists epochs [1, 2], but the checkpoint follows epoch 3"), "{err}");
    }
}
