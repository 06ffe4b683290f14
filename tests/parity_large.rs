//! Tensors larger than one GPU storage binding against the CPU kernels: the ops split their
//! launches into parts that fit (`tensor/src/gpu_parts/mod.rs`), and every element must come out
//! as if they had not. Every op runs on a device whose binding limit is lowered to 2 MiB
//! (`small_binding_gpu`), so an 8 MB tensor takes the paths a tensor beyond the device's own
//! limit takes, on any adapter and in seconds; the element-wise ops also run beyond the
//! device's own limit (max_storage_buffer_binding_size: 128 MiB on lavapipe) on a 136 MB
//! tensor. The batches are odd and the rows (3·67·65 = 13065 elements) are too, so the parts
//! end mid-way and their windows must be rounded to the device's offset alignment.

use crate::common;
use crate::parity_concat::assert_index_select_and_add_match;

use common::parity::*;
use common::rng;
use tensor::ops::batch_norm::{batch_norm_eval, batch_norm_eval_backward, batch_norm_train, batch_norm_train_backward};
use tensor::ops::concat::{cat, index_add_zeros, index_select};
use tensor::ops::conv2d::{conv2d, conv2d_backward_bias, conv2d_backward_data, conv2d_backward_weight, Conv2dParams};
use tensor::ops::conv_transpose2d::{conv_transpose2d, ConvTranspose2dParams};
use tensor::ops::interpolate::upsample_nearest2d;
use tensor::ops::matmul::matmul;
use tensor::ops::optim::{adam_update, sgd_update, AdamHyper, SgdHyper};
use tensor::ops::pool::{avg_pool2d, max_pool2d, max_pool2d_backward};
use tensor::ops::reduce::{reduce, ReduceOp};
use tensor::{DType, Device, Tensor, TensorError};

/// [N, C, H, W] of the input on the lowered limit: 2,103,465 f32, 4 bindings' worth. (A
/// part holds a multiple of 8 rows here, the offset alignment over an odd row length: the
/// limit must hold 8 of the largest rows below, 8 × 34,840 f32.)
pub(crate) const X_SHAPE: [usize; 4] = [161, 3, 67, 65];

/// [N, C, H, W] of the input beyond the device's own limit: 33,978,065 f32 = 136 MB, above
/// lavapipe's 134,217,728 bytes.
const REAL_X_SHAPE: [usize; 4] = [2601, 3, 67, 65];

fn binding_len(gpu: &Device) -> usize {
    gpu.gpu_context().expect("a GPU device").max_binding_len()
}

/// The device with the lowered binding limit, and a check that `shape` is split there.
fn splitting_gpu(shape: &[usize]) -> Option<Device> {
    exceeding(small_binding_gpu(), gpu::Context::max_binding_len, shape)
}

#[test]
fn element_wise_ops_and_strided_copies_beyond_one_binding_match_the_cpu() {
    // On the device's own limit (the shared device), with a tensor beyond it where it is lower
    // than 136 MB; the lowered limit's device, with the small tensor.
    let own = gpu().map(|gpu| (gpu, REAL_X_SHAPE));
    let lowered = splitting_gpu(&X_SHAPE).map(|gpu| (gpu, X_SHAPE));
    for (gpu, shape) in own.into_iter().chain(lowered) {
        if binding_len(&gpu) >= shape.iter().product::<usize>() {
            println!("element-wise: this device binds {} f32 at once, so {shape:?} is not split", binding_len(&gpu));
        }
        element_wise_ops_and_strided_copies_match_the_cpu(&gpu, &shape);
    }
}

