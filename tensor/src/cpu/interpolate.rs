//! Integer-factor 2-D upsampling of P = N·C independent [H, W] planes to [H·s, W·s]:
//! nearest and bilinear with align_corners = false, matching PyTorch's
//! `F.interpolate(x, scale_factor=s, mode=...)`, and their backwards (scatter-adds, parallel
//! over planes so no two tasks write the same element).

use rayon::prelude::*;

use crate::dtype::Float;

// ---------------------------------------------------------------- nearest

/// Nearest upsampling: y[oy, ox] = x[oy / s, ox / s]. PyTorch computes the source as
/// min(⌊dst · (1/s)⌋, in − 1) in f32, which equals the integer division dst / s for every
/// practical size and factor.
// x: [P, H, W] → y: [P, H·s, W·s]
pub fn upsample_nearest2d_forward<T: Float>(x: &[T], planes: usize, h: usize, w: usize, s: usize) -> Vec<T> {
    let (oh, ow) = (h * s, w * s);
    let mut y = vec![T::ZERO; planes * oh * ow];
    if oh * ow == 0 {
        return y;
    }
    let src: Vec<usize> = (0..ow).map(|ox| ox / s).collect();
    y.par_chunks_mut(oh * ow).zip(x.par_chunks(h * w)).for_each(|(yp, xp)| {
        // The s output rows of input row iy are equal: fill the first, copy it to the rest.
        for (block, xrow) in yp.chunks_exact_mut(s * ow).zip(xp.chunks_exact(w)) {
            let (first, rest) = block.split_at_mut(ow);
            for (v, &ix) in first.iter_mut().zip(&src) {
                *v = xrow[ix];
            }
            for row in rest.chunks_exact_mut(ow) {
                row.copy_from_slice(first);
            }
        }
    });
    y
}

/// Nearest upsampling backward. Each input element was copied to an s×s block of outputs, so
/// dx[iy, ix] = Σ_{oy / s = iy, ox / s = ix} dy[oy, ox] (accumulated in output order).
// grad_y: [P, H·s, W·s] → grad_x: [P, H, W]
pub fn upsample_nearest2d_backward<T: Float>(gy: &[T], planes: usize, h: usize, w: usize, s: usize) -> Vec<T> {
    let (oh, ow) = (h * s, w * s);
    let mut gx = vec![T::ZERO; planes * h * w];
    if oh * ow == 0 {
        return gx;
    }
    gx.par_chunks_mut(h * w).zip(gy.par_chunks(oh * ow)).for_each(|(gxp, gyp)| {
        for (oy, grow) in gyp.chunks_exact(ow).enumerate() {
            let xrow = &mut gxp[(oy / s) * w..(oy / s + 1) * w];
            for (ox, &g) in grow.iter().enumerate() {
                xrow[ox / s] += g;
            }
        }
    });
    gx
}

// ---------------------------------------------------------------- bilinear

/// Where one output row (or column) reads from: inputs i0 and i1 with weights l0 and l1.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tap<T> {
    i0: usize,
    i1: usize,
    l0: T,
    l1: T,
}

/// PyTorch's source index for align_corners = false with scale factor s:
///   src = max((dst + 0.5)/s − 0.5, 0),  i0 = min(⌊src⌋, n − 1),  i1 = min(i0 + 1, n − 1),
///   l1 = src − i0,  l0 = 1 − l1
/// computed in T with the ratio 1/s, as PyTorch's opmath does.
fn taps<T: Float>(n: usize, s: usize) -> Vec<Tap<T>> {
    let ratio = T::from_f64(1.0 / s as f64);
    let half = T::from_f64(0.5);
    (0..n * s)
        .map(|dst| {
            let src = (ratio * (T::from_usize(dst) + half) - half).max(T::ZERO);
            let i0 = (src.floor().to_f64() as usize).min(n - 1);
            let i1 = if i0 < n - 1 { i0 + 1 } else { i0 };
            let l1 = (src - T::from_usize(i0)).max(T::ZERO).min(T::ONE);
            Tap { i0, i1, l0: T::ONE - l1, l1 }
        })
        .collect()
}

