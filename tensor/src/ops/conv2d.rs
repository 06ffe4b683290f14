//! conv2d on [N, C, H, W] tensors with PyTorch's semantics (groups = 1): the forward and the
//! three backward ops autograd needs (data, weight, bias). Each checks shapes, dtypes and
//! devices and runs the matching kernel in `cpu::conv`.
//!
//! Also home of the checks conv_transpose2d shares (rank, parameters, bias, grad shape).

use gpu::kernels::conv2d as gpu_kernel;
use gpu::kernels::Output;

use crate::cpu::conv as kernel;
use crate::descriptors::Conv2dGeometry;
use crate::dtype::{DType, Float};
use crate::error::{invalid, shape_err, Result, TensorError};
use crate::gpu_parts::{run_gpu_in_parts, Cut};
use crate::ops::checks::{check_grad, check_plane, rank4, same_dtype_device};
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

// ---------------------------------------------------------------- checks shared with conv_transpose2d

/// "3" for [3, 3], "3×5" for [3, 5]: how sizes along (H, W) read in messages.
pub(crate) fn pair(v: [usize; 2]) -> String {
    if v[0] == v[1] {
        v[0].to_string()
    } else {
        format!("{}×{}", v[0], v[1])
    }
}

/// Errors on a zero stride, dilation or kernel size (none of which has a meaning).
pub(crate) fn check_params(
    op: &'static str,
    w_shape: &[usize],
    stride: [usize; 2],
    dilation: [usize; 2],
) -> Result<()> {
    if stride.contains(&0) {
        return invalid(op, format!("stride must be at least 1, got {stride:?}"));
    }
    if dilation.contains(&0) {
        return invalid(op, format!("dilation must be at least 1, got {dilation:?}"));
    }
    if w_shape[2] == 0 || w_shape[3] == 0 {
        return shape_err(op, format!("weight {w_shape:?} has an empty kernel"));
    }
    Ok(())
}

/// Errors unless `bias` is absent or a vector of `channels` elements.
pub(crate) fn check_bias(op: &'static str, bias: Option<&Tensor>, channels: usize, w_shape: &[usize]) -> Result<()> {
    match bias {
        Some(b) if b.shape() != [channels] => shape_err(
            op,
            format!(
                "bias has shape {:?} but weight {w_shape:?} has {channels} output channels; expected [{channels}]",
                b.shape()
            ),
        ),
        _ => Ok(()),
    }
}

/// The contiguous f32/f64 slice behind an optional bias.
pub(crate) fn bias_slice<T: Float>(bias: Option<&Tensor>) -> Result<Option<&[T]>> {
    bias.map(|b| b.cpu_slice::<T>()).transpose()
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
    const OP: &str = "conv2d";
    let _profile = profile::scope(OpFamily::Conv, OP, x);
    let g = conv2d_geometry(OP, x.shape(), w.shape(), p)?;
    check_bias(OP, bias, g.c_out, w.shape())?;
    let operands: Vec<&Tensor> = [x, w].into_iter().chain(bias).collect();
    let dtype = same_dtype_device(OP, &operands)?;
    let shape = [g.batch, g.c_out, g.oh, g.ow];
    match x.storage() {
        Storage::Cpu(_) => {
            let (x, w, bias) = (x.contiguous()?, w.contiguous()?, bias.map(Tensor::contiguous).transpose()?);
            match dtype {
                DType::F32 => conv2d_typed::<f32>(&x, &w, bias.as_ref(), &g, &shape),
                DType::F64 => conv2d_typed::<f64>(&x, &w, bias.as_ref(), &g, &shape),
            }
        }
        Storage::Reference(_) => {
            let (x, w, bias) = (reference::values(x)?, reference::values(w)?, reference::values_of(bias)?);
            Ok(reference::tensor(reference::conv::conv2d(&x, &w, bias.as_deref(), &g), &shape, dtype))
        }
        Storage::Gpu(_) => {
            let inputs = [(Some(x), Cut::Rows), (Some(w), Cut::Whole), (bias, Cut::Whole)];
            let [y] = run_gpu_in_parts(OP, g.batch, &inputs, [(&shape, Cut::Rows)], |ctx, part, i, [y]| {
                let g = Conv2dGeometry { batch: part.rows, ..g };
                gpu_kernel::forward(ctx, &g, i[0].expect("x"), i[1].expect("w"), i[2], y)
            })?;
            Ok(y)
        }
    }
}

