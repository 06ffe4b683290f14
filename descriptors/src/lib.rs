//! # descriptors
//!
//! Tier: core (shared by every device).
//!
//! Op descriptors: what an op is, independent of where it runs. A convolution's geometry, a
//! pooling window's, batch norm's [N, C, S] view, which reduction a reduce computes, the
//! hyper-parameters of one optimizer step: plain data with their output-size formulas, defined
//! once here and used on both sides, by the CPU kernels in the `tensor` crate (which re-exports
//! this crate as `tensor::descriptors`) and by the GPU launchers of the `gpu` crate (as
//! `gpu::descriptors`). A crate of its own, below both and depending on nothing, so that what
//! an op is never depends on a GPU library.
//!
//! Beside them, [`choices`]: the file that keeps kernel choices measured on one machine, shared
//! by the CPU and GPU tuners.

pub mod choices;

/// Every size a convolution kernel needs. For conv2d: x [batch, c_in, h, w],
/// weight [c_out, c_in, kh, kw], y [batch, c_out, oh, ow]. For conv_transpose2d the same
/// names keep their meaning from the transpose's own point of view: x [batch, c_in, h, w],
/// weight [c_in, c_out, kh, kw], y [batch, c_out, oh, ow].
///
/// `oh`/`ow` are stored, never recomputed, so a geometry built by [`Self::conv_transpose2d`]
/// (where output_padding makes the output size ambiguous from the input's) stays exact.
/// `Default` (all zeros) is only a base for struct-update syntax in tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Batch size N.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub c_out: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// [sh, sw]
    pub stride: [usize; 2],
    /// [ph, pw]
    pub padding: [usize; 2],
    /// [dh, dw]
    pub dilation: [usize; 2],
}

/// Output length of a conv2d along one axis: ⌊(input + 2p − d·(k−1) − 1) / s⌋ + 1, or `None`
/// when the dilated kernel does not fit the padded input or s, d or k is 0.
pub fn conv2d_out_len(input: usize, k: usize, stride: usize, pad: usize, dilation: usize) -> Option<usize> {
    if stride == 0 || dilation == 0 || k == 0 {
        return None;
    }
    let span = dilation * (k - 1) + 1;
    let padded = input + 2 * pad;
    (padded >= span).then(|| (padded - span) / stride + 1)
}

/// Output length of a conv_transpose2d along one axis:
/// (input − 1)·s − 2p + d·(k−1) + output_padding + 1, or `None` when that is ≤ 0 or the
/// input, s, d or k is 0.
pub fn conv_transpose2d_out_len(
    input: usize,
    k: usize,
    stride: usize,
    pad: usize,
    output_padding: usize,
    dilation: usize,
) -> Option<usize> {
    if input == 0 || stride == 0 || dilation == 0 || k == 0 {
        return None;
    }
    let full = (input - 1) * stride + dilation * (k - 1) + output_padding + 1;
    (full > 2 * pad).then(|| full - 2 * pad)
}

