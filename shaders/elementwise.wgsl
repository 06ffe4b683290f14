// elementwise.wgsl — the element-wise ops of the op table (tensor/src/elementwise_table.rs):
// unary maps, their backward passes, and binary maps with NumPy broadcasting, over strided
// views (f32). This file is a template: the three `{{…}}` lines below are replaced by one
// `case` per table row (the row's position is its op code) when the shader is assembled, and
// the result is compiled appended to strided.wgsl (Params, offsets_of, is_nan), the two after
// grid.wgsl (linear_id).
//
// Op selection. One entry point per arity, with the op chosen by the pipeline constant `OP`
// (set when the pipeline is compiled; the host keeps one pipeline per op used), so the
// compiler folds the `switch` to the one case and drops the rest. A `switch` on a uniform
// value instead would leave every op's code in one pipeline: free on a GPU that branches per
// warp, but a software rasterizer that runs control flow under lane masks then pays for many
// cases per element (relu took 2.5× as long on lavapipe: docs/performance.md).
//
//   unary:          o = f(a)          (a row's `wgsl`, an expression of x, alpha, beta)
//   unary_backward: o = f'(a = g, b = s)  (a row's `backward_wgsl`, of g, s, alpha, beta:
//                   g the upstream gradient, s the saved input or output)
//   binary:         o = f(a, b)

// The op's row in its table (the kernel's `switch` case).
override OP: u32;

// unary: a → o.   unary_backward: g, s → o.   binary: a, b → o.
@group(0) @binding(1) var<storage, read> un_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> un_o: array<f32>;

@group(0) @binding(1) var<storage, read> ub_g: array<f32>;
@group(0) @binding(2) var<storage, read> ub_s: array<f32>;
@group(0) @binding(3) var<storage, read_write> ub_o: array<f32>;

@group(0) @binding(1) var<storage, read> bin_a: array<f32>;
@group(0) @binding(2) var<storage, read> bin_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> bin_o: array<f32>;

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
    let alpha = p.alpha;
    let beta = p.beta;
    switch op {
        {{UNARY_CASES}}
        default: { return x; }
    }
}

fn unary_backward_op(op: u32, g: f32, s: f32) -> f32 {
    let alpha = p.alpha;
    let beta = p.beta;
    switch op {
        {{UNARY_BACKWARD_CASES}}
        default: { return g; }
    }
}

fn binary_op(op: u32, a: f32, b: f32) -> f32 {
    switch op {
        {{BINARY_CASES}}
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
    un_o[off.o] = unary_op(OP, un_a[off.a]);
}

@compute @workgroup_size(256)
fn unary_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let off = offsets_of(i);
    ub_o[off.o] = unary_backward_op(OP, ub_g[off.a], ub_s[off.b]);
}

@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let off = offsets_of(i);
    bin_o[off.o] = binary_op(OP, bin_a[off.a], bin_b[off.b]);
}
