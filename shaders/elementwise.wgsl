// elementwise.wgsl — element-wise maps over strided views (f32): unary ops, binary ops with
// NumPy broadcasting, where(cond, a, b), strided copy (gather) and fill.
//
// Memory layout. The launch iterates over a row-major "iteration shape" of rank ≤ 6 with
// n = Π shape elements. Every operand X ∈ {a, b, c} and the output o is a strided view over
// a flat f32 buffer: the element at multi-index (i_0, …, i_{r−1}) lives at
//     X.offset + Σ_d i_d · X.stride[d].
// A stride of 0 repeats one element along that axis: that is NumPy broadcasting (a [3, 1]
// operand read at shape [3, 4] has strides [1, 0]). Strides in any order read permuted or
// narrowed views, so `unary` with op 0 (identity) is the strided gather/copy that
// materialises any layout into any other (contiguous output: permute, narrow, broadcast;
// strided output: writing into a slice, as concatenation does). When every view is dense
// and starts at its offset, the host sets `contiguous` and the index math is skipped.
//
// Op selection. One entry point per arity (unary, binary, where_select, fill) with the op
// chosen by `op` in Params, rather than one entry point per op: ~40 ops would compile ~40
// pipelines, while a `switch` on a uniform value takes the same branch in every invocation
// (no divergence) and costs nothing next to the memory traffic of an element-wise kernel.
//
// Math (a, b, c operands; α = alpha, β = beta):
//   unary:  0 identity, 1 −a, 2 eᵃ, 3 ln a, 4 √a, 5 |a|, 6 relu, 7 σ(a), 8 tanh a,
//           9 softplus = max(a,0) + ln(1 + e^−|a|) (stable), 10 1/a, 11 a², 12 leaky_relu(α),
//           13 a^α, 14 clamp(a, α, β), 15 a + α, 16 a·α
//   binary: 0 a+b, 1 a−b, 2 a·b, 3 a/b, 4 max, 5 min, 6 a>b, 7 a≥b, 8 a<b, 9 a≤b, 10 a==b
//           (comparisons give 1 or 0), gradient helpers (g = a = upstream gradient, b = the
//           saved forward value): 11 relu_grad(g,x) = x>0 ? g : 0, 12 leaky_relu_grad(g,x) =
//           x>0 ? g : α·g, 13 sigmoid_grad(g,y) = g·y·(1−y), 14 tanh_grad(g,y) = g·(1−y²),
//           15 abs_grad(g,x) = g·sign(x), 16 softplus_grad(g,x) = g·σ(x), 17 clamp_grad(g,x) =
//           α≤x≤β ? g : 0, 18 axpby = α·a + β·b
//   where_select: c ≠ 0 ? a : b
//   fill: o = α (dense, offset o)

