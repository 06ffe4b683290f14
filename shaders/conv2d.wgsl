// conv2d.wgsl — 2-D convolution (f32, NCHW, groups = 1): `forward_direct`,
// `backward_data_direct` and `backward_weight_direct`, the definitions with one invocation per value computed (rung 1 of the
// ladder, what the tests hold the others to), the `*_tiled16` kernels (rung 2: the GEMM below
// with 16×16 tiles staged in workgroup memory, one output per invocation), then
// the implicit GEMM kernels the launchers run: forward, backward-data, backward-weight and
// backward-bias. conv_transpose2d reuses these kernels
// (see gpu/src/kernels/conv2d.rs): its forward is conv2d's backward-data, its
// backward-data is conv2d's forward and its backward-weight is conv2d's backward-weight with
// x and dy swapped.
//
// Memory layout (PyTorch's, dense row-major): x [N, C_in, H, W], weight [C_out, C_in, kH, kW],
// bias [C_out], y [N, C_out, OH, OW], with per-axis stride s, padding p, dilation d and
//     OH = ⌊(H + 2p − d·(kH − 1) − 1)/s⌋ + 1 (likewise OW; the host passes OH, OW).
//
// Math. With K = C_in·kH·kW and the im2col matrix
//     col[(ci, ky, kx), (n, oy, ox)] = x[n, ci, oy·s − p + ky·d, ox·s − p + kx·d]  (0 outside)
// conv2d is one GEMM, y = W·col (W viewed as [C_out, K]), and its gradients are GEMMs too:
//   forward          y [C_out, N·OH·OW]  = W [C_out, K] · col [K, N·OH·OW]            (+ bias)
//   backward_data    dx [C_in, N·H·W]    = Wᵀ' [C_in, C_out·kH·kW] · dy' [C_out·kH·kW, N·H·W]
//                    where dy'[(co, ky, kx), (n, iy, ix)] = dy[n, co, oy, ox] for the output
//                    (oy, ox) whose tap (ky, kx) lands on (iy, ix): oy = (iy + p − ky·d)/s when
//                    that divides exactly and is in range, else 0. This gathers, per input
//                    pixel, every term col2im would scatter-add: race-free, no atomics.
//                    With s > 1 most of those terms are zero (a 3×3 kernel at stride 2 reaches
//                    a pixel with 1, 2 or 4 of its 9 taps), so the pixels are split into s_h·s_w
//                    phases by (iy mod s, ix mod s), one launch each: within a phase the taps
//                    that divide exactly are the same for every pixel (ky = t0 + j·step), so
//                    each launch is a dense GEMM over just those taps (sub-pixel convolution):
//                    phase pixel (u, v) is (iy, ix) = (r_y + s·u, r_x + s·v), and its tap j
//                    reads oy = u + q_y − j·ostep (see `PhaseAxis` in conv2d.rs).
//   backward_weight  dW [C_out, K]       = dy [C_out, N·OH·OW] · colᵀ [N·OH·OW, K]
//   backward_bias    db[co] = Σ_{n, oy, ox} dy[n, co, oy, ox]   (a workgroup per channel)
// The GEMM operands are never materialised: the tile loaders below compute each element
// from the index formulas above. The tiling is matmul.wgsl's (64×64 tile of the output per
// 16×16 workgroup, 4×4 register block per invocation, k-steps of 16 staged in workgroup
// memory as vec4s, zero-filled at the edges). Each entry point calls `conv_gemm` with a
// constant mode, which the driver folds after inlining. `accumulate` adds into the old
// output; `has_bias` adds bias[row] in the forward and backward-data modes (the latter for
// conv_transpose2d's bias).
//
// Why these GEMM shapes: the output of each mode is the GEMM's [M, N] (so every output
// element is written by exactly one invocation: no reductions across workgroups, no
// atomics). backward_weight has a small [C_out, C_in·kH·kW] output and a long K = N·OH·OW
// (the last layer of a decoder: a [32, 27] output over K = 65,536), which would be one
// workgroup looping over all of K while the rest of the GPU idles. So its K is split into
// slices of `k_chunk`, one per grid z: each slice writes its partial [M, N] into a scratch
// buffer ([slices, M, N]), and `backward_weight_sum` adds the slices in order (a fixed
// order: the result does not depend on scheduling). The forward and a stride-1
// backward_data split their K the same way when their output makes few tiles (a deep layer
// on a small plane: 512 channels of 4×4 make 64), into partials laid out as the output, and
// `forward_sum` / `backward_data_sum` add them.

struct Params {
    batch: u32,
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    dil_h: u32,
    dil_w: u32,
    has_bias: u32,
    accumulate: u32,
    // backward_data's phase, per axis (see `PhaseAxis` in conv2d.rs): its first pixel r,
    // first tap t0, tap step, tap count, output step per tap and output offset q; then its
    // pixel counts along y and x.
    ph_y_r: u32,
    ph_y_t0: u32,
    ph_y_tstep: u32,
    ph_y_taps: u32,
    ph_y_ostep: u32,
    ph_y_q: i32,
    ph_x_r: u32,
    ph_x_t0: u32,
    ph_x_tstep: u32,
    ph_x_taps: u32,
    ph_x_ostep: u32,
    ph_x_q: i32,
    ph_h: u32,
    ph_w: u32,
    // The K slice each grid z takes (K itself when not split): backward_weight's, and a split
    // forward's or stride-1 backward_data's (see forward_sum).
    k_chunk: u32,
    // The stored weight's kernel size and where the kernel run starts in it (see weight_index).
    w_kh: u32,
    w_kw: u32,
    w_first_y: u32,
    w_first_x: u32,
    // The column tile of grid x = 0 (a GEMM wider than one grid axis runs in slices).
    first_column_tile: u32,
    // 1: ReLU on what the launch stores (grid.wgsl's `activate`): a convolution and the ReLU
    // after it in one launch. Only the launch that writes the output last has it.
    relu: u32,
}