fn conv2d_typed<T: Float>(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    g: &Conv2dGeometry,
    shape: &[usize],
) -> Result<Tensor> {
    let y = kernel::conv2d_forward(x.cpu_slice::<T>()?, w.cpu_slice::<T>()?, bias_slice::<T>(b)?, g);
    Ok(Tensor::from_kernel(y, shape))
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
    let dtype = same_dtype_device(OP, &[grad_y, w])?;
    let shape = [g.batch, g.c_in, g.h, g.w];
    match grad_y.storage() {
        Storage::Cpu(_) => {
            let (gy, w) = (grad_y.contiguous()?, w.contiguous()?);
            match dtype {
                DType::F32 => Ok(Tensor::from_kernel(
                    kernel::conv2d_backward_data(gy.cpu_slice::<f32>()?, w.cpu_slice::<f32>()?, &g),
                    &shape,
                )),
                DType::F64 => Ok(Tensor::from_kernel(
                    kernel::conv2d_backward_data(gy.cpu_slice::<f64>()?, w.cpu_slice::<f64>()?, &g),
                    &shape,
                )),
            }
        }
        Storage::Reference(_) => {
            let dx = reference::conv::conv2d_backward_data(&reference::values(grad_y)?, &reference::values(w)?, &g);
            Ok(reference::tensor(dx, &shape, dtype))
        }
        Storage::Gpu(_) => {
            let inputs = [(Some(grad_y), Cut::Rows), (Some(w), Cut::Whole)];
            let [dx] = run_gpu_in_parts(OP, g.batch, &inputs, [(&shape, Cut::Rows)], |ctx, part, i, [dx]| {
                let (gy, w) = (i[0].expect("grad_y"), i[1].expect("w"));
                gpu_kernel::backward_data(ctx, &Conv2dGeometry { batch: part.rows, ..g }, gy, w, dx, Output::Overwrite)
            })?;
            Ok(dx)
        }
    }
}

