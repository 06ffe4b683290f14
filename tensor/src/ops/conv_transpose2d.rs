//! conv_transpose2d on [N, C, H, W] tensors with PyTorch's semantics (groups = 1): the forward
//! and the three backward ops autograd needs (data, weight, bias). The kernels in `cpu::conv`
//! run it as conv2d backwards; this file only checks and dispatches.

use gpu::kernels::conv_transpose2d as gpu_kernel;
use gpu::kernels::Output;

use crate::cpu::conv as kernel;
use crate::descriptors::Conv2dGeometry;
use crate::dtype::{DType, Float};
use crate::error::{invalid, shape_err, Result, TensorError};
use crate::gpu_parts::{run_gpu_in_parts, Cut};
use crate::ops::checks::{check_grad, check_plane, rank4, same_dtype_device};
use crate::ops::conv2d::{bias_slice, check_bias, check_params, pair};
use crate::profile::{self, OpFamily};
use crate::reference;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Stride, zero padding, output padding and dilation of a conv_transpose2d, as [height, width].
/// `output_padding` adds rows/columns at the bottom/right of the output (they receive only
/// the bias); it must be smaller than the stride or the dilation along its axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dParams {
    /// Stride of the forward conv this transposes, `[sh, sw]`.
    pub stride: [usize; 2],
    /// Padding of the forward conv this transposes (removed from the output), `[ph, pw]`.
    pub padding: [usize; 2],
    /// Extra rows/columns at the bottom/right of the output, `[oph, opw]`.
    pub output_padding: [usize; 2],
    /// Spacing between kernel taps, `[dh, dw]`.
    pub dilation: [usize; 2],
}

impl Default for ConvTranspose2dParams {
    /// Stride 1, padding 0, output padding 0, dilation 1 (PyTorch's defaults).
    fn default() -> Self {
        ConvTranspose2dParams { stride: [1, 1], padding: [0, 0], output_padding: [0, 0], dilation: [1, 1] }
    }
}

impl ConvTranspose2dParams {
    /// The same stride and padding along both axes, no output padding, dilation 1:
    /// `ConvTranspose2dParams::new(2, 1)` with a 4×4 kernel doubles H and W.
    pub fn new(stride: usize, padding: usize) -> Self {
        ConvTranspose2dParams { stride: [stride; 2], padding: [padding; 2], ..Self::default() }
    }

    /// These parameters with the same output padding along both axes.
    pub fn with_output_padding(self, output_padding: usize) -> Self {
        ConvTranspose2dParams { output_padding: [output_padding; 2], ..self }
    }

    /// These parameters with the same dilation along both axes.
    pub fn with_dilation(self, dilation: usize) -> Self {
        ConvTranspose2dParams { dilation: [dilation; 2], ..self }
    }
}

/// The geometry of conv_transpose2d for input shape `x` [N, C_in, H, W] and weight shape `w`
/// [C_in, C_out, kH, kW], after checking parameters, channels and that the output is non-empty.
fn conv_transpose2d_geometry(
    op: &'static str,
    x: &[usize],
    w: &[usize],
    p: &ConvTranspose2dParams,
) -> Result<Conv2dGeometry> {
    let xs = rank4(op, "input", "[N, C_in, H, W]", x)?;
    let ws = rank4(op, "weight", "[C_in, C_out, kH, kW]", w)?;
    if xs[1] != ws[0] {
        return shape_err(op, format!("input {x:?} has {} channels but weight {w:?} expects {}", xs[1], ws[0]));
    }
    check_params(op, w, p.stride, p.dilation)?;
    check_output_padding(op, p)?;
    check_plane(op, x)?;
    Conv2dGeometry::conv_transpose2d(xs, ws, p.stride, p.padding, p.output_padding, p.dilation).ok_or_else(|| {
        let len = |i: usize| {
            (xs[2 + i] as i64 - 1) * p.stride[i] as i64 - 2 * p.padding[i] as i64
                + (p.dilation[i] * (ws[2 + i] - 1) + p.output_padding[i] + 1) as i64
        };
        TensorError::Shape {
            op,
            msg: format!(
                "output size {}×{} is not positive: input {}×{} with kernel {}×{}, stride {}, padding {}, \
                 output_padding {}, dilation {} (input {x:?}, weight {w:?})",
                len(0),
                len(1),
                xs[2],
                xs[3],
                ws[2],
                ws[3],
                pair(p.stride),
                pair(p.padding),
                pair(p.output_padding),
                pair(p.dilation)
            ),
        }
    })
}

