//! # vae
//!
//! Tier: core for the model presets ([`model`]), the objectives ([`loss`]) and the step
//! ([`train`]), about 1,700 lines; beside them the training loop with its run folders
//! ([`trainer`], [`config`], [`runs`]), the data loaders ([`data`]) and pictures ([`plot`]);
//! the tools that study a finished run live apart, in [`tools`] (evaluation, metrics,
//! t-SNE, the explorer, reports, sweeps, the classifier).
//!
//! The variational autoencoders of the project's five papers, on top of `nn`: the model
//! presets ([`model`]: `dense`, `basic`, `conv`, `resnet18` (and `resnet18-nobn`, plus the
//! classifier used for transfer learning), `resnet-bn`), their objectives ([`loss`]: MSE / BCE /
//! BCE-with-logits reconstruction, the analytic KL, β-VAE, β-TCVAE with minibatch-weighted and
//! minibatch-stratified estimators), real dataset loaders ([`data`]: IDX, CIFAR-10, STL-10, image
//! folders with VOC box crops, procedurally generated dSprites), evaluation ([`tools::metrics`], [`tools::tsne`],
//! [`tools::linalg`]) and pictures ([`plot`]).
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
//! configuration, split and checkpoint back; [`tools::eval`] encodes, decodes, traverses,
//! interpolates and draws feature maps (the `eval` binary); [`tools::classify`] trains and applies the
//! ResNet-18 classifier used for encoder pre-training and as a judge of samples (the `classify`
//! binary); [`tools::sweep`] turns a grid of `train` runs into one table and one plot (the `sweep`
//! binary); [`tools::explore`] serves a run's model to a page in the browser, where sliders move the
//! latent code (the `explore` binary); [`tools::report`] writes a run folder's one-file `report.html`
//! (the `report` binary); [`provenance`] records where, when and with which code each `train`
//! invocation of a run ran; [`streams`] names the random streams a run draws from.

#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod data;
pub mod error;
pub mod fuzz;
pub mod loss;
pub mod model;
pub mod plot;
pub mod provenance;
pub mod runs;
pub mod streams;
pub mod tools;
pub mod train;
pub mod trainer;

pub use error::{Error, Result};
