//! conv2d's weight gradient by Winograd's F(3×3, 2×2): a cut the tuner may choose for
//! backward-weight at 3×3 kernels, stride 1, beside `cpu::winograd_blocked`'s forward.
//!
//! The weight gradient of a 3×3 kernel is, for every 2×2 tile H of dy and the 4×4 tile D of x
//! under it, the 3×3 valid correlation Z = Σ_(a,b) H(a, b)·D(a + i, b + j), summed over the
//! tiles. Winograd's algorithm for it (the transpose of the forward's F(2×2, 3×3): the same
//! points, the roles of its matrices exchanged) is Z = Gᵀ·[(A·H·Aᵀ) ⊙ (Bᵀ·D·B)]·G, with Bᵀ the
//! forward's input transform, A = [[1, 0], [1, 1], [1, −1], [0, −1]] and Gᵀ = [[1, ½, ½, 0],
//! [0, ½, −½, 0], [0, ½, ½, 1]]. The sum over tiles moves inside: for each of the 16 values ξ,
//! M_ξ\[co\]\[ci\] = Σ_tiles U_ξ\[co\]\[tile\]·V_ξ\[ci\]\[tile\] is a GEMM whose depth is the tiles, and
//! dW = Gᵀ·M·G once at the end. That is 16 multiply-adds a tile for each pair of channels
//! where the direct sum makes 36, 2.25 times fewer.
//!
//! The tiles go a block of tile rows at a time, so that a block's U and V stay in cache from
//! their transforms to the GEMMs: V as `cpu::winograd_blocked` writes it for the forward
//! (the channels in parallel), U likewise along the tile rows, then the 16 GEMMs in parallel,
//! each adding into its own M_ξ on one thread. The blocks run in order, so the sums' order, and
//! the bits, do not depend on the threads.

use rayon::prelude::*;

use crate::cpu::gemm::{gemm_on_calling_thread, MatRef};
use crate::cpu::vectorized;
use crate::cpu::winograd;
use crate::cpu::winograd_blocked::{InputPass, RowScratch, Tiles};
use crate::descriptors::Conv2dGeometry;
use crate::dtype::Float;

/// Gᵀ of F(3×3, 2×2), row by row: Z = Gᵀ·M·G.
const G_T: [[f64; 4]; 3] = [[1.0, 0.5, 0.5, 0.0], [0.0, 0.5, -0.5, 0.0], [0.0, 0.5, 0.5, 1.0]];

/// A block's U and V together hold about this many values (2 MiB of f32): the GEMMs read them
/// while they are in L2 or L3, and each GEMM is still hundreds of tiles deep.
const BLOCK_VALUES: usize = 1 << 19;

/// dW = ∂L/∂w by F(3×3, 2×2) (see the module docs), for a geometry where
/// [`winograd::applies`] holds.
// grad_y: [N, C_out, OH, OW]   x: [N, C_in, H, W]   ->   dw: [C_out, C_in, 3, 3]
pub fn conv2d_backward_weight<T: Float>(grad_y: &[T], x: &[T], g: &Conv2dGeometry) -> Vec<T> {
    let per_row = g.ow.div_ceil(2);
    let rows = (BLOCK_VALUES / (16 * (g.c_in + g.c_out) * per_row).max(1)).max(1);
    in_blocks(grad_y, x, g, rows)
}

