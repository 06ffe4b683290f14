//! Reductions on the GPU against the reference device (each op's plain definition): every op over leading, middle, trailing,
//! non-adjacent and all axes, with and without keepdim, rows shorter and longer than a
//! workgroup (both kernel strategies), strided inputs, var, sum_to_shape, and autograd's
//! backward of reductions on the GPU.

use crate::common;

use common::parity::*;
use common::rng;
use tensor::ops::reduce::{reduce, sum_to_shape, ReduceOp};

const OPS: [ReduceOp; 7] = ReduceOp::ALL;

#[test]
fn reductions_over_every_kind_of_axis_set_match_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    // [5, 300, 7]: a 300-long middle axis takes the per-workgroup kernel; [3, 4, 5] the
    // per-thread one.
    for shape in [&[5usize, 300, 7][..], &[3, 4, 5], &[1, 257], &[600]] {
        let x = signed(shape, &mut r);
        let xg = up(&x, &gpu);
        let rank = shape.len() as isize;
        let mut axis_sets: Vec<Vec<isize>> = vec![vec![], vec![0], vec![-1]];
        if rank == 3 {
            axis_sets.extend([vec![1], vec![0, 2], vec![1, 2], vec![2, 0]]);
        }
        for axes in &axis_sets {
            for keepdim in [false, true] {
                for op in OPS {
                    let single = axes.len() == 1 || rank == 1;
                    if matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) && !single {
                        continue;
                    }
                    let want = reduce(&x, axes, keepdim, op).unwrap();
                    let got = reduce(&xg, axes, keepdim, op).unwrap();
                    // Sums cancel: compare them at the scale of Σ|x|.
                    let scale = match op {
                        ReduceOp::Sum | ReduceOp::Mean => Some(reduce(&abs(&x), axes, keepdim, op).unwrap()),
                        _ => None,
                    };
                    let what = format!("{op:?} over {axes:?} of {shape:?}, keepdim {keepdim}");
                    assert_close(&what, &got, &want, scale.as_ref());
                }
            }
        }
    }
}

#[test]
fn reductions_read_strided_views() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let x = signed(&[9, 40, 11], &mut r);
    let (v, vg) = (
        x.permute(&[2, 0, 1]).unwrap().narrow(1, 2, 5).unwrap(),
        up(&x, &gpu).permute(&[2, 0, 1]).unwrap().narrow(1, 2, 5).unwrap(),
    );
    for op in [ReduceOp::Max, ReduceOp::LogSumExp, ReduceOp::ArgMin] {
        assert_close(
            &format!("{op:?} of a view"),
            &reduce(&vg, &[2], false, op).unwrap(),
            &reduce(&v, &[2], false, op).unwrap(),
            None,
        );
    }
    let s = reduce(&abs(&v), &[0, 2], true, ReduceOp::Sum).unwrap();
    assert_close("sum of a view", &vg.sum(&[0, 2], true).unwrap(), &v.sum(&[0, 2], true).unwrap(), Some(&s));
}

#[test]
fn var_biased_and_unbiased_match_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let x = signed(&[4, 263, 3], &mut r).add_scalar(2.0).unwrap(); // a mean far from 0
    let xg = up(&x, &gpu);
    for (axes, keepdim) in [(vec![1], false), (vec![0, 2], true), (vec![], false)] {
        for unbiased in [false, true] {
            let want = x.var(&axes, keepdim, unbiased).unwrap();
            let got = xg.var(&axes, keepdim, unbiased).unwrap();
            assert_close(&format!("var over {axes:?} (unbiased {unbiased})"), &got, &want, None);
        }
    }
}

#[test]
fn sum_to_shape_undoes_broadcasts_like_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let g = signed(&[6, 5, 70], &mut r);
    let gg = up(&g, &gpu);
    for target in [&[5usize, 1][..], &[70], &[6, 1, 70], &[1, 5, 1], &[]] {
        let want = sum_to_shape(&g, target).unwrap();
        let scale = sum_to_shape(&abs(&g), target).unwrap();
        assert_close(&format!("sum_to_shape {target:?}"), &sum_to_shape(&gg, target).unwrap(), &want, Some(&scale));
    }
}

#[test]
fn reduction_backward_runs_on_the_gpu_and_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let x = signed(&[3, 70, 4], &mut r);
    assert_backward_parity("sum", &gpu, &[x.clone()], |v| v[0].sum(&[1], true));
    assert_backward_parity("mean", &gpu, &[x.clone()], |v| v[0].mean(&[0, 2], false));
    assert_backward_parity("max", &gpu, &[x.clone()], |v| v[0].max(&[-1], false));
    assert_backward_parity("min", &gpu, &[x.clone()], |v| v[0].min(&[0], true));
    assert_backward_parity("logsumexp", &gpu, &[x.clone()], |v| v[0].logsumexp(&[1], false));
    assert_backward_parity("var", &gpu, &[x], |v| v[0].var(&[1], false, true));
}