impl Conv2dGeometry {
    /// The geometry of conv2d(x, w) for x of shape `x` = [N, C_in, H, W] and a weight of
    /// shape `weight` = [C_out, C_in, kH, kW]; `None` when the kernel does not fit.
    pub fn conv2d(
        x: [usize; 4],
        weight: [usize; 4],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> Option<Self> {
        let [batch, c_in, h, w] = x;
        let [c_out, _, kh, kw] = weight;
        Some(Conv2dGeometry {
            batch,
            c_in,
            h,
            w,
            c_out,
            oh: conv2d_out_len(h, kh, stride[0], padding[0], dilation[0])?,
            ow: conv2d_out_len(w, kw, stride[1], padding[1], dilation[1])?,
            kh,
            kw,
            stride,
            padding,
            dilation,
        })
    }

    /// The geometry of conv_transpose2d(x, w) for x of shape `x` = [N, C_in, H, W] and a
    /// weight of shape `weight` = [C_in, C_out, kH, kW]; `None` when the output would be empty.
    pub fn conv_transpose2d(
        x: [usize; 4],
        weight: [usize; 4],
        stride: [usize; 2],
        padding: [usize; 2],
        output_padding: [usize; 2],
        dilation: [usize; 2],
    ) -> Option<Self> {
        let [batch, c_in, h, w] = x;
        let [_, c_out, kh, kw] = weight;
        let len = |i: usize| {
            conv_transpose2d_out_len(x[2 + i], weight[2 + i], stride[i], padding[i], output_padding[i], dilation[i])
        };
        Some(Conv2dGeometry { batch, c_in, h, w, c_out, oh: len(0)?, ow: len(1)?, kh, kw, stride, padding, dilation })
    }

    /// The same convolution seen from the other side: input and output swap roles
    /// ((c_in, h, w) ↔ (c_out, oh, ow)); kernel, stride, padding and dilation stay.
    /// For a conv_transpose2d geometry this is the conv2d whose backward-data is the
    /// transpose's forward; its weight [C_in_T, C_out_T, kH, kW] is read as [c_out, c_in, kH, kW].
    pub fn transposed(&self) -> Self {
        Conv2dGeometry { c_in: self.c_out, h: self.oh, w: self.ow, c_out: self.c_in, oh: self.h, ow: self.w, ..*self }
    }

    /// Rows of the im2col matrix: C_in·kH·kW.
    pub fn col_rows(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Output pixels per channel, the columns of the im2col matrix: OH·OW.
    pub fn out_plane(&self) -> usize {
        self.oh * self.ow
    }

    /// Elements of one input image: C_in·H·W.
    pub fn in_image(&self) -> usize {
        self.c_in * self.h * self.w
    }

    /// Elements of one output image: C_out·OH·OW.
    pub fn out_image(&self) -> usize {
        self.c_out * self.out_plane()
    }

    /// A 1×1 kernel with stride 1, no padding and equal in/out sizes: im2col is the identity,
    /// so the image itself is the GEMM operand. (The size check matters: a conv_transpose2d
    /// with output_padding can have a 1×1, stride-1 kernel and still change the size.)
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.padding == [0, 0]
            && (self.oh, self.ow) == (self.h, self.w)
    }

    /// Elements of x: batch·c_in·h·w.
    pub fn x_len(&self) -> usize {
        self.batch * self.c_in * self.h * self.w
    }

    /// Elements of y: batch·c_out·oh·ow.
    pub fn y_len(&self) -> usize {
        self.batch * self.c_out * self.oh * self.ow
    }

    /// Elements of a conv2d weight [c_out, c_in, kh, kw] (and of a conv_transpose2d weight).
    pub fn weight_len(&self) -> usize {
        self.c_out * self.c_in * self.kh * self.kw
    }

    /// Multiply-adds of the forward GEMM (benchmarks report 2× this as FLOPs).
    pub fn macs(&self) -> u64 {
        (self.y_len() as u64) * (self.c_in * self.kh * self.kw) as u64
    }

    /// At stride 1, backward-data is itself a convolution: dx = conv2d(dy, W′) with
    /// W′[ci, co, ky, kx] = W[co, ci, kH−1−ky, kW−1−kx] and padding d·(k−1) − p (the "full"
    /// correlation). This is its geometry ([N, C_out, OH, OW] in, [N, C_in, H, W] out), `None`
    /// at a larger stride or a padding beyond the kernel's reach. The CPU runs it as a forward
    /// in strips instead of writing dcol for col2im; both devices' Winograd rungs run it as
    /// their forward.
    pub fn full_correlation(&self) -> Option<Self> {
        if self.stride != [1, 1] {
            return None;
        }
        let pad = |i: usize, k: usize| (self.dilation[i] * (k - 1)).checked_sub(self.padding[i]);
        let padding = [pad(0, self.kh)?, pad(1, self.kw)?];
        let dy = [self.batch, self.c_out, self.oh, self.ow];
        Conv2dGeometry::conv2d(dy, [self.c_in, self.c_out, self.kh, self.kw], [1, 1], padding, self.dilation)
            .filter(|full| full.oh == self.h && full.ow == self.w)
    }

    /// The kernel taps that can reach the input, when fewer than all of them do. On small
    /// planes a padded kernel hangs over the edge: a 3×3 kernel with padding 1 on a 1×1 plane
    /// (ResNet-18's last stage at 32×32 input) reads only its centre, and multiplying the
    /// other eight taps by padding is wasted work on any device. Along each axis the taps that
    /// reach the input are consecutive, so the live taps form a rectangle, and the same
    /// convolution is a smaller one: the kernel cropped to that rectangle, the padding shifted
    /// with it. `None` when every tap is live, when none is, or when the crop would need
    /// negative padding or change the output size (then the full kernel runs).
    pub fn live_taps(&self) -> Option<LiveTaps> {
        // Tap j of an axis is live when some output o reads an input inside the plane:
        // 0 ≤ o·s + j·d − p < input. The first o with o·s + j·d ≥ p reads the lowest such input.
        let live_range = |k: usize, axis: usize, input: usize, out: usize| {
            let (s, p, d) = (self.stride[axis], self.padding[axis], self.dilation[axis]);
            let live = |j: usize| {
                let offset = j * d;
                let first_o = if p > offset { (p - offset).div_ceil(s) } else { 0 };
                first_o < out && first_o * s + offset - p < input
            };
            let first = (0..k).find(|&j| live(j))?;
            let last = (0..k).rfind(|&j| live(j))?;
            Some((first, last + 1))
        };
        if self.stride.contains(&0) {
            return None;
        }
        let rows = live_range(self.kh, 0, self.h, self.oh)?;
        let cols = live_range(self.kw, 1, self.w, self.ow)?;
        if (rows, cols) == ((0, self.kh), (0, self.kw)) {
            return None;
        }
        let padding = [
            self.padding[0].checked_sub(rows.0 * self.dilation[0])?,
            self.padding[1].checked_sub(cols.0 * self.dilation[1])?,
        ];
        let geometry = Conv2dGeometry { kh: rows.1 - rows.0, kw: cols.1 - cols.0, padding, ..*self };
        let oh = conv2d_out_len(self.h, geometry.kh, self.stride[0], padding[0], self.dilation[0]);
        let ow = conv2d_out_len(self.w, geometry.kw, self.stride[1], padding[1], self.dilation[1]);
        ((oh, ow) == (Some(self.oh), Some(self.ow))).then_some(LiveTaps { geometry, first: [rows.0, cols.0] })
    }
}

/// The three kernels of a convolution, named by what they compute for conv2d. A
/// conv_transpose2d runs the same three on its transposed geometry ([`Conv2dGeometry::transposed`]):
/// its forward is [`ConvKernel::BackwardData`], its backward-data [`ConvKernel::Forward`], its
/// backward-weight [`ConvKernel::BackwardWeight`] with x and dy exchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKernel {
    /// y = conv2d(x, w) (+ bias\[co\]).
    // x: [N, C_in, H, W], w: [C_out, C_in, kH, kW], bias: [C_out] → y: [N, C_out, OH, OW]
    Forward,
    /// dx = ∂L/∂x from dy (+ bias\[ci\], which makes it conv_transpose2d's forward).
    // dy: [N, C_out, OH, OW], w: [C_out, C_in, kH, kW], bias: [C_in] → dx: [N, C_in, H, W]
    BackwardData,
    /// dw = ∂L/∂w, summed over the batch; no bias.
    // dy: [N, C_out, OH, OW], x: [N, C_in, H, W] → dw: [C_out, C_in, kH, kW]
    BackwardWeight,
}

