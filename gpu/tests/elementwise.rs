//! elementwise.wgsl against f64 references: unary maps, broadcast binary maps and gradient
//! helpers, where, strided copies, fill, and the 2-D grid split of long launches.

mod common;

use common::*;
use gpu::kernels::elementwise::{self as ew, contiguous_strides, BinaryOp, UnaryOp, View};
use gpu::GpuError;

const SIZES: [usize; 7] = [1, 7, 33, 65, 129, 1000, 4099];

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn unary_ref(op: UnaryOp, x: f64) -> f64 {
    use UnaryOp::*;
    match op {
        Identity => x,
        Neg => -x,
        Exp => x.exp(),
        Log => x.ln(),
        Sqrt => x.sqrt(),
        Abs => x.abs(),
        Relu => x.max(0.0),
        Sigmoid => sigmoid(x),
        Tanh => x.tanh(),
        Softplus => (1.0 + x.exp()).ln(),
        Recip => 1.0 / x,
        Square => x * x,
        LeakyRelu(s) => {
            if x > 0.0 {
                x
            } else {
                s as f64 * x
            }
        }
        Powf(e) => x.powf(e as f64),
        Clamp(lo, hi) => x.max(lo as f64).min(hi as f64),
        AddScalar(s) => x + s as f64,
        MulScalar(s) => x * s as f64,
    }
}

fn binary_ref(op: BinaryOp, a: f64, b: f64) -> f64 {
    use BinaryOp::*;
    let bit = |c: bool| if c { 1.0 } else { 0.0 };
    match op {
        Add => a + b,
        Sub => a - b,
        Mul => a * b,
        Div => a / b,
        Max => a.max(b),
        Min => a.min(b),
        Gt => bit(a > b),
        Ge => bit(a >= b),
        Lt => bit(a < b),
        Le => bit(a <= b),
        Eq => bit(a == b),
        ReluGrad => bit(b > 0.0) * a,
        LeakyReluGrad(s) => {
            if b > 0.0 {
                a
            } else {
                s as f64 * a
            }
        }
        SigmoidGrad => a * b * (1.0 - b),
        TanhGrad => a * (1.0 - b * b),
        AbsGrad => a * b.signum(),
        SoftplusGrad => a * sigmoid(b),
        ClampGrad(lo, hi) => bit(b >= lo as f64 && b <= hi as f64) * a,
        Axpby(x, y) => x as f64 * a + y as f64 * b,
    }
}

/// Input range each unary op is defined (and well-conditioned) on.
fn domain(op: UnaryOp) -> (f32, f32) {
    match op {
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Recip => (0.1, 4.0),
        UnaryOp::Powf(_) => (0.1, 3.0),
        UnaryOp::Exp | UnaryOp::Softplus | UnaryOp::Sigmoid | UnaryOp::Tanh => (-8.0, 8.0),
        _ => (-3.0, 3.0),
    }
}

const UNARY_OPS: [UnaryOp; 18] = [
    UnaryOp::Identity,
    UnaryOp::Neg,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sqrt,
    UnaryOp::Abs,
    UnaryOp::Relu,
    UnaryOp::Sigmoid,
    UnaryOp::Tanh,
    UnaryOp::Softplus,
    UnaryOp::Recip,
    UnaryOp::Square,
    UnaryOp::LeakyRelu(0.2),
    UnaryOp::Powf(2.5),
    UnaryOp::Powf(2.0),
    UnaryOp::Clamp(-0.5, 1.25),
    UnaryOp::AddScalar(1.5),
    UnaryOp::MulScalar(-0.75),
];

const BINARY_OPS: [BinaryOp; 19] = [
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Max,
    BinaryOp::Min,
    BinaryOp::Gt,
    BinaryOp::Ge,
    BinaryOp::Lt,
    BinaryOp::Le,
    BinaryOp::Eq,
    BinaryOp::ReluGrad,
    BinaryOp::LeakyReluGrad(0.1),
    BinaryOp::SigmoidGrad,
    BinaryOp::TanhGrad,
    BinaryOp::AbsGrad,
    BinaryOp::SoftplusGrad,
    BinaryOp::ClampGrad(-0.3, 0.4),
    BinaryOp::Axpby(0.5, -2.0),
];

