//! Reading a `train` run folder back: its `config.json` (the flags it ran with), the same
//! train/validation/test split of the same data, its model from a checkpoint, and its
//! `metrics.csv`. Used by the `eval` and `sweep` binaries.
//!
//! The split is recomputed from the configuration (dataset, `--max-images`, `--split`,
//! `--seed`), exactly as `train` made it, so the test images were never seen in training.

use std::path::{Path, PathBuf};

use nn::checkpoint::{load_model, LoadOptions};
use nn::Init;
use serde::Deserialize;

use crate::data::{self, Dataset, DatasetKind, LoadOptions as DataLoadOptions, Normalization, Splits};
use crate::error::{Error, Result};
use crate::loss::ReconLoss;
use crate::model::{Arch, ModelConfig, OutputActivation, Vae};
use crate::train::{objective_from_flags, LossSetup};

/// The flags of a `train` run that decide its data, model and loss (the rest of
/// `config.json` is ignored). Defaults are `train`'s.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct RunConfig {
    /// `--arch`: the model preset name (see [`Arch::NAMES`]).
    pub arch: String,
    /// `--dataset`: the dataset name (see [`crate::data::DatasetKind::NAMES`]).
    pub dataset: String,
    /// `--data-dir`: where the dataset's files are; `None`: its standard location.
    pub data_dir: Option<PathBuf>,
    /// `--image-size`: side images were resized to; `None`: the dataset's own size.
    pub image_size: Option<usize>,
    /// `--max-images`: at most this many images were loaded; `None`: the dataset's default.
    pub max_images: Option<usize>,
    /// `--annotation-dir`: Pascal-VOC annotations for bounding-box crops (image folders).
    pub annotation_dir: Option<PathBuf>,
    /// `--center-crop`: folder images were centre-cropped to a square before resizing.
    pub center_crop: bool,
    /// `--split`: train/validation/test ratios, `TRAIN:VAL:TEST` (e.g. `10:1:1`).
    pub split: String,
    /// `--normalize`: `zero-one`, `minus-one-one` or `mean-std`.
    pub normalize: String,
    /// `--z-dim`: latent size z.
    pub z_dim: usize,
    /// `--loss`: `beta-vae` or `beta-tcvae`.
    pub loss: String,
    /// `--beta`: KL weight (β-VAE) or total-correlation weight (β-TCVAE).
    pub beta: f64,
    /// `--alpha`: mutual-information weight (β-TCVAE).
    pub alpha: f64,
    /// `--gamma`: dimension-wise KL weight (β-TCVAE).
    pub gamma: f64,
    /// `--k1`: reconstruction weight (β-VAE).
    pub k1: f64,
    /// `--stratified`: minibatch-stratified instead of minibatch-weighted sampling (β-TCVAE).
    pub stratified: bool,
    /// `--recon`: `mse`, `bce` or `bce-logits`.
    pub recon: String,
    /// `--output`: decoder output activation, `logits`, `sigmoid` or `tanh`.
    pub output: String,
    /// `--input-noise`: std of the Gaussian noise added to the encoder's input while training.
    pub input_noise: f64,
    /// `--seed`: the run's random seed (initialisation, split, order, noise).
    pub seed: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            arch: "conv".into(),
            dataset: "dsprites".into(),
            data_dir: None,
            image_size: None,
            max_images: None,
            annotation_dir: None,
            center_crop: false,
            split: "10:1:1".into(),
            normalize: "zero-one".into(),
            z_dim: 10,
            loss: "beta-vae".into(),
            beta: 1.0,
            alpha: 1.0,
            gamma: 1.0,
            k1: 1.0,
            stratified: false,
            recon: "bce-logits".into(),
            output: "logits".into(),
            input_noise: 0.0,
            seed: 0,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Io { path: path.to_path_buf(), source: e }
}

impl RunConfig {
    /// Reads `dir/config.json`.
    pub fn read(dir: &Path) -> Result<RunConfig> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: not a train run's config.json: {e}", path.display())))
    }

    /// Loads the dataset and cuts it as `train` did; returns the splits and the normalisation.
    pub fn load_splits(&self) -> Result<(Splits<Dataset>, Normalization)> {
        let kind: DatasetKind = self.dataset.parse()?;
        let opts = data_load_options(kind, self.max_images, self.seed, self.center_crop, self.annotation_dir.clone());
        let ds = data::load(kind, self.data_dir.as_deref(), self.image_size, &opts)?;
        let splits = ds.split(parse_split("split", &self.split)?, self.seed)?;
        let normalization = parse_normalization("normalize", &self.normalize, &splits.train)?;
        Ok((splits, normalization))
    }

    /// The loss `train` minimised, for a training set of `train_len` images.
    pub fn loss_setup(&self, train_len: usize) -> Result<LossSetup> {
        let recon: ReconLoss = self.recon.parse().map_err(|e| Error::Config(format!("recon: {e}")))?;
        let output: OutputActivation = self.output.parse().map_err(|e| Error::Config(format!("output: {e}")))?;
        let objective =
            objective_from_flags(&self.loss, self.beta, self.alpha, self.gamma, self.k1, train_len, self.stratified)?;
        Ok(LossSetup { recon, output, objective, input_noise_std: self.input_noise })
    }

    /// The model preset named by `arch`; a config error if no preset has that name.
    pub fn arch(&self) -> Result<Arch> {
        self.arch.parse::<Arch>().map_err(Error::Config)
    }

    /// The run's model with the weights of `checkpoint` (a training checkpoint or a model file).
    pub fn load_model(&self, input: [usize; 3], checkpoint: &Path) -> Result<Vae> {
        let model = Vae::new(ModelConfig { arch: self.arch()?, input, z_dim: self.z_dim }, &mut Init::new(self.seed))?;
        load_model(checkpoint, &model, &LoadOptions::strict())?;
        Ok(model)
    }
}