impl ConvKernel {
    /// The three, in the order a training step meets them.
    pub const ALL: [ConvKernel; 3] = [ConvKernel::Forward, ConvKernel::BackwardData, ConvKernel::BackwardWeight];

    /// Its name in errors, benchmarks and test messages.
    pub fn name(self) -> &'static str {
        match self {
            ConvKernel::Forward => "conv2d_forward",
            ConvKernel::BackwardData => "conv2d_backward_data",
            ConvKernel::BackwardWeight => "conv2d_backward_weight",
        }
    }

    /// Its two inputs and its output under `g`, each named, with its number of elements.
    pub fn operands(self, g: &Conv2dGeometry) -> [(&'static str, usize); 3] {
        match self {
            ConvKernel::Forward => [("x", g.x_len()), ("weight", g.weight_len()), ("y", g.y_len())],
            ConvKernel::BackwardData => [("dy", g.y_len()), ("weight", g.weight_len()), ("dx", g.x_len())],
            ConvKernel::BackwardWeight => [("dy", g.y_len()), ("x", g.x_len()), ("dw", g.weight_len())],
        }
    }

    /// The length of the bias it can add (one value per output channel), or `None` when it
    /// takes none.
    pub fn bias_len(self, g: &Conv2dGeometry) -> Option<usize> {
        match self {
            ConvKernel::Forward => Some(g.c_out),
            ConvKernel::BackwardData => Some(g.c_in),
            ConvKernel::BackwardWeight => None,
        }
    }
}

