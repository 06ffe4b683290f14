//! Winograd's F(4×4, 3×3) in cache-sized blocks: the larger tile of Lavin and Gray ("Fast
//! Algorithms for Convolutional Neural Networks", 2016), beside F(2×2, 3×3) in blocks
//! (`cpu::winograd_blocked`), whose blocks, passes and packing it keeps.
//!
//! A 6×6 input tile gives a 4×4 output tile with 36 products per input channel: 2.25 an
//! output, against F(2×2, 3×3)'s 4 and the direct form's 9, so the 36 GEMMs do 56 % of the
//! smaller tile's multiply-adds. What it costs:
//!
//! - transforms whose entries are not only 0 and ±1 (Bᵀ has 4 and 5, G has 1/6 and 1/24), so
//!   more arithmetic a value and, in f32, about sixteen times the smaller tile's largest
//!   rounding error (80 epsilons of the output's scale against 5 on a 256-channel layer; a
//!   test holds it under 100);
//! - a U of 36 values a filter against 16, transformed and packed on every call: on a deep
//!   layer over small planes that is most of the work, and the tuner keeps the smaller tile.
//!
//! With the interpolation points 0, ±1, ±2 and ∞ (Lavin and Gray's):
//!
//!   Bᵀ = | 4  0 −5  0  1  0 |    G = |  1/4    0     0   |    Aᵀ = | 1  1  1  1  1  0 |
//!        | 0 −4 −4  1  1  0 |        | −1/6  −1/6  −1/6  |         | 0  1 −1  2 −2  0 |
//!        | 0  4 −4 −1  1  0 |        | −1/6   1/6  −1/6  |         | 0  1  1  4  4  0 |
//!        | 0 −2 −1  2  1  0 |        |  1/24  1/12  1/6  |         | 0  1 −1  8 −8  1 |
//!        | 0  2 −1 −2  1  0 |        |  1/24 −1/12  1/6  |
//!        | 0  4  0 −5  0  1 |        |   0     0     1   |
//!
//! U = G·g·Gᵀ for each kernel, V = Bᵀ·d·B for each tile, 36 GEMMs M_ξ = U_ξ·V_ξ over the
//! input channels, and each output tile Y = Aᵀ·M·A. As in the smaller tile's blocks, the
//! transforms run along whole rows of tiles: an input row is split into its four column phases
//! (tile j reads columns 4j … 4j + 5: phases 0 to 3 at j, then 0 and 1 at j + 1), so that each
//! row of V is a combination of contiguous slices, loops compiled for the widest vectors
//! (`cpu::vectorized`).

use std::mem::MaybeUninit;
use std::ops::Range;

use crate::cpu::gemm::SharedOut;
use crate::cpu::vectorized;
use crate::cpu::winograd;
use crate::cpu::winograd_blocked::{block_rows, kernel_transforms, run_blocks_into_new, Tiles};
use crate::descriptors::Conv2dGeometry;
use crate::dtype::Float;

/// y = conv2d(x, w) + bias by F(4×4, 3×3) in blocks, for a geometry where
/// [`winograd::applies`] holds.
// x: [N, C_in, H, W]   w: [C_out, C_in, 3, 3]   bias: [C_out]   ->   y: [N, C_out, OH, OW]
pub fn conv2d_forward<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry) -> Vec<T> {
    let rows = block_rows::<T>(g.oh.div_ceil(4), g.ow.div_ceil(4), 36, g.c_in, g.c_out);
    in_blocks(x, w, bias, g, rows)
}

