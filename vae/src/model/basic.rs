//! `basic` (Jena's "basic VAE"): two strided convolutions down, three transposed up.
//! encoder: Conv(3,2,1) C→32 → ReLU → Conv(3,2,1) 32→64 → ReLU → flatten (F = 64·H/4·W/4)
//! decoder: Linear z→64·H/4·W/4 → ReLU → reshape → ConvT(3,2,1,1) 64→64 → ReLU
//!          → ConvT(3,2,1,1) 64→32 → ReLU → ConvT(3,1,1,0) 32→C

use nn::{
    Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Flatten, Init, Linear, ReLU, Reshape, Sequential,
};

use super::ModelConfig;

pub(super) fn build(cfg: ModelConfig, init: &mut Init) -> nn::Result<super::PresetParts> {
    let [c, h, w] = cfg.input;
    let (h4, w4) = (h / 4, w / 4);
    let features = 64 * h4 * w4;
    let encoder = Sequential::new()
        .with(Conv2d::new(Conv2dConfig::new(c, 32, 3).stride(2).padding(1), init)?)
        .with(ReLU)
        .with(Conv2d::new(Conv2dConfig::new(32, 64, 3).stride(2).padding(1), init)?)
        .with(ReLU)
        .with(Flatten);
    let up = |a, b, init: &mut Init| {
        ConvTranspose2d::new(ConvTranspose2dConfig::new(a, b, 3).stride(2).padding(1).output_padding(1), init)
    };
    let decoder = Sequential::new()
        .with(Linear::new(cfg.z_dim, features, init)?)
        .with(ReLU)
        .with(Reshape::new(&[64, h4, w4]))
        .with(up(64, 64, init)?)
        .with(ReLU)
        .with(up(64, 32, init)?)
        .with(ReLU)
        .with(ConvTranspose2d::new(ConvTranspose2dConfig::new(32, c, 3).padding(1), init)?);
    Ok((Box::new(encoder), features, Box::new(decoder)))
}
