//! Evaluating a trained VAE: encoding a dataset to posterior means, decoding codes to images
//! in [0, 1], the codes of latent traversals and interpolations, and the feature maps of the
//! encoder's intermediate layers. The `eval` binary turns these into PNGs and numbers.

pub mod command;

use autograd::{no_grad, Var};
use nn::checkpoint::{load_model, LoadOptions};
use nn::{Init, Module};
use std::path::Path;
use tensor::{Device, Tensor};

use crate::data::{Dataset, Normalization};
use crate::error::{Error, Result};
use crate::model::{Arch, OutputActivation, ResNet18Encoder, Vae};

/// The device the model's weights are on (its mean head's, which every preset has).
fn model_device(model: &Vae) -> Device {
    model.fc_mu.parameters().first().map_or(Device::Cpu, |p| p.value().device())
}

/// Runs `f` on consecutive batches of rows of `ds` (normalised, on the model's device) without
/// a graph, the model in evaluation mode; returns what each call returned.
fn per_batch<T>(
    model: &Vae,
    ds: &Dataset,
    norm: &Normalization,
    batch: usize,
    mut f: impl FnMut(&Tensor) -> Result<T>,
) -> Result<Vec<T>> {
    let device = model_device(model);
    model.set_training(false);
    let r = no_grad(|| {
        let mut out = vec![];
        for start in (0..ds.len()).step_by(batch.max(1)) {
            let idx: Vec<usize> = (start..(start + batch).min(ds.len())).collect();
            out.push(f(&ds.batch(&idx, norm)?.images.to_device(&device)?)?);
        }
        Ok(out)
    });
    model.set_training(true);
    r
}

/// Posterior means and log-variances of every image: two [n, z] row-major vectors.
pub fn encode_dataset(model: &Vae, ds: &Dataset, norm: &Normalization, batch: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let parts = per_batch(model, ds, norm, batch, |x| {
        let (mu, lv) = model.encode(&Var::constant(x.clone()))?;
        Ok((mu.value().to_vec::<f32>()?, lv.value().to_vec::<f32>()?))
    })?;
    Ok(parts.into_iter().fold((vec![], vec![]), |(mut a, mut b), (m, l)| {
        a.extend(m);
        b.extend(l);
        (a, b)
    }))
}

/// Reconstructions (z = μ) of every image of `ds`, in [0, 1]: [n, C, H, W] row-major.
pub fn reconstruct_dataset(
    model: &Vae,
    ds: &Dataset,
    norm: &Normalization,
    output: OutputActivation,
    batch: usize,
) -> Result<Vec<f32>> {
    let parts = per_batch(model, ds, norm, batch, |x| {
        Ok(output.to_image(&model.forward(&Var::constant(x.clone()))?.value(), norm)?.to_vec::<f32>()?)
    })?;
    Ok(parts.concat())
}

/// Decodes codes z: [n, zdim] (row-major) to images in [0, 1], in batches, on the device the
/// model is on.
pub fn decode_codes(
    model: &Vae,
    z: &[f32],
    norm: &Normalization,
    output: OutputActivation,
    batch: usize,
) -> Result<Vec<f32>> {
    let d = model.config.z_dim;
    let n = z.len() / d;
    let device = model_device(model);
    model.set_training(false);
    let r = no_grad(|| -> Result<Vec<f32>> {
        let mut out = vec![];
        for start in (0..n).step_by(batch.max(1)) {
            let b = batch.min(n - start);
            let t = Tensor::from_vec(z[start * d..(start + b) * d].to_vec(), &[b, d])?.to_device(&device)?;
            out.extend(output.to_image(&model.decode(&Var::constant(t))?.value(), norm)?.to_vec::<f32>()?);
        }
        Ok(out)
    });
    model.set_training(true);
    r
}

