//! conv2d and conv_transpose2d, by their definitions. One loop nest visits every
//! (image, output channel, output pixel, input channel, kernel tap) and the input pixel it
//! reads; the forward and both backwards are three uses of that visit.

use crate::descriptors::Conv2dGeometry;

/// Calls `f(y_index, x_index, w_index)` for every tap of conv2d(x, w) that lands inside the
/// input, with y [N, C_out, OH, OW], x [N, C_in, H, W] and w [C_out, C_in, kH, kW]:
/// output (n, co, oy, ox) reads x[n, ci, oy·sh − ph + ki·dh, ox·sw − pw + kj·dw].
pub fn for_each_tap(g: &Conv2dGeometry, mut f: impl FnMut(usize, usize, usize)) {
    for n in 0..g.batch {
        for co in 0..g.c_out {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    for ci in 0..g.c_in {
                        for ki in 0..g.kh {
                            for kj in 0..g.kw {
                                let iy = (oy * g.stride[0] + ki * g.dilation[0]) as isize - g.padding[0] as isize;
                                let ix = (ox * g.stride[1] + kj * g.dilation[1]) as isize - g.padding[1] as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue; // zero padding
                                }
                                let y = ((n * g.c_out + co) * g.oh + oy) * g.ow + ox;
                                let x = ((n * g.c_in + ci) * g.h + iy as usize) * g.w + ix as usize;
                                let w = ((co * g.c_in + ci) * g.kh + ki) * g.kw + kj;
                                f(y, x, w);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// y = conv2d(x, w) + bias: y[n, co, oy, ox] = bias\[co\] + Σ_{ci, ki, kj} x[…] · w[co, ci, ki, kj].
pub fn conv2d(x: &[f64], w: &[f64], bias: Option<&[f64]>, g: &Conv2dGeometry) -> Vec<f64> {
    let plane = g.oh * g.ow;
    let mut y: Vec<f64> = (0..g.y_len()).map(|i| bias.map_or(0.0, |b| b[(i / plane) % g.c_out])).collect();
    for_each_tap(g, |yi, xi, wi| y[yi] += x[xi] * w[wi]);
    y
}

/// dx of conv2d: every tap that read x[…] passes back dy · w.
pub fn conv2d_backward_data(dy: &[f64], w: &[f64], g: &Conv2dGeometry) -> Vec<f64> {
    let mut dx = vec![0.0; g.x_len()];
    for_each_tap(g, |yi, xi, wi| dx[xi] += dy[yi] * w[wi]);
    dx
}

/// dw of conv2d: dw[co, ci, ki, kj] = Σ over every tap using that weight of dy · x.
pub fn conv2d_backward_weight(dy: &[f64], x: &[f64], g: &Conv2dGeometry) -> Vec<f64> {
    let mut dw = vec![0.0; g.weight_len()];
    for_each_tap(g, |yi, xi, wi| dw[wi] += dy[yi] * x[xi]);
    dw
}

/// The bias gradient of conv2d and conv_transpose2d: db\[c\] = Σ_{n, i} dy[n, c, i].
// dy: [batch, channels, plane] → db: [channels]
pub fn bias_grad(dy: &[f64], [batch, channels, plane]: [usize; 3]) -> Vec<f64> {
    let mut db = vec![0.0; channels];
    for n in 0..batch {
        for (c, d) in db.iter_mut().enumerate() {
            *d += dy[(n * channels + c) * plane..][..plane].iter().sum::<f64>();
        }
    }
    db
}

/// y = conv_transpose2d(x, w) + bias for the transpose's geometry `g` (x [N, C_in, H, W],
/// w [C_in, C_out, kH, kW], y [N, C_out, OH, OW]). By definition every input pixel scatters
/// a weighted copy of the kernel: y[n, co, i·sh − ph + ki·dh, j·sw − pw + kj·dw] +=
/// x[n, ci, i, j] · w[ci, co, ki, kj]. That is the visit of the conv2d going the other way
/// (`g.transposed()`), with its output and input swapped.
pub fn conv_transpose2d(x: &[f64], w: &[f64], bias: Option<&[f64]>, g: &Conv2dGeometry) -> Vec<f64> {
    let plane = g.oh * g.ow;
    let mut y: Vec<f64> = (0..g.y_len()).map(|i| bias.map_or(0.0, |b| b[(i / plane) % g.c_out])).collect();
    for_each_tap(&g.transposed(), |xi, yi, wi| y[yi] += x[xi] * w[wi]);
    y
}

/// dx of conv_transpose2d: every scatter from x[…] gathers dy · w back.
pub fn conv_transpose2d_backward_data(dy: &[f64], w: &[f64], g: &Conv2dGeometry) -> Vec<f64> {
    let mut dx = vec![0.0; g.x_len()];
    for_each_tap(&g.transposed(), |xi, yi, wi| dx[xi] += dy[yi] * w[wi]);
    dx
}

/// dw of conv_transpose2d: dw[ci, co, ki, kj] = Σ over its scatters of x · dy.
pub fn conv_transpose2d_backward_weight(dy: &[f64], x: &[f64], g: &Conv2dGeometry) -> Vec<f64> {
    let mut dw = vec![0.0; g.weight_len()];
    for_each_tap(&g.transposed(), |xi, yi, wi| dw[wi] += x[xi] * dy[yi]);
    dw
}