/// dL/dw of y = conv2d(x, w): the correlation of x with grad_y, summed over the batch.
// grad_y: [N, C_out, OH, OW]   x: [N, C_in, H, W]   ->   dw: weight_shape = [C_out, C_in, kH, kW]
pub fn conv2d_backward_weight(grad_y: &Tensor, x: &Tensor, weight_shape: &[usize], p: &Conv2dParams) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_weight";
    let _profile = profile::scope(OpFamily::Conv, OP, grad_y);
    let g = conv2d_geometry(OP, x.shape(), weight_shape, p)?;
    check_grad(OP, grad_y, [g.batch, g.c_out, g.oh, g.ow])?;
    let dtype = same_dtype_device(OP, &[grad_y, x])?;
    match grad_y.storage() {
        Storage::Cpu(_) => {
            let (gy, x) = (grad_y.contiguous()?, x.contiguous()?);
            match dtype {
                DType::F32 => Ok(Tensor::from_kernel(
                    kernel::conv2d_backward_weight(gy.cpu_slice::<f32>()?, x.cpu_slice::<f32>()?, &g),
                    weight_shape,
                )),
                DType::F64 => Ok(Tensor::from_kernel(
                    kernel::conv2d_backward_weight(gy.cpu_slice::<f64>()?, x.cpu_slice::<f64>()?, &g),
                    weight_shape,
                )),
            }
        }
        Storage::Reference(_) => {
            let dw = reference::conv::conv2d_backward_weight(&reference::values(grad_y)?, &reference::values(x)?, &g);
            Ok(reference::tensor(dw, weight_shape, dtype))
        }
        Storage::Gpu(_) => {
            let inputs = [(Some(grad_y), Cut::Rows), (Some(x), Cut::Rows)];
            let [dw] = run_gpu_in_parts(OP, g.batch, &inputs, [(weight_shape, Cut::Sum)], |ctx, part, i, [dw]| {
                let (gy, x) = (i[0].expect("grad_y"), i[1].expect("x"));
                gpu_kernel::backward_weight(ctx, &Conv2dGeometry { batch: part.rows, ..g }, gy, x, dw, part.mode)
            })?;
            Ok(dw)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn rand(shape: &[usize], rng: &mut Rng) -> Tensor {
        Tensor::rand_uniform(shape, -1.0, 1.0, DType::F64, rng)
    }

    fn dot(a: &Tensor, b: &Tensor) -> f64 {
        assert_eq!(a.shape(), b.shape());
        a.to_vec_f64().unwrap().iter().zip(b.to_vec_f64().unwrap()).map(|(x, y)| x * y).sum()
    }

    fn msg(e: TensorError) -> String {
        e.to_string()
    }

    #[test]
    fn conv2d_op_runs_the_kernel_and_has_pytorch_output_shape() {
        let mut rng = Rng::new(20);
        let (x, w, b) = (rand(&[3, 2, 9, 7], &mut rng), rand(&[4, 2, 3, 5], &mut rng), rand(&[4], &mut rng));
        let p = Conv2dParams { stride: [2, 1], padding: [1, 2], dilation: [1, 2] };
        let y = conv2d(&x, &w, Some(&b), &p).unwrap();
        // OH = ⌊(9 + 2 − 2 − 1)/2⌋ + 1 = 5; OW = ⌊(7 + 4 − 8 − 1)/1⌋ + 1 = 3.
        assert_eq!(y.shape(), &[3, 4, 5, 3]);
        let g = Conv2dGeometry::conv2d([3, 2, 9, 7], [4, 2, 3, 5], p.stride, p.padding, p.dilation).unwrap();
        let want = kernel::conv2d_forward(
            &x.to_vec_f64().unwrap(),
            &w.to_vec_f64().unwrap(),
            Some(&b.to_vec_f64().unwrap()),
            &g,
        );
        assert_eq!(y.to_vec_f64().unwrap(), want);
    }

    #[test]
    fn conv2d_op_reads_non_contiguous_inputs() {
        let mut rng = Rng::new(21);
        let x = rand(&[2, 3, 6, 5], &mut rng);
        let w = rand(&[4, 3, 3, 3], &mut rng);
        let x_t = x.transpose(2, 3).unwrap().contiguous().unwrap().transpose(2, 3).unwrap(); // same values, strided
        assert!(!x_t.is_contiguous());
        let p = Conv2dParams::new(1, 1);
        assert_eq!(
            conv2d(&x_t, &w, None, &p).unwrap().to_vec_f64().unwrap(),
            conv2d(&x, &w, None, &p).unwrap().to_vec_f64().unwrap()
        );
    }

    #[test]
    fn conv2d_op_f32_matches_f64() {
        let mut rng = Rng::new(22);
        let (x, w, b) = (rand(&[2, 3, 8, 8], &mut rng), rand(&[5, 3, 3, 3], &mut rng), rand(&[5], &mut rng));
        let p = Conv2dParams::new(2, 1);
        let y64 = conv2d(&x, &w, Some(&b), &p).unwrap();
        let f32s = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        let y32 = conv2d(&f32s(&x), &f32s(&w), Some(&f32s(&b)), &p).unwrap();
        assert_eq!(y32.dtype(), DType::F32);
        for (a, b) in y32.to_vec_f64().unwrap().iter().zip(y64.to_vec_f64().unwrap()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn conv2d_backward_ops_are_adjoints_of_the_forward() {
        // ⟨conv2d(x, w) + b, g⟩ is linear in each of x, w, b separately; each backward op must
        // reproduce it as ⟨x, dx⟩, ⟨w, dw⟩ and ⟨b, db⟩ (without bias for the first two).
        let mut rng = Rng::new(23);
        let p = Conv2dParams { stride: [2, 2], padding: [2, 1], dilation: [2, 1] };
        let (x, w, b) = (rand(&[3, 2, 11, 9], &mut rng), rand(&[3, 2, 3, 4], &mut rng), rand(&[3], &mut rng));
        let y = conv2d(&x, &w, None, &p).unwrap();
        let gy = rand(y.shape(), &mut rng);
        let lhs = dot(&y, &gy);
        let dx = conv2d_backward_data(&gy, &w, x.shape(), &p).unwrap();
        let dw = conv2d_backward_weight(&gy, &x, w.shape(), &p).unwrap();
        assert_eq!((dx.shape(), dw.shape()), (x.shape(), w.shape()));
        assert!((lhs - dot(&x, &dx)).abs() <= 1e-10 * lhs.abs());
        assert!((lhs - dot(&w, &dw)).abs() <= 1e-10 * lhs.abs());
        let with_b = dot(&conv2d(&x, &w, Some(&b), &p).unwrap(), &gy);
        let db = conv2d_backward_bias(&gy).unwrap();
        assert_eq!(db.shape(), &[3]);
        assert!((with_b - lhs - dot(&b, &db)).abs() <= 1e-10 * with_b.abs().max(1.0));
    }

    #[test]
    fn channel_mismatch_names_both_shapes() {
        let x = Tensor::zeros(&[2, 3, 8, 8], DType::F32);
        let w = Tensor::zeros(&[64, 4, 3, 3], DType::F32);
        let e = msg(conv2d(&x, &w, None, &Conv2dParams::default()).unwrap_err());
        assert!(e.contains("input [2, 3, 8, 8] has 3 channels but weight [64, 4, 3, 3] expects 4"), "{e}");
    }

    #[test]
    fn kernel_larger_than_padded_input_is_an_error() {
        let x = Tensor::zeros(&[1, 1, 3, 3], DType::F32);
        let w = Tensor::zeros(&[1, 1, 5, 5], DType::F32);
        let e = msg(conv2d(&x, &w, None, &Conv2dParams::default()).unwrap_err());
        assert!(e.contains("kernel 5×5 with dilation 1 does not fit input 3×3 padded by 0"), "{e}");
        // Padding 1 makes it fit exactly (one output); dilation 2 makes it not fit again.
        assert_eq!(conv2d(&x, &w, None, &Conv2dParams::new(1, 1)).unwrap().shape(), &[1, 1, 1, 1]);
        assert!(conv2d(&x, &w, None, &Conv2dParams::new(1, 1).with_dilation(2)).is_err());
    }

    #[test]
    fn bad_conv2d_arguments_are_errors_not_panics() {
        let x = Tensor::zeros(&[2, 3, 8, 8], DType::F32);
        let w = Tensor::zeros(&[4, 3, 3, 3], DType::F32);
        let p = Conv2dParams::default();
        let is_shape = |r: Result<Tensor>| matches!(r, Err(TensorError::Shape { .. }));
        let is_invalid = |r: Result<Tensor>| matches!(r, Err(TensorError::Invalid { .. }));
        // Ranks.
        assert!(is_shape(conv2d(&Tensor::zeros(&[3, 8, 8], DType::F32), &w, None, &p)));
        assert!(is_shape(conv2d(&x, &Tensor::zeros(&[4, 3, 9], DType::F32), None, &p)));
        // Bias shape.
        assert!(is_shape(conv2d(&x, &w, Some(&Tensor::zeros(&[3], DType::F32)), &p)));
        assert!(is_shape(conv2d(&x, &w, Some(&Tensor::zeros(&[1, 4], DType::F32)), &p)));
        // Zero stride / dilation, empty kernel or plane.
        assert!(is_invalid(conv2d(&x, &w, None, &Conv2dParams { stride: [1, 0], ..p })));
        assert!(is_invalid(conv2d(&x, &w, None, &Conv2dParams { dilation: [0, 1], ..p })));
        assert!(is_shape(conv2d(&x, &Tensor::zeros(&[4, 3, 0, 3], DType::F32), None, &p)));
        assert!(is_shape(conv2d(&Tensor::zeros(&[2, 3, 0, 8], DType::F32), &w, None, &p)));
        // Dtype mismatch: the operand with the other dtype is named.
        let w64 = w.to_dtype(DType::F64).unwrap();
        assert_eq!(
            conv2d(&x, &w64, None, &p).unwrap_err(),
            TensorError::DType { op: "conv2d", expected: DType::F32, got: DType::F64 }
        );
        assert!(matches!(conv2d(&x, &w, Some(&Tensor::zeros(&[4], DType::F64)), &p), Err(TensorError::DType { .. })));
        // Backward ops: wrong grad_y shape, wrong input/weight shapes, dtype mismatch.
        let gy = Tensor::zeros(&[2, 4, 6, 6], DType::F32);
        assert!(conv2d_backward_data(&gy, &w, &[2, 3, 8, 8], &p).is_ok());
        assert!(is_shape(conv2d_backward_data(&gy, &w, &[2, 3, 9, 8], &p)));
        assert!(is_shape(conv2d_backward_data(&gy, &w, &[2, 5, 8, 8], &p)));
        assert!(is_shape(conv2d_backward_data(&gy, &w, &[2, 3, 8], &p)));
        assert!(is_shape(conv2d_backward_data(&Tensor::zeros(&[3, 4, 6, 6], DType::F32), &w, &[2, 3, 8, 8], &p)));
        assert!(conv2d_backward_weight(&gy, &x, &[4, 3, 3, 3], &p).is_ok());
        assert!(is_shape(conv2d_backward_weight(&gy, &x, &[5, 3, 3, 3], &p)));
        assert!(is_shape(conv2d_backward_weight(&gy, &x, &[4, 2, 3, 3], &p)));
        assert!(is_shape(conv2d_backward_weight(&gy, &x, &[4, 3, 5, 3], &p)));
        assert!(matches!(
            conv2d_backward_weight(&gy, &x.to_dtype(DType::F64).unwrap(), &[4, 3, 3, 3], &p),
            Err(TensorError::DType { .. })
        ));
        assert!(is_shape(conv2d_backward_bias(&Tensor::zeros(&[4, 6, 6], DType::F32))));
    }
}
