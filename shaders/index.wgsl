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
// In parts. A tensor larger than one storage binding is launched a window at a time: the
// bound input holds rows `in_first .. in_first + n_in` of the indexed axis (index_select: of
// x, the index values; index_add: of src, the source rows j), starting at element
// `in_offset` of its binding, and the bound output holds rows `out_first .. out_first +
// n_out` (index_select: positions in idx; index_add: targets i), from `out_offset`. An
// index_select writes only the outputs whose source row lies in its input window (each output
// is written by the one window holding its source); an index_add sums the sources in its
// window, added to what the output holds when `accumulate` is 1 (windows in increasing j, so
// each output's sum runs in the same order as in one launch). Launched whole, every first and
// offset is 0.
//
// One invocation per output element; the 1-D grid may be split over x and y (see
// `Context::grid_1d`), so the linear id is (wid.x + wid.y·nwg.x)·WG + lid, bounds-checked.

struct Params {
    outer: u32,
    // Rows of the indexed axis in the bound input (index_select: x; index_add: src).
    n_in: u32,
    // Rows of the indexed axis in the bound output.
    n_out: u32,
    inner: u32,
    in_first: u32,
    out_first: u32,
    in_offset: u32,
    out_offset: u32,
    accumulate: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// index_select: x, idx → out.   index_add: src, row_start, src_rows → out.
@group(0) @binding(1) var<storage, read> sel_x: array<f32>;
@group(0) @binding(2) var<storage, read> sel_idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> sel_out: array<f32>;

@group(0) @binding(1) var<storage, read> add_src: array<f32>;
@group(0) @binding(2) var<storage, read> add_row_start: array<u32>;
@group(0) @binding(3) var<storage, read> add_src_rows: array<u32>;
@group(0) @binding(4) var<storage, read_write> add_out: array<f32>;

// An element of the bound output: its index in the binding's window and where it lies.
struct Element {
    index: u32,
    outer: u32,
    row: u32,
    inner: u32,
}

// Where element e of the bound output [outer, n_out, inner] lies (its row counts from
// out_first); an e past the end has outer ≥ p.outer, which is each entry point's bounds check.
fn output_element(e: u32) -> Element {
    return Element(e, e / (p.inner * p.n_out), (e / p.inner) % p.n_out, e % p.inner);
}

@compute @workgroup_size(256)
fn index_select(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let at = output_element(linear_id(wid, nwg, lid));
    if at.outer >= p.outer {
        return;
    }
    let src = sel_idx[p.out_first + at.row];
    // Unsigned: a source before the window wraps to a large value and fails the test too.
    if src - p.in_first >= p.n_in {
        return;
    }
    sel_out[p.out_offset + at.index] = sel_x[p.in_offset + (at.outer * p.n_in + src - p.in_first) * p.inner + at.inner];
}

@compute @workgroup_size(256)
fn index_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let at = output_element(linear_id(wid, nwg, lid));
    if at.outer >= p.outer {
        return;
    }
    let i = p.out_first + at.row;
    var acc: f32 = 0.0;
    if p.accumulate != 0u {
        acc = add_out[p.out_offset + at.index];
    }
    for (var t = add_row_start[i]; t < add_row_start[i + 1u]; t++) {
        let j = add_src_rows[t] - p.in_first;
        if j < p.n_in {
            acc += add_src[p.in_offset + (at.outer * p.n_in + j) * p.inner + at.inner];
        }
    }
    add_out[p.out_offset + at.index] = acc;
}
