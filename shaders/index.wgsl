// index.wgsl — row selection along one axis (f32 data, u32 indices): index_select and its
// adjoint index_add, both as gathers so no two invocations write the same element.
//
// Memory layout. Data tensors are dense row-major and viewed as [outer, axis, inner]
// (the selected axis in the middle): element (o, a, k) at (o·axis + a)·inner + k.
// Indices are u32 buffers uploaded by the host.
//
// Math:
//   index_select  x: [outer, n_in, inner], idx: [n_out]  →  out: [outer, n_out, inner]
//                 out[o, j, k] = x[o, idx[j], k]
//   index_add     src: [outer, n_in, inner]  →  out: [outer, n_out, inner]  (overwritten)
//                 out[o, i, k] = Σ_{j : idx[j] = i} src[o, j, k]
//                 The scatter-add is turned into a gather by the host: it groups the source
//                 rows j by their target i (CSR: rows `row_start[i]..row_start[i+1]` of
//                 `src_rows` list the j of target i in increasing order), so each output
//                 element sums its own sources in the same order the CPU kernel adds them.
//
// One invocation per output element; the 1-D grid may be split over x and y (see
// `Context::grid_1d`), so the linear id is (wid.x + wid.y·nwg.x)·WG + lid, bounds-checked.

struct Params {
    outer: u32,
    // Length of the indexed axis in the input (index_select: x; index_add: src).
    n_in: u32,
    // Length of the indexed axis in the output.
    n_out: u32,
    inner: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;

// index_select: x, idx → out.   index_add: src, row_start, src_rows → out.
@group(0) @binding(1) var<storage, read> sel_x: array<f32>;
@group(0) @binding(2) var<storage, read> sel_idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> sel_out: array<f32>;

@group(0) @binding(1) var<storage, read> add_src: array<f32>;
@group(0) @binding(2) var<storage, read> add_row_start: array<u32>;
@group(0) @binding(3) var<storage, read> add_src_rows: array<u32>;
@group(0) @binding(4) var<storage, read_write> add_out: array<f32>;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(256)
fn index_select(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid);
    if e >= p.outer * p.n_out * p.inner {
        return;
    }
    let k = e % p.inner;
    let j = (e / p.inner) % p.n_out;
    let o = e / (p.inner * p.n_out);
    sel_out[e] = sel_x[(o * p.n_in + sel_idx[j]) * p.inner + k];
}

@compute @workgroup_size(256)
fn index_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let e = linear_id(wid, nwg, lid);
    if e >= p.outer * p.n_out * p.inner {
        return;
    }
    let k = e % p.inner;
    let i = (e / p.inner) % p.n_out;
    let o = e / (p.inner * p.n_out);
    var acc: f32 = 0.0;
    for (var t = add_row_start[i]; t < add_row_start[i + 1u]; t++) {
        acc += add_src[(o * p.n_in + add_src_rows[t]) * p.inner + k];
    }
    add_out[e] = acc;
}
