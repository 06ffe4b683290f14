//! 2-D pooling kernels over P = N·C independent [H, W] planes, with PyTorch's semantics
//! (ceil_mode = false, dilation 1): max pool (recording each output's argmax for the
//! backward), average pool (count_include_pad = true) and global average pool. Every kernel
//! is parallel over planes, so backward scatter-adds never race.

use rayon::prelude::*;

use super::reduce::sum_map_f64;
use crate::descriptors::Pool2dGeometry;
use crate::dtype::Float;

/// The input rows output row `oy` pools over.
fn rows(g: &Pool2dGeometry, oy: usize) -> Window {
    window(oy, g.kernel[0], g.stride[0], g.padding[0], g.h)
}

/// The input columns output column `ox` pools over.
fn cols(g: &Pool2dGeometry, ox: usize) -> Window {
    window(ox, g.kernel[1], g.stride[1], g.padding[1], g.w)
}

/// The input range one output position pools over along one axis: `lo..hi`, clamped to the
/// input, and `padded`, the window's length counting padding (PyTorch's count_include_pad
/// divisor, which stops at the far padding edge).
#[derive(Clone, Copy, Debug)]
struct Window {
    lo: usize,
    hi: usize,
    padded: usize,
}

fn window(o: usize, k: usize, s: usize, p: usize, n: usize) -> Window {
    let start = (o * s) as isize - p as isize;
    let end = (start + k as isize).min((n + p) as isize);
    Window { lo: start.max(0) as usize, hi: end.min(n as isize) as usize, padded: (end - start) as usize }
}

// ---------------------------------------------------------------- max pool

/// Max pool. Padding acts as −∞, so only in-bounds elements compete; ties keep the first
/// maximum in row-major order and a NaN wins, the last of several (as in PyTorch). `argmax`
/// holds, for every output, the flat index h·W + w of the chosen element within its own
/// [H, W] input plane (PyTorch's `return_indices` convention). The op guarantees every window
/// holds an input element (padding ≤ kernel/2).
// x: [P, H, W] → y: [P, OH, OW], argmax: [P, OH, OW] (plane-relative indices)
pub fn max_pool2d_forward<T: Float>(x: &[T], g: &Pool2dGeometry) -> (Vec<T>, Vec<usize>) {
    let (plane_in, plane_out) = (g.h * g.w, g.oh * g.ow);
    let mut y = vec![T::ZERO; g.planes * plane_out];
    let mut argmax = vec![0usize; g.planes * plane_out];
    if plane_out == 0 {
        return (y, argmax);
    }
    let padded_len = (g.h + 2 * g.padding[0]) * (g.w + 2 * g.padding[1]);
    y.par_chunks_mut(plane_out).zip(argmax.par_chunks_mut(plane_out)).enumerate().for_each_init(
        || vec![T::NEG_INFINITY; padded_len],
        |padded, (p, (yp, ap))| {
            pad_plane(&x[p * plane_in..(p + 1) * plane_in], g, padded);
            for ((oy, y_row), a_row) in yp.chunks_exact_mut(g.ow).enumerate().zip(ap.chunks_exact_mut(g.ow)) {
                let mut ox = 0;
                while ox + MAX_LANES <= g.ow {
                    max_of_windows::<T, MAX_LANES>(padded, g, [oy, ox], &mut y_row[ox..], &mut a_row[ox..]);
                    ox += MAX_LANES;
                }
                for ox in ox..g.ow {
                    max_of_windows::<T, 1>(padded, g, [oy, ox], &mut y_row[ox..], &mut a_row[ox..]);
                }
            }
        },
    );
    (y, argmax)
}

/// Output columns taken at a time by [`max_of_windows`].
const MAX_LANES: usize = 8;

/// Copies the plane `xp` into the middle of `padded` ([H + 2·PH, W + 2·PW]), whose border
/// stays −∞: every window then lies inside it, and −∞ never beats an element.
fn pad_plane<T: Float>(xp: &[T], g: &Pool2dGeometry, padded: &mut [T]) {
    let [ph, pw] = g.padding;
    let wp = g.w + 2 * pw;
    for (iy, row) in xp.chunks_exact(g.w).enumerate() {
        padded[(iy + ph) * wp + pw..][..g.w].copy_from_slice(row);
    }
}