// Rung 1, `forward_direct`: y[n, co, oy, ox] = bias[co] + Σ_{ci, ky, kx} x[n, ci, iy, ix]·w[co, ci, ky, kx]
// with iy = oy·s − p + ky·d (likewise ix), a tap outside the input adding nothing (zero
// padding). One invocation per output, in0 = x, in1 = w.
// Grid: ⌈N·C_out·OH·OW / 256⌉ workgroups, spread over x and y by the host.
@compute @workgroup_size(256)
fn forward_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.batch * p.c_out * p.oh * p.ow {
        return;
    }
    let at = coordinates(i, p.ow, p.oh, p.c_out); // (ox, oy, co, n)
    var s = 0.0;
    for (var ci = 0u; ci < p.c_in; ci++) {
        for (var ky = 0u; ky < p.kh; ky++) {
            let iy = tap_row(at.y, ky);
            for (var kx = 0u; kx < p.kw; kx++) {
                let ix = tap_column(at.x, kx);
                if iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w) {
                    continue;
                }
                let x_at = ((at.w * p.c_in + ci) * p.h + u32(iy)) * p.w + u32(ix);
                s += in0[x_at] * in1[((at.z * p.c_in + ci) * p.kh + ky) * p.kw + kx];
            }
        }
    }
    store_direct(i, s, at.z);
}

// Rung 1 of backward-data, `backward_data_direct` (also conv_transpose2d's forward, by the
// identity above): dx[n, ci, iy, ix] = bias[ci] + Σ_{co, ky, kx} dy[n, co, oy, ox]·w[co, ci, ky, kx]
// over the taps whose output oy = (iy + p − ky·d)/s divides exactly and lies in [0, OH)
// (likewise ox): one invocation per input pixel gathers what the forward scattered from it.
// in0 = dy, in1 = w. Grid: ⌈N·C_in·H·W / 256⌉ workgroups, spread over x and y by the host.
@compute @workgroup_size(256)
fn backward_data_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.batch * p.c_in * p.h * p.w {
        return;
    }
    let at = coordinates(i, p.w, p.h, p.c_in); // (ix, iy, ci, n)
    var s = 0.0;
    for (var co = 0u; co < p.c_out; co++) {
        for (var ky = 0u; ky < p.kh; ky++) {
            let ry = i32(at.y + p.pad_h) - i32(ky * p.dil_h);
            if ry < 0 || ry % i32(p.stride_h) != 0 || ry / i32(p.stride_h) >= i32(p.oh) {
                continue;
            }
            for (var kx = 0u; kx < p.kw; kx++) {
                let rx = i32(at.x + p.pad_w) - i32(kx * p.dil_w);
                if rx < 0 || rx % i32(p.stride_w) != 0 || rx / i32(p.stride_w) >= i32(p.ow) {
                    continue;
                }
                let dy_at = ((at.w * p.c_out + co) * p.oh + u32(ry) / p.stride_h) * p.ow + u32(rx) / p.stride_w;
                s += in0[dy_at] * in1[((co * p.c_in + at.z) * p.kh + ky) * p.kw + kx];
            }
        }
    }
    store_direct(i, s, at.z);
}

// Rung 1 of backward-weight, `backward_weight_direct`: dw[co, ci, ky, kx] =
// Σ_{n, oy, ox} dy[n, co, oy, ox]·x[n, ci, oy·s − p + ky·d, ox·s − p + kx·d] over the taps inside
// the input: one invocation per weight element, a loop over the batch and the output plane.
// in0 = dy, in1 = x. Grid: ⌈C_out·C_in·kH·kW / 256⌉ workgroups, spread over x and y by the host.
@compute @workgroup_size(256)
fn backward_weight_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.c_out * p.c_in * p.kh * p.kw {
        return;
    }
    let at = coordinates(i, p.kw, p.kh, p.c_in); // (kx, ky, ci, co)
    var s = 0.0;
    for (var n = 0u; n < p.batch; n++) {
        for (var oy = 0u; oy < p.oh; oy++) {
            let iy = tap_row(oy, at.y);
            for (var ox = 0u; ox < p.ow; ox++) {
                let ix = tap_column(ox, at.x);
                if iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w) {
                    continue;
                }
                let x_at = ((n * p.c_in + at.z) * p.h + u32(iy)) * p.w + u32(ix);
                s += in0[((n * p.c_out + at.w) * p.oh + oy) * p.ow + ox] * in1[x_at];
            }
        }
    }
    store_direct(i, s, 0u);
}

// The direct kernels' shared steps. Index i of a row-major [_, d2, d1, d0] array as its four
// coordinates, innermost first.
fn coordinates(i: u32, d0: u32, d1: u32, d2: u32) -> vec4<u32> {
    return vec4<u32>(i % d0, (i / d0) % d1, (i / (d0 * d1)) % d2, i / (d0 * d1 * d2));
}

// The input row (column) that output row oy (column ox) reads through tap ky (kx): negative
// or past the input in the padding.
fn tap_row(oy: u32, ky: u32) -> i32 {
    return i32(oy * p.stride_h + ky * p.dil_h) - i32(p.pad_h);
}

fn tap_column(ox: u32, kx: u32) -> i32 {
    return i32(ox * p.stride_w + kx * p.dil_w) - i32(p.pad_w);
}

// out[i] = the sum, plus bias[bias_at] when the launch has a bias, plus out[i] when it
// accumulates, then the ReLU when it has one.
fn store_direct(i: u32, sum: f32, bias_at: u32) {
    var s = sum;
    if p.has_bias == 1u {
        s += bias[bias_at];
    }
    if p.accumulate == 1u {
        s += out[i];
    }
    out[i] = activate(s, p.relu);
}

const FORWARD: u32 = 0u;
const BACKWARD_DATA: u32 = 1u;
const BACKWARD_WEIGHT: u32 = 2u;

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const AP4: u32 = 17u;

@group(0) @binding(0) var<uniform> p: Params;
// forward: in0 = x, in1 = weight.  backward_data: in0 = dy, in1 = weight.
// backward_weight: in0 = dy, in1 = x (bias unused: the host binds any buffer).
@group(0) @binding(1) var<storage, read> in0: array<f32>;
@group(0) @binding(2) var<storage, read> in1: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// backward_bias: dy → db. backward_weight_sum: the slices' partials → dW.
@group(0) @binding(1) var<storage, read> small_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> small_out: array<f32>;

var<workgroup> a_tile: array<vec4<f32>, 272>; // [BK][AP4], rows packed by 4 (see matmul.wgsl)
var<workgroup> b_tile: array<vec4<f32>, 256>; // [BK][BN/4]
var<workgroup> red: array<f32, 256>;
// The narrow variant's tiles (see conv_gemm_narrow).
const NARROW_BM: u32 = 32u;
const NARROW_BN: u32 = 128u;
const NARROW_BK: u32 = 16u;
var<workgroup> narrow_a_tile: array<vec4<f32>, 128>; // [NARROW_BK][NARROW_BM/4]
var<workgroup> narrow_b_tile: array<vec4<f32>, 512>; // [NARROW_BK][NARROW_BN/4]