/// Reads `data` (dense, shape `from`) at broadcast shape `to`, row-major.
fn broadcast_ref(data: &[f32], from: &[usize], to: &[usize]) -> Vec<f64> {
    let n: usize = to.iter().product();
    let lead = to.len() - from.len();
    let fs = contiguous_strides(from);
    (0..n)
        .map(|mut i| {
            let mut off = 0;
            for d in (0..to.len()).rev() {
                let c = i % to[d];
                i /= to[d];
                if d >= lead && from[d - lead] != 1 {
                    off += c * fs[d - lead];
                }
            }
            data[off] as f64
        })
        .collect()
}

fn broadcast_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let da = if i < r - a.len() { 1 } else { a[i - (r - a.len())] };
            let db = if i < r - b.len() { 1 } else { b[i - (r - b.len())] };
            da.max(db)
        })
        .collect()
}

#[test]
fn unary_ops_match_f64_reference_at_awkward_sizes() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for op in UNARY_OPS {
        for n in SIZES {
            let (lo, hi) = domain(op);
            let x = rng.vec(n, lo, hi);
            let xb = upload(ctx, &x);
            let out = poisoned(ctx, n);
            ew::unary(ctx, op, &xb, &out).unwrap();
            let want: Vec<f64> = x.iter().map(|&v| unary_ref(op, v as f64)).collect();
            assert_close_unit(&format!("{op:?} n={n}"), &rng, &ctx.read(&out).unwrap(), &want);
        }
    }
}

#[test]
fn pow_of_negative_base_with_integer_exponent_keeps_the_sign() {
    let Some(ctx) = ctx() else { return };
    let rng = Rng::new();
    let x = [-2.0f32, -0.5, 0.0, 1.5];
    for e in [3.0f32, 2.0, 0.0, 1.0] {
        let out = poisoned(ctx, x.len());
        ew::unary(ctx, UnaryOp::Powf(e), &upload(ctx, &x), &out).unwrap();
        let want: Vec<f64> = x.iter().map(|&v| (v as f64).powf(e as f64)).collect();
        assert_close_unit(&format!("pow {e}"), &rng, &ctx.read(&out).unwrap(), &want);
    }
}

#[test]
fn binary_ops_and_gradient_helpers_match_reference_on_equal_shapes() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for op in BINARY_OPS {
        for n in SIZES {
            let a = rng.signed(n);
            let mut b = rng.signed(n);
            if matches!(op, BinaryOp::SigmoidGrad) {
                b = rng.vec(n, 0.01, 0.99); // a saved σ(x)
            }
            if matches!(op, BinaryOp::Eq | BinaryOp::Ge | BinaryOp::Le) {
                // make some elements equal so both outcomes are exercised
                for i in (0..n).step_by(3) {
                    b[i] = a[i];
                }
            }
            let out = poisoned(ctx, n);
            let shape = [n];
            ew::binary(
                ctx,
                op,
                &View::dense(&upload(ctx, &a), &shape),
                &View::dense(&upload(ctx, &b), &shape),
                &out,
                &shape,
            )
            .unwrap();
            let want: Vec<f64> = a.iter().zip(&b).map(|(&x, &y)| binary_ref(op, x as f64, y as f64)).collect();
            assert_close_unit(&format!("{op:?} n={n}"), &rng, &ctx.read(&out).unwrap(), &want);
        }
    }
}

