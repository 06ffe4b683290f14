//! Joining and selecting on the GPU against the reference device: cat along every axis (parts that are
//! strided views included), stack, index_select with repeated and unsorted indices (a batch
//! of rows, as data loading takes them), its adjoint index_add, and their backward.

use crate::common;

use common::parity::*;
use common::rng;
use tensor::ops::concat::{cat, index_add_zeros, index_select, stack};
use tensor::Tensor;

#[test]
fn cat_along_every_axis_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    for axis in 0..3 {
        let mut parts = vec![];
        for n in [1, 7, 260] {
            let mut shape = vec![3, 5, 4];
            shape[axis] = n;
            parts.push(signed(&shape, &mut r));
        }
        // One part is a transposed view: cat reads it through its strides.
        let mut shape = vec![3, 5, 4];
        shape[axis] = 2;
        let (a, b) = (axis.min(1), 2);
        let mut tshape = shape.clone();
        tshape.swap(a, b);
        parts.push(signed(&tshape, &mut r).transpose(a as isize, b as isize).unwrap());
        let refs: Vec<&Tensor> = parts.iter().collect();
        let gparts: Vec<Tensor> = parts.iter().map(|t| up(t, &gpu)).collect();
        let grefs: Vec<&Tensor> = gparts.iter().collect();
        let want = cat(&refs, axis as isize).unwrap();
        assert_close(&format!("cat axis {axis}"), &cat(&grefs, axis as isize).unwrap(), &want, None);
    }
}

#[test]
fn stack_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let ts: Vec<Tensor> = (0..3).map(|_| signed(&[4, 33], &mut r)).collect();
    let gs: Vec<Tensor> = ts.iter().map(|t| up(t, &gpu)).collect();
    for axis in 0..=2 {
        let want = stack(&ts.iter().collect::<Vec<_>>(), axis).unwrap();
        let got = stack(&gs.iter().collect::<Vec<_>>(), axis).unwrap();
        assert_close(&format!("stack axis {axis}"), &got, &want, None);
    }
}

/// index_select of `x` (CPU) and `xg` (its GPU copy) along `axis`, and its adjoint
/// index_add, the sums of the selected rows back into their places, against each other.
pub(crate) fn assert_index_select_and_add_match(x: &Tensor, xg: &Tensor, axis: isize, idx: &[usize]) {
    let want = index_select(x, axis, idx).unwrap();
    let got = index_select(xg, axis, idx).unwrap();
    assert_close(&format!("index_select axis {axis} ({} indices)", idx.len()), &got, &want, None);
    let back = index_add_zeros(&want, axis, idx, x.shape()).unwrap();
    let back_g = index_add_zeros(&got, axis, idx, x.shape()).unwrap();
    let scale = index_add_zeros(&abs(&want), axis, idx, x.shape()).unwrap();
    assert_close(&format!("index_add axis {axis}"), &back_g, &back, Some(&scale));
}

#[test]
fn index_select_and_index_add_match_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let x = signed(&[6, 50, 7], &mut r);
    let xg = up(&x, &gpu);
    // Unsorted, repeated, and a batch larger than a workgroup.
    let many: Vec<usize> = (0..300).map(|_| r.below(50)).collect();
    for (axis, idx) in [(1, vec![3, 0, 49, 3, 17]), (1, many.clone()), (0, vec![5, 5, 0]), (2, vec![6, 0, 2])] {
        assert_index_select_and_add_match(&x, &xg, axis, &idx);
    }
    // A strided source is read through its layout.
    let v = x.transpose(0, 2).unwrap();
    let vg = xg.transpose(0, 2).unwrap();
    assert_close(
        "index_select of a view",
        &index_select(&vg, 1, &many).unwrap(),
        &index_select(&v, 1, &many).unwrap(),
        None,
    );
    // An empty selection.
    assert_eq!(index_select(&xg, 1, &[]).unwrap().shape(), &[6, 0, 7]);
}

#[test]
fn shape_op_backward_runs_on_the_gpu_and_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let (a, b) = (signed(&[4, 9], &mut r), signed(&[4, 3], &mut r));
    assert_backward_parity("cat", &gpu, &[a.clone(), b.clone()], |v| autograd::ops::shape::cat(&[&v[0], &v[1]], 1));
    assert_backward_parity("index_select", &gpu, &[a.clone()], |v| v[0].index_select(1, &[8, 0, 8, 3, 8]));
    assert_backward_parity("narrow", &gpu, &[a.clone()], |v| v[0].narrow(1, 2, 5));
    let planes = signed(&[2, 3, 6, 4], &mut r);
    assert_backward_parity("pixel_unshuffle", &gpu, &[planes], |v| v[0].pixel_unshuffle(2));
    assert_backward_parity("broadcast + transpose", &gpu, &[b], |v| {
        v[0].reshape(&[4, 1, 3])?.broadcast_to(&[4, 6, 3])?.transpose(0, 2)
    });
}
