// strided.wgsl — the strided-view machinery every element-wise kernel shares (f32), and the
// kernels that need nothing else: strided copy (gather), where(cond, a, b) and fill.
// shaders/elementwise.wgsl, whose op switches are assembled from the element-wise op table,
// is compiled appended to this file.
//
// Memory layout. The launch iterates over a row-major "iteration shape" of rank ≤ 6 with
// n = Π shape elements. Every operand X ∈ {a, b, c} and the output o is a strided view over
// a flat f32 buffer: the element at multi-index (i_0, …, i_{r−1}) lives at
//     X.offset + Σ_d i_d · X.stride[d].
// A stride of 0 repeats one element along that axis: that is NumPy broadcasting (a [3, 1]
// operand read at shape [3, 4] has strides [1, 0]). Strides in any order read permuted or
// narrowed views, so `copy` is the strided gather that materialises any layout into any
// other (contiguous output: permute, narrow, broadcast; strided output: writing into a
// slice, as concatenation does). When every view is dense and starts at its offset, the
// host sets `contiguous` and the index math is skipped.
//
//   copy:         o = a
//   where_select: o = c ≠ 0 ? a : b
//   fill:         o = α (dense, offset o)

struct Params {
    n: u32,
    rank: u32,
    contiguous: u32,
    alpha: f32,
    beta: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    // Element offsets of o, a, b, c.
    offsets: vec4<u32>,
    // Dimensions 0..5 of the iteration shape (entries 6, 7 unused), dims packed 4 per vec4.
    shape: array<vec4<u32>, 2>,
    o_strides: array<vec4<u32>, 2>,
    a_strides: array<vec4<u32>, 2>,
    b_strides: array<vec4<u32>, 2>,
    c_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: Params;

// copy: a → o.   where_select: c, a, b → o.   fill: → o.
// The three-operand maps, a, b, c → o: reparameterize (μ, log σ², ε → z),
// reparameterize_backward (g, log σ², ε → ∂L/∂log σ²), squared_difference_backward (g, a, b → ∂L/∂a).
// (Each entry point binds params, then its inputs, then its output; the names differ per
// entry point because the same binding number is an input in one and the output in another.)
@group(0) @binding(1) var<storage, read> cp_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> cp_o: array<f32>;

@group(0) @binding(1) var<storage, read> wh_c: array<f32>;
@group(0) @binding(2) var<storage, read> wh_a: array<f32>;
@group(0) @binding(3) var<storage, read> wh_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> wh_o: array<f32>;

@group(0) @binding(1) var<storage, read_write> fill_o: array<f32>;

@group(0) @binding(1) var<storage, read> map3_a: array<f32>;
@group(0) @binding(2) var<storage, read> map3_b: array<f32>;
@group(0) @binding(3) var<storage, read> map3_c: array<f32>;
@group(0) @binding(4) var<storage, read_write> map3_o: array<f32>;

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

// NaN passes through relu, leaky_relu, clamp, max and min, as in PyTorch (`is_nan` is grid.wgsl's).

@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let off = offsets_of(i);
    cp_o[off.o] = cp_a[off.a];
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

// The VAE's sample z = μ + σ·ε with σ = e^{½·log σ²}, one launch for what is four
// element-wise ops (a scaling, exp, a product and a sum) written out; the same operations in
// the same order as the CPU's `reparameterize` (tensor/src/cpu/elementwise.rs).
@compute @workgroup_size(256)
fn reparameterize(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let off = offsets_of(i);
    map3_o[off.o] = map3_a[off.a] + exp(map3_b[off.b] * 0.5) * map3_c[off.c];
}

// Its gradient with respect to log σ², from the upstream gradient g: ((g·ε)·σ)·½ (with
// respect to μ it is g itself).
@compute @workgroup_size(256)
fn reparameterize_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let off = offsets_of(i);
    map3_o[off.o] = map3_a[off.a] * map3_c[off.c] * exp(map3_b[off.b] * 0.5) * 0.5;
}

// The gradient of (a − b)² with respect to a from the upstream gradient g: g·(a − b)·2, the
// `square` row's backward at the difference (with respect to b it is the negation).
@compute @workgroup_size(256)
fn squared_difference_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                               @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let off = offsets_of(i);
    map3_o[off.o] = map3_a[off.a] * (map3_b[off.b] - map3_c[off.c]) * 2.0;
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