/// A convolution restricted to the kernel taps that reach its input (see
/// [`Conv2dGeometry::live_taps`]): the cropped convolution, and where its kernel starts in the
/// full one. Its weight is the block `[c_out, c_in, first[0] .. first[0] + kh, first[1] .. first[1] + kw]`
/// of the full weight; the taps outside the block touch only padding, so their gradient is zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveTaps {
    /// The same convolution with the cropped kernel (same input and output sizes).
    pub geometry: Conv2dGeometry,
    /// The cropped kernel's first row and column in the full kernel.
    pub first: [usize; 2],
}

/// A pooling window sliding over `planes` independent [h, w] planes (N·C of them) and
/// producing [oh, ow] planes: OH = ⌊(H + 2·ph − kh)/sh⌋ + 1, likewise OW (PyTorch's
/// ceil_mode = false, dilation 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dGeometry {
    /// Independent planes (N·C).
    pub planes: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Window size `[kh, kw]`.
    pub kernel: [usize; 2],
    /// Window step `[sh, sw]`.
    pub stride: [usize; 2],
    /// Implicit padding `[ph, pw]` on each side.
    pub padding: [usize; 2],
}

impl Pool2dGeometry {
    /// `None` when a kernel or stride is 0, padding exceeds half the kernel (PyTorch's
    /// rule, so every window holds an input element) or the window does not fit.
    pub fn new(
        planes: usize,
        [h, w]: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Option<Self> {
        let out = |n: usize, k: usize, s: usize, p: usize| {
            (k > 0 && s > 0 && 2 * p <= k && n + 2 * p >= k).then(|| (n + 2 * p - k) / s + 1)
        };
        let oh = out(h, kernel[0], stride[0], padding[0])?;
        let ow = out(w, kernel[1], stride[1], padding[1])?;
        Some(Pool2dGeometry { planes, h, w, oh, ow, kernel, stride, padding })
    }

    /// Elements of x: planes·h·w.
    pub fn x_len(&self) -> usize {
        self.planes * self.h * self.w
    }

    /// Elements of y: planes·oh·ow.
    pub fn y_len(&self) -> usize {
        self.planes * self.oh * self.ow
    }
}

/// Sizes of a batch-norm operand viewed as [N, C, S].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNormGeometry {
    /// Batch size N.
    pub n: usize,
    /// Channels C.
    pub c: usize,
    /// Elements per (sample, channel) plane: H·W, or 1 for a [N, C] input.
    pub s: usize,
}

impl BatchNormGeometry {
    /// Elements each channel's statistics run over: m = N·S.
    pub fn m(&self) -> usize {
        self.n * self.s
    }

    /// Elements of x: N·C·S.
    pub fn len(&self) -> usize {
        self.n * self.c * self.s
    }

    /// True when x has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A reduction over one axis of an `[outer, r, inner]` view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Σ x.
    Sum,
    /// Σ x / r.
    Mean,
    /// Largest element.
    Max,
    /// Smallest element.
    Min,
    /// ln Σ exp(x), computed as m + ln Σ exp(x − m) with m = max x so it never overflows.
    LogSumExp,
    /// Index (along the reduced block) of the first maximum, as a float.
    ArgMax,
    /// Index of the first minimum, as a float.
    ArgMin,
}

impl ReduceOp {
    /// Every reduction, for tests and tables that go through them all.
    pub const ALL: [ReduceOp; 7] = [
        ReduceOp::Sum,
        ReduceOp::Mean,
        ReduceOp::Max,
        ReduceOp::Min,
        ReduceOp::LogSumExp,
        ReduceOp::ArgMax,
        ReduceOp::ArgMin,
    ];
}

