//! The ResNet-18 classifier of the studies: cross-entropy training steps, accuracy, and a
//! trained classifier used as a judge of generated images (penultimate features for a
//! Fréchet distance, predicted classes for a class histogram). The `classify` binary trains
//! it; `train --pretrained-encoder` starts a VAE's encoder from its `encoder.*` tensors.
//!
//! A classifier file `X.safetensors` has a sidecar `X.json` ([`ClassifierInfo`]) saying what
//! input it expects; its inputs are always images in [0, 1] (no other normalisation).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use autograd::{no_grad, Var};
use nn::checkpoint::{load_model, save_model, LoadOptions};
use nn::optim::{Adam, AdamConfig, Optimizer};
use nn::{Init, Module};
use serde::{Deserialize, Serialize};
use tensor::{Rng, Tensor};

use crate::cli::ClassifyCli;
use crate::data::{resize_chw, BatchOptions, Batches, Dataset, Normalization};
use crate::error::{Error, Result};
use crate::model::{Arch, ResNet18Classifier};
use crate::runs::RunConfig;
use crate::streams::Stream;

/// What a saved classifier expects and how well it did.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClassifierInfo {
    /// "resnet18" or "resnet18-nobn".
    pub arch: String,
    /// Name of the dataset it was trained on (as `--dataset` spells it).
    pub dataset: String,
    /// [C, H, W] of its inputs, values in [0, 1].
    pub input: [usize; 3],
    /// Class names, index `k` naming logit `k`.
    pub class_names: Vec<String>,
    /// Accuracy on the held-out test split, in [0, 1].
    pub test_accuracy: f64,
}

/// `X.safetensors` → `X.json`.
pub fn info_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

/// Mean cross-entropy of logits [N, K] against labels \[N\]:
///   CE = 1/N Σ_i (log Σ_k exp l_ik − l_{i,y_i}),
/// with the label's logit picked by a constant one-hot mask so the graph stays differentiable.
pub fn cross_entropy(logits: &Var, labels: &[usize]) -> Result<Var> {
    let (n, k) = match logits.shape()[..] {
        [n, k] if n > 0 && k > 0 => (n, k),
        _ => return Err(Error::Config(format!("cross_entropy: logits must be [N, K], got {:?}", logits.shape()))),
    };
    if labels.len() != n {
        return Err(Error::Config(format!("cross_entropy: {} labels for {n} rows of logits", labels.len())));
    }
    let mut onehot = vec![0f32; n * k];
    for (i, &y) in labels.iter().enumerate() {
        if y >= k {
            return Err(Error::Config(format!("label {y} but the classifier has {k} classes")));
        }
        onehot[i * k + y] = 1.0;
    }
    let mask = Var::constant(
        Tensor::from_vec(onehot, &[n, k])?.to_dtype(logits.dtype())?.to_device(&logits.value().device())?,
    );
    let picked = logits.mul(&mask)?.sum(&[1], false)?;
    Ok(logits.logsumexp(&[1], false)?.sub(&picked)?.mean_all()?)
}

/// argmax over the classes of logits [N, K].
pub fn predictions(logits: &Tensor) -> Result<Vec<usize>> {
    Ok(logits.argmax(1, false)?.to_vec::<f32>()?.into_iter().map(|v| v as usize).collect())
}

/// A classifier and its description, loaded from `weights` and its sidecar.
pub fn load_classifier(weights: &Path) -> Result<(ResNet18Classifier, ClassifierInfo)> {
    let ip = info_path(weights);
    let text = std::fs::read_to_string(&ip).map_err(|e| Error::Io { path: ip.clone(), source: e })?;
    let info: ClassifierInfo = serde_json::from_str(&text).map_err(|e| {
        Error::Config(format!("{}: not a classifier description written by classify: {e}", ip.display()))
    })?;
    let arch = <Arch as clap::ValueEnum>::from_str(&info.arch, false)
        .map_err(|_| Error::Config(format!("{}: classifier arch '{}' is not a preset", ip.display(), info.arch)))?;
    let bn = has_batch_norm(arch).map_err(|why| Error::Config(format!("{}: {why}", ip.display())))?;
    let clf = ResNet18Classifier::new(info.input[0], info.class_names.len(), bn, &mut Init::new(0))?;
    load_model(weights, &clf, &LoadOptions::strict())?;
    clf.set_training(false);
    Ok((clf, info))
}

