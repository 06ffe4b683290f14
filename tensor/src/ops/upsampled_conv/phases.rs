//! The phases' shapes and layouts that the nearest-upsampled convolution's device arms share
//! (`ops::upsampled_conv`): the quads' sizes from the phases' shape, the view that puts the
//! phases in place, and the 0/1 matrix that takes a 3×3 kernel to its phases' 2×2 kernels.

use crate::cpu::upsampled_conv as kernel;
use crate::error::{shape_err, Result};
use crate::ops::checks::nchw;
use crate::shape::Layout;
use crate::tensor::Tensor;

/// [N, C, H, W] of the output quads for phases of shape [N, 4·C, H + 1, W + 1].
pub(super) fn phase_sizes(op: &'static str, shape: &[usize]) -> Result<[usize; 4]> {
    let [n, c4, ph, pw] = nchw(op, "phases", shape)?;
    if c4 % 4 != 0 || ph < 2 || pw < 2 {
        let msg = format!("phases {shape:?} must have 4·C channels and a plane of at least 2×2 (H + 1, W + 1)");
        return shape_err(op, msg);
    }
    Ok([n, c4 / 4, ph - 1, pw - 1])
}

/// The phases of a contiguous [N, 4·C, H + 1, W + 1] tensor as [N, C, H, 2 (a), W, 2 (b)], so
/// that the view read in row-major order is the interleaved output.
pub(super) fn phase_view([n, c, h, w]: [usize; 4]) -> Layout {
    let (row, plane) = (w + 1, (h + 1) * (w + 1));
    Layout {
        shape: vec![n, c, h, 2, w, 2],
        strides: vec![4 * c * plane, 4 * plane, row, 2 * plane + row, 1, plane + 1],
        offset: 0,
    }
}

/// [`phase_weights`] as a matrix on `like`'s device: taps[ky·3 + kx, (2a + b)·4 + 2ty + tx] is 1
/// where the tap lands, 0 elsewhere.
// taps: [9, 16]
pub(super) fn taps_matrix(like: &Tensor) -> Result<Tensor> {
    let mut taps = vec![0f32; 9 * 16];
    for (k, phase) in (0..9).flat_map(|k| (0..4).map(move |phase| (k, phase))) {
        let (ty, tx) = (kernel::phase_tap(k / 3, phase / 2), kernel::phase_tap(k % 3, phase % 2));
        taps[k * 16 + phase * 4 + 2 * ty + tx] = 1.0;
    }
    Tensor::from_vec(taps, &[9, 16])?.to_device(&like.device())
}
