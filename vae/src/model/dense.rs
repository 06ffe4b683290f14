//! `dense` (Messaoudi et al.): a fully connected VAE.
//! encoder: flatten C·H·W → Linear 512 → ReLU → Linear 256 → ReLU (F = 256)
//! decoder: Linear z→256 → ReLU → Linear 512 → ReLU → Linear C·H·W → reshape [C, H, W]

use nn::{Flatten, Init, Linear, ReLU, Reshape, Sequential};

use super::ModelConfig;

pub(super) fn build(cfg: ModelConfig, init: &mut Init) -> nn::Result<super::PresetParts> {
    let [c, h, w] = cfg.input;
    let pixels = c * h * w;
    let encoder = Sequential::new()
        .with(Flatten)
        .with(Linear::new(pixels, 512, init)?)
        .with(ReLU)
        .with(Linear::new(512, 256, init)?)
        .with(ReLU);
    let decoder = Sequential::new()
        .with(Linear::new(cfg.z_dim, 256, init)?)
        .with(ReLU)
        .with(Linear::new(256, 512, init)?)
        .with(ReLU)
        .with(Linear::new(512, pixels, init)?)
        .with(Reshape::new(&[c, h, w]));
    Ok((Box::new(encoder), 256, Box::new(decoder)))
}