// GEMM sizes (M, N, K) of each mode.
fn gemm_dims(mode: u32) -> vec3<u32> {
    let taps = p.kh * p.kw;
    switch mode {
        case FORWARD: { return vec3<u32>(p.c_out, p.batch * p.oh * p.ow, p.c_in * taps); }
        case BACKWARD_DATA: { return vec3<u32>(p.c_in, p.batch * p.ph_h * p.ph_w, p.c_out * p.ph_y_taps * p.ph_x_taps); }
        default: { return vec3<u32>(p.c_out, p.c_in * taps, p.batch * p.oh * p.ow); }
    }
}

// Where weight element (co, ci, ky, kx) of the kernel being run lives in the weight buffer.
// The kernel run may be a crop of the stored one: on small planes a padded kernel hangs over
// the edge (a 3×3 kernel with padding 1 on a 1×1 plane reads only its centre), so the host
// runs only the taps that reach the input (kh × kw of the stored w_kh × w_kw, corner at
// (w_first_y, w_first_x); `LiveTaps` in descriptors.rs) instead of multiplying by padding.
fn weight_index(co: u32, ci: u32, ky: u32, kx: u32) -> u32 {
    return ((co * p.c_in + ci) * p.w_kh + p.w_first_y + ky) * p.w_kw + p.w_first_x + kx;
}

// dW[co = row, (ci, ky, kx) = col] in the weight buffer.
fn weight_grad_index(row: u32, col: u32) -> u32 {
    let taps = p.kh * p.kw;
    let t = col % taps;
    return weight_index(row, col / taps, t / p.kw, t % p.kw);
}

// A position along K in its mode's mixed radix: kk = (outer·Y + y)·X + x, with (Y, X) =
// (kH, kW) in the forward (kk = (ci, ky, kx)), the phase's tap counts in the backward-data
// ((co, j, i)) and (OH, OW) in the backward-weight ((n, oy, ox)). The loaders read (outer, y,
// x) instead of dividing kk: an integer division by a runtime value costs tens of
// instructions on a GPU, and the tiled kernels stage one element per few multiply-adds. Each
// invocation decomposes its first positions once (`k_pos`) and then steps them along K with
// carries (`k_advance`).
struct KPos {
    outer: u32,
    y: u32,
    x: u32,
}

// (Y, X) of the mode's radix.
fn k_radix(mode: u32) -> vec2<u32> {
    switch mode {
        case FORWARD: { return vec2<u32>(p.kh, p.kw); }
        case BACKWARD_DATA: { return vec2<u32>(p.ph_y_taps, p.ph_x_taps); }
        default: { return vec2<u32>(p.oh, p.ow); }
    }
}

fn k_pos(mode: u32, kk: u32) -> KPos {
    let r = k_radix(mode);
    let inner = r.x * r.y;
    let t = kk % inner;
    return KPos(kk / inner, t / r.y, t % r.y);
}

// The position `step` further on, where `step` is itself decomposed by `k_pos` (its x < X and
// y < Y, so each digit carries at most once).
fn k_advance(mode: u32, at: KPos, step: KPos) -> KPos {
    let r = k_radix(mode);
    var x = at.x + step.x;
    var y = at.y + step.y;
    var outer = at.outer + step.outer;
    if x >= r.y {
        x -= r.y;
        y += 1u;
    }
    if y >= r.x {
        y -= r.x;
        outer += 1u;
    }
    return KPos(outer, y, x);
}

// A[row, kk] (row < M, kk < K) at kk's position `kp`.
fn load_a(mode: u32, row: u32, kk: u32, kp: KPos) -> f32 {
    switch mode {
        case FORWARD: {
            if p.w_kh == p.kh && p.w_kw == p.kw {
                return in1[row * p.c_in * p.kh * p.kw + kk];
            }
            return in1[weight_index(row, kp.outer, kp.y, kp.x)];
        }
        case BACKWARD_DATA: {
            // W[co, ci = row, ky, kx] with kk = (co, j, i): the phase's tap (j, i)
            let ky = p.ph_y_t0 + kp.y * p.ph_y_tstep;
            let kx = p.ph_x_t0 + kp.x * p.ph_x_tstep;
            return in1[weight_index(kp.outer, row, ky, kx)];
        }
        default: {
            // dy[n, co = row, oy, ox] with kk = (n, oy, ox)
            return in0[((kp.outer * p.c_out + row) * p.oh + kp.y) * p.ow + kp.x];
        }
    }
}

// B[kk, col] (kk < K, col < N), in two parts: what depends on the column alone, computed
// once per invocation before the k-loop (each invocation stages the same column of every B
// tile), and the per-element rest. Integer division is slow on every GPU (and on a CPU
// running one), so the column's three divisions leave the loop, and the k-loop of the square
// and wide tiles keeps none (it steps K positions, `KPos`).
struct Column {
    // Offset of the column's image (and channel) in the operand B is gathered from.
    base: u32,
    // The row and column that tap (0, 0) reads (the phase's output offset in backward_data).
    y0: i32,
    x0: i32,
}

fn column(mode: u32, col: u32) -> Column {
    switch mode {
        case FORWARD: {
            // col = (n, oy, ox): x[n, ·, oy·s − p + ky·d, ox·s − p + kx·d]
            let plane = p.oh * p.ow;
            let pos = col % plane;
            let y0 = i32((pos / p.ow) * p.stride_h) - i32(p.pad_h);
            let x0 = i32((pos % p.ow) * p.stride_w) - i32(p.pad_w);
            return Column((col / plane) * p.c_in * p.h * p.w, y0, x0);
        }
        case BACKWARD_DATA: {
            // col = (n, u, v) of the phase: dy[n, ·, u + q_y − j·ostep_y, v + q_x − i·ostep_x]
            let plane = p.ph_h * p.ph_w;
            let pos = col % plane;
            let y0 = i32(pos / p.ph_w) + p.ph_y_q;
            let x0 = i32(pos % p.ph_w) + p.ph_x_q;
            return Column((col / plane) * p.c_out * p.oh * p.ow, y0, x0);
        }
        default: {
            // col = (ci, ky, kx): x[·, ci, oy·s − p + ky·d, ox·s − p + kx·d]
            let taps = p.kh * p.kw;
            let t = col % taps;
            let y0 = i32((t / p.kw) * p.dil_h) - i32(p.pad_h);
            let x0 = i32((t % p.kw) * p.dil_w) - i32(p.pad_w);
            return Column((col / taps) * p.h * p.w, y0, x0);
        }
    }
}

