//! Element-wise ops on the GPU against the reference device (each op's plain definition): every row of the op table (unary
//! forward and backward, binary), NumPy broadcasting through stride-0 views, `where`, strided
//! (transposed, narrowed) operands, layout-only views and `contiguous`, and autograd's
//! backward of an element-wise chain running on the GPU.

use crate::common;

use autograd::Var;
use common::parity::*;
use common::rng;
use tensor::elementwise_table::{self as table, Domain, UnaryOp, BINARY_OPS, UNARY_OPS};
use tensor::ops::elementwise::{binary, unary, unary_backward, where_cond};
use tensor::Tensor;

/// Sizes around the 256-wide workgroup, and shapes of several ranks.
const SHAPES: &[&[usize]] = &[&[1], &[255], &[257], &[3, 1000], &[2, 3, 5, 7], &[]];

/// A named way to take a strided view of a tensor.
type View = (&'static str, Box<dyn Fn(&Tensor) -> Tensor>);

#[test]
fn every_unary_row_matches_the_reference_forward_and_backward_at_awkward_sizes() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    for shape in SHAPES {
        let x = signed(shape, &mut r);
        // log, sqrt, 1/x and a fractional power need positive inputs.
        let pos = x.abs().unwrap().add_scalar(0.05).unwrap();
        let g = signed(shape, &mut r);
        let (xg, posg, gg) = (up(&x, &gpu), up(&pos, &gpu), up(&g, &gpu));
        for def in UNARY_OPS {
            let op = UnaryOp::with(def, def.test_params.0, def.test_params.1);
            let (c, d) = match def.domain {
                Domain::Positive => (&pos, &posg),
                Domain::Real => (&x, &xg),
            };
            let want = unary(c, op).unwrap();
            assert_close(&format!("{} {shape:?}", def.name), &unary(d, op).unwrap(), &want, None);
            // The backward reads x or y as the row says; x serves for both here (it is only
            // an operand of the backward formula).
            let want = unary_backward(&g, c, op).unwrap();
            let got = unary_backward(&gg, d, op).unwrap();
            assert_close(&format!("{} backward {shape:?}", def.name), &got, &want, None);
        }
    }
}

#[test]
fn pow_of_a_negative_base_with_an_integer_exponent_keeps_the_sign_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let x = Tensor::from_vec(vec![-2.0f32, -0.5, 0.0, 1.5], &[4]).unwrap();
    for e in [3.0, 2.0, 0.0, 1.0] {
        let op = UnaryOp::with(&table::POWF, e, 0.0);
        let want = unary(&x, op).unwrap();
        assert_close(&format!("x^{e}"), &unary(&up(&x, &gpu), op).unwrap(), &want, None);
    }
}

#[test]
fn unary_op_reads_a_transposed_view_in_place() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let x = signed(&[37, 29], &mut r);
    let (xt, xgt) = (x.transpose(0, 1).unwrap(), up(&x, &gpu).transpose(0, 1).unwrap());
    assert!(!xgt.is_contiguous());
    assert_close("tanh of a transposed view", &xgt.tanh().unwrap(), &xt.tanh().unwrap(), None);
}

#[test]
fn every_binary_row_broadcasts_like_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let pairs: &[(&[usize], &[usize])] = &[
        (&[257], &[257]),
        (&[3, 1, 5], &[4, 1]),
        (&[2, 300], &[300]),
        (&[7, 1], &[1, 9]),
        (&[], &[4, 65]),
        (&[2, 3, 4, 5, 6], &[3, 1, 5, 1]),
    ];
    for &(sa, sb) in pairs {
        let (a, b) = (signed(sa, &mut r), signed(sb, &mut r));
        // Equal elements in places, so Eq/Ge/Le see both outcomes.
        let b = if sa == sb { with_equal_prefix(&a, &b, 100) } else { b };
        let (ag, bg) = (up(&a, &gpu), up(&b, &gpu));
        for op in BINARY_OPS {
            let want = binary(&a, &b, op).unwrap();
            let got = binary(&ag, &bg, op).unwrap();
            assert_close(&format!("{} {sa:?} with {sb:?}", op.name), &got, &want, None);
        }
    }
}

/// `b` with its first `n` rows replaced by `a`'s (so comparisons see equal elements).
fn with_equal_prefix(a: &Tensor, b: &Tensor, n: usize) -> Tensor {
    let rest = b.narrow(0, n, b.shape()[0] - n).unwrap();
    tensor::ops::concat::cat(&[&a.narrow(0, 0, n).unwrap(), &rest], 0).unwrap()
}

