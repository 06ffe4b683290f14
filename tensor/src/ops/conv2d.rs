//! conv2d on [N, C, H, W] tensors with PyTorch's semantics (groups = 1): the forward and the
//! three backward ops autograd needs (data, weight, bias). Each checks its shapes and hands its
//! operands to `run_kernel`, the one device match of the three convolution kernels: the
//! reference definition, `cpu::conv`, or the GPU's conv2d launchers.
//!
//! Also home of what conv_transpose2d shares: `run_kernel` (its ops run these kernels on the
//! transposed geometry) and the bias gradient (`channel_sums`).

use gpu::kernels::conv2d as gpu_kernel;
use gpu::kernels::Output;

use crate::cpu::conv as kernel;
use crate::descriptors::{Conv2dGeometry, ConvKernel};
use crate::dtype::{with_float_type, DType};
use crate::error::{shape_err, Result, TensorError};
use crate::gpu_parts::{run_gpu_in_parts, Cut};
use crate::ops::checks::{
    bias_slice, check_bias, check_grad, check_params, check_plane, pair, rank4, same_dtype_device,
};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Stride, zero padding and dilation of a conv2d, as [height, width].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Step of the kernel, `[sh, sw]`.
    pub stride: [usize; 2],
    /// Zeros added on each side, `[ph, pw]`.
    pub padding: [usize; 2],
    /// Spacing between kernel taps, `[dh, dw]` (1 = dense).
    pub dilation: [usize; 2],
}

impl Default for Conv2dParams {
    /// Stride 1, padding 0, dilation 1 (PyTorch's defaults).
    fn default() -> Self {
        Conv2dParams { stride: [1, 1], padding: [0, 0], dilation: [1, 1] }
    }
}

impl Conv2dParams {
    /// The same stride and padding along both axes, dilation 1: `Conv2dParams::new(2, 1)`.
    pub fn new(stride: usize, padding: usize) -> Self {
        Conv2dParams { stride: [stride; 2], padding: [padding; 2], dilation: [1, 1] }
    }

    /// These parameters with the same dilation along both axes.
    pub fn with_dilation(self, dilation: usize) -> Self {
        Conv2dParams { dilation: [dilation; 2], ..self }
    }
}

/// The geometry of conv2d for input shape `x` [N, C_in, H, W] and weight shape `w`
/// [C_out, C_in, kH, kW], after checking the parameters, the channels and that the kernel fits.
fn conv2d_geometry(op: &'static str, x: &[usize], w: &[usize], p: &Conv2dParams) -> Result<Conv2dGeometry> {
    let xs = rank4(op, "input", "[N, C_in, H, W]", x)?;
    let ws = rank4(op, "weight", "[C_out, C_in, kH, kW]", w)?;
    if xs[1] != ws[1] {
        return shape_err(op, format!("input {x:?} has {} channels but weight {w:?} expects {}", xs[1], ws[1]));
    }
    check_params(op, w, p.stride, p.dilation)?;
    check_plane(op, x)?;
    Conv2dGeometry::conv2d(xs, ws, p.stride, p.padding, p.dilation).ok_or_else(|| TensorError::Shape {
        op,
        msg: format!(
            "kernel {}×{} with dilation {} does not fit input {}×{} padded by {} (input {x:?}, weight {w:?})",
            ws[2],
            ws[3],
            pair(p.dilation),
            xs[2],
            xs[3],
            pair(p.padding)
        ),
    })
}

// ---------------------------------------------------------------- ops

/// y = conv2d(x, w) + bias (cross-correlation, as in PyTorch), OH = ⌊(H + 2·ph − dh·(kH−1) − 1)/sh⌋ + 1.
// x: [N, C_in, H, W]   w: [C_out, C_in, kH, kW]   bias: [C_out]   ->   y: [N, C_out, OH, OW]
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams) -> Result<Tensor> {
    conv2d_then(x, w, bias, p, false)
}

/// relu(conv2d(x, w) + bias): a convolution and the ReLU after it. On the GPU the ReLU is the
/// epilogue of the convolution's launch; on the CPU and the reference device it is the ReLU op
/// after the convolution, so the values are the two ops' bit for bit. Shapes as [`conv2d`].
pub fn conv2d_relu(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams) -> Result<Tensor> {
    conv2d_then(x, w, bias, p, true)
}

