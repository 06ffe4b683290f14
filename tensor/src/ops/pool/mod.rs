//! 2-D pooling ops on [N, C, H, W] tensors, with PyTorch's semantics (ceil_mode = false,
//! dilation 1): `max_pool2d` (returning argmax indices for its backward), `avg_pool2d`
//! (count_include_pad = true) and `global_avg_pool2d`, each beside its backward.
//!
//! `max.rs` and `avg.rs` hold the ops; this file the indices a max pool returns and the checks
//! they share.

use std::sync::Arc;

use gpu::{Context, GpuBuffer};

use crate::descriptors::Pool2dGeometry;
use crate::device::Device;
use crate::error::{gpu_err, invalid, shape_err, Result, TensorError};
use crate::ops::checks::{check_plane, nchw};
use crate::tensor::Tensor;

mod avg;
mod max;

pub use avg::{avg_pool2d, avg_pool2d_backward, global_avg_pool2d, global_avg_pool2d_backward};
pub use max::{max_pool2d, max_pool2d_backward};

/// The argmax positions a max pool returns for its backward, on the device of the pooled
/// tensor: host indices for a CPU tensor, a u32 buffer for a GPU one (kept there: the
/// backward reads it in place, nothing is read back).
#[derive(Clone, Debug)]
pub enum PoolIndices {
    /// Flat input positions, one per output element, for a CPU tensor.
    Cpu(Vec<usize>),
    /// The same, for a tensor on the reference device.
    Reference(Vec<usize>),
    /// A u32 buffer on the GPU, with its pooling geometry.
    Gpu(GpuIndices),
}

/// u32 indices in a buffer of a GPU context (shared by clones), with the pooling geometry
/// that produced them: the GPU backward gathers per input pixel over the windows covering
/// it, so it needs the kernel, stride and padding, not just the indices.
#[derive(Clone)]
pub struct GpuIndices {
    buffer: Arc<GpuBuffer>,
    ctx: Arc<Context>,
    geom: Pool2dGeometry,
}

impl std::fmt::Debug for GpuIndices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuIndices {{ {:?}, {:?} }}", self.buffer, self.geom)
    }
}

impl PoolIndices {
    /// Number of indices (one per pooled output element).
    pub fn len(&self) -> usize {
        match self {
            PoolIndices::Cpu(v) | PoolIndices::Reference(v) => v.len(),
            PoolIndices::Gpu(g) => g.geom.y_len(),
        }
    }

    /// True when there are no indices.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device holding the indices.
    pub fn device(&self) -> Device {
        match self {
            PoolIndices::Cpu(_) => Device::Cpu,
            PoolIndices::Reference(_) => Device::Reference,
            PoolIndices::Gpu(g) => Device::from_context(Arc::clone(&g.ctx)),
        }
    }

    /// The indices on the host (a read-back for GPU indices).
    pub fn to_vec(&self) -> Result<Vec<usize>> {
        match self {
            PoolIndices::Cpu(v) | PoolIndices::Reference(v) => Ok(v.clone()),
            PoolIndices::Gpu(g) => {
                let v = g.ctx.read_u32(&g.buffer).map_err(gpu_err("PoolIndices::to_vec"))?;
                Ok(v[..g.geom.y_len()].iter().map(|&i| i as usize).collect())
            }
        }
    }
}

impl From<Vec<usize>> for PoolIndices {
    fn from(v: Vec<usize>) -> Self {
        PoolIndices::Cpu(v)
    }
}

/// Checks kernel, stride and padding against an input of spatial size [H, W] and returns the
/// pooling geometry for an [N, C, H, W] input with its output shape [N, C, OH, OW].
fn pool_geom(
    op: &'static str,
    input_shape: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<(Pool2dGeometry, [usize; 4])> {
    let [n, c, h, w] = nchw(op, "input", input_shape)?;
    check_plane(op, input_shape)?;
    if kernel.contains(&0) || stride.contains(&0) {
        return invalid(op, format!("kernel {kernel:?} and stride {stride:?} must be positive"));
    }
    if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
        return invalid(op, format!("padding {padding:?} must be at most half the kernel {kernel:?}"));
    }
    if h + 2 * padding[0] < kernel[0] || w + 2 * padding[1] < kernel[1] {
        return shape_err(
            op,
            format!("kernel {kernel:?} is larger than the padded input (input {input_shape:?}, padding {padding:?})"),
        );
    }
    let g = Pool2dGeometry::new(n * c, [h, w], kernel, stride, padding).ok_or_else(|| TensorError::Shape {
        op,
        msg: format!("kernel {kernel:?}, stride {stride:?} and padding {padding:?} do not fit input {input_shape:?}"),
    })?;
    Ok((g, [n, c, g.oh, g.ow]))
}

/// Errors unless `grad_y` has the shape the forward produced.
fn check_grad(op: &'static str, grad_y: &Tensor, expected: &[usize]) -> Result<()> {
    if grad_y.shape() != expected {
        return shape_err(
            op,
            format!("grad_y has shape {:?}, expected the forward's output shape {expected:?}", grad_y.shape()),
        );
    }
    Ok(())
}
