//! Tier: tooling. What studies a finished run, apart from the model, its loss and its step:
//! evaluation pictures and metrics ([`eval`], [`metrics`], [`disentanglement`], [`tsne`] with
//! the small dense algebra it needs, [`linalg`]), the latent explorer ([`explore`]), the
//! one-file report of a run ([`report`]), grids of runs ([`sweep`]), and the ResNet-18
//! classifier that pre-trains encoders and judges samples ([`classify`]). Each is the library
//! side of a binary of the same name in `vae/src/bin/`.

pub mod classify;
pub mod disentanglement;
pub mod eval;
pub mod explore;
pub mod linalg;
pub mod metrics;
pub mod report;
pub mod sweep;
pub mod tsne;
