//! The nearest-upsampled convolution's weight gradient by the transpose of its own Winograd
//! transform (`cpu::upsampled_conv`): 9 products a small pixel and channel pair, where the
//! phases' 2×2 kernels make 16.
//!
//! In one dimension the forward is u = (g₀, g₀ + g₁ + g₂, g₂), v = (x₋₁ − x₀, x₀, x₁ − x₀),
//! y₀ = m₀ + m₁, y₁ = m₁ + m₂ with m = u ⊙ v, for the two outputs (phases) of each small pixel.
//! So ∂L/∂u = Σ_pixels dm ⊙ v with dm = (dy₀, dy₀ + dy₁, dy₁), and ∂L/∂g = (du₀ + du₁, du₁,
//! du₁ + du₂). Nested in two dimensions, each of the 9 values ξ is a GEMM over the pixels,
//! dU_ξ\[co\]\[ci\] = Σ_pixels dM_ξ\[co\]·V_ξ\[ci\], with `cpu::winograd_weight`'s blocks, copies
//! and GEMMs (`summed_products`). A pixel's V holds 9 values for each input channel, 9 times x:
//! on B3's 128→64 layer (32×32 small planes, batch 32) that traffic made it slower than the
//! phases (30.8 ms against 26.6), on its 512-channel layers it took 19.2 and 9.2 ms against 35.1
//! and 32.8 (Zen 5); the tuner times the two ways.

use rayon::prelude::*;

use crate::cpu::vectorized;
use crate::cpu::winograd_4x4::add_to;
use crate::cpu::winograd_blocked::subtract;
use crate::cpu::winograd_weight::{summed_products, Sizes};
use crate::dtype::Float;

/// Channels a transform takes at a time.
const CHANNEL_CHUNK: usize = 64;

/// dW of y = conv2d(upsample_nearest(x, 2), w, stride 1, padding 1).
// grad_y: [N, C_out, 2H, 2W]   x: [N, C_in, H, W]   ->   dw: [C_out, C_in, 3, 3]
pub fn conv2d_nearest_upsampled_backward_weight<T: Float>(
    grad_y: &[T],
    x: &[T],
    sizes: [usize; 4],
    c_out: usize,
) -> Vec<T> {
    in_blocks(grad_y, x, sizes, c_out, products_sizes(sizes, c_out).blocks())
}

/// The sizes [`summed_products`] works on: one small pixel a tile, 9 values.
fn products_sizes([batch, c_in, h, w]: [usize; 4], c_out: usize) -> Sizes {
    Sizes { batch, c_in, c_out, plane: h * w, out_plane: 4 * h * w, tiles: h * w, values: 9 }
}

/// [`conv2d_nearest_upsampled_backward_weight`] with the batch in `blocks` blocks (the tests
/// walk several).
fn in_blocks<T: Float>(grad_y: &[T], x: &[T], sizes: [usize; 4], c_out: usize, blocks: usize) -> Vec<T> {
    let [_, c_in, h, w] = sizes;
    let zeros = || vec![T::ZERO; CHANNEL_CHUNK.min(c_in)];
    let m = summed_products(grad_y, x, &products_sizes(sizes, c_out), blocks, zeros, {
        |pixel, x_image, dy_image, v, u, zeros| {
            let at = [pixel / w.max(1), pixel % w.max(1)];
            vectorized::run(PixelPass { hw: [h, w], c_in, c_out, at, x_image, dy_image, v, u, zeros })
        }
    });
    // dg = (du₀ + du₁, du₁, du₁ + du₂) down each column of dU, then along each row.
    let back = |d: [T; 3]| [d[0] + d[1], d[1], d[1] + d[2]];
    let mut dw = vec![T::ZERO; c_out * c_in * 9];
    let m = &m;
    dw.par_chunks_mut(9 * c_in).enumerate().for_each(|(co, dw_co)| {
        for (ci, z) in dw_co.chunks_exact_mut(9).enumerate() {
            let du = |xi: usize| m[(xi * c_out + co) * c_in + ci];
            let columns: [[T; 3]; 3] = std::array::from_fn(|q| back([du(q), du(3 + q), du(6 + q)]));
            for (ky, z_row) in z.chunks_exact_mut(3).enumerate() {
                z_row.copy_from_slice(&back([columns[0][ky], columns[1][ky], columns[2][ky]]));
            }
        }
    });
    dw
}