pub(crate) fn element_wise_ops_and_strided_copies_match_the_cpu(gpu: &Device, shape: &[usize]) {
    let mut r = rng();
    let x = signed_cpu(shape, &mut r);
    let bias = signed_cpu(&[1, 3, 1, 1], &mut r);
    let xg = up(&x, gpu);
    assert!(x.numel() > binding_len(gpu) || binding_len(gpu) >= 4 * x.numel());
    assert_close("relu", &xg.relu().unwrap(), &x.relu().unwrap(), None);
    assert_close("x + bias[1, 3, 1, 1]", &xg.add(&up(&bias, gpu)).unwrap(), &x.add(&bias).unwrap(), None);
    assert_close("x · x", &xg.mul(&xg).unwrap(), &x.mul(&x).unwrap(), None);
    // A permuted view spans nearly the whole buffer in one row of its leading axis: the copy
    // is cut along the next axis instead.
    let permuted = |t: &Tensor| t.permute(&[1, 0, 2, 3]).unwrap().contiguous().unwrap();
    assert_close("permute(1, 0, 2, 3).contiguous()", &permuted(&xg), &permuted(&x), None);
    // A narrowed view starting mid-row: windows start at the aligned element before it.
    let narrowed = |t: &Tensor| t.narrow(3, 3, 61).unwrap().exp().unwrap();
    assert_close("narrow(3, 3, 61).exp()", &narrowed(&xg), &narrowed(&x), None);
    let filled = Tensor::full_on(shape, 0.5, DType::F32, gpu).unwrap();
    assert!(filled.to_vec_f32().unwrap().iter().all(|&v| v == 0.5), "full_on fills every element");
}

#[test]
fn convolutions_beyond_one_binding_match_the_cpu() {
    let Some(gpu) = splitting_gpu(&X_SHAPE) else { return };
    convolutions_match_the_cpu(&gpu);
}

/// Convolution forward and backwards on [`X_SHAPE`].
pub(crate) fn convolutions_match_the_cpu(gpu: &Device) {
    let mut r = rng();
    let x = signed_cpu(&X_SHAPE, &mut r);
    let w = signed_cpu(&[4, 3, 3, 3], &mut r);
    let b = signed_cpu(&[4], &mut r);
    let p = Conv2dParams { padding: [1, 1], ..Default::default() };
    let (xg, wg) = (up(&x, gpu), up(&w, gpu));
    let y = conv2d(&x, &w, Some(&b), &p).unwrap();
    let scale = conv2d(&abs(&x), &abs(&w), Some(&abs(&b)), &p).unwrap();
    assert_close("conv2d", &conv2d(&xg, &wg, Some(&up(&b, gpu)), &p).unwrap(), &y, Some(&scale));
    let gy = signed_cpu(y.shape(), &mut r);
    let gyg = up(&gy, gpu);
    let dx = conv2d_backward_data(&gy, &w, x.shape(), &p).unwrap();
    let dx_scale = conv2d_backward_data(&abs(&gy), &abs(&w), x.shape(), &p).unwrap();
    assert_close(
        "conv2d_backward_data",
        &conv2d_backward_data(&gyg, &wg, x.shape(), &p).unwrap(),
        &dx,
        Some(&dx_scale),
    );
    // Summed over the batch: every part after the first adds to what the first wrote.
    let dw = conv2d_backward_weight(&gy, &x, w.shape(), &p).unwrap();
    let dw_scale = conv2d_backward_weight(&abs(&gy), &abs(&x), w.shape(), &p).unwrap();
    let dwg = conv2d_backward_weight(&gyg, &xg, w.shape(), &p).unwrap();
    assert_close("conv2d_backward_weight", &dwg, &dw, Some(&dw_scale));
    let db_scale = conv2d_backward_bias(&abs(&gy)).unwrap();
    assert_close(
        "conv2d_backward_bias",
        &conv2d_backward_bias(&gyg).unwrap(),
        &conv2d_backward_bias(&gy).unwrap(),
        Some(&db_scale),
    );
}

#[test]
fn transposed_convolution_pooling_and_upsampling_beyond_one_binding_match_the_cpu() {
    let Some(gpu) = splitting_gpu(&[40, 2, 134, 130]) else { return };
    transposed_convolution_pooling_and_upsampling_match_the_cpu(&gpu);
}

