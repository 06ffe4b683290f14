//! 2-D convolution layer (groups = 1) with PyTorch's weight layout [out, in, kH, kW] and init.
//! Also home of the weight-and-bias helpers the transposed convolution layer shares.

use autograd::ops::conv2d::{conv2d, conv2d_nearest_upsampled, conv2d_relu};
use autograd::ops::interpolate::upsample_nearest2d;
use autograd::Var;
use tensor::ops::conv2d::Conv2dParams;
use tensor::Tensor;

use crate::error::{config_err, Result};
use crate::init::{default_bias, default_weight, Init};
use crate::layers::batch_norm::ChannelAffine;
use crate::module::Module;

/// The shape of a Conv2d: `Conv2dConfig::new(3, 64, 3).stride(2).padding(1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output (number of filters).
    pub out_channels: usize,
    /// [kH, kW]
    pub kernel: [usize; 2],
    /// Stride, padding and dilation.
    pub params: Conv2dParams,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Conv2dConfig {
    /// A square `kernel`, stride 1, no padding, dilation 1, with a bias.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Conv2dConfig { in_channels, out_channels, kernel: [kernel; 2], params: Conv2dParams::default(), bias: true }
    }

    /// The same stride along height and width.
    pub fn stride(mut self, stride: usize) -> Self {
        self.params.stride = [stride; 2];
        self
    }

    /// The same zero padding on all four sides.
    pub fn padding(mut self, padding: usize) -> Self {
        self.params.padding = [padding; 2];
        self
    }

    /// The same dilation along height and width.
    pub fn dilation(mut self, dilation: usize) -> Self {
        self.params.dilation = [dilation; 2];
        self
    }

    /// With or without a bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
}

/// x: [N, in_channels, H, W] → [N, out_channels, OH, OW] with
/// OH = ⌊(H + 2·pad − dilation·(kH − 1) − 1)/stride⌋ + 1.
/// weight: [out_channels, in_channels, kH, kW], bias: \[out_channels\].
#[derive(Debug)]
pub struct Conv2d {
    /// `[out_channels, in_channels, kH, kW]`.
    pub weight: Var,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Var>,
    /// Stride, padding and dilation.
    pub params: Conv2dParams,
}

impl Conv2d {
    /// A convolution initialised like `torch.nn.Conv2d`.
    pub fn new(config: Conv2dConfig, init: &mut Init) -> Result<Conv2d> {
        let c = config;
        let shape = [c.out_channels, c.in_channels, c.kernel[0], c.kernel[1]];
        let (weight, bias) = new_weight_and_bias("Conv2d", &c, shape, c.out_channels, c.bias, init)?;
        Conv2d::from_parameters(weight, bias, c.params)
    }

    /// A convolution over existing parameters (gradient checks, weight sharing).
    pub fn from_parameters(weight: Var, bias: Option<Var>, params: Conv2dParams) -> Result<Conv2d> {
        let (stride, dilation) = (params.stride, params.dilation);
        check_weight_and_bias("Conv2d", "[out, in, kH, kW]", 0, &weight, bias.as_ref(), [stride, dilation])?;
        Ok(Conv2d { weight, bias, params })
    }

    /// This convolution followed by `affine` on its output channels, as one convolution:
    /// `w'[o] = scale[o]·w[o]` and `b'[o] = scale[o]·b[o] + shift[o]` (b = 0 without a bias),
    /// computed in f64 and stored in the weight's type, on its device. A batch norm in
    /// evaluation mode after the convolution folds into it this way.
    pub fn with_channel_affine(&self, affine: &ChannelAffine) -> Result<Conv2d> {
        let w = self.weight.value();
        let (shape, c_out) = (w.shape().to_vec(), w.shape()[0]);
        if affine.scale.len() != c_out || affine.shift.len() != c_out {
            return config_err(
                "Conv2d",
                format!(
                    "a per-channel map of {} scales and {} shifts cannot follow a weight of shape {shape:?}",
                    affine.scale.len(),
                    affine.shift.len()
                ),
            );
        }
        let bias = match &self.bias {
            Some(b) => b.value().to_vec_f64()?,
            None => vec![0.0; c_out],
        };
        let per_output = w.numel() / c_out.max(1);
        let weight: Vec<f64> = w
            .to_vec_f64()?
            .chunks_exact(per_output.max(1))
            .zip(&affine.scale)
            .flat_map(|(kernels, &scale)| kernels.iter().map(move |v| v * scale))
            .collect();
        let bias: Vec<f64> = bias.iter().zip(&affine.scale).zip(&affine.shift).map(|((b, s), t)| b * s + t).collect();
        let stored = |values: Vec<f64>, shape: &[usize]| -> Result<Var> {
            Ok(Var::parameter(Tensor::from_vec(values, shape)?.to_dtype(w.dtype())?.to_device(&w.device())?))
        };
        Conv2d::from_parameters(stored(weight, &shape)?, Some(stored(bias, &[c_out])?), self.params)
    }
}

