// winograd.wgsl — the transforms of Winograd's F(2×2, 3×3) for 3×3 convolutions at stride 1
// (f32, NCHW): the convolution ladder's Winograd rung (gpu/src/kernels/winograd.rs runs them
// around 16 batched matrix products of matmul.wgsl; tensor/src/cpu/winograd.rs derives the
// method). Per 2×2 output tile, from its 4×4 input tile d and a 3×3 kernel g:
//     Y = Aᵀ·[(G·g·Gᵀ) ⊙ (Bᵀ·d·B)]·A
//   Bᵀ = | 1  0 −1  0 |     G = | 1    0    0 |     Aᵀ = | 1  1  1  0 |
//        | 0  1  1  0 |         | ½    ½    ½ |          | 0  1 −1 −1 |
//        | 0 −1  1  0 |         | ½   −½    ½ |
//        | 0  1  0 −1 |         | 0    0    1 |
// Summed over input channels, each of the 16 positions ξ of the 4×4 tile is a matrix product:
//   forward         M_ξ [C_out, T] = U_ξ [C_out, C_in] · V_ξ [C_in, T]
//                   U = G·g·Gᵀ per (co, ci) (`weight_transform`), V = Bᵀ·d·B per (ci, tile)
//                   (`input_transform`), y = Aᵀ·M·A per (co, tile) (`output_transform`).
//   backward-data   the forward of the full correlation: dy as the input, each kernel turned
//                   by 180° with C_in and C_out exchanged (`flip`), padding 2 − p.
//   backward-weight the adjoint of the forward in g: dL/dg = Gᵀ·[(A·E·Aᵀ) ⊙ (Bᵀ·d·B)]·G for a
//                   tile's 2×2 output gradient E, so with Ê = A·E·Aᵀ per (co, tile)
//                   (`grad_output_transform`) and the forward's V,
//                   P_ξ [C_out, C_in] = Σ_tiles Ê_ξ [C_out, T] · V_ξᵀ [T, C_in], and
//                   dW = Gᵀ·P·G per (co, ci) (`weight_grad_transform`).
// Tiles: T = images·tiles_h·tiles_w with tiles_h = ⌈OH/2⌉, tiles_w = ⌈OW/2⌉, tile t at output
// rows 2·ty, 2·ty + 1 and columns 2·tx, 2·tx + 1 of image first_image + n; its input tile
// starts at row 2·ty − pad_h, column 2·tx − pad_w, zero outside the plane, and outputs past
// OH or OW are computed and dropped (a dy past them is zero). A pass covers `images` images
// (as many as one binding holds), so the tile buffers are [16, C, T], position-major.