/// [`conv2d_forward`] in blocks of `rows` rows of tiles (the tests walk several).
fn in_blocks<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry, rows: usize) -> Vec<T> {
    assert!(winograd::applies(g), "Winograd F(4×4, 3×3) computes 3×3 kernels at stride 1 without dilation, got {g:?}");
    let (c_in, c_out) = (g.c_in, g.c_out);
    let len = g.batch * c_out * g.out_plane();
    if len == 0 {
        return vec![];
    }
    let tiles = Tiles { per_image: g.oh.div_ceil(4), per_row: g.ow.div_ceil(4) };
    let u = kernel_transforms(w, c_out, c_in, &G);
    // SAFETY: every output row lies in one tile row, whose block's output pass writes all of
    // its columns.
    unsafe {
        run_blocks_into_new(
            len,
            &u,
            [c_in, c_out, 36],
            [g.batch * tiles.per_image, tiles.per_row, rows],
            || RowScratch::new(tiles.per_row),
            |block, v, scratch| vectorized::run(InputPass { x, g, tiles, block, v, scratch }),
            |block, m, scratch, out| vectorized::run(OutputPass { m, bias, g, tiles, block, out, scratch }),
        )
    }
}

/// G, Lavin and Gray's kernel transform for F(4, 3), row by row.
pub(crate) const G: [[f64; 3]; 6] = [
    [0.25, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// One task's rows between the transforms, each split into its four column phases.
struct RowScratch<T> {
    /// The six input rows a tile row reads, [row][phase], tiles a row + 1 values each.
    d: [[Vec<T>; 4]; 6],
    /// Bᵀ·d down the columns, [phase][row].
    t: [[Vec<T>; 6]; 4],
    /// M·A along the rows of a tile row's M, [row of M][column of the output tile].
    s: [[Vec<T>; 4]; 6],
    /// Aᵀ·M·A, [output row][column of the output tile].
    y: [[Vec<T>; 4]; 4],
    /// One input row with its padding, before it is split.
    padded: Vec<T>,
}

impl<T: Float> RowScratch<T> {
    fn new(tile_cols: usize) -> RowScratch<T> {
        fn rows<T: Float, const N: usize, const M: usize>(len: usize) -> [[Vec<T>; M]; N] {
            std::array::from_fn(|_| std::array::from_fn(|_| vec![T::ZERO; len]))
        }
        RowScratch {
            d: rows(tile_cols + 1),
            t: rows(tile_cols + 1),
            s: rows(tile_cols),
            y: rows(tile_cols),
            padded: vec![T::ZERO; 4 * (tile_cols + 1)],
        }
    }
}

/// V = Bᵀ·d·B of every tile in the tile rows `block`, for every input channel, into
/// v: [C_in, 36, tiles of the block].
struct InputPass<'a, T> {
    x: &'a [T],
    g: &'a Conv2dGeometry,
    tiles: Tiles,
    block: Range<usize>,
    v: &'a mut [T],
    scratch: &'a mut RowScratch<T>,
}

impl<T: Float> vectorized::Work for InputPass<'_, T> {
    #[inline(always)]
    fn run(self) {
        let InputPass { x, g, tiles, block, v, scratch } = self;
        let (plane, cols, per_row) = (g.h * g.w, block.len() * tiles.per_row, tiles.per_row);
        let RowScratch { d, t, padded, .. } = scratch;
        for (ci, v_ci) in v.chunks_exact_mut(36 * cols).enumerate() {
            for (r, tile_row) in block.clone().enumerate() {
                let (image, ty) = tiles.image_and_row(tile_row);
                let x_plane = &x[(image * g.c_in + ci) * plane..][..plane];
                // Tile row ty reads input rows 4ty … 4ty + 5 (less the padding): the last two
                // of them are the first two of the next tile row.
                let first_new = if r > 0 && ty > 0 {
                    d.swap(0, 4);
                    d.swap(1, 5);
                    2
                } else {
                    0
                };
                for (k, phases) in d.iter_mut().enumerate().skip(first_new) {
                    let iy = (4 * ty + k).checked_sub(g.padding[0]).filter(|&iy| iy < g.h);
                    split_input_row(iy.map(|iy| &x_plane[iy * g.w..][..g.w]), g.padding[1], padded, phases);
                }
                // Bᵀ down the columns, phase by phase ...
                for (phase, [t0, t1, t2, t3, t4, t5]) in t.iter_mut().enumerate() {
                    let column = std::array::from_fn(|k| &d[k][phase][..]);
                    input_1d(column, [t0, t1, t2, t3, t4, t5]);
                }
                // ... then ·B along each row: tile j reads phases 0 to 3 at j and 0, 1 at j + 1.
                for a in 0..6 {
                    let row = |phase: usize, next: usize| &t[phase][a][next..][..per_row];
                    let mut v_rows = v_ci[6 * a * cols..][..6 * cols]
                        .chunks_exact_mut(cols)
                        .map(|v| &mut v[r * per_row..][..per_row]);
                    let v_rows = std::array::from_fn(|_| v_rows.next().expect("six rows of V"));
                    input_1d([row(0, 0), row(1, 0), row(2, 0), row(3, 0), row(0, 1), row(1, 1)], v_rows);
                }
            }
        }
    }
}

