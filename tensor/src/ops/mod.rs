//! Tier: core. Tensor ops, one file per op family (a folder where the family has several
//! pairs of forward and backward: batch norm's training and eval modes, max and average
//! pooling, Adam and SGD). Each op validates shapes, dtypes and devices, then makes one match
//! on the operands' device: the reference definition (`crate::reference`), the fast CPU kernel
//! (`crate::cpu`, its dtype picked by `with_float_type!`) or the GPU launcher.

pub mod batch_norm;
pub(crate) mod checks;
pub mod concat;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod elementwise;
pub mod finite;
pub mod interpolate;
pub mod matmul;
pub mod optim;
pub mod packed;
pub mod pool;
pub mod reduce;
pub mod upsampled_conv;
