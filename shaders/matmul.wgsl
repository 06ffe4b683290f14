// matmul.wgsl — batched matrix product C[b] (+)= A[b] · B[b] (f32), as a ladder of kernels,
// plainest first: `matmul_naive` (rung 1, one invocation per output), `matmul_tiled16` (rung 2,
// 16×16 tiles staged in workgroup memory), `matmul` (rung 3, 64×64 tiles and 4×4 register
// blocks) and `matmul_wide` (rung 4, 128×128 and 8×8, double-buffered), then
// `matmul_sum_slices`, which adds the partial products of a K cut into slices. Every rung
// computes the same C; the host runs rungs 3 and 4 (gpu/src/kernels/matmul.rs), or a lower one
// that a tuning context measured faster, tests hold all four to an f64 reference, and
// `cargo bench -p gpu --bench gpu_kernels -- matmul_ladder` times them side by side. Each
// rung's tiling is described just above it.
//
// Memory layout. A and B are strided views: A[b, i, l] at
//     a_offset + b·a_batch + i·a_row + l·a_col
// (likewise B[b, l, j]), so a transposed operand is the same buffer with row and column
// strides swapped, and a batch stride of 0 broadcasts one matrix over the batch. C is dense
// row-major [batch, m, n]: C[b, i, j] at (b·m + i)·n + j.
//
// Math: C[b, i, j] = Σ_{l<k} A[b, i, l]·B[b, l, j], plus the old C[b, i, j] when
// `accumulate` is 1 (gradients accumulate into an existing buffer). Then the epilogue: plus
// bias[j] when `has_bias` is 1, then ReLU when `relu` is 1 (grid.wgsl's `activate`), so that a
// Linear layer's x·Wᵀ + b and the ReLU after it are one launch. Every rung stores through
// `finish`; a K cut into slices applies it in the launch that writes C last.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_batch: u32,
    a_row: u32,
    a_col: u32,
    a_offset: u32,
    b_batch: u32,
    b_row: u32,
    b_col: u32,
    b_offset: u32,
    accumulate: u32,
    has_bias: u32,
    bias_offset: u32,
    relu: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
// [n] from bias_offset; without a bias the host binds any buffer and nothing reads it.
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// The epilogue of output column j: v plus its bias, then the activation.
fn finish(v: f32, j: u32) -> f32 {
    var s = v;
    if p.has_bias != 0u {
        s += bias[p.bias_offset + j];
    }
    return activate(s, p.relu);
}

// Rung 1: one invocation per element of C, a loop over k through the strides. Each element of
// A is read from global memory n times and each of B m times.
// Grid: (⌈n/16⌉, ⌈m/16⌉, batch).
@compute @workgroup_size(16, 16)
fn matmul_naive(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let i = gid.y;
    let bz = gid.z;
    if i >= p.m || j >= p.n {
        return;
    }
    let a_row = p.a_offset + bz * p.a_batch + i * p.a_row;
    let b_col = p.b_offset + bz * p.b_batch + j * p.b_col;
    var s = 0.0;
    for (var l = 0u; l < p.k; l++) {
        s += a[a_row + l * p.a_col] * b[b_col + l * p.b_row];
    }
    let ci = (bz * p.m + i) * p.n + j;
    if p.accumulate == 1u {
        s += c[ci];
    }
    c[ci] = finish(s, j);
}

// Rung 2: the workgroup's 16×16 invocations share their reads. For each step of 16 along k,
// each invocation stages one element of A's 16×16 block and one of B's in workgroup memory
// (zero outside the matrices), then all 256 read the staged blocks: each global element is
// read m/16 (B) or n/16 (A) times instead of m or n.
// Grid: (⌈n/16⌉, ⌈m/16⌉, batch).
var<workgroup> a_block: array<f32, 256>; // [16 rows][16 k]
var<workgroup> b_block: array<f32, 256>; // [16 k][16 columns]

