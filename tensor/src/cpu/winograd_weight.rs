//! conv2d's weight gradient by Winograd's F(3×3, 4×4): a cut the tuner may choose for
//! backward-weight at 3×3 kernels, stride 1, beside the forward's F(4×4, 3×3)
//! (`cpu::winograd_4x4`), whose tiles, points and 1-D input transform it shares.
//!
//! The weight gradient of a 3×3 kernel is, for every 4×4 tile H of dy and the 6×6 tile D of
//! x under it (the forward's input tile of the same output tile), the 3×3 valid correlation
//! Z(i, j) = Σ_(a,b) H(a, b)·D(a + i, b + j), summed over the tiles. In one dimension the
//! forward computes y = Aᵀ·[(G·g) ⊙ (Bᵀ·d)], so ∂L/∂g = Gᵀ·[(A·∂y) ⊙ (Bᵀ·d)]: the same
//! points with the roles of A and G exchanged. Nested, Z = Gᵀ·[(A·H·Aᵀ) ⊙ (Bᵀ·D·B)]·G, where
//!
//!   A = | 1  0  0  0 |    (the forward's Aᵀ, transposed: 6 values from a tile's 4)
//!       | 1  1  1  1 |
//!       | 1 −1  1 −1 |
//!       | 1  2  4  8 |
//!       | 1 −2  4 −8 |
//!       | 0  0  0  1 |
//!
//! and Bᵀ, G are the forward's. The sum over tiles moves inside the transforms: for each of
//! the 36 values ξ, M_ξ\[co\]\[ci\] = Σ_tiles U_ξ\[co\]\[tile\]·V_ξ\[ci\]\[tile\] is a GEMM
//! whose depth is the tiles, and dW = Gᵀ·M·G once at the end. That is 36 multiply-adds a tile
//! for each pair of channels where the direct sum makes 144: four times fewer. F(3×3, 2×2),
//! the smaller tile's transpose, makes 2.25 times fewer, and was not kept: in a training
//! step's process it timed slower than the direct cut on every layer of B3
//! (`docs/notebooks/performance.md`, "The weight gradient as a direct convolution").
//!
//! Where the forward's transforms run along rows of tiles, these run along rows of channels.
//! A block of whole images is copied channels-last, so each of a tile's pixels is a row of
//! channels and each step of a 1-D transform combines whole rows element by element: long
//! vectors however small the planes. A tile's 36 values for every channel are written
//! together (U and V are [tile, 36, C]), so each GEMM reads its operands along the channels,
//! the direction its packing copies whole. The 36 GEMMs run in parallel, each adding into its
//! own M_ξ on one thread, and the blocks in order, so the sums' order, and the bits, do not
//! depend on the threads.
//!
//! What it costs is memory traffic. U and V hold 2.25 values a pixel for each channel, and a
//! block's U, V and M do not fit in L2; every block also reads and writes all of M
//! (36·C_out·C_in values), so blocks are large (`BLOCK_VALUES`). On B3's 256→128 layer (32×32
//! planes, batch 32, Zen 5) the copies took 4.7 ms, the transforms 7–9 and the GEMMs 14 of
//! 27, where the GEMMs' 4.8 GFLOP would take 9.4 at the CPU's peak: it is 1.5 times faster than
//! the direct cut there, not four.
//!
//! Rounding: A's 8 and G's 1/6 and 1/24 magnify it, as in the forward (a test holds the f32
//! error on a 256-channel layer).

use rayon::prelude::*;

use crate::cpu::gemm::{gemm_on_calling_thread, MatRef};
use crate::cpu::indirect::image_channels_last;
use crate::cpu::vectorized;
use crate::cpu::winograd;
use crate::cpu::winograd_4x4::{input_1d, G};
use crate::descriptors::Conv2dGeometry;
use crate::dtype::Float;

/// A block's U and V together hold about this many values (16 MiB of f32), in whole images
/// (see [`Sizes::blocks`]).
const BLOCK_VALUES: usize = 1 << 22;

/// Channels a transform takes at a time: its 36 intermediate rows stay in L1.
const CHANNEL_CHUNK: usize = 64;