/// Transposed convolution and upsampling to [40, 2, 134, 130] (the large tensors), pooling
/// of [`X_SHAPE`].
pub(crate) fn transposed_convolution_pooling_and_upsampling_match_the_cpu(gpu: &Device) {
    let mut r = rng();
    let x = signed_cpu(&[40, 3, 67, 65], &mut r);
    let xg = up(&x, gpu);
    let w = signed_cpu(&[3, 2, 2, 2], &mut r);
    let p = ConvTranspose2dParams { stride: [2, 2], ..Default::default() };
    let y = conv_transpose2d(&x, &w, None, &p).unwrap(); // [40, 2, 134, 130]
    let scale = conv_transpose2d(&abs(&x), &abs(&w), None, &p).unwrap();
    assert_close("conv_transpose2d", &conv_transpose2d(&xg, &up(&w, gpu), None, &p).unwrap(), &y, Some(&scale));
    assert_close(
        "upsample_nearest2d ×2",
        &upsample_nearest2d(&xg, 2).unwrap(),
        &upsample_nearest2d(&x, 2).unwrap(),
        None,
    );
    let big = signed_cpu(&X_SHAPE, &mut r);
    let pooled = avg_pool2d(&up(&big, gpu), [2, 2], [2, 2], [0, 0]).unwrap();
    let scale = avg_pool2d(&abs(&big), [2, 2], [2, 2], [0, 0]).unwrap();
    assert_close("avg_pool2d 2×2", &pooled, &avg_pool2d(&big, [2, 2], [2, 2], [0, 0]).unwrap(), Some(&scale));
    // Max pool: its argmax indices are cut like its output, forward and backward.
    let (y, idx) = max_pool2d(&big, [3, 3], [2, 2], [1, 1]).unwrap();
    let (yg, idxg) = max_pool2d(&up(&big, gpu), [3, 3], [2, 2], [1, 1]).unwrap();
    assert_close("max_pool2d 3×3 stride 2", &yg, &y, None);
    assert_eq!(idxg.to_vec().unwrap(), idx.to_vec().unwrap(), "max_pool2d argmax indices");
    let gy = signed_cpu(y.shape(), &mut r);
    let want = max_pool2d_backward(&gy, &idx, &X_SHAPE).unwrap();
    assert_close("max_pool2d_backward", &max_pool2d_backward(&up(&gy, gpu), &idxg, &X_SHAPE).unwrap(), &want, None);
}

#[test]
fn parts_whose_rows_start_unaligned_are_staged_through_copies_and_match_the_cpu() {
    // A binding of 65,536 f32 holds 5 rows of 13,065, but an aligned cut needs a multiple of
    // 8 (the offset alignment over an odd row length): parts of 5 rows, the cuts that start
    // unaligned bound through scratch copies, outputs (max-pool indices too) copied back.
    let Some(gpu) = gpu_with(|pref| gpu::Context::with_binding_limit(pref, 256 << 10)) else { return };
    let mut r = rng();
    let x = signed_cpu(&[21, 3, 67, 65], &mut r);
    let (w, xg) = (signed_cpu(&[4, 3, 3, 3], &mut r), up(&x, &gpu));
    let p = Conv2dParams { padding: [1, 1], ..Default::default() };
    let y = conv2d(&x, &w, None, &p).unwrap();
    let scale = conv2d(&abs(&x), &abs(&w), None, &p).unwrap();
    assert_close("conv2d", &conv2d(&xg, &up(&w, &gpu), None, &p).unwrap(), &y, Some(&scale));
    let gy = signed_cpu(y.shape(), &mut r);
    let dw = conv2d_backward_weight(&gy, &x, w.shape(), &p).unwrap();
    let dw_scale = conv2d_backward_weight(&abs(&gy), &abs(&x), w.shape(), &p).unwrap();
    let dwg = conv2d_backward_weight(&up(&gy, &gpu), &xg, w.shape(), &p).unwrap();
    assert_close("conv2d_backward_weight", &dwg, &dw, Some(&dw_scale));
    let (y, idx) = max_pool2d(&x, [3, 3], [2, 2], [1, 1]).unwrap();
    let (yg, idxg) = max_pool2d(&xg, [3, 3], [2, 2], [1, 1]).unwrap();
    assert_close("max_pool2d", &yg, &y, None);
    assert_eq!(idxg.to_vec().unwrap(), idx.to_vec().unwrap(), "max_pool2d argmax indices");
    let want = upsample_nearest2d(&x, 2).unwrap();
    assert_close("upsample_nearest2d ×2", &upsample_nearest2d(&xg, 2).unwrap(), &want, None);
}

