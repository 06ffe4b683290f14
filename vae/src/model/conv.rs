//! `conv` (Folkertsma et al.): an all-convolutional VAE, three stride-2 convolutions each way.
//! encoder: Conv(3,2,1) C→32 → ReLU → Conv(3,2,1) 32→64 → ReLU → Conv(3,2,1) 64→128 → ReLU
//!          → flatten (F = 128·H/8·W/8)
//! decoder: Linear z→128·H/8·W/8 → ReLU → reshape → ConvT(4,2,1,0) 128→64 → ReLU
//!          → ConvT(4,2,1,0) 64→32 → ReLU → ConvT(4,2,1,0) 32→C

use nn::{
    Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Flatten, Init, Linear, ReLU, Reshape, Sequential,
};

use super::ModelConfig;

pub(super) fn build(cfg: ModelConfig, init: &mut Init) -> nn::Result<super::PresetParts> {
    let [c, h, w] = cfg.input;
    let (h8, w8) = (h / 8, w / 8);
    let features = 128 * h8 * w8;
    let down = |a, b, init: &mut Init| Conv2d::new(Conv2dConfig::new(a, b, 3).stride(2).padding(1), init);
    let up =
        |a, b, init: &mut Init| ConvTranspose2d::new(ConvTranspose2dConfig::new(a, b, 4).stride(2).padding(1), init);
    let encoder = Sequential::new()
        .with(down(c, 32, init)?)
        .with(ReLU)
        .with(down(32, 64, init)?)
        .with(ReLU)
        .with(down(64, 128, init)?)
        .with(ReLU)
        .with(Flatten);
    let decoder = Sequential::new()
        .with(Linear::new(cfg.z_dim, features, init)?)
        .with(ReLU)
        .with(Reshape::new(&[128, h8, w8]))
        .with(up(128, 64, init)?)
        .with(ReLU)
        .with(up(64, 32, init)?)
        .with(ReLU)
        .with(up(32, c, init)?);
    Ok((Box::new(encoder), features, Box::new(decoder)))
}