/// Brings images [n, C, H, W] in [0, 1] to the classifier's [C', H', W']: resized, and grey
/// replicated to RGB (or RGB averaged to grey) when the channel counts differ.
pub fn adapt_images(images: &[f32], shape: [usize; 4], target: [usize; 3]) -> Result<Vec<f32>> {
    let [n, c, h, w] = shape;
    let [tc, th, tw] = target;
    let mut out = Vec::with_capacity(n * tc * th * tw);
    for i in 0..n {
        let img = &images[i * c * h * w..(i + 1) * c * h * w];
        let img = if (h, w) == (th, tw) { img.to_vec() } else { resize_chw(img, c, h, w, th, tw) };
        let plane = th * tw;
        match (c, tc) {
            (a, b) if a == b => out.extend_from_slice(&img),
            (1, b) => (0..b).for_each(|_| out.extend_from_slice(&img)),
            (a, 1) => out.extend((0..plane).map(|p| (0..a).map(|ch| img[ch * plane + p]).sum::<f32>() / a as f32)),
            (a, b) => return Err(Error::Config(format!("cannot feed {a}-channel images to a {b}-channel classifier"))),
        }
    }
    Ok(out)
}

/// Penultimate features [n, 512] and predicted classes of images [n, C, H, W] in [0, 1].
pub fn judge(
    clf: &ResNet18Classifier,
    info: &ClassifierInfo,
    images: &[f32],
    shape: [usize; 4],
    batch: usize,
) -> Result<(Vec<f32>, Vec<usize>)> {
    let x = adapt_images(images, shape, info.input)?;
    let per = info.input.iter().product::<usize>();
    let n = shape[0];
    let (mut feats, mut preds) = (Vec::with_capacity(n * 512), Vec::with_capacity(n));
    no_grad(|| -> Result<()> {
        for start in (0..n).step_by(batch.max(1)) {
            let b = batch.min(n - start);
            let t = Tensor::from_vec(
                x[start * per..(start + b) * per].to_vec(),
                &[b, info.input[0], info.input[1], info.input[2]],
            )?;
            let f = clf.features(&Var::constant(t))?;
            let logits = clf.fc.forward(&f)?;
            feats.extend(f.value().to_vec::<f32>()?);
            preds.extend(predictions(&logits.value())?);
        }
        Ok(())
    })?;
    Ok((feats, preds))
}

