use tensor::ops::elementwise::*;
use tensor::*;

fn t(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

#[test]
fn add_broadcasts_row_and_column() {
    let a = t(&[1.0, 2.0, 3.0], &[1, 3]);
    let b = t(&[10.0, 20.0], &[2, 1]);
    let c = a.add(&b).unwrap();
    assert_eq!(c.shape(), &[2, 3]);
    assert_eq!(c.to_vec_f64().unwrap(), vec![11.0, 12.0, 13.0, 21.0, 22.0, 23.0]);
}

#[test]
fn binary_on_transposed_view_reads_through_strides() {
    let a = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).transpose(0, 1).unwrap();
    let b = t(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0], &[3, 2]);
    assert_eq!(a.sub(&b).unwrap().to_vec_f64().unwrap(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
}

#[test]
fn mismatched_shapes_are_an_error_naming_both() {
    let err = t(&[1.0; 6], &[2, 3]).add(&t(&[1.0; 4], &[4])).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("[2, 3]") && msg.contains("[4]"), "{msg}");
}

#[test]
fn mixed_dtypes_are_an_error() {
    let a = Tensor::from_vec(vec![1.0f32], &[1]).unwrap();
    let b = Tensor::from_vec(vec![1.0f64], &[1]).unwrap();
    assert!(matches!(a.add(&b), Err(TensorError::DType { .. })));
}

#[test]
fn where_selects_by_condition() {
    let c = t(&[1.0, 0.0, 1.0], &[3]);
    let out = where_cond(&c, &t(&[1.0, 2.0, 3.0], &[3]), &t(&[-1.0], &[1])).unwrap();
    assert_eq!(out.to_vec_f64().unwrap(), vec![1.0, -1.0, 3.0]);
}