@compute @workgroup_size(16, 16)
fn matmul_tiled16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l3: vec3<u32>) {
    let tx = l3.x;
    let ty = l3.y;
    let bz = wid.z;
    let i = wid.y * 16u + ty;
    let j = wid.x * 16u + tx;
    let a_base = p.a_offset + bz * p.a_batch;
    let b_base = p.b_offset + bz * p.b_batch;
    var s = 0.0;
    for (var t = 0u; t < p.k; t += 16u) {
        var av = 0.0;
        if i < p.m && t + tx < p.k {
            av = a[a_base + i * p.a_row + (t + tx) * p.a_col];
        }
        a_block[ty * 16u + tx] = av;
        var bv = 0.0;
        if t + ty < p.k && j < p.n {
            bv = b[b_base + (t + ty) * p.b_row + j * p.b_col];
        }
        b_block[ty * 16u + tx] = bv;
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            s += a_block[ty * 16u + kk] * b_block[kk * 16u + tx];
        }
        workgroupBarrier();
    }
    if i < p.m && j < p.n {
        let ci = (bz * p.m + i) * p.n + j;
        if p.accumulate == 1u {
            s += c[ci];
        }
        c[ci] = finish(s, j);
    }
}

// Rung 3, `matmul`: a workgroup of 16×16 invocations owns a 64×64 tile of C; invocation
// (tx, ty) accumulates the 4×4 register block of rows 4·ty.. and columns 4·tx... For each step
// of 16 along k, the workgroup stages a 64×16 slice of A and a 16×64 slice of B in workgroup
// memory (4 elements per invocation each), zero-filling outside [0, m)×[0, k) and
// [0, k)×[0, n), so m, n, k need not be multiples of the tile. Both slices are stored as
// vec4s along the block's 4 rows / 4 columns, so each k costs an invocation two vec4 loads
// for 16 multiply-adds (loads, not arithmetic, bound this kernel on most devices and on
// lavapipe in particular).
// Grid: (⌈n/64⌉, ⌈m/64⌉, batch).

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const AP4: u32 = 17u;

// Staged slices, 4 floats per vec4 so the inner loop needs one load per operand:
// a_tile[kk·AP4 + r/4][r%4] = A[row0 + r, t + kk] (A transposed, rows packed by 4; the
// row pitch AP4 = 17 vec4, not 16, spreads the staging writes over banks), and
// b_tile[kk·16 + c/4][c%4] = B[t + kk, col0 + c].
var<workgroup> a_tile: array<vec4<f32>, 272>; // [BK][AP4]
var<workgroup> b_tile: array<vec4<f32>, 256>; // [BK][BN/4]

@compute @workgroup_size(16, 16)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l3: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let bz = wid.z;
    let row0 = wid.y * BM;
    let col0 = wid.x * BN;
    let tx = l3.x;
    let ty = l3.y;
    let a_base = p.a_offset + bz * p.a_batch;
    let b_base = p.b_offset + bz * p.b_batch;

    // acc[i][j] = C[row0 + 4·ty + i, col0 + 4·tx + j]
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    for (var t = 0u; t < p.k; t += BK) {
        // Stage A[row0.., t..]: element e = lid + 256q is (row e/16, k e%16), so neighbouring
        // invocations read neighbouring k (coalesced for row-major A).
        for (var q = 0u; q < 4u; q++) {
            let e = lid + 256u * q;
            let r = e / BK;
            let kk = e % BK;
            let gr = row0 + r;
            let gk = t + kk;
            var v = 0.0;
            if gr < p.m && gk < p.k {
                v = a[a_base + gr * p.a_row + gk * p.a_col];
            }
            a_tile[kk * AP4 + r / 4u][r % 4u] = v;
        }
        // Stage B[t.., col0..]: element e is (k e/64, column e%64).
        for (var q = 0u; q < 4u; q++) {
            let e = lid + 256u * q;
            let kk = e / BN;
            let cc = e % BN;
            let gk = t + kk;
            let gc = col0 + cc;
            var v = 0.0;
            if gk < p.k && gc < p.n {
                v = b[b_base + gk * p.b_row + gc * p.b_col];
            }
            b_tile[kk * 16u + cc / 4u][cc % 4u] = v;
        }
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

    let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    let c_base = bz * p.m * p.n;
    for (var i = 0u; i < 4u; i++) {
        let gr = row0 + 4u * ty + i;
        if gr >= p.m {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let gc = col0 + 4u * tx + j;
            if gc < p.n {
                let idx = c_base + gr * p.n + gc;
                var v = acc[i][j];
                if p.accumulate != 0u {
                    v += c[idx];
                }
                c[idx] = finish(v, gc);
            }
        }
    }
}