struct Params {
    n: u32,
    op: u32,
    rank: u32,
    contiguous: u32,
    alpha: f32,
    beta: f32,
    _pad0: u32,
    _pad1: u32,
    // Element offsets of o, a, b, c.
    offsets: vec4<u32>,
    // Dimensions 0..5 of the iteration shape (entries 6, 7 unused), dims packed 4 per vec4.
    shape: array<vec4<u32>, 2>,
    o_strides: array<vec4<u32>, 2>,
    a_strides: array<vec4<u32>, 2>,
    b_strides: array<vec4<u32>, 2>,
    c_strides: array<vec4<u32>, 2>,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;

// unary: a → o.   binary: a, b → o.   where_select: c, a, b → o.   fill: → o.
// (Each entry point binds params, then its inputs, then its output; the names below
// differ per arity because the same binding number is an input in one entry point and the
// output in another.)
@group(0) @binding(1) var<storage, read> un_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> un_o: array<f32>;

@group(0) @binding(1) var<storage, read> bin_a: array<f32>;
@group(0) @binding(2) var<storage, read> bin_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> bin_o: array<f32>;

@group(0) @binding(1) var<storage, read> wh_c: array<f32>;
@group(0) @binding(2) var<storage, read> wh_a: array<f32>;
@group(0) @binding(3) var<storage, read> wh_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> wh_o: array<f32>;

@group(0) @binding(1) var<storage, read_write> fill_o: array<f32>;

struct Offsets {
    o: u32,
    a: u32,
    b: u32,
    c: u32,
}

// Element offsets of the i-th element (row-major over the iteration shape) in each view.
fn offsets_of(i: u32) -> Offsets {
    var r = Offsets(p.offsets.x, p.offsets.y, p.offsets.z, p.offsets.w);
    if p.contiguous != 0u {
        r.o += i;
        r.a += i;
        r.b += i;
        r.c += i;
        return r;
    }
    var rem = i;
    for (var d = i32(p.rank) - 1; d >= 0; d--) {
        let q = u32(d) / 4u;
        let s = u32(d) % 4u;
        let size = p.shape[q][s];
        let coord = rem % size;
        rem = rem / size;
        r.o += coord * p.o_strides[q][s];
        r.a += coord * p.a_strides[q][s];
        r.b += coord * p.b_strides[q][s];
        r.c += coord * p.c_strides[q][s];
    }
    return r;
}

// Linear invocation index of a 1-D launch split over an x·y grid (see Context::grid_1d).
fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// NaN passes through relu, leaky_relu, clamp, max and min, as in PyTorch. Tested on the bits:
// compilers may fold `x != x` to false (WGSL lets them assume no NaN in arithmetic).
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn sigmoid(x: f32) -> f32 {
    // Two branches so exp never overflows: for x < 0, σ(x) = eˣ/(1+eˣ).
    if x >= 0.0 {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

fn powf(x: f32, e: f32) -> f32 {
    // WGSL's pow is exp2(e·log2 x): undefined for x < 0 and NaN for 0⁰; give Rust's powf
    // results for the exponents that matter and for negative bases with integer exponents.
    if e == 0.0 {
        return 1.0;
    }
    if e == 1.0 {
        return x;
    }
    if e == 2.0 {
        return x * x;
    }
    if e == 0.5 {
        return sqrt(x);
    }
    let r = pow(abs(x), e);
    if x < 0.0 {
        if fract(e) != 0.0 {
            let nan_bits = 0x7fc00000u;
            return bitcast<f32>(nan_bits);
        }
        if fract(e * 0.5) != 0.0 {
            return -r;
        }
    }
    return r;
}

fn unary_op(op: u32, x: f32) -> f32 {
    switch op {
        case 0u: { return x; }
        case 1u: { return -x; }
        case 2u: { return exp(x); }
        case 3u: { return log(x); }
        case 4u: { return sqrt(x); }
        case 5u: { return abs(x); }
        case 6u: { return select(select(0.0, x, x > 0.0), x, is_nan(x)); }
        case 7u: { return sigmoid(x); }
        // tanh saturates to ±1 in f32 beyond |x| ≈ 9; clamping keeps drivers that compute it
        // from e^{2x} away from inf/inf.
        case 8u: { return tanh(clamp(x, -15.0, 15.0)); }
        case 9u: { return max(x, 0.0) + log(1.0 + exp(-abs(x))); }
        case 10u: { return 1.0 / x; }
        case 11u: { return x * x; }
        case 12u: { return select(select(p.alpha * x, x, x > 0.0), x, is_nan(x)); }
        case 13u: { return powf(x, p.alpha); }
        case 14u: { return select(min(max(x, p.alpha), p.beta), x, is_nan(x)); }
        case 15u: { return x + p.alpha; }
        case 16u: { return x * p.alpha; }
        default: { return x; }
    }
}

fn binary_op(op: u32, a: f32, b: f32) -> f32 {
    switch op {
        case 0u: { return a + b; }
        case 1u: { return a - b; }
        case 2u: { return a * b; }
        case 3u: { return a / b; }
        case 4u: { return select(select(max(a, b), b, is_nan(b)), a, is_nan(a)); }
        case 5u: { return select(select(min(a, b), b, is_nan(b)), a, is_nan(a)); }
        case 6u: { return select(0.0, 1.0, a > b); }
        case 7u: { return select(0.0, 1.0, a >= b); }
        case 8u: { return select(0.0, 1.0, a < b); }
        case 9u: { return select(0.0, 1.0, a <= b); }
        case 10u: { return select(0.0, 1.0, a == b); }
        case 11u: { return select(0.0, a, b > 0.0); }
        case 12u: { return select(p.alpha * a, a, b > 0.0); }
        case 13u: { return a * b * (1.0 - b); }
        case 14u: { return a * (1.0 - b * b); }
        case 15u: { return select(select(0.0, -a, b < 0.0), a, b > 0.0); }
        case 16u: { return a * sigmoid(b); }
        case 17u: { return select(0.0, a, b >= p.alpha && b <= p.beta); }
        case 18u: { return p.alpha * a + p.beta * b; }
        default: { return a; }
    }
}

@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let off = offsets_of(i);
    un_o[off.o] = unary_op(p.op, un_a[off.a]);
}

@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let off = offsets_of(i);
    bin_o[off.o] = binary_op(p.op, bin_a[off.a], bin_b[off.b]);
}

@compute @workgroup_size(256)
fn where_select(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let off = offsets_of(i);
    wh_o[off.o] = select(wh_b[off.b], wh_a[off.a], wh_c[off.c] != 0.0);
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    fill_o[p.offsets.x + i] = p.alpha;
}
