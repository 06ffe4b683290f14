//! The ResNet-18 classifier of the studies: cross-entropy training steps, accuracy, and a
//! trained classifier used as a judge of generated images (penultimate features for a
//! Fréchet distance, predicted classes for a class histogram). The `classify` binary trains
//! it; `train --pretrained-encoder` starts a VAE's encoder from its `encoder.*` tensors.
//!
//! A classifier file `X.safetensors` has a sidecar `X.json` ([`ClassifierInfo`]) saying what
//! input it expects; its inputs are always images in [0, 1] (no other normalisation).

use std::path::{Path, PathBuf};

use autograd::{no_grad, Var};
use nn::checkpoint::{load_model, LoadOptions};
use nn::{Init, Module};
use serde::{Deserialize, Serialize};
use tensor::Tensor;

use crate::data::resize_chw;
use crate::error::{Error, Result};
use crate::model::{Arch, ResNet18Classifier};

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
    let bn = match <Arch as clap::ValueEnum>::from_str(&info.arch, false) {
        Ok(Arch::ResNet18) => true,
        Ok(Arch::ResNet18NoBn) => false,
        _ => {
            return Err(Error::Config(format!(
                "{}: classifier arch '{}' is not resnet18 or resnet18-nobn",
                ip.display(),
                info.arch
            )))
        }
    };
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
    fn grey_images_are_replicated_for_an_rgb_classifier() {
        let out = adapt_images(&[0.25; 4], [1, 1, 2, 2], [3, 2, 2]).unwrap();
        assert_eq!(out, vec![0.25; 12]);
        assert!(adapt_images(&[0.0; 8], [1, 2, 2, 2], [3, 2, 2]).is_err());
    }
}
