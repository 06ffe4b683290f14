// matmul.wgsl — batched matrix product C[b] (+)= A[b] · B[b] (f32), tiled in workgroup memory.
//
// Memory layout. A and B are strided views: A[b, i, l] at
//     a_offset + b·a_batch + i·a_row + l·a_col
// (likewise B[b, l, j]), so a transposed operand is the same buffer with row and column
// strides swapped, and a batch stride of 0 broadcasts one matrix over the batch. C is dense
// row-major [batch, m, n]: C[b, i, j] at (b·m + i)·n + j.
//
// Math: C[b, i, j] = Σ_{l<k} A[b, i, l]·B[b, l, j], plus the old C[b, i, j] when
// `accumulate` is 1 (gradients accumulate into an existing buffer).
//
// Tiling. A workgroup of 16×16 invocations owns a 64×64 tile of C; invocation (tx, ty)
// accumulates the 4×4 register block of rows 4·ty.. and columns 4·tx... For each step of 16
// along k, the workgroup stages a 64×16 slice of A and a 16×64 slice of B in workgroup
// memory (4 elements per invocation each), zero-filling outside [0, m)×[0, k) and
// [0, k)×[0, n), so m, n, k need not be multiples of the tile. Both slices are stored as
// vec4s along the block's 4 rows / 4 columns, so each k costs an invocation two vec4 loads
// for 16 multiply-adds (loads, not arithmetic, bound this kernel on most devices and on
// lavapipe in particular).
// Grid: (⌈n/64⌉, ⌈m/64⌉, batch).

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
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const AP4: u32 = 17u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

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
                c[idx] = v;
            }
        }
    }
}