fn conv2d_then(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams, relu: bool) -> Result<Tensor> {
    const OP: &str = "conv2d";
    let _profile = profile::scope(OpFamily::Conv, OP, x);
    let g = conv2d_geometry(OP, x.shape(), w.shape(), p)?;
    check_bias(OP, bias, g.c_out, w.shape())?;
    let shape = [g.batch, g.c_out, g.oh, g.ow];
    run_kernel(OP, ConvKernel::Forward, &g, [x, w], bias, &shape, relu, |x, w, bias| {
        reference::conv::conv2d(x, w, bias, &g)
    })
}

/// dL/dx of y = conv2d(x, w): the transposed convolution of grad_y with the same weight.
/// `input_shape` is the forward's x shape (H, W are not recoverable from OH, OW when the
/// stride did not divide evenly).
// grad_y: [N, C_out, OH, OW]   w: [C_out, C_in, kH, kW]   ->   dx: input_shape = [N, C_in, H, W]
pub fn conv2d_backward_data(grad_y: &Tensor, w: &Tensor, input_shape: &[usize], p: &Conv2dParams) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_data";
    let _profile = profile::scope(OpFamily::Conv, OP, grad_y);
    let g = conv2d_geometry(OP, input_shape, w.shape(), p)?;
    check_grad(OP, grad_y, [g.batch, g.c_out, g.oh, g.ow])?;
    let shape = [g.batch, g.c_in, g.h, g.w];
    run_kernel(OP, ConvKernel::BackwardData, &g, [grad_y, w], None, &shape, false, |gy, w, _| {
        reference::conv::conv2d_backward_data(gy, w, &g)
    })
}

/// dL/dw of y = conv2d(x, w): the correlation of x with grad_y, summed over the batch.
// grad_y: [N, C_out, OH, OW]   x: [N, C_in, H, W]   ->   dw: weight_shape = [C_out, C_in, kH, kW]
pub fn conv2d_backward_weight(grad_y: &Tensor, x: &Tensor, weight_shape: &[usize], p: &Conv2dParams) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_weight";
    let _profile = profile::scope(OpFamily::Conv, OP, grad_y);
    let g = conv2d_geometry(OP, x.shape(), weight_shape, p)?;
    check_grad(OP, grad_y, [g.batch, g.c_out, g.oh, g.ow])?;
    run_kernel(OP, ConvKernel::BackwardWeight, &g, [grad_y, x], None, weight_shape, false, |gy, x, _| {
        reference::conv::conv2d_backward_weight(gy, x, &g)
    })
}