struct Params {
    images: u32,
    first_image: u32,
    c_in: u32,
    c_out: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    pad_h: u32,
    pad_w: u32,
    tiles_h: u32,
    tiles_w: u32,
    has_bias: u32,
    accumulate: u32,
    relu: u32,
    // 1: the weight is the forward's [C_in, C_out, 3, 3] (this run's channels exchanged), read
    // turned by 180° (backward-data's full correlation).
    flip: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
// output_transform's bindings: the products, the bias, y.
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// Bᵀ·v for a column (or row) v of a 4×4 tile.
fn b_t(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(v.x - v.z, v.y + v.z, v.z - v.y, v.y - v.w);
}

// G·v for a column (or row) v of a 3×3 kernel.
fn g(v: vec3<f32>) -> vec4<f32> {
    return vec4<f32>(v.x, 0.5 * (v.x + v.y + v.z), 0.5 * (v.x - v.y + v.z), v.z);
}

// Aᵀ·v for a column (or row) v of a 4×4 product tile.
fn a_t(v: vec4<f32>) -> vec2<f32> {
    return vec2<f32>(v.x + v.y + v.z, v.y - v.z - v.w);
}

// A·v for a column (or row) v of a 2×2 output-gradient tile.
fn a(v: vec2<f32>) -> vec4<f32> {
    return vec4<f32>(v.x, v.x + v.y, v.x - v.y, -v.y);
}

// Gᵀ·v for a column (or row) v of a 4×4 product tile.
fn g_t(v: vec4<f32>) -> vec3<f32> {
    let half_sum = 0.5 * (v.y + v.z);
    return vec3<f32>(v.x + half_sum, 0.5 * (v.y - v.z), half_sum + v.w);
}

// Tile t of the pass: its image (within the whole batch) and its tile row and column.
struct Tile {
    image: u32,
    ty: u32,
    tx: u32,
}

fn tile_of(t: u32) -> Tile {
    let per_image = p.tiles_h * p.tiles_w;
    return Tile(p.first_image + t / per_image, (t / p.tiles_w) % p.tiles_h, t % p.tiles_w);
}

fn tiles_in_pass() -> u32 {
    return p.images * p.tiles_h * p.tiles_w;
}

// What invocation i of a transform over `channels` × the pass's tiles works on: its channel,
// its tile t in the pass, where that tile lies, and where the channel's plane of `plane_len`
// values starts in the tile's image.
struct TileJob {
    channel: u32,
    t: u32,
    tile: Tile,
    plane: u32,
}

fn tile_job(i: u32, channels: u32, plane_len: u32) -> TileJob {
    let t = i % tiles_in_pass();
    let channel = i / tiles_in_pass();
    let tile = tile_of(t);
    return TileJob(channel, t, tile, (tile.image * channels + channel) * plane_len);
}

// Writes the 4×4 tile v (row-major positions) at (row, t) of the [16, rows, T] buffer dst.
fn store_tile(row: u32, rows: u32, t: u32, value: array<vec4<f32>, 4>) {
    // A function's array argument is a value, which WGSL indexes only by constants.
    var v = value;
    let step = rows * tiles_in_pass();
    let base = row * tiles_in_pass() + t;
    for (var i = 0u; i < 4u; i++) {
        dst[base + (4u * i) * step] = v[i].x;
        dst[base + (4u * i + 1u) * step] = v[i].y;
        dst[base + (4u * i + 2u) * step] = v[i].z;
        dst[base + (4u * i + 3u) * step] = v[i].w;
    }
}

// Row i of the 4×4 tile at (row, t) of a [16, rows, T] buffer src.
fn load_tile_row(row: u32, rows: u32, t: u32, i: u32) -> vec4<f32> {
    let step = rows * tiles_in_pass();
    let base = row * tiles_in_pass() + t;
    return vec4<f32>(
        src[base + (4u * i) * step],
        src[base + (4u * i + 1u) * step],
        src[base + (4u * i + 2u) * step],
        src[base + (4u * i + 3u) * step],
    );
}

// U [16, C_out, C_in] = G·g·Gᵀ for each kernel g = w[co, ci] (one invocation per pair).
@compute @workgroup_size(256)
fn weight_transform(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    let pairs = p.c_out * p.c_in;
    if (i >= pairs) {
        return;
    }
    let co = i / p.c_in;
    let ci = i % p.c_in;
    var k: array<f32, 9>;
    for (var tap = 0u; tap < 9u; tap++) {
        if (p.flip == 1u) {
            k[tap] = src[(ci * p.c_out + co) * 9u + 8u - tap];
        } else {
            k[tap] = src[i * 9u + tap];
        }
    }
    // G·g column by column (its rows r0..r3), then each row times Gᵀ.
    let c0 = g(vec3<f32>(k[0], k[3], k[6]));
    let c1 = g(vec3<f32>(k[1], k[4], k[7]));
    let c2 = g(vec3<f32>(k[2], k[5], k[8]));
    var rows = array<vec4<f32>, 4>(
        g(vec3<f32>(c0.x, c1.x, c2.x)),
        g(vec3<f32>(c0.y, c1.y, c2.y)),
        g(vec3<f32>(c0.z, c1.z, c2.z)),
        g(vec3<f32>(c0.w, c1.w, c2.w)),
    );
    for (var r = 0u; r < 4u; r++) {
        dst[(4u * r) * pairs + i] = rows[r].x;
        dst[(4u * r + 1u) * pairs + i] = rows[r].y;
        dst[(4u * r + 2u) * pairs + i] = rows[r].z;
        dst[(4u * r + 3u) * pairs + i] = rows[r].w;
    }
}

// V [16, C_in, T] = Bᵀ·d·B for each input tile d of x [N, C_in, H, W] (one invocation per
// channel and tile).
@compute @workgroup_size(256)
fn input_transform(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= p.c_in * tiles_in_pass()) {
        return;
    }
    let job = tile_job(i, p.c_in, p.h * p.w);
    let tile = job.tile;
    var d: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
        let row = i32(2u * tile.ty + r) - i32(p.pad_h);
        var v = vec4<f32>(0.0);
        if (row >= 0 && row < i32(p.h)) {
            for (var c = 0u; c < 4u; c++) {
                let column = i32(2u * tile.tx + c) - i32(p.pad_w);
                if (column >= 0 && column < i32(p.w)) {
                    v[c] = src[job.plane + u32(row) * p.w + u32(column)];
                }
            }
        }
        d[r] = v;
    }
    // Bᵀ·d (combining rows), then each row times B.
    let e = array<vec4<f32>, 4>(d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]);
    store_tile(job.channel, p.c_in, job.t, array<vec4<f32>, 4>(b_t(e[0]), b_t(e[1]), b_t(e[2]), b_t(e[3])));
}

