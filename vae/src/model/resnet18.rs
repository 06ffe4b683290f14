//! `resnet18` (Yang and Kobilaski, and Jena): the ResNet-18 of He et al. as the encoder (torchvision's
//! parameter names), its mirror image with transposed convolutions and bilinear upsampling as
//! the decoder, and the classifier form (encoder + Linear 512→classes) used to pre-train the
//! encoder for transfer learning. `batch_norm = false` gives Jena's variant without batch
//! norm: every BN is dropped and the convolutions it followed get a bias.

use autograd::Var;
use nn::{
    BatchNorm2d, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, GlobalAvgPool, Init, Linear, MaxPool2d,
    Module, Pool2dConfig, Sequential, Upsample,
};

use super::ModelConfig;

/// conv → BN (or conv with bias when there is no BN).
fn conv_bn(cfg: Conv2dConfig, bn: bool, init: &mut Init) -> nn::Result<(Conv2d, Option<BatchNorm2d>)> {
    let out = cfg.out_channels;
    let conv = Conv2d::new(cfg.bias(!bn), init)?;
    Ok((conv, if bn { Some(BatchNorm2d::new(out, init)?) } else { None }))
}

fn apply_bn(bn: &Option<BatchNorm2d>, x: Var) -> nn::Result<Var> {
    match bn {
        Some(bn) => bn.forward(&x),
        None => Ok(x),
    }
}

/// A residual block's children under torchvision's names: conv1, bn1, conv2, bn2 (the batch
/// norms only where the preset has them), then the shortcut branch when it is not the identity.
fn visit_block(
    visit: &mut dyn FnMut(&str, &dyn Module),
    convs: [&dyn Module; 2],
    norms: [Option<&BatchNorm2d>; 2],
    (branch_name, branch): (&str, Option<&Sequential>),
) {
    for (i, (conv, norm)) in convs.into_iter().zip(norms).enumerate() {
        visit(&format!("conv{}", i + 1), conv);
        if let Some(bn) = norm {
            visit(&format!("bn{}", i + 1), bn);
        }
    }
    if let Some(b) = branch {
        visit(branch_name, b);
    }
}

/// torchvision's BasicBlock(a→b, stride s): conv3×3(s) → BN → ReLU → conv3×3 → BN, plus the
/// shortcut (identity, or `downsample` = conv1×1(s) → BN), then ReLU.
struct BasicBlock {
    conv1: Conv2d,
    bn1: Option<BatchNorm2d>,
    conv2: Conv2d,
    bn2: Option<BatchNorm2d>,
    downsample: Option<Sequential>,
}

impl BasicBlock {
    fn new(a: usize, b: usize, stride: usize, bn: bool, init: &mut Init) -> nn::Result<BasicBlock> {
        let (conv1, bn1) = conv_bn(Conv2dConfig::new(a, b, 3).stride(stride).padding(1), bn, init)?;
        let (conv2, bn2) = conv_bn(Conv2dConfig::new(b, b, 3).padding(1), bn, init)?;
        let downsample = if stride != 1 || a != b {
            let (conv, norm) = conv_bn(Conv2dConfig::new(a, b, 1).stride(stride), bn, init)?;
            let mut seq = Sequential::new().with(conv);
            if let Some(norm) = norm {
                seq.push(norm);
            }
            Some(seq)
        } else {
            None
        };
        Ok(BasicBlock { conv1, bn1, conv2, bn2, downsample })
    }
}

impl Module for BasicBlock {
    fn forward(&self, x: &Var) -> nn::Result<Var> {
        let out = apply_bn(&self.bn1, self.conv1.forward(x)?)?.relu()?;
        let out = apply_bn(&self.bn2, self.conv2.forward(&out)?)?;
        let shortcut = match &self.downsample {
            Some(d) => d.forward(x)?,
            None => x.clone(),
        };
        Ok(out.add(&shortcut)?.relu()?)
    }

    fn visit_children(&self, visit: &mut dyn FnMut(&str, &dyn Module)) {
        let (bn1, bn2) = (self.bn1.as_ref(), self.bn2.as_ref());
        visit_block(visit, [&self.conv1, &self.conv2], [bn1, bn2], ("downsample", self.downsample.as_ref()));
    }
}

/// The ResNet-18 feature extractor: [N, C, H, W] → [N, 512].
pub struct ResNet18Encoder {
    conv1: Conv2d,
    bn1: Option<BatchNorm2d>,
    maxpool: MaxPool2d,
    layers: [Sequential; 4],
}

