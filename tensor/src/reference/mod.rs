//! The reference tier: every op family's definition, written as plainly as possible. f64, one
//! thread, no blocking, no packing, no tricks; a few dozen lines per family, each loop the
//! formula in the doc comment above it. Read these first: they say what an op computes. The
//! fast kernels in `crate::cpu` and the WGSL kernels in `shaders/` say how to compute it
//! quickly, and the tests hold both to these (the workspace's `tests/reference_tier.rs`).
//!
//! Tier: core. These definitions are also a device you can run: a tensor moved to
//! [`Device::Reference`](crate::Device::Reference) runs every op here, through the same
//! `crate::ops` API as the CPU and GPU. Each op's reference arm reads its operands with
//! [`values`] (the view's elements in row-major order, as f64), calls the definition, and
//! wraps the result with [`tensor`] (stored as the operands' dtype). So
//! `cargo run -p vae --bin train -- --device reference` trains a model whose every step a
//! debugger can step through, loop by loop.
//!
//! Layouts are PyTorch's (row-major). Element-wise ops have no file here: each row of
//! `crate::elementwise_table` is its own definition, its f64 instance the oracle of its kernels.

use crate::dtype::DType;
use crate::error::{Result, TensorError};
use crate::storage::{CpuStorage, Storage};
use crate::tensor::Tensor;

pub mod batch_norm;
pub mod concat;
pub mod conv;
pub mod interpolate;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod upsampled_conv;

/// The elements of `t`'s view in row-major order, as f64: what every definition here reads.
/// `t` lives in host memory (the reference device, or the CPU).
pub fn values(t: &Tensor) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(t.numel());
    match t.storage() {
        Storage::Reference(CpuStorage::F32(v)) | Storage::Cpu(CpuStorage::F32(v)) => {
            t.layout().for_each_index(|i| out.push(v[i] as f64))
        }
        Storage::Reference(CpuStorage::F64(v)) | Storage::Cpu(CpuStorage::F64(v)) => {
            t.layout().for_each_index(|i| out.push(v[i]))
        }
        Storage::Gpu(_) => {
            return Err(TensorError::Device {
                op: "reference",
                msg: format!("the reference tier reads host memory; this tensor lives on {}", t.device().name()),
            })
        }
    }
    Ok(out)
}

/// `values` of each tensor of an optional operand (a bias, an affine γ).
pub fn values_of(t: Option<&Tensor>) -> Result<Option<Vec<f64>>> {
    t.map(values).transpose()
}

/// A tensor of `shape` on the reference device holding `values` as `dtype` (for f32, each
/// value rounded once, from the f64 the definition computed).
pub fn tensor(values: Vec<f64>, shape: &[usize], dtype: DType) -> Tensor {
    let storage = match dtype {
        DType::F64 => CpuStorage::F64(values),
        DType::F32 => CpuStorage::F32(values.into_iter().map(|x| x as f32).collect()),
    };
    Tensor::from_reference_storage(storage, shape)
}
