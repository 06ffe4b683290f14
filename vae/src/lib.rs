//! (filled in by the vae issue)
//!
//! `data`: the datasets (MNIST, Fashion-MNIST, CIFAR-10, STL-10, image folders, dSprites),
//! normalisation, train/val/test splits and a prefetching mini-batch iterator.

pub mod data;
pub mod loss;
pub mod model;
pub mod linalg;
pub mod metrics;
pub mod tsne;
pub mod error;
pub mod train;
pub mod plot;
