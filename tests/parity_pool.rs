//! Pooling on the GPU against the reference device (each op's plain definition): max pool (outputs, argmax indices kept on the
//! GPU, backward), average pool (count_include_pad) and global average pool, forward and
//! backward over kernel/stride/padding variants, and autograd's backward.

use crate::common;

use common::parity::*;
use common::rng;
use tensor::ops::pool::{
    avg_pool2d, avg_pool2d_backward, global_avg_pool2d, global_avg_pool2d_backward, max_pool2d, max_pool2d_backward,
    PoolIndices,
};

/// A pooling case: input shape [N, C, H, W], kernel, stride, padding.
type PoolCase = ([usize; 4], [usize; 2], [usize; 2], [usize; 2]);

fn cases() -> Vec<PoolCase> {
    vec![
        ([1, 1, 4, 4], [2, 2], [2, 2], [0, 0]),
        ([2, 3, 17, 13], [3, 3], [2, 2], [1, 1]),
        ([3, 2, 9, 20], [2, 3], [1, 2], [1, 0]),
        ([1, 4, 33, 31], [5, 5], [3, 3], [2, 2]),
        ([2, 70, 8, 8], [2, 2], [2, 2], [0, 0]),
    ]
}

#[test]
fn max_pool2d_outputs_indices_and_backward_match_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    for (xs, k, s, p) in cases() {
        let what = format!("max_pool2d {xs:?} k {k:?} s {s:?} p {p:?}");
        let x = signed(&xs, &mut r);
        let (y, idx) = max_pool2d(&x, k, s, p).unwrap();
        let (yg, idxg) = max_pool2d(&up(&x, &gpu), k, s, p).unwrap();
        assert!(matches!(idxg, PoolIndices::Gpu(_)), "{what}: indices stay on the GPU");
        assert_close(&what, &yg, &y, None);
        assert_eq!(idxg.to_vec().unwrap(), idx.to_vec().unwrap(), "{what}: argmax indices");
        let gy = signed(y.shape(), &mut r);
        let want = max_pool2d_backward(&gy, &idx, &xs).unwrap();
        let got = max_pool2d_backward(&up(&gy, &gpu), &idxg, &xs).unwrap();
        assert_close(&format!("{what} backward"), &got, &want, Some(&tensor_scale(&want)));
    }
}

#[test]
fn max_pool2d_backward_refuses_indices_from_the_other_device() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let x = signed(&[1, 2, 6, 6], &mut r);
    let (y, idx_cpu) = max_pool2d(&x, [2, 2], [2, 2], [0, 0]).unwrap();
    let err = max_pool2d_backward(&up(&y, &gpu), &idx_cpu, x.shape()).unwrap_err().to_string();
    let host = x.device().name();
    assert!(err.contains("max_pool2d_backward") && err.contains(&host) && err.contains("gpu"), "{err}");
}

#[test]
fn avg_and_global_pools_match_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    for (xs, k, s, p) in cases() {
        let what = format!("avg_pool2d {xs:?} k {k:?} s {s:?} p {p:?}");
        let x = signed(&xs, &mut r);
        let xg = up(&x, &gpu);
        let y = avg_pool2d(&x, k, s, p).unwrap();
        let scale = avg_pool2d(&abs(&x), k, s, p).unwrap();
        assert_close(&what, &avg_pool2d(&xg, k, s, p).unwrap(), &y, Some(&scale));
        let gy = signed(y.shape(), &mut r);
        let want = avg_pool2d_backward(&gy, &xs, k, s, p).unwrap();
        let scale = avg_pool2d_backward(&abs(&gy), &xs, k, s, p).unwrap();
        let got = avg_pool2d_backward(&up(&gy, &gpu), &xs, k, s, p).unwrap();
        assert_close(&format!("{what} backward"), &got, &want, Some(&scale));

        let y = global_avg_pool2d(&x).unwrap();
        let scale = global_avg_pool2d(&abs(&x)).unwrap();
        assert_close(&format!("global {xs:?}"), &global_avg_pool2d(&xg).unwrap(), &y, Some(&scale));
        let gy = signed(y.shape(), &mut r);
        let got = global_avg_pool2d_backward(&up(&gy, &gpu), &xs).unwrap();
        assert_close(&format!("global backward {xs:?}"), &got, &global_avg_pool2d_backward(&gy, &xs).unwrap(), None);
    }
}

#[test]
fn pool_autograd_backward_runs_on_the_gpu_and_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let x = signed(&[2, 3, 11, 10], &mut r);
    use autograd::ops::pool as ag;
    assert_backward_parity("max_pool2d", &gpu, &[x.clone()], |v| ag::max_pool2d(&v[0], [3, 3], [2, 2], [1, 1]));
    assert_backward_parity("avg_pool2d", &gpu, &[x.clone()], |v| ag::avg_pool2d(&v[0], [2, 3], [2, 1], [1, 0]));
    assert_backward_parity("global_avg_pool2d", &gpu, &[x], |v| ag::global_avg_pool2d(&v[0]));
}
