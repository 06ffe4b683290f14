use tensor::ops::reduce::*;
use tensor::*;

#[test]
fn all_finite_finds_one_nan_or_infinity_anywhere_in_a_long_tensor() {
    let n = 100_003;
    assert!(Tensor::zeros(&[n], DType::F32).all_finite().unwrap());
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for at in [0, n / 2, n - 1] {
            let mut v = vec![1.0f64; n];
            v[at] = bad;
            let t = Tensor::from_vec(v, &[n]).unwrap();
            assert!(!t.all_finite().unwrap(), "{bad} at {at} (f64)");
            assert!(!t.to_dtype(DType::F32).unwrap().all_finite().unwrap(), "{bad} at {at} (f32)");
        }
    }
}

fn x234() -> Tensor {
    Tensor::from_vec((0..24).map(|v| v as f64).collect(), &[2, 3, 4]).unwrap()
}

#[test]
fn sum_over_non_adjacent_axes_with_keepdim() {
    let s = x234().sum(&[0, 2], true).unwrap();
    assert_eq!(s.shape(), &[1, 3, 1]);
    // axis 1 = j: Σ_{i,k} (12 i + 4 j + k) = 12·4 + 8·4 j·... computed directly:
    let expect: Vec<f64> =
        (0..3).map(|j| (0..2).flat_map(|i| (0..4).map(move |k| (12 * i + 4 * j + k) as f64)).sum()).collect();
    assert_eq!(s.to_vec_f64().unwrap(), expect);
}

#[test]
fn max_and_argmax_over_last_axis() {
    let x = Tensor::from_vec(vec![3.0f64, 9.0, 1.0, 4.0, 2.0, 8.0], &[2, 3]).unwrap();
    assert_eq!(x.max(&[-1], false).unwrap().to_vec_f64().unwrap(), vec![9.0, 8.0]);
    assert_eq!(x.argmax(-1, false).unwrap().to_vec_f64().unwrap(), vec![1.0, 2.0]);
    assert_eq!(x.min(&[0], false).unwrap().to_vec_f64().unwrap(), vec![3.0, 2.0, 1.0]);
}

#[test]
fn sum_to_shape_undoes_broadcast() {
    let g = Tensor::ones(&[4, 2, 3], DType::F64);
    let s = sum_to_shape(&g, &[2, 1]).unwrap();
    assert_eq!(s.shape(), &[2, 1]);
    assert_eq!(s.to_vec_f64().unwrap(), vec![12.0, 12.0]);
}

#[test]
fn bad_axis_is_an_error() {
    assert!(x234().sum(&[3], false).is_err());
}