/// Y = Aᵀ·M·A + bias of every tile in the tile rows `block`, for every output channel,
/// written into the output rows they cover.
// m: [C_out, 36, tiles of the block] → y: [N, C_out, OH, OW]
struct OutputPass<'a, T> {
    m: &'a [T],
    bias: Option<&'a [T]>,
    g: &'a Conv2dGeometry,
    tiles: Tiles,
    block: Range<usize>,
    out: SharedOut<MaybeUninit<T>>,
    scratch: &'a mut RowScratch<T>,
}

impl<T: Float> vectorized::Work for OutputPass<'_, T> {
    #[inline(always)]
    fn run(self) {
        let OutputPass { m, bias, g, tiles, block, out, scratch } = self;
        let (cols, per_row) = (block.len() * tiles.per_row, tiles.per_row);
        let RowScratch { s, y, .. } = scratch;
        for (co, m_co) in m.chunks_exact(36 * cols).enumerate() {
            let b = bias.map_or(T::ZERO, |b| b[co]);
            for (r, tile_row) in block.clone().enumerate() {
                let (image, ty) = tiles.image_and_row(tile_row);
                // ·A along each row of M ...
                for (a, [s0, s1, s2, s3]) in s.iter_mut().enumerate() {
                    let m_row = |b: usize| &m_co[(6 * a + b) * cols + r * per_row..][..per_row];
                    output_1d(std::array::from_fn(m_row), [s0, s1, s2, s3]);
                }
                // ... then Aᵀ down the columns, one column of the output tiles at a time.
                let [y0, y1, y2, y3] = &mut *y;
                for column in 0..4 {
                    let m = std::array::from_fn(|a| &s[a][column][..]);
                    output_1d(m, [&mut y0[column], &mut y1[column], &mut y2[column], &mut y3[column]]);
                }
                for (oy, [y0, y1, y2, y3]) in y.iter().enumerate().take(g.oh - 4 * ty) {
                    // SAFETY: output row 4ty + oy of (image, co) lies within y, and no other
                    // block writes it: each tile row belongs to one block.
                    let y_row = unsafe { out.slice(((image * g.c_out + co) * g.oh + 4 * ty + oy) * g.ow, g.ow) };
                    let mut quads = y_row.chunks_exact_mut(4);
                    for (quad, (((&y0, &y1), &y2), &y3)) in quads.by_ref().zip(y0.iter().zip(y1).zip(y2).zip(y3)) {
                        quad[0].write(y0 + b);
                        quad[1].write(y1 + b);
                        quad[2].write(y2 + b);
                        quad[3].write(y3 + b);
                    }
                    // An output width that is not a multiple of 4: the last tile's first columns.
                    for (column, value) in quads.into_remainder().iter_mut().enumerate() {
                        value.write([y0, y1, y2, y3][column][per_row - 1] + b);
                    }
                }
            }
        }
    }
}