/// Whether a classifier of this preset has batch norm; only the two ResNet-18 presets are
/// classifiers (the error says so).
pub fn has_batch_norm(arch: Arch) -> std::result::Result<bool, String> {
    match arch {
        Arch::ResNet18 => Ok(true),
        Arch::ResNet18NoBn => Ok(false),
        other => Err(format!("{other} is not a classifier preset (expected resnet18 or resnet18-nobn)")),
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

/// One epoch of cross-entropy steps: the mean loss and the accuracy over its batches. A
/// non-finite loss stops training before the step that would spread it. The CPU pool's
/// workers are kept awake through the epoch, as through `train`'s steps
/// ([`tensor::cpu::awake`]).
fn train_epoch(clf: &ResNet18Classifier, opt: &mut Adam, batches: Batches, epoch: usize) -> Result<(f64, f64)> {
    tensor::cpu::awake::kept_awake(|| train_epoch_steps(clf, opt, batches, epoch))
}

/// [`train_epoch`]'s steps, on whichever thread runs them.
fn train_epoch_steps(clf: &ResNet18Classifier, opt: &mut Adam, batches: Batches, epoch: usize) -> Result<(f64, f64)> {
    let (mut loss_sum, mut right, mut seen) = (0.0, 0usize, 0usize);
    for (step, b) in batches.enumerate() {
        let labels: Vec<usize> = b.labels.unwrap_or_default().into_iter().map(|l| l as usize).collect();
        opt.zero_grad();
        let logits = clf.forward(&Var::constant(b.images))?;
        let loss = cross_entropy(&logits, &labels)?;
        let l = loss.value().item()?;
        if !l.is_finite() {
            return Err(Error::NonFinite { epoch, step: step + 1, what: "cross-entropy".into(), kept: String::new() });
        }
        loss.backward()?;
        opt.step()?;
        let pred = predictions(&logits.value())?;
        right += pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
        loss_sum += l * labels.len() as f64;
        seen += labels.len();
    }
    Ok((loss_sum / seen.max(1) as f64, right as f64 / seen.max(1) as f64))
}

/// Trains a classifier as `classify`'s flags say (the split cut as `train` cuts it), printing
/// each epoch's loss and accuracies, and saves its weights to `args.out` with the
/// [`ClassifierInfo`] sidecar and a CSV of the epochs beside them.
pub fn train(args: &ClassifyCli) -> Result<ClassifierInfo> {
    args.cpu.apply()?;
    if args.batch_size == 0 || args.epochs == 0 {
        return Err(Error::Config("--batch-size and --epochs must be at least 1".into()));
    }
    let bn = has_batch_norm(args.arch).map_err(|why| Error::Config(format!("--arch {}: {why}", args.arch)))?;
    let cfg = RunConfig {
        dataset: args.dataset,
        data_dir: args.data_dir.clone(),
        image_size: args.image_size,
        max_images: args.max_images,
        skip_images: args.skip_images,
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
    let mut rng = Stream::ClassifierOrder.rng(args.seed);
    let mut csv = String::from("epoch,seconds,train_loss,train_accuracy,test_accuracy\n");
    let mut test_acc = 0.0;
    for epoch in 1..=args.epochs {
        let started = Instant::now();
        let (train_loss, train_acc) =
            train_epoch(&clf, &mut opt, Batches::new(train.clone(), &opts, &mut rng)?, epoch)?;
        test_acc = accuracy(&clf, &test, args.batch_size)?;
        let secs = started.elapsed().as_secs_f64();
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
        arch: args.arch.to_string(),
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
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_matches_the_hand_computed_value_and_checks_labels() {
        // logits [[0, ln 3], [ln 2, 0]], labels [1, 0]: CE = (ln 4 − ln 3 + ln 3 − ln 2) / 2 = ln 2 / 2
        let l = Var::constant(Tensor::from_vec(vec![0.0f32, 3f32.ln(), 2f32.ln(), 0.0], &[2, 2]).unwrap());
        let ce = cross_entropy(&l, &[1, 0]).unwrap().value().item().unwrap();
        assert!((ce - 2f64.ln() / 2.0).abs() < 1e-6, "{ce}");
        assert!(cross_entropy(&l, &[2, 0]).is_err());
    }

    #[test]
    fn cross_entropy_refuses_bad_shapes_and_a_label_count_other_than_the_rows() {
        let l = Var::constant(Tensor::zeros(&[3, 2], tensor::DType::F32));
        let err = cross_entropy(&l, &[0, 1]).unwrap_err().to_string();
        assert!(err.contains("2 labels for 3 rows"), "{err}");
        assert!(cross_entropy(&Var::constant(Tensor::zeros(&[3], tensor::DType::F32)), &[0, 1, 0]).is_err());
        assert!(cross_entropy(&Var::constant(Tensor::zeros(&[], tensor::DType::F32)), &[]).is_err());
    }

    #[test]
    fn only_the_resnet18_presets_are_classifiers() {
        assert_eq!(has_batch_norm(Arch::ResNet18), Ok(true));
        assert_eq!(has_batch_norm(Arch::ResNet18NoBn), Ok(false));
        let why = has_batch_norm(Arch::Dense).unwrap_err();
        assert!(why.contains("dense is not a classifier preset (expected resnet18 or resnet18-nobn)"), "{why}");
    }

    #[test]
    fn grey_images_are_replicated_for_an_rgb_classifier() {
        let out = adapt_images(&[0.25; 4], [1, 1, 2, 2], [3, 2, 2]).unwrap();
        assert_eq!(out, vec![0.25; 12]);
        assert!(adapt_images(&[0.0; 8], [1, 2, 2, 2], [3, 2, 2]).is_err());
    }
}
