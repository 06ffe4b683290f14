//! 2-D pooling ops on [N, C, H, W] tensors, with PyTorch's semantics (ceil_mode = false,
//! dilation 1): `max_pool2d` (returning argmax indices for its backward), `avg_pool2d`
//! (count_include_pad = true) and `global_avg_pool2d`, each beside its backward.

use std::sync::Arc;

use gpu::kernels::pool as gpu_kernel;
use gpu::{Context, GpuBuffer};

use crate::cpu::pool as kernel;
use crate::descriptors::Pool2dGeometry;
use crate::device::{same_device, Device};
use crate::dtype::{DType, Float};
use crate::error::{gpu_err, invalid, shape_err, Result, TensorError};
use crate::gpu_parts::{run_gpu_in_parts, Cut};
use crate::ops::checks::{check_plane, nchw};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::{gpu_alloc, Tensor};

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
/// pooling geometry for an [N, C, H, W] input.
fn pool_geom(
    op: &'static str,
    input_shape: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<Pool2dGeometry> {
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
    Pool2dGeometry::new(n * c, [h, w], kernel, stride, padding).ok_or_else(|| TensorError::Shape {
        op,
        msg: format!("kernel {kernel:?}, stride {stride:?} and padding {padding:?} do not fit input {input_shape:?}"),
    })
}

fn output_shape(input_shape: &[usize], g: &Pool2dGeometry) -> [usize; 4] {
    [input_shape[0], input_shape[1], g.oh, g.ow]
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

// ---------------------------------------------------------------- max pool

/// Max pool over windows `kernel` = [KH, KW] moved by `stride`, with implicit −∞ `padding`
/// (each at most half the kernel). Output [N, C, OH, OW], OH = ⌊(H + 2·PH − KH)/SH⌋ + 1.
///
/// Also returns the argmax of every output (row-major over [N, C, OH, OW]) as a flat index
/// h·W + w into that output's own [H, W] input plane, like PyTorch's `return_indices=True`,
/// on x's device; pass it to [`max_pool2d_backward`].
// x: [N, C, H, W] → y: [N, C, OH, OW], indices: N·C·OH·OW plane-relative positions
pub fn max_pool2d(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<(Tensor, PoolIndices)> {
    const OP: &str = "max_pool2d";
    let _profile = profile::scope(OpFamily::Pool, OP, x);
    let g = pool_geom(OP, x.shape(), kernel, stride, padding)?;
    let shape = output_shape(x.shape(), &g);
    match x.storage() {
        Storage::Cpu(_) => {
            let x = x.contiguous()?;
            match x.dtype() {
                DType::F32 => max_pool2d_typed::<f32>(&x, &g, &shape),
                DType::F64 => max_pool2d_typed::<f64>(&x, &g, &shape),
            }
        }
        Storage::Reference(_) => {
            let (y, argmax) = reference::pool::max_pool2d(&reference::values(x)?, &g);
            Ok((reference::tensor(y, &shape, x.dtype()), PoolIndices::Reference(argmax)))
        }
        Storage::Gpu(s) => {
            // The indices are u32, not a tensor: allocated here and kept beside the output.
            let ctx = Arc::clone(s.context());
            let indices = gpu_alloc(&ctx, g.y_len(), OP)?;
            let plane = g.oh * g.ow;
            let [y] =
                run_gpu_in_parts(OP, g.planes, &[(Some(x), Cut::Rows)], [(&shape, Cut::Rows)], |ctx, part, i, [y]| {
                    // The indices are cut like y (same rows, so the same alignment).
                    let idx = ctx.window(&indices, part.first * plane, part.rows * plane)?;
                    gpu_kernel::max_forward(ctx, &Pool2dGeometry { planes: part.rows, ..g }, i[0].expect("x"), y, &idx)
                })?;
            let indices = GpuIndices { buffer: Arc::new(indices), ctx, geom: g };
            Ok((y, PoolIndices::Gpu(indices)))
        }
    }
}

fn max_pool2d_typed<T: Float>(x: &Tensor, g: &Pool2dGeometry, shape: &[usize]) -> Result<(Tensor, PoolIndices)> {
    let (y, argmax) = kernel::max_pool2d_forward(x.cpu_slice::<T>()?, g);
    Ok((Tensor::from_vec(y, shape)?, PoolIndices::Cpu(argmax)))
}

/// Max pool backward: scatter-adds each output gradient to the input element it came from.
/// `indices` is what [`max_pool2d`] returned (on grad_y's device), `input_shape` the
/// forward's [N, C, H, W]. Host indices are range-checked; GPU ones come from the forward
/// and are trusted (checking them would mean reading them back).
// grad_y: [N, C, OH, OW], indices: N·C·OH·OW → grad_x: [N, C, H, W]
pub fn max_pool2d_backward(grad_y: &Tensor, indices: &PoolIndices, input_shape: &[usize]) -> Result<Tensor> {
    const OP: &str = "max_pool2d_backward";
    let _profile = profile::scope(OpFamily::Pool, OP, grad_y);
    let [n, c, h, w] = nchw(OP, "input_shape", input_shape)?;
    let [gn, gc, oh, ow] = nchw(OP, "grad_y", grad_y.shape())?;
    if (gn, gc) != (n, c) {
        return shape_err(OP, format!("grad_y {:?} and input {input_shape:?} differ in [N, C]", grad_y.shape()));
    }
    if indices.len() != grad_y.numel() {
        return shape_err(
            OP,
            format!("{} indices for grad_y of shape {:?} ({} elements)", indices.len(), grad_y.shape(), grad_y.numel()),
        );
    }
    same_device(OP, &[grad_y.device(), indices.device()])?;
    match indices {
        PoolIndices::Cpu(indices) | PoolIndices::Reference(indices) => {
            if let Some(&bad) = indices.iter().find(|&&i| i >= h * w) {
                return invalid(OP, format!("index {bad} is outside an input plane of {h}×{w} = {} elements", h * w));
            }
            if grad_y.device().is_reference() {
                let dx = reference::pool::max_pool2d_backward(&reference::values(grad_y)?, indices, [oh * ow, h * w]);
                return Ok(reference::tensor(dx, input_shape, grad_y.dtype()));
            }
            let gy = grad_y.contiguous()?;
            match gy.dtype() {
                DType::F32 => Tensor::from_vec(
                    kernel::max_pool2d_backward(gy.cpu_slice::<f32>()?, indices, oh * ow, h * w),
                    input_shape,
                ),
                DType::F64 => Tensor::from_vec(
                    kernel::max_pool2d_backward(gy.cpu_slice::<f64>()?, indices, oh * ow, h * w),
                    input_shape,
                ),
            }
        }
        PoolIndices::Gpu(idx) => {
            let gg = idx.geom;
            if (gg.planes, gg.h, gg.w, gg.oh, gg.ow) != (n * c, h, w, oh, ow) {
                return shape_err(
                    OP,
                    format!(
                        "the indices come from a max pool of {} planes of {}×{} to {}×{}, not of input {input_shape:?} to grad_y {:?}",
                        gg.planes, gg.h, gg.w, gg.oh, gg.ow, grad_y.shape()
                    ),
                );
            }
            let plane = oh * ow;
            let inputs = [(Some(grad_y), Cut::Rows)];
            let [dx] = run_gpu_in_parts(OP, gg.planes, &inputs, [(input_shape, Cut::Rows)], |ctx, part, i, [dx]| {
                let indices = ctx.window(&idx.buffer, part.first * plane, part.rows * plane)?;
                let g = Pool2dGeometry { planes: part.rows, ..gg };
                gpu_kernel::max_backward(ctx, &g, i[0].expect("grad_y"), &indices, dx)
            })?;
            Ok(dx)
        }
    }
}

// ---------------------------------------------------------------- average pool

/// Average pool with PyTorch's defaults count_include_pad = true, ceil_mode = false: each
/// output is the sum over its window's in-bounds elements divided by KH·KW.
// x: [N, C, H, W] → y: [N, C, OH, OW]
pub fn avg_pool2d(x: &Tensor, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Result<Tensor> {
    const OP: &str = "avg_pool2d";
    let _profile = profile::scope(OpFamily::Pool, OP, x);
    let g = pool_geom(OP, x.shape(), kernel, stride, padding)?;
    let shape = output_shape(x.shape(), &g);
    match x.storage() {
        Storage::Cpu(_) => {
            let x = x.contiguous()?;
            match x.dtype() {
                DType::F32 => Tensor::from_vec(kernel::avg_pool2d_forward(x.cpu_slice::<f32>()?, &g), &shape),
                DType::F64 => Tensor::from_vec(kernel::avg_pool2d_forward(x.cpu_slice::<f64>()?, &g), &shape),
            }
        }
        Storage::Reference(_) => {
            Ok(reference::tensor(reference::pool::avg_pool2d(&reference::values(x)?, &g), &shape, x.dtype()))
        }
        Storage::Gpu(_) => {
            let [y] =
                run_gpu_in_parts(OP, g.planes, &[(Some(x), Cut::Rows)], [(&shape, Cut::Rows)], |ctx, part, i, [y]| {
                    gpu_kernel::avg_forward(ctx, &Pool2dGeometry { planes: part.rows, ..g }, i[0].expect("x"), y)
                })?;
            Ok(y)
        }
    }
}

/// Average pool backward: every output's gradient, divided by KH·KW, is added to each
/// in-bounds element of its window.
// grad_y: [N, C, OH, OW] → grad_x: [N, C, H, W]
pub fn avg_pool2d_backward(
    grad_y: &Tensor,
    input_shape: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<Tensor> {
    const OP: &str = "avg_pool2d_backward";
    let _profile = profile::scope(OpFamily::Pool, OP, grad_y);
    let g = pool_geom(OP, input_shape, kernel, stride, padding)?;
    check_grad(OP, grad_y, &output_shape(input_shape, &g))?;
    match grad_y.storage() {
        Storage::Cpu(_) => {
            let gy = grad_y.contiguous()?;
            match gy.dtype() {
                DType::F32 => Tensor::from_vec(kernel::avg_pool2d_backward(gy.cpu_slice::<f32>()?, &g), input_shape),
                DType::F64 => Tensor::from_vec(kernel::avg_pool2d_backward(gy.cpu_slice::<f64>()?, &g), input_shape),
            }
        }
        Storage::Reference(_) => {
            let dx = reference::pool::avg_pool2d_backward(&reference::values(grad_y)?, &g);
            Ok(reference::tensor(dx, input_shape, grad_y.dtype()))
        }
        Storage::Gpu(_) => {
            let inputs = [(Some(grad_y), Cut::Rows)];
            let [dx] = run_gpu_in_parts(OP, g.planes, &inputs, [(input_shape, Cut::Rows)], |ctx, part, i, [dx]| {
                gpu_kernel::avg_backward(ctx, &Pool2dGeometry { planes: part.rows, ..g }, i[0].expect("grad_y"), dx)
            })?;
            Ok(dx)
        }
    }
}

// ---------------------------------------------------------------- global average pool

/// The mean of every [H, W] plane.
// x: [N, C, H, W] → y: [N, C, 1, 1]
pub fn global_avg_pool2d(x: &Tensor) -> Result<Tensor> {
    let _profile = profile::scope(OpFamily::Pool, "global_avg_pool2d", x);
    let [n, c, h, w] = nchw("global_avg_pool2d", "input", x.shape())?;
    if h * w == 0 {
        return shape_err("global_avg_pool2d", format!("cannot average an empty plane of input {:?}", x.shape()));
    }
    let shape = [n, c, 1, 1];
    match x.storage() {
        Storage::Cpu(_) => {
            let x = x.contiguous()?;
            match x.dtype() {
                DType::F32 => Tensor::from_vec(kernel::global_avg_pool2d_forward(x.cpu_slice::<f32>()?, h * w), &shape),
                DType::F64 => Tensor::from_vec(kernel::global_avg_pool2d_forward(x.cpu_slice::<f64>()?, h * w), &shape),
            }
        }
        Storage::Reference(_) => {
            let y = reference::pool::global_avg_pool2d(&reference::values(x)?, h * w);
            Ok(reference::tensor(y, &shape, x.dtype()))
        }
        Storage::Gpu(_) => {
            let (inputs, outputs) = ([(Some(x), Cut::Rows)], [(&shape[..], Cut::Rows)]);
            let [y] = run_gpu_in_parts("global_avg_pool2d", n * c, &inputs, outputs, |ctx, part, i, [y]| {
                gpu_kernel::global_avg_forward(ctx, part.rows, h * w, i[0].expect("x"), y)
            })?;
            Ok(y)
        }
    }
}

/// Global average pool backward: dx[n, c, h, w] = dy[n, c] / (H·W).
// grad_y: [N, C, 1, 1] → grad_x: [N, C, H, W]
pub fn global_avg_pool2d_backward(grad_y: &Tensor, input_shape: &[usize]) -> Result<Tensor> {
    const OP: &str = "global_avg_pool2d_backward";
    let _profile = profile::scope(OpFamily::Pool, OP, grad_y);
    let [n, c, h, w] = nchw(OP, "input_shape", input_shape)?;
    check_grad(OP, grad_y, &[n, c, 1, 1])?;
    match grad_y.storage() {
        Storage::Cpu(_) => {
            let gy = grad_y.contiguous()?;
            match gy.dtype() {
                DType::F32 => {
                    Tensor::from_vec(kernel::global_avg_pool2d_backward(gy.cpu_slice::<f32>()?, h * w), input_shape)
                }
                DType::F64 => {
                    Tensor::from_vec(kernel::global_avg_pool2d_backward(gy.cpu_slice::<f64>()?, h * w), input_shape)
                }
            }
        }
        Storage::Reference(_) => {
            let dx = reference::pool::global_avg_pool2d_backward(&reference::values(grad_y)?, h * w);
            Ok(reference::tensor(dx, input_shape, grad_y.dtype()))
        }
        Storage::Gpu(_) => {
            let inputs = [(Some(grad_y), Cut::Rows)];
            let [dx] = run_gpu_in_parts(OP, n * c, &inputs, [(input_shape, Cut::Rows)], |ctx, part, i, [dx]| {
                gpu_kernel::global_avg_backward(ctx, part.rows, h * w, i[0].expect("grad_y"), dx)
            })?;
            Ok(dx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TensorError;
    use crate::rng::Rng;

    #[test]
    fn max_pool2d_op_returns_output_and_plane_relative_indices() {
        // Two planes: the second is the first plus 100, so its indices are the same.
        let base: Vec<f32> = (0..16).map(|i| ((i * 7) % 16) as f32).collect();
        let data: Vec<f32> = base.iter().copied().chain(base.iter().map(|v| v + 100.0)).collect();
        let x = Tensor::from_vec(data, &[1, 2, 4, 4]).unwrap();
        let (y, idx) = max_pool2d(&x, [2, 2], [2, 2], [0, 0]).unwrap();
        assert_eq!(y.shape(), &[1, 2, 2, 2]);
        assert_eq!(idx.len(), 8);
        let idx_v = idx.to_vec().unwrap();
        assert_eq!(idx_v[..4], idx_v[4..]);
        let yv = y.to_vec_f32().unwrap();
        for (o, &i) in idx_v.iter().enumerate() {
            assert_eq!(yv[o], x.to_vec_f32().unwrap()[(o / 4) * 16 + i]);
        }
        let gx = max_pool2d_backward(&Tensor::ones(&[1, 2, 2, 2], DType::F32), &idx, x.shape()).unwrap();
        assert_eq!(gx.shape(), x.shape());
        assert_eq!(gx.to_vec_f32().unwrap().iter().sum::<f32>(), 8.0);
    }

    #[test]
    fn pooling_ops_read_non_contiguous_inputs_correctly() {
        let mut rng = Rng::new(9);
        let x = Tensor::rand_normal(&[2, 3, 5, 4], 0.0, 1.0, DType::F64, &mut rng);
        let xt = x.transpose(2, 3).unwrap(); // [2, 3, 4, 5], strided
        let dense = xt.contiguous_copy().unwrap();
        assert_eq!(
            avg_pool2d(&xt, [3, 3], [2, 2], [1, 1]).unwrap().to_vec_f64().unwrap(),
            avg_pool2d(&dense, [3, 3], [2, 2], [1, 1]).unwrap().to_vec_f64().unwrap()
        );
        assert_eq!(
            max_pool2d(&xt, [3, 3], [2, 2], [1, 1]).unwrap().1.to_vec().unwrap(),
            max_pool2d(&dense, [3, 3], [2, 2], [1, 1]).unwrap().1.to_vec().unwrap()
        );
        assert_eq!(
            global_avg_pool2d(&xt).unwrap().to_vec_f64().unwrap(),
            global_avg_pool2d(&dense).unwrap().to_vec_f64().unwrap()
        );
    }

    #[test]
    fn pool_backward_ops_have_the_input_shape_and_f32_matches_f64() {
        let mut rng = Rng::new(10);
        let x = Tensor::rand_normal(&[3, 5, 7, 3], 0.0, 1.0, DType::F64, &mut rng);
        let y = avg_pool2d(&x, [3, 3], [2, 2], [1, 1]).unwrap();
        assert_eq!(y.shape(), &[3, 5, 4, 2]);
        let gy = Tensor::rand_normal(y.shape(), 0.0, 1.0, DType::F64, &mut rng);
        let gx = avg_pool2d_backward(&gy, x.shape(), [3, 3], [2, 2], [1, 1]).unwrap();
        let gx32 = avg_pool2d_backward(&gy.to_dtype(DType::F32).unwrap(), x.shape(), [3, 3], [2, 2], [1, 1]).unwrap();
        assert_eq!(gx32.dtype(), DType::F32);
        for (a, b) in gx.to_vec_f64().unwrap().iter().zip(gx32.to_vec_f64().unwrap()) {
            assert!((a - b).abs() < 1e-6);
        }
        let g = global_avg_pool2d(&x).unwrap();
        assert_eq!(g.shape(), &[3, 5, 1, 1]);
        assert_eq!(global_avg_pool2d_backward(&g, x.shape()).unwrap().shape(), x.shape());
    }

    #[test]
    fn bad_pooling_arguments_are_errors_not_panics() {
        let x = Tensor::zeros(&[1, 2, 5, 5], DType::F32);
        assert!(matches!(
            max_pool2d(&Tensor::zeros(&[2, 5, 5], DType::F32), [2, 2], [2, 2], [0, 0]),
            Err(TensorError::Shape { .. })
        ));
        assert!(matches!(max_pool2d(&x, [3, 3], [2, 2], [2, 2]), Err(TensorError::Invalid { .. })));
        assert!(matches!(avg_pool2d(&x, [0, 3], [1, 1], [0, 0]), Err(TensorError::Invalid { .. })));
        assert!(matches!(avg_pool2d(&x, [3, 3], [0, 1], [0, 0]), Err(TensorError::Invalid { .. })));
        assert!(matches!(avg_pool2d(&x, [6, 6], [1, 1], [0, 0]), Err(TensorError::Shape { .. })));
        let gy = Tensor::zeros(&[1, 2, 3, 3], DType::F32);
        assert!(avg_pool2d_backward(&gy, x.shape(), [3, 3], [1, 1], [0, 0]).is_ok());
        assert!(matches!(avg_pool2d_backward(&gy, x.shape(), [2, 2], [2, 2], [0, 0]), Err(TensorError::Shape { .. })));
        assert!(matches!(max_pool2d_backward(&gy, &vec![0; 8].into(), x.shape()), Err(TensorError::Shape { .. })));
        assert!(matches!(max_pool2d_backward(&gy, &vec![25; 18].into(), x.shape()), Err(TensorError::Invalid { .. })));
        assert!(matches!(max_pool2d_backward(&gy, &vec![0; 18].into(), &[1, 3, 5, 5]), Err(TensorError::Shape { .. })));
        assert!(matches!(global_avg_pool2d_backward(&gy, x.shape()), Err(TensorError::Shape { .. })));
        assert!(matches!(global_avg_pool2d(&Tensor::zeros(&[1, 2, 0, 3], DType::F32)), Err(TensorError::Shape { .. })));
    }
}