/// One input row (`None` in the padding) as the four column phases of the padded row a tile
/// row reads: column j of phase p is the row's column 4j + p − pad.
#[inline(always)]
fn split_input_row<T: Float>(row: Option<&[T]>, pad: usize, padded: &mut [T], phases: &mut [Vec<T>; 4]) {
    let Some(row) = row else {
        phases.iter_mut().for_each(|phase| phase.fill(T::ZERO));
        return;
    };
    // The padded row is 4·(tiles a row + 1) ≥ OW + 2 = W + 2·pad columns long.
    let (before, rest) = padded.split_at_mut(pad.min(padded.len()));
    before.fill(T::ZERO);
    let (inside, after) = rest.split_at_mut(row.len().min(rest.len()));
    inside.copy_from_slice(&row[..inside.len()]);
    after.fill(T::ZERO);
    let [p0, p1, p2, p3] = phases;
    let phases = p0.iter_mut().zip(p1.iter_mut()).zip(p2.iter_mut()).zip(p3.iter_mut());
    for ((((p0, p1), p2), p3), quad) in phases.zip(padded.chunks_exact(4)) {
        [*p0, *p1, *p2, *p3] = [quad[0], quad[1], quad[2], quad[3]];
    }
}

/// Bᵀ·d, element by element: the i-th elements of the six `d` rows are one column d_0 … d_5,
/// and the i-th elements of the six `out` rows its transform:
/// 4d_0 − 5d_2 + d_4, (d_4 − 4d_2) ± (d_3 − 4d_1), (d_4 − d_2) ± 2(d_3 − d_1), 4d_1 − 5d_3 + d_5.
///
/// Each row is its own loop over slices that are the loop function's own arguments: with
/// twelve slices in arrays, the compiler could not tell them apart and left the loop scalar.
#[inline(always)]
pub(crate) fn input_1d<T: Float>([d0, d1, d2, d3, d4, d5]: [&[T]; 6], [o0, o1, o2, o3, o4, o5]: [&mut [T]; 6]) {
    let [one, two, four, five] = [1.0, 2.0, 4.0, 5.0].map(T::from_f64);
    first_or_last_row(o0, d0, d2, d4, [four, five]);
    middle_row(o1, d1, d2, d3, d4, [four, one]);
    middle_row(o2, d1, d2, d3, d4, [four, -one]);
    middle_row(o3, d1, d2, d3, d4, [one, two]);
    middle_row(o4, d1, d2, d3, d4, [one, -two]);
    first_or_last_row(o5, d1, d3, d5, [four, five]);
}

/// out = a·a_scale − b·b_scale + c: rows 0 and 5 of Bᵀ·d.
#[inline(always)]
fn first_or_last_row<T: Float>(out: &mut [T], a: &[T], b: &[T], c: &[T], [a_scale, b_scale]: [T; 2]) {
    let values = a.iter().zip(b).zip(c);
    out.iter_mut().zip(values).for_each(|(o, ((&a, &b), &c))| *o = a * a_scale - b * b_scale + c);
}

/// out = (d_4 − s·d_2) + k·(d_3 − s·d_1): rows 1 to 4 of Bᵀ·d.
#[inline(always)]
fn middle_row<T: Float>(out: &mut [T], d1: &[T], d2: &[T], d3: &[T], d4: &[T], [s, k]: [T; 2]) {
    let values = d1.iter().zip(d2).zip(d3).zip(d4);
    out.iter_mut().zip(values).for_each(|(o, (((&d1, &d2), &d3), &d4))| *o = (d4 - s * d2) + k * (d3 - s * d1));
}