/// V and dM of one small pixel (i, j), for every channel: V_pq = D_p(D_q(x)) over the pixel's
/// 3×3 neighbourhood, where D takes (x₋₁, x₀, x₁) to (x₋₁ − x₀, x₀, x₁ − x₀) (zero past the
/// image's edge); dM_pq = S_p(S_q(dy)) over the pixel's 2×2 output quad, where S takes (h₀, h₁)
/// to (h₀, h₀ + h₁, h₁). Each pixel is a row of channels in the channels-last images.
// x_image: [H·W, C_in]   dy_image: [2H·2W, C_out]   ->   v: [9, C_in]   u: [9, C_out]
struct PixelPass<'a, T> {
    hw: [usize; 2],
    c_in: usize,
    c_out: usize,
    at: [usize; 2],
    x_image: &'a [T],
    dy_image: &'a [T],
    v: &'a mut [T],
    u: &'a mut [T],
    zeros: &'a [T],
}

impl<T: Float> vectorized::Work for PixelPass<'_, T> {
    #[inline(always)]
    fn run(self) {
        let PixelPass { hw: [h, w], c_in, c_out, at: [i, j], x_image, dy_image, v, u, zeros } = self;
        for c0 in (0..c_in).step_by(CHANNEL_CHUNK) {
            let len = CHANNEL_CHUNK.min(c_in - c0);
            // x at small row i + r − 1, column j + c − 1.
            let x_at = |r: usize, c: usize| -> &[T] {
                let (y, x) = ((i + r).wrapping_sub(1), (j + c).wrapping_sub(1));
                if y < h && x < w {
                    &x_image[(y * w + x) * c_in + c0..][..len]
                } else {
                    &zeros[..len]
                }
            };
            let centre = x_at(1, 1);
            for (xi, row) in v.chunks_exact_mut(c_in).enumerate() {
                let (p, q) = (xi / 3, xi % 3);
                let out = &mut row[c0..][..len];
                match (p == 1, q == 1) {
                    (true, true) => out.copy_from_slice(centre),
                    (true, false) => subtract(out, x_at(1, q), centre),
                    (false, true) => subtract(out, x_at(p, 1), centre),
                    (false, false) => cross_difference(out, [x_at(p, q), x_at(p, 1), x_at(1, q), centre]),
                }
            }
        }
        for c0 in (0..c_out).step_by(CHANNEL_CHUNK) {
            let len = CHANNEL_CHUNK.min(c_out - c0);
            let dy_at = |a: usize, b: usize| &dy_image[((2 * i + a) * 2 * w + 2 * j + b) * c_out + c0..][..len];
            // S's outputs as the quad's rows (or columns) they sum.
            const SUMS: [&[usize]; 3] = [&[0], &[0, 1], &[1]];
            for (xi, row) in u.chunks_exact_mut(c_out).enumerate() {
                let out = &mut row[c0..][..len];
                out.fill(T::ZERO);
                for &a in SUMS[xi / 3] {
                    for &b in SUMS[xi % 3] {
                        add_to(out, dy_at(a, b));
                    }
                }
            }
        }
    }
}

/// out = (a − b) − (c − d), element by element.
#[inline(always)]
fn cross_difference<T: Float>(out: &mut [T], [a, b, c, d]: [&[T]; 4]) {
    let values = a.iter().zip(b).zip(c.iter().zip(d));
    out.iter_mut().zip(values).for_each(|(o, ((&a, &b), (&c, &d)))| *o = (a - b) - (c - d));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_support::{assert_within, ramp, to_f32};
    use crate::descriptors::Conv2dGeometry;

    #[test]
    fn it_matches_the_weight_gradient_of_the_upsampled_image() {
        // Odd sizes, one pixel, and more channels than a transform takes at a time.
        for (n, c_in, c_out, [h, w]) in [(2, 3, 5, [3, 4]), (1, 2, 2, [1, 1]), (3, 4, 3, [5, 2]), (2, 70, 66, [2, 3])] {
            let g =
                Conv2dGeometry::conv2d([n, c_in, 2 * h, 2 * w], [c_out, c_in, 3, 3], [1, 1], [1, 1], [1, 1]).unwrap();
            let drawn = ramp(g.y_len() + n * c_in * h * w);
            let (dy, x) = drawn.split_at(g.y_len());
            let up: Vec<f64> = (0..g.x_len())
                .map(|k| {
                    let (plane, r) = (k / (4 * h * w), k % (4 * h * w));
                    let (yy, xx) = (r / (2 * w), r % (2 * w));
                    x[plane * h * w + (yy / 2) * w + xx / 2]
                })
                .collect();
            let want = crate::reference::conv::conv2d_backward_weight(dy, &up, &g);
            for blocks in [1, 2, n] {
                let what = format!("batch {n}, {c_in}→{c_out}, {h}×{w}, in {blocks} blocks");
                let got = in_blocks(dy, x, [n, c_in, h, w], c_out, blocks);
                assert_within(&format!("{what}, f64"), got.into_iter(), &want, 1e-12);
                let got = in_blocks(&to_f32(dy), &to_f32(x), [n, c_in, h, w], c_out, blocks);
                assert_within(&format!("{what}, f32"), got.into_iter().map(f64::from), &want, 1e-5);
            }
        }
    }
}