// x at (iy, ix) of the plane at `base`, 0 in the padding.
fn x_at(mode: u32, base: u32, iy: i32, ix: i32) -> f32 {
    if iy < 0 || ix < 0 || u32(iy) >= p.h || u32(ix) >= p.w {
        return 0.0;
    }
    let i = base + u32(iy) * p.w + u32(ix);
    // x is in0 in the forward and in1 in backward_weight.
    if mode == BACKWARD_WEIGHT {
        return in1[i];
    }
    return in0[i];
}

// B[kk, col] at kk's position `kp`, for the column `c`.
fn load_b(mode: u32, kp: KPos, c: Column) -> f32 {
    switch mode {
        case FORWARD: {
            // col[(ci, ky, kx), column]
            let iy = c.y0 + i32(kp.y * p.dil_h);
            let ix = c.x0 + i32(kp.x * p.dil_w);
            return x_at(mode, c.base + kp.outer * p.h * p.w, iy, ix);
        }
        case BACKWARD_DATA: {
            // dy'[(co, j, i), column] for the phase's tap (j, i)
            let oy = c.y0 - i32(kp.y * p.ph_y_ostep);
            let ox = c.x0 - i32(kp.x * p.ph_x_ostep);
            if oy < 0 || ox < 0 || u32(oy) >= p.oh || u32(ox) >= p.ow {
                return 0.0;
            }
            return in0[c.base + (kp.outer * p.oh + u32(oy)) * p.ow + u32(ox)];
        }
        default: {
            // colᵀ[(n, oy, ox), column]
            let iy = c.y0 + i32(kp.y * p.stride_h);
            let ix = c.x0 + i32(kp.x * p.stride_w);
            return x_at(mode, c.base + kp.outer * p.c_in * p.h * p.w, iy, ix);
        }
    }
}

// Where C[row, col] goes in the output tensor.
fn out_index(mode: u32, row: u32, col: u32) -> u32 {
    switch mode {
        case FORWARD: {
            let plane = p.oh * p.ow;
            return ((col / plane) * p.c_out + row) * plane + col % plane;
        }
        case BACKWARD_DATA: {
            // the phase's pixel (u, v) is (r_y + s·u, r_x + s·v)
            let plane = p.ph_h * p.ph_w;
            let pos = col % plane;
            let iy = p.ph_y_r + (pos / p.ph_w) * p.stride_h;
            let ix = p.ph_x_r + (pos % p.ph_w) * p.stride_w;
            return (((col / plane) * p.c_in + row) * p.h + iy) * p.w + ix;
        }
        default: {
            // A split K writes compact partials (see backward_weight_sum), else dW itself.
            if p.k_chunk < p.batch * p.oh * p.ow {
                return row * p.c_in * p.kh * p.kw + col;
            }
            return weight_grad_index(row, col);
        }
    }
}

// A[row, kk] at kk's position `kp`, 0 outside M × K (the tiles' zero fill).
fn fetch_a(mode: u32, row: u32, kk: u32, kp: KPos, m: u32, k_end: u32) -> f32 {
    if row < m && kk < k_end {
        return load_a(mode, row, kk, kp);
    }
    return 0.0;
}

// B[kk, column] at kk's position `kp`, 0 outside K × N (`col_ok`: the column is within N).
fn fetch_b(mode: u32, kk: u32, kp: KPos, col_ok: bool, c: Column, k_end: u32) -> f32 {
    if col_ok && kk < k_end {
        return load_b(mode, kp, c);
    }
    return 0.0;
}

// Rung 2, `forward_tiled16`, `backward_data_tiled16`, `backward_weight_tiled16`: the
// convolution as the GEMM above, one invocation per element of C, with matmul.wgsl's rung-2
// idea: a 16×16 workgroup computes a 16×16 block of C, and for every 16 steps of K each
// invocation stages one element of A and one of B in workgroup memory, so every element a
// workgroup reads from the operands is read once, not 16 times. The im2col is in the loads
// (`fetch_a`, `fetch_b`), which decompose each K position afresh (`k_pos`). No register
// block, no vec4 loads, no K split: the steps of the rung above.
var<workgroup> a_tile16: array<f32, 256>; // A[row0 + r, t + k] at r·16 + k
var<workgroup> b_tile16: array<f32, 256>; // B[t + k, col0 + c] at k·16 + c

fn conv_gemm_tiled16(mode: u32, wid: vec3<u32>, l3: vec3<u32>) {
    let dims = gemm_dims(mode);
    let row = wid.y * 16u + l3.y;
    let col = (p.first_column_tile + wid.x) * 16u + l3.x;
    let b_column = column(mode, col);
    var sum = 0.0;
    for (var t = 0u; t < dims.z; t += 16u) {
        let ka = t + l3.x;
        a_tile16[l3.y * 16u + l3.x] = fetch_a(mode, row, ka, k_pos(mode, ka), dims.x, dims.z);
        let kb = t + l3.y;
        b_tile16[l3.y * 16u + l3.x] = fetch_b(mode, kb, k_pos(mode, kb), col < dims.y, b_column, dims.z);
        workgroupBarrier();
        for (var k = 0u; k < 16u; k++) {
            sum = fma(a_tile16[l3.y * 16u + k], b_tile16[k * 16u + l3.x], sum);
        }
        workgroupBarrier();
    }
    if row < dims.x && col < dims.y {
        let i = out_index(mode, row, col);
        if p.has_bias != 0u && mode != BACKWARD_WEIGHT {
            sum += bias[row];
        }
        if p.accumulate != 0u {
            sum += out[i];
        }
        out[i] = activate(sum, p.relu);
    }
}

@compute @workgroup_size(16, 16)
fn forward_tiled16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l3: vec3<u32>) {
    conv_gemm_tiled16(FORWARD, wid, l3);
}

@compute @workgroup_size(16, 16)
fn backward_data_tiled16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l3: vec3<u32>) {
    conv_gemm_tiled16(BACKWARD_DATA, wid, l3);
}

