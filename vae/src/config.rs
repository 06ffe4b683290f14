//! The configuration of a training run, defined once: [`RunConfig`] is at the same time the
//! `train` command line (its fields are the flags, with their defaults and checks) and the
//! `config.json` a run folder and its checkpoints carry (serde, with `#[serde(default)]` so a
//! configuration written before a flag existed still reads).
//!
//! Every value is checked before any data is read: enum-like flags are [`clap::ValueEnum`]s
//! (`--help` lists their values and a typo is refused at parse time), numbers are checked by
//! their value parsers (`--beta=-5`, `--input-noise nan`, `--batch-size 0` are refused), and
//! [`RunConfig::check`] refuses combinations that would be silently ignored or wrong
//! (`--data-dir` with the generated dSprites, `--recon bce-logits --output sigmoid`, a β-TCVAE
//! weight with `--loss beta-vae`). Paths are stored absolute, so a run folder works from any
//! directory.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::data::{Dataset, DatasetKind, Normalization};
use crate::error::{Error, Result};
use crate::loss::{Objective, ReconLoss, TcEstimator};
use crate::model::{Arch, OutputActivation};
use crate::train::LossSetup;

// The three `…Kind` enums below are the flags' choices; the values the library runs on
// (`Objective`, `Normalization`, `nn::LrSchedule`) carry parameters that come from other flags
// and from the data (the training set's size N, its per-channel statistics, the epoch count),
// so they cannot be parsed from one flag. `objective()`, `normalization()` and `lr_schedule()`
// below are the one place each choice becomes its value.

/// The objective (`--loss`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ObjectiveKind {
    /// k1·recon + β·KL.
    BetaVae,
    /// recon + α·MI + β·TC + γ·DW-KL.
    BetaTcvae,
}

/// How input pixels are scaled (`--normalize`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NormalizeKind {
    /// [0, 1].
    ZeroOne,
    /// [−1, 1] (for `--output tanh`).
    MinusOneOne,
    /// Per channel, (x − mean) / std with the training split's statistics.
    MeanStd,
}

/// The learning rate per epoch (`--lr-schedule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LrScheduleKind {
    /// `--lr` throughout.
    Constant,
    /// From `--lr` to `--lr-final` in a straight line over the epochs.
    Linear,
    /// × `--lr-gamma` every `--lr-step` epochs.
    Step,
    /// Half a cosine from `--lr` to `--lr-final`.
    Cosine,
}

/// The flag name of an enum value (`resnet18-nobn`), as written on the command line and in
/// `config.json`.
pub fn flag_name<T: ValueEnum>(value: &T) -> String {
    value.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
}

/// Serde for enum flags: stored by their flag name, so `config.json` reads like the command.
mod by_flag_name {
    use super::*;

    pub fn serialize<T: ValueEnum, S: Serializer>(value: &T, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&flag_name(value))
    }

    pub fn deserialize<'de, T: ValueEnum, D: Deserializer<'de>>(d: D) -> std::result::Result<T, D::Error> {
        let name = String::deserialize(d)?;
        T::from_str(&name, false).map_err(serde::de::Error::custom)
    }
}

/// Configurations written before `epochs` had a default stored `null` for it.
fn epochs_or_default<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<usize, D::Error> {
    Ok(Option::<usize>::deserialize(d)?.unwrap_or_else(|| RunConfig::default().epochs))
}

fn finite(text: &str) -> std::result::Result<f64, String> {
    let v: f64 = text.parse().map_err(|_| format!("'{text}' is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{text} is not a finite number"))
    }
}

fn non_negative(text: &str) -> std::result::Result<f64, String> {
    let v = finite(text)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{text} is negative (expected a finite number ≥ 0)"))
    }
}

fn positive(text: &str) -> std::result::Result<f64, String> {
    let v = finite(text)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{text} is not positive (expected a finite number > 0)"))
    }
}

fn at_least_one(text: &str) -> std::result::Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("0 (expected at least 1)".into()),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("'{text}' is not a whole number")),
    }
}