/// One row of a run's `metrics.csv`: the epoch and every column by name (empty cells are NaN).
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRow {
    /// The epoch number, as written in the `epoch` column.
    pub epoch: usize,
    /// Every other column: (header name, value), in file order; empty cells are NaN.
    pub values: Vec<(String, f64)>,
}

impl EpochRow {
    /// The value of `column`, or `None` when the column is missing or the cell is empty (NaN).
    pub fn get(&self, column: &str) -> Option<f64> {
        self.values.iter().find(|(n, _)| n == column).map(|(_, v)| *v).filter(|v| !v.is_nan())
    }
}

/// Reads `metrics.csv` (the header and one row per epoch).
pub fn read_metrics(path: &Path) -> Result<Vec<EpochRow>> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    if header.first() != Some(&"epoch") {
        return Err(Error::Config(format!("{}: not a metrics.csv (the first column is not 'epoch')", path.display())));
    }
    let mut rows = vec![];
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').collect();
        let bad = || Error::Config(format!("{}: line {} is not a row of numbers", path.display(), i + 2));
        let epoch = cells.first().and_then(|c| c.parse::<usize>().ok()).ok_or_else(bad)?;
        let values = header
            .iter()
            .zip(&cells)
            .skip(1)
            .map(|(h, c)| (h.to_string(), c.parse::<f64>().unwrap_or(f64::NAN)))
            .collect();
        rows.push(EpochRow { epoch, values });
    }
    Ok(rows)
}

/// The row with the lowest validation loss (the epoch `best.safetensors` holds).
pub fn best_epoch(rows: &[EpochRow]) -> Option<&EpochRow> {
    rows.iter().filter(|r| r.get("val_loss").is_some()).min_by(|a, b| {
        a.get("val_loss").unwrap_or(f64::INFINITY).total_cmp(&b.get("val_loss").unwrap_or(f64::INFINITY))
    })
}

// What `train` reads its data with, shared with `load_splits` so that `eval` and `classify` cut
// exactly the same split. `flag` names the setting in errors: `--split` on the command line,
// `split` when read back from config.json.

/// The load options `train` uses: dSprites is generated, 20,000 images unless told otherwise.
pub fn data_load_options(
    kind: DatasetKind,
    max_images: Option<usize>,
    seed: u64,
    center_crop: bool,
    annotation_dir: Option<PathBuf>,
) -> DataLoadOptions {
    let max_images = max_images.or(if kind == DatasetKind::DSprites { Some(20_000) } else { None });
    DataLoadOptions { max_images, seed, center_crop, annotation_dir, ..DataLoadOptions::default() }
}

/// Parses TRAIN:VAL:TEST split ratios (three non-negative numbers, the first positive).
pub fn parse_split(flag: &str, s: &str) -> Result<[f64; 3]> {
    let parts: Vec<f64> = s
        .split(':')
        .map(|p| p.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Config(format!("{flag} '{s}' is not of the form TRAIN:VAL:TEST (e.g. 10:1:1)")))?;
    match parts[..] {
        [a, b, c] if a > 0.0 && b >= 0.0 && c >= 0.0 => Ok([a, b, c]),
        _ => Err(Error::Config(format!("{flag} '{s}' needs three non-negative ratios with a positive first one"))),
    }
}

/// The input normalisation called `name`; `mean-std` takes its statistics from `train`.
pub fn parse_normalization(flag: &str, name: &str, train: &Dataset) -> Result<Normalization> {
    match name {
        "zero-one" => Ok(Normalization::ZeroOne),
        "minus-one-one" => Ok(Normalization::MinusOneOne),
        "mean-std" => {
            let (mean, std) = train.per_channel_mean_std();
            Ok(Normalization::MeanStd { mean, std })
        }
        other => Err(Error::Config(format!("{flag} '{other}' (expected zero-one, minus-one-one or mean-std)"))),
    }
}