/// Latent traversal codes (Folkertsma et al.): for each dimension j in `dims` (indices into
/// `mu`, one image's mean, \[z\]), `steps` codes with z_j swept evenly over [−range, range]
/// (the prior's ±3σ for range 3) and the other dimensions left at the mean. Returns
/// [dims·steps, z], row k holding dimension `dims[k]`.
pub fn traversal_codes(mu: &[f32], dims: &[usize], steps: usize, range: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(dims.len() * steps * mu.len());
    for &j in dims {
        for s in 0..steps {
            let t = if steps == 1 { 0.0 } else { -range + 2.0 * range * s as f32 / (steps - 1) as f32 };
            let mut z = mu.to_vec();
            z[j] = t;
            out.extend(z);
        }
    }
    out
}

/// The straight line between two codes: (1 − t)·a + t·b (t = 0 is a, t = 1 is b).
pub fn interpolate(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| (1.0 - t) * x + t * y).collect()
}

/// The mixing of the STL-10 paper's pegasus experiment: w·a + (1 − w)·b′, where b′ = −b when
/// `negate_b` and b otherwise. The paper puts the weight w = 0.6 "in favour of the horse
/// encodings" (a), and multiplies the whole encoding of each dark-winged bird (b) by −1 before
/// mixing, to turn its wings white.
pub fn mix_codes(a: &[f32], b: &[f32], weight_a: f32, negate_b: bool) -> Vec<f32> {
    let sign = if negate_b { -1.0 } else { 1.0 };
    a.iter().zip(b).map(|(x, y)| weight_a * x + (1.0 - weight_a) * sign * y).collect()
}

/// How `eval --mix-classes` picks each class's images (`--mix-pick`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MixPick {
    /// The first images of the class in the test split.
    First,
    /// The brightest images of the class (highest mean pixel value), brightest first: a rule
    /// standing in for the STL-10 paper's hand-picked, "predominantly white" horses and birds.
    Brightest,
}

/// The mean pixel value of each image of `images` ([N, C·H·W] row-major, values in [0, 1]).
pub fn brightness(images: &[f32], pixels_per_image: usize) -> Vec<f32> {
    images.chunks(pixels_per_image).map(|im| im.iter().sum::<f32>() / pixels_per_image as f32).collect()
}

/// The median mean pixel value of the images `members` (0 for none): `--negate dark` negates
/// the class-B codes of images darker than their class's median image, a rule standing in for
/// the STL-10 paper's eye picking "birds ... that have dark wings".
pub fn median_brightness(members: &[usize], brightness: &[f32]) -> f32 {
    let mut values: Vec<f32> = members.iter().map(|&i| brightness[i]).collect();
    values.sort_by(f32::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => 0.5 * (values[n / 2 - 1] + values[n / 2]),
    }
}

/// Up to `count` of `candidates` (image indices) by `pick`; `brightness` is indexed by image.
pub fn pick_images(candidates: &[usize], brightness: &[f32], pick: MixPick, count: usize) -> Vec<usize> {
    let mut chosen = candidates.to_vec();
    if pick == MixPick::Brightest {
        // Stable: equally bright images keep their order in the split.
        chosen.sort_by(|&a, &b| brightness[b].total_cmp(&brightness[a]));
    }
    chosen.truncate(count);
    chosen
}

/// Mean KL per latent dimension over n encoded images, ½·E[μ² + σ² − log σ² − 1]: how much
/// each dimension is used (a collapsed, inactive one is near 0). mu, logvar: [n, z] row-major.
pub fn kl_per_dim(mu: &[f32], logvar: &[f32], z: usize) -> Vec<f64> {
    let n = mu.len() / z;
    (0..z)
        .map(|j| {
            (0..n)
                .map(|i| {
                    let (u, l) = (mu[i * z + j] as f64, logvar[i * z + j] as f64);
                    0.5 * (u * u + l.exp() - l - 1.0)
                })
                .sum::<f64>()
                / n.max(1) as f64
        })
        .collect()
}

/// The dimension indices ordered by their KL (from [`kl_per_dim`]), largest first.
pub fn dims_by_kl(kl: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..kl.len()).collect();
    order.sort_by(|&a, &b| kl[b].total_cmp(&kl[a]));
    order
}

/// One layer's maps: its name, [channels, H, W], and the values.
pub type FeatureMap = (String, [usize; 3], Vec<f32>);