#[test]
fn a_batch_row_larger_than_one_binding_is_a_limit_error_naming_it() {
    // One image of 8 × 256 × 257 = 526,336 f32: cutting along the batch cannot help.
    let shape = [1, 8, 256, 257];
    let Some(gpu) = splitting_gpu(&shape) else { return };
    let x = Tensor::zeros_on(&shape, DType::F32, &gpu).unwrap();
    let w = Tensor::zeros_on(&[1, 8, 1, 1], DType::F32, &gpu).unwrap();
    match conv2d(&x, &w, None, &Conv2dParams::default()) {
        Err(e @ TensorError::Limit { op: "conv2d", .. }) => {
            assert!(e.to_string().contains("cannot be split along its batch"), "{e}");
            assert!(e.to_string().contains("max_storage_buffer_binding_size"), "{e}");
        }
        other => panic!("expected a Limit error from conv2d, got {other:?}"),
    }
}

#[test]
fn batch_norm_beyond_one_binding_matches_the_cpu_in_training_and_eval() {
    let Some(gpu) = splitting_gpu(&X_SHAPE) else { return };
    batch_norm_matches_the_cpu_in_training_and_eval(&gpu);
}

/// Batch norm on [`X_SHAPE`], forward and backward, training and eval.
pub(crate) fn batch_norm_matches_the_cpu_in_training_and_eval(gpu: &Device) {
    let mut r = rng();
    // Channel means away from 0, so a statistic summed over one part only would show.
    let x = signed_cpu(&X_SHAPE, &mut r).add_scalar(0.25).unwrap();
    let (gamma, beta) = (signed_cpu(&[3], &mut r), signed_cpu(&[3], &mut r));
    let (xg, gg, bg) = (up(&x, gpu), up(&gamma, gpu), up(&beta, gpu));
    let eps = 1e-5;
    let want = batch_norm_train(&x, Some(&gamma), Some(&beta), eps).unwrap();
    let got = batch_norm_train(&xg, Some(&gg), Some(&bg), eps).unwrap();
    assert_close("batch_norm_train y", &got.y, &want.y, None);
    assert_close("batch_norm_train mean", &got.mean, &want.mean, None);
    assert_close("batch_norm_train inv_std", &got.inv_std, &want.inv_std, None);
    assert_close("batch_norm_train var_unbiased", &got.var_unbiased, &want.var_unbiased, None);
    let gy = signed_cpu(&X_SHAPE, &mut r);
    let gyg = up(&gy, gpu);
    // dγ and dβ sum 701,155 terms of either sign per channel: their natural scale is the
    // sum of the terms' magnitudes, Σ |dy|·|x − μ|·inv_std and Σ |dy|.
    let per_channel = |t: &Tensor| t.sum(&[0, 2, 3], false).unwrap();
    let dgamma_scale = |mean: &Tensor, inv_std: &Tensor| {
        let centered = x.sub(&mean.reshape(&[1, 3, 1, 1]).unwrap()).unwrap();
        per_channel(&abs(&gy).mul(&abs(&centered)).unwrap()).mul(inv_std).unwrap()
    };
    let dbeta_scale = per_channel(&abs(&gy));
    let (mean, inv_std) = (want.mean.clone(), want.inv_std.clone());
    let want = batch_norm_train_backward(&gy, &x, &want.mean, &want.inv_std, Some(&gamma)).unwrap();
    let got = batch_norm_train_backward(&gyg, &xg, &got.mean, &got.inv_std, Some(&gg)).unwrap();
    assert_close("batch_norm_train_backward dx", &got.dx, &want.dx, Some(&tensor_scale(&want.dx)));
    let scale = dgamma_scale(&mean, &inv_std);
    assert_close("batch_norm_train_backward dgamma", &got.dgamma, &want.dgamma, Some(&scale));
    assert_close("batch_norm_train_backward dbeta", &got.dbeta, &want.dbeta, Some(&dbeta_scale));
    let (rm, rv) = (signed_cpu(&[3], &mut r), uniform32_cpu(&[3], 0.5, 2.0, &mut r));
    let (rmg, rvg) = (up(&rm, gpu), up(&rv, gpu));
    let want = batch_norm_eval(&x, &rm, &rv, Some(&gamma), Some(&beta), eps).unwrap();
    assert_close("batch_norm_eval", &batch_norm_eval(&xg, &rmg, &rvg, Some(&gg), Some(&bg), eps).unwrap(), &want, None);
    let want = batch_norm_eval_backward(&gy, &x, &rm, &rv, Some(&gamma), eps).unwrap();
    let got = batch_norm_eval_backward(&gyg, &xg, &rmg, &rvg, Some(&gg), eps).unwrap();
    assert_close("batch_norm_eval_backward dx", &got.dx, &want.dx, None);
    let scale = dgamma_scale(&rm, &rv.add_scalar(eps).unwrap().sqrt().unwrap().recip().unwrap());
    assert_close("batch_norm_eval_backward dgamma", &got.dgamma, &want.dgamma, Some(&scale));
}

