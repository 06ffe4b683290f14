// reduce.wgsl — reductions of a dense [outer, reduce, inner] view to [outer, inner] (f32).
//
// Memory layout: x[o, r, i] at (o·reduce + r)·inner + i; out[o, i] at o·inner + i. Every
// reduction over a block of adjacent axes of a row-major tensor is this shape.
//
// Math, per output (o, i) over r = 0..reduce:
//   0 sum Σ x     1 mean Σ x / reduce     2 max     3 min
//   4 logsumexp = m + ln Σ exp(x − m), m = max x (never overflows; −∞ if every x is −∞)
//   5 argmax, 6 argmin: index r of the first maximum / minimum, written as an f32 (exact
//     below 2²⁴)
//
// Two entry points, the same math:
//   reduce_per_thread     one invocation per output, a serial loop over r (short rows, or
//                         many outputs: adjacent invocations read adjacent i, coalesced);
//   reduce_per_workgroup  one workgroup per output: 256 invocations stride over r, then a
//                         tree reduction in workgroup memory (long rows, few outputs).
// Ties in argmax/argmin keep the smallest index: each invocation scans increasing r and
// keeps only strictly better values, and the tree prefers the lower index on equal values.

struct Params {
    outer: u32,
    reduce: u32,
    inner: u32,
    op: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

// −∞ (WGSL has no infinity literal, and a const expression may not overflow).
fn neg_inf() -> f32 {
    return bitcast<f32>(0xff800000u);
}

var<workgroup> sv: array<f32, 256>;
var<workgroup> si: array<u32, 256>;

fn is_arg(op: u32) -> bool {
    return op == 5u || op == 6u;
}

// True when (v, i) should replace (best, bi): for max-like ops a larger value, for min-like a
// smaller one, and on equal values the lower index.
fn better(op: u32, v: f32, i: u32, best: f32, bi: u32) -> bool {
    if op == 3u || op == 6u {
        return v < best || (v == best && i < bi);
    }
    return v > best || (v == best && i < bi);
}

fn init(op: u32) -> f32 {
    switch op {
        case 2u, 4u, 5u: { return neg_inf(); }
        case 3u, 6u: { return -neg_inf(); }
        default: { return 0.0; }
    }
}

// Where output g = o·inner + i reads its first element x[o, 0, i]; the next is inner further.
fn first_reduced(g: u32) -> u32 {
    return (g / p.inner) * p.reduce * p.inner + g % p.inner;
}

fn finish(op: u32, acc: f32, idx: u32) -> f32 {
    switch op {
        case 1u: { return acc / f32(p.reduce); }
        case 5u, 6u: { return f32(idx); }
        default: { return acc; }
    }
}

@compute @workgroup_size(256)
fn reduce_per_thread(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let g = linear_id(wid, nwg, lid);
    if g >= p.outer * p.inner {
        return;
    }
    let base = first_reduced(g);
    let op = p.op;
    var acc = init(op);
    var idx = 0u;
    if op == 0u || op == 1u {
        for (var r = 0u; r < p.reduce; r++) {
            acc += x[base + r * p.inner];
        }
    } else {
        // max/min/arg*: the first strictly better value wins; logsumexp needs the max first.
        let m_op = select(op, 2u, op == 4u);
        for (var r = 0u; r < p.reduce; r++) {
            let v = x[base + r * p.inner];
            if r == 0u || better(m_op, v, r, acc, idx) {
                acc = v;
                idx = r;
            }
        }
        if op == 4u {
            let m = acc;
            if m == neg_inf() || m == -neg_inf() {
                acc = m;
            } else {
                var s = 0.0;
                for (var r = 0u; r < p.reduce; r++) {
                    s += exp(x[base + r * p.inner] - m);
                }
                acc = m + log(s);
            }
        }
    }
    out[g] = finish(op, acc, idx);
}

// Tree-combines sv (and si for arg ops) over the workgroup; the result lands in slot 0.
fn tree(op: u32, lid: u32) {
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            let v = sv[lid + s];
            if op == 0u || op == 1u {
                sv[lid] += v;
            } else if better(op, v, si[lid + s], sv[lid], si[lid]) {
                sv[lid] = v;
                si[lid] = si[lid + s];
            }
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn reduce_per_workgroup(@builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let g = workgroup_index(wid, nwg); // uniform across the workgroup, so the early return is too
    if g >= p.outer * p.inner {
        return;
    }
    let base = first_reduced(g);
    let op = p.op;
    // Phase 1: sum (ops 0, 1) or the best (value, index) (ops 2..6; logsumexp takes the max).
    let m_op = select(op, 2u, op == 4u);
    var acc = init(m_op);
    var idx = 0xffffffffu;
    for (var r = lid; r < p.reduce; r += WG) {
        let v = x[base + r * p.inner];
        if m_op == 0u || m_op == 1u {
            acc += v;
        } else if idx == 0xffffffffu || better(m_op, v, r, acc, idx) {
            acc = v;
            idx = r;
        }
    }
    sv[lid] = acc;
    si[lid] = idx;
    workgroupBarrier();
    tree(m_op, lid);
    var result = sv[0];
    let best_idx = si[0];
    if op == 4u {
        // Phase 2: Σ exp(x − m) with the max m from phase 1.
        let m = result;
        workgroupBarrier(); // everyone has read sv[0] before it is overwritten
        var s = 0.0;
        if m != neg_inf() && m != -neg_inf() {
            for (var r = lid; r < p.reduce; r += WG) {
                s += exp(x[base + r * p.inner] - m);
            }
        }
        sv[lid] = s;
        workgroupBarrier();
        tree(0u, lid);
        if m == neg_inf() || m == -neg_inf() {
            result = m;
        } else {
            result = m + log(sv[0]);
        }
    }
    if lid == 0u {
        out[g] = finish(op, result, best_idx);
    }
}

// flag_non_finite: flags[fp.slots[j]] becomes nonzero when any of the first fp.lens[j]
// elements of input j (of four; an unused one has length 0) is NaN or ±∞, and is left alone
// otherwise, so one zeroed flag buffer can collect the checks of many tensors and be read back
// once (the optimizer's gradient check: one host round trip per step), and four of them cost
// one launch. The nonzero value is the bits of the f32 1.0, so a flag buffer also reads as a
// float tensor holding 0 or 1 (which the optimizer's `_unless_flagged` kernels and a loss
// read-back use). A float is NaN or ±∞ exactly when its exponent bits are all set; the test is
// on the bits because a compiler may assume floats are finite. Each invocation checks the
// elements i ≡ its index (mod the grid's invocations), so any grid size is correct; only an
// invocation that finds one touches a flag.
struct FlagParams {
    lens: vec4<u32>,
    slots: vec4<u32>,
}

@group(0) @binding(0) var<uniform> fp: FlagParams;
@group(0) @binding(1) var<storage, read> flag_x0: array<f32>;
@group(0) @binding(2) var<storage, read> flag_x1: array<f32>;
@group(0) @binding(3) var<storage, read> flag_x2: array<f32>;
@group(0) @binding(4) var<storage, read> flag_x3: array<f32>;
@group(0) @binding(5) var<storage, read_write> flags: array<atomic<u32>>;

fn non_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u;
}

@compute @workgroup_size(256)
fn flag_non_finite(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let invocations = nwg.x * nwg.y * WG;
    let longest = max(max(fp.lens.x, fp.lens.y), max(fp.lens.z, fp.lens.w));
    var bad = vec4<bool>(false);
    for (var i = linear_id(wid, nwg, lid); i < longest; i += invocations) {
        bad.x = bad.x || (i < fp.lens.x && non_finite(flag_x0[i]));
        bad.y = bad.y || (i < fp.lens.y && non_finite(flag_x1[i]));
        bad.z = bad.z || (i < fp.lens.z && non_finite(flag_x2[i]));
        bad.w = bad.w || (i < fp.lens.w && non_finite(flag_x3[i]));
    }
    for (var j = 0u; j < 4u; j++) {
        if bad[j] {
            atomicOr(&flags[fp.slots[j]], 0x3f800000u);
        }
    }
}
