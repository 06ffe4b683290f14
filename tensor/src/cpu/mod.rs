//! Tier: fast kernels (each held to `crate::reference` by the tests).
//!
//! CPU kernels, parallelised with rayon and generic over the float type (`f32`, `f64`).
//! Kernels take dense row-major slices and explicit sizes; they assume their inputs were
//! validated by the op layer (`crate::ops`) and never allocate more than their output.

pub mod awake;
pub mod batch_norm;
pub mod caching_allocator;
pub mod concat;
pub mod conv;
pub mod copy;
pub mod direct_weight;
pub mod elementwise;
pub mod gemm;
pub mod indirect;
pub mod indirect_weight;
pub mod interpolate;
pub mod optim;
pub mod phase_grid;
pub mod pool;
pub mod reduce;
pub mod shifted_rows;
pub mod tuning;
pub mod upsampled_conv;
pub mod upsampled_weight;
mod vectorized;
pub mod winograd;
pub mod winograd_4x4;
pub mod winograd_blocked;
pub mod winograd_weight;

/// What the convolution kernels' unit tests share: their inputs and their comparison with the
/// reference tier.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::descriptors::Conv2dGeometry;

    /// sin(0.37·i) for i < len: smooth, of both signs, never all equal.
    pub fn ramp(len: usize) -> Vec<f64> {
        (0..len).map(|i| (i as f64 * 0.37).sin()).collect()
    }

    /// The values rounded to f32.
    pub fn to_f32(v: &[f64]) -> Vec<f32> {
        v.iter().map(|&a| a as f32).collect()
    }

    /// Geometries for the kernels that tile pixels and channels (the indirect GEMMs): 37
    /// output channels (a partial panel of 32, and of the portable 8) and 37 input channels
    /// (partial blocks of 12 and of 16); tiles whose pixels run from one image into the next
    /// and past the last; strides 1 and 2, dilation, padding that puts whole taps outside the
    /// image; a 1×1 plane; one image with more output channels than inputs.
    pub fn odd_geometries() -> Vec<Conv2dGeometry> {
        [
            ([5, 7, 9, 11], [37, 7, 3, 3], [1, 1], [1, 1], [1, 1]),
            ([3, 37, 5, 4], [37, 37, 3, 3], [1, 1], [1, 1], [1, 1]),
            ([4, 9, 10, 7], [6, 9, 3, 3], [2, 2], [1, 1], [1, 1]),
            ([3, 3, 12, 11], [5, 3, 4, 3], [3, 2], [2, 3], [2, 1]),
            ([6, 16, 1, 1], [20, 16, 3, 3], [1, 1], [1, 1], [1, 1]),
            ([1, 24, 6, 6], [64, 24, 3, 3], [1, 1], [1, 1], [1, 1]),
        ]
        .into_iter()
        .map(|(x, w, s, p, d)| Conv2dGeometry::conv2d(x, w, s, p, d).expect("the kernel fits"))
        .collect()
    }

    /// A blocked Winograd forward: (x, w, bias, geometry, tile rows a block) → y.
    pub type InBlocks<T> = fn(&[T], &[T], Option<&[T]>, &Conv2dGeometry, usize) -> Vec<T>;

    /// A blocked Winograd forward of `tile`×`tile` output tiles, `in_blocks(x, w, bias, g,
    /// rows)` in blocks of `rows` tile rows, against the reference in f64 (1e-12) and f32
    /// (1e-5): output sides of every remainder by the tile (partial tiles on two edges);
    /// padding 0, 1, 2 and 4 (beyond the kernel: whole tile rows in the padding); blocks of
    /// one tile row, of rows that do not divide an image, of an image and a half, and of whole
    /// images (the last block short).
    pub fn check_blocks_against_reference(tile: usize, in_blocks_f64: InBlocks<f64>, in_blocks_f32: InBlocks<f32>) {
        for (batch, c_in, c_out, [h, w], pad) in [
            (2, 3, 5, [7, 9], 1),
            (1, 4, 2, [6, 5], 0),
            (3, 2, 3, [5, 8], 2),
            (2, 2, 2, [3, 4], 4),
            (2, 3, 2, [10, 11], 1),
            (5, 1, 2, [1, 1], 1),
        ] {
            let g = Conv2dGeometry::conv2d([batch, c_in, h, w], [c_out, c_in, 3, 3], [1, 1], [pad, pad], [1, 1])
                .expect("the kernel fits");
            let drawn = ramp(g.x_len() + g.weight_len() + c_out);
            let (x, rest) = drawn.split_at(g.x_len());
            let (k, b) = rest.split_at(g.weight_len());
            let want = crate::reference::conv::conv2d(x, k, Some(b), &g);
            let tile_rows = g.oh.div_ceil(tile);
            for rows in [1, 2, tile_rows + tile_rows / 2, 2 * tile_rows] {
                let what = format!("{tile}×{tile} tiles, {g:?}, blocks of {rows} tile rows");
                let got = in_blocks_f64(x, k, Some(b), &g, rows);
                assert_within(&format!("{what}, f64"), got.into_iter(), &want, 1e-12);
                let got = in_blocks_f32(&to_f32(x), &to_f32(k), Some(&to_f32(b)), &g, rows);
                assert_within(&format!("{what}, f32"), got.into_iter().map(f64::from), &want, 1e-5);
            }
        }
    }

    /// Asserts that `got` has `want`'s length and each element lies within `tol` times the
    /// largest of 1 and `want`'s magnitudes of it.
    pub fn assert_within(what: &str, got: impl ExactSizeIterator<Item = f64>, want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (a, e)) in got.zip(want).enumerate() {
            assert!((a - e).abs() <= tol * scale, "{what}: element {i}: {a} vs {e}");
        }
    }
}
