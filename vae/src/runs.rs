//! A run folder, as `train` writes it and `eval`, `sweep` and `explore` read it back:
//!
//! | file | written | holds |
//! |---|---|---|
//! | `config.json` | once, at the start | the [`RunConfig`] |
//! | `last.safetensors` | every epoch end (and on Ctrl-C) | model, optimizer, position, RNG states, history |
//! | `best.safetensors` | when validation improves, before `last` | the same, at the best epoch |
//! | `metrics.csv` | after `last`, rewritten whole | one [`EpochMetrics`] row per finished epoch |
//! | `*.png` | after `metrics.csv` | pictures of the epoch |
//!
//! Every file is replaced atomically ([`nn::atomic_file`]), and the order above is what keeps the
//! folder consistent at every instant a process can die: `metrics.csv` is rewritten from the
//! history inside `last.safetensors`, so it never lists an epoch the checkpoint does not hold
//! (it can lag one epoch behind until the next write; `--resume` rewrites it first), and
//! `best.safetensors` is written before `last`, so the early-stopping record in `last` never
//! names a best epoch that `best.safetensors` does not hold.
//!
//! The split is recomputed from the configuration (dataset, `--max-images`, `--split`,
//! `--seed`), exactly as `train` made it, so the test images were never seen in training.

use std::path::{Path, PathBuf};

use nn::checkpoint::{load_model, LoadOptions};
use nn::Init;
use serde::{Deserialize, Serialize};

pub use crate::config::RunConfig;
use crate::data::{self, Dataset, DatasetKind, LoadOptions as DataLoadOptions, Normalization, Splits};
use crate::error::{Error, Result};
use crate::loss::LossValues;
use crate::model::{LogvarBound, ModelConfig, Vae};

/// The run's configuration.
pub const CONFIG_FILE: &str = "config.json";
/// One row per finished epoch.
pub const METRICS_FILE: &str = "metrics.csv";
/// The training checkpoint after the last finished epoch (or the Ctrl-C point).
pub const LAST_CHECKPOINT: &str = "last.safetensors";
/// The training checkpoint of the epoch with the lowest validation loss.
pub const BEST_CHECKPOINT: &str = "best.safetensors";

/// Where `eval` writes its pictures and metrics inside a run folder.
pub const EVAL_DIR: &str = "eval";
/// `eval`'s metrics, inside [`EVAL_DIR`].
pub const EVAL_METRICS_FILE: &str = "metrics.json";

/// A run folder that `train` wrote, opened to be read (`eval`, `explore`, `report`, `sweep`):
/// its configuration and where each of its files lives.
#[derive(Clone, Debug)]
pub struct RunFolder {
    /// The folder.
    pub dir: PathBuf,
    /// Its `config.json`.
    pub config: RunConfig,
}

impl RunFolder {
    /// Opens `dir` by reading its `config.json`; the error names the folder as the `--run` flag
    /// that gave it.
    pub fn open(dir: &Path) -> Result<RunFolder> {
        let config = RunConfig::read(dir).map_err(|e| Error::Config(format!("--run {}: {e}", dir.display())))?;
        Ok(RunFolder { dir: dir.to_path_buf(), config })
    }

    /// `config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// `metrics.csv`.
    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join(METRICS_FILE)
    }

    /// `eval/`, where `eval` writes by default.
    pub fn eval_dir(&self) -> PathBuf {
        self.dir.join(EVAL_DIR)
    }

    /// The checkpoint to read: `explicit` (a `--checkpoint` flag) or `best.safetensors`; an
    /// error naming it when it is not a file.
    pub fn checkpoint(&self, explicit: Option<&Path>) -> Result<PathBuf> {
        let path = explicit.map_or_else(|| self.dir.join(BEST_CHECKPOINT), Path::to_path_buf);
        if !path.is_file() {
            return Err(Error::Config(format!(
                "--checkpoint {}: no such file (a finished `train` run has {BEST_CHECKPOINT})",
                path.display()
            )));
        }
        Ok(path)
    }

    /// `metrics.csv`'s rows; none when the file does not exist.
    pub fn metrics(&self) -> Result<Vec<EpochMetrics>> {
        let path = self.metrics_path();
        if path.is_file() {
            read_metrics(&path)
        } else {
            Ok(vec![])
        }
    }

    /// `config.json` as written, field order kept (for display).
    pub fn config_json(&self) -> Result<serde_json::Value> {
        read_json(&self.config_path()).map(|v| v.unwrap_or_default())
    }

    /// `eval/metrics.json`, or `None` when `eval` has not run.
    pub fn eval_metrics(&self) -> Result<Option<serde_json::Value>> {
        read_json(&self.eval_dir().join(EVAL_METRICS_FILE))
    }
}

