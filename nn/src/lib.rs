//! # nn
//!
//! Tier: core (layers, optimizers); checkpoints and schedules are tooling around them.
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
//!
//! One training step of a two-layer MLP:
//!
//! ```
//! use autograd::Var;
//! use nn::optim::Optimizer;
//! use nn::{Adam, AdamConfig, Init, Linear, Module, ReLU, Sequential};
//! use tensor::{DType, Rng, Tensor};
//!
//! let mut init = Init::new(0);
//! // x: [N, 3] → [N, 16] → [N, 1]
//! let model = Sequential::new()
//!     .with(Linear::new(3, 16, &mut init)?)
//!     .with(ReLU)
//!     .with(Linear::new(16, 1, &mut init)?);
//! let mut rng = Rng::new(1);
//! let x = Var::constant(Tensor::rand_normal(&[8, 3], 0.0, 1.0, DType::F32, &mut rng));
//! let target = Var::constant(Tensor::zeros(&[8, 1], DType::F32));
//! let mut optimizer = Adam::new(model.named_parameters(), AdamConfig::new(1e-2))?;
//!
//! optimizer.zero_grad();
//! let loss = model.forward(&x)?.sub(&target)?.square()?.mean_all()?; // mean squared error
//! loss.backward()?;
//! optimizer.step()?;
//! assert_eq!(model.named_parameters()[0].0, "0.weight"); // PyTorch's state_dict names
//! assert!(model.named_parameters().iter().all(|(_, p)| p.grad().is_some()));
//! # Ok::<(), nn::Error>(())
//! ```

#![warn(missing_docs)]

pub mod atomic_file;
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