#[test]
fn reductions_beyond_one_binding_match_the_cpu() {
    let Some(gpu) = splitting_gpu(&X_SHAPE) else { return };
    reductions_match_the_cpu(&gpu);
}

/// Reductions of [`X_SHAPE`] per image, over the batch and over everything.
pub(crate) fn reductions_match_the_cpu(gpu: &Device) {
    let mut r = rng();
    let x = signed_cpu(&X_SHAPE, &mut r).add_scalar(0.1).unwrap();
    let xg = up(&x, gpu);
    // Per image (parts of the batch); over the batch, every axis and the channel-gradient
    // axes (0, 2, 3) (pieces of the reduced block, combined).
    for (axes, op) in [
        (vec![1, 2, 3], ReduceOp::Sum),
        (vec![0], ReduceOp::Mean),
        (vec![], ReduceOp::Max),
        (vec![], ReduceOp::Min),
        (vec![0, 2, 3], ReduceOp::Sum),
    ] {
        let what = format!("{op:?} over axes {axes:?}");
        let want = reduce(&x, &axes, false, op).unwrap();
        let scale = reduce(&abs(&x), &axes, false, if op == ReduceOp::Min { ReduceOp::Max } else { op }).unwrap();
        assert_close(&what, &reduce(&xg, &axes, false, op).unwrap(), &want, Some(&scale));
    }
    // Reductions that do not combine from pieces say so.
    let e = reduce(&xg, &[], false, ReduceOp::ArgMax).unwrap_err();
    assert!(matches!(e, TensorError::Limit { op: "reduce", .. }), "{e}");
    assert!(e.to_string().contains("only sum, mean, max and min"), "{e}");
}

#[test]
fn index_select_and_index_add_beyond_one_binding_match_the_cpu() {
    let Some(gpu) = splitting_gpu(&X_SHAPE) else { return };
    index_ops_match_the_cpu(&gpu);
}