/// dW = ∂L/∂w by F(3×3, 4×4) (see the module docs), for a geometry where
/// [`winograd::applies`] holds.
// grad_y: [N, C_out, OH, OW]   x: [N, C_in, H, W]   ->   dw: [C_out, C_in, 3, 3]
pub fn conv2d_backward_weight<T: Float>(grad_y: &[T], x: &[T], g: &Conv2dGeometry) -> Vec<T> {
    in_blocks(grad_y, x, g, sizes(g).blocks())
}

/// The sizes of `g` that [`summed_products`] works on: a 4×4 tile of dy, 36 values.
fn sizes(g: &Conv2dGeometry) -> Sizes {
    let tiles = g.oh.div_ceil(4) * g.ow.div_ceil(4);
    Sizes {
        batch: g.batch,
        c_in: g.c_in,
        c_out: g.c_out,
        plane: g.h * g.w,
        out_plane: g.out_plane(),
        tiles,
        values: 36,
    }
}

/// The sizes [`summed_products`] works on.
pub(crate) struct Sizes {
    pub(crate) batch: usize,
    pub(crate) c_in: usize,
    pub(crate) c_out: usize,
    /// Pixels of an input plane and of an output plane.
    pub(crate) plane: usize,
    pub(crate) out_plane: usize,
    /// Tiles an image has, and transformed values a tile has for each channel.
    pub(crate) tiles: usize,
    pub(crate) values: usize,
}

impl Sizes {
    /// Blocks the batch is cut into: as few as keep each block's U and V within about
    /// [`BLOCK_VALUES`], or within as many values as M holds where that is more (each block
    /// reads and writes all of M).
    pub(crate) fn blocks(&self) -> usize {
        let per_image = self.tiles * self.values * (self.c_in + self.c_out);
        let most = BLOCK_VALUES.max(self.values * self.c_out * self.c_in);
        self.batch.div_ceil((most / per_image.max(1)).max(1))
    }
}

/// What a transposed Winograd weight gradient computes between its transforms (this one's,
/// and the nearest-upsampled convolution's, `cpu::upsampled_weight`): M[ξ][co][ci] =
/// Σ_tiles U[tile][ξ][co]·V[tile][ξ][ci] for each of the `values` values ξ. The batch is cut into
/// `blocks` blocks of whole images, as equal as they can be; each block's images are copied
/// channels-last, then `transform(tile, x_image, dy_image, v, u, scratch)` writes one tile's
/// V ([values, C_in]) and U ([values, C_out]) from its image's rows ([plane, C_in] and
/// [out_plane, C_out]), in parallel over the block's tiles, then one GEMM for each value adds
/// its block into M_ξ on one thread, the blocks in order, so that the bits do not depend on
/// the threads.
pub(crate) fn summed_products<T: Float, S>(
    grad_y: &[T],
    x: &[T],
    sizes: &Sizes,
    blocks: usize,
    scratch: impl Fn() -> S + Sync + Send,
    transform: impl Fn(usize, &[T], &[T], &mut [T], &mut [T], &mut S) + Sync + Send,
) -> Vec<T> {
    let &Sizes { batch, c_in, c_out, plane, out_plane, tiles, values } = sizes;
    let mut m = vec![T::ZERO; values * c_out * c_in];
    if batch == 0 || tiles == 0 {
        return m;
    }
    let blocks = blocks.clamp(1, batch);
    let images = batch.div_ceil(blocks);
    let (mut x_rows, mut dy_rows) = (vec![T::ZERO; images * plane * c_in], vec![T::ZERO; images * out_plane * c_out]);
    let (mut v, mut u) =
        (vec![T::ZERO; images * tiles * values * c_in], vec![T::ZERO; images * tiles * values * c_out]);
    for b in 0..blocks {
        let (n0, n1) = (b * batch / blocks, (b + 1) * batch / blocks);
        let block = n1 - n0;
        let cols = block * tiles;
        let x_block = &x[n0 * c_in * plane..][..block * c_in * plane];
        let dy_block = &grad_y[n0 * c_out * out_plane..][..block * c_out * out_plane];
        let (x_rows, dy_rows) = (&mut x_rows[..block * plane * c_in], &mut dy_rows[..block * out_plane * c_out]);
        let copies = x_block.par_chunks_exact(c_in * plane).zip(x_rows.par_chunks_exact_mut(c_in * plane));
        copies.for_each(|(image, rows)| image_channels_last(image, c_in, plane, c_in, rows));
        let copies = dy_block.par_chunks_exact(c_out * out_plane).zip(dy_rows.par_chunks_exact_mut(c_out * out_plane));
        copies.for_each(|(image, rows)| image_channels_last(image, c_out, out_plane, c_out, rows));
        let (x_rows, dy_rows) = (&*x_rows, &*dy_rows);
        let (v, u) = (&mut v[..cols * values * c_in], &mut u[..cols * values * c_out]);
        let tile_values = v.par_chunks_exact_mut(values * c_in).zip(u.par_chunks_exact_mut(values * c_out));
        tile_values.enumerate().for_each_init(&scratch, |scratch, (tile, (v, u))| {
            let image = tile / tiles;
            let x_image = &x_rows[image * plane * c_in..][..plane * c_in];
            let dy_image = &dy_rows[image * out_plane * c_out..][..out_plane * c_out];
            transform(tile % tiles, x_image, dy_image, v, u, scratch);
        });
        let (u, v) = (&*u, &*v);
        m.par_chunks_mut(c_out * c_in).enumerate().for_each(|(xi, m_xi)| {
            // U_ξᵀ: [C_out, tiles] and V_ξ: [tiles, C_in], both read along their channels.
            let u_xi = MatRef { data: &u[xi * c_out..], rows: c_out, cols, row_stride: 1, col_stride: values * c_out };
            let v_xi =
                MatRef { data: &v[xi * c_in..], rows: cols, cols: c_in, row_stride: values * c_in, col_stride: 1 };
            gemm_on_calling_thread(u_xi, v_xi, m_xi, c_in, true);
        });
    }
    m
}

