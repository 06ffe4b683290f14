//! The layers, one file per layer family. Each is a plain struct with public parameters and
//! a `Module` impl; weight layouts and initialisation follow PyTorch.

pub mod activation;
pub mod batch_norm;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod dropout;
pub mod linear;
pub mod pool;
pub mod reshape;
pub mod sequential;
pub mod upsample;

pub use activation::{LeakyReLU, ReLU, SiLU, Sigmoid, Tanh};
pub use batch_norm::{BatchNorm, BatchNorm1d, BatchNorm2d, BatchNormConfig, BatchNormNd, ChannelAffine};
pub use conv2d::{Conv2d, Conv2dConfig};
pub use conv_transpose2d::{ConvTranspose2d, ConvTranspose2dConfig};
pub use dropout::Dropout;
pub use linear::Linear;
pub use pool::{AvgPool2d, GlobalAvgPool, MaxPool2d, Pool2dConfig};
pub use reshape::{Flatten, Reshape};
pub use sequential::Sequential;
pub use upsample::{Upsample, UpsampleMode};
