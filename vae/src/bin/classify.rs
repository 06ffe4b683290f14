//! `classify`: trains the ResNet-18 encoder with a linear head as a classifier (cross-entropy,
//! Adam), reports train and test accuracy per epoch, and saves the weights with a sidecar JSON.
//!
//! The saved file is what `train --pretrained-encoder FILE` reads (its `encoder.*` tensors
//! match the `resnet18` VAE's) and what `eval --classifier FILE` uses to judge samples.
//! The split (`--split`, `--seed`, `--max-images`) is cut as `train` cuts it, so a VAE trained
//! with the same flags is evaluated on images the classifier never saw.

use std::sync::Arc;
use std::time::Instant;

use autograd::{no_grad, Var};
use clap::Parser;
use nn::checkpoint::save_model;
use nn::optim::{Adam, AdamConfig, Optimizer};
use nn::{Init, Module};
use tensor::Rng;
use vae::classify::{cross_entropy, info_path, predictions, ClassifierInfo};
use vae::cli::ClassifyCli as Args;
use vae::data::{BatchOptions, Batches, Dataset, Normalization};
use vae::error::{Error, Result};
use vae::model::ResNet18Classifier;
use vae::runs::RunConfig;

/// Training allocates the same large tensors every step: reuse them (see train.rs).
#[global_allocator]
static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator = tensor::cpu::caching_allocator::CachingAllocator;

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Accuracy of `clf` on a dataset.
fn accuracy(clf: &ResNet18Classifier, ds: &Arc<Dataset>, batch_size: usize) -> Result<f64> {
    clf.set_training(false);
    let opts = BatchOptions { batch_size, shuffle: false, drop_last: false, normalization: Normalization::ZeroOne };
    let (mut right, mut total) = (0usize, 0usize);
    let r = no_grad(|| -> Result<()> {
        for b in Batches::new(ds.clone(), &opts, &mut Rng::new(0))? {
            let labels = b.labels.unwrap_or_default();
            let pred = predictions(&clf.forward(&Var::constant(b.images))?.value())?;
            right += pred.iter().zip(&labels).filter(|(p, l)| **p == **l as usize).count();
            total += pred.len();
        }
        Ok(())
    });
    clf.set_training(true);
    r?;
    Ok(right as f64 / total.max(1) as f64)
}

fn run(args: Args) -> Result<()> {
    vae::train::set_cpu_threads(args.threads)?;
    if args.batch_size == 0 || args.epochs == 0 {
        return Err(Error::Config("--batch-size and --epochs must be at least 1".into()));
    }
    let bn = match args.arch.as_str() {
        "resnet18" => true,
        "resnet18-nobn" => false,
        other => return Err(Error::Config(format!("--arch '{other}' (expected resnet18 or resnet18-nobn)"))),
    };
    let cfg = RunConfig {
        dataset: args.dataset,
        data_dir: args.data_dir.clone(),
        image_size: args.image_size,
        max_images: args.max_images,
        split: args.split.clone(),
        seed: args.seed,
        ..RunConfig::default()
    };
    let (splits, _) = cfg.load_splits().map_err(|e| Error::Config(format!("--dataset {}: {e}", args.dataset)))?;
    if splits.train.labels.is_none() {
        return Err(Error::Config(format!("--dataset {} has no labels to classify", args.dataset)));
    }
    let classes = splits.train.class_names.len().max(1);
    let [n, c, h, w] = splits.train.shape;
    let clf = ResNet18Classifier::new(c, classes, bn, &mut Init::new(args.seed))?;
    let mut opt = Adam::new(clf.named_parameters(), AdamConfig::new(args.lr))?;
    let train = Arc::new(splits.train);
    let test = Arc::new(if splits.test.is_empty() { splits.val } else { splits.test });
    println!(
        "{} classifier on {} ({n} train / {} test images, {c}×{h}×{w}, {classes} classes), {} parameters",
        args.arch,
        args.dataset,
        test.len(),
        clf.parameter_counts().total
    );
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
    }
    let opts = BatchOptions {
        batch_size: args.batch_size,
        shuffle: true,
        drop_last: true,
        normalization: Normalization::ZeroOne,
    };
    let mut rng = Rng::new(args.seed ^ 0xC1A5);
    let mut csv = String::from("epoch,seconds,train_loss,train_accuracy,test_accuracy\n");
    let mut test_acc = 0.0;
    for epoch in 1..=args.epochs {
        let started = Instant::now();
        let (mut loss_sum, mut right, mut seen) = (0.0, 0usize, 0usize);
        for b in Batches::new(train.clone(), &opts, &mut rng)? {
            let labels: Vec<usize> = b.labels.unwrap_or_default().into_iter().map(|l| l as usize).collect();
            opt.zero_grad();
            let logits = clf.forward(&Var::constant(b.images))?;
            let loss = cross_entropy(&logits, &labels)?;
            let l = loss.value().item()?;
            if !l.is_finite() {
                return Err(Error::NonFinite {
                    epoch,
                    step: seen / args.batch_size,
                    what: "cross-entropy".into(),
                    kept: String::new(),
                });
            }
            loss.backward()?;
            opt.step()?;
            let pred = predictions(&logits.value())?;
            right += pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
            loss_sum += l * labels.len() as f64;
            seen += labels.len();
        }
        test_acc = accuracy(&clf, &test, args.batch_size)?;
        let secs = started.elapsed().as_secs_f64();
        let (train_loss, train_acc) = (loss_sum / seen.max(1) as f64, right as f64 / seen.max(1) as f64);
        println!(
            "epoch {epoch}/{}  train loss {train_loss:.4}  train accuracy {:.2}%  test accuracy {:.2}%  {secs:.1} s",
            args.epochs,
            100.0 * train_acc,
            100.0 * test_acc
        );
        csv += &format!("{epoch},{secs:.2},{train_loss:.6},{train_acc:.6},{test_acc:.6}\n");
    }
    clf.set_training(false);
    save_model(&args.out, &clf)?;
    let info = ClassifierInfo {
        arch: args.arch.clone(),
        dataset: args.dataset.to_string(),
        input: [c, h, w],
        class_names: train.class_names.clone(),
        test_accuracy: test_acc,
    };
    let ip = info_path(&args.out);
    let json = serde_json::to_string_pretty(&info).map_err(|e| Error::Config(e.to_string()))?;
    std::fs::write(&ip, json).map_err(|e| Error::Io { path: ip.clone(), source: e })?;
    let mp = args.out.with_extension("csv");
    std::fs::write(&mp, csv).map_err(|e| Error::Io { path: mp.clone(), source: e })?;
    println!("saved {} ({}, {})", args.out.display(), ip.display(), mp.display());
    Ok(())
}