@compute @workgroup_size(16, 16)
fn backward_weight_tiled16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l3: vec3<u32>) {
    conv_gemm_tiled16(BACKWARD_WEIGHT, wid, l3);
}

fn conv_gemm(mode: u32, wid: vec3<u32>, l3: vec3<u32>, lid: u32) {
    let dims = gemm_dims(mode);
    let m = dims.x;
    let n = dims.y;
    let k = dims.z;
    let row0 = wid.y * BM;
    let col0 = (p.first_column_tile + wid.x) * BN;
    // This workgroup's slice of K (all of it, except in a split backward_weight).
    let k_begin = wid.z * p.k_chunk;
    let k_end = min(k, k_begin + p.k_chunk);
    let tx = l3.x;
    let ty = l3.y;
    // acc_i[j] = C[row0 + 4·ty + i, col0 + 4·tx + j]
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    // The B column this invocation stages in every k-step (256 invocations, 64 columns).
    let cc = lid % BN;
    let b_column = column(mode, col0 + cc);
    let col_ok = col0 + cc < n;
    // The K positions this invocation stages: one of A (k offset lid % 16, rows lid / 16 + 16·q)
    // and four of B (k offsets lid / 64 + 4·q), stepped by BK after each k-step.
    let step = k_pos(mode, BK);
    var ka = k_begin + lid % BK;
    var kpa = k_pos(mode, ka);
    var kb = k_begin + lid / BN;
    var kpb0 = k_pos(mode, kb);
    var kpb1 = k_pos(mode, kb + 4u);
    var kpb2 = k_pos(mode, kb + 8u);
    var kpb3 = k_pos(mode, kb + 12u);
    for (var t = k_begin; t < k_end; t += BK) {
        for (var q = 0u; q < 4u; q++) {
            let r = lid / BK + 16u * q;
            a_tile[(lid % BK) * AP4 + r / 4u][r % 4u] = fetch_a(mode, row0 + r, ka, kpa, m, k_end);
        }
        let b_at = lid / BN * 16u + cc / 4u;
        b_tile[b_at][cc % 4u] = fetch_b(mode, kb, kpb0, col_ok, b_column, k_end);
        b_tile[b_at + 64u][cc % 4u] = fetch_b(mode, kb + 4u, kpb1, col_ok, b_column, k_end);
        b_tile[b_at + 128u][cc % 4u] = fetch_b(mode, kb + 8u, kpb2, col_ok, b_column, k_end);
        b_tile[b_at + 192u][cc % 4u] = fetch_b(mode, kb + 12u, kpb3, col_ok, b_column, k_end);
        ka += BK;
        kpa = k_advance(mode, kpa, step);
        kb += BK;
        kpb0 = k_advance(mode, kpb0, step);
        kpb1 = k_advance(mode, kpb1, step);
        kpb2 = k_advance(mode, kpb2, step);
        kpb3 = k_advance(mode, kpb3, step);
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let av = a_tile[kk * AP4 + ty];
            let bv = b_tile[kk * 16u + tx];
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }
    // A split K writes slice z's partial at z·M·N (wid.z is 0 otherwise).
    store_block(mode, vec2<u32>(row0 + 4u * ty, col0 + 4u * tx), array<vec4<f32>, 4>(acc0, acc1, acc2, acc3),
                vec2<u32>(m, n), wid.z * m * n);
}

// Writes one invocation's 4×4 block of C, whose corner is C[at.x, at.y], to the output (plus
// bias, plus the old value when accumulating, then the ReLU when the launch has one),
// skipping what lies beyond [M, N] = mn.
fn store_block(mode: u32, at: vec2<u32>, acc: array<vec4<f32>, 4>, mn: vec2<u32>, offset: u32) {
    for (var i = 0u; i < 4u; i++) {
        let gr = at.x + i;
        if gr >= mn.x {
            break;
        }
        var bias_v = 0.0;
        if p.has_bias != 0u && mode != BACKWARD_WEIGHT {
            bias_v = bias[gr];
        }
        for (var j = 0u; j < 4u; j++) {
            let gc = at.y + j;
            if gc < mn.y {
                let idx = out_index(mode, gr, gc) + offset;
                var v = acc[i][j] + bias_v;
                if p.accumulate != 0u {
                    v += out[idx];
                }
                out[idx] = activate(v, p.relu);
            }
        }
    }
}

