use tensor::ops::optim::*;
use tensor::*;

fn hyper() -> AdamHyper {
    AdamHyper { lr: 0.1, ..AdamHyper::default() }
}

#[test]
fn adam_update_changes_the_parameter_but_not_a_tensor_sharing_its_storage() {
    let mut p = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    let before = p.clone();
    let g = Tensor::from_vec(vec![1.0f32, -1.0], &[2]).unwrap();
    let (mut m, mut v) = (p.zeros_like().unwrap(), p.zeros_like().unwrap());
    adam_update(&mut p, &g, &mut m, &mut v, &hyper()).unwrap();
    assert_eq!(before.to_vec_f32().unwrap(), vec![1.0, 2.0]);
    let got = p.to_vec_f32().unwrap();
    assert!((got[0] - 0.9).abs() < 1e-6 && (got[1] - 2.1).abs() < 1e-6, "{got:?}");
}

#[test]
fn adam_update_rejects_a_gradient_of_another_shape_naming_both() {
    let mut p = Tensor::zeros(&[2, 3], DType::F32);
    let g = Tensor::zeros(&[3, 2], DType::F32);
    let (mut m, mut v) = (p.zeros_like().unwrap(), p.zeros_like().unwrap());
    let msg = adam_update(&mut p, &g, &mut m, &mut v, &hyper()).unwrap_err().to_string();
    assert!(msg.contains("[3, 2]") && msg.contains("[2, 3]"), "{msg}");
}

#[test]
fn adam_update_rejects_mixed_dtypes() {
    let mut p = Tensor::zeros(&[2], DType::F32);
    let g = Tensor::zeros(&[2], DType::F64);
    let (mut m, mut v) = (p.zeros_like().unwrap(), p.zeros_like().unwrap());
    assert!(matches!(adam_update(&mut p, &g, &mut m, &mut v, &hyper()), Err(TensorError::DType { .. })));
}

#[test]
fn adam_update_reads_a_transposed_gradient_through_its_layout() {
    let mut p = Tensor::zeros(&[3, 2], DType::F64);
    let g = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, -4.0, -5.0, -6.0], &[2, 3]).unwrap().transpose(0, 1).unwrap();
    let (mut m, mut v) = (p.zeros_like().unwrap(), p.zeros_like().unwrap());
    adam_update(&mut p, &g, &mut m, &mut v, &hyper()).unwrap();
    // First step: each weight moves by −lr·sign(g) (up to eps), in g's logical order.
    let signs: Vec<f64> = p.to_vec_f64().unwrap().iter().map(|x| (x / 0.1).round()).collect();
    assert_eq!(signs, vec![-1.0, 1.0, -1.0, 1.0, -1.0, 1.0]);
}

#[test]
fn sgd_update_with_momentum_and_no_buffer_is_an_error() {
    let mut p = Tensor::zeros(&[2], DType::F32);
    let g = p.zeros_like().unwrap();
    let h = SgdHyper { lr: 0.1, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false, first_step: true };
    assert!(sgd_update(&mut p, &g, None, &h).is_err());
}
