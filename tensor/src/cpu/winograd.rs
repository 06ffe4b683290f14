//! Winograd's minimal filtering for 3×3 convolutions, F(2×2, 3×3): a rung of the CPU
//! convolution ladder (`cpu::conv::ConvRung::Winograd`), after Lavin and Gray, "Fast
//! Algorithms for Convolutional Neural Networks" (2016).
//!
//! The one idea. Two outputs of a 3-tap filter g over four inputs d,
//!
//!   y0 = d0·g0 + d1·g1 + d2·g2,   y1 = d1·g0 + d2·g1 + d3·g2      (6 multiplications)
//!
//! can be had with 4: transform the filter to u = G·g (4 values) and the inputs to v = Bᵀ·d
//! (4 values), multiply them element by element, m = u ⊙ v, and transform back, y = Aᵀ·m:
//!
//!   Bᵀ = | 1  0 −1  0 |     G = | 1    0    0  |     Aᵀ = | 1  1  1  0 |
//!        | 0  1  1  0 |         | ½    ½    ½  |          | 0  1 −1 −1 |
//!        | 0 −1  1  0 |         | ½   −½    ½  |
//!        | 0  1  0 −1 |         | 0    0    1  |
//!
//! Nested in two dimensions, a 2×2 output tile comes from a 4×4 input tile d and the 3×3 kernel
//! g as Y = Aᵀ·[(G·g·Gᵀ) ⊙ (Bᵀ·d·B)]·A: 16 multiplications where the definition takes 36.
//! A convolution layer sums over input channels too, and the sum commutes with the transforms:
//! for each of the 16 positions ξ of the 4×4 tile,
//!
//!   M_ξ[co, tile] = Σ_ci U_ξ[co, ci] · V_ξ[ci, tile]
//!
//! is a matrix product, [C_out, C_in] · [C_in, tiles]. So the layer is three passes around 16
//! GEMMs: transform every kernel (U, 16·C_out·C_in values), transform every input tile (V),
//! multiply, and transform every M tile back into the output. The GEMMs do 16/36 = 4/9 of
//! im2col's multiply-adds.
//!
//! What it costs instead is memory: V holds 16 values per 4 outputs' worth of input tile and M
//! 16 per 4 outputs, four times the input and the output, and U 16/9 of the weight. This plain
//! form writes each pass out whole (a bounded group of images at a time) for the next to read,
//! where a fast implementation transforms, multiplies and transforms back a cache-sized block
//! of tiles at once (docs/cpu-gemm.md measures what that costs here). The transforms only add,
//! subtract and halve, so the result differs from the definition's by rounding: the tests hold
//! it to the reference tier within 1e-12 of the largest output in f64 and 1e-5 in f32.

use rayon::prelude::*;

use crate::cpu::gemm::{gemm, MatRef};
use crate::descriptors::Conv2dGeometry;
use crate::dtype::Float;

/// Whether the Winograd forward computes this convolution: a 3×3 kernel at stride 1 without
/// dilation (any padding, any sizes).
pub fn applies(g: &Conv2dGeometry) -> bool {
    [g.kh, g.kw] == [3, 3] && g.stride == [1, 1] && g.dilation == [1, 1]
}

/// Tiles transformed and multiplied per pass: enough columns for the GEMMs to run at speed,
/// few enough that V and M (16 values a tile for each channel: 16 MB each at 512 channels)
/// hold about what im2col's buffers hold for the same layers. On a Zen 5, 256 and 1,024 ran
/// B3's deep layers no faster.
const TILES_PER_PASS: usize = 512;

/// Tiles transformed one after another before their values are written out together (see
/// the input and output passes of [`conv2d_forward`]): 16 f32 make one cache line.
const RUN: usize = 16;