/// A JSON file, `None` when it does not exist; an error naming it when it is not JSON.
fn read_json(path: &Path) -> Result<Option<serde_json::Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map(Some).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

impl RunConfig {
    /// The load options `train` uses: dSprites is generated, 20,000 images unless told otherwise.
    pub fn data_load_options(&self) -> DataLoadOptions {
        let max_images = self.max_images.or(if self.dataset == DatasetKind::DSprites { Some(20_000) } else { None });
        DataLoadOptions {
            max_images,
            skip_images: self.skip_images,
            seed: self.seed,
            center_crop: self.center_crop,
            annotation_dir: self.annotation_dir.clone(),
            ..DataLoadOptions::default()
        }
    }

    /// Loads the dataset and cuts it as `train` did; returns the splits and the normalisation.
    pub fn load_splits(&self) -> Result<(Splits<Dataset>, Normalization)> {
        let ds = data::load(self.dataset, self.data_dir.as_deref(), self.image_size, &self.data_load_options())?;
        let splits = ds.split(self.split_ratios()?, self.seed)?;
        let normalization = self.normalization(&splits.train);
        Ok((splits, normalization))
    }

    /// The run's model for images of `input` = [C, H, W], initialised from the run's seed,
    /// with the configured log-variance bounds.
    pub fn new_model(&self, input: [usize; 3]) -> Result<Vae> {
        let mut model = Vae::new(ModelConfig { arch: self.arch, input, z_dim: self.z_dim }, &mut Init::new(self.seed))?;
        model.logvar_bound = self.logvar_clamp.map(|[min, max]| {
            if self.logvar_clamp_soft {
                LogvarBound::Soft { min, max }
            } else {
                LogvarBound::Hard { min, max }
            }
        });
        Ok(model)
    }

    /// The run's model with the weights of `checkpoint` (a training checkpoint or a model file).
    pub fn load_model(&self, input: [usize; 3], checkpoint: &Path) -> Result<Vae> {
        let model = self.new_model(input)?;
        load_model(checkpoint, &model, &LoadOptions::strict())?;
        Ok(model)
    }
}

/// One finished epoch: a row of `metrics.csv` and an entry of the history every checkpoint
/// carries. Both hold it flat, one column per value: `epoch`, `lr`, `seconds`, then
/// `train_<term>` and `val_<term>` for each of [`LossValues::NAMES`] (β-VAE runs leave the
/// β-TCVAE cells empty).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochMetrics {
    /// The epoch number, from 1.
    pub epoch: usize,
    /// The learning rate of the epoch.
    pub lr: f64,
    /// Wall-clock seconds of the epoch's steps and validation.
    pub seconds: f64,
    /// Means over the epoch's training batches.
    pub train: LossValues,
    /// Means over the validation split, after the epoch.
    pub val: LossValues,
}

/// The columns before the loss terms'.
const EPOCH_COLUMNS: [&str; 3] = ["epoch", "lr", "seconds"];

impl EpochMetrics {
    /// The row of epoch `epoch` (from 1).
    pub fn new(epoch: usize, lr: f64, seconds: f64, train: &LossValues, val: &LossValues) -> EpochMetrics {
        EpochMetrics { epoch, lr, seconds, train: *train, val: *val }
    }

    /// Every column with its value, in the order of [`metrics_columns`] (`None`: an empty cell).
    pub fn columns(&self) -> Vec<(String, Option<f64>)> {
        let epoch = [self.epoch as f64, self.lr, self.seconds];
        let mut out: Vec<(String, Option<f64>)> =
            EPOCH_COLUMNS.iter().zip(epoch).map(|(name, v)| (name.to_string(), Some(v))).collect();
        for (split, values) in [("train", &self.train), ("val", &self.val)] {
            out.extend(values.named().into_iter().map(|(term, v)| (format!("{split}_{term}"), v)));
        }
        out
    }

