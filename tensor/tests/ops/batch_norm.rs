use tensor::ops::batch_norm::*;
use tensor::*;

#[test]
fn running_statistics_move_by_momentum_towards_the_batch_ones() {
    let t = |v: &[f64]| Tensor::from_vec(v.to_vec(), &[v.len()]).unwrap();
    let (rm, rv, m, v) = (t(&[0.0, 1.0]), t(&[1.0, 1.0]), t(&[2.5, 1.0]), t(&[5.0, 3.0]));
    let (new_m, new_v) = batch_norm_update_running(&rm, &rv, &m, &v, 0.1).unwrap();
    assert_eq!(new_m.to_vec_f64().unwrap(), vec![0.0 * 0.9 + 2.5 * 0.1, 1.0 * 0.9 + 1.0 * 0.1]);
    assert_eq!(new_v.to_vec_f64().unwrap(), vec![0.9 + 5.0 * 0.1, 0.9 + 3.0 * 0.1]);
}

#[test]
fn running_statistics_of_other_lengths_or_a_non_finite_momentum_are_refused() {
    let t = |n: usize| Tensor::zeros(&[n], DType::F64);
    let err = batch_norm_update_running(&t(3), &t(3), &t(2), &t(3), 0.1).unwrap_err().to_string();
    assert!(err.contains("batch_norm_update_running") && err.contains("[2]"), "{err}");
    let err = batch_norm_update_running(&t(3), &t(3), &t(3), &t(3), f64::NAN).unwrap_err().to_string();
    assert!(err.contains("momentum"), "{err}");
}

use tensor::error::TensorError;
use tensor::rng::Rng;

#[test]
fn train_op_on_nchw_normalises_each_channel_and_reports_statistics() {
    // x: [N=2, C=1, H=1, W=2] = {1, 3, 5, 7}: mean 4, var 5, unbiased var 20/3.
    let x = Tensor::from_vec(vec![1.0f64, 3.0, 5.0, 7.0], &[2, 1, 1, 2]).unwrap();
    let out = batch_norm_train(&x, None, None, 0.0).unwrap();
    assert_eq!(out.y.shape(), x.shape());
    assert_eq!(out.mean.to_vec_f64().unwrap(), vec![4.0]);
    assert!((out.var_unbiased.to_vec_f64().unwrap()[0] - 20.0 / 3.0).abs() < 1e-14);
    assert!((out.inv_std.to_vec_f64().unwrap()[0] - 1.0 / 5.0f64.sqrt()).abs() < 1e-15);
    let s5 = 5.0f64.sqrt();
    for (u, v) in out.y.to_vec_f64().unwrap().iter().zip([-3.0 / s5, -1.0 / s5, 1.0 / s5, 3.0 / s5]) {
        assert!((u - v).abs() < 1e-15);
    }
}