/// [`conv2d_backward_weight`] in blocks of `rows` tile rows (the tests walk several).
fn in_blocks<T: Float>(grad_y: &[T], x: &[T], g: &Conv2dGeometry, rows: usize) -> Vec<T> {
    assert!(winograd::applies(g), "Winograd F(3×3, 2×2) computes 3×3 kernels at stride 1 without dilation, got {g:?}");
    let (c_in, c_out) = (g.c_in, g.c_out);
    let mut dw = vec![T::ZERO; g.weight_len()];
    if dw.is_empty() || g.batch == 0 || g.out_plane() == 0 {
        return dw;
    }
    let tiles = Tiles { per_image: g.oh.div_ceil(2), per_row: g.ow.div_ceil(2) };
    let tile_rows = g.batch * tiles.per_image;
    let most = rows.min(tile_rows) * tiles.per_row;
    let (mut v, mut u) = (vec![T::ZERO; c_in * 16 * most], vec![T::ZERO; c_out * 16 * most]);
    // M[ξ][co][ci]
    let mut m = vec![T::ZERO; 16 * c_out * c_in];
    for r0 in (0..tile_rows).step_by(rows) {
        let block = r0..(r0 + rows).min(tile_rows);
        let cols = block.len() * tiles.per_row;
        let (v, u) = (&mut v[..c_in * 16 * cols], &mut u[..c_out * 16 * cols]);
        v.par_chunks_mut(16 * cols).enumerate().for_each_init(
            || RowScratch::new(tiles.per_row),
            |scratch, (ci, v_ci)| {
                let channels = Some(ci..ci + 1);
                vectorized::run(InputPass { x, g, tiles, block: block.clone(), channels, v: v_ci, scratch });
            },
        );
        u.par_chunks_mut(16 * cols).enumerate().for_each(|(co, u_co)| {
            vectorized::run(DyPass { grad_y, g, tiles, block: block.clone(), co, u: u_co });
        });
        let (u, v) = (&*u, &*v);
        m.par_chunks_mut(c_out * c_in).enumerate().for_each(|(xi, m_xi)| {
            let u_xi = MatRef { data: &u[xi * cols..], rows: c_out, cols, row_stride: 16 * cols, col_stride: 1 };
            let v_xi = MatRef { data: &v[xi * cols..], rows: c_in, cols, row_stride: 16 * cols, col_stride: 1 };
            gemm_on_calling_thread(u_xi, v_xi.t(), m_xi, c_in, true);
        });
    }
    // dW[co][ci] = Gᵀ·M[co][ci]·G, each M[co][ci] the 16 values M_ξ[co][ci].
    let g_t = G_T.map(|row| row.map(T::from_f64));
    for (pair, z) in dw.chunks_exact_mut(9).enumerate() {
        let m_pair: [T; 16] = std::array::from_fn(|xi| m[xi * c_out * c_in + pair]);
        for (i, z_row) in z.chunks_exact_mut(3).enumerate() {
            for (j, z_ij) in z_row.iter_mut().enumerate() {
                let mut sum = T::ZERO;
                for (p, &gip) in g_t[i].iter().enumerate() {
                    for (q, &gjq) in g_t[j].iter().enumerate() {
                        sum += gip * m_pair[4 * p + q] * gjq;
                    }
                }
                *z_ij = sum;
            }
        }
    }
    dw
}

/// U = A·H·Aᵀ of every 2×2 tile H of dy in the tile rows `block`, for output channel `co`: A
/// takes a pair (h0, h1) to (h0, h0 + h1, h0 − h1, −h1), down the tile's rows and then along
/// them. Past dy's last row or column a tile's values are zero.
// grad_y: [N, C_out, OH, OW] → u: [16, tiles of the block]
struct DyPass<'a, T> {
    grad_y: &'a [T],
    g: &'a Conv2dGeometry,
    tiles: Tiles,
    block: std::ops::Range<usize>,
    co: usize,
    u: &'a mut [T],
}