/// The 4×4 input tile (row-major) at rows `y0 − pad..`, columns `x0 − pad..` of one image
/// plane, zero outside it.
// plane: [H, W]
fn input_tile<T: Float>(plane: &[T], g: &Conv2dGeometry, y0: usize, x0: usize) -> [T; 16] {
    let [pad_y, pad_x] = g.padding;
    let mut d = [T::ZERO; 16];
    let inside = y0 >= pad_y && x0 >= pad_x && y0 + 4 - pad_y <= g.h && x0 + 4 - pad_x <= g.w;
    if inside {
        for (r, row) in d.chunks_exact_mut(4).enumerate() {
            row.copy_from_slice(&plane[(y0 + r - pad_y) * g.w + x0 - pad_x..][..4]);
        }
        return d;
    }
    for (r, row) in d.chunks_exact_mut(4).enumerate() {
        let Some(iy) = (y0 + r).checked_sub(pad_y).filter(|&iy| iy < g.h) else { continue };
        for (c, value) in row.iter_mut().enumerate() {
            if let Some(ix) = (x0 + c).checked_sub(pad_x).filter(|&ix| ix < g.w) {
                *value = plane[iy * g.w + ix];
            }
        }
    }
    d
}

/// Bᵀ·d for one column (or row) d of a 4×4 input tile.
fn input_1d<T: Float>([d0, d1, d2, d3]: [T; 4]) -> [T; 4] {
    [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
}

/// G·g for one column (or row) g of a 3×3 kernel.
fn filter_1d<T: Float>([g0, g1, g2]: [T; 3]) -> [T; 4] {
    let half = T::from_f64(0.5);
    [g0, half * (g0 + g1 + g2), half * (g0 - g1 + g2), g2]
}

/// Aᵀ·m for one column (or row) m of a 4×4 product tile.
fn output_1d<T: Float>([m0, m1, m2, m3]: [T; 4]) -> [T; 2] {
    [m0 + m1 + m2, m1 - m2 - m3]
}

/// U = G·g·Gᵀ: a 3×3 kernel (row-major) to its 4×4 tile (row-major).
fn filter_transform<T: Float>(g: &[T]) -> [T; 16] {
    let columns: [[T; 4]; 3] = std::array::from_fn(|c| filter_1d([g[c], g[3 + c], g[6 + c]]));
    let mut u = [T::ZERO; 16];
    for r in 0..4 {
        let row = filter_1d([columns[0][r], columns[1][r], columns[2][r]]);
        u[r * 4..r * 4 + 4].copy_from_slice(&row);
    }
    u
}

/// V = Bᵀ·d·B: a 4×4 input tile (row-major) to its transform (row-major).
fn input_transform<T: Float>(d: &[T; 16]) -> [T; 16] {
    let columns: [[T; 4]; 4] = std::array::from_fn(|c| input_1d([d[c], d[4 + c], d[8 + c], d[12 + c]]));
    let mut v = [T::ZERO; 16];
    for r in 0..4 {
        let row = input_1d([columns[0][r], columns[1][r], columns[2][r], columns[3][r]]);
        v[r * 4..r * 4 + 4].copy_from_slice(&row);
    }
    v
}

/// Y = Aᵀ·m·A: a 4×4 product tile (row-major) to its 2×2 outputs (row-major).
fn output_transform<T: Float>(m: &[T; 16]) -> [[T; 2]; 2] {
    let columns: [[T; 2]; 4] = std::array::from_fn(|c| output_1d([m[c], m[4 + c], m[8 + c], m[12 + c]]));
    std::array::from_fn(|r| output_1d([columns[0][r], columns[1][r], columns[2][r], columns[3][r]]))
}

/// Every kernel's U = G·g·Gᵀ, as U[co][ξ][ci]: for each output channel its 16 rows of C_in, so
/// that the transform runs in parallel over output channels and U_ξ is the [C_out, C_in]
/// matrix of row stride 16·C_in.
// w: [C_out, C_in, 3, 3] → u: [C_out, 16, C_in]
fn filter_transforms<T: Float>(w: &[T], c_out: usize, c_in: usize) -> Vec<T> {
    let mut u = vec![T::ZERO; c_out * 16 * c_in];
    u.par_chunks_mut(16 * c_in).zip(w.par_chunks(9 * c_in)).for_each(|(u_co, w_co)| {
        for (ci, g) in w_co.chunks_exact(9).enumerate() {
            for (xi, value) in filter_transform(g).into_iter().enumerate() {
                u_co[xi * c_in + ci] = value;
            }
        }
    });
    u
}

/// y = conv2d(x, w) + bias by F(2×2, 3×3), for a geometry where [`applies`] holds.
// x: [N, C_in, H, W]   w: [C_out, C_in, 3, 3]   bias: [C_out]   ->   y: [N, C_out, OH, OW]
pub fn conv2d_forward<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Conv2dGeometry) -> Vec<T> {
    assert!(applies(g), "Winograd F(2×2, 3×3) computes 3×3 kernels at stride 1 without dilation, got {g:?}");
    let (c_in, c_out, out_plane) = (g.c_in, g.c_out, g.out_plane());
    let mut y = vec![T::ZERO; g.batch * c_out * out_plane];
    if y.is_empty() {
        return y;
    }
    let (tile_rows, tile_cols) = (g.oh.div_ceil(2), g.ow.div_ceil(2));
    let tiles = tile_rows * tile_cols; // per image

    let u = filter_transforms(w, c_out, c_in);

    let images_per_pass = (TILES_PER_PASS / tiles).clamp(1, g.batch);
    let columns = images_per_pass * tiles;
    let mut v = vec![T::ZERO; c_in * 16 * columns]; // V[ci][ξ][tile]
    let mut m = vec![T::ZERO; c_out * 16 * columns]; // M[co][ξ][tile]
    for n0 in (0..g.batch).step_by(images_per_pass) {
        let images = images_per_pass.min(g.batch - n0);
        let cols = images * tiles;

        // V: each input channel's tiles, in parallel over channels. A run of up to 16 tiles is
        // transformed into `block` first, so that each of the 16 rows of V gets one contiguous
        // run (a cache line) instead of one float at a time from every tile.
        let v = &mut v[..c_in * 16 * cols];
        v.par_chunks_mut(16 * cols).enumerate().for_each(|(ci, v_ci)| {
            let mut block = [[T::ZERO; RUN]; 16];
            for image in 0..images {
                let plane = &x[((n0 + image) * c_in + ci) * g.h * g.w..][..g.h * g.w];
                for ty in 0..tile_rows {
                    for tx0 in (0..tile_cols).step_by(RUN) {
                        let run = RUN.min(tile_cols - tx0);
                        for j in 0..run {
                            let v_tile = input_transform(&input_tile(plane, g, 2 * ty, 2 * (tx0 + j)));
                            for (row, value) in block.iter_mut().zip(v_tile) {
                                row[j] = value;
                            }
                        }
                        let column = image * tiles + ty * tile_cols + tx0;
                        for (xi, row) in block.iter().enumerate() {
                            v_ci[xi * cols + column..][..run].copy_from_slice(&row[..run]);
                        }
                    }
                }
            }
        });

        // M_ξ = U_ξ · V_ξ, 16 GEMMs on strided views (each parallel inside).
        let m = &mut m[..c_out * 16 * cols];
        for xi in 0..16 {
            let u_xi = MatRef { data: &u[xi * c_in..], rows: c_out, cols: c_in, row_stride: 16 * c_in, col_stride: 1 };
            let v_xi = MatRef { data: &v[xi * cols..], rows: c_in, cols, row_stride: 16 * cols, col_stride: 1 };
            gemm(u_xi, v_xi, &mut m[xi * cols..], 16 * cols, false);
        }

        // Y: each output plane from its channel's M tiles, in parallel over planes, a run of
        // up to 16 tiles read from each row of M at a time.
        let y_pass = &mut y[n0 * c_out * out_plane..][..images * c_out * out_plane];
        y_pass.par_chunks_mut(out_plane).enumerate().for_each(|(p, y_plane)| {
            let (image, co) = (p / c_out, p % c_out);
            let m_co = &m[co * 16 * cols..][..16 * cols];
            let b = bias.map_or(T::ZERO, |b| b[co]);
            let mut block = [[T::ZERO; 16]; RUN]; // a run of tiles, each its 16 values
            for ty in 0..tile_rows {
                for tx0 in (0..tile_cols).step_by(RUN) {
                    let run = RUN.min(tile_cols - tx0);
                    let column = image * tiles + ty * tile_cols + tx0;
                    for xi in 0..16 {
                        for (tile, &value) in block.iter_mut().zip(&m_co[xi * cols + column..][..run]) {
                            tile[xi] = value;
                        }
                    }
                    for (j, tile) in block[..run].iter().enumerate() {
                        let (oy, ox) = (2 * ty, 2 * (tx0 + j));
                        // The last tile row and column hang over an odd output edge.
                        for (r, row) in output_transform(tile).iter().enumerate().filter(|(r, _)| oy + r < g.oh) {
                            for (c, &value) in row.iter().enumerate().filter(|(c, _)| ox + c < g.ow) {
                                y_plane[(oy + r) * g.ow + ox + c] = value + b;
                            }
                        }
                    }
                }
            }
        });
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::conv as reference;
    use crate::rng::Rng;

    #[test]
    fn one_tile_of_the_transforms_is_the_3x3_correlation_of_a_4x4_input() {
        // The identity behind the algorithm, on one tile with no channels to sum: the 2×2
        // outputs of a 3×3 kernel sliding over a 4×4 input, by definition and by Aᵀ[U ⊙ V]A.
        let mut rng = Rng::new(1);
        let d: [f64; 16] = std::array::from_fn(|_| rng.uniform(-1.0, 1.0));
        let k: [f64; 9] = std::array::from_fn(|_| rng.uniform(-1.0, 1.0));
        let (u, v) = (filter_transform(&k), input_transform(&d));
        let product: [f64; 16] = std::array::from_fn(|i| u[i] * v[i]);
        let y = output_transform(&product);
        for (oy, row) in y.iter().enumerate() {
            for (ox, &got) in row.iter().enumerate() {
                let want: f64 = (0..9).map(|t| k[t] * d[(oy + t / 3) * 4 + ox + t % 3]).sum();
                assert!((got - want).abs() < 1e-14, "output ({oy}, {ox}): {got} against {want}");
            }
        }
    }

    #[test]
    fn odd_planes_padding_and_passes_of_several_images_match_the_reference() {
        // Odd output sizes leave half tiles on two edges; padding 0 and 2 put tiles wholly
        // inside and partly outside the image; 300 images of 4 tiles each take three passes,
        // the last one short.
        let mut rng = Rng::new(2);
        for (batch, c_in, c_out, [h, w], pad) in
            [(2, 3, 5, [7, 9], 1), (1, 4, 2, [6, 5], 0), (3, 2, 3, [5, 8], 2), (300, 1, 2, [3, 3], 1)]
        {
            let g = Conv2dGeometry::conv2d([batch, c_in, h, w], [c_out, c_in, 3, 3], [1, 1], [pad, pad], [1, 1])
                .expect("the kernel fits");
            let x: Vec<f64> = (0..batch * c_in * h * w).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let k: Vec<f64> = (0..c_out * c_in * 9).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let b: Vec<f64> = (0..c_out).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let want = reference::conv2d(&x, &k, Some(&b), &g);
            let got = conv2d_forward(&x, &k, Some(&b), &g);
            assert_eq!(got.len(), want.len());
            for (i, (got, want)) in got.iter().zip(&want).enumerate() {
                assert!((got - want).abs() < 1e-12, "{g:?} element {i}: {got} against {want}");
            }
        }
    }

    #[test]
    fn in_f32_a_deep_layers_rounding_stays_within_1e_5_of_its_largest_output() {
        // K = 256·9 = 2,304 terms an output, as in B3's deep layers: the transforms' extra
        // additions must not grow the f32 rounding past what the ladder's tests allow.
        let mut rng = Rng::new(3);
        let (c_in, c_out) = (256, 64);
        let g = Conv2dGeometry::conv2d([2, c_in, 8, 8], [c_out, c_in, 3, 3], [1, 1], [1, 1], [1, 1]).expect("fits");
        let x: Vec<f64> = (0..2 * c_in * 64).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let k: Vec<f64> = (0..c_out * c_in * 9).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let want = reference::conv2d(&x, &k, None, &g);
        let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let got = conv2d_forward(&to32(&x), &to32(&k), None, &g);
        let largest = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let worst = got.iter().zip(&want).fold(0.0f64, |m, (&g, w)| m.max((g as f64 - w).abs()));
        assert!(worst <= 1e-5 * largest, "largest difference {worst} against outputs up to {largest}");
    }

    #[test]
    fn only_3x3_kernels_at_stride_1_without_dilation_apply() {
        let geometry = |k: usize, stride: usize, dilation: usize| {
            Conv2dGeometry::conv2d([1, 1, 9, 9], [1, 1, k, k], [stride; 2], [1, 1], [dilation; 2]).expect("fits")
        };
        assert!(applies(&geometry(3, 1, 1)));
        assert!(!applies(&geometry(3, 2, 1)));
        assert!(!applies(&geometry(3, 1, 2)));
        assert!(!applies(&geometry(5, 1, 1)));
    }
}