/// Bilinear upsampling (align_corners = false):
///   y[oy, ox] = r.l0·(c.l0·x[r.i0, c.i0] + c.l1·x[r.i0, c.i1]) + r.l1·(c.l0·x[r.i1, c.i0] + c.l1·x[r.i1, c.i1])
/// with r = taps(oy), c = taps(ox), in PyTorch's order of operations. The bracketed horizontal
/// blends depend only on the input row, so each plane first blends all H input rows to width
/// W·s (`hx`) and every output row is then r.l0·hx[r.i0] + r.l1·hx[r.i1]: the same
/// arithmetic, with each horizontal blend done once instead of about s times.
// x: [P, H, W] → y: [P, H·s, W·s]
pub fn upsample_bilinear2d_forward<T: Float>(x: &[T], planes: usize, h: usize, w: usize, s: usize) -> Vec<T> {
    let (oh, ow) = (h * s, w * s);
    let mut y = vec![T::ZERO; planes * oh * ow];
    if oh * ow == 0 {
        return y;
    }
    let (rows, cols) = (taps::<T>(h, s), taps::<T>(w, s));
    y.par_chunks_mut(oh * ow).zip(x.par_chunks(h * w)).for_each_init(
        || vec![T::ZERO; h * ow],
        |hx, (yp, xp)| {
            // hx: [H, W·s]
            for (hrow, xrow) in hx.chunks_exact_mut(ow).zip(xp.chunks_exact(w)) {
                for (v, c) in hrow.iter_mut().zip(&cols) {
                    *v = c.l0 * xrow[c.i0] + c.l1 * xrow[c.i1];
                }
            }
            for (yrow, r) in yp.chunks_exact_mut(ow).zip(&rows) {
                let (h0, h1) = (&hx[r.i0 * ow..(r.i0 + 1) * ow], &hx[r.i1 * ow..(r.i1 + 1) * ow]);
                for ((v, &a), &b) in yrow.iter_mut().zip(h0).zip(h1) {
                    *v = r.l0 * a + r.l1 * b;
                }
            }
        },
    );
    y
}