impl ResNet18Encoder {
    /// A ResNet-18 trunk for `in_channels`-channel inputs; `batch_norm: false` drops every batch norm (convolutions get biases instead).
    pub fn new(in_channels: usize, batch_norm: bool, init: &mut Init) -> nn::Result<ResNet18Encoder> {
        let (conv1, bn1) = conv_bn(Conv2dConfig::new(in_channels, 64, 7).stride(2).padding(3), batch_norm, init)?;
        let maxpool = MaxPool2d::new(Pool2dConfig::new(3).stride(2).padding(1))?;
        let stage = |a: usize, b: usize, stride: usize, init: &mut Init| -> nn::Result<Sequential> {
            Ok(Sequential::new()
                .with(BasicBlock::new(a, b, stride, batch_norm, init)?)
                .with(BasicBlock::new(b, b, 1, batch_norm, init)?))
        };
        let layers =
            [stage(64, 64, 1, init)?, stage(64, 128, 2, init)?, stage(128, 256, 2, init)?, stage(256, 512, 2, init)?];
        Ok(ResNet18Encoder { conv1, bn1, maxpool, layers })
    }
}

impl ResNet18Encoder {
    /// The intermediate maps of a forward pass (Yang and Kobilaski, figure 7): after the stem
    /// (conv1 → BN → ReLU → max-pool) and after each of the four stages, [N, C, H, W] each.
    pub fn stages(&self, x: &Var) -> nn::Result<Vec<(String, Var)>> {
        let mut h = self.maxpool.forward(&apply_bn(&self.bn1, self.conv1.forward(x)?)?.relu()?)?;
        let mut out = vec![("stem (conv1, maxpool)".to_string(), h.clone())];
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h)?;
            out.push((format!("layer{}", i + 1), h.clone()));
        }
        Ok(out)
    }
}

impl Module for ResNet18Encoder {
    fn forward(&self, x: &Var) -> nn::Result<Var> {
        let mut h = self.maxpool.forward(&apply_bn(&self.bn1, self.conv1.forward(x)?)?.relu()?)?;
        for layer in &self.layers {
            h = layer.forward(&h)?;
        }
        Ok(GlobalAvgPool.forward(&h)?.flatten_from(1)?)
    }

    fn visit_children(&self, visit: &mut dyn FnMut(&str, &dyn Module)) {
        visit("conv1", &self.conv1);
        if let Some(bn) = &self.bn1 {
            visit("bn1", bn);
        }
        for (i, layer) in self.layers.iter().enumerate() {
            visit(["layer1", "layer2", "layer3", "layer4"][i], layer);
        }
    }
}

/// The decoder's BasicBlockT(a→b, up): ConvT3×3 a→a → BN → ReLU → [Up(b)] → ConvT3×3 a→b → BN,
/// plus the shortcut (identity, or [Up(b)] → ConvT3×3 a→b → BN), then ReLU.
struct BasicBlockT {
    conv1: ConvTranspose2d,
    bn1: Option<BatchNorm2d>,
    upsample: Option<Upsample>,
    conv2: ConvTranspose2d,
    bn2: Option<BatchNorm2d>,
    shortcut: Option<Sequential>,
}

fn convt3(a: usize, b: usize, bn: bool, init: &mut Init) -> nn::Result<(ConvTranspose2d, Option<BatchNorm2d>)> {
    let conv = ConvTranspose2d::new(ConvTranspose2dConfig::new(a, b, 3).padding(1).bias(!bn), init)?;
    Ok((conv, if bn { Some(BatchNorm2d::new(b, init)?) } else { None }))
}

impl BasicBlockT {
    fn new(a: usize, b: usize, up: bool, bn: bool, init: &mut Init) -> nn::Result<BasicBlockT> {
        let (conv1, bn1) = convt3(a, a, bn, init)?;
        let (conv2, bn2) = convt3(a, b, bn, init)?;
        let upsample = if up { Some(Upsample::bilinear(2)?) } else { None };
        let shortcut = if up || a != b {
            let mut seq = Sequential::new();
            if up {
                seq.push(Upsample::bilinear(2)?);
            }
            let (conv, norm) = convt3(a, b, bn, init)?;
            seq.push(conv);
            if let Some(norm) = norm {
                seq.push(norm);
            }
            Some(seq)
        } else {
            None
        };
        Ok(BasicBlockT { conv1, bn1, upsample, conv2, bn2, shortcut })
    }
}