#[test]
fn binary_broadcasting_follows_numpy_rule_up_to_rank_6() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    let cases: [(&[usize], &[usize]); 8] = [
        (&[3, 1, 5], &[4, 1]),
        (&[1], &[7, 33]),
        (&[65, 1], &[1, 129]),
        (&[2, 3, 4], &[3, 1]),
        (&[2, 1, 4, 1, 6, 1], &[1, 3, 1, 5, 1, 7]),
        (&[5], &[5]),
        (&[1, 1], &[9, 1]),
        (&[2, 7, 1, 3], &[7, 5, 1]),
    ];
    for (sa, sb) in cases {
        let shape = broadcast_shape(sa, sb);
        let a = rng.signed(sa.iter().product());
        let b = rng.signed(sb.iter().product());
        let (ab, bb) = (upload(ctx, &a), upload(ctx, &b));
        for op in [BinaryOp::Add, BinaryOp::Mul, BinaryOp::Sub, BinaryOp::Div, BinaryOp::Max, BinaryOp::TanhGrad] {
            let n: usize = shape.iter().product();
            let out = poisoned(ctx, n);
            ew::binary(ctx, op, &View::broadcast(&ab, sa, &shape), &View::broadcast(&bb, sb, &shape), &out, &shape)
                .unwrap();
            let (ra, rb) = (broadcast_ref(&a, sa, &shape), broadcast_ref(&b, sb, &shape));
            let want: Vec<f64> = ra.iter().zip(&rb).map(|(&x, &y)| binary_ref(op, x, y)).collect();
            assert_close_unit(&format!("{op:?} {sa:?} with {sb:?}"), &rng, &ctx.read(&out).unwrap(), &want);
        }
    }
}

#[test]
fn where_select_picks_a_where_cond_is_nonzero_with_broadcasting() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    let shape = [5, 33, 7];
    let cond: Vec<f32> = (0..5 * 7).map(|_| (rng.next_u64() & 1) as f32).collect(); // [5, 1, 7]
    let a = rng.signed(33 * 7); // [33, 7]
    let b = rng.signed(1); // scalar
    let out = poisoned(ctx, 5 * 33 * 7);
    let (cb, ab, bb) = (upload(ctx, &cond), upload(ctx, &a), upload(ctx, &b));
    ew::where_select(
        ctx,
        &View::broadcast(&cb, &[5, 1, 7], &shape),
        &View::broadcast(&ab, &[33, 7], &shape),
        &View::broadcast(&bb, &[1], &shape),
        &out,
        &shape,
    )
    .unwrap();
    let (rc, ra, rb) = (
        broadcast_ref(&cond, &[5, 1, 7], &shape),
        broadcast_ref(&a, &[33, 7], &shape),
        broadcast_ref(&b, &[1], &shape),
    );
    let want: Vec<f64> = (0..rc.len()).map(|i| if rc[i] != 0.0 { ra[i] } else { rb[i] }).collect();
    assert_close_unit("where", &rng, &ctx.read(&out).unwrap(), &want);
}

#[test]
fn strided_copy_materialises_permute_narrow_and_writes_into_a_slice() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    // permute [2, 3, 4, 5] by (3, 1, 0, 2)
    let shape = [2usize, 3, 4, 5];
    let x = rng.signed(120);
    let xb = upload(ctx, &x);
    let st = contiguous_strides(&shape);
    let perm = [3usize, 1, 0, 2];
    let pshape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let pstrides: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
    let out = poisoned(ctx, 120);
    ew::copy_strided(ctx, &View::strided(&xb, &pstrides, 0), &View::dense(&out, &pshape), &pshape).unwrap();
    let mut want = Vec::new();
    for i3 in 0..5 {
        for i1 in 0..3 {
            for i0 in 0..2 {
                for i2 in 0..4 {
                    want.push(x[i0 * 60 + i1 * 20 + i2 * 5 + i3] as f64);
                }
            }
        }
    }
    assert_close_unit("permute", &rng, &ctx.read(&out).unwrap(), &want);

    // narrow: rows 1..3 and columns 2..7 of a [4, 9] matrix
    let m = rng.signed(36);
    let mb = upload(ctx, &m);
    let out = poisoned(ctx, 10);
    ew::copy_strided(ctx, &View::strided(&mb, &[9, 1], 9 + 2), &View::dense(&out, &[2, 5]), &[2, 5]).unwrap();
    let want: Vec<f64> = (1..3).flat_map(|r| (2..7).map(move |c| (r, c))).map(|(r, c)| m[r * 9 + c] as f64).collect();
    assert_close_unit("narrow", &rng, &ctx.read(&out).unwrap(), &want);

    // concatenation along axis 1: [3, 4] and [3, 2] into [3, 6]
    let (p, q) = (rng.signed(12), rng.signed(6));
    let out = poisoned(ctx, 18);
    ew::copy_strided(ctx, &View::dense(&upload(ctx, &p), &[3, 4]), &View::strided(&out, &[6, 1], 0), &[3, 4]).unwrap();
    ew::copy_strided(ctx, &View::dense(&upload(ctx, &q), &[3, 2]), &View::strided(&out, &[6, 1], 4), &[3, 2]).unwrap();
    let cat = |r: usize, c: usize| {
        if c < 4 {
            p[r * 4 + c]
        } else {
            q[r * 2 + c - 4]
        }
    };
    let want: Vec<f64> = (0..18).map(|i| cat(i / 6, i % 6) as f64).collect();
    assert_close_unit("cat", &rng, &ctx.read(&out).unwrap(), &want);

    // a unary map reading a broadcast view: exp of a [7] row repeated 3 times
    let v = rng.signed(7);
    let out = poisoned(ctx, 21);
    let vb = upload(ctx, &v);
    ew::map(ctx, UnaryOp::Exp, &View::broadcast(&vb, &[7], &[3, 7]), &View::dense(&out, &[3, 7]), &[3, 7]).unwrap();
    let want: Vec<f64> = (0..21).map(|i| (v[i % 7] as f64).exp()).collect();
    assert_close_unit("exp of broadcast", &rng, &ctx.read(&out).unwrap(), &want);
}

