//! `dense` and `dense-small` (Messaoudi et al.): a fully connected VAE, its two hidden widths
//! [wide, narrow] = [512, 256] or [256, 128].
//! encoder: flatten C·H·W → Linear wide → ReLU → Linear narrow → ReLU (F = narrow)
//! decoder: Linear z→narrow → ReLU → Linear wide → ReLU → Linear C·H·W → reshape [C, H, W]

use nn::{Flatten, Init, Linear, ReLU, Reshape, Sequential};

use super::ModelConfig;

pub(super) fn build(cfg: ModelConfig, [wide, narrow]: [usize; 2], init: &mut Init) -> nn::Result<super::PresetParts> {
    let [c, h, w] = cfg.input;
    let pixels = c * h * w;
    let encoder = Sequential::new()
        .with(Flatten)
        .with(Linear::new(pixels, wide, init)?)
        .with(ReLU)
        .with(Linear::new(wide, narrow, init)?)
        .with(ReLU);
    let decoder = Sequential::new()
        .with(Linear::new(cfg.z_dim, narrow, init)?)
        .with(ReLU)
        .with(Linear::new(narrow, wide, init)?)
        .with(ReLU)
        .with(Linear::new(wide, pixels, init)?)
        .with(Reshape::new(&[c, h, w]));
    Ok((Box::new(encoder), narrow, Box::new(decoder)))
}