/// [`conv2d_backward_weight`] with the batch cut into `blocks` blocks of whole images, as equal
/// as they can be (the tests walk several).
fn in_blocks<T: Float>(grad_y: &[T], x: &[T], g: &Conv2dGeometry, blocks: usize) -> Vec<T> {
    assert!(winograd::applies(g), "Winograd F(3×3, 4×4) computes 3×3 kernels at stride 1 without dilation, got {g:?}");
    let (c_in, c_out) = (g.c_in, g.c_out);
    let mut dw = vec![T::ZERO; g.weight_len()];
    if dw.is_empty() || g.batch == 0 || g.out_plane() == 0 {
        return dw;
    }
    let m = summed_products(grad_y, x, &sizes(g), blocks, || Scratch::new(c_in.max(c_out).min(CHANNEL_CHUNK)), {
        |tile, x_image, dy_image, v, u, scratch| {
            vectorized::run(TilePass { g, at: Tile::of(g, tile), x_image, dy_image, v, u, scratch })
        }
    });
    // dW[co][ci] = Gᵀ·M[co][ci]·G, each M[co][ci] the 36 values M_ξ[co][ci]: for each output
    // channel, along rows of input channels.
    let m = &m;
    dw.par_chunks_mut(9 * c_in).enumerate().for_each_init(
        || OutputScratch::new(c_in.min(CHANNEL_CHUNK)),
        |scratch, (co, dw_co)| {
            for (chunk, dw_chunk) in dw_co.chunks_mut(9 * CHANNEL_CHUNK).enumerate() {
                let (c0, len) = (chunk * CHANNEL_CHUNK, dw_chunk.len() / 9);
                let m_rows = std::array::from_fn(|xi| &m[(xi * c_out + co) * c_in + c0..][..len]);
                vectorized::run(OutputPass { m_rows, dw: dw_chunk, scratch: &mut *scratch });
            }
        },
    );
    dw
}

/// One task's rows between the output transform's two steps, a chunk of channels each.
struct OutputScratch<T> {
    /// M·G, [row of M][column of G].
    r: [[Vec<T>; 3]; 6],
    /// Gᵀ·M·G, [row][column] of the 3×3 kernel.
    z: [[Vec<T>; 3]; 3],
}

impl<T: Float> OutputScratch<T> {
    fn new(chunk: usize) -> OutputScratch<T> {
        let row = || std::array::from_fn(|_| vec![T::ZERO; chunk]);
        OutputScratch { r: std::array::from_fn(|_| row()), z: std::array::from_fn(|_| row()) }
    }
}