#[test]
fn fill_sets_every_element() {
    let Some(ctx) = ctx() else { return };
    let rng = Rng::new();
    for n in SIZES {
        let buf = ctx.upload(&vec![1.0; n]).unwrap();
        ctx.fill(&buf, -3.25).unwrap();
        assert_close_unit("fill", &rng, &ctx.read(&buf).unwrap(), &vec![-3.25; n]);
    }
}

#[test]
fn launch_beyond_max_workgroups_per_dimension_splits_into_a_2d_grid() {
    let Some(ctx) = ctx() else { return };
    let rng = Rng::new();
    let max = ctx.limits().max_compute_workgroups_per_dimension as usize;
    let n = max * 256 + 1000; // one more row of workgroups than fits along x
    if ctx.check_len(n).is_err() {
        eprintln!("skipping: {n} floats exceed this device's binding limit");
        return;
    }
    assert!(ctx.grid_1d("t", n.div_ceil(256) as u64).unwrap()[1] >= 2);
    let x: Vec<f32> = (0..n).map(|i| (i % 1021) as f32).collect();
    let out = poisoned(ctx, n);
    ew::unary(ctx, UnaryOp::AddScalar(1.0), &upload(ctx, &x), &out).unwrap();
    let got = ctx.read(&out).unwrap();
    let want: Vec<f64> = x.iter().map(|&v| v as f64 + 1.0).collect();
    assert_close_unit("2-D grid", &rng, &got, &want);
}

#[test]
fn rank_above_6_after_merging_axes_and_short_buffers_are_refused() {
    let Some(ctx) = ctx() else { return };
    let shape = [2usize; 7];
    let a = ctx.alloc(128).unwrap();
    let b = ctx.alloc(128).unwrap();
    let out = ctx.alloc(128).unwrap();
    // b broadcasts on every other axis, so no two axes merge
    let bs: Vec<usize> = (0..7).map(|d| if d % 2 == 0 { 0 } else { 1 << d }).collect();
    let err =
        ew::binary(ctx, BinaryOp::Add, &View::dense(&a, &shape), &View::strided(&b, &bs, 0), &out, &shape).unwrap_err();
    assert!(matches!(err, GpuError::InvalidArgument { .. }), "{err}");
    // a dense rank-7 tensor merges to rank 1 and is fine
    ew::binary(ctx, BinaryOp::Add, &View::dense(&a, &shape), &View::dense(&b, &shape), &out, &shape).unwrap();
    let short = ctx.alloc(100).unwrap();
    let err = ew::unary(ctx, UnaryOp::Neg, &a, &short).unwrap_err();
    assert!(err.to_string().contains("needs 128 elements"), "{err}");
}