    /// The row from its columns looked up by name, the inverse of [`EpochMetrics::columns`];
    /// the name of the first missing column otherwise.
    pub fn from_columns(value: impl Fn(&str) -> Option<f64>) -> std::result::Result<EpochMetrics, String> {
        let required = |name: &str| value(name).ok_or_else(|| name.to_string());
        let split = |split: &str| {
            LossValues::from_named(|term| value(&format!("{split}_{term}")))
                .ok_or_else(|| format!("{split}_loss, {split}_recon or {split}_kl"))
        };
        Ok(EpochMetrics {
            epoch: required("epoch")? as usize,
            lr: required("lr")?,
            seconds: required("seconds")?,
            train: split("train")?,
            val: split("val")?,
        })
    }

    /// The value of the column named `column` (`val_loss`), `None` for an empty cell, a NaN
    /// or an unknown name: for tables and plots that pick columns by name.
    pub fn get(&self, column: &str) -> Option<f64> {
        self.columns().into_iter().find(|(name, _)| name == column)?.1.filter(|v| !v.is_nan())
    }
}

/// The history inside a checkpoint holds each row as a JSON object with the same flat columns.
impl Serialize for EpochMetrics {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let columns = self.columns();
        let mut map = serializer.serialize_map(Some(columns.len()))?;
        for (name, value) in &columns {
            if name == "epoch" {
                map.serialize_entry(name, &self.epoch)?;
            } else {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for EpochMetrics {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, Option<f64>>::deserialize(deserializer)?;
        EpochMetrics::from_columns(|name| map.get(name).copied().flatten())
            .map_err(|missing| serde::de::Error::custom(format!("an epoch's record lacks {missing}")))
    }
}

/// Reads `metrics.csv`; a malformed row is an error naming the file and the line.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>> {
    let bad = |line: u64, why: String| {
        Error::Config(format!("{}: line {line}: not a metrics.csv row: {why}", path.display()))
    };
    let file = std::fs::File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let mut reader = csv::Reader::from_reader(file);
    let header: Vec<String> = reader.headers().map_err(|e| bad(1, e.to_string()))?.iter().map(str::to_string).collect();
    let mut rows = vec![];
    for record in reader.records() {
        let record = record.map_err(|e| bad(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        let mut cells = std::collections::HashMap::new();
        for (name, cell) in header.iter().zip(record.iter()) {
            if !cell.is_empty() {
                let value = cell.parse::<f64>().map_err(|_| bad(line, format!("{name} = {cell:?} is not a number")))?;
                cells.insert(name.as_str(), value);
            }
        }
        rows.push(
            EpochMetrics::from_columns(|name| cells.get(name).copied())
                .map_err(|missing| bad(line, format!("no {missing}")))?,
        );
    }
    Ok(rows)
}

/// Replaces `metrics.csv` with `rows`, atomically.
pub fn write_metrics(path: &Path, rows: &[EpochMetrics]) -> Result<()> {
    let mut writer = csv::Writer::from_writer(vec![]);
    let failed = |e: String| Error::Config(format!("{}: cannot write metrics: {e}", path.display()));
    writer.write_record(metrics_columns()).map_err(|e| failed(e.to_string()))?;
    for row in rows {
        let cells = row.columns().into_iter().map(|(name, v)| match (name.as_str(), v) {
            ("epoch", _) => row.epoch.to_string(),
            (_, Some(v)) => v.to_string(),
            (_, None) => String::new(),
        });
        writer.write_record(cells).map_err(|e| failed(e.to_string()))?;
    }
    let bytes = writer.into_inner().map_err(|e| failed(e.to_string()))?;
    write_file(path, &bytes)
}

/// The column names of `metrics.csv`, in order.
pub fn metrics_columns() -> Vec<String> {
    let zero = LossValues::default();
    EpochMetrics::new(0, 0.0, 0.0, &zero, &zero).columns().into_iter().map(|(name, _)| name).collect()
}

/// The row with the lowest validation loss (the epoch `best.safetensors` holds).
pub fn best_epoch(rows: &[EpochMetrics]) -> Option<&EpochMetrics> {
    rows.iter().filter(|r| r.val.loss.is_finite()).min_by(|a, b| a.val.loss.total_cmp(&b.val.loss))
}

/// Writes `bytes` to `path` atomically, as every file of a run folder is written.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    nn::atomic_file::write_atomic(path, bytes).map_err(|(path, source)| Error::Io { path, source })
}

/// The checkpoints a run can continue from, the one `--resume` should name first.
const CHECKPOINTS: [&str; 2] = [LAST_CHECKPOINT, BEST_CHECKPOINT];
/// The files a run writes before its first checkpoint.
const PRE_CHECKPOINT_FILES: [&str; 3] = [CONFIG_FILE, METRICS_FILE, crate::provenance::PROVENANCE_FILE];

/// What [`prepare_new_run_dir`] found in the folder.
#[derive(Debug, PartialEq, Eq)]
pub enum NewRunDir {
    /// The folder did not exist or held no run.
    Empty,
    /// The folder held a run that stopped before its first checkpoint (killed, or stopped by
    /// a non-finite value in its first epoch; or killed between writing its first
    /// `best.safetensors` and its first `last.safetensors`, whose best is removed): these files
    /// of it, and no training state to resume. The new run writes its own over them.
    Restarted(Vec<&'static str>),
}

/// Makes `dir` ready for a new run: creates it, refuses it when it holds a checkpoint (a run
/// that `--resume` continues, whose files a new run would mix with its own) or a `config.json`
/// that is not a run's, accepts the files of a run that never reached its first checkpoint
/// (the new run writes over them), and removes temporaries of killed writes.
pub fn prepare_new_run_dir(dir: &Path) -> Result<NewRunDir> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let killed_in_first_save = killed_between_first_checkpoints(dir);
    if let Some(checkpoint) = CHECKPOINTS.iter().find(|f| dir.join(f).exists() && !killed_in_first_save) {
        return Err(Error::Config(format!(
            "{} already holds a run ({checkpoint}): continue it with --resume {}, or choose another --run-dir",
            dir.display(),
            dir.join(checkpoint).display()
        )));
    }
    remove_temporaries(dir)?;
    let mut stale: Vec<&'static str> = PRE_CHECKPOINT_FILES.iter().copied().filter(|f| dir.join(f).exists()).collect();
    if stale.is_empty() {
        return Ok(NewRunDir::Empty);
    }
    if stale.contains(&CONFIG_FILE) {
        // A config.json that is not a run's is someone's file: never written over.
        RunConfig::read(dir)?;
    }
    if killed_in_first_save {
        // Its first epoch, which the new run trains again: removed, so that no reader takes it
        // for the new run's until the new run writes its own.
        let best = dir.join(BEST_CHECKPOINT);
        std::fs::remove_file(&best).map_err(|source| Error::Io { path: best, source })?;
        stale.push(BEST_CHECKPOINT);
    }
    Ok(NewRunDir::Restarted(stale))
}

/// Whether `dir` holds what a run killed between writing its first `best.safetensors` and its
/// first `last.safetensors` leaves: its configuration and a best checkpoint of epoch 1, no last
/// one. (Once `last.safetensors` exists it is only ever replaced, so a best checkpoint of a
/// later epoch without it is not a killed write: that folder is refused.)
fn killed_between_first_checkpoints(dir: &Path) -> bool {
    let best = dir.join(BEST_CHECKPOINT);
    dir.join(CONFIG_FILE).is_file()
        && !dir.join(LAST_CHECKPOINT).exists()
        && best.is_file()
        && nn::checkpoint::read_training_state(&best).is_ok_and(|state| state.epoch == 1 && state.step == 0)
}

/// Checks that `--resume`'s checkpoint exists, and where it does not, says what its folder
/// holds: a folder whose run stopped before its first checkpoint has nothing to resume, and
/// the command that began it starts it again.
pub fn check_resumable(checkpoint: &Path) -> Result<()> {
    if checkpoint.exists() {
        return Ok(());
    }
    let dir = run_dir_of(checkpoint);
    let held = CHECKPOINTS.iter().find(|f| dir.join(f).exists());
    let hint = match held {
        Some(other) => format!("; the folder holds {}", dir.join(other).display()),
        None if dir.join(CONFIG_FILE).exists() => format!(
            "; {} holds no checkpoint (its run stopped before the end of its first epoch): \
             run the command that began it again, without --resume, to start it over",
            dir.display()
        ),
        None => String::new(),
    };
    Err(Error::Config(format!("--resume {}: no such file{hint}", checkpoint.display())))
}

/// Removes the `.tmp` files a killed write left in `dir` (call before writing into it).
pub fn remove_temporaries(dir: &Path) -> Result<()> {
    nn::atomic_file::remove_temporaries(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    Ok(())
}

/// The folder of a checkpoint (`runs/x/last.safetensors` → `runs/x`).
pub fn run_dir_of(checkpoint: &Path) -> PathBuf {
    match checkpoint.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arch;

    /// A fresh folder for one test, removed when the guard drops.
    fn temp_dir(test: &str) -> tempfile::TempDir {
        tempfile::Builder::new().prefix(&format!("vae-runs-{test}-")).tempdir().unwrap()
    }

    fn stats(loss: f64, tc: Option<f64>) -> LossValues {
        LossValues { loss, recon: loss / 2.0, kl: loss / 4.0, mi: tc, tc, dwkl: tc }
    }

    #[test]
    fn a_runs_model_carries_its_logvar_bound_so_eval_scores_what_train_trained() {
        let bound = |clamp: Option<[f64; 2]>, soft: bool| {
            let config =
                RunConfig { arch: Arch::Dense, logvar_clamp: clamp, logvar_clamp_soft: soft, ..RunConfig::default() };
            config.new_model([1, 28, 28]).unwrap().logvar_bound
        };
        assert_eq!(bound(Some([-30.0, 20.0]), false), Some(LogvarBound::Hard { min: -30.0, max: 20.0 }));
        assert_eq!(bound(Some([-30.0, 20.0]), true), Some(LogvarBound::Soft { min: -30.0, max: 20.0 }));
        assert_eq!(bound(None, false), None);
    }

    #[test]
    fn metrics_round_trip_through_csv_with_empty_cells_for_beta_vae() {
        let scratch = temp_dir("metrics");
        let dir = scratch.path();
        let path = dir.join(METRICS_FILE);
        let rows = vec![
            EpochMetrics::new(1, 1e-3, 2.5, &stats(10.0, None), &stats(11.0, None)),
            EpochMetrics::new(2, 1e-3, 2.4, &stats(9.0, Some(0.5)), &stats(9.5, Some(0.25))),
        ];
        write_metrics(&path, &rows).unwrap();
        assert_eq!(read_metrics(&path).unwrap(), rows);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(&metrics_columns().join(",")), "{text}");
        assert!(text.lines().nth(1).unwrap().ends_with(",,,"), "{text}");
    }

    #[test]
    fn an_empty_history_writes_the_header() {
        let scratch = temp_dir("empty");
        let dir = scratch.path();
        write_metrics(&dir.join(METRICS_FILE), &[]).unwrap();
        assert!(read_metrics(&dir.join(METRICS_FILE)).unwrap().is_empty());
        assert_eq!(metrics_columns()[..3], ["epoch", "lr", "seconds"]);
    }

    #[test]
    fn a_malformed_row_names_the_file_and_line() {
        let scratch = temp_dir("malformed");
        let dir = scratch.path();
        let path = dir.join(METRICS_FILE);
        std::fs::write(&path, format!("{}\n1,x,2\n", metrics_columns().join(","))).unwrap();
        let err = read_metrics(&path).unwrap_err().to_string();
        assert!(err.contains("metrics.csv") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn a_checkpoints_history_entry_keeps_its_flat_json_form() {
        // The form checkpoints written before the terms had a type of their own hold: every
        // run folder on disk must still resume and report.
        let flat = r#"{"epoch":2,"lr":0.001,"seconds":1.5,"train_loss":9.0,"train_recon":4.5,"train_kl":2.25,
            "train_mi":null,"train_tc":null,"train_dwkl":null,"val_loss":8.0,"val_recon":4.0,"val_kl":2.0,
            "val_mi":null,"val_tc":null,"val_dwkl":null}"#;
        let row: EpochMetrics = serde_json::from_str(flat).unwrap();
        assert_eq!(row, EpochMetrics::new(2, 1e-3, 1.5, &stats(9.0, None), &stats(8.0, None)));
        let again: serde_json::Value = serde_json::from_str(&serde_json::to_string(&row).unwrap()).unwrap();
        assert_eq!(again, serde_json::from_str::<serde_json::Value>(flat).unwrap());
        let tc = EpochMetrics::new(1, 1e-3, 1.0, &stats(9.0, Some(0.5)), &stats(8.0, Some(0.25)));
        assert_eq!(serde_json::from_str::<EpochMetrics>(&serde_json::to_string(&tc).unwrap()).unwrap(), tc);
    }

    #[test]
    fn a_history_entry_without_a_required_column_is_an_error_naming_it() {
        let err = serde_json::from_str::<EpochMetrics>(r#"{"epoch":1,"lr":0.001}"#).unwrap_err().to_string();
        assert!(err.contains("seconds"), "{err}");
    }

    #[test]
    fn a_run_folder_opens_from_its_config_and_names_its_files() {
        let scratch = temp_dir("folder");
        let dir = scratch.path();
        let err = RunFolder::open(dir).unwrap_err().to_string();
        assert!(err.contains(&format!("--run {}", dir.display())) && err.contains(CONFIG_FILE), "{err}");
        std::fs::write(dir.join(CONFIG_FILE), RunConfig::default().to_json()).unwrap();
        let run = RunFolder::open(dir).unwrap();
        assert_eq!(run.config, RunConfig::default());
        assert_eq!(run.metrics().unwrap(), vec![], "no metrics.csv yet: no rows");
        assert_eq!(run.eval_metrics().unwrap(), None, "eval has not run");
        let err = run.checkpoint(None).unwrap_err().to_string();
        assert!(err.contains(BEST_CHECKPOINT), "{err}");
        std::fs::write(dir.join(BEST_CHECKPOINT), b"x").unwrap();
        assert_eq!(run.checkpoint(None).unwrap(), dir.join(BEST_CHECKPOINT));
        assert!(run.checkpoint(Some(&dir.join("other.safetensors"))).is_err());
        std::fs::create_dir_all(run.eval_dir()).unwrap();
        std::fs::write(run.eval_dir().join(EVAL_METRICS_FILE), "{\"test_loss\": 2.5}").unwrap();
        assert_eq!(run.eval_metrics().unwrap().unwrap()["test_loss"], 2.5);
    }

    #[test]
    fn columns_are_found_by_name() {
        let row = EpochMetrics::new(3, 1e-3, 1.0, &stats(10.0, None), &stats(8.0, None));
        assert_eq!(row.get("val_loss"), Some(8.0));
        assert_eq!(row.get("val_tc"), None);
        assert_eq!(row.get("no_such_column"), None);
    }

    #[test]
    fn a_folder_holding_a_run_is_refused_for_a_new_run() {
        let scratch = temp_dir("taken");
        let dir = scratch.path();
        std::fs::write(dir.join(LAST_CHECKPOINT), b"x").unwrap();
        let err = prepare_new_run_dir(dir).unwrap_err().to_string();
        assert!(err.contains("already holds a run") && err.contains("--resume"), "{err}");
    }

    #[test]
    fn a_folder_holding_only_a_best_checkpoint_is_refused_naming_it() {
        let scratch = temp_dir("best-only");
        let dir = scratch.path();
        std::fs::write(dir.join(BEST_CHECKPOINT), b"x").unwrap();
        let err = prepare_new_run_dir(dir).unwrap_err().to_string();
        assert!(err.contains(&format!("--resume {}", dir.join(BEST_CHECKPOINT).display())), "{err}");
        assert!(!err.contains(LAST_CHECKPOINT), "named a file that does not exist: {err}");
    }

    #[test]
    fn a_new_run_removes_temporaries_of_killed_writes() {
        let scratch = temp_dir("temporaries");
        let dir = scratch.path();
        std::fs::write(dir.join("last.safetensors.tmp"), b"half").unwrap();
        assert_eq!(prepare_new_run_dir(dir).unwrap(), NewRunDir::Empty);
        assert!(!dir.join("last.safetensors.tmp").exists());
    }

    #[test]
    fn a_folder_whose_run_stopped_before_its_first_checkpoint_is_started_again() {
        let scratch = temp_dir("no-checkpoint");
        let dir = scratch.path();
        std::fs::write(dir.join(CONFIG_FILE), RunConfig::default().to_json()).unwrap();
        std::fs::write(dir.join(METRICS_FILE), b"epoch\n").unwrap();
        assert_eq!(prepare_new_run_dir(dir).unwrap(), NewRunDir::Restarted(vec![CONFIG_FILE, METRICS_FILE]));
    }

    /// A training checkpoint's header at `epoch`, without tensors (all `prepare_new_run_dir` reads).
    fn write_training_header(path: &Path, epoch: u64) {
        let metadata = std::collections::BTreeMap::from(
            [
                ("checkpoint_kind", "training".to_string()),
                ("epoch", epoch.to_string()),
                ("step", "0".to_string()),
                ("rng_state", ["0000000000000001"; 4].join(",")),
                ("config", RunConfig::default().to_json()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        nn::checkpoint::write_safetensors(path, &[], &metadata).unwrap();
    }

    #[test]
    fn a_run_killed_between_its_first_best_and_last_checkpoints_is_started_again() {
        // best.safetensors is written before last.safetensors: a kill between the two leaves the
        // first epoch's best alone, which neither `--resume last.safetensors` nor the command
        // that began the run (a scheduler's requeue) could go on from.
        let scratch = temp_dir("first-best-only");
        let dir = scratch.path();
        std::fs::write(dir.join(CONFIG_FILE), RunConfig::default().to_json()).unwrap();
        write_training_header(&dir.join(BEST_CHECKPOINT), 1);
        assert_eq!(prepare_new_run_dir(dir).unwrap(), NewRunDir::Restarted(vec![CONFIG_FILE, BEST_CHECKPOINT]));
        assert!(!dir.join(BEST_CHECKPOINT).exists(), "the killed run's best checkpoint was kept");
    }

    #[test]
    fn a_best_checkpoint_of_a_later_epoch_without_a_last_one_is_refused() {
        let scratch = temp_dir("later-best-only");
        let dir = scratch.path();
        std::fs::write(dir.join(CONFIG_FILE), RunConfig::default().to_json()).unwrap();
        write_training_header(&dir.join(BEST_CHECKPOINT), 2);
        let err = prepare_new_run_dir(dir).unwrap_err().to_string();
        assert!(err.contains("already holds a run (best.safetensors)"), "{err}");
        assert!(dir.join(BEST_CHECKPOINT).exists());
    }

    #[test]
    fn a_folder_holding_a_config_json_that_is_not_a_runs_is_refused() {
        let scratch = temp_dir("foreign-config");
        let dir = scratch.path();
        std::fs::write(dir.join(CONFIG_FILE), b"[1, 2]").unwrap();
        let err = prepare_new_run_dir(dir).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("not a train run"), "{err}");
        assert_eq!(std::fs::read(dir.join(CONFIG_FILE)).unwrap(), b"[1, 2]");
    }

    #[test]
    fn resuming_a_folder_without_checkpoint_says_to_start_it_again() {
        let scratch = temp_dir("resume-none");
        let dir = scratch.path();
        std::fs::write(dir.join(CONFIG_FILE), b"{}").unwrap();
        let err = check_resumable(&dir.join(LAST_CHECKPOINT)).unwrap_err().to_string();
        assert!(err.contains("no such file") && err.contains("holds no checkpoint"), "{err}");
        assert!(err.contains("without --resume"), "{err}");
    }

    #[test]
    fn resuming_a_missing_last_checkpoint_names_the_best_one_that_exists() {
        let scratch = temp_dir("resume-best");
        let dir = scratch.path();
        std::fs::write(dir.join(BEST_CHECKPOINT), b"x").unwrap();
        let err = check_resumable(&dir.join(LAST_CHECKPOINT)).unwrap_err().to_string();
        assert!(err.contains(&dir.join(BEST_CHECKPOINT).display().to_string()), "{err}");
        assert!(check_resumable(&dir.join(BEST_CHECKPOINT)).is_ok());
    }
}