/// Runs conv2d's `kernel` for geometry `g` on the operands' device into a tensor of `shape`,
/// then a ReLU when `relu` (forward and backward-data only); `reference` is the op's own plain
/// definition (f64 in, f64 out), which the reference device runs. The CPU runs `cpu::conv`,
/// the ReLU inside its kernels; the GPU the implicit-GEMM rung, cut into batch slices that fit
/// one binding, with the ReLU as its epilogue.
#[allow(clippy::too_many_arguments)] // the op, its kernel and geometry, three operands, the output, the ReLU
pub(crate) fn run_kernel(
    op: &'static str,
    kernel: ConvKernel,
    g: &Conv2dGeometry,
    [a, b]: [&Tensor; 2],
    bias: Option<&Tensor>,
    shape: &[usize],
    relu: bool,
    reference: impl FnOnce(&[f64], &[f64], Option<&[f64]>) -> Vec<f64>,
) -> Result<Tensor> {
    let operands: Vec<&Tensor> = [a, b].into_iter().chain(bias).collect();
    let dtype = same_dtype_device(op, &operands)?;
    if relu && a.device().is_reference() {
        // The written-out ops, so that the values are theirs bit for bit.
        return run_kernel(op, kernel, g, [a, b], bias, shape, false, reference)?.relu();
    }
    match a.storage() {
        Storage::Cpu(_) => {
            let (a, b, bias) = (a.contiguous()?, b.contiguous()?, bias.map(Tensor::contiguous).transpose()?);
            with_float_type!(dtype, T => {
                let (a, b, bias) = (a.cpu_slice::<T>()?, b.cpu_slice::<T>()?, bias_slice::<T>(bias.as_ref())?);
                // With `relu`, the kernels' own ReLU, bit for bit the element-wise op's.
                let out = match (kernel, relu) {
                    (ConvKernel::Forward, false) => kernel::conv2d_forward(a, b, bias, g),
                    (ConvKernel::Forward, true) => kernel::conv2d_forward_relu(a, b, bias, g),
                    (ConvKernel::BackwardData, false) => kernel::conv2d_backward_data(a, b, bias, g),
                    (ConvKernel::BackwardData, true) => kernel::conv2d_backward_data_relu(a, b, bias, g),
                    (ConvKernel::BackwardWeight, relu) => {
                        debug_assert!(!relu, "{op}: the weight gradient has no ReLU");
                        kernel::conv2d_backward_weight(a, b, g)
                    }
                };
                Ok(Tensor::from_kernel(out, shape))
            })
        }
        Storage::Reference(_) => {
            let (a, b, bias) = (reference::values(a)?, reference::values(b)?, reference::values_of(bias)?);
            Ok(reference::tensor(reference(&a, &b, bias.as_deref()), shape, dtype))
        }
        Storage::Gpu(_) => {
            // Every kernel cuts its first operand by images; the weight gradient sums its slices.
            let (b_cut, out_cut) = match kernel {
                ConvKernel::BackwardWeight => (Cut::Rows, Cut::Sum),
                ConvKernel::Forward | ConvKernel::BackwardData => (Cut::Whole, Cut::Rows),
            };
            let inputs = [(Some(a), Cut::Rows), (Some(b), b_cut), (bias, Cut::Whole)];
            let [out] = run_gpu_in_parts(op, g.batch, &inputs, [(shape, out_cut)], |ctx, part, i, [out]| {
                let g = Conv2dGeometry { batch: part.rows, ..*g };
                let (a, b) = (i[0].expect("first operand"), i[1].expect("second operand"));
                let mode = if out_cut == Cut::Sum { part.mode } else { Output::Overwrite };
                let rung = gpu_kernel::chosen_rung(ctx, kernel, &g);
                if relu {
                    return gpu_kernel::launch_then_relu(ctx, kernel, rung, &g, [a, b], i[2], out);
                }
                gpu_kernel::launch(ctx, kernel, rung, &g, [a, b], i[2], out, mode)
            })?;
            Ok(out)
        }
    }
}

/// dL/dbias of y = conv2d(x, w) + bias: grad_y summed over batch and pixels.
// grad_y: [N, C_out, OH, OW]   ->   db: [C_out]
pub fn conv2d_backward_bias(grad_y: &Tensor) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_bias";
    let _profile = profile::scope(OpFamily::Conv, OP, grad_y);
    channel_sums(OP, grad_y)
}

/// grad_y summed over batch and pixels, per channel: the bias gradient of conv2d and of
/// conv_transpose2d alike (errors name `op`).
// grad_y: [N, C, OH, OW]   ->   [C]
pub(crate) fn channel_sums(op: &'static str, grad_y: &Tensor) -> Result<Tensor> {
    let [batch, c_out, oh, ow] = rank4(op, "grad_y", "[N, C_out, OH, OW]", grad_y.shape())?;
    let dims = [batch, c_out, oh * ow];
    match grad_y.storage() {
        Storage::Cpu(_) => {
            let gy = grad_y.contiguous()?;
            match gy.dtype() {
                DType::F32 => {
                    Ok(Tensor::from_kernel(kernel::conv2d_backward_bias(gy.cpu_slice::<f32>()?, dims), &[c_out]))
                }
                DType::F64 => {
                    Ok(Tensor::from_kernel(kernel::conv2d_backward_bias(gy.cpu_slice::<f64>()?, dims), &[c_out]))
                }
            }
        }
        Storage::Reference(_) => {
            let db = reference::conv::bias_grad(&reference::values(grad_y)?, dims);
            Ok(reference::tensor(db, &[c_out], grad_y.dtype()))
        }
        Storage::Gpu(_) => {
            let [db] = run_gpu_in_parts(
                op,
                batch,
                &[(Some(grad_y), Cut::Rows)],
                [(&[c_out], Cut::Sum)],
                |ctx, part, i, [db]| {
                    gpu_kernel::backward_bias(ctx, [part.rows, c_out, oh * ow], i[0].expect("grad_y"), db, part.mode)
                },
            )?;
            Ok(db)
        }
    }
}
