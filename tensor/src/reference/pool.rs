//! 2-D pooling over P = N·C independent [H, W] planes, by definition (PyTorch's semantics:
//! ceil_mode = false, dilation 1).

use crate::descriptors::Pool2dGeometry;

/// The input positions window (p, oy, ox) covers along one axis: `start..start + k`, of
/// which `lo..hi` lies inside the input and `start..end` inside the padded input.
fn window(o: usize, k: usize, s: usize, pad: usize, n: usize) -> (isize, isize, isize) {
    let start = (o * s) as isize - pad as isize;
    let end = (start + k as isize).min((n + pad) as isize);
    (start, start.max(0), end.min(n as isize).max(start.max(0)))
}

/// The length of a window starting at `start` along an axis whose padded input ends at
/// `end`: the kernel size, cut at the far padding edge (PyTorch's count_include_pad divisor).
fn padded_len(start: isize, k: usize, end: usize) -> f64 {
    ((start + k as isize).min(end as isize) - start) as f64
}

/// Max pool: each output is the largest input in its window (padding never wins); ties keep
/// the first in row-major order; a NaN wins, the last of several (PyTorch's index). Also
/// returns, per output, the plane-relative index iy·W + ix of the chosen input.
// x: [P, H, W] → y: [P, OH, OW], argmax: [P, OH, OW]
pub fn max_pool2d(x: &[f64], g: &Pool2dGeometry) -> (Vec<f64>, Vec<usize>) {
    let (mut y, mut argmax) = (Vec::new(), Vec::new());
    for p in 0..g.planes {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (_, y0, y1) = window(oy, g.kernel[0], g.stride[0], g.padding[0], g.h);
                let (_, x0, x1) = window(ox, g.kernel[1], g.stride[1], g.padding[1], g.w);
                let (mut best, mut at) = (f64::NEG_INFINITY, usize::MAX);
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        let i = iy as usize * g.w + ix as usize;
                        let v = x[p * g.h * g.w + i];
                        if at == usize::MAX || v > best || v.is_nan() {
                            (best, at) = (v, i);
                        }
                    }
                }
                y.push(best);
                argmax.push(at);
            }
        }
    }
    (y, argmax)
}

/// Max pool backward: each output's gradient goes to the input it chose (`argmax`, relative
/// to its plane of `in_plane` = H·W inputs; `out_plane` = OH·OW outputs a plane).
// dy, argmax: [P, OH·OW] → dx: [P, H·W]
pub fn max_pool2d_backward(dy: &[f64], argmax: &[usize], [out_plane, in_plane]: [usize; 2]) -> Vec<f64> {
    let mut dx = vec![0.0; dy.len() / out_plane.max(1) * in_plane];
    for (i, (&d, &a)) in dy.iter().zip(argmax).enumerate() {
        let p = i / out_plane;
        dx[p * in_plane + a] += d;
    }
    dx
}

/// Calls `f(output index, count, input indices)` for every output of an average pool: the
/// in-bounds inputs of its window (plane-absolute indices into x) and the window's length
/// counting padding (PyTorch's count_include_pad divisor).
fn for_each_avg_window(g: &Pool2dGeometry, mut f: impl FnMut(usize, f64, &[usize])) {
    for p in 0..g.planes {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (ys, y0, y1) = window(oy, g.kernel[0], g.stride[0], g.padding[0], g.h);
                let (xs, x0, x1) = window(ox, g.kernel[1], g.stride[1], g.padding[1], g.w);
                let count =
                    padded_len(ys, g.kernel[0], g.h + g.padding[0]) * padded_len(xs, g.kernel[1], g.w + g.padding[1]);
                let inputs: Vec<usize> = (y0..y1)
                    .flat_map(|iy| (x0..x1).map(move |ix| p * g.h * g.w + iy as usize * g.w + ix as usize))
                    .collect();
                f((p * g.oh + oy) * g.ow + ox, count, &inputs);
            }
        }
    }
}

/// Average pool with count_include_pad: the sum of the in-bounds inputs divided by the
/// window's length counting padding (cut at the far padding edge).
// x: [P, H, W] → y: [P, OH, OW]
pub fn avg_pool2d(x: &[f64], g: &Pool2dGeometry) -> Vec<f64> {
    let mut y = vec![0.0; g.y_len()];
    for_each_avg_window(g, |o, count, inputs| y[o] = inputs.iter().map(|&i| x[i]).sum::<f64>() / count);
    y
}

/// Average pool backward: each output's gradient, divided by its count, to every in-bounds
/// input of its window.
// dy: [P, OH, OW] → dx: [P, H, W]
pub fn avg_pool2d_backward(dy: &[f64], g: &Pool2dGeometry) -> Vec<f64> {
    let mut dx = vec![0.0; g.x_len()];
    for_each_avg_window(g, |o, count, inputs| inputs.iter().for_each(|&i| dx[i] += dy[o] / count));
    dx
}

/// Global average pool: the mean of each plane.
// x: [P, plane] → y: [P]
pub fn global_avg_pool2d(x: &[f64], plane: usize) -> Vec<f64> {
    x.chunks(plane).map(|p| p.iter().sum::<f64>() / plane as f64).collect()
}

/// Global average pool backward: every input of plane p gets dy\[p\] / plane.
// dy: [P] → dx: [P, plane]
pub fn global_avg_pool2d_backward(dy: &[f64], plane: usize) -> Vec<f64> {
    dy.iter().flat_map(|&d| std::iter::repeat_n(d / plane as f64, plane)).collect()
}