/// The windows of the LANES output columns from `ox` in output row `oy`, side by side on the
/// padded plane: each column's running max is its own chain, so the compares of neighbouring
/// columns overlap instead of each waiting on the last (one window at a time, with a branch
/// per element, ResNet-18's 3×3 pool of 4,096 16×16 planes took 1.6 ms against 0.9, Zen 5).
/// Per column
/// the window's elements in row-major order, the first maximum kept and a NaN winning; the
/// argmax starts at the window's first element inside the plane (the answer when every
/// element is −∞) and is given in the plane's own coordinates.
fn max_of_windows<T: Float, const LANES: usize>(
    padded: &[T],
    g: &Pool2dGeometry,
    [oy, ox]: [usize; 2],
    y: &mut [T],
    arg: &mut [usize],
) {
    let ([kh, kw], [sh, sw], [ph, pw]) = (g.kernel, g.stride, g.padding);
    let wp = g.w + 2 * pw;
    let (top, left) = (oy * sh, ox * sw);
    let mut best = [T::NEG_INFINITY; LANES];
    // Which element of each window is the max so far, counted row-major from the window's
    // corner; u32::MAX until one beats −∞.
    let mut tap = [u32::MAX; LANES];
    let mut t = 0;
    for py in top..top + kh {
        for kx in 0..kw {
            let row = &padded[py * wp + left + kx..][..(LANES - 1) * sw + 1];
            let vals: [T; LANES] = std::array::from_fn(|l| row[l * sw]);
            for ((b, a), &v) in best.iter_mut().zip(tap.iter_mut()).zip(&vals) {
                // `|`, not `||`: a short-circuit is a branch on data, and on a step's
                // activations it mispredicted (ResNet-18's pool of 4,096 16×16 planes took
                // 2.9 ms on normal random values against 0.95 with both compares made).
                #[allow(clippy::eq_op)] // v != v is the generic NaN test
                let take = (v > *b) | (v != v);
                *b = if take { v } else { *b };
                *a = if take { t } else { *a };
            }
            t += 1;
        }
    }
    y[..LANES].copy_from_slice(&best);
    for (l, (out, t)) in arg[..LANES].iter_mut().zip(tap).enumerate() {
        let left = left + l * sw;
        // Padded coordinates of the max, or of the window's first element inside the plane.
        let (py, px) = match t {
            u32::MAX => (top.max(ph), left.max(pw)),
            t => (top + t as usize / kw, left + t as usize % kw),
        };
        *out = (py - ph) * g.w + (px - pw);
    }
}

/// Max pool backward. For fixed argmaxes the forward is a selection y_o = x\[argmax_o\], so
/// dx_i = Σ_{o : argmax_o = i} dy_o: each output's gradient is added (overlapping windows
/// may pick the same element) to the input it came from.
// grad_y: [P, OH·OW], argmax: [P, OH·OW] (plane-relative) → grad_x: [P, H·W]
pub fn max_pool2d_backward<T: Float>(gy: &[T], argmax: &[usize], plane_out: usize, plane_in: usize) -> Vec<T> {
    let planes = gy.len().checked_div(plane_out).unwrap_or(0);
    let mut gx = vec![T::ZERO; planes * plane_in];
    if plane_in == 0 || plane_out == 0 {
        return gx;
    }
    gx.par_chunks_mut(plane_in).zip(gy.par_chunks(plane_out).zip(argmax.par_chunks(plane_out))).for_each(
        |(gxp, (gyp, ap))| {
            for (&g, &i) in gyp.iter().zip(ap) {
                gxp[i] += g;
            }
        },
    );
    gx
}

// ---------------------------------------------------------------- average pool