/// Z = Gᵀ·M·G for one output channel and a chunk of input channels: `m_rows[ξ]` holds
/// M_ξ\[co\] over the chunk, and each channel's 3×3 Z goes to `dw` ([chunk, 9]).
struct OutputPass<'a, T> {
    m_rows: [&'a [T]; 36],
    dw: &'a mut [T],
    scratch: &'a mut OutputScratch<T>,
}

impl<T: Float> vectorized::Work for OutputPass<'_, T> {
    #[inline(always)]
    fn run(self) {
        let OutputPass { m_rows, dw, scratch } = self;
        let len = dw.len() / 9;
        let g = G.map(|row| row.map(T::from_f64));
        let OutputScratch { r, z } = scratch;
        // R = M·G: row p of M, six rows of channels, against column j of G ...
        for (p, r_p) in r.iter_mut().enumerate() {
            let [m0, m1, m2, m3, m4, m5] = std::array::from_fn(|q| m_rows[6 * p + q]);
            for (j, r_pj) in r_p.iter_mut().enumerate() {
                combine_six(&mut r_pj[..len], [m0, m1, m2, m3, m4, m5], std::array::from_fn(|q| g[q][j]));
            }
        }
        // ... then Z = Gᵀ·R.
        for (i, z_i) in z.iter_mut().enumerate() {
            for (j, z_ij) in z_i.iter_mut().enumerate() {
                let [r0, r1, r2, r3, r4, r5] = std::array::from_fn(|p| &r[p][j][..len]);
                combine_six(&mut z_ij[..len], [r0, r1, r2, r3, r4, r5], std::array::from_fn(|p| g[p][i]));
            }
        }
        for (c, dw_c) in dw.chunks_exact_mut(9).enumerate() {
            for (value, (i, j)) in dw_c.iter_mut().zip((0..3).flat_map(|i| (0..3).map(move |j| (i, j)))) {
                *value = z[i][j][c];
            }
        }
    }
}

/// out = Σ_k a_k·s_k over six rows, element by element.
#[inline(always)]
fn combine_six<T: Float>(out: &mut [T], [a0, a1, a2, a3, a4, a5]: [&[T]; 6], [s0, s1, s2, s3, s4, s5]: [T; 6]) {
    let rows = a0.iter().zip(a1).zip(a2).zip(a3).zip(a4).zip(a5);
    out.iter_mut().zip(rows).for_each(|(o, (((((&a0, &a1), &a2), &a3), &a4), &a5))| {
        *o = a0 * s0 + a1 * s1 + a2 * s2 + a3 * s3 + a4 * s4 + a5 * s5;
    });
}

/// Where a tile lies: its first output row and column (a multiple of 4).
#[derive(Clone, Copy)]
struct Tile {
    oy: usize,
    ox: usize,
}

impl Tile {
    /// Tile `t` of an image's tiles, row by row.
    fn of(g: &Conv2dGeometry, t: usize) -> Tile {
        let per_row = g.ow.div_ceil(4);
        Tile { oy: 4 * (t / per_row), ox: 4 * (t % per_row) }
    }
}

/// One task's rows between a tile's two 1-D transforms, a chunk of channels each.
struct Scratch<T> {
    /// The 36 rows after the first transform, [row of the tile][transformed column].
    rows: [[Vec<T>; 6]; 6],
    /// A chunk of zeros: the values of pixels in the padding or past dy's edge.
    zeros: Vec<T>,
}

impl<T: Float> Scratch<T> {
    fn new(chunk: usize) -> Scratch<T> {
        Scratch {
            rows: std::array::from_fn(|_| std::array::from_fn(|_| vec![T::ZERO; chunk])),
            zeros: vec![T::ZERO; chunk],
        }
    }
}

/// V = Bᵀ·D·B and U = A·H·Aᵀ of one tile, for every channel: each of the tile's pixels is a
/// row of channels in the channels-last images, so every step of the 1-D transforms is an
/// element-wise combination of whole rows of channels.
// x_image: [H·W, C_in]   dy_image: [OH·OW, C_out]   ->   v: [36, C_in]   u: [36, C_out]
struct TilePass<'a, T> {
    g: &'a Conv2dGeometry,
    at: Tile,
    x_image: &'a [T],
    dy_image: &'a [T],
    v: &'a mut [T],
    u: &'a mut [T],
    scratch: &'a mut Scratch<T>,
}