/// Bilinear upsampling backward. The forward is linear and separable, y = V·(x·Hᵀ) with the
/// row taps V: [H·s, H] and column taps H: [W·s, W] (two weights per row of each), so
/// dx = Vᵀ·dy·H, computed in the reverse order of the forward:
///   t = Vᵀ·dy:   t[r.iA, :] += r.lA·dy[oy, :]         t: [H, W·s]
///   dx = t·H:    dx[i, c.iB] += c.lB·t[i, ox]          (A, B ∈ {0, 1})
/// which adds r.lA·c.lB·dy[oy, ox] to each of the four taps of every output, as PyTorch does.
// grad_y: [P, H·s, W·s] → grad_x: [P, H, W]
pub fn upsample_bilinear2d_backward<T: Float>(gy: &[T], planes: usize, h: usize, w: usize, s: usize) -> Vec<T> {
    let (oh, ow) = (h * s, w * s);
    let mut gx = vec![T::ZERO; planes * h * w];
    if oh * ow == 0 {
        return gx;
    }
    let (rows, cols) = (taps::<T>(h, s), taps::<T>(w, s));
    gx.par_chunks_mut(h * w).zip(gy.par_chunks(oh * ow)).for_each_init(
        || vec![T::ZERO; h * ow],
        |t, (gxp, gyp)| {
            t.fill(T::ZERO);
            for (grow, r) in gyp.chunks_exact(ow).zip(&rows) {
                // i1 may equal i0 (bottom edge), so add to the two rows one after the other.
                for (i, l) in [(r.i0, r.l0), (r.i1, r.l1)] {
                    for (v, &g) in t[i * ow..(i + 1) * ow].iter_mut().zip(grow) {
                        *v += l * g;
                    }
                }
            }
            for (xrow, trow) in gxp.chunks_exact_mut(w).zip(t.chunks_exact(ow)) {
                for (&g, c) in trow.iter().zip(&cols) {
                    xrow[c.i0] += c.l0 * g;
                    xrow[c.i1] += c.l1 * g;
                }
            }
        },
    );
    gx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn randn(n: usize, rng: &mut Rng) -> Vec<f64> {
        (0..n).map(|_| -0.2 + rng.normal()).collect()
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn assert_adjoint(lhs: f64, rhs: f64) {
        assert!((lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0), "<f(x), g> = {lhs} but <x, f^T(g)> = {rhs}");
    }

    #[test]
    fn bilinear_x2_of_2x2_matches_pytorch() {
        // F.interpolate(torch.tensor([[[[1., 2.], [3., 4.]]]]), scale_factor=2, mode='bilinear', align_corners=False)
        let y = upsample_bilinear2d_forward(&[1.0f32, 2.0, 3.0, 4.0], 1, 2, 2, 2);
        #[rustfmt::skip]
        let expect = [
            1.0, 1.25, 1.75, 2.0,
            1.5, 1.75, 2.25, 2.5,
            2.5, 2.75, 3.25, 3.5,
            3.0, 3.25, 3.75, 4.0,
        ];
        assert_eq!(y, expect);
    }

    #[test]
    fn bilinear_x3_of_1x3_matches_pytorch() {
        // F.interpolate(torch.tensor([[[[0., 3., 9.]]]]), scale_factor=3, mode='bilinear', align_corners=False)
        // src = (dst + 0.5)/3 − 0.5 = −1/3, 0, 1/3, 2/3, 1, 4/3, 5/3, 2, 7/3 (clamped at 0; ≥ 2 reads the edge)
        let y = upsample_bilinear2d_forward(&[0.0f64, 3.0, 9.0], 1, 1, 3, 3);
        assert_eq!(y.len(), 3 * 9);
        let row = [0.0, 0.0, 1.0, 2.0, 3.0, 5.0, 7.0, 9.0, 9.0];
        for r in 0..3 {
            for (u, v) in y[r * 9..(r + 1) * 9].iter().zip(&row) {
                assert!((u - v).abs() < 1e-14, "{y:?}");
            }
        }
    }

    #[test]
    fn separable_bilinear_is_bit_identical_to_the_direct_four_tap_formula() {
        let mut rng = Rng::new(6);
        let (planes, h, w) = (2, 5, 7);
        let x: Vec<f32> = (0..planes * h * w).map(|_| rng.normal() as f32).collect();
        for s in [2, 3, 4] {
            let (rows, cols) = (taps::<f32>(h, s), taps::<f32>(w, s));
            let mut direct = Vec::new();
            for xp in x.chunks_exact(h * w) {
                for r in &rows {
                    for c in &cols {
                        let (x0, x1) = (&xp[r.i0 * w..], &xp[r.i1 * w..]);
                        direct.push(
                            r.l0 * (c.l0 * x0[c.i0] + c.l1 * x0[c.i1]) + r.l1 * (c.l0 * x1[c.i0] + c.l1 * x1[c.i1]),
                        );
                    }
                }
            }
            assert_eq!(upsample_bilinear2d_forward(&x, planes, h, w, s), direct, "scale {s}");
        }
    }

    #[test]
    fn nearest_x2_repeats_each_element_in_a_2x2_block() {
        let y = upsample_nearest2d_forward(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], 1, 2, 3, 2);
        #[rustfmt::skip]
        let expect = [
            1.0, 1.0, 2.0, 2.0, 3.0, 3.0,
            1.0, 1.0, 2.0, 2.0, 3.0, 3.0,
            4.0, 4.0, 5.0, 5.0, 6.0, 6.0,
            4.0, 4.0, 5.0, 5.0, 6.0, 6.0,
        ];
        assert_eq!(y, expect);
    }

    #[test]
    fn nearest_backward_sums_each_block() {
        let gy: Vec<f64> = (0..16).map(|v| v as f64).collect();
        let gx = upsample_nearest2d_backward(&gy, 1, 2, 2, 2);
        assert_eq!(
            gx,
            vec![0.0 + 1.0 + 4.0 + 5.0, 2.0 + 3.0 + 6.0 + 7.0, 8.0 + 9.0 + 12.0 + 13.0, 10.0 + 11.0 + 14.0 + 15.0]
        );
    }

    #[test]
    fn upsample_backwards_are_the_adjoints_of_the_forwards() {
        let mut rng = Rng::new(4);
        let (planes, h, w) = (3 * 5, 7, 3);
        for s in [1, 2, 3] {
            let x = randn(planes * h * w, &mut rng);
            let gy = randn(planes * h * s * w * s, &mut rng);
            let y = upsample_nearest2d_forward(&x, planes, h, w, s);
            let gx = upsample_nearest2d_backward(&gy, planes, h, w, s);
            assert_adjoint(dot(&y, &gy), dot(&x, &gx));
            let y = upsample_bilinear2d_forward(&x, planes, h, w, s);
            let gx = upsample_bilinear2d_backward(&gy, planes, h, w, s);
            assert_adjoint(dot(&y, &gy), dot(&x, &gx));
        }
    }

    #[test]
    fn bilinear_backward_of_ones_conserves_mass() {
        // The weights of every output sum to 1, so Σ dx = Σ dy.
        let gy = vec![1.0f64; 4 * 6];
        let gx = upsample_bilinear2d_backward(&gy, 1, 2, 3, 2);
        assert!((gx.iter().sum::<f64>() - 24.0).abs() < 1e-12);
    }
}