/// Average pool with count_include_pad = true: each output is the sum of the in-bounds
/// elements of its window divided by the window's size counting padding (always KH·KW under
/// ceil_mode = false), summed in row-major order and then divided, as PyTorch does.
// x: [P, H, W] → y: [P, OH, OW]
pub fn avg_pool2d_forward<T: Float>(x: &[T], g: &Pool2dGeometry) -> Vec<T> {
    let (plane_in, plane_out) = (g.h * g.w, g.oh * g.ow);
    let mut y = vec![T::ZERO; g.planes * plane_out];
    if plane_out == 0 {
        return y;
    }
    y.par_chunks_mut(plane_out).enumerate().for_each(|(p, yp)| {
        let xp = &x[p * plane_in..(p + 1) * plane_in];
        for oy in 0..g.oh {
            let r = rows(g, oy);
            for ox in 0..g.ow {
                let c = cols(g, ox);
                let mut sum = T::ZERO;
                for iy in r.lo..r.hi {
                    for &v in &xp[iy * g.w + c.lo..iy * g.w + c.hi] {
                        sum += v;
                    }
                }
                yp[oy * g.ow + ox] = sum / T::from_usize(r.padded * c.padded);
            }
        }
    });
    y
}

/// Average pool backward. In the forward pass y_o = Σ_{i ∈ window(o)} x_i / |window(o)|,
/// so dx_i = Σ_{o : i ∈ window(o)} dy_o / |window(o)|: every output spreads its gradient
/// evenly over the in-bounds elements of its window (the padded part receives nothing).
// grad_y: [P, OH, OW] → grad_x: [P, H, W]
pub fn avg_pool2d_backward<T: Float>(gy: &[T], g: &Pool2dGeometry) -> Vec<T> {
    let (plane_in, plane_out) = (g.h * g.w, g.oh * g.ow);
    let mut gx = vec![T::ZERO; g.planes * plane_in];
    if plane_in == 0 || plane_out == 0 {
        return gx;
    }
    gx.par_chunks_mut(plane_in).zip(gy.par_chunks(plane_out)).for_each(|(gxp, gyp)| {
        for oy in 0..g.oh {
            let r = rows(g, oy);
            for ox in 0..g.ow {
                let c = cols(g, ox);
                let share = gyp[oy * g.ow + ox] / T::from_usize(r.padded * c.padded);
                for iy in r.lo..r.hi {
                    for v in &mut gxp[iy * g.w + c.lo..iy * g.w + c.hi] {
                        *v += share;
                    }
                }
            }
        }
    });
    gx
}

// ---------------------------------------------------------------- global average pool

/// Global average pool: the mean of each plane, accumulated in f64.
// x: [P, S] (S = H·W) → y: [P]
pub fn global_avg_pool2d_forward<T: Float>(x: &[T], plane: usize) -> Vec<T> {
    if plane == 0 {
        return Vec::new();
    }
    x.par_chunks(plane).map(|xp| T::from_f64(sum_map_f64(xp, |v| v) / plane as f64)).collect()
}

