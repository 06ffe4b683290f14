use tensor::error::TensorError;
use tensor::ops::pool::*;
use tensor::rng::Rng;
use tensor::*;

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