/// The numbers of `text` between `separator`s, or an error naming the `form` expected.
fn separated_numbers(text: &str, separator: char, form: &str) -> std::result::Result<Vec<f64>, String> {
    text.split(separator)
        .map(|p| p.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| format!("'{text}' is not of the form {form}"))
}

/// Parses MIN,MAX log-variance bounds: finite, MIN < MAX, and MAX ≤ 88 so that the KL's
/// e^(log σ²) stays finite in f32 (it overflows above 88.72).
fn logvar_bounds(text: &str) -> std::result::Result<[f64; 2], String> {
    match separated_numbers(text, ',', "MIN,MAX (e.g. -30,20)")?[..] {
        [min, max] if min.is_finite() && max.is_finite() && min < max && max <= 88.0 => Ok([min, max]),
        _ => Err(format!("'{text}' needs two finite bounds MIN < MAX with MAX ≤ 88 (e^MAX must fit in f32)")),
    }
}

fn split_ratios(text: &str) -> std::result::Result<String, String> {
    parse_split(text).map(|_| text.to_string())
}

/// Parses TRAIN:VAL:TEST ratios: three finite, non-negative numbers, the first two positive
/// (a run needs training and validation images).
pub fn parse_split(text: &str) -> std::result::Result<[f64; 3], String> {
    match separated_numbers(text, ':', "TRAIN:VAL:TEST (e.g. 10:1:1)")?[..] {
        [a, b, c] if [a, b, c].iter().all(|v| v.is_finite()) && a > 0.0 && b > 0.0 && c >= 0.0 => Ok([a, b, c]),
        _ => Err(format!("'{text}' needs three finite ratios, the first two positive and the last ≥ 0")),
    }
}