/// Global average pool backward: y_p = Σ_s x_{p,s} / S, so dx_{p,s} = dy_p / S.
// grad_y: [P] → grad_x: [P, S]
pub fn global_avg_pool2d_backward<T: Float>(gy: &[T], plane: usize) -> Vec<T> {
    let mut gx = vec![T::ZERO; gy.len() * plane];
    if plane == 0 {
        return gx;
    }
    let inv = T::from_f64(1.0 / plane as f64);
    gx.par_chunks_mut(plane).zip(gy.par_iter()).for_each(|(gxp, &g)| gxp.fill(g * inv));
    gx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn randn(n: usize, rng: &mut Rng) -> Vec<f64> {
        (0..n).map(|_| 0.3 + rng.normal()).collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn assert_adjoint(lhs: f64, rhs: f64) {
        assert!((lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0), "<f(x), g> = {lhs} but <x, f^T(g)> = {rhs}");
    }

    /// A 5×5 plane with distinct values, so every window has one maximum.
    const X5: [f64; 25] = [
        1.0, 5.0, 2.0, 8.0, 3.0, //
        4.0, 9.0, 0.0, 6.0, 7.0, //
        11.0, 3.0, 14.0, 2.0, 5.0, //
        0.0, 13.0, 6.0, 12.0, 1.0, //
        10.0, 2.0, 7.0, 4.0, 15.0,
    ];

    #[test]
    fn max_pool_3x3_stride2_pad1_on_5x5_matches_hand_computed_values() {
        // Window rows (and columns) per output: {0,1}, {1,2,3}, {3,4}.
        let g = Pool2dGeometry::new(1, [5, 5], [3, 3], [2, 2], [1, 1]).unwrap();
        assert_eq!((g.oh, g.ow), (3, 3));
        let (y, arg) = max_pool2d_forward(&X5, &g);
        assert_eq!(y, vec![9.0, 9.0, 8.0, 13.0, 14.0, 12.0, 13.0, 13.0, 15.0]);
        assert_eq!(arg, vec![6, 6, 3, 16, 12, 18, 16, 16, 24]);
    }

    #[test]
    fn max_pool_padding_is_minus_infinity_not_zero() {
        // All-negative input: a zero pad would win every border window.
        let x: Vec<f64> = X5.iter().map(|v| -1.0 - v).collect();
        let g = Pool2dGeometry::new(1, [5, 5], [3, 3], [2, 2], [1, 1]).unwrap();
        let (y, arg) = max_pool2d_forward(&x, &g);
        // The max of −1 − v is at the min of v in each window.
        assert_eq!(y, vec![-2.0, -1.0, -4.0, -1.0, -1.0, -2.0, -1.0, -3.0, -2.0]);
        assert_eq!(arg, vec![0, 7, 4, 15, 7, 19, 15, 21, 19]);
    }

    #[test]
    fn max_pool_ties_keep_the_first_maximum_and_nan_propagates() {
        let g = Pool2dGeometry::new(1, [2, 2], [2, 2], [2, 2], [0, 0]).unwrap();
        let (_, arg) = max_pool2d_forward(&[1.0f32, 3.0, 3.0, 3.0], &g);
        assert_eq!(arg, vec![1]);
        let (y, arg) = max_pool2d_forward(&[1.0f32, f32::NAN, 3.0, 2.0], &g);
        assert!(y[0].is_nan());
        assert_eq!(arg, vec![1]);
    }

    #[test]
    fn max_pool_on_planes_wide_enough_for_columns_side_by_side_matches_the_reference_bit_for_bit() {
        // 8 output columns at a time and single ones after them, beside windows cut by every
        // edge; values from a handful of levels so that windows tie, with NaNs and −∞ between.
        let mut rng = Rng::new(7);
        for (hw, k, s, p) in [
            ([9, 37], [3, 3], [2, 2], [1, 1]),
            ([6, 19], [2, 2], [2, 2], [0, 0]),
            ([5, 23], [3, 2], [1, 1], [1, 1]),
            ([4, 40], [1, 4], [1, 3], [0, 2]),
        ] {
            let g = Pool2dGeometry::new(3, hw, k, s, p).unwrap();
            assert!(g.ow > MAX_LANES, "{hw:?} k{k:?}: {} output columns", g.ow);
            let mut x = (0..g.x_len())
                .map(|_| match rng.below(12) {
                    0 => f64::NAN,
                    1 | 2 => f64::NEG_INFINITY,
                    level => level as f64,
                })
                .collect::<Vec<_>>();
            // The last plane all −∞: each window's answer is its first element inside the plane.
            let plane = g.h * g.w;
            x[2 * plane..].fill(f64::NEG_INFINITY);
            let (y, arg) = max_pool2d_forward(&x, &g);
            let (y_ref, arg_ref) = crate::reference::pool::max_pool2d(&x, &g);
            assert_eq!(arg, arg_ref, "argmax at {hw:?} k{k:?} s{s:?} p{p:?}");
            let bits = |v: &[f64]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&y_ref), "max at {hw:?} k{k:?} s{s:?} p{p:?}");
        }
    }

    #[test]
    fn max_pool_backward_accumulates_where_windows_share_a_maximum() {
        let g = Pool2dGeometry::new(1, [5, 5], [3, 3], [2, 2], [1, 1]).unwrap();
        let (_, arg) = max_pool2d_forward(&X5, &g);
        let gy: Vec<f64> = (1..=9).map(|v| v as f64).collect();
        let gx = max_pool2d_backward(&gy, &arg, 9, 25);
        let mut expect = vec![0.0; 25];
        expect[6] = 1.0 + 2.0;
        expect[3] = 3.0;
        expect[16] = 4.0 + 7.0 + 8.0;
        expect[12] = 5.0;
        expect[18] = 6.0;
        expect[24] = 9.0;
        assert_eq!(gx, expect);
    }

    #[test]
    fn max_pool_backward_is_the_adjoint_of_the_selection() {
        // For a fixed argmax, y = S·x is linear; the backward must be Sᵀ.
        let mut rng = Rng::new(1);
        let (planes, h, w) = (3 * 5, 7, 3);
        let g = Pool2dGeometry::new(planes, [h, w], [3, 2], [2, 1], [1, 1]).unwrap();
        let x = randn(planes * h * w, &mut rng);
        let (y, arg) = max_pool2d_forward(&x, &g);
        let gy = randn(y.len(), &mut rng);
        let gx = max_pool2d_backward(&gy, &arg, g.oh * g.ow, h * w);
        assert_adjoint(dot(&y, &gy), dot(&x, &gx));
    }

    #[test]
    fn avg_pool_3x3_stride2_pad1_counts_the_padding() {
        // x = [[1,2,3],[4,5,6],[7,8,9]]; each window holds 4 real elements of 9 positions.
        let x: Vec<f64> = (1..=9).map(|v| v as f64).collect();
        let g = Pool2dGeometry::new(1, [3, 3], [3, 3], [2, 2], [1, 1]).unwrap();
        let y = avg_pool2d_forward(&x, &g);
        let expect = [12.0 / 9.0, 16.0 / 9.0, 24.0 / 9.0, 28.0 / 9.0];
        for (u, v) in y.iter().zip(&expect) {
            assert!((u - v).abs() < 1e-15, "{y:?} vs {expect:?}");
        }
    }

    #[test]
    fn avg_pool_2x2_stride1_pad1_border_windows_divide_by_four() {
        // x = [[1,2],[3,4]] → 3×3 output; the corner window holds only x[0][0]: 1/4.
        let g = Pool2dGeometry::new(1, [2, 2], [2, 2], [1, 1], [1, 1]).unwrap();
        let y = avg_pool2d_forward(&[1.0f64, 2.0, 3.0, 4.0], &g);
        assert_eq!(y, vec![0.25, 0.75, 0.5, 1.0, 2.5, 1.5, 0.75, 1.75, 1.0]);
    }

    #[test]
    fn avg_pool_backward_is_the_adjoint_of_the_forward() {
        let mut rng = Rng::new(2);
        let (planes, h, w) = (3 * 5, 7, 3);
        for (k, s, p) in [([3, 3], [2, 2], [1, 1]), ([2, 3], [1, 2], [1, 0]), ([3, 1], [3, 1], [0, 0])] {
            let g = Pool2dGeometry::new(planes, [h, w], k, s, p).unwrap();
            let x = randn(planes * h * w, &mut rng);
            let y = avg_pool2d_forward(&x, &g);
            let gy = randn(y.len(), &mut rng);
            let gx = avg_pool2d_backward(&gy, &g);
            assert_adjoint(dot(&y, &gy), dot(&x, &gx));
        }
    }

    #[test]
    fn global_avg_pool_is_the_plane_mean_and_its_backward_the_adjoint() {
        assert_eq!(global_avg_pool2d_forward(&[1.0f64, 2.0, 3.0, 6.0, 0.0, 3.0], 3), vec![2.0, 3.0]);
        let mut rng = Rng::new(3);
        let (planes, plane) = (3 * 5, 7 * 3);
        let x = randn(planes * plane, &mut rng);
        let y = global_avg_pool2d_forward(&x, plane);
        let gy = randn(planes, &mut rng);
        let gx = global_avg_pool2d_backward(&gy, plane);
        assert_adjoint(dot(&y, &gy), dot(&x, &gx));
    }
}