/// The feature maps of the encoder's intermediate layers for one normalised image x:
/// [1, C, H, W]: every 4-D output, named by its layer, as (name, [channels, H, W] values).
///
/// `dense`, `basic`, `conv` and `resnet-bn` encoders are sequences, run layer by layer (the
/// ReLU outputs are the maps); the `resnet18` encoder is loaded on its own from `checkpoint`
/// and reports its stem and four stages.
pub fn feature_maps(model: &Vae, checkpoint: &Path, x: &Tensor) -> Result<Vec<FeatureMap>> {
    model.set_training(false);
    let arch = model.config.arch;
    let r = no_grad(|| -> Result<Vec<(String, Var)>> {
        match arch {
            Arch::ResNet18 | Arch::ResNet18NoBn | Arch::ResNet18EncoderNoBn => {
                let enc = ResNet18Encoder::new(model.config.input[0], arch == Arch::ResNet18, &mut Init::new(0))?;
                load_model(
                    checkpoint,
                    &enc,
                    &LoadOptions::strict().only_prefix("encoder.").remap_prefix("encoder.", ""),
                )?;
                enc.set_training(false);
                Ok(enc.stages(&Var::constant(x.clone()))?)
            }
            _ => {
                let mut h = Var::constant(x.clone());
                let mut out = vec![];
                let mut err = None;
                model.encoder.visit_children(&mut |name, layer| {
                    if err.is_some() {
                        return;
                    }
                    match layer.forward(&h) {
                        Ok(y) => {
                            // A map is the output of an activation: a 4-D result that the next
                            // layer does not change in shape (conv → ReLU keeps the ReLU's).
                            if y.shape().len() == 4 {
                                if out.last().is_some_and(|(_, v): &(String, Var)| v.shape() == y.shape()) {
                                    out.pop();
                                }
                                out.push((format!("encoder.{name}"), y.clone()));
                            }
                            h = y;
                        }
                        Err(e) => err = Some(e),
                    }
                });
                match err {
                    Some(e) => Err(e.into()),
                    None => Ok(out),
                }
            }
        }
    });
    model.set_training(true);
    let maps = r?;
    if maps.is_empty() {
        return Err(Error::Config(format!("the '{arch}' encoder has no 2-D feature maps (it is fully connected)")));
    }
    maps.into_iter()
        .map(|(n, v)| {
            let s = v.shape();
            Ok((n, [s[1], s[2], s[3]], v.value().to_vec::<f32>()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traversal_sweeps_one_dimension_per_row_and_keeps_the_others() {
        let z = traversal_codes(&[0.5, -1.0], &[0, 1], 3, 3.0);
        // rows: dim 0 at −3, 0, 3 with dim 1 = −1; then dim 1 at −3, 0, 3 with dim 0 = 0.5
        assert_eq!(z, vec![-3.0, -1.0, 0.0, -1.0, 3.0, -1.0, 0.5, -3.0, 0.5, 0.0, 0.5, 3.0]);
        // only the dimensions asked for, in the order asked
        assert_eq!(traversal_codes(&[0.5, -1.0], &[1], 2, 1.0), vec![0.5, -1.0, 0.5, 1.0]);
    }

    /// A random `dense` model on 1×16×16 with z = 3 (weights from a fixed seed).
    fn tiny_model() -> Vae {
        let config = crate::model::ModelConfig { arch: Arch::Dense, input: [1, 16, 16], z_dim: 3 };
        Vae::new(config, &mut Init::new(7)).unwrap()
    }

    #[test]
    fn decoding_on_a_gpu_model_moves_the_codes_there_and_matches_the_cpu() {
        let cpu = tiny_model();
        let z: Vec<f32> = vec![0.3, -1.2, 2.0, -0.5, 0.0, 1.1];
        let want = decode_codes(&cpu, &z, &Normalization::ZeroOne, OutputActivation::Logits, 256).unwrap();
        let device = match tensor::Device::from_preference(tensor::DevicePreference::Gpu) {
            Ok(d) => d,
            Err(e) if std::env::var("VAE_REQUIRE_GPU").as_deref() != Ok("1") => {
                eprintln!("skipped: no GPU adapter ({e})");
                return;
            }
            Err(e) => panic!("VAE_REQUIRE_GPU=1 but no GPU: {e}"),
        };
        let gpu = tiny_model();
        gpu.to_device(&device).unwrap();
        let got = decode_codes(&gpu, &z, &Normalization::ZeroOne, OutputActivation::Logits, 256).unwrap();
        assert_eq!(got.len(), 2 * 16 * 16);
        let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "GPU decode differs from the CPU by {worst}");
        let (mu, _) =
            encode_dataset(&gpu, &Dataset::new("x", [2, 1, 16, 16], got).unwrap(), &Normalization::ZeroOne, 8).unwrap();
        assert_eq!(mu.len(), 2 * 3);
    }

    #[test]
    fn kl_per_dimension_is_zero_for_the_prior_and_grows_with_the_mean() {
        // Two codes of z = 2: dimension 0 has μ = ±1, σ = 1 (KL ½ each), dimension 1 is the prior.
        let kl = kl_per_dim(&[1.0, 0.0, -1.0, 0.0], &[0.0, 0.0, 0.0, 0.0], 2);
        assert!((kl[0] - 0.5).abs() < 1e-12 && kl[1].abs() < 1e-12, "{kl:?}");
    }

    #[test]
    fn dimensions_by_kl_lists_the_most_active_first() {
        assert_eq!(dims_by_kl(&[0.1, 2.0, 0.0, 0.5]), vec![1, 3, 0, 2]);
    }

    #[test]
    fn interpolation_runs_from_the_first_code_to_the_second() {
        let close = |a: Vec<f32>, b: [f32; 2]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
        assert!(close(interpolate(&[0.0, 10.0], &[10.0, 0.0], 0.0), [0.0, 10.0]));
        assert!(close(interpolate(&[0.0, 10.0], &[10.0, 0.0], 0.6), [6.0, 4.0]));
        assert!(close(interpolate(&[0.0, 10.0], &[10.0, 0.0], 1.0), [10.0, 0.0]));
    }

    #[test]
    fn the_brightest_pick_takes_the_brightest_first_and_keeps_ties_in_order() {
        let images = [0.1f32, 0.1, 0.9, 0.9, 0.5, 0.5, 0.9, 0.9, 0.0, 0.2];
        let light = brightness(&images, 2);
        assert_eq!(light, vec![0.1, 0.9, 0.5, 0.9, 0.1]);
        let candidates = [0, 1, 2, 3, 4];
        assert_eq!(pick_images(&candidates, &light, MixPick::Brightest, 3), vec![1, 3, 2]);
        assert_eq!(pick_images(&candidates, &light, MixPick::First, 3), vec![0, 1, 2]);
        assert_eq!(pick_images(&candidates, &light, MixPick::Brightest, 9).len(), 5);
        assert_eq!(median_brightness(&candidates, &light), 0.5);
        assert!((median_brightness(&[0, 1, 2, 3], &light) - 0.7).abs() < 1e-6);
        assert_eq!(median_brightness(&[], &light), 0.0);
    }

    #[test]
    fn mixing_puts_the_weight_on_the_first_code() {
        // The horse (a) gets 0.6, the bird (b) 0.4.
        let (horse, bird) = ([10.0, 0.0, 4.0], [0.0, 10.0, 2.0]);
        let mixed = mix_codes(&horse, &bird, 0.6, false);
        let expected = [6.0, 4.0, 3.2];
        assert!(mixed.iter().zip(expected).all(|(x, y)| (x - y).abs() < 1e-5), "{mixed:?}");
    }

    #[test]
    fn mixing_negates_the_whole_second_code_before_mixing() {
        // 0.6·a + 0.4·(−b) in every dimension, not a flip of chosen dimensions of the mix.
        let (horse, bird) = ([10.0, 0.0, 4.0], [0.0, 10.0, 2.0]);
        let mixed = mix_codes(&horse, &bird, 0.6, true);
        let expected = [6.0, -4.0, 1.6];
        assert!(mixed.iter().zip(expected).all(|(x, y)| (x - y).abs() < 1e-5), "{mixed:?}");
        // The horse's own code is never negated.
        assert_eq!(mix_codes(&horse, &bird, 1.0, true), horse.to_vec());
    }
}