impl<T: Float> vectorized::Work for TilePass<'_, T> {
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // b picks the column from each of the six rows
    fn run(self) {
        let TilePass { g, at, x_image, dy_image, v, u, scratch } = self;
        let Scratch { rows, zeros } = scratch;
        let [pad_y, pad_x] = g.padding;
        // D(r, c) is input pixel (oy + r − pad, ox + c − pad), zero in the padding.
        for c0 in (0..g.c_in).step_by(CHANNEL_CHUNK) {
            let len = CHANNEL_CHUNK.min(g.c_in - c0);
            let pixel = |r: usize, c: usize| -> &[T] {
                let (iy, ix) = ((at.oy + r).wrapping_sub(pad_y), (at.ox + c).wrapping_sub(pad_x));
                if iy < g.h && ix < g.w {
                    &x_image[(iy * g.w + ix) * g.c_in + c0..][..len]
                } else {
                    &zeros[..len]
                }
            };
            // ·B along each of the tile's six rows ...
            for (r, row) in rows.iter_mut().enumerate() {
                let [o0, o1, o2, o3, o4, o5] = row.each_mut().map(|o| &mut o[..len]);
                input_1d(std::array::from_fn(|c| pixel(r, c)), [o0, o1, o2, o3, o4, o5]);
            }
            // ... then Bᵀ down its six columns: V[6a + b] is row a of column b's transform.
            for b in 0..6 {
                let column = std::array::from_fn(|r| &rows[r][b][..len]);
                input_1d(column, values_of_column(v, g.c_in, b, c0, len));
            }
        }
        // H(a, b) is dy pixel (oy + a, ox + b), zero past dy's edge.
        for c0 in (0..g.c_out).step_by(CHANNEL_CHUNK) {
            let len = CHANNEL_CHUNK.min(g.c_out - c0);
            let pixel = |a: usize, b: usize| -> &[T] {
                let (oy, ox) = (at.oy + a, at.ox + b);
                if oy < g.oh && ox < g.ow {
                    &dy_image[(oy * g.ow + ox) * g.c_out + c0..][..len]
                } else {
                    &zeros[..len]
                }
            };
            // ·Aᵀ along each of the tile's four rows ...
            for (a, row) in rows.iter_mut().take(4).enumerate() {
                let [o0, o1, o2, o3, o4, o5] = row.each_mut().map(|o| &mut o[..len]);
                dy_1d(std::array::from_fn(|b| pixel(a, b)), [o0, o1, o2, o3, o4, o5]);
            }
            // ... then A down its six columns.
            for b in 0..6 {
                let column = std::array::from_fn(|a| &rows[a][b][..len]);
                dy_1d(column, values_of_column(u, g.c_out, b, c0, len));
            }
        }
    }
}

/// The six rows of a tile's transform that column `b` gives, ξ = 6a + b for a = 0 … 5: in
/// `values` ([36, channels]), channels `c0..c0 + len` of each.
#[inline(always)]
fn values_of_column<T>(values: &mut [T], channels: usize, b: usize, c0: usize, len: usize) -> [&mut [T]; 6] {
    let mut rows = values.chunks_exact_mut(channels).skip(b).step_by(6).map(|row| &mut row[c0..][..len]);
    std::array::from_fn(|_| rows.next().expect("36 transformed values a tile"))
}

/// A·h, element by element: the i-th elements of the four `h` rows are one column h_0 … h_3,
/// and the i-th elements of the six `out` rows its transform:
/// h_0, (h_0 + h_2) ± (h_1 + h_3), (h_0 + 4h_2) ± 2(h_1 + 4h_3), h_3.
#[inline(always)]
fn dy_1d<T: Float>([h0, h1, h2, h3]: [&[T]; 4], [o0, o1, o2, o3, o4, o5]: [&mut [T]; 6]) {
    let [one, two, four] = [1.0, 2.0, 4.0].map(T::from_f64);
    o0.copy_from_slice(&h0[..o0.len()]);
    pair_row(o1, h0, h1, h2, h3, [one, one]);
    pair_row(o2, h0, h1, h2, h3, [one, -one]);
    pair_row(o3, h0, h1, h2, h3, [four, two]);
    pair_row(o4, h0, h1, h2, h3, [four, -two]);
    o5.copy_from_slice(&h3[..o5.len()]);
}