impl<T: Float> vectorized::Work for DyPass<'_, T> {
    #[inline(always)]
    fn run(self) {
        let DyPass { grad_y, g, tiles, block, co, u } = self;
        let (cols, per_row) = (block.len() * tiles.per_row, tiles.per_row);
        // A tile row's two dy rows, each split into its even and odd columns, and one row of
        // A·H for each.
        let zeros = || vec![T::ZERO; per_row];
        let mut h = [[zeros(), zeros()], [zeros(), zeros()]];
        let (mut left, mut right) = (zeros(), zeros());
        for (r, tile_row) in block.enumerate() {
            let (image, ty) = tiles.image_and_row(tile_row);
            for (a, [even, odd]) in h.iter_mut().enumerate() {
                let oy = 2 * ty + a;
                if oy >= g.oh {
                    even.fill(T::ZERO);
                    odd.fill(T::ZERO);
                    continue;
                }
                let row = &grad_y[((image * g.c_out + co) * g.oh + oy) * g.ow..][..g.ow];
                let mut pairs = row.chunks_exact(2);
                for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(pairs.by_ref()) {
                    (*e, *o) = (pair[0], pair[1]);
                }
                // An odd width: the last tile's second column is past dy's edge.
                if let [last] = pairs.remainder() {
                    (even[per_row - 1], odd[per_row - 1]) = (*last, T::ZERO);
                }
            }
            let [[e0, o0], [e1, o1]] = &h;
            for p in 0..4 {
                // Row p of A·H, down the tiles' columns: h0, h0 + h1, h0 − h1, −h1 ...
                for (out, (top, bottom)) in [(&mut left, (e0, e1)), (&mut right, (o0, o1))] {
                    let pairs = out.iter_mut().zip(top.iter().zip(bottom.iter()));
                    match p {
                        0 => pairs.for_each(|(v, (&t, _))| *v = t),
                        1 => pairs.for_each(|(v, (&t, &b))| *v = t + b),
                        2 => pairs.for_each(|(v, (&t, &b))| *v = t - b),
                        _ => pairs.for_each(|(v, (_, &b))| *v = -b),
                    }
                }
                // ... then ·Aᵀ along each tile's row.
                let row = |q: usize| (4 * p + q) * cols + r * per_row;
                let (l, rt) = (&left, &right);
                u[row(0)..][..per_row].copy_from_slice(l);
                u[row(1)..][..per_row].iter_mut().zip(l.iter().zip(rt)).for_each(|(v, (&a, &b))| *v = a + b);
                u[row(2)..][..per_row].iter_mut().zip(l.iter().zip(rt)).for_each(|(v, (&a, &b))| *v = a - b);
                u[row(3)..][..per_row].iter_mut().zip(rt).for_each(|(v, &b)| *v = -b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_support::{assert_within, ramp, to_f32};
    use crate::reference::conv as reference;

    #[test]
    fn the_winograd_weight_gradient_matches_the_reference() {
        // Odd and even output sides (partial tiles on either edge), padding 0, 1 and 2, one
        // channel and several; blocks of one tile row, of rows that cross from one image into
        // the next, and of every row.
        for (batch, c_in, c_out, [h, w], pad) in [
            (2, 3, 5, [7, 9], 1),
            (1, 4, 2, [6, 5], 0),
            (3, 2, 3, [5, 8], 2),
            (2, 1, 17, [4, 4], 1),
            (5, 6, 1, [3, 3], 1),
        ] {
            let g = Conv2dGeometry::conv2d([batch, c_in, h, w], [c_out, c_in, 3, 3], [1, 1], [pad, pad], [1, 1])
                .expect("the kernel fits");
            let drawn = ramp(g.y_len() + g.x_len());
            let (dy, x) = drawn.split_at(g.y_len());
            let want = reference::conv2d_backward_weight(dy, x, &g);
            let tile_rows = g.batch * g.oh.div_ceil(2);
            for rows in [1, g.oh.div_ceil(2) + 1, tile_rows] {
                let what = format!("{g:?}, blocks of {rows} tile rows");
                assert_within(&format!("{what}, f64"), in_blocks(dy, x, &g, rows).into_iter(), &want, 1e-12);
                let got = in_blocks(&to_f32(dy), &to_f32(x), &g, rows);
                assert_within(&format!("{what}, f32"), got.into_iter().map(f64::from), &want, 1e-5);
            }
        }
    }
}
