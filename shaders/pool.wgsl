// pool.wgsl — 2-D pooling over P = N·C independent planes (f32), PyTorch's semantics with
// ceil_mode = false and dilation 1: max pool (with argmax indices), average pool
// (count_include_pad = true) and global average pool, forwards and backwards.
//
// Memory layout: x [P, H, W], y [P, OH, OW], dense row-major, OH = ⌊(H + 2·ph − kh)/sh⌋ + 1
// (likewise OW; the host passes both). Max-pool indices are u32 in their own buffer,
// [P, OH, OW], each the plane-relative flat index iy·W + ix of the chosen input (PyTorch's
// return_indices convention).
//
// Math. Output (oy, ox) pools the window rows oy·sh − ph + [0, kh), columns likewise.
//   max_forward      y = max over the in-bounds window elements (padding is −∞); ties keep
//                    the first maximum in row-major order; a NaN wins.
//   max_backward     dx[i] = Σ_{o : idx[o] = i} dy[o], gathered per input pixel: the outputs
//                    whose window covers (iy, ix) are oy = (iy + ph − ky)/sh for each ky < kh
//                    where that divides exactly (likewise ox), each checked against idx.
//   avg_forward      y = Σ window / ((hend − hstart)·(wend − wstart)) with
//                    hend = min(hstart + kh, H + ph): the window counting padding (= kh·kw
//                    under ceil_mode = false).
//   avg_backward     dx[iy, ix] = Σ over the covering outputs (as above) of dy[o] / divisor(o).
//   (global average pooling's forward is a mean over each plane: reduce.wgsl computes it)
//   global_backward  dx[p, i] = dy[p] / (H·W).
// Every backward is a gather, one invocation per input pixel: no races, no float atomics.

struct Params {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// max_forward: x → y, idx
@group(0) @binding(1) var<storage, read> mf_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> mf_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> mf_idx: array<u32>;

// max_backward: dy, idx → dx
@group(0) @binding(1) var<storage, read> mb_dy: array<f32>;
@group(0) @binding(2) var<storage, read> mb_idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> mb_dx: array<f32>;

// avg_*, global_*: src → dst
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

var<workgroup> red: array<f32, 256>;

// In-bounds window [lo, hi) of output o along one axis, and the padded length (divisor).
fn window(o: u32, k: u32, s: u32, pad: u32, n: u32) -> vec3<u32> {
    let start = i32(o * s) - i32(pad);
    let end = min(start + i32(k), i32(n + pad));
    return vec3<u32>(u32(max(start, 0)), u32(min(end, i32(n))), u32(end - start));
}

// No output: what the covering search returns when a tap lands on none.
const NONE: u32 = 0xffffffffu;

// Output index along one axis whose window tap t covers input i, or NONE.
fn covering(i: u32, t: u32, s: u32, pad: u32, n_out: u32) -> u32 {
    let num = i32(i + pad) - i32(t);
    if num < 0 || u32(num) % s != 0u {
        return NONE;
    }
    let o = u32(num) / s;
    return select(NONE, o, o < n_out);
}

// Output (oy, ox) whose window's tap t = ky·kw + kx covers input (iy, ix); NONE in both
// when there is none. Walking t = 0..kh·kw visits the covering outputs in row-major tap order.
fn covering_output(iy: u32, ix: u32, t: u32) -> vec2<u32> {
    let oy = covering(iy, t / p.kw, p.sh, p.ph, p.oh);
    let ox = covering(ix, t % p.kw, p.sw, p.pw, p.ow);
    return select(vec2<u32>(oy, ox), vec2<u32>(NONE, NONE), oy == NONE || ox == NONE);
}


// x: [P, H, W] → y, idx: [P, OH, OW]
@compute @workgroup_size(256)
fn max_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.planes * p.oh * p.ow {
        return;
    }
    let pl = i / (p.oh * p.ow);
    let r = window((i / p.ow) % p.oh, p.kh, p.sh, p.ph, p.h);
    let c = window(i % p.ow, p.kw, p.sw, p.pw, p.w);
    let base = pl * p.h * p.w;
    var best = bitcast<f32>(0xff800000u); // −∞
    var arg = r.x * p.w + c.x;
    for (var iy = r.x; iy < r.y; iy++) {
        for (var ix = c.x; ix < c.y; ix++) {
            let v = mf_x[base + iy * p.w + ix];
            if v > best || is_nan(v) {
                best = v;
                arg = iy * p.w + ix;
            }
        }
    }
    mf_y[i] = best;
    mf_idx[i] = arg;
}

// dy, idx: [P, OH, OW] → dx: [P, H, W]
@compute @workgroup_size(256)
fn max_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.planes * p.h * p.w {
        return;
    }
    let pl = i / (p.h * p.w);
    let flat = i % (p.h * p.w);
    let iy = flat / p.w;
    let ix = flat % p.w;
    var s = 0.0;
    for (var t = 0u; t < p.kh * p.kw; t++) {
        let out = covering_output(iy, ix, t);
        if out.x == NONE {
            continue;
        }
        let o = (pl * p.oh + out.x) * p.ow + out.y;
        if mb_idx[o] == flat {
            s += mb_dy[o];
        }
    }
    mb_dx[i] = s;
}

// x: [P, H, W] → y: [P, OH, OW]
@compute @workgroup_size(256)
fn avg_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.planes * p.oh * p.ow {
        return;
    }
    let pl = i / (p.oh * p.ow);
    let r = window((i / p.ow) % p.oh, p.kh, p.sh, p.ph, p.h);
    let c = window(i % p.ow, p.kw, p.sw, p.pw, p.w);
    let base = pl * p.h * p.w;
    var s = 0.0;
    for (var iy = r.x; iy < r.y; iy++) {
        for (var ix = c.x; ix < c.y; ix++) {
            s += src[base + iy * p.w + ix];
        }
    }
    dst[i] = s / f32(r.z * c.z);
}

// dy: [P, OH, OW] → dx: [P, H, W]
@compute @workgroup_size(256)
fn avg_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if i >= p.planes * p.h * p.w {
        return;
    }
    let pl = i / (p.h * p.w);
    let iy = (i / p.w) % p.h;
    let ix = i % p.w;
    var s = 0.0;
    for (var t = 0u; t < p.kh * p.kw; t++) {
        let out = covering_output(iy, ix, t);
        if out.x != NONE {
            let divisor = window(out.x, p.kh, p.sh, p.ph, p.h).z * window(out.y, p.kw, p.sw, p.pw, p.w).z;
            s += src[(pl * p.oh + out.x) * p.ow + out.y] / f32(divisor);
        }
    }
    dst[i] = s;
}

// dy: [P] → dx: [P, H·W]
@compute @workgroup_size(256)
fn global_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    let n = p.h * p.w;
    if i >= p.planes * n {
        return;
    }
    dst[i] = src[i / n] / f32(n);
}
