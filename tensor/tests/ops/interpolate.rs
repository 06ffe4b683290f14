use tensor::error::TensorError;
use tensor::ops::interpolate::*;
use tensor::rng::Rng;
use tensor::*;

#[test]
fn bilinear_op_x2_of_2x2_matches_pytorch() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 1, 2, 2]).unwrap();
    let y = upsample_bilinear2d(&x, 2).unwrap();
    assert_eq!(y.shape(), &[1, 1, 4, 4]);
    #[rustfmt::skip]
    let expect = vec![
        1.0, 1.25, 1.75, 2.0,
        1.5, 1.75, 2.25, 2.5,
        2.5, 2.75, 3.25, 3.5,
        3.0, 3.25, 3.75, 4.0,
    ];
    assert_eq!(y.to_vec_f32().unwrap(), expect);
}

#[test]
fn upsample_ops_read_non_contiguous_inputs_and_keep_the_dtype() {
    let mut rng = Rng::new(12);
    let x = Tensor::rand_normal(&[2, 3, 3, 5], 0.0, 1.0, DType::F32, &mut rng);
    let xt = x.transpose(2, 3).unwrap();
    let dense = xt.contiguous_copy().unwrap();
    for f in [upsample_nearest2d, upsample_bilinear2d] {
        let y = f(&xt, 2).unwrap();
        assert_eq!(y.shape(), &[2, 3, 10, 6]);
        assert_eq!(y.dtype(), DType::F32);
        assert_eq!(y.to_vec_f32().unwrap(), f(&dense, 2).unwrap().to_vec_f32().unwrap());
    }
    let gy = Tensor::rand_normal(&[2, 3, 10, 6], 0.0, 1.0, DType::F64, &mut rng);
    for f in [upsample_nearest2d_backward, upsample_bilinear2d_backward] {
        let gx = f(&gy, &[2, 3, 5, 3], 2).unwrap();
        assert_eq!((gx.shape(), gx.dtype()), (&[2usize, 3, 5, 3][..], DType::F64));
    }
}

#[test]
fn bad_upsampling_arguments_are_errors_not_panics() {
    let x = Tensor::zeros(&[1, 2, 3, 3], DType::F32);
    assert!(matches!(upsample_bilinear2d(&x, 0), Err(TensorError::Invalid { .. })));
    assert!(matches!(upsample_nearest2d(&Tensor::zeros(&[2, 3, 3], DType::F32), 2), Err(TensorError::Shape { .. })));
    assert!(matches!(upsample_nearest2d(&Tensor::zeros(&[1, 2, 0, 3], DType::F32), 2), Err(TensorError::Shape { .. })));
    let gy = Tensor::zeros(&[1, 2, 6, 5], DType::F32);
    assert!(matches!(upsample_bilinear2d_backward(&gy, x.shape(), 2), Err(TensorError::Shape { .. })));
    assert!(matches!(upsample_nearest2d_backward(&gy, &[1, 2, 3], 2), Err(TensorError::Shape { .. })));
    assert!(matches!(upsample_nearest2d_backward(&gy, x.shape(), 0), Err(TensorError::Invalid { .. })));
}