/// Hyper-parameters of one Adam or AdamW step (f64; each device converts them to its element
/// type once).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamHyper {
    /// Learning rate.
    pub lr: f64,
    /// Decay rate of the first-moment (mean) estimate.
    pub beta1: f64,
    /// Decay rate of the second-moment (uncentred variance) estimate.
    pub beta2: f64,
    /// Added to √v̂ in the denominator.
    pub eps: f64,
    /// Weight decay factor (L2 penalty or decoupled, see `decoupled_weight_decay`).
    pub weight_decay: f64,
    /// AdamW: decay the weights directly, p ← p·(1 − lr·wd), instead of adding wd·p to the
    /// gradient (Adam's L2 penalty, which the adaptive denominator then rescales).
    pub decoupled_weight_decay: bool,
    /// The 1-based step count t of this update, for the bias corrections 1 − βᵗ.
    pub step: u64,
}

impl Default for AdamHyper {
    /// `torch.optim.Adam`'s defaults (lr 1e-3, betas 0.9 / 0.999, eps 1e-8, no weight decay)
    /// for the first step.
    fn default() -> AdamHyper {
        AdamHyper {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            step: 1,
        }
    }
}

/// Hyper-parameters of one SGD step (PyTorch's `torch.optim.SGD`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdHyper {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0 disables the momentum buffer).
    pub momentum: f64,
    /// Dampening of the gradient added to the momentum buffer.
    pub dampening: f64,
    /// L2 penalty: wd·p is added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// True on the first step with momentum: the buffer is then set to the gradient itself
    /// (no dampening), as PyTorch does.
    pub first_step: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_len_follows_pytorch_formulas() {
        assert_eq!(conv2d_out_len(32, 3, 1, 1, 1), Some(32));
        assert_eq!(conv2d_out_len(7, 3, 2, 1, 1), Some(4));
        assert_eq!(conv2d_out_len(9, 3, 1, 2, 2), Some(9));
        assert_eq!(conv2d_out_len(3, 5, 1, 0, 1), None);
        assert_eq!(conv2d_out_len(3, 5, 1, 1, 1), Some(1));
        assert_eq!(conv_transpose2d_out_len(8, 4, 2, 1, 0, 1), Some(16));
        assert_eq!(conv_transpose2d_out_len(5, 3, 2, 1, 1, 1), Some(10));
        assert_eq!(conv_transpose2d_out_len(1, 1, 1, 1, 0, 1), None);
    }

    #[test]
    fn conv_output_sizes_follow_pytorch() {
        let g = Conv2dGeometry::conv2d([2, 3, 7, 9], [4, 3, 3, 3], [2, 1], [1, 0], [1, 2]).unwrap();
        assert_eq!((g.oh, g.ow), (4, 5));
        let t = Conv2dGeometry::conv_transpose2d([2, 3, 4, 5], [3, 4, 3, 3], [2, 2], [1, 1], [1, 0], [1, 1]).unwrap();
        assert_eq!((t.oh, t.ow), (8, 9));
        assert!(Conv2dGeometry::conv2d([1, 1, 2, 2], [1, 1, 5, 5], [1, 1], [0, 0], [1, 1]).is_none());
        assert!(Conv2dGeometry::conv2d([1, 1, 5, 5], [1, 1, 3, 3], [0, 1], [0, 0], [1, 1]).is_none(), "zero stride");
    }

    #[test]
    fn pool_output_sizes_follow_pytorch_and_refuse_what_it_refuses() {
        let g = Pool2dGeometry::new(6, [7, 8], [3, 2], [2, 2], [1, 0]).unwrap();
        assert_eq!((g.oh, g.ow), (4, 4));
        assert!(Pool2dGeometry::new(1, [4, 4], [2, 2], [2, 2], [2, 0]).is_none(), "padding over half the kernel");
        assert!(Pool2dGeometry::new(1, [1, 1], [3, 3], [1, 1], [0, 0]).is_none(), "window larger than the input");
    }
}