// The same GEMM for an M below 64 (a layer with 32 channels, such as the last upsampling of a
// DCGAN-style decoder, or the data gradient of a network's first layer): a 64-row tile would
// leave 64 − M of its rows idle, so this variant's tile is 32 rows by 128 columns (invocation
// (ty, tx) = (lid / 32, lid % 32) holds the 4×4 block at rows 4·ty, columns 4·tx). Per k-step
// of 16 an invocation stages 2 A and 8 B elements for 256 multiply-adds (the square tile: 8
// for 256; a 16×256 tile, used before, staged 8.5 for 128 and ran at half the square tile's
// rate on every layer measured).
fn conv_gemm_narrow(mode: u32, wid: vec3<u32>, lid: u32) {
    let dims = gemm_dims(mode);
    let m = dims.x;
    let n = dims.y;
    let k = dims.z;
    let row0 = wid.y * NARROW_BM;
    let col0 = (p.first_column_tile + wid.x) * NARROW_BN;
    let ty = lid / 32u;
    let tx = lid % 32u;
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    // The B column this invocation stages in every k-step (256 invocations, 128 columns: two
    // invocations per column, each staging every other k).
    let cc = lid % NARROW_BN;
    let b_column = column(mode, col0 + cc);
    for (var t = 0u; t < k; t += NARROW_BK) {
        for (var q = 0u; q < 2u; q++) {
            let e = lid + 256u * q;
            let r = e % NARROW_BM;
            let kk = e / NARROW_BM;
            narrow_a_tile[kk * 8u + r / 4u][r % 4u] = fetch_a(mode, row0 + r, t + kk, k_pos(mode, t + kk), m, k);
        }
        for (var q = 0u; q < 8u; q++) {
            let kk = lid / NARROW_BN + 2u * q;
            let v = fetch_b(mode, t + kk, k_pos(mode, t + kk), col0 + cc < n, b_column, k);
            narrow_b_tile[kk * 32u + cc / 4u][cc % 4u] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < NARROW_BK; kk++) {
            let av = narrow_a_tile[kk * 8u + ty];
            let bv = narrow_b_tile[kk * 32u + tx];
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }
    store_block(mode, vec2<u32>(row0 + 4u * ty, col0 + 4u * tx), array<vec4<f32>, 4>(acc0, acc1, acc2, acc3),
                vec2<u32>(m, n), 0u);
}

// The same GEMM for large M and N (128 or more channels): matmul.wgsl's wide tiling, a 128×128
// tile per workgroup with an 8×8 register block per invocation (rows 4·ty.. and 64 + 4·ty..,
// columns 4·tx.. and 64 + 4·tx..), k-steps of 8 in two alternating workgroup buffers, the next
// step's elements fetched into registers before the current step's multiply-adds. A is staged
// along k (weights and dy are contiguous in k; eight neighbours read one row's eight k) and B
// with each invocation keeping one column (lid % 128) for every k-step, so the column's
// divisions happen once, as in conv_gemm. Accumulators are named variables (an array indexed
// in a loop may live in off-chip memory on some drivers).
const WIDE: u32 = 128u;
const WIDE_K: u32 = 8u;
var<workgroup> wide_a: array<vec4<f32>, 512>; // [2][WIDE_K][WIDE/4], rows packed by 4
var<workgroup> wide_b: array<vec4<f32>, 512>; // [2][WIDE_K][WIDE/4], columns packed by 4

// Stores element q of the fetched A and B into staging buffer `buf`.
fn wide_stage(lid: u32, q: u32, buf: u32, va: f32, vb: f32) {
    let e = lid + 256u * q;
    let r = e / WIDE_K;
    wide_a[buf * 256u + (e % WIDE_K) * 32u + r / 4u][r % 4u] = va;
    let cc = lid % WIDE;
    wide_b[buf * 256u + (lid / WIDE + 2u * q) * 32u + cc / 4u][cc % 4u] = vb;
}

fn conv_gemm_wide(mode: u32, wid: vec3<u32>, l3: vec3<u32>, lid: u32) {
    let dims = gemm_dims(mode);
    let m = dims.x;
    let n = dims.y;
    let k = dims.z;
    let row0 = wid.y * WIDE;
    let col0 = (p.first_column_tile + wid.x) * WIDE;
    let k_begin = wid.z * p.k_chunk;
    let k_end = min(k, k_begin + p.k_chunk);
    let tx = l3.x;
    let ty = l3.y;
    let col_ok = col0 + lid % WIDE < n;
    let b_column = column(mode, col0 + lid % WIDE);
    // The K positions this invocation fetches next: one of A (k offset lid % 8, rows
    // lid / 8 + 32·q) and four of B (k offsets lid / 128 + 2·q), stepped by WIDE_K.
    let step = k_pos(mode, WIDE_K);
    let ar = row0 + lid / WIDE_K;
    var ka = k_begin + lid % WIDE_K;
    var kpa = k_pos(mode, ka);
    var kb = k_begin + lid / WIDE;
    var kpb0 = k_pos(mode, kb);
    var kpb1 = k_pos(mode, kb + 2u);
    var kpb2 = k_pos(mode, kb + 4u);
    var kpb3 = k_pos(mode, kb + 6u);

    wide_stage(lid, 0u, 0u, fetch_a(mode, ar, ka, kpa, m, k_end),
               fetch_b(mode, kb, kpb0, col_ok, b_column, k_end));
    wide_stage(lid, 1u, 0u, fetch_a(mode, ar + 32u, ka, kpa, m, k_end),
               fetch_b(mode, kb + 2u, kpb1, col_ok, b_column, k_end));
    wide_stage(lid, 2u, 0u, fetch_a(mode, ar + 64u, ka, kpa, m, k_end),
               fetch_b(mode, kb + 4u, kpb2, col_ok, b_column, k_end));
    wide_stage(lid, 3u, 0u, fetch_a(mode, ar + 96u, ka, kpa, m, k_end),
               fetch_b(mode, kb + 6u, kpb3, col_ok, b_column, k_end));
    workgroupBarrier();

    var acc0l = vec4<f32>();
    var acc0r = vec4<f32>();
    var acc1l = vec4<f32>();
    var acc1r = vec4<f32>();
    var acc2l = vec4<f32>();
    var acc2r = vec4<f32>();
    var acc3l = vec4<f32>();
    var acc3r = vec4<f32>();
    var acc4l = vec4<f32>();
    var acc4r = vec4<f32>();
    var acc5l = vec4<f32>();
    var acc5r = vec4<f32>();
    var acc6l = vec4<f32>();
    var acc6r = vec4<f32>();
    var acc7l = vec4<f32>();
    var acc7r = vec4<f32>();
    var cur = 0u;
    for (var t = k_begin; t < k_end; t += WIDE_K) {
        let t_next = t + WIDE_K;
        let more = t_next < k_end;
        var na0 = 0.0;
        var na1 = 0.0;
        var na2 = 0.0;
        var na3 = 0.0;
        var nb0 = 0.0;
        var nb1 = 0.0;
        var nb2 = 0.0;
        var nb3 = 0.0;
        if more {
            ka += WIDE_K;
            kpa = k_advance(mode, kpa, step);
            kb += WIDE_K;
            kpb0 = k_advance(mode, kpb0, step);
            kpb1 = k_advance(mode, kpb1, step);
            kpb2 = k_advance(mode, kpb2, step);
            kpb3 = k_advance(mode, kpb3, step);
            na0 = fetch_a(mode, ar, ka, kpa, m, k_end);
            na1 = fetch_a(mode, ar + 32u, ka, kpa, m, k_end);
            na2 = fetch_a(mode, ar + 64u, ka, kpa, m, k_end);
            na3 = fetch_a(mode, ar + 96u, ka, kpa, m, k_end);
            nb0 = fetch_b(mode, kb, kpb0, col_ok, b_column, k_end);
            nb1 = fetch_b(mode, kb + 2u, kpb1, col_ok, b_column, k_end);
            nb2 = fetch_b(mode, kb + 4u, kpb2, col_ok, b_column, k_end);
            nb3 = fetch_b(mode, kb + 6u, kpb3, col_ok, b_column, k_end);
        }
        let base = cur * 256u;
        for (var kk = 0u; kk < WIDE_K; kk++) {
            let a_lo = wide_a[base + kk * 32u + ty];
            let a_hi = wide_a[base + kk * 32u + 16u + ty];
            let b_lo = wide_b[base + kk * 32u + tx];
            let b_hi = wide_b[base + kk * 32u + 16u + tx];
            acc0l = fma(vec4<f32>(a_lo.x), b_lo, acc0l);
            acc0r = fma(vec4<f32>(a_lo.x), b_hi, acc0r);
            acc1l = fma(vec4<f32>(a_lo.y), b_lo, acc1l);
            acc1r = fma(vec4<f32>(a_lo.y), b_hi, acc1r);
            acc2l = fma(vec4<f32>(a_lo.z), b_lo, acc2l);
            acc2r = fma(vec4<f32>(a_lo.z), b_hi, acc2r);
            acc3l = fma(vec4<f32>(a_lo.w), b_lo, acc3l);
            acc3r = fma(vec4<f32>(a_lo.w), b_hi, acc3r);
            acc4l = fma(vec4<f32>(a_hi.x), b_lo, acc4l);
            acc4r = fma(vec4<f32>(a_hi.x), b_hi, acc4r);
            acc5l = fma(vec4<f32>(a_hi.y), b_lo, acc5l);
            acc5r = fma(vec4<f32>(a_hi.y), b_hi, acc5r);
            acc6l = fma(vec4<f32>(a_hi.z), b_lo, acc6l);
            acc6r = fma(vec4<f32>(a_hi.z), b_hi, acc6r);
            acc7l = fma(vec4<f32>(a_hi.w), b_lo, acc7l);
            acc7r = fma(vec4<f32>(a_hi.w), b_hi, acc7r);
        }
        if more {
            let next = 1u - cur;
            wide_stage(lid, 0u, next, na0, nb0);
            wide_stage(lid, 1u, next, na1, nb1);
            wide_stage(lid, 2u, next, na2, nb2);
            wide_stage(lid, 3u, next, na3, nb3);
        }
        workgroupBarrier();
        cur = 1u - cur;
    }
    // Four 4×4 blocks; a split K writes slice z's partial at z·M·N.
    let mn = vec2<u32>(m, n);
    let offset = wid.z * m * n;
    let r = row0 + 4u * ty;
    let c = col0 + 4u * tx;
    store_block(mode, vec2<u32>(r, c), array<vec4<f32>, 4>(acc0l, acc1l, acc2l, acc3l), mn, offset);
    store_block(mode, vec2<u32>(r, c + 64u), array<vec4<f32>, 4>(acc0r, acc1r, acc2r, acc3r), mn, offset);
    store_block(mode, vec2<u32>(r + 64u, c), array<vec4<f32>, 4>(acc4l, acc5l, acc6l, acc7l), mn, offset);
    store_block(mode, vec2<u32>(r + 64u, c + 64u), array<vec4<f32>, 4>(acc4r, acc5r, acc6r, acc7r), mn, offset);
}

@compute @workgroup_size(16, 16)
fn forward_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l3: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    conv_gemm_wide(FORWARD, wid, l3, lid);
}

