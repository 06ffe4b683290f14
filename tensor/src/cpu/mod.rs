//! Tier: fast kernels (each held to `crate::reference` by the tests).
//!
//! CPU kernels, parallelised with rayon and generic over the float type (`f32`, `f64`).
//! Kernels take dense row-major slices and explicit sizes; they assume their inputs were
//! validated by the op layer (`crate::ops`) and never allocate more than their output.

pub mod batch_norm;
pub mod caching_allocator;
pub mod concat;
pub mod conv;
pub mod copy;
pub mod elementwise;
pub mod gemm;
pub mod indirect;
pub mod interpolate;
pub mod optim;
pub mod phase_grid;
pub mod pool;
pub mod reduce;
pub mod shifted_rows;
pub mod tuning;
pub mod upsampled_conv;
mod vectorized;
pub mod winograd;
pub mod winograd_4x4;
pub mod winograd_blocked;

/// What the convolution kernels' unit tests share: their inputs and their comparison with the
/// reference tier.
#[cfg(test)]
pub(crate) mod test_support {
    /// sin(0.37·i) for i < len: smooth, of both signs, never all equal.
    pub fn ramp(len: usize) -> Vec<f64> {
        (0..len).map(|i| (i as f64 * 0.37).sin()).collect()
    }

    /// The values rounded to f32.
    pub fn to_f32(v: &[f64]) -> Vec<f32> {
        v.iter().map(|&a| a as f32).collect()
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