/// index_select and its adjoint index_add on [`X_SHAPE`]: along the batch, where one outer
/// row (all of it) is larger than a binding, so the launches take windows of the indexed
/// axis; along the channels and the last axis, in parts of the outer rows; and from a small
/// input into a large output.
pub(crate) fn index_ops_match_the_cpu(gpu: &Device) {
    let mut r = rng();
    let x = signed_cpu(&X_SHAPE, &mut r);
    let xg = up(&x, gpu);
    // Unsorted and repeated, more indices than rows: each output's source may lie in any window.
    let batch: Vec<usize> = (0..200).map(|_| r.below(X_SHAPE[0])).collect();
    for (axis, idx) in [(0, batch), (1, vec![2, 0, 2, 1]), (3, vec![64, 0, 31, 31, 7])] {
        assert_index_select_and_add_match(&x, &xg, axis, &idx);
    }
    // 5 images selected 161 times: one window of the input, many of the output.
    let small = signed_cpu(&[5, 3, 67, 65], &mut r);
    let idx: Vec<usize> = (0..X_SHAPE[0]).map(|i| (i * 7) % 5).collect();
    let got = index_select(&up(&small, gpu), 0, &idx).unwrap();
    assert_close("index_select of 5 images into 161", &got, &index_select(&small, 0, &idx).unwrap(), None);
    // No sources: the sum over nothing is zeros, however large.
    let none = up(&Tensor::zeros(&[0, 3, 67, 65], DType::F32), gpu);
    let zeros = index_add_zeros(&none, 0, &[], &X_SHAPE).unwrap();
    assert!(zeros.to_vec_f32().unwrap().iter().all(|&v| v == 0.0), "index_add of no sources");
}

#[test]
fn matrix_products_beyond_one_binding_match_the_cpu() {
    let Some(gpu) = splitting_gpu(&LINEAR_X_SHAPE) else { return };
    matrix_products_match_the_cpu(&gpu);
}

/// [batch, features] of a linear layer's input: 1.1 million elements.
pub(crate) const LINEAR_X_SHAPE: [usize; 2] = [1200, 901];

/// A linear layer's three products with X of [`LINEAR_X_SHAPE`]: X·W (parts of X's rows),
/// dY·Wᵀ (parts of the output's rows), Xᵀ·dY (the weight gradient: parts of K, accumulated);
/// K = 0; a batch of three products larger than a binding together (parts of the batch).
pub(crate) fn matrix_products_match_the_cpu(gpu: &Device) {
    let mut r = rng();
    let x = signed_cpu(&LINEAR_X_SHAPE, &mut r);
    let (w, dy) = (signed_cpu(&[901, 7], &mut r), signed_cpu(&[1200, 7], &mut r));
    let (xg, wg, dyg) = (up(&x, gpu), up(&w, gpu), up(&dy, gpu));
    let t = |m: &Tensor| m.transpose(0, 1).unwrap();
    let cases = [
        ("X·W: [1200, 901]·[901, 7]", [&x, &w], [&xg, &wg]),
        ("dY·Wᵀ: [1200, 7]·[7, 901]", [&dy, &t(&w)], [&dyg, &t(&wg)]),
        ("Xᵀ·dY: [901, 1200]·[1200, 7]", [&t(&x), &dy], [&t(&xg), &dyg]),
    ];
    for (what, [a, b], [ag, bg]) in cases {
        let scale = matmul(&abs(a), &abs(b)).unwrap();
        assert_close(what, &matmul(ag, bg).unwrap(), &matmul(a, b).unwrap(), Some(&scale));
    }
    // K = 0 (a narrowed view of the large buffer): sums over nothing are zeros.
    let empty = matmul(&xg.narrow(1, 0, 0).unwrap(), &up(&Tensor::zeros(&[0, 7], DType::F32), gpu)).unwrap();
    assert_eq!(empty.to_vec_f32().unwrap(), vec![0.0; 1200 * 7], "[1200, 0]·[0, 7]");
    let a = signed_cpu(&[3, 500, 800], &mut r);
    let b = signed_cpu(&[800, 5], &mut r);
    let scale = matmul(&abs(&a), &abs(&b)).unwrap();
    let got = matmul(&up(&a, gpu), &up(&b, gpu)).unwrap();
    assert_close("[3, 500, 800]·[800, 5]", &got, &matmul(&a, &b).unwrap(), Some(&scale));
}

