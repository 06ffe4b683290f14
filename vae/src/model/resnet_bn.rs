//! `resnet-bn` (the STL-10 paper): a residual VAE with batch norm for 64×64 images.
//! ResBlock(c): x + BN(ReLU(BN(Conv(3,1,1) c→c)))
//! encoder: Conv(3,1,1) C→64 → BN → ReLU, then stages 64→128→256→512→512, each
//!          Conv(3,2,1) a→b → BN → ReLU → ResBlock(b); flatten (F = 512·H/16·W/16)
//! decoder: Linear z→512·H/16·W/16 → reshape, then stages 512→512→256→128→64, each
//!          Up(nearest) → Conv(3,1,1) a→b → BN → ReLU → ResBlock(b); then Conv(3,1,1) 64→C

use autograd::Var;
use nn::{BatchNorm2d, Conv2d, Conv2dConfig, Flatten, Init, Linear, Module, ReLU, Reshape, Sequential, Upsample};

use super::ModelConfig;

/// x + BN₂(ReLU(BN₁(conv(x)))).
struct ResBlock {
    conv: Conv2d,
    /// `None` once folded into `conv` for inference (`Module::fold_batch_norms`).
    bn1: Option<BatchNorm2d>,
    bn2: BatchNorm2d,
}

impl ResBlock {
    fn new(c: usize, init: &mut Init) -> nn::Result<ResBlock> {
        Ok(ResBlock {
            conv: Conv2d::new(Conv2dConfig::new(c, c, 3).padding(1).bias(false), init)?,
            bn1: Some(BatchNorm2d::new(c, init)?),
            bn2: BatchNorm2d::new(c, init)?,
        })
    }
}

impl Module for ResBlock {
    fn forward(&self, x: &Var) -> nn::Result<Var> {
        let h = match &self.bn1 {
            Some(bn1) => bn1.forward(&self.conv.forward(x)?)?.relu()?,
            None => self.conv.forward_then_relu(x)?,
        };
        Ok(x.add(&self.bn2.forward(&h)?)?)
    }

    /// BN₁ into the convolution; BN₂ follows the ReLU, so it stays.
    fn fold_batch_norms(&mut self) -> nn::Result<usize> {
        let Some(affine) = self.bn1.as_ref().map(|bn1| bn1.eval_channel_affine()).transpose()?.flatten() else {
            return Ok(0);
        };
        self.conv = self.conv.with_channel_affine(&affine)?;
        self.bn1 = None;
        Ok(1)
    }

    fn visit_children(&self, visit: &mut dyn FnMut(&str, &dyn Module)) {
        visit("conv", &self.conv);
        if let Some(bn1) = &self.bn1 {
            visit("bn1", bn1);
        }
        visit("bn2", &self.bn2);
    }
}

/// conv(a→b) → BN → ReLU → ResBlock(b), with an optional upsampling first.
fn stage(a: usize, b: usize, stride: usize, upsample: bool, init: &mut Init) -> nn::Result<Sequential> {
    let mut s = Sequential::new();
    if upsample {
        s.push(Upsample::nearest(2)?);
    }
    s.push(Conv2d::new(Conv2dConfig::new(a, b, 3).stride(stride).padding(1).bias(false), init)?);
    s.push(BatchNorm2d::new(b, init)?);
    s.push(ReLU);
    s.push(ResBlock::new(b, init)?);
    Ok(s)
}

pub(super) fn build(cfg: ModelConfig, init: &mut Init) -> nn::Result<super::PresetParts> {
    let [c, h, w] = cfg.input;
    let start = [512, h / 16, w / 16];
    let features: usize = start.iter().product();
    let mut encoder = Sequential::new()
        .with(Conv2d::new(Conv2dConfig::new(c, 64, 3).padding(1).bias(false), init)?)
        .with(BatchNorm2d::new(64, init)?)
        .with(ReLU);
    for (a, b) in [(64, 128), (128, 256), (256, 512), (512, 512)] {
        encoder.push(stage(a, b, 2, false, init)?);
    }
    encoder.push(Flatten);
    let mut decoder = Sequential::new().with(Linear::new(cfg.z_dim, features, init)?).with(Reshape::new(&start));
    for (a, b) in [(512, 512), (512, 256), (256, 128), (128, 64)] {
        decoder.push(stage(a, b, 1, true, init)?);
    }
    decoder.push(Conv2d::new(Conv2dConfig::new(64, c, 3).padding(1), init)?);
    Ok((Box::new(encoder), features, Box::new(decoder)))
}