#[test]
fn f32_ops_agree_with_f64_and_eval_with_batch_statistics_equals_train() {
    let mut rng = Rng::new(21);
    let x = Tensor::rand_normal(&[3, 5, 7, 3], 1.0, 2.0, DType::F64, &mut rng);
    let gamma = Tensor::rand_normal(&[5], 1.0, 0.3, DType::F64, &mut rng);
    let beta = Tensor::rand_normal(&[5], 0.0, 1.0, DType::F64, &mut rng);
    let eps = 1e-5;
    let t64 = batch_norm_train(&x, Some(&gamma), Some(&beta), eps).unwrap();
    let f32s = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    let t32 = batch_norm_train(&f32s(&x), Some(&f32s(&gamma)), Some(&f32s(&beta)), eps).unwrap();
    assert_eq!(t32.y.dtype(), DType::F32);
    for (a, b) in t64.y.to_vec_f64().unwrap().iter().zip(t32.y.to_vec_f64().unwrap()) {
        assert!((a - b).abs() < 1e-5);
    }
    // Eval with the (biased) batch variance reproduces the training output.
    let inv = t64.inv_std.to_vec_f64().unwrap();
    let var = Tensor::from_vec(inv.iter().map(|v| 1.0 / (v * v) - eps).collect::<Vec<_>>(), &[5]).unwrap();
    let ev = batch_norm_eval(&x, &t64.mean, &var, Some(&gamma), Some(&beta), eps).unwrap();
    for (a, b) in t64.y.to_vec_f64().unwrap().iter().zip(ev.to_vec_f64().unwrap()) {
        assert!((a - b).abs() < 1e-12);
    }
    let gy = Tensor::rand_normal(x.shape(), 0.0, 1.0, DType::F64, &mut rng);
    let g64 = batch_norm_train_backward(&gy, &x, &t64.mean, &t64.inv_std, Some(&gamma)).unwrap();
    let g32 = batch_norm_train_backward(&f32s(&gy), &f32s(&x), &t32.mean, &t32.inv_std, Some(&f32s(&gamma))).unwrap();
    for (a, b) in g64.dx.to_vec_f64().unwrap().iter().zip(g32.dx.to_vec_f64().unwrap()) {
        assert!((a - b).abs() < 1e-4);
    }
    assert_eq!((g64.dgamma.shape(), g64.dbeta.shape()), (&[5usize][..], &[5usize][..]));
    let e = batch_norm_eval_backward(&gy, &x, &t64.mean, &var, None, eps).unwrap();
    assert_eq!(e.dx.shape(), x.shape());
}

#[test]
fn batch_norm1d_op_accepts_rank_2_and_non_contiguous_input() {
    let mut rng = Rng::new(22);
    let xt = Tensor::rand_normal(&[5, 7], 0.0, 1.0, DType::F64, &mut rng).transpose(0, 1).unwrap(); // [7, 5]
    let a = batch_norm_train(&xt, None, None, 1e-5).unwrap();
    let b = batch_norm_train(&xt.contiguous_copy().unwrap(), None, None, 1e-5).unwrap();
    assert_eq!(a.y.to_vec_f64().unwrap(), b.y.to_vec_f64().unwrap());
    assert_eq!(a.mean.shape(), &[5]);
}

#[test]
fn bad_batch_norm_arguments_are_errors_not_panics() {
    let x = Tensor::zeros(&[2, 3, 2, 2], DType::F32);
    let c3 = Tensor::ones(&[3], DType::F32);
    assert!(matches!(
        batch_norm_train(&Tensor::zeros(&[6], DType::F32), None, None, 1e-5),
        Err(TensorError::Shape { .. })
    ));
    assert!(matches!(
        batch_norm_train(&Tensor::zeros(&[1, 3], DType::F32), None, None, 1e-5),
        Err(TensorError::Shape { .. })
    ));
    assert!(matches!(
        batch_norm_train(&x, Some(&Tensor::ones(&[4], DType::F32)), None, 1e-5),
        Err(TensorError::Shape { .. })
    ));
    assert!(matches!(
        batch_norm_train(&x, None, Some(&Tensor::ones(&[3], DType::F64)), 1e-5),
        Err(TensorError::DType { .. })
    ));
    assert!(matches!(batch_norm_train(&x, None, None, -1.0), Err(TensorError::Invalid { .. })));
    assert!(matches!(
        batch_norm_eval(&x, &c3, &Tensor::ones(&[3, 1], DType::F32), None, None, 1e-5),
        Err(TensorError::Shape { .. })
    ));
    let gy = Tensor::zeros(&[2, 3, 2, 1], DType::F32);
    assert!(matches!(batch_norm_train_backward(&gy, &x, &c3, &c3, None), Err(TensorError::Shape { .. })));
    assert!(matches!(batch_norm_eval_backward(&gy, &x, &c3, &c3, None, 1e-5), Err(TensorError::Shape { .. })));
    assert!(batch_norm_train_backward(&x, &x, &c3, &c3, Some(&c3)).is_ok());
}