// Rung 4, `matmul_wide`: the same product with a 128×128 tile per workgroup of 16×16 and an
// 8×8 register block per invocation: twice the multiply-adds per staged element and per
// workgroup-memory load (each k costs four vec4 loads for 64 multiply-adds), the tiling of the
// register-tiled SGEMMs that run near peak on large GPUs. Invocation (tx, ty) owns rows
// 4·ty.. and 64 + 4·ty.. and columns 4·tx.. and 64 + 4·tx.. of the tile: neighbouring
// invocations read neighbouring vec4s of the staged slices. Steps of 8 along k are staged in
// two alternating workgroup buffers, and each invocation fetches the next step's elements into
// registers before it multiplies the current one, so global-memory latency overlaps the
// arithmetic and one barrier per step suffices. A large tile leaves most of the GPU idle on
// small products (128×512: four workgroups), so the host picks it only for large ones.
// Grid: (⌈n/128⌉, ⌈m/128⌉, batch).

const WIDE: u32 = 128u;
const WIDE_K: u32 = 8u;
// Two buffers × [WIDE_K][WIDE/4] vec4: wide_a[buf·256 + kk·32 + r/4][r%4] = A[row0 + r, t + kk],
// wide_b[buf·256 + kk·32 + c/4][c%4] = B[t + kk, col0 + c]. 16 KiB in all, WebGPU's default
// workgroup-memory limit.
var<workgroup> wide_a: array<vec4<f32>, 512>;
var<workgroup> wide_b: array<vec4<f32>, 512>;

// Element q (0..4) of this invocation's share of one staged k-step, as (row or column within
// the tile, kk). When the operand is contiguous along k, eight neighbouring invocations read
// the eight k of one row; otherwise 128 neighbours read 128 neighbouring rows of one k. Either
// way the global reads of a warp are contiguous.
fn wide_slot(lid: u32, q: u32, k_contiguous: bool) -> vec2<u32> {
    let e = lid + 256u * q;
    if k_contiguous {
        return vec2<u32>(e / WIDE_K, e % WIDE_K);
    }
    return vec2<u32>(e % WIDE, e / WIDE);
}

// A[row0 + r, t + kk] and B[t + kk, col0 + c] for slot q of this invocation (0 outside the
// matrices).
fn wide_fetch_a(lid: u32, q: u32, k_contiguous: bool, a_base: u32, row0: u32, t: u32) -> f32 {
    let s = wide_slot(lid, q, k_contiguous);
    if row0 + s.x < p.m && t + s.y < p.k {
        return a[a_base + (row0 + s.x) * p.a_row + (t + s.y) * p.a_col];
    }
    return 0.0;
}

fn wide_fetch_b(lid: u32, q: u32, k_contiguous: bool, b_base: u32, col0: u32, t: u32) -> f32 {
    let s = wide_slot(lid, q, k_contiguous);
    if col0 + s.x < p.n && t + s.y < p.k {
        return b[b_base + (t + s.y) * p.b_row + (col0 + s.x) * p.b_col];
    }
    return 0.0;
}

// Stores slot q's fetched elements into staging buffer `buf`.
fn wide_stage(lid: u32, q: u32, a_k_contiguous: bool, b_k_contiguous: bool, buf: u32, va: f32, vb: f32) {
    let sa = wide_slot(lid, q, a_k_contiguous);
    wide_a[buf * 256u + sa.y * 32u + sa.x / 4u][sa.x % 4u] = va;
    let sb = wide_slot(lid, q, b_k_contiguous);
    wide_b[buf * 256u + sb.y * 32u + sb.x / 4u][sb.x % 4u] = vb;
}

// Writes row `gr` of an invocation's block: columns col0 + 4·tx.. (lo) and col0 + 64 + 4·tx.. (hi).
fn wide_store_row(c_base: u32, gr: u32, col0: u32, tx: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if gr >= p.m {
        return;
    }
    for (var h = 0u; h < 2u; h++) {
        var block = lo;
        if h == 1u {
            block = hi;
        }
        for (var j = 0u; j < 4u; j++) {
            let gc = col0 + 64u * h + 4u * tx + j;
            if gc < p.n {
                let idx = c_base + gr * p.n + gc;
                var v = block[j];
                if p.accumulate != 0u {
                    v += c[idx];
                }
                c[idx] = finish(v, gc);
            }
        }
    }
}