/// Everything that defines a training run: data, model, objective, optimisation and seed.
/// The `train` flags (`--z-dim 16`) and the `config.json` keys (`"z_dim": 16`) are these fields.
#[derive(clap::Args, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunConfig {
    /// Model preset.
    #[arg(long, value_enum, default_value = "conv")]
    #[serde(with = "by_flag_name")]
    pub arch: Arch,
    /// Dataset (dsprites is generated: no download, no --data-dir).
    #[arg(long, value_enum, default_value = "dsprites")]
    #[serde(with = "by_flag_name")]
    pub dataset: DatasetKind,
    /// Where the dataset's files are (default: the dataset's standard location). Stored absolute.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Resize images to SIZE×SIZE (default: the dataset's own size; 64 for stl10 and folders).
    #[arg(long, value_parser = at_least_one)]
    pub image_size: Option<usize>,
    /// Use at most this many images (default: 20000 for dsprites, all for the others).
    #[arg(long, value_parser = at_least_one)]
    pub max_images: Option<usize>,
    /// Leave out the dataset's first N images (before --max-images counts), so two runs (a VAE
    /// and the classifier that judges it) can take disjoint ranges of one file.
    #[arg(long, default_value_t = 0)]
    pub skip_images: usize,
    /// Pascal-VOC annotation folder for bounding-box crops (--dataset folder, e.g. Stanford Dogs).
    #[arg(long)]
    pub annotation_dir: Option<PathBuf>,
    /// Centre-crop folder images to a square before resizing (--dataset folder, e.g. CelebA).
    #[arg(long)]
    pub center_crop: bool,
    /// Train/validation/test split ratios.
    #[arg(long, default_value = "10:1:1", value_parser = split_ratios)]
    pub split: String,
    /// Input normalisation (minus-one-one goes with --output tanh).
    #[arg(long, value_enum, default_value = "zero-one")]
    #[serde(with = "by_flag_name")]
    pub normalize: NormalizeKind,
    /// Latent size z.
    #[arg(long, default_value = "10", value_parser = at_least_one)]
    pub z_dim: usize,
    /// Clamp the encoder's log-variance log σ² to MIN,MAX (e.g. -30,20, the bounds of
    /// diffusers' Gaussian posterior), so that a dimension no KL holds (β = 0) cannot overflow
    /// σ or the KL. Default: unbounded.
    #[arg(long, value_name = "MIN,MAX", value_parser = logvar_bounds, allow_hyphen_values = true)]
    pub logvar_clamp: Option<[f64; 2]>,
    /// Bound log σ² softly instead (min + softplus(max − softplus(max − x) − min), as PETS
    /// does): the gradient never reaches 0, where the clamp's is 0 at and beyond a bound.
    #[arg(long)]
    pub logvar_clamp_soft: bool,
    /// Objective: beta-vae (k1·recon + β·KL) or beta-tcvae (recon + α·MI + β·TC + γ·DW-KL).
    #[arg(long, value_enum, default_value = "beta-vae")]
    #[serde(with = "by_flag_name")]
    pub loss: ObjectiveKind,
    /// β: the KL weight (beta-vae) or the total-correlation weight (beta-tcvae).
    #[arg(long, default_value = "1", value_parser = non_negative)]
    pub beta: f64,
    /// α: the mutual-information weight (beta-tcvae only).
    #[arg(long, default_value = "1", value_parser = non_negative)]
    pub alpha: f64,
    /// γ: the dimension-wise KL weight (beta-tcvae only).
    #[arg(long, default_value = "1", value_parser = non_negative)]
    pub gamma: f64,
    /// k1: the reconstruction weight (beta-vae only).
    #[arg(long, default_value = "1", value_parser = non_negative)]
    pub k1: f64,
    /// Minibatch-stratified instead of minibatch-weighted sampling (beta-tcvae only).
    #[arg(long)]
    pub stratified: bool,
    /// Reconstruction loss.
    #[arg(long, value_enum, default_value = "bce-logits")]
    #[serde(with = "by_flag_name")]
    pub recon: ReconLoss,
    /// Decoder output activation (logits for bce-logits; sigmoid or tanh for mse and bce).
    #[arg(long, value_enum, default_value = "logits")]
    #[serde(with = "by_flag_name")]
    pub output: OutputActivation,
    /// Number of epochs (on --resume: the new total, to train a finished run further).
    #[arg(long, default_value = "6", value_parser = at_least_one)]
    #[serde(deserialize_with = "epochs_or_default")]
    pub epochs: usize,
    /// Mini-batch size (the last, incomplete training batch of an epoch is dropped).
    #[arg(long, default_value = "32", value_parser = at_least_one)]
    pub batch_size: usize,
    /// Adam learning rate (the start of any schedule).
    #[arg(long, default_value = "1e-3", value_parser = positive)]
    pub lr: f64,
    /// Learning-rate schedule per epoch.
    #[arg(long, value_enum, default_value = "constant")]
    #[serde(with = "by_flag_name")]
    pub lr_schedule: LrScheduleKind,
    /// The last epoch's learning rate (linear and cosine schedules).
    #[arg(long, default_value = "1e-5", value_parser = positive)]
    pub lr_final: f64,
    /// Epochs between decays (step schedule).
    #[arg(long, default_value = "10", value_parser = at_least_one)]
    pub lr_step: usize,
    /// The decay factor (step schedule).
    #[arg(long, default_value = "0.1", value_parser = positive)]
    pub lr_gamma: f64,
    /// Stop after this many epochs without a better validation loss (0: never).
    #[arg(long, default_value = "5")]
    pub patience: usize,
    /// Gaussian noise (this standard deviation) added to the encoder's input while training.
    #[arg(long, default_value = "0", value_parser = non_negative)]
    pub input_noise: f64,
    /// Random seed (model initialisation, data split and order, sampling noise).
    #[arg(long, default_value = "0")]
    pub seed: u64,
    /// Start the encoder from a classifier checkpoint written by `classify`. Stored absolute.
    #[arg(long)]
    pub pretrained_encoder: Option<PathBuf>,
    /// Keep the (pre-trained) encoder's weights fixed.
    #[arg(long)]
    pub freeze_encoder: bool,
}

impl Default for RunConfig {
    /// The flags' defaults: the command line with no flags.
    fn default() -> Self {
        use clap::{Args, FromArgMatches};
        let matches = RunConfig::augment_args(clap::Command::new("train")).get_matches_from(["train"]);
        // Every field has a default or is optional: parsing no flags cannot fail.
        RunConfig::from_arg_matches(&matches).expect("RunConfig's flags all have defaults")
    }
}

