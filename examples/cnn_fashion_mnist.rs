//! A small convolutional classifier on Fashion-MNIST: two conv + max-pool stages and a linear
//! head, trained for one pass over a subset, then scored on the full test set.
//! Run with `cargo run --release --example cnn_fashion_mnist` (about 30 s on 2 shared cores).
//!
//! Needs the dataset in /usr/share/datasets/fashion-mnist
//! (`apt-get install -y dataset-fashion-mnist`); without it the example says so and exits 1.

use std::path::Path;
use std::time::Instant;

use autograd::{no_grad, Var};
use nn::optim::Optimizer;
use nn::{
    Adam, AdamConfig, Conv2d, Conv2dConfig, Flatten, Init, Linear, MaxPool2d, Module, Pool2dConfig, ReLU, Sequential,
};
use tensor::{Rng, Tensor};
use vae::data::idx::load_fashion_mnist;
use vae::data::{Dataset, Normalization, Split};

const DATA_DIR: &str = "/usr/share/datasets/fashion-mnist";
const TRAIN_IMAGES: usize = 20_000;
const BATCH: usize = 64;
const CLASSES: usize = 10;

/// Mean cross-entropy of `logits` [N, 10] against one-hot targets [N, 10]:
/// mean over rows of logsumexp(logits) − Σ onehot·logits (= −log softmax of the true class).
fn cross_entropy(logits: &Var, onehot: &Tensor) -> nn::Result<Var> {
    let picked = logits.mul(&Var::constant(onehot.clone()))?.sum(&[1], false)?;
    Ok(logits.logsumexp(&[1], false)?.sub(&picked)?.mean_all()?)
}

/// One-hot rows [N, 10] for class labels.
fn one_hot(labels: &[u32]) -> Tensor {
    let mut v = vec![0.0f32; labels.len() * CLASSES];
    for (i, &l) in labels.iter().enumerate() {
        v[i * CLASSES + l as usize] = 1.0;
    }
    Tensor::from_vec(v, &[labels.len(), CLASSES]).unwrap()
}

/// Fraction of `data` whose largest logit is the label, in batches of 500 without a graph.
fn accuracy(model: &Sequential, data: &Dataset) -> nn::Result<f64> {
    let labels = data.labels.as_ref().expect("Fashion-MNIST has labels");
    let mut correct = 0;
    for start in (0..data.len()).step_by(500) {
        let idx: Vec<usize> = (start..(start + 500).min(data.len())).collect();
        let batch = data.batch(&idx, &Normalization::ZeroOne).expect("in-range indices");
        let logits = no_grad(|| model.forward(&Var::constant(batch.images)))?;
        let predicted = logits.value().argmax(1, false)?.to_vec_f32()?;
        correct += idx.iter().zip(&predicted).filter(|(&i, &p)| p as u32 == labels[i]).count();
    }
    Ok(correct as f64 / data.len() as f64)
}

fn main() -> nn::Result<()> {
    if !Path::new(DATA_DIR).join("train-images-idx3-ubyte.gz").exists() {
        eprintln!(
            "Fashion-MNIST is not installed: expected {DATA_DIR}/train-images-idx3-ubyte.gz.\n\
             Install it with `apt-get install -y dataset-fashion-mnist` and run this example again."
        );
        std::process::exit(1);
    }
    let load = |split| load_fashion_mnist(Path::new(DATA_DIR), split).unwrap_or_else(|e| panic!("{e}"));
    let (train, test) = (load(Split::Train), load(Split::Test));
    println!("Fashion-MNIST: {} train, {} test images of {:?}", train.len(), test.len(), &train.shape[1..]);

    let mut init = Init::new(0);
    let model = Sequential::new()
        .with(Conv2d::new(Conv2dConfig::new(1, 16, 3).padding(1), &mut init)?) // [N, 16, 28, 28]
        .with(ReLU)
        .with(MaxPool2d::new(Pool2dConfig::new(2))?) // [N, 16, 14, 14]
        .with(Conv2d::new(Conv2dConfig::new(16, 32, 3).padding(1), &mut init)?) // [N, 32, 14, 14]
        .with(ReLU)
        .with(MaxPool2d::new(Pool2dConfig::new(2))?) // [N, 32, 7, 7]
        .with(Flatten) // [N, 1568]
        .with(Linear::new(32 * 7 * 7, CLASSES, &mut init)?); // [N, 10] logits
    println!("CNN with {} parameters", model.parameter_counts().total);

    let labels = train.labels.as_ref().expect("Fashion-MNIST has labels");
    let mut optimizer = Adam::new(model.named_parameters(), AdamConfig::new(2e-3))?;
    let mut order: Vec<usize> = (0..train.len()).collect();
    Rng::new(1).shuffle(&mut order);
    let start = Instant::now();
    for (step, idx) in order[..TRAIN_IMAGES].chunks(BATCH).enumerate() {
        let batch = train.batch(idx, &Normalization::ZeroOne).expect("in-range indices"); // [B, 1, 28, 28] in [0, 1]
        let targets = one_hot(&idx.iter().map(|&i| labels[i]).collect::<Vec<_>>());
        optimizer.zero_grad();
        let loss = cross_entropy(&model.forward(&Var::constant(batch.images))?, &targets)?;
        loss.backward()?;
        optimizer.step()?;
        if step % 50 == 0 {
            println!("step {step:4}  loss {:.4}  ({:.1} s)", loss.value().item()?, start.elapsed().as_secs_f64());
        }
    }
    println!("trained on {TRAIN_IMAGES} images in {:.1} s", start.elapsed().as_secs_f64());
    println!("test accuracy {:.2} % on {} images", 100.0 * accuracy(&model, &test)?, test.len());
    Ok(())
}
