//! End to end: every preset trains for a few Adam steps on a tiny fixed batch of structured
//! images, and its loss goes down. This exercises every layer's forward and backward, the
//! losses, the optimizer and the train-mode batch norm together.

use nn::optim::{Adam, AdamConfig};
use nn::{Init, Module};
use tensor::{Rng, Tensor};
use vae::loss::{Objective, ReconLoss, TcEstimator};
use vae::model::{Arch, ModelConfig, OutputActivation, Vae};
use vae::train::{train_step, LossSetup};

/// n images of a bright square at a random place on a dark background: [n, c, h, w] in [0, 1].
fn squares(n: usize, c: usize, h: usize, w: usize, rng: &mut Rng) -> Tensor {
    let mut v = vec![0.05f32; n * c * h * w];
    for i in 0..n {
        let (s, y0, x0) = (h / 3, rng.below(h - h / 3), rng.below(w - w / 3));
        for ch in 0..c {
            for y in y0..y0 + s {
                for x in x0..x0 + s {
                    v[((i * c + ch) * h + y) * w + x] = 0.95;
                }
            }
        }
    }
    Tensor::from_vec(v, &[n, c, h, w]).unwrap()
}

/// Trains `steps` steps on one batch; returns the mean loss of the first and last three steps.
fn first_and_last_losses(arch: Arch, input: [usize; 3], objective: Objective, steps: usize) -> (f64, f64) {
    let mut rng = Rng::new(7);
    let model = Vae::new(ModelConfig { arch, input, z_dim: 8 }, &mut Init::new(3)).unwrap();
    let x = squares(8, input[0], input[1], input[2], &mut rng);
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::new(1e-3)).unwrap();
    let setup =
        LossSetup { recon: ReconLoss::BceLogits, output: OutputActivation::Logits, objective, input_noise_std: 0.0 };
    let losses: Vec<f64> =
        (0..steps).map(|i| train_step(&model, &mut opt, &x, &setup, &mut rng, (1, i + 1)).unwrap().loss).collect();
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    (mean(&losses[..3]), mean(&losses[steps - 3..]))
}

fn assert_loss_goes_down(arch: Arch, input: [usize; 3], steps: usize) {
    let (first, last) = first_and_last_losses(arch, input, Objective::BetaVae { k1: 1.0, beta: 1.0 }, steps);
    eprintln!("{arch}: loss {first:.2} -> {last:.2}");
    assert!(last < 0.9 * first, "{arch}: loss went from {first} to {last}");
}

#[test]
fn dense_vae_loss_goes_down() {
    assert_loss_goes_down(Arch::Dense, [1, 28, 28], 15);
}

#[test]
fn basic_vae_loss_goes_down() {
    assert_loss_goes_down(Arch::Basic, [1, 28, 28], 15);
}

#[test]
fn conv_vae_loss_goes_down() {
    assert_loss_goes_down(Arch::Conv, [3, 32, 32], 15);
}

#[test]
fn resnet18_vae_loss_goes_down() {
    assert_loss_goes_down(Arch::ResNet18, [3, 32, 32], 12);
}

#[test]
fn resnet18_without_batch_norm_loss_goes_down() {
    assert_loss_goes_down(Arch::ResNet18NoBn, [1, 32, 32], 12);
}

#[test]
fn resnet18_without_encoder_batch_norm_loss_goes_down() {
    assert_loss_goes_down(Arch::ResNet18EncoderNoBn, [1, 32, 32], 12);
}

#[test]
fn resnet_bn_vae_loss_goes_down() {
    assert_loss_goes_down(Arch::ResNetBn, [3, 32, 32], 12);
}

#[test]
fn beta_tcvae_objective_trains_too() {
    let objective = Objective::BetaTcVae {
        alpha: 1.0,
        beta: 6.0,
        gamma: 1.0,
        dataset_size: 1000,
        estimator: TcEstimator::MinibatchStratified,
    };
    let (first, last) = first_and_last_losses(Arch::Conv, [1, 32, 32], objective, 15);
    assert!(last < 0.9 * first, "beta-tcvae: loss went from {first} to {last}");
}

#[test]
fn a_nan_loss_is_refused_before_the_parameters_change() {
    let mut rng = Rng::new(1);
    let model = Vae::new(ModelConfig { arch: Arch::Dense, input: [1, 4, 4], z_dim: 2 }, &mut Init::new(0)).unwrap();
    let before: Vec<Vec<f32>> = model.parameters().iter().map(|p| p.value().to_vec_f32().unwrap()).collect();
    let mut bad = vec![0.5f32; 2 * 16];
    bad[3] = f32::NAN;
    let x = Tensor::from_vec(bad, &[2, 1, 4, 4]).unwrap();
    let mut opt = Adam::new(model.named_parameters(), AdamConfig::new(1e-3)).unwrap();
    let setup = LossSetup {
        recon: ReconLoss::Mse,
        output: OutputActivation::Sigmoid,
        objective: Objective::BetaVae { k1: 1.0, beta: 1.0 },
        input_noise_std: 0.0,
    };
    let err = train_step(&model, &mut opt, &x, &setup, &mut rng, (1, 1)).unwrap_err();
    assert!(err.to_string().contains("non-finite"), "{err}");
    let after: Vec<Vec<f32>> = model.parameters().iter().map(|p| p.value().to_vec_f32().unwrap()).collect();
    assert_eq!(before, after);
}
