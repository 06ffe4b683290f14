//! What one move of a slider in `explore` costs the server: decoding one latent code to an
//! image (`vae::tools::eval::decode_codes`, the call `Explorer::decode_png` makes) and encoding it as
//! a PNG, per model preset, median of many repetitions; and decoding the 32 prior samples the
//! page shows. Weights are random (the time does not depend on their values). HTTP is not
//! counted: on loopback it adds well under a millisecond.
//!
//!     cargo bench --bench decode_latency                       # CPU, 50 repetitions
//!     cargo bench --bench decode_latency -- --device gpu --reps 100

#[allow(dead_code)] // the table helpers there serve the per-layer benches
mod common;

use common::{flag, median_ms};
use nn::{Init, Module};
use tensor::{Device, DevicePreference, Rng};
use vae::data::Normalization;
use vae::model::{Arch, ModelConfig, OutputActivation, Vae};
use vae::plot::{image_grid, png_bytes, GridOptions};
use vae::tools::eval::decode_codes;
use vae::train::standard_normal;

/// The presets at the image size and latent size of the studies that use them.
const PRESETS: [(Arch, [usize; 3], usize, &str); 6] = [
    (Arch::Dense, [1, 28, 28], 16, "Fashion-MNIST"),
    (Arch::Basic, [3, 32, 32], 128, "CIFAR-10"),
    (Arch::Conv, [1, 64, 64], 10, "dSprites (the default run)"),
    (Arch::ResNet18, [3, 32, 32], 128, "CIFAR-10"),
    (Arch::ResNet18NoBn, [3, 32, 32], 128, "CIFAR-10"),
    (Arch::ResNetBn, [3, 64, 64], 128, "STL-10 at 64×64"),
];

fn main() {
    let reps: usize = flag("--reps").and_then(|r| r.parse().ok()).unwrap_or(50);
    let device: DevicePreference = flag("--device").unwrap_or_else(|| "cpu".into()).parse().unwrap_or_else(|e| {
        eprintln!("error: --device: {e}");
        std::process::exit(1)
    });
    let device = Device::from_preference(device).unwrap_or_else(|e| {
        eprintln!("error: --device: {e}");
        std::process::exit(1)
    });
    println!("device: {}, {reps} repetitions, median\n", device.describe());
    println!("| preset | input | z | data | decode 1 code, ms | + PNG, ms | 32 samples + PNG grid, ms |");
    println!("|---|---|---|---|---|---|---|");
    for (arch, input, z_dim, data) in PRESETS {
        let model = Vae::new(ModelConfig { arch, input, z_dim }, &mut Init::new(0)).expect("preset builds");
        model.to_device(&device).expect("model moves to the device");
        let output = OutputActivation::Logits;
        let norm = Normalization::ZeroOne;
        let mut rng = Rng::new(1);
        let one = standard_normal(1, z_dim, tensor::DType::F32, &mut rng).to_vec_f32().unwrap();
        let many = standard_normal(32, z_dim, tensor::DType::F32, &mut rng).to_vec_f32().unwrap();
        let [c, h, w] = input;
        let png = |images: &[f32], n: usize, cols: usize, padding: usize| {
            let opts = GridOptions { cols, padding, scale: Some(1), ..GridOptions::default() };
            png_bytes(&image_grid(images, [n, c, h, w], &opts).unwrap()).unwrap()
        };
        let decode_ms = median_ms(reps, || {
            decode_codes(&model, &one, &norm, output, 64).unwrap();
        });
        let with_png_ms = median_ms(reps, || {
            png(&decode_codes(&model, &one, &norm, output, 64).unwrap(), 1, 1, 0);
        });
        let samples_ms = median_ms(reps.div_ceil(5).max(3), || {
            png(&decode_codes(&model, &many, &norm, output, 64).unwrap(), 32, 8, 2);
        });
        println!(
            "| {} | {c}×{h}×{w} | {z_dim} | {data} | {decode_ms:.2} | {with_png_ms:.2} | {samples_ms:.1} |",
            arch.name()
        );
    }
}
