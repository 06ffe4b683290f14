use tensor::ops::conv2d::*;
use tensor::rng::Rng;
use tensor::*;

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
fn conv2d_op_has_pytorch_output_shape_and_agrees_with_the_reference() {
    let mut rng = Rng::new(20);
    let (x, w, b) = (rand(&[3, 2, 9, 7], &mut rng), rand(&[4, 2, 3, 5], &mut rng), rand(&[4], &mut rng));
    let p = Conv2dParams { stride: [2, 1], padding: [1, 2], dilation: [1, 2] };
    let y = conv2d(&x, &w, Some(&b), &p).unwrap();
    // OH = ⌊(9 + 2 − 2 − 1)/2⌋ + 1 = 5; OW = ⌊(7 + 4 − 8 − 1)/1⌋ + 1 = 3.
    assert_eq!(y.shape(), &[3, 4, 5, 3]);
    let on_reference = |t: &Tensor| t.to_device(&Device::Reference).unwrap();
    let want = conv2d(&on_reference(&x), &on_reference(&w), Some(&on_reference(&b)), &p).unwrap();
    // f64 both, summed in another order: agreement to rounding.
    for (got, want) in y.to_vec_f64().unwrap().iter().zip(want.to_vec_f64().unwrap()) {
        assert!((got - want).abs() <= 1e-12 * want.abs().max(1.0), "{got} vs {want}");
    }
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

#[test]
fn bad_nearest_upsampled_convolution_arguments_are_errors_that_name_the_op() {
    use tensor::ops::upsampled_conv::conv2d_nearest_upsampled;
    let x = Tensor::zeros(&[2, 3, 4, 5], DType::F32);
    let w = Tensor::zeros(&[6, 3, 3, 3], DType::F32);
    assert_eq!(conv2d_nearest_upsampled(&x, &w, None).unwrap().shape(), &[2, 6, 8, 10]);
    let shape_error = |r: Result<Tensor>| match r {
        Err(TensorError::Shape { op, msg }) => format!("{op}: {msg}"),
        other => panic!("expected a shape error, got {other:?}"),
    };
    // Not 3×3, or another input channel count: the weight and the input are named.
    let e = shape_error(conv2d_nearest_upsampled(&x, &Tensor::zeros(&[6, 3, 2, 2], DType::F32), None));
    assert!(e.starts_with("conv2d_nearest_upsampled") && e.contains("[6, 3, 2, 2]"), "{e}");
    let e = shape_error(conv2d_nearest_upsampled(&x, &Tensor::zeros(&[6, 4, 3, 3], DType::F32), None));
    assert!(e.contains("[C_out, 3, 3, 3]") && e.contains("[2, 3, 4, 5]"), "{e}");
    // A bias of another length, an input of another rank, an empty plane.
    shape_error(conv2d_nearest_upsampled(&x, &w, Some(&Tensor::zeros(&[5], DType::F32))));
    shape_error(conv2d_nearest_upsampled(&Tensor::zeros(&[3, 4, 5], DType::F32), &w, None));
    shape_error(conv2d_nearest_upsampled(&Tensor::zeros(&[2, 3, 0, 5], DType::F32), &w, None));
    // Another dtype.
    let w64 = w.to_dtype(DType::F64).unwrap();
    assert!(matches!(conv2d_nearest_upsampled(&x, &w64, None), Err(TensorError::DType { .. })));
}
