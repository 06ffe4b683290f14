//! Matrix products on the GPU against the reference device (the textbook product): sizes that are not multiples of the
//! 64-wide tile, batched products, a 2-D operand broadcast over a batch (either side),
//! transposed and narrowed operands read in place (never copied), and the backward.

use crate::common;

use common::parity::*;
use common::rng;
use tensor::ops::matmul::matmul;
use tensor::Tensor;

/// a·b on both devices, compared at the scale |a|·|b|.
fn check(what: &str, a: &Tensor, b: &Tensor, ag: &Tensor, bg: &Tensor) {
    let want = matmul(a, b).unwrap();
    let scale = matmul(&abs(a), &abs(b)).unwrap();
    assert_close(what, &matmul(ag, bg).unwrap(), &want, Some(&scale));
}

#[test]
fn matmul_2d_at_sizes_off_the_tile_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    for (m, k, n) in [(1, 1, 1), (1, 300, 1), (65, 63, 67), (130, 7, 129), (64, 64, 64), (3, 200, 70)] {
        let (a, b) = (signed(&[m, k], &mut r), signed(&[k, n], &mut r));
        check(&format!("{m}×{k}·{k}×{n}"), &a, &b, &up(&a, &gpu), &up(&b, &gpu));
    }
}

#[test]
fn batched_and_broadcast_matmul_match_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let (a3, b3) = (signed(&[5, 33, 70], &mut r), signed(&[5, 70, 17], &mut r));
    let (a2, b2) = (signed(&[33, 70], &mut r), signed(&[70, 17], &mut r));
    let g = |t: &Tensor| up(t, &gpu);
    check("batch 5", &a3, &b3, &g(&a3), &g(&b3));
    check("3-D · 2-D", &a3, &b2, &g(&a3), &g(&b2));
    check("2-D · 3-D", &a2, &b3, &g(&a2), &g(&b3));
    let (a1, b1) = (signed(&[1, 9, 4], &mut r), signed(&[1, 4, 65], &mut r));
    check("batch 1", &a1, &b1, &g(&a1), &g(&b1));
}

#[test]
fn transposed_and_narrowed_operands_are_read_in_place() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let a = signed(&[3, 70, 40], &mut r);
    let b = signed(&[3, 50, 70], &mut r);
    let (at, bt) = (a.transpose(1, 2).unwrap(), b.transpose(1, 2).unwrap()); // [3, 40, 70], [3, 70, 50]
    let (agt, bgt) = (up(&a, &gpu).transpose(1, 2).unwrap(), up(&b, &gpu).transpose(1, 2).unwrap());
    assert!(!agt.is_contiguous() && !bgt.is_contiguous());
    check("aᵀ·bᵀ", &at, &bt, &agt, &bgt);
    // The Linear layer's x·wᵀ with a 2-D transposed weight shared over the batch.
    let w = signed(&[25, 70], &mut r);
    let (wt, wgt) = (w.transpose(0, 1).unwrap(), up(&w, &gpu).transpose(0, 1).unwrap());
    check("x·wᵀ", &at, &wt, &agt, &wgt);
    // A narrowed view: an offset and a row stride wider than its columns.
    let big = signed(&[2, 90, 80], &mut r);
    let (v, vg) = (
        big.narrow(1, 11, 70).unwrap().narrow(2, 3, 45).unwrap(),
        up(&big, &gpu).narrow(1, 11, 70).unwrap().narrow(2, 3, 45).unwrap(),
    );
    let c = signed(&[45, 9], &mut r);
    check("narrowed · dense", &v, &c, &vg, &up(&c, &gpu));
}

#[test]
fn empty_inner_dimension_gives_zeros_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let a = Tensor::zeros_on(&[3, 0], tensor::DType::F32, &gpu).unwrap();
    let b = Tensor::zeros_on(&[0, 4], tensor::DType::F32, &gpu).unwrap();
    let c = matmul(&a, &b).unwrap();
    assert_eq!(c.to_vec_f32().unwrap(), vec![0.0; 12]);
}

#[test]
fn matmul_backward_runs_on_the_gpu_and_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let (a, b) = (signed(&[4, 66, 35], &mut r), signed(&[35, 70], &mut r));
    assert_backward_parity("batched matmul", &gpu, &[a, b], |v| v[0].matmul(&v[1]));
    let (x, w, bias) = (signed(&[9, 31], &mut r), signed(&[20, 31], &mut r), signed(&[20], &mut r));
    assert_backward_parity("linear", &gpu, &[x, w, bias], |v| autograd::ops::matmul::linear(&v[0], &v[1], Some(&v[2])));
}

#[test]
fn linear_relu_matches_the_reference_with_and_without_a_bias() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let (x, w, bias) = (signed(&[9, 31], &mut r), signed(&[20, 31], &mut r), signed(&[20], &mut r));
    assert_backward_parity("linear_relu", &gpu, &[x.clone(), w.clone(), bias], |v| {
        autograd::ops::matmul::linear_relu(&v[0], &v[1], Some(&v[2]))
    });
    assert_backward_parity("linear_relu without a bias", &gpu, &[x, w], |v| {
        autograd::ops::matmul::linear_relu(&v[0], &v[1], None)
    });
}
