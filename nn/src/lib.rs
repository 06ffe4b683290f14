//! # nn
//!
//! Neural-network building blocks on top of `autograd`: the [`Module`] trait, PyTorch-style
//! layers with PyTorch's weight layouts and initialisation, parameter freezing and counting,
//! optimizers (SGD, Adam, AdamW) with learning-rate schedules and early stopping, and
//! safetensors checkpoints that load into and from PyTorch.
//!
//! How data flows: a model is a tree of modules. Constructors draw parameters from an
//! [`Init`] (seeded generator + float type) into [`autograd::Var`] leaves; `forward(&x)`
//! chains autograd ops, so `loss.backward()` fills each parameter's `.grad()`. The model
//! lists its parameters and buffers by PyTorch state_dict name (`encoder.layer1.0.conv1.weight`,
//! `…bn1.running_mean`); an [`optim::Optimizer`] built from `model.named_parameters()`
//! updates them in place with one fused kernel per parameter, and [`checkpoint`] writes and
//! reads the same names (plus optimizer state and the run position) to safetensors files.
//! Batch-norm running statistics and dropout masks are the only state `forward` changes;
//! `set_training(false)` switches both to evaluation behaviour.

pub mod checkpoint;
pub mod error;
pub mod init;
pub mod layers;
pub mod module;
pub mod optim;

pub use error::{Error, Result, ShapeMismatch, StateMismatch};
pub use init::Init;
pub use layers::*;
pub use module::{Buffer, BufferKind, Module, ParameterCounts, StateItem};
pub use optim::{clip_grad_norm, Adam, AdamConfig, LrSchedule, Optimizer, Sgd, SgdConfig};