@compute @workgroup_size(16, 16)
fn backward_data_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l3: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    conv_gemm_wide(BACKWARD_DATA, wid, l3, lid);
}

@compute @workgroup_size(16, 16)
fn backward_weight_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l3: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    conv_gemm_wide(BACKWARD_WEIGHT, wid, l3, lid);
}

@compute @workgroup_size(16, 16)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l3: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    conv_gemm(FORWARD, wid, l3, lid);
}

// The same GEMM for an M of at most 4 (3 colour channels): THIN_COLS columns of C (output
// pixels) per invocation, all of a column's M ≤ 4 rows in one vec4, no workgroup memory and
// no barriers. Staging B in a tile pays when many rows share each staged element; here each
// serves at most 4 rows. So every invocation walks the taps as nested loops (no index division
// per element), loads a tap's M weights once for its THIN_COLS pixels (the weights, a few KiB
// read by every invocation, come through the cache), and the pixels' values are its own.
const THIN_COLS: u32 = 4u; // conv_gemm_thin's four named columns

// Tap (ky, kx)'s M ≤ 4 weights of the forward, W[r, ci, ky, kx], or of the backward-data,
// W[co, r, ky, kx]: one per component, 0 beyond M.
fn thin_weights(mode: u32, m: u32, c: u32, ky: u32, kx: u32) -> vec4<f32> {
    var wv = vec4<f32>();
    for (var r = 0u; r < m; r++) {
        if mode == FORWARD {
            wv[r] = in1[weight_index(r, c, ky, kx)];
        } else {
            wv[r] = in1[weight_index(c, r, ky, kx)];
        }
    }
    return wv;
}

// acc + wv · x[ci, y0 + ky·d, x0 + kx·d] for one output pixel (column `c`) of the forward;
// `plane` is channel ci's offset.
fn thin_forward_tap(acc: vec4<f32>, wv: vec4<f32>, c: Column, plane: u32, ky: u32, kx: u32) -> vec4<f32> {
    let iy = c.y0 + i32(ky * p.dil_h);
    let ix = c.x0 + i32(kx * p.dil_w);
    return fma(wv, vec4(x_at(FORWARD, c.base + plane, iy, ix)), acc);
}

// acc + wv · dy[co, y0 − j·ostep, x0 − i·ostep] for one phase pixel (column `c`) of the
// backward-data, the phase's tap (j, i); nothing when that output lies outside dy.
fn thin_backward_tap(acc: vec4<f32>, wv: vec4<f32>, c: Column, plane: u32, j: u32, i: u32) -> vec4<f32> {
    let oy = c.y0 - i32(j * p.ph_y_ostep);
    let ox = c.x0 - i32(i * p.ph_x_ostep);
    if oy < 0 || ox < 0 || u32(oy) >= p.oh || u32(ox) >= p.ow {
        return acc;
    }
    return fma(wv, vec4(in0[c.base + plane + u32(oy) * p.ow + u32(ox)]), acc);
}

// Writes column `col`'s M ≤ 4 values: a block of one column, row i's value in component 0,
// and C's width cut to col + 1 so store_block writes that column only.
fn thin_store(mode: u32, m: u32, n: u32, col: u32, a: vec4<f32>) {
    if col < n {
        store_block(mode, vec2<u32>(0u, col), array<vec4<f32>, 4>(vec4(a.x), vec4(a.y), vec4(a.z), vec4(a.w)),
                    vec2<u32>(m, col + 1u), 0u);
    }
}

