// interpolate.wgsl — 2-D upsampling by integer factors (f32): nearest and bilinear
// (align_corners = false), forward and backward.
// Memory layout: P = N·C independent planes; x [P, H, W] and y [P, OH, OW] dense row-major
// with OH = H·sh and OW = W·sw.
// Math (PyTorch's, scale_factor given, align_corners = false), per axis of input length n
// and factor s, for output index o:
//   nearest   src = ⌊o / s⌋
//   bilinear  src = max((o + 0.5)·(1/s) − 0.5, 0), i0 = min(⌊src⌋, n − 1),
//             i1 = min(i0 + 1, n − 1), l1 = clamp(src − i0, 0, 1), l0 = 1 − l1
//             y[oy, ox] = r.l0·(c.l0·x[r.i0, c.i0] + c.l1·x[r.i0, c.i1])
//                       + r.l1·(c.l0·x[r.i1, c.i0] + c.l1·x[r.i1, c.i1])   (r: rows, c: columns)
// Backwards are the adjoints in gather form, one invocation per input pixel, so nothing
// races and no float atomics are needed:
//   nearest   dx[iy, ix] = Σ_{a<sh, b<sw} dy[iy·sh + a, ix·sw + b]
//   bilinear  dx[iy, ix] = Σ_{oy, ox} wr(oy, iy)·wc(ox, ix)·dy[oy, ox], where w(o, i) is the
//             weight output o gives input i (l0 if i0 = i, plus l1 if i1 = i; both at the
//             far edge, where i0 = i1). Only outputs with src ∈ [i − 1, i + 1] can touch i,
//             i.e. o ∈ [s·(i − 0.5) − 0.5, s·(i + 1.5) − 0.5], widened by one each side and
//             clamped to [0, n·s); the weights are recomputed with the forward's formula.

struct Params {
    planes: u32,
    h: u32,
    w: u32,
    sh: u32,
    sw: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

// An element of a [P, rows, columns] tensor: its index and where it lies.
struct Pixel {
    index: u32,
    plane: u32,
    row: u32,
    column: u32,
}

// Where element i of a dense [P, rows, columns] tensor lies; an i past the end lands in a
// plane ≥ P, which is how each entry point knows its invocation has nothing to do.
fn pixel(i: u32, rows: u32, columns: u32) -> Pixel {
    return Pixel(i, i / (rows * columns), (i / columns) % rows, i % columns);
}

// Where element i of the output y [P, H·sh, W·sw] lies, and back.
fn output_pixel(i: u32) -> Pixel {
    return pixel(i, p.h * p.sh, p.w * p.sw);
}

fn output_index(plane: u32, row: u32, column: u32) -> u32 {
    return (plane * p.h * p.sh + row) * p.w * p.sw + column;
}

struct Tap {
    i0: u32,
    i1: u32,
    l0: f32,
    l1: f32,
}

fn tap(o: u32, n: u32, s: u32) -> Tap {
    let ratio = 1.0 / f32(s);
    let x = max(ratio * (f32(o) + 0.5) - 0.5, 0.0);
    let i0 = min(u32(floor(x)), n - 1u);
    let i1 = min(i0 + 1u, n - 1u);
    let l1 = clamp(x - f32(i0), 0.0, 1.0);
    return Tap(i0, i1, 1.0 - l1, l1);
}

// Weight output o gives input i along one axis.
fn weight(o: u32, i: u32, n: u32, s: u32) -> f32 {
    let t = tap(o, n, s);
    return select(0.0, t.l0, t.i0 == i) + select(0.0, t.l1, t.i1 == i);
}

// x: [P, H, W] → y: [P, H·sh, W·sw], one invocation per output
@compute @workgroup_size(256)
fn nearest_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let o = output_pixel(linear_id(wid, nwg, lid));
    if o.plane >= p.planes {
        return;
    }
    dst[o.index] = src[(o.plane * p.h + o.row / p.sh) * p.w + o.column / p.sw];
}

// dy: [P, H·sh, W·sw] → dx: [P, H, W], one invocation per input
@compute @workgroup_size(256)
fn nearest_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let x = pixel(linear_id(wid, nwg, lid), p.h, p.w);
    if x.plane >= p.planes {
        return;
    }
    var s = 0.0;
    for (var a = 0u; a < p.sh; a++) {
        for (var b = 0u; b < p.sw; b++) {
            s += src[output_index(x.plane, x.row * p.sh + a, x.column * p.sw + b)];
        }
    }
    dst[x.index] = s;
}

// x: [P, H, W] → y: [P, H·sh, W·sw], one invocation per output
@compute @workgroup_size(256)
fn bilinear_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let o = output_pixel(linear_id(wid, nwg, lid));
    if o.plane >= p.planes {
        return;
    }
    let r = tap(o.row, p.h, p.sh);
    let c = tap(o.column, p.w, p.sw);
    let base = o.plane * p.h * p.w;
    let top = c.l0 * src[base + r.i0 * p.w + c.i0] + c.l1 * src[base + r.i0 * p.w + c.i1];
    let bottom = c.l0 * src[base + r.i1 * p.w + c.i0] + c.l1 * src[base + r.i1 * p.w + c.i1];
    dst[o.index] = r.l0 * top + r.l1 * bottom;
}

// Output range [lo, hi) along one axis that can touch input i.
fn out_range(i: u32, n: u32, s: u32) -> vec2<u32> {
    let lo = i32(floor(f32(s) * (f32(i) - 0.5) - 0.5)) - 1;
    let hi = i32(ceil(f32(s) * (f32(i) + 1.5) - 0.5)) + 2;
    return vec2<u32>(u32(max(lo, 0)), u32(min(hi, i32(n * s))));
}

// dy: [P, H·sh, W·sw] → dx: [P, H, W], one invocation per input
@compute @workgroup_size(256)
fn bilinear_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let x = pixel(linear_id(wid, nwg, lid), p.h, p.w);
    if x.plane >= p.planes {
        return;
    }
    let rows = out_range(x.row, p.h, p.sh);
    let cols = out_range(x.column, p.w, p.sw);
    var s = 0.0;
    for (var oy = rows.x; oy < rows.y; oy++) {
        let wr = weight(oy, x.row, p.h, p.sh);
        if wr == 0.0 {
            continue;
        }
        var row = 0.0;
        for (var ox = cols.x; ox < cols.y; ox++) {
            row += weight(ox, x.column, p.w, p.sw) * src[output_index(x.plane, oy, ox)];
        }
        s += wr * row;
    }
    dst[x.index] = s;
}
