//! 2-D transposed convolution layer (groups = 1) with PyTorch's weight layout
//! [in, out, kH, kW] and init (fan_in from weight dim 1, as PyTorch computes it).

use autograd::ops::conv_transpose2d::{conv_transpose2d, conv_transpose2d_relu};
use autograd::Var;
use tensor::ops::conv_transpose2d::ConvTranspose2dParams;

use crate::error::Result;
use crate::init::Init;
use crate::layers::conv2d::{check_weight_and_bias, new_weight_and_bias, visit_weight_and_bias};
use crate::module::Module;

/// The shape of a ConvTranspose2d: `ConvTranspose2dConfig::new(64, 32, 4).stride(2).padding(1)`
/// doubles H and W.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dConfig {
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// [kH, kW]
    pub kernel: [usize; 2],
    /// Stride, padding, output padding and dilation.
    pub params: ConvTranspose2dParams,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl ConvTranspose2dConfig {
    /// A square `kernel`, stride 1, no padding or output padding, dilation 1, with a bias.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        ConvTranspose2dConfig {
            in_channels,
            out_channels,
            kernel: [kernel; 2],
            params: ConvTranspose2dParams::default(),
            bias: true,
        }
    }

    /// The same stride along height and width.
    pub fn stride(mut self, stride: usize) -> Self {
        self.params.stride = [stride; 2];
        self
    }

    /// The same padding along height and width (removed from the output).
    pub fn padding(mut self, padding: usize) -> Self {
        self.params.padding = [padding; 2];
        self
    }

    /// The same output padding along height and width (must be below the stride or the dilation).
    pub fn output_padding(mut self, output_padding: usize) -> Self {
        self.params.output_padding = [output_padding; 2];
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
/// OH = (H − 1)·stride − 2·pad + dilation·(kH − 1) + output_padding + 1.
/// weight: [in_channels, out_channels, kH, kW], bias: \[out_channels\].
#[derive(Debug)]
pub struct ConvTranspose2d {
    /// `[in_channels, out_channels, kH, kW]`.
    pub weight: Var,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Var>,
    /// Stride, padding, output padding and dilation.
    pub params: ConvTranspose2dParams,
}

impl ConvTranspose2d {
    /// A transposed convolution initialised like `torch.nn.ConvTranspose2d`.
    pub fn new(config: ConvTranspose2dConfig, init: &mut Init) -> Result<ConvTranspose2d> {
        let c = config;
        let shape = [c.in_channels, c.out_channels, c.kernel[0], c.kernel[1]];
        let (weight, bias) = new_weight_and_bias("ConvTranspose2d", &c, shape, c.out_channels, c.bias, init)?;
        ConvTranspose2d::from_parameters(weight, bias, c.params)
    }

    /// A transposed convolution over existing parameters.
    pub fn from_parameters(weight: Var, bias: Option<Var>, params: ConvTranspose2dParams) -> Result<ConvTranspose2d> {
        let (stride, dilation) = (params.stride, params.dilation);
        check_weight_and_bias("ConvTranspose2d", "[in, out, kH, kW]", 1, &weight, bias.as_ref(), [stride, dilation])?;
        Ok(ConvTranspose2d { weight, bias, params })
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(conv_transpose2d(x, &self.weight, self.bias.as_ref(), &self.params)?)
    }

    fn forward_then_relu(&self, x: &Var) -> Result<Var> {
        Ok(conv_transpose2d_relu(x, &self.weight, self.bias.as_ref(), &self.params)?)
    }

    fn visit_parameters(&self, visit: &mut dyn FnMut(&str, &Var)) {
        visit_weight_and_bias(&self.weight, self.bias.as_ref(), visit)
    }
}