/// out = (h_0 + s·h_2) + k·(h_1 + s·h_3): rows 1 to 4 of A·h.
#[inline(always)]
fn pair_row<T: Float>(out: &mut [T], h0: &[T], h1: &[T], h2: &[T], h3: &[T], [s, k]: [T; 2]) {
    let values = h0.iter().zip(h1).zip(h2).zip(h3);
    out.iter_mut().zip(values).for_each(|(o, (((&h0, &h1), &h2), &h3))| *o = (h0 + s * h2) + k * (h1 + s * h3));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_support::{assert_within, ramp, to_f32};
    use crate::reference::conv as reference;

    #[test]
    fn it_matches_the_reference_in_f64_and_f32_for_every_block_size() {
        // Output sides of every remainder by 4 (partial tiles on both edges), padding 0, 1, 2
        // and 4 (whole tile rows in the padding), one channel and several; the batch in one
        // block, in two (of unequal sizes where it is odd) and one image a block.
        for (batch, c_in, c_out, [h, w], pad) in [
            (2, 3, 5, [7, 9], 1),
            (1, 4, 2, [6, 5], 0),
            (3, 2, 3, [5, 8], 2),
            (2, 2, 2, [3, 4], 4),
            (2, 1, 17, [10, 11], 1),
            (5, 6, 1, [3, 3], 1),
        ] {
            let g = Conv2dGeometry::conv2d([batch, c_in, h, w], [c_out, c_in, 3, 3], [1, 1], [pad, pad], [1, 1])
                .expect("the kernel fits");
            let drawn = ramp(g.y_len() + g.x_len());
            let (dy, x) = drawn.split_at(g.y_len());
            let want = reference::conv2d_backward_weight(dy, x, &g);
            for blocks in [1, 2, g.batch] {
                let what = format!("{g:?}, in {blocks} blocks");
                assert_within(&format!("{what}, f64"), in_blocks(dy, x, &g, blocks).into_iter(), &want, 1e-12);
                let got = in_blocks(&to_f32(dy), &to_f32(x), &g, blocks);
                assert_within(&format!("{what}, f32"), got.into_iter().map(f64::from), &want, 1e-5);
            }
        }
    }

    #[test]
    fn its_bits_do_not_depend_on_the_threads() {
        // Five images in three blocks, which the GEMMs add into M in turn.
        let g = Conv2dGeometry::conv2d([5, 19, 9, 10], [21, 19, 3, 3], [1, 1], [1, 1], [1, 1]).expect("fits");
        let drawn = to_f32(&ramp(g.y_len() + g.x_len()));
        let (dy, x) = drawn.split_at(g.y_len());
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a test pool");
            pool.install(|| in_blocks(dy, x, &g, 3)).iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(on(1), on(3));
    }

    #[test]
    fn in_f32_its_largest_error_stays_within_a_hundred_epsilons_of_the_gradients_scale() {
        // A 256-channel layer, inputs and gradients in [−1, 1): the largest error, in f32's
        // epsilons of the gradient's largest magnitude, is about 4 for the direct cut and 37
        // for Winograd (A's 8 and G's 1/6 and 1/24 magnify the rounding of the transformed
        // values and of the products; the forward's F(4×4, 3×3) makes 80).
        let g = Conv2dGeometry::conv2d([2, 256, 16, 16], [256, 256, 3, 3], [1, 1], [1, 1], [1, 1]).expect("fits");
        let mut rng = crate::rng::Rng::new(7);
        let x: Vec<f64> = (0..g.x_len()).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let dy: Vec<f64> = (0..g.y_len()).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let want = reference::conv2d_backward_weight(&dy, &x, &g);
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let largest = |got: Vec<f32>| got.iter().zip(&want).fold(0.0f64, |m, (&a, &e)| m.max((f64::from(a) - e).abs()));
        let winograd =
            largest(conv2d_backward_weight(&to_f32(&dy), &to_f32(&x), &g)) / (f64::from(f32::EPSILON) * scale);
        assert!(winograd <= 100.0, "largest error {winograd} epsilons of the scale {scale}");
    }
}