/// Aᵀ·m, element by element, as [`input_1d`]: m_0 + (m_1 + m_2) + (m_3 + m_4),
/// (m_1 − m_2) + 2(m_3 − m_4), (m_1 + m_2) + 4(m_3 + m_4), (m_1 − m_2) + 8(m_3 − m_4) + m_5.
#[inline(always)]
fn output_1d<T: Float>([m0, m1, m2, m3, m4, m5]: [&[T]; 6], [o0, o1, o2, o3]: [&mut [T]; 4]) {
    let [one, two, four, eight] = [1.0, 2.0, 4.0, 8.0].map(T::from_f64);
    output_row(o0, m1, m2, m3, m4, [one, one]);
    add_to(o0, m0);
    output_row(o1, m1, m2, m3, m4, [-one, two]);
    output_row(o2, m1, m2, m3, m4, [one, four]);
    output_row(o3, m1, m2, m3, m4, [-one, eight]);
    add_to(o3, m5);
}

/// out = (m_1 + s·m_2) + k·(m_3 + s·m_4), s = ±1: a row of Aᵀ·m less its m_0 or m_5.
#[inline(always)]
fn output_row<T: Float>(out: &mut [T], m1: &[T], m2: &[T], m3: &[T], m4: &[T], [s, k]: [T; 2]) {
    let values = m1.iter().zip(m2).zip(m3).zip(m4);
    out.iter_mut().zip(values).for_each(|(o, (((&m1, &m2), &m3), &m4))| *o = (m1 + s * m2) + k * (m3 + s * m4));
}

/// out += a, element by element.
#[inline(always)]
pub(crate) fn add_to<T: Float>(out: &mut [T], a: &[T]) {
    out.iter_mut().zip(a).for_each(|(o, &a)| *o += a);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_support::{assert_within, check_blocks_against_reference, ramp, to_f32};
    use crate::reference::conv as reference;

    #[test]
    fn blocks_of_tile_rows_equal_the_reference_in_f64_and_f32() {
        check_blocks_against_reference(4, in_blocks::<f64>, in_blocks::<f32>);
    }

    #[test]
    fn it_gives_the_smaller_tiles_values_on_a_deep_layer() {
        // 256 channels in, 9×9 planes (partial tiles), two images in one block, as the deep
        // layers of the residual decoders run.
        let g = Conv2dGeometry::conv2d([2, 256, 9, 9], [16, 256, 3, 3], [1, 1], [1, 1], [1, 1]).expect("fits");
        let drawn = ramp(g.x_len() + g.weight_len());
        let (x, k) = drawn.split_at(g.x_len());
        let want = reference::conv2d(x, k, None, &g);
        assert_within("4×4 tiles", conv2d_forward(x, k, None, &g).into_iter(), &want, 1e-12);
        let smaller = crate::cpu::winograd_blocked::conv2d_forward(x, k, None, &g);
        assert_within("2×2 tiles", smaller.into_iter(), &want, 1e-12);
    }

    #[test]
    fn in_f32_its_largest_error_stays_within_a_hundred_epsilons_of_the_outputs_scale() {
        // A 256-channel layer with He-uniform weights, inputs in [−1, 1): the largest error,
        // in f32's epsilons of the output's largest magnitude, is about 3 for the direct GEMM,
        // 5 for the smaller tile and 80 for this one (Bᵀ's 4 and 5 and Aᵀ's 8 magnify the
        // rounding of the transformed inputs and of the products).
        let g = Conv2dGeometry::conv2d([2, 256, 16, 16], [256, 256, 3, 3], [1, 1], [1, 1], [1, 1]).expect("fits");
        let mut rng = crate::rng::Rng::new(7);
        let x: Vec<f64> = (0..g.x_len()).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let bound = (6.0 / (9.0 * 256.0f64)).sqrt();
        let w: Vec<f64> = (0..g.weight_len()).map(|_| rng.uniform(-bound, bound)).collect();
        let want = reference::conv2d(&x, &w, None, &g);
        let got = conv2d_forward(&to_f32(&x), &to_f32(&w), None, &g);
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let largest = got.iter().zip(&want).fold(0.0f64, |m, (&a, &e)| m.max((f64::from(a) - e).abs()));
        assert!(largest <= 100.0 * f64::from(f32::EPSILON) * scale, "largest error {largest:e} at scale {scale}");
    }
}
