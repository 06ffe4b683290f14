use tensor::ops::concat::*;
use tensor::*;

fn t(v: Vec<f64>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape).unwrap()
}

#[test]
fn cat_along_middle_axis() {
    let a = t(vec![1.0, 2.0, 3.0, 4.0], &[2, 1, 2]);
    let b = t(vec![5.0, 6.0, 7.0, 8.0], &[2, 1, 2]);
    let c = cat(&[&a, &b], 1).unwrap();
    assert_eq!(c.shape(), &[2, 2, 2]);
    assert_eq!(c.to_vec_f64().unwrap(), vec![1.0, 2.0, 5.0, 6.0, 3.0, 4.0, 7.0, 8.0]);
}

#[test]
fn stack_adds_a_leading_axis() {
    let a = t(vec![1.0, 2.0], &[2]);
    let s = stack(&[&a, &a, &a], 0).unwrap();
    assert_eq!(s.shape(), &[3, 2]);
}

#[test]
fn index_select_picks_rows_and_index_add_is_its_adjoint() {
    let x = t((0..6).map(|v| v as f64).collect(), &[3, 2]);
    let y = index_select(&x, 0, &[2, 0, 2]).unwrap();
    assert_eq!(y.to_vec_f64().unwrap(), vec![4.0, 5.0, 0.0, 1.0, 4.0, 5.0]);
    let back = index_add_zeros(&y, 0, &[2, 0, 2], &[3, 2]).unwrap();
    assert_eq!(back.to_vec_f64().unwrap(), vec![0.0, 1.0, 0.0, 0.0, 8.0, 10.0]);
}

#[test]
fn cat_rejects_mismatched_shapes() {
    let a = t(vec![1.0; 4], &[2, 2]);
    let b = t(vec![1.0; 3], &[3, 1]);
    assert!(cat(&[&a, &b], 0).is_err());
}