#[test]
fn a_batch_of_products_each_larger_than_one_binding_matches_the_cpu() {
    // Each product's A (1001 × 601 f32) is larger than a binding: parts of its rows, product
    // by product. The second product's C starts at element 1001 · 3, which no window may
    // start at (the offset alignment): its parts go through a scratch buffer.
    let Some(gpu) = splitting_gpu(&[1001, 601]) else { return };
    let mut r = rng();
    let (a, b) = (signed_cpu(&[2, 1001, 601], &mut r), signed_cpu(&[601, 3], &mut r));
    let scale = matmul(&abs(&a), &abs(&b)).unwrap();
    let got = matmul(&up(&a, &gpu), &up(&b, &gpu)).unwrap();
    assert_close("[2, 1001, 601]·[601, 3]", &got, &matmul(&a, &b).unwrap(), Some(&scale));
}

#[test]
fn optimizer_updates_beyond_one_binding_match_the_cpu() {
    let Some(gpu) = splitting_gpu(&PARAM_SHAPE) else { return };
    optimizer_updates_match_the_cpu(&gpu);
}

/// One parameter of 1,300,001 elements (a large linear layer's weight).
pub(crate) const PARAM_SHAPE: [usize; 1] = [1_300_001];

/// Adam with weight decay, then SGD with Nesterov momentum, on a parameter of [`PARAM_SHAPE`].
pub(crate) fn optimizer_updates_match_the_cpu(gpu: &Device) {
    let mut r = rng();
    let (mut p, g) = (signed_cpu(&PARAM_SHAPE, &mut r), signed_cpu(&PARAM_SHAPE, &mut r));
    let (mut pg, gg) = (up(&p, gpu), up(&g, gpu));
    let (mut m, mut v) = (p.zeros_like().unwrap(), p.zeros_like().unwrap());
    let (mut mg, mut vg) = (pg.zeros_like().unwrap(), pg.zeros_like().unwrap());
    let h = AdamHyper { lr: 0.01, weight_decay: 0.05, step: 1, ..AdamHyper::default() };
    adam_update(&mut p, &g, &mut m, &mut v, &h).unwrap();
    adam_update(&mut pg, &gg, &mut mg, &mut vg, &h).unwrap();
    assert_close("adam: param", &pg, &p, None);
    assert_close("adam: exp_avg_sq", &vg, &v, Some(&tensor_scale(&v)));
    let (mut b, mut bg) = (g.clone(), gg.clone());
    let h = SgdHyper { lr: 0.05, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: true, first_step: false };
    sgd_update(&mut p, &g, Some(&mut b), &h).unwrap();
    sgd_update(&mut pg, &gg, Some(&mut bg), &h).unwrap();
    assert_close("sgd: param", &pg, &p, None);
    assert_close("sgd: momentum buffer", &bg, &b, None);
}

#[test]
fn concatenation_beyond_one_binding_matches_the_cpu() {
    let Some(gpu) = splitting_gpu(&X_SHAPE) else { return };
    concatenation_matches_the_cpu(&gpu);
}

/// Two halves of [`X_SHAPE`] joined along the batch, and along the channels.
pub(crate) fn concatenation_matches_the_cpu(gpu: &Device) {
    let x = signed_cpu(&X_SHAPE, &mut rng());
    let xg = up(&x, gpu);
    for axis in [0isize, 1] {
        let halves = |t: &Tensor| {
            let n = t.shape()[axis as usize];
            cat(&[&t.narrow(axis, 0, n / 2).unwrap(), &t.narrow(axis, n / 2, n - n / 2).unwrap()], axis).unwrap()
        };
        assert_close(&format!("cat along axis {axis}"), &halves(&xg), &x, None);
    }
}