// The four columns and accumulators are named variables, not arrays: arrays indexed in a
// loop may live in off-chip memory on some drivers (the wide matmul ran 13 times slower so on
// an H100).
fn conv_gemm_thin(mode: u32, first_col: u32) {
    let dims = gemm_dims(mode);
    let m = dims.x;
    let n = dims.y;
    if first_col >= n {
        return;
    }
    // Columns past N repeat the last one: computed, never stored.
    let c0 = column(mode, first_col);
    let c1 = column(mode, min(first_col + 1u, n - 1u));
    let c2 = column(mode, min(first_col + 2u, n - 1u));
    let c3 = column(mode, min(first_col + 3u, n - 1u));
    // acc_j[r] = C[r, first_col + j]
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    if mode == FORWARD {
        // y[r, pixel] = Σ_{ci, ky, kx} W[r, ci, ky, kx] · x[ci, y0 + ky·d, x0 + kx·d]
        for (var ci = 0u; ci < p.c_in; ci++) {
            let plane = ci * p.h * p.w;
            for (var ky = 0u; ky < p.kh; ky++) {
                for (var kx = 0u; kx < p.kw; kx++) {
                    let wv = thin_weights(mode, m, ci, ky, kx);
                    acc0 = thin_forward_tap(acc0, wv, c0, plane, ky, kx);
                    acc1 = thin_forward_tap(acc1, wv, c1, plane, ky, kx);
                    acc2 = thin_forward_tap(acc2, wv, c2, plane, ky, kx);
                    acc3 = thin_forward_tap(acc3, wv, c3, plane, ky, kx);
                }
            }
        }
    } else {
        // dx[r, phase pixel] = Σ_{co, j, i} W[co, r, tap (j, i)] · dy[co, y0 − j·ostep, x0 − i·ostep]
        for (var co = 0u; co < p.c_out; co++) {
            let plane = co * p.oh * p.ow;
            for (var j = 0u; j < p.ph_y_taps; j++) {
                for (var i = 0u; i < p.ph_x_taps; i++) {
                    let wv = thin_weights(mode, m, co, p.ph_y_t0 + j * p.ph_y_tstep, p.ph_x_t0 + i * p.ph_x_tstep);
                    acc0 = thin_backward_tap(acc0, wv, c0, plane, j, i);
                    acc1 = thin_backward_tap(acc1, wv, c1, plane, j, i);
                    acc2 = thin_backward_tap(acc2, wv, c2, plane, j, i);
                    acc3 = thin_backward_tap(acc3, wv, c3, plane, j, i);
                }
            }
        }
    }
    thin_store(mode, m, n, first_col, acc0);
    thin_store(mode, m, n, first_col + 1u, acc1);
    thin_store(mode, m, n, first_col + 2u, acc2);
    thin_store(mode, m, n, first_col + 3u, acc3);
}

@compute @workgroup_size(256)
fn forward_thin(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    conv_gemm_thin(FORWARD, linear_id(wid, nwg, lid) * THIN_COLS);
}

@compute @workgroup_size(256)
fn backward_data_thin(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    conv_gemm_thin(BACKWARD_DATA, linear_id(wid, nwg, lid) * THIN_COLS);
}

@compute @workgroup_size(256)
fn forward_narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    conv_gemm_narrow(FORWARD, wid, lid);
}

@compute @workgroup_size(256)
fn backward_data_narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    conv_gemm_narrow(BACKWARD_DATA, wid, lid);
}

@compute @workgroup_size(16, 16)
fn backward_data(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l3: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    conv_gemm(BACKWARD_DATA, wid, l3, lid);
}

@compute @workgroup_size(16, 16)
fn backward_weight(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(local_invocation_id) l3: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    conv_gemm(BACKWARD_WEIGHT, wid, l3, lid);
}

// dW[i] (+)= Σ_z partial[z, i] over backward_weight's K slices, in order.
@compute @workgroup_size(256)
fn backward_weight_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let n = p.c_in * p.kh * p.kw;
    let len = p.c_out * n;
    let i = linear_id(wid, nwg, lid);
    if i >= len {
        return;
    }
    let k = p.batch * p.oh * p.ow;
    let slices = (k + p.k_chunk - 1u) / p.k_chunk;
    var v = 0.0;
    for (var z = 0u; z < slices; z++) {
        v += small_in[z * len + i];
    }
    let out_i = weight_grad_index(i / n, i % n);
    if p.accumulate != 0u {
        v += small_out[out_i];
    }
    small_out[out_i] = v;
}

// The forward's y, or a stride-1 backward_data's dx, as the sum of the K slices' partials
// (in0 = [slices][the output's M·N elements], in its own layout), plus the bias and the old
// output as the launch asks: a GEMM with few output tiles splits its K like backward_weight
// (see split_k in conv2d.rs), and its slices are added here in order.
fn sum_k_slices(mode: u32, i: u32) {
    let dims = gemm_dims(mode);
    let len = dims.x * dims.y;
    if i >= len {
        return;
    }
    let slices = (dims.z + p.k_chunk - 1u) / p.k_chunk;
    var v = 0.0;
    for (var z = 0u; z < slices; z++) {
        v += in0[z * len + i];
    }
    if p.has_bias != 0u {
        // i = ((n·channels + c)·plane + pos), channels = M
        var plane = p.oh * p.ow;
        if mode == BACKWARD_DATA {
            plane = p.h * p.w;
        }
        v += bias[(i / plane) % dims.x];
    }
    if p.accumulate != 0u {
        v += out[i];
    }
    out[i] = activate(v, p.relu);
}

@compute @workgroup_size(256)
fn forward_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    sum_k_slices(FORWARD, linear_id(wid, nwg, lid));
}

@compute @workgroup_size(256)
fn backward_data_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    sum_k_slices(BACKWARD_DATA, linear_id(wid, nwg, lid));
}

// db[co] (+)= Σ_{n, pos} dy[n, co, pos]: one workgroup per channel, tree-reduced.
@compute @workgroup_size(256)
fn backward_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let co = workgroup_index(wid, nwg);
    if co >= p.c_out {
        return;
    }
    let plane = p.oh * p.ow;
    var s = 0.0;
    for (var j = lid; j < p.batch * plane; j += WG) {
        s += small_in[((j / plane) * p.c_out + co) * plane + j % plane];
    }
    red[lid] = s;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if lid < half {
            red[lid] += red[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        var v = red[0];
        if p.accumulate != 0u {
            v += small_out[co];
        }
        small_out[co] = v;
    }
}
