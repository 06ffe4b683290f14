use tensor::ops::matmul::*;
use tensor::rng::Rng;
use tensor::*;

fn rand(shape: &[usize], seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, -1.0, 1.0, DType::F32, &mut Rng::new(seed))
}

/// The textbook triple loop on dense row-major data, in f64.
fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
    c
}

fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "element {i}: got {g}, want {w}");
    }
}

#[test]
fn matmul_2d_matches_hand_computed_product() {
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let b = Tensor::from_vec(vec![7.0f32, 8.0, 9.0, 10.0, 11.0, 12.0], &[3, 2]).unwrap();
    let c = matmul(&a, &b).unwrap();
    assert_eq!(c.shape(), &[2, 2]);
    assert_eq!(c.to_vec_f32().unwrap(), vec![58.0, 64.0, 139.0, 154.0]);
}

#[test]
fn matmul_2d_f64_matches_naive() {
    let (m, k, n) = (37, 53, 29);
    let a = rand(&[m, k], 1).to_dtype(DType::F64).unwrap();
    let b = rand(&[k, n], 2).to_dtype(DType::F64).unwrap();
    let c = matmul(&a, &b).unwrap();
    assert_eq!(c.dtype(), DType::F64);
    assert_close(&c.to_vec_f64().unwrap(), &naive(&a.to_vec_f64().unwrap(), &b.to_vec_f64().unwrap(), m, k, n), 1e-12);
}

#[test]
fn batched_matmul_multiplies_each_batch_entry() {
    let (bs, m, k, n) = (5, 19, 23, 17);
    let (a, b) = (rand(&[bs, m, k], 3), rand(&[bs, k, n], 4));
    let c = matmul(&a, &b).unwrap();
    assert_eq!(c.shape(), &[bs, m, n]);
    let (av, bv, cv) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap(), c.to_vec_f64().unwrap());
    for i in 0..bs {
        let want = naive(&av[i * m * k..(i + 1) * m * k], &bv[i * k * n..(i + 1) * k * n], m, k, n);
        assert_close(&cv[i * m * n..(i + 1) * m * n], &want, 1e-5);
    }
}

#[test]
fn two_d_operand_broadcasts_over_the_batch() {
    let (bs, m, k, n) = (4, 9, 70, 11);
    let (a3, b2) = (rand(&[bs, m, k], 5), rand(&[k, n], 6));
    let (a2, b3) = (rand(&[m, k], 7), rand(&[bs, k, n], 8));
    let (c_ab, c_ba) = (matmul(&a3, &b2).unwrap(), matmul(&a2, &b3).unwrap());
    assert_eq!((c_ab.shape(), c_ba.shape()), (&[bs, m, n][..], &[bs, m, n][..]));
    let (a3v, b2v, a2v, b3v) =
        (a3.to_vec_f64().unwrap(), b2.to_vec_f64().unwrap(), a2.to_vec_f64().unwrap(), b3.to_vec_f64().unwrap());
    let (c_abv, c_bav) = (c_ab.to_vec_f64().unwrap(), c_ba.to_vec_f64().unwrap());
    for i in 0..bs {
        let want = naive(&a3v[i * m * k..(i + 1) * m * k], &b2v, m, k, n);
        assert_close(&c_abv[i * m * n..(i + 1) * m * n], &want, 1e-5);
        let want = naive(&a2v, &b3v[i * k * n..(i + 1) * k * n], m, k, n);
        assert_close(&c_bav[i * m * n..(i + 1) * m * n], &want, 1e-5);
    }
}

#[test]
fn transposed_operands_match_their_contiguous_copies() {
    // x.transpose(-1, -2) swaps the last two strides: the GEMM reads it in place.
    let at = rand(&[3, 40, 30], 9).transpose(-1, -2).unwrap(); // [3, 30, 40]
    let bt = rand(&[3, 20, 40], 10).transpose(-1, -2).unwrap(); // [3, 40, 20]
    assert!(!at.is_contiguous() && !bt.is_contiguous());
    let (ac, bc) = (at.contiguous_copy().unwrap(), bt.contiguous_copy().unwrap());
    let want = matmul(&ac, &bc).unwrap().to_vec_f32().unwrap();
    assert_eq!(matmul(&at, &bt).unwrap().to_vec_f32().unwrap(), want);
    assert_eq!(matmul(&at, &bc).unwrap().to_vec_f32().unwrap(), want);
    assert_eq!(matmul(&ac, &bt).unwrap().to_vec_f32().unwrap(), want);
    // A 2-D transposed weight shared over a batch (the Linear layer's x · wᵀ).
    let w = rand(&[25, 40], 11);
    let x = rand(&[3, 30, 40], 12);
    let want = matmul(&x, &w.transpose(0, 1).unwrap().contiguous_copy().unwrap()).unwrap().to_vec_f32().unwrap();
    assert_eq!(matmul(&x, &w.transpose(0, 1).unwrap()).unwrap().to_vec_f32().unwrap(), want);
}

#[test]
fn narrowed_and_permuted_views_are_read_in_place() {
    // A view with an offset and a row stride wider than its columns.
    let big = rand(&[4, 50, 60], 13);
    let a = big.narrow(1, 7, 30).unwrap().narrow(2, 5, 45).unwrap(); // [4, 30, 45]
    let b = rand(&[45, 8], 14);
    let want = matmul(&a.contiguous_copy().unwrap(), &b).unwrap().to_vec_f32().unwrap();
    assert_eq!(matmul(&a, &b).unwrap().to_vec_f32().unwrap(), want);
    // Batch as the middle dimension of the storage: [m, B, k] permuted to [B, m, k].
    let p = rand(&[30, 4, 45], 15).permute(&[1, 0, 2]).unwrap();
    let want = matmul(&p.contiguous_copy().unwrap(), &b).unwrap().to_vec_f32().unwrap();
    assert_eq!(matmul(&p, &b).unwrap().to_vec_f32().unwrap(), want);
}

#[test]
fn empty_dimensions_give_empty_or_zero_results() {
    let c = matmul(&rand(&[0, 3], 1), &rand(&[3, 4], 2)).unwrap();
    assert_eq!(c.shape(), &[0, 4]);
    let c = matmul(&Tensor::zeros(&[2, 0], DType::F32), &Tensor::zeros(&[0, 3], DType::F32)).unwrap();
    assert_eq!(c.to_vec_f32().unwrap(), vec![0.0; 6]);
}

#[test]
fn shape_mismatches_are_errors_naming_both_shapes() {
    let err = matmul(&rand(&[2, 3], 1), &rand(&[4, 5], 2)).unwrap_err();
    assert!(
        matches!(&err, TensorError::Shape { op: "matmul", msg } if msg.contains("[2, 3]") && msg.contains("[4, 5]"))
    );
    let err = matmul(&rand(&[2, 3, 4], 1), &rand(&[3, 4, 5], 2)).unwrap_err();
    assert!(matches!(&err, TensorError::Shape { msg, .. } if msg.contains("batch")));
    assert!(matches!(matmul(&rand(&[3], 1), &rand(&[3, 4], 2)), Err(TensorError::Shape { .. })));
    assert!(matches!(matmul(&rand(&[1, 2, 3, 4], 1), &rand(&[4, 4], 2)), Err(TensorError::Shape { .. })));
}

#[test]
fn dtype_mismatch_is_an_error() {
    let err = matmul(&rand(&[2, 3], 1), &rand(&[3, 2], 2).to_dtype(DType::F64).unwrap()).unwrap_err();
    assert_eq!(err, TensorError::DType { op: "matmul", expected: DType::F32, got: DType::F64 });
}