#[test]
fn binary_ops_read_permuted_and_narrowed_operands() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let a = signed(&[6, 70, 5], &mut r);
    let b = signed(&[5, 40, 6], &mut r);
    let va = a.narrow(1, 13, 40).unwrap(); // [6, 40, 5], offset view
    let vb = b.permute(&[2, 1, 0]).unwrap(); // [6, 40, 5], permuted
    let (ga, gb) = (up(&a, &gpu).narrow(1, 13, 40).unwrap(), up(&b, &gpu).permute(&[2, 1, 0]).unwrap());
    assert_close("mul of views", &ga.mul(&gb).unwrap(), &va.mul(&vb).unwrap(), None);
    assert_close("sub of views", &ga.sub(&gb).unwrap(), &va.sub(&vb).unwrap(), None);
}

#[test]
fn where_selects_with_broadcast_condition_like_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let x = signed(&[4, 1, 33], &mut r);
    let cond = x.gt(&Tensor::zeros_on(&[1], tensor::DType::F32, &x.device()).unwrap()).unwrap(); // 0/1, [4, 1, 33]
    let (a, b) = (signed(&[4, 7, 33], &mut r), signed(&[33], &mut r));
    let want = where_cond(&cond, &a, &b).unwrap();
    let got = where_cond(&up(&cond, &gpu), &up(&a, &gpu), &up(&b, &gpu)).unwrap();
    assert_close("where", &got, &want, None);
}

#[test]
fn views_are_layout_only_and_contiguous_copies_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let x = signed(&[3, 4, 5, 6], &mut r);
    let xg = up(&x, &gpu);
    let views: Vec<View> = vec![
        ("permute", Box::new(|t| t.permute(&[3, 1, 0, 2]).unwrap())),
        ("narrow", Box::new(|t| t.narrow(2, 1, 3).unwrap().narrow(0, 1, 2).unwrap())),
        ("broadcast", Box::new(|t| t.narrow(1, 0, 1).unwrap().broadcast_to(&[2, 3, 7, 5, 6]).unwrap())),
        ("reshape of a transpose", Box::new(|t| t.transpose(1, 3).unwrap().reshape(&[18, 20]).unwrap())),
        ("squeeze/unsqueeze", Box::new(|t| t.unsqueeze(2).unwrap().squeeze(2).unwrap().flatten_from(1).unwrap())),
    ];
    for (name, f) in views {
        let (vc, vg) = (f(&x), f(&xg));
        assert!(vg.is_gpu(), "{name} stays on the GPU");
        assert_close(name, &vg.contiguous().unwrap(), &vc.contiguous().unwrap(), None);
        assert_eq!(vg.to_vec_f32().unwrap(), vc.to_vec_f32().unwrap(), "{name}: to_vec of the view");
    }
    // A pure view shares the GPU storage; contiguous() of a contiguous view is the view itself.
    assert!(xg.permute(&[0, 1, 2, 3]).unwrap().shares_storage_with(&xg));
    assert!(xg.contiguous().unwrap().shares_storage_with(&xg));
}

#[test]
fn elementwise_backward_runs_on_the_gpu_and_matches_the_reference() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng();
    let (x, y) = (signed(&[5, 67], &mut r), signed(&[67], &mut r));
    // A chain of element-wise ops with broadcasting, ending in (out + 1)² mean so the
    // upstream gradient is not uniform.
    let run = |x: &Tensor, y: &Tensor| -> (Tensor, Tensor, Tensor) {
        let (xv, yv) = (Var::parameter(x.clone()), Var::parameter(y.clone()));
        let a = xv.mul(&yv).unwrap().sigmoid().unwrap();
        let b = xv.tanh().unwrap().sub(&yv.softplus().unwrap()).unwrap();
        let c = a.div(&b.abs().unwrap().add_scalar(1.0).unwrap()).unwrap().relu().unwrap();
        let out = c.add(&xv.square().unwrap().leaky_relu(0.1).unwrap()).unwrap();
        let loss = out.add_scalar(1.0).unwrap().square().unwrap().mean_all().unwrap();
        loss.backward().unwrap();
        (loss.value(), xv.grad().unwrap(), yv.grad().unwrap())
    };
    let (lc, gxc, gyc) = run(&x, &y);
    let (lg, gxg, gyg) = run(&up(&x, &gpu), &up(&y, &gpu));
    assert_close("loss", &lg, &lc, None);
    assert_close("dL/dx", &gxg, &gxc, None);
    assert_close("dL/dy (summed over the broadcast)", &gyg, &gyc, None);
}