impl Module for BasicBlockT {
    fn forward(&self, x: &Var) -> nn::Result<Var> {
        let mut out = apply_bn(&self.bn1, self.conv1.forward(x)?)?.relu()?;
        if let Some(up) = &self.upsample {
            out = up.forward(&out)?;
        }
        let out = apply_bn(&self.bn2, self.conv2.forward(&out)?)?;
        let shortcut = match &self.shortcut {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        Ok(out.add(&shortcut)?.relu()?)
    }

    fn visit_children(&self, visit: &mut dyn FnMut(&str, &dyn Module)) {
        let (bn1, bn2) = (self.bn1.as_ref(), self.bn2.as_ref());
        visit_block(visit, [&self.conv1, &self.conv2], [bn1, bn2], ("shortcut", self.shortcut.as_ref()));
    }
}

/// [N, z] → [N, C, H, W]: Linear → ReLU → [512, H/32, W/32] → layer4'…layer1' → Up → Up → ConvT.
struct ResNet18Decoder {
    linear: Linear,
    start: [usize; 3],
    layers: [Sequential; 4],
    upsample: Upsample,
    conv1: ConvTranspose2d,
}

impl Module for ResNet18Decoder {
    fn forward(&self, z: &Var) -> nn::Result<Var> {
        let n = z.shape()[0];
        let [c, h, w] = self.start;
        let mut x = self.linear.forward(z)?.relu()?.reshape(&[n, c, h, w])?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        let x = self.upsample.forward(&self.upsample.forward(&x)?)?;
        self.conv1.forward(&x)
    }

    fn visit_children(&self, visit: &mut dyn FnMut(&str, &dyn Module)) {
        visit("linear", &self.linear);
        for (i, layer) in self.layers.iter().enumerate() {
            visit(["layer4", "layer3", "layer2", "layer1"][i], layer);
        }
        visit("conv1", &self.conv1);
    }
}

pub(super) fn build(
    cfg: ModelConfig,
    [encoder_bn, decoder_bn]: [bool; 2],
    init: &mut Init,
) -> nn::Result<super::PresetParts> {
    let [c, h, w] = cfg.input;
    let encoder = ResNet18Encoder::new(c, encoder_bn, init)?;
    let start = [512, h / 32, w / 32];
    let linear = Linear::new(cfg.z_dim, start.iter().product(), init)?;
    let stage = |a: usize, b: usize, up: bool, init: &mut Init| -> nn::Result<Sequential> {
        Ok(Sequential::new()
            .with(BasicBlockT::new(a, a, false, decoder_bn, init)?)
            .with(BasicBlockT::new(a, b, up, decoder_bn, init)?))
    };
    let layers = [
        stage(512, 256, true, init)?,
        stage(256, 128, true, init)?,
        stage(128, 64, true, init)?,
        stage(64, 64, false, init)?,
    ];
    let conv1 = ConvTranspose2d::new(ConvTranspose2dConfig::new(64, c, 3).padding(1), init)?;
    let decoder = ResNet18Decoder { linear, start, layers, upsample: Upsample::bilinear(2)?, conv1 };
    Ok((Box::new(encoder), 512, Box::new(decoder)))
}

/// The encoder with a classification head, for pre-training (`classify`): [N, C, H, W] →
/// logits [N, classes]. Its `encoder.*` names match the VAE's, so a VAE loads them directly.
pub struct ResNet18Classifier {
    /// The ResNet-18 trunk: `[N, C, H, W]` → `[N, 512]`.
    pub encoder: ResNet18Encoder,
    /// Classification head: `[N, 512]` → logits `[N, classes]`.
    pub fc: Linear,
}

impl ResNet18Classifier {
    /// A classifier for `in_channels`-channel inputs and `classes` classes; `batch_norm` as for [`ResNet18Encoder::new`].
    pub fn new(
        in_channels: usize,
        classes: usize,
        batch_norm: bool,
        init: &mut Init,
    ) -> nn::Result<ResNet18Classifier> {
        Ok(ResNet18Classifier {
            encoder: ResNet18Encoder::new(in_channels, batch_norm, init)?,
            fc: Linear::new(512, classes, init)?,
        })
    }

    /// The 512 penultimate features (used for the Fréchet distance between feature sets).
    pub fn features(&self, x: &Var) -> nn::Result<Var> {
        self.encoder.forward(x)
    }
}

impl Module for ResNet18Classifier {
    fn forward(&self, x: &Var) -> nn::Result<Var> {
        self.fc.forward(&self.encoder.forward(x)?)
    }

    fn visit_children(&self, visit: &mut dyn FnMut(&str, &dyn Module)) {
        visit("encoder", &self.encoder);
        visit("fc", &self.fc);
    }
}