fn absolute(flag: &str, path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::Config(format!("--{flag} {}: {e}", path.display())))
}

impl RunConfig {
    /// Reads `dir/config.json`.
    pub fn read(dir: &Path) -> Result<RunConfig> {
        let path = dir.join(crate::runs::CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        RunConfig::from_json(&text)
            .map_err(|e| Error::Config(format!("{}: not a train run's config.json: {e}", path.display())))
    }

    /// Parses a configuration written by [`RunConfig::to_json`] (or by an older `train`).
    pub fn from_json(text: &str) -> std::result::Result<RunConfig, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The configuration as pretty-printed JSON (`config.json`, the checkpoints' `config`).
    pub fn to_json(&self) -> String {
        // Plain strings, numbers, booleans and paths: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Refuses flag combinations that would be ignored or wrong, and makes paths absolute.
    /// Runs before any data is read.
    pub fn check(&mut self) -> Result<()> {
        let defaults = RunConfig::default();
        let refuse = |msg: String| Err(Error::Config(msg));
        if self.dataset == DatasetKind::DSprites && self.data_dir.is_some() {
            return refuse("--data-dir is not used by --dataset dsprites (its images are generated)".into());
        }
        if self.dataset != DatasetKind::Folder && (self.annotation_dir.is_some() || self.center_crop) {
            let flag = if self.center_crop { "--center-crop" } else { "--annotation-dir" };
            return refuse(format!("{flag} applies to --dataset folder only, not {}", self.dataset));
        }
        match (self.recon, self.output) {
            (ReconLoss::BceLogits, OutputActivation::Logits) => {}
            (ReconLoss::BceLogits, other) => {
                return refuse(format!(
                    "--recon bce-logits works on raw logits: use --output logits, not {}",
                    flag_name(&other)
                ))
            }
            (ReconLoss::Bce, OutputActivation::Linear | OutputActivation::Tanh) => {
                return refuse(format!(
                    "--recon bce needs probabilities: use --output sigmoid, not {}",
                    flag_name(&self.output)
                ))
            }
            (recon, OutputActivation::Logits) => {
                return refuse(format!(
                    "--recon {} needs --output sigmoid or tanh (raw logits are for bce-logits)",
                    flag_name(&recon)
                ))
            }
            _ => {}
        }
        let unused: Vec<&str> = match self.loss {
            ObjectiveKind::BetaVae => [
                ("--alpha", self.alpha != defaults.alpha),
                ("--gamma", self.gamma != defaults.gamma),
                ("--stratified", self.stratified),
            ]
            .into_iter()
            .filter_map(|(flag, set)| set.then_some(flag))
            .collect(),
            ObjectiveKind::BetaTcvae => {
                if self.k1 != defaults.k1 {
                    vec!["--k1"]
                } else {
                    vec![]
                }
            }
        };
        if !unused.is_empty() {
            return refuse(format!("{} not used by --loss {}", unused.join(", "), flag_name(&self.loss)));
        }
        if let Some(size) = self.image_size {
            let multiple = self.arch.size_multiple();
            if size % multiple != 0 {
                return refuse(format!(
                    "--image-size {size}: the {} preset needs sides that are multiples of {multiple}",
                    self.arch
                ));
            }
        }
        if self.logvar_clamp_soft && self.logvar_clamp.is_none() {
            return refuse("--logvar-clamp-soft needs --logvar-clamp MIN,MAX (the bounds it keeps to)".into());
        }
        if self.freeze_encoder && self.pretrained_encoder.is_none() {
            return refuse("--freeze-encoder needs --pretrained-encoder (it would freeze random weights)".into());
        }
        if let Some(path) = &self.pretrained_encoder {
            if !path.is_file() {
                return refuse(format!("--pretrained-encoder {}: no such file", path.display()));
            }
        }
        self.data_dir = self.data_dir.as_deref().map(|p| absolute("data-dir", p)).transpose()?;
        self.annotation_dir = self.annotation_dir.as_deref().map(|p| absolute("annotation-dir", p)).transpose()?;
        self.pretrained_encoder =
            self.pretrained_encoder.as_deref().map(|p| absolute("pretrained-encoder", p)).transpose()?;
        Ok(())
    }

    /// The split ratios (checked when the configuration was parsed).
    pub fn split_ratios(&self) -> Result<[f64; 3]> {
        parse_split(&self.split).map_err(|e| Error::Config(format!("--split {e}")))
    }

    /// The objective, for a training set of `train_len` images (β-TCVAE's estimators need it).
    pub fn objective(&self, train_len: usize) -> Objective {
        match self.loss {
            ObjectiveKind::BetaVae => Objective::BetaVae { k1: self.k1, beta: self.beta },
            ObjectiveKind::BetaTcvae => Objective::BetaTcVae {
                alpha: self.alpha,
                beta: self.beta,
                gamma: self.gamma,
                dataset_size: train_len,
                estimator: if self.stratified {
                    TcEstimator::MinibatchStratified
                } else {
                    TcEstimator::MinibatchWeighted
                },
            },
        }
    }

    /// The loss `train` minimises, for a training set of `train_len` images.
    pub fn loss_setup(&self, train_len: usize) -> LossSetup {
        LossSetup {
            recon: self.recon,
            output: self.output,
            objective: self.objective(train_len),
            input_noise_std: self.input_noise,
        }
    }

    /// The normalisation; `mean-std` takes its statistics from `train`.
    pub fn normalization(&self, train: &Dataset) -> Normalization {
        match self.normalize {
            NormalizeKind::ZeroOne => Normalization::ZeroOne,
            NormalizeKind::MinusOneOne => Normalization::MinusOneOne,
            NormalizeKind::MeanStd => {
                let (mean, std) = train.per_channel_mean_std();
                Normalization::MeanStd { mean, std }
            }
        }
    }

    /// The learning rate of every epoch.
    pub fn lr_schedule(&self) -> Result<nn::LrSchedule> {
        use nn::LrSchedule;
        let steps = self.epochs.saturating_sub(1).max(1);
        let s = match self.lr_schedule {
            LrScheduleKind::Constant => LrSchedule::Constant { lr: self.lr },
            LrScheduleKind::Linear => LrSchedule::Linear { start: self.lr, end: self.lr_final, steps },
            LrScheduleKind::Step => LrSchedule::Step { lr: self.lr, gamma: self.lr_gamma, every: self.lr_step },
            LrScheduleKind::Cosine => LrSchedule::Cosine { lr: self.lr, min_lr: self.lr_final, steps },
        };
        s.validate()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: RunConfig,
    }

    fn parse(args: &[&str]) -> std::result::Result<RunConfig, String> {
        Cli::try_parse_from(std::iter::once("train").chain(args.iter().copied()))
            .map(|c| c.config)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_defaults_are_the_conv_preset_on_dsprites() {
        let c = RunConfig::default();
        assert_eq!(
            (c.arch, c.dataset, c.z_dim, c.epochs, c.batch_size),
            (Arch::Conv, DatasetKind::DSprites, 10, 6, 32)
        );
    }

    #[test]
    fn a_config_survives_a_json_round_trip() {
        let c =
            parse(&["--arch", "resnet18-nobn", "--loss", "beta-tcvae", "--recon", "mse", "--output", "tanh"]).unwrap();
        assert_eq!(RunConfig::from_json(&c.to_json()).unwrap(), c);
        assert!(c.to_json().contains("\"arch\": \"resnet18-nobn\""), "{}", c.to_json());
    }

    #[test]
    fn an_older_config_with_missing_keys_and_null_epochs_still_reads() {
        let c =
            RunConfig::from_json(r#"{"arch": "dense", "epochs": null, "device": "cpu", "output": "none"}"#).unwrap();
        assert_eq!((c.arch, c.epochs, c.output), (Arch::Dense, RunConfig::default().epochs, OutputActivation::Logits));
    }

    #[test]
    fn an_unknown_enum_value_is_refused_when_parsing_and_listed() {
        let err = parse(&["--arch", "bogus"]).unwrap_err();
        assert!(err.contains("bogus") && err.contains("resnet18-nobn"), "{err}");
    }

    #[test]
    fn out_of_range_numbers_are_refused_when_parsing() {
        for (flag, value) in [
            ("--beta", "-5"),
            ("--beta", "nan"),
            ("--input-noise", "-1"),
            ("--input-noise", "nan"),
            ("--lr", "0"),
            ("--lr", "inf"),
            ("--batch-size", "0"),
            ("--epochs", "0"),
            ("--z-dim", "0"),
            ("--split", "10:0:1"),
            ("--split", "10:1"),
        ] {
            let arg = format!("{flag}={value}");
            assert!(parse(&[&arg]).is_err(), "{arg} was accepted");
        }
    }

    #[test]
    fn a_data_dir_with_generated_dsprites_is_refused() {
        let mut c = parse(&["--data-dir", "/tmp"]).unwrap();
        let err = c.check().unwrap_err().to_string();
        assert!(err.contains("--data-dir") && err.contains("dsprites"), "{err}");
    }

    #[test]
    fn a_beta_tcvae_weight_with_beta_vae_is_refused() {
        let mut c = parse(&["--alpha", "2"]).unwrap();
        let err = c.check().unwrap_err().to_string();
        assert!(err.contains("--alpha") && err.contains("beta-vae"), "{err}");
    }

    #[test]
    fn a_relative_data_dir_is_stored_absolute() {
        let mut c = parse(&["--dataset", "fashion-mnist", "--data-dir", "some/relative/dir"]).unwrap();
        c.check().unwrap();
        let dir = c.data_dir.unwrap();
        assert!(dir.is_absolute() && dir.ends_with("some/relative/dir"), "{}", dir.display());
    }

    #[test]
    fn bce_logits_needs_raw_logits() {
        let mut c = parse(&["--output", "sigmoid"]).unwrap();
        assert!(c.check().unwrap_err().to_string().contains("--output logits"));
    }

    #[test]
    fn bce_needs_probabilities_not_tanh_or_linear_outputs() {
        for output in ["tanh", "linear"] {
            let mut c = parse(&["--recon", "bce", "--output", output]).unwrap();
            let err = c.check().unwrap_err().to_string();
            assert!(err.contains("--output sigmoid") && err.contains(output), "{output}: {err}");
        }
        parse(&["--recon", "bce", "--output", "sigmoid"]).unwrap().check().unwrap();
    }

    #[test]
    fn mse_takes_linear_outputs_on_standardised_data() {
        let mut c = parse(&["--recon", "mse", "--output", "linear", "--normalize", "mean-std"]).unwrap();
        c.check().unwrap();
    }

    #[test]
    fn logvar_bounds_parse_with_a_negative_minimum_and_survive_json() {
        let c = parse(&["--logvar-clamp", "-30,20"]).unwrap();
        assert_eq!(c.logvar_clamp, Some([-30.0, 20.0]));
        assert_eq!(RunConfig::from_json(&c.to_json()).unwrap(), c);
        // A config.json written before the flag existed reads as unbounded.
        assert_eq!(RunConfig::from_json(r#"{"arch": "dense"}"#).unwrap().logvar_clamp, None);
    }

    #[test]
    fn a_soft_logvar_bound_needs_its_bounds() {
        let mut c = parse(&["--logvar-clamp-soft"]).unwrap();
        let err = c.check().unwrap_err().to_string();
        assert!(err.contains("--logvar-clamp-soft") && err.contains("--logvar-clamp MIN,MAX"), "{err}");
        parse(&["--logvar-clamp=-30,20", "--logvar-clamp-soft"]).unwrap().check().unwrap();
    }

    #[test]
    fn logvar_bounds_out_of_order_or_overflowing_are_refused_when_parsing() {
        for value in ["20,-30", "5,5", "-30,100", "nan,1", "-30", "-30,20,1", "a,b"] {
            let err = parse(&["--logvar-clamp", value]).unwrap_err();
            assert!(err.contains("--logvar-clamp") && err.contains(value), "{value}: {err}");
        }
    }
}
