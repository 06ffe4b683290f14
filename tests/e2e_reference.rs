//! The reference device trains: a few Adam steps of the dense and conv presets on the
//! reference device (every op by its plain definition, f64 arithmetic, f32 storage) and on the
//! CPU (the fast kernels, f32 arithmetic) from the same seed, the same batch and the same
//! noise, step for step.
//!
//! What the agreement can be: both devices store f32 and differ only in how each op rounds
//! (the reference rounds each op's f64 result once; the CPU kernels round every partial sum),
//! so each op differs by a few f32 ulps, relative ~1e-6. The loss of a batch is a sum over
//! thousands of pixels; Adam's first step moves every parameter by ≈ lr·sign(g), whatever g's
//! size, so a parameter whose gradient is near zero may step differently on the two devices —
//! that is the one place rounding is amplified. Hence the tolerances below: losses to 1e-4
//! relative at every step (≈ 100 ulps after three updates), parameters to lr/10 absolute
//! (a step is lr; a sign flip would move a parameter by 2·lr).

use nn::optim::{Adam, AdamConfig};
use nn::{Init, Module};
use tensor::{Device, Rng, Tensor};
use vae::loss::{Objective, ReconLoss};
use vae::model::{Arch, ModelConfig, OutputActivation, Vae};
use vae::train::{plain_train_step, train_step, LossSetup};

const LR: f64 = 1e-3;
const LOSS_RELATIVE_TOLERANCE: f64 = 1e-4;
const PARAMETER_TOLERANCE: f64 = LR / 10.0;

/// BCE on logits and the plain ELBO (β = 1): the loss both devices train with.
fn bce_setup() -> LossSetup {
    LossSetup {
        recon: ReconLoss::BceLogits,
        output: OutputActivation::Logits,
        objective: Objective::BetaVae { k1: 1.0, beta: 1.0 },
        input_noise_std: 0.0,
    }
}

/// The losses of `steps` steps on `device`, and the parameters after them (name, values).
fn train_on(device: &Device, arch: Arch, input: [usize; 3], steps: usize) -> (Vec<f64>, Vec<(String, Vec<f64>)>) {
    let model = Vae::new(ModelConfig { arch, input, z_dim: 4 }, &mut Init::new(3)).unwrap();
    model.to_device(device).unwrap();
    let mut rng = Rng::new(7);
    let [c, h, w] = input;
    let x = Tensor::rand_uniform(&[4, c, h, w], 0.0, 1.0, tensor::DType::F32, &mut rng).to_device(device).unwrap();
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::new(LR)).unwrap();
    let setup = bce_setup();
    let losses = (0..steps).map(|i| train_step(&model, &mut opt, &x, &setup, &mut rng, (1, i + 1)).unwrap().loss);
    let losses: Vec<f64> = losses.collect();
    for (name, p) in model.named_parameters() {
        assert_eq!(p.value().device(), *device, "{name} left the device it trained on");
    }
    let params = model.named_parameters().into_iter().map(|(name, p)| (name, p.value().to_vec_f64().unwrap()));
    (losses, params.collect())
}

/// Trains on both devices and asserts the agreement stated in the module docs.
fn assert_reference_and_cpu_agree(arch: Arch, input: [usize; 3]) {
    let steps = 3;
    let (ref_losses, ref_params) = train_on(&Device::Reference, arch, input, steps);
    let (cpu_losses, cpu_params) = train_on(&Device::Cpu, arch, input, steps);
    for (step, (r, c)) in ref_losses.iter().zip(&cpu_losses).enumerate() {
        let relative = (r - c).abs() / r.abs().max(1e-12);
        eprintln!("{arch} step {}: reference {r:.6}, cpu {c:.6}, relative difference {relative:.2e}", step + 1);
        assert!(relative <= LOSS_RELATIVE_TOLERANCE, "{arch} step {}: loss {r} (reference) vs {c} (cpu)", step + 1);
    }
    assert!(ref_losses[steps - 1] < ref_losses[0], "{arch}: the reference device's loss did not go down");
    let mut largest = 0.0f64;
    for ((name, r), (_, c)) in ref_params.iter().zip(&cpu_params) {
        for (a, b) in r.iter().zip(c) {
            let d = (a - b).abs();
            largest = largest.max(d);
            assert!(d <= PARAMETER_TOLERANCE, "{arch} {name}: {a} (reference) vs {b} (cpu) after {steps} steps");
        }
    }
    eprintln!("{arch}: largest parameter difference after {steps} steps {largest:.2e}");
}

#[test]
fn dense_preset_trains_on_the_reference_device_as_on_the_cpu() {
    assert_reference_and_cpu_agree(Arch::Dense, [1, 28, 28]);
}

#[test]
fn conv_preset_trains_on_the_reference_device_as_on_the_cpu() {
    assert_reference_and_cpu_agree(Arch::Conv, [1, 32, 32]);
}

#[test]
fn the_plain_step_and_the_training_loops_step_make_the_same_update() {
    let run = |plain: bool| {
        let (arch, input) = (Arch::Dense, [1, 28, 28]);
        let model = Vae::new(ModelConfig { arch, input, z_dim: 4 }, &mut Init::new(5)).unwrap();
        let mut rng = Rng::new(11);
        let x = Tensor::rand_uniform(&[4, 1, 28, 28], 0.0, 1.0, tensor::DType::F32, &mut rng);
        let mut opt = Adam::new(model.named_parameters(), AdamConfig::new(LR)).unwrap();
        let setup = bce_setup();
        let mut losses = Vec::new();
        for i in 0..2 {
            let values = if plain {
                plain_train_step(&model, &mut opt, &x, &setup, &mut rng)
            } else {
                train_step(&model, &mut opt, &x, &setup, &mut rng, (1, i + 1))
            };
            losses.push(values.unwrap().loss);
        }
        let params: Vec<Vec<f64>> = model.parameters().iter().map(|p| p.value().to_vec_f64().unwrap()).collect();
        (losses, params)
    };
    // The same kernels in the same order: equal to the last bit.
    assert_eq!(run(true), run(false));
}