/// PyTorch's rule: output_padding must be smaller than either the stride or the dilation.
fn check_output_padding(op: &'static str, p: &ConvTranspose2dParams) -> Result<()> {
    for i in 0..2 {
        if p.output_padding[i] >= p.stride[i].max(p.dilation[i]) {
            return invalid(
                op,
                format!(
                    "output_padding {:?} must be smaller than either stride {:?} or dilation {:?} along each axis",
                    p.output_padding, p.stride, p.dilation
                ),
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- ops

/// y = conv_transpose2d(x, w) + bias: every input pixel adds a copy of the kernel, scaled by
/// its value, into the output at stride spacing;
/// OH = (H − 1)·sh − 2·ph + dh·(kH − 1) + output_padding_h + 1.
// x: [N, C_in, H, W]   w: [C_in, C_out, kH, kW]   bias: [C_out]   ->   y: [N, C_out, OH, OW]
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &ConvTranspose2dParams) -> Result<Tensor> {
    const OP: &str = "conv_transpose2d";
    let _profile = profile::scope(OpFamily::ConvTranspose, OP, x);
    let g = conv_transpose2d_geometry(OP, x.shape(), w.shape(), p)?;
    check_bias(OP, bias, g.c_out, w.shape())?;
    let operands: Vec<&Tensor> = [x, w].into_iter().chain(bias).collect();
    let dtype = same_dtype_device(OP, &operands)?;
    let shape = [g.batch, g.c_out, g.oh, g.ow];
    match x.storage() {
        Storage::Cpu(_) => {
            let (x, w, bias) = (x.contiguous()?, w.contiguous()?, bias.map(Tensor::contiguous).transpose()?);
            match dtype {
                DType::F32 => conv_transpose2d_typed::<f32>(&x, &w, bias.as_ref(), &g, &shape),
                DType::F64 => conv_transpose2d_typed::<f64>(&x, &w, bias.as_ref(), &g, &shape),
            }
        }
        Storage::Reference(_) => {
            let (x, w, bias) = (reference::values(x)?, reference::values(w)?, reference::values_of(bias)?);
            Ok(reference::tensor(reference::conv::conv_transpose2d(&x, &w, bias.as_deref(), &g), &shape, dtype))
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

fn conv_transpose2d_typed<T: Float>(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    g: &Conv2dGeometry,
    shape: &[usize],
) -> Result<Tensor> {
    let y = kernel::conv_transpose2d_forward(x.cpu_slice::<T>()?, w.cpu_slice::<T>()?, bias_slice::<T>(b)?, g);
    Ok(Tensor::from_kernel(y, shape))
}

/// dL/dx of y = conv_transpose2d(x, w): a plain conv2d of grad_y with the same weight.
/// The input size is recovered exactly from grad_y's, since output_padding is a parameter:
/// H = (OH + 2·ph − dh·(kH − 1) − output_padding_h − 1)/sh + 1, which must divide evenly.
// grad_y: [N, C_out, OH, OW]   w: [C_in, C_out, kH, kW]   ->   dx: [N, C_in, H, W]
pub fn conv_transpose2d_backward_data(grad_y: &Tensor, w: &Tensor, p: &ConvTranspose2dParams) -> Result<Tensor> {
    const OP: &str = "conv_transpose2d_backward_data";
    let _profile = profile::scope(OpFamily::ConvTranspose, OP, grad_y);
    let gs = rank4(OP, "grad_y", "[N, C_out, OH, OW]", grad_y.shape())?;
    let ws = rank4(OP, "weight", "[C_in, C_out, kH, kW]", w.shape())?;
    if gs[1] != ws[1] {
        return shape_err(
            OP,
            format!("grad_y {gs:?} has {} channels but weight {ws:?} has {} output channels", gs[1], ws[1]),
        );
    }
    check_params(OP, &ws, p.stride, p.dilation)?;
    check_output_padding(OP, p)?;
    let input_len = |i: usize| -> Option<usize> {
        let reach = p.dilation[i] * (ws[2 + i] - 1) + p.output_padding[i] + 1;
        let span = (gs[2 + i] + 2 * p.padding[i]).checked_sub(reach)?;
        (span % p.stride[i] == 0).then(|| span / p.stride[i] + 1)
    };
    let (Some(h), Some(w_in)) = (input_len(0), input_len(1)) else {
        return shape_err(
            OP,
            format!(
                "grad_y {gs:?} is not the output of conv_transpose2d with weight {ws:?}, stride {}, padding {}, \
                 output_padding {}, dilation {} for any input size",
                pair(p.stride),
                pair(p.padding),
                pair(p.output_padding),
                pair(p.dilation)
            ),
        );
    };
    let g = conv_transpose2d_geometry(OP, &[gs[0], ws[0], h, w_in], &ws, p)?;
    check_grad(OP, grad_y, [g.batch, g.c_out, g.oh, g.ow])?;
    let dtype = same_dtype_device(OP, &[grad_y, w])?;
    let shape = [g.batch, g.c_in, g.h, g.w];
    match grad_y.storage() {
        Storage::Cpu(_) => {
            let (gy, w) = (grad_y.contiguous()?, w.contiguous()?);
            match dtype {
                DType::F32 => Ok(Tensor::from_kernel(
                    kernel::conv_transpose2d_backward_data(gy.cpu_slice::<f32>()?, w.cpu_slice::<f32>()?, &g),
                    &shape,
                )),
                DType::F64 => Ok(Tensor::from_kernel(
                    kernel::conv_transpose2d_backward_data(gy.cpu_slice::<f64>()?, w.cpu_slice::<f64>()?, &g),
                    &shape,
                )),
            }
        }
        Storage::Reference(_) => {
            let dx = reference::conv::conv_transpose2d_backward_data(
                &reference::values(grad_y)?,
                &reference::values(w)?,
                &g,
            );
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

/// dL/dw of y = conv_transpose2d(x, w): the correlation of grad_y with x, summed over the batch.
// grad_y: [N, C_out, OH, OW]   x: [N, C_in, H, W]   ->   dw: weight_shape = [C_in, C_out, kH, kW]
pub fn conv_transpose2d_backward_weight(
    grad_y: &Tensor,
    x: &Tensor,
    weight_shape: &[usize],
    p: &ConvTranspose2dParams,
) -> Result<Tensor> {
    const OP: &str = "conv_transpose2d_backward_weight";
    let _profile = profile::scope(OpFamily::ConvTranspose, OP, grad_y);
    let g = conv_transpose2d_geometry(OP, x.shape(), weight_shape, p)?;
    check_grad(OP, grad_y, [g.batch, g.c_out, g.oh, g.ow])?;
    let dtype = same_dtype_device(OP, &[grad_y, x])?;
    match grad_y.storage() {
        Storage::Cpu(_) => {
            let (gy, x) = (grad_y.contiguous()?, x.contiguous()?);
            match dtype {
                DType::F32 => Ok(Tensor::from_kernel(
                    kernel::conv_transpose2d_backward_weight(gy.cpu_slice::<f32>()?, x.cpu_slice::<f32>()?, &g),
                    weight_shape,
                )),
                DType::F64 => Ok(Tensor::from_kernel(
                    kernel::conv_transpose2d_backward_weight(gy.cpu_slice::<f64>()?, x.cpu_slice::<f64>()?, &g),
                    weight_shape,
                )),
            }
        }
        Storage::Reference(_) => {
            let dw = reference::conv::conv_transpose2d_backward_weight(
                &reference::values(grad_y)?,
                &reference::values(x)?,
                &g,
            );
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

/// dL/dbias of y = conv_transpose2d(x, w) + bias: grad_y summed over batch and pixels.
// grad_y: [N, C_out, OH, OW]   ->   db: [C_out]
pub fn conv_transpose2d_backward_bias(grad_y: &Tensor) -> Result<Tensor> {
    const OP: &str = "conv_transpose2d_backward_bias";
    let _profile = profile::scope(OpFamily::ConvTranspose, OP, grad_y);
    // The same reduction as conv2d's bias gradient.
    crate::ops::conv2d::channel_sums(OP, grad_y)
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

    /// conv_transpose2d by its definition, each input pixel scattering into the output.
    fn naive(x: &Tensor, w: &Tensor, p: &ConvTranspose2dParams, out_hw: [usize; 2]) -> Vec<f64> {
        let ([n, ci_n, h, wd], [_, co_n, kh, kw]) =
            (<[usize; 4]>::try_from(x.shape()).unwrap(), <[usize; 4]>::try_from(w.shape()).unwrap());
        let (xv, wv) = (x.to_vec_f64().unwrap(), w.to_vec_f64().unwrap());
        let [oh, ow] = out_hw;
        let mut y = vec![0.0; n * co_n * oh * ow];
        for b in 0..n {
            for ci in 0..ci_n {
                for i in 0..h {
                    for j in 0..wd {
                        for co in 0..co_n {
                            for ki in 0..kh {
                                for kj in 0..kw {
                                    let oy = (i * p.stride[0] + ki * p.dilation[0]) as isize - p.padding[0] as isize;
                                    let ox = (j * p.stride[1] + kj * p.dilation[1]) as isize - p.padding[1] as isize;
                                    if oy < 0 || ox < 0 || oy >= oh as isize || ox >= ow as isize {
                                        continue;
                                    }
                                    y[((b * co_n + co) * oh + oy as usize) * ow + ox as usize] += xv
                                        [((b * ci_n + ci) * h + i) * wd + j]
                                        * wv[((ci * co_n + co) * kh + ki) * kw + kj];
                                }
                            }
                        }
                    }
                }
            }
        }
        y
    }

    #[test]
    fn conv_transpose2d_k4_s2_p1_doubles_and_matches_scatter() {
        let mut rng = Rng::new(30);
        let (x, w) = (rand(&[3, 4, 5, 7], &mut rng), rand(&[4, 2, 4, 4], &mut rng));
        let p = ConvTranspose2dParams::new(2, 1);
        let y = conv_transpose2d(&x, &w, None, &p).unwrap();
        assert_eq!(y.shape(), &[3, 2, 10, 14]);
        let want = naive(&x, &w, &p, [10, 14]);
        for (a, b) in y.to_vec_f64().unwrap().iter().zip(&want) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    #[test]
    fn output_padding_adds_bias_only_rows_and_columns() {
        let mut rng = Rng::new(31);
        let (x, w, b) = (rand(&[1, 2, 4, 3], &mut rng), rand(&[2, 3, 3, 3], &mut rng), rand(&[3], &mut rng));
        let p = ConvTranspose2dParams::new(2, 1).with_output_padding(1);
        let y = conv_transpose2d(&x, &w, Some(&b), &p).unwrap();
        // OH = 3·2 − 2 + 2 + 1 + 1 = 8, OW = 2·2 − 2 + 2 + 1 + 1 = 6.
        assert_eq!(y.shape(), &[1, 3, 8, 6]);
        let (yv, bv) = (y.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
        let want = naive(&x, &w, &p, [8, 6]);
        for (i, (a, n)) in yv.iter().zip(&want).enumerate() {
            assert!((a - (n + bv[i / 48])).abs() < 1e-12);
        }
        // With dilation 2 > stride 1, output_padding 1 is allowed and grows the output by one.
        let p = ConvTranspose2dParams::new(1, 1).with_dilation(2).with_output_padding(1);
        let y = conv_transpose2d(&x, &w, None, &p).unwrap();
        assert_eq!(y.shape(), &[1, 3, 7, 6]);
    }

    #[test]
    fn conv_transpose2d_backward_ops_are_adjoints_of_the_forward() {
        let mut rng = Rng::new(32);
        for p in [
            ConvTranspose2dParams::new(2, 1).with_output_padding(1),
            ConvTranspose2dParams { stride: [1, 2], padding: [2, 1], output_padding: [1, 0], dilation: [2, 1] },
        ] {
            let (x, w, b) = (rand(&[3, 3, 5, 4], &mut rng), rand(&[3, 2, 3, 3], &mut rng), rand(&[2], &mut rng));
            let y = conv_transpose2d(&x, &w, None, &p).unwrap();
            let gy = rand(y.shape(), &mut rng);
            let lhs = dot(&y, &gy);
            // backward_data recovers H, W from grad_y (including the dilation > stride case).
            let dx = conv_transpose2d_backward_data(&gy, &w, &p).unwrap();
            let dw = conv_transpose2d_backward_weight(&gy, &x, w.shape(), &p).unwrap();
            assert_eq!((dx.shape(), dw.shape()), (x.shape(), w.shape()));
            assert!((lhs - dot(&x, &dx)).abs() <= 1e-10 * lhs.abs(), "{p:?}");
            assert!((lhs - dot(&w, &dw)).abs() <= 1e-10 * lhs.abs(), "{p:?}");
            let with_b = dot(&conv_transpose2d(&x, &w, Some(&b), &p).unwrap(), &gy);
            let db = conv_transpose2d_backward_bias(&gy).unwrap();
            assert!((with_b - lhs - dot(&b, &db)).abs() <= 1e-10 * with_b.abs().max(1.0), "{p:?}");
        }
    }

    #[test]
    fn conv_transpose2d_f32_matches_f64() {
        let mut rng = Rng::new(33);
        let (x, w, b) = (rand(&[2, 4, 4, 4], &mut rng), rand(&[4, 3, 4, 4], &mut rng), rand(&[3], &mut rng));
        let p = ConvTranspose2dParams::new(2, 1);
        let y64 = conv_transpose2d(&x, &w, Some(&b), &p).unwrap();
        let f32s = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        let y32 = conv_transpose2d(&f32s(&x), &f32s(&w), Some(&f32s(&b)), &p).unwrap();
        assert_eq!(y32.dtype(), DType::F32);
        for (a, b) in y32.to_vec_f64().unwrap().iter().zip(y64.to_vec_f64().unwrap()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn bad_conv_transpose2d_arguments_are_errors_not_panics() {
        let x = Tensor::zeros(&[2, 4, 5, 5], DType::F32);
        let w = Tensor::zeros(&[4, 3, 3, 3], DType::F32);
        let p = ConvTranspose2dParams::new(2, 1);
        let is_shape = |r: Result<Tensor>| matches!(r, Err(TensorError::Shape { .. }));
        let is_invalid = |r: Result<Tensor>| matches!(r, Err(TensorError::Invalid { .. }));
        let e = conv_transpose2d(&x, &Tensor::zeros(&[3, 3, 3, 3], DType::F32), None, &p).unwrap_err().to_string();
        assert!(e.contains("input [2, 4, 5, 5] has 4 channels but weight [3, 3, 3, 3] expects 3"), "{e}");
        assert!(is_shape(conv_transpose2d(&Tensor::zeros(&[4, 5, 5], DType::F32), &w, None, &p)));
        assert!(is_shape(conv_transpose2d(&x, &w, Some(&Tensor::zeros(&[4], DType::F32)), &p)));
        assert!(is_invalid(conv_transpose2d(&x, &w, None, &ConvTranspose2dParams { stride: [0, 2], ..p })));
        assert!(is_invalid(conv_transpose2d(&x, &w, None, &p.with_dilation(0))));
        // output_padding must be below stride or dilation: 2 ≥ max(2, 1) fails, 1 passes.
        let e = conv_transpose2d(&x, &w, None, &p.with_output_padding(2)).unwrap_err().to_string();
        assert!(
            e.contains("output_padding [2, 2] must be smaller than either stride [2, 2] or dilation [1, 1]"),
            "{e}"
        );
        assert!(conv_transpose2d(&x, &w, None, &p.with_output_padding(1)).is_ok());
        // Output size ≤ 0: 1×1 input, 1×1 kernel, padding 1 gives −1.
        let e = conv_transpose2d(
            &Tensor::zeros(&[1, 4, 1, 1], DType::F32),
            &Tensor::zeros(&[4, 3, 1, 1], DType::F32),
            None,
            &ConvTranspose2dParams::new(1, 1),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("output size -1×-1 is not positive: input 1×1 with kernel 1×1"), "{e}");
        assert!(matches!(
            conv_transpose2d(&x, &w.to_dtype(DType::F64).unwrap(), None, &p),
            Err(TensorError::DType { op: "conv_transpose2d", expected: DType::F32, got: DType::F64 })
        ));
        // Backward: grad_y that no input size produces, wrong channels, wrong weight shape.
        let gy = Tensor::zeros(&[2, 3, 9, 9], DType::F32); // forward output of x with p
        assert_eq!(conv_transpose2d_backward_data(&gy, &w, &p).unwrap().shape(), x.shape());
        assert!(is_shape(conv_transpose2d_backward_data(&Tensor::zeros(&[2, 3, 10, 9], DType::F32), &w, &p)));
        assert!(is_shape(conv_transpose2d_backward_data(&Tensor::zeros(&[2, 4, 9, 9], DType::F32), &w, &p)));
        assert!(is_invalid(conv_transpose2d_backward_data(&gy, &w, &ConvTranspose2dParams { stride: [0, 2], ..p })));
        assert!(conv_transpose2d_backward_weight(&gy, &x, &[4, 3, 3, 3], &p).is_ok());
        assert!(is_shape(conv_transpose2d_backward_weight(&gy, &x, &[4, 2, 3, 3], &p)));
        assert!(is_shape(conv_transpose2d_backward_weight(&gy, &x, &[5, 3, 3, 3], &p)));
        assert!(is_shape(conv_transpose2d_backward_weight(&gy, &x, &[4, 3, 3], &p)));
        assert!(is_shape(conv_transpose2d_backward_bias(&Tensor::zeros(&[3, 9], DType::F32))));
    }
}