// y [N, C_out, OH, OW] (+)= Aᵀ·M·A (+ bias, then the ReLU epilogue) for each tile of the
// products M [16, C_out, T] (one invocation per channel and tile).
@compute @workgroup_size(256)
fn output_transform(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= p.c_out * tiles_in_pass()) {
        return;
    }
    let job = tile_job(i, p.c_out, p.oh * p.ow);
    let co = job.channel;
    let t = job.t;
    let tile = job.tile;
    // Aᵀ·M (combining rows), then each row times A.
    let m0 = load_tile_row(co, p.c_out, t, 0u);
    let m1 = load_tile_row(co, p.c_out, t, 1u);
    let m2 = load_tile_row(co, p.c_out, t, 2u);
    let m3 = load_tile_row(co, p.c_out, t, 3u);
    var out = array<vec2<f32>, 2>(a_t(m0 + m1 + m2), a_t(m1 - m2 - m3));
    var b = 0.0;
    if (p.has_bias == 1u) {
        b = bias[co];
    }
    for (var r = 0u; r < 2u; r++) {
        let row = 2u * tile.ty + r;
        for (var c = 0u; c < 2u; c++) {
            let column = 2u * tile.tx + c;
            if (row < p.oh && column < p.ow) {
                let at = job.plane + row * p.ow + column;
                var v = out[r][c] + b;
                if (p.accumulate == 1u) {
                    v += y[at];
                }
                y[at] = activate(v, p.relu);
            }
        }
    }
}

// Ê [16, C_out, T] = A·E·Aᵀ for each 2×2 tile E of dy [N, C_out, OH, OW], zero past OH and OW
// (one invocation per channel and tile).
@compute @workgroup_size(256)
fn grad_output_transform(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    if (i >= p.c_out * tiles_in_pass()) {
        return;
    }
    let job = tile_job(i, p.c_out, p.oh * p.ow);
    let tile = job.tile;
    var e: array<vec2<f32>, 2>;
    for (var r = 0u; r < 2u; r++) {
        let row = 2u * tile.ty + r;
        var v = vec2<f32>(0.0);
        for (var c = 0u; c < 2u; c++) {
            let column = 2u * tile.tx + c;
            if (row < p.oh && column < p.ow) {
                v[c] = src[job.plane + row * p.ow + column];
            }
        }
        e[r] = v;
    }
    // A·E (combining rows), then each row times Aᵀ.
    let rows = array<vec2<f32>, 4>(e[0], e[0] + e[1], e[0] - e[1], -e[1]);
    store_tile(job.channel, p.c_out, job.t, array<vec4<f32>, 4>(a(rows[0]), a(rows[1]), a(rows[2]), a(rows[3])));
}

// dW [C_out, C_in, 3, 3] (+)= Gᵀ·P·G for each pair's sums P [16, C_out, C_in] (one invocation
// per pair).
@compute @workgroup_size(256)
fn weight_grad_transform(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let i = linear_id(wid, nwg, lid);
    let pairs = p.c_out * p.c_in;
    if (i >= pairs) {
        return;
    }
    var m: array<vec4<f32>, 4>;
    for (var r = 0u; r < 4u; r++) {
        m[r] = vec4<f32>(
            src[(4u * r) * pairs + i],
            src[(4u * r + 1u) * pairs + i],
            src[(4u * r + 2u) * pairs + i],
            src[(4u * r + 3u) * pairs + i],
        );
    }
    // Gᵀ·P (combining rows), then each row times G.
    let half_sum = 0.5 * (m[1] + m[2]);
    var rows = array<vec3<f32>, 3>(g_t(m[0] + half_sum), g_t(0.5 * (m[1] - m[2])), g_t(half_sum + m[3]));
    for (var r = 0u; r < 3u; r++) {
        for (var c = 0u; c < 3u; c++) {
            let at = i * 9u + 3u * r + c;
            var v = rows[r][c];
            if (p.accumulate == 1u) {
                v += dst[at];
            }
            dst[at] = v;
        }
    }
}