// The accumulators are named variables, not an array: an array indexed in a loop may live in
// local (off-chip) memory on some drivers, which costs more than the multiply-adds.
@compute @workgroup_size(16, 16)
fn matmul_wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l3: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let bz = wid.z;
    let row0 = wid.y * WIDE;
    let col0 = wid.x * WIDE;
    let tx = l3.x;
    let ty = l3.y;
    let a_base = p.a_offset + bz * p.a_batch;
    let b_base = p.b_offset + bz * p.b_batch;
    let ak = p.a_col == 1u;
    let bk = p.b_row == 1u;

    for (var q = 0u; q < 4u; q++) {
        wide_stage(lid, q, ak, bk, 0u, wide_fetch_a(lid, q, ak, a_base, row0, 0u),
                   wide_fetch_b(lid, q, bk, b_base, col0, 0u));
    }
    workgroupBarrier();

    // acc{i}l / acc{i}r: row row0 + 64·(i / 4) + 4·ty + i % 4, columns col0 + 4·tx.. / col0 + 64 + 4·tx..
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
    for (var t = 0u; t < p.k; t += WIDE_K) {
        // The next k-step's elements, fetched before this step's multiply-adds.
        let t_next = t + WIDE_K;
        let more = t_next < p.k;
        var na0 = 0.0;
        var na1 = 0.0;
        var na2 = 0.0;
        var na3 = 0.0;
        var nb0 = 0.0;
        var nb1 = 0.0;
        var nb2 = 0.0;
        var nb3 = 0.0;
        if more {
            na0 = wide_fetch_a(lid, 0u, ak, a_base, row0, t_next);
            na1 = wide_fetch_a(lid, 1u, ak, a_base, row0, t_next);
            na2 = wide_fetch_a(lid, 2u, ak, a_base, row0, t_next);
            na3 = wide_fetch_a(lid, 3u, ak, a_base, row0, t_next);
            nb0 = wide_fetch_b(lid, 0u, bk, b_base, col0, t_next);
            nb1 = wide_fetch_b(lid, 1u, bk, b_base, col0, t_next);
            nb2 = wide_fetch_b(lid, 2u, bk, b_base, col0, t_next);
            nb3 = wide_fetch_b(lid, 3u, bk, b_base, col0, t_next);
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
            wide_stage(lid, 0u, ak, bk, next, na0, nb0);
            wide_stage(lid, 1u, ak, bk, next, na1, nb1);
            wide_stage(lid, 2u, ak, bk, next, na2, nb2);
            wide_stage(lid, 3u, ak, bk, next, na3, nb3);
        }
        workgroupBarrier();
        cur = 1u - cur;
    }

    let c_base = bz * p.m * p.n;
    wide_store_row(c_base, row0 + 0u + 4u * ty + 0u, col0, tx, acc0l, acc0r);
    wide_store_row(c_base, row0 + 0u + 4u * ty + 1u, col0, tx, acc1l, acc1r);
    wide_store_row(c_base, row0 + 0u + 4u * ty + 2u, col0, tx, acc2l, acc2r);
    wide_store_row(c_base, row0 + 0u + 4u * ty + 3u, col0, tx, acc3l, acc3r);
    wide_store_row(c_base, row0 + 64u + 4u * ty + 0u, col0, tx, acc4l, acc4r);
    wide_store_row(c_base, row0 + 64u + 4u * ty + 1u, col0, tx, acc5l, acc5r);
    wide_store_row(c_base, row0 + 64u + 4u * ty + 2u, col0, tx, acc6l, acc6r);
    wide_store_row(c_base, row0 + 64u + 4u * ty + 3u, col0, tx, acc7l, acc7r);
}

// Split K. A single product with few output tiles and a long K (a Linear layer's data
// gradient: a 64×32 output over K = 4,096) would be one workgroup's long loop: the host then
// runs it as slices of K, the batch of one launch of the rung it picks (A and B stepping along
// K from one batch entry to the next, each slice writing its partial product into
// [slices, m, n]), and `matmul_sum_slices` adds the partials into C in slice order
// (p.batch = slices), so the result does not depend on scheduling.
// The bias is bound as in the products (binding 3); the output moves to binding 4 with it.
@group(0) @binding(1) var<storage, read> slice_partials: array<f32>;
@group(0) @binding(4) var<storage, read_write> slice_sum: array<f32>;

@compute @workgroup_size(256)
fn matmul_sum_slices(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let len = p.m * p.n;
    let i = linear_id(wid, nwg, lid);
    if i >= len {
        return;
    }
    var v = 0.0;
    for (var s = 0u; s < p.batch; s++) {
        v += slice_partials[s * len + i];
    }
    if p.accumulate != 0u {
        v += slice_sum[i];
    }
    slice_sum[i] = finish(v, i % p.n);
}
