//! # vae
//!
//! Tier: core for the model presets ([`model`]), the objectives ([`loss`]) and the step
//! ([`train`]); tooling for everything else (the training loop with its run folders, data
//! loaders, metrics, pictures, the explorer, reports, sweeps).
//!
//! The variational autoencoders of the project's five papers, on top of `nn`: the model
//! presets ([`model`]: `dense`, `basic`, `conv`, `resnet18` (and `resnet18-nobn`, plus the
//! classifier used for transfer learning), `resnet-bn`), their objectives ([`loss`]: MSE / BCE /
//! BCE-with-logits reconstruction, the analytic KL, β-VAE, β-TCVAE with minibatch-weighted and
//! minibatch-stratified estimators), real dataset loaders ([`data`]: IDX, CIFAR-10, STL-10, image
//! folders with VOC box crops, procedurally generated dSprites), evaluation ([`metrics`], [`tsne`],
//! [`linalg`]) and pictures ([`plot`]).
//!
//! How data flows in a training run ([`trainer`], which the `train` binary calls): `data::load` reads a dataset into one
//! [N, C, H, W] array, `Dataset::split` cuts train/validation/test, and `data::Batches` yields
//! shuffled, normalised [B, C, H, W] tensors prepared on a background thread. `train::train_step`
//! runs `model::Vae::forward_with_noise` (encoder → μ, log σ² → z = μ + σ·ε → decoder), applies
//! the output activation, computes `loss::vae_loss`, back-propagates and steps the optimizer.
//! `trainer::Trainer` runs the epochs and writes metrics, checkpoints (`nn::checkpoint`, with
//! `trainer::Progress` saying where training stands) and PNGs (`plot`) to the run folder.
//!
//! The studies of `docs/results.md` build on a finished run folder: [`runs`] reads its
//! configuration, split and checkpoint back; [`eval`] encodes, decodes, traverses,
//! interpolates and draws feature maps (the `eval` binary); [`classify`] trains and applies the
//! ResNet-18 classifier used for encoder pre-training and as a judge of samples (the `classify`
//! binary); [`sweep`] turns a grid of `train` runs into one table and one plot (the `sweep`
//! binary); [`explore`] serves a run's model to a page in the browser, where sliders move the
//! latent code (the `explore` binary); [`report`] writes a run folder's one-file `report.html`
//! (the `report` binary); [`provenance`] records where, when and with which code each `train`
//! invocation of a run ran; [`streams`] names the random streams a run draws from.

#![warn(missing_docs)]

pub mod classify;
pub mod cli;
pub mod config;
pub mod data;
pub mod disentanglement;
pub mod error;
pub mod eval;
pub mod explore;
pub mod linalg;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod plot;
pub mod provenance;
pub mod report;
pub mod runs;
pub mod streams;
pub mod sweep;
pub mod train;
pub mod trainer;
pub mod tsne;

pub use error::{Error, Result};
