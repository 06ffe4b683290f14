//! The element-wise launchers against f64 references, with a small op table of their own:
//! strided and broadcast views (NumPy's rule up to rank 6), the unary backward's two operands,
//! where, strided copies, fill, and the 2-D grid split of long launches. Every row of the real
//! op table is checked against its definition in the workspace's tests/parity_elementwise.rs.

use crate::common;

use common::ops::{self, binary_ref};
use common::*;
use gpu::kernels::elementwise::{self as ew, contiguous_strides, OpCode, View};
use gpu::GpuError;

const SIZES: [usize; 7] = [1, 7, 33, 65, 129, 1000, 4099];

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

/// A unary op: its code, its scalar argument, and what it computes.
type UnaryCase = (u32, f32, fn(f64) -> f64);

#[test]
fn unary_ops_and_their_parameter_reach_every_element_at_awkward_sizes() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for n in SIZES {
        let x = rng.signed(n);
        let xb = upload(ctx, &x);
        let cases: [UnaryCase; 3] =
            [(ops::NEG, 0.0, |v| -v), (ops::EXP, 0.0, f64::exp), (ops::ADD_SCALAR, 1.5, |v| v + 1.5)];
        for (code, alpha, f) in cases {
            let out = poisoned(ctx, n);
            ops::unary(ctx, code, alpha, &xb, &out).unwrap();
            let want: Vec<f64> = x.iter().map(|&v| f(v as f64)).collect();
            assert_close_unit(&format!("unary op {code} n={n}"), &rng, &ctx.read(&out).unwrap(), &want);
        }
    }
}

#[test]
fn unary_backward_reads_the_gradient_and_the_saved_value_through_their_own_strides() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    // g: [5, 7] dense; s: the transpose of a [7, 5] buffer, read in place.
    let (g, s) = (rng.signed(35), rng.signed(35));
    let (gb, sb) = (upload(ctx, &g), upload(ctx, &s));
    let out = poisoned(ctx, 35);
    let shape = [5, 7];
    let op = OpCode { code: 0, ..Default::default() };
    ops::shader()
        .unary_backward(
            ctx,
            op,
            &View::dense(&gb, &shape),
            &View::strided(&sb, &[1, 5], 0),
            &View::dense(&out, &shape),
            &shape,
        )
        .unwrap();
    let want: Vec<f64> = (0..35).map(|i| g[i] as f64 * s[(i % 7) * 5 + i / 7] as f64).collect();
    assert_close_unit("g * s of a transposed s", &rng, &ctx.read(&out).unwrap(), &want);
}

#[test]
fn binary_ops_match_reference_on_equal_shapes() {
    let Some(ctx) = ctx() else { return };
    let mut rng = Rng::new();
    for code in ops::BINARY {
        for n in SIZES {
            let (a, b) = (rng.signed(n), rng.signed(n));
            let out = poisoned(ctx, n);
            let shape = [n];
            ops::shader()
                .binary(
                    ctx,
                    code,
                    &View::dense(&upload(ctx, &a), &shape),
                    &View::dense(&upload(ctx, &b), &shape),
                    &View::dense(&out, &shape),
                    &shape,
                )
                .unwrap();
            let want: Vec<f64> = a.iter().zip(&b).map(|(&x, &y)| binary_ref(code, x as f64, y as f64)).collect();
            assert_close_unit(&format!("binary op {code} n={n}"), &rng, &ctx.read(&out).unwrap(), &want);
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
        for op in ops::BINARY {
            let n: usize = shape.iter().product();
            let out = poisoned(ctx, n);
            let (va, vb) = (View::broadcast(&ab, sa, &shape), View::broadcast(&bb, sb, &shape));
            ops::shader().binary(ctx, op, &va, &vb, &View::dense(&out, &shape), &shape).unwrap();
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
        &View::dense(&out, &shape),
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
    let exp = OpCode { code: ops::EXP, ..Default::default() };
    ops::shader().unary(ctx, exp, &View::broadcast(&vb, &[7], &[3, 7]), &View::dense(&out, &[3, 7]), &[3, 7]).unwrap();
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
    ops::unary(ctx, ops::ADD_SCALAR, 1.0, &upload(ctx, &x), &out).unwrap();
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
    let err = ops::shader()
        .binary(ctx, ops::ADD, &View::dense(&a, &shape), &View::strided(&b, &bs, 0), &View::dense(&out, &shape), &shape)
        .unwrap_err();
    assert!(matches!(err, GpuError::InvalidArgument { .. }), "{err}");
    // a dense rank-7 tensor merges to rank 1 and is fine
    let (va, vb, vo) = (View::dense(&a, &shape), View::dense(&b, &shape), View::dense(&out, &shape));
    ops::shader().binary(ctx, ops::ADD, &va, &vb, &vo, &shape).unwrap();
    let short = ctx.alloc(100).unwrap();
    let err = ops::unary(ctx, ops::NEG, 0.0, &a, &short).unwrap_err();
    assert!(err.to_string().contains("needs 128 elements"), "{err}");
}
