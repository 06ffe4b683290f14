//! A multilayer perceptron fitted to a toy regression: y = sin(3x) on [−1, 1].
//! Run with `cargo run --release --example mlp` (`-- --device reference` or `gpu` to choose
//! where it runs).
//!
//! The whole training loop of any model here is these five lines:
//! `zero_grad`, forward, loss, `backward`, `step`.

use autograd::{no_grad, Var};
use nn::optim::Optimizer;
use nn::{Adam, AdamConfig, Init, Linear, Module, Sequential, Tanh};
use tensor::{Device, DevicePreference, Rng, Tensor};

/// `n` points x uniform in [−1, 1] and their targets sin(3x), both [n, 1].
fn toy_data(n: usize, rng: &mut Rng) -> (Tensor, Tensor) {
    let xs: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    let ys: Vec<f32> = xs.iter().map(|x| (3.0 * x).sin()).collect();
    (Tensor::from_vec(xs, &[n, 1]).unwrap(), Tensor::from_vec(ys, &[n, 1]).unwrap())
}

fn main() -> nn::Result<()> {
    let device = Device::from_preference(DevicePreference::from_args()?)?;
    let mut init = Init::new(0);
    // [N, 1] → [N, 64] → [N, 64] → [N, 1]
    let model = Sequential::new()
        .with(Linear::new(1, 64, &mut init)?)
        .with(Tanh)
        .with(Linear::new(64, 64, &mut init)?)
        .with(Tanh)
        .with(Linear::new(64, 1, &mut init)?);
    model.to_device(&device)?;
    println!("MLP with {} parameters on {}", model.parameter_counts().total, device.describe());

    let mut rng = Rng::new(1);
    let (x_train, y_train) = toy_data(256, &mut rng);
    let (x_test, y_test) = toy_data(1000, &mut rng);
    let (x, y) = (Var::constant(x_train.to_device(&device)?), Var::constant(y_train.to_device(&device)?));

    let mut optimizer = Adam::new(model.named_parameters(), AdamConfig::new(1e-2))?;
    for step in 0..=1000 {
        optimizer.zero_grad();
        let loss = model.forward(&x)?.sub(&y)?.square()?.mean_all()?; // mean squared error
        loss.backward()?;
        optimizer.step()?;
        if step % 100 == 0 {
            println!("step {step:4}  train MSE {:.6}", loss.value().item()?);
        }
    }

    // Evaluation builds no graph.
    let test_mse = no_grad(|| -> nn::Result<f64> {
        let pred = model.forward(&Var::constant(x_test.to_device(&device)?))?;
        Ok(pred.sub(&Var::constant(y_test.to_device(&device)?))?.square()?.mean_all()?.value().item()?)
    })?;
    println!("held-out MSE {test_mse:.6} (the targets' variance is about 0.5)");
    Ok(())
}