/// A convolution layer's weight of `shape` and, with `bias`, its bias of `out_channels`,
/// initialised as PyTorch does (`config` is named in the error when a size is zero).
pub(crate) fn new_weight_and_bias(
    layer: &'static str,
    config: &dyn std::fmt::Debug,
    shape: [usize; 4],
    out_channels: usize,
    bias: bool,
    init: &mut Init,
) -> Result<(Var, Option<Var>)> {
    if shape.contains(&0) {
        return config_err(layer, format!("channels and kernel must be positive, got {config:?}"));
    }
    let weight = Var::parameter(default_weight(&shape, init)?);
    let bias = if bias { Some(Var::parameter(default_bias(out_channels, &shape, init)?)) } else { None };
    Ok((weight, bias))
}

/// Checks a convolution layer's parameters: a rank-4 weight laid out as `layout`, whose axis
/// `out_axis` counts the output channels the bias must match, and a positive stride and
/// dilation (`[stride, dilation]`).
pub(crate) fn check_weight_and_bias(
    layer: &'static str,
    layout: &str,
    out_axis: usize,
    weight: &Var,
    bias: Option<&Var>,
    [stride, dilation]: [[usize; 2]; 2],
) -> Result<()> {
    let w = weight.shape();
    if w.len() != 4 {
        return config_err(layer, format!("weight must be {layout}, got {w:?}"));
    }
    if stride.contains(&0) || dilation.contains(&0) {
        return config_err(layer, format!("stride {stride:?} and dilation {dilation:?} must be positive"));
    }
    match bias {
        Some(b) if b.shape() != [w[out_axis]] => {
            config_err(layer, format!("bias has shape {:?}, expected [{}] for weight {w:?}", b.shape(), w[out_axis]))
        }
        _ => Ok(()),
    }
}

/// Visits a convolution layer's weight, then its bias if it has one.
pub(crate) fn visit_weight_and_bias(weight: &Var, bias: Option<&Var>, visit: &mut dyn FnMut(&str, &Var)) {
    visit("weight", weight);
    if let Some(b) = bias {
        visit("bias", b);
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(conv2d(x, &self.weight, self.bias.as_ref(), &self.params)?)
    }

    fn forward_then_relu(&self, x: &Var) -> Result<Var> {
        Ok(conv2d_relu(x, &self.weight, self.bias.as_ref(), &self.params)?)
    }

    /// A 3×3 kernel at stride 1 and padding 1 after a ×2 upsampling reads only a 2×2 block of
    /// the small image at each output phase: it runs as `conv2d_nearest_upsampled`.
    fn forward_nearest_upsampled(&self, x: &Var, scale: usize) -> Result<Var> {
        if scale == 2 && self.weight.shape()[2..] == [3, 3] && self.params == Conv2dParams::new(1, 1) {
            Ok(conv2d_nearest_upsampled(x, &self.weight, self.bias.as_ref())?)
        } else {
            self.forward(&upsample_nearest2d(x, scale)?)
        }
    }

    fn absorb_channel_affine(&self, affine: &ChannelAffine) -> Result<Option<Box<dyn Module>>> {
        Ok(Some(Box::new(self.with_channel_affine(affine)?)))
    }

    fn visit_parameters(&self, visit: &mut dyn FnMut(&str, &Var)) {
        visit_weight_and_bias(&self.weight, self.bias.as_ref(), visit)
    }
}
