//! The in-memory dataset every loader produces ([N, C, H, W] in [0, 1], with optional labels
//! or ground-truth factors), its seeded train/val/test split, and image resizing.

use std::path::PathBuf;

use image::imageops::FilterType;
use image::{ImageBuffer, Luma};
use rayon::prelude::*;
use tensor::{Rng, Tensor};

use super::{invalid, Batch, Normalization, Result};

// the dataset

/// A file that an image loader could not decode and skipped.
#[derive(Clone, Debug, PartialEq)]
pub struct SkippedFile {
    /// The file that was skipped.
    pub path: PathBuf,
    /// The decoder's error message.
    pub reason: String,
}

/// All images of a dataset in memory.
///
/// `images` is [N, C, H, W] row-major f32 with values in [0, 1]; `labels` (when the dataset
/// has classes) index `class_names`; `factors` are dSprites' ground-truth factor indices
/// (see [`crate::data::dsprites::FACTOR_NAMES`]). Loaders keep `images.len() == N·C·H·W` and the other
/// vectors of length N; [`Dataset::new`] checks this for hand-built datasets.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Dataset name, as printed in messages and logs.
    pub name: String,
    /// [N, C, H, W]
    pub shape: [usize; 4],
    /// Pixels `[N, C, H, W]` row-major, values in `[0, 1]`; length N·C·H·W.
    pub images: Vec<f32>,
    /// Class label of each image (length N, each < `class_names.len()`); `None` for unlabelled data.
    pub labels: Option<Vec<u32>>,
    /// Class names, indexed by label; empty for unlabelled data.
    pub class_names: Vec<String>,
    /// dSprites' ground-truth factor indices per image (length N, order [`crate::data::dsprites::FACTOR_NAMES`]); `None` elsewhere.
    pub factors: Option<Vec<[u16; 5]>>,
    /// Files a loader skipped (broken images); each was also reported on stderr.
    pub skipped: Vec<SkippedFile>,
}

impl Dataset {
    /// An unlabelled dataset of `images` shaped [N, C, H, W]; errors if the length disagrees.
    pub fn new(name: impl Into<String>, shape: [usize; 4], images: Vec<f32>) -> Result<Dataset> {
        let name = name.into();
        if images.len() != shape.iter().product::<usize>() {
            return invalid("Dataset::new", format!("{name}: {} values cannot fill shape {shape:?}", images.len()));
        }
        Ok(Dataset { name, shape, images, labels: None, class_names: Vec::new(), factors: None, skipped: Vec::new() })
    }

    /// Attaches class labels (each < `class_names.len()`).
    pub fn with_labels(mut self, labels: Vec<u32>, class_names: Vec<String>) -> Result<Dataset> {
        if labels.len() != self.len() {
            return invalid(
                "Dataset::with_labels",
                format!("{}: {} labels for {} images", self.name, labels.len(), self.len()),
            );
        }
        if let Some(&bad) = labels.iter().find(|&&l| l as usize >= class_names.len()) {
            return invalid(
                "Dataset::with_labels",
                format!("{}: label {bad} but only {} class names", self.name, class_names.len()),
            );
        }
        self.labels = Some(labels);
        self.class_names = class_names;
        Ok(self)
    }

    /// Number of images, N.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// Whether the dataset holds no images.
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    /// Number of channels, C (1 grey, 3 RGB).
    pub fn channels(&self) -> usize {
        self.shape[1]
    }

    /// Image height in pixels, H.
    pub fn height(&self) -> usize {
        self.shape[2]
    }

    /// Image width in pixels, W.
    pub fn width(&self) -> usize {
        self.shape[3]
    }

    /// C·H·W: the number of values in one image.
    pub fn image_len(&self) -> usize {
        self.shape[1] * self.shape[2] * self.shape[3]
    }

    /// Image `i` as a [C, H, W] slice.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// A new dataset holding the images at `indices`, in that order (with their labels and
    /// factors). Indices must be < len.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let n = self.image_len();
        let mut images = vec![0.0f32; indices.len() * n];
        images.par_chunks_mut(n.max(1)).zip(indices.par_iter()).for_each(|(dst, &i)| {
            dst.copy_from_slice(self.image(i));
        });
        Dataset {
            name: self.name.clone(),
            shape: [indices.len(), self.shape[1], self.shape[2], self.shape[3]],
            images,
            labels: self.labels.as_ref().map(|l| indices.iter().map(|&i| l[i]).collect()),
            class_names: self.class_names.clone(),
            factors: self.factors.as_ref().map(|f| indices.iter().map(|&i| f[i]).collect()),
            skipped: Vec::new(),
        }
    }

    /// Appends datasets of the same [C, H, W]. Labels survive only if every part has them
    /// with the same class names; factors only if every part has them.
    pub fn concat(name: impl Into<String>, parts: Vec<Dataset>) -> Result<Dataset> {
        let name = name.into();
        let Some(first) = parts.first() else {
            return invalid("Dataset::concat", format!("{name}: no datasets to concatenate"));
        };
        let chw = [first.shape[1], first.shape[2], first.shape[3]];
        if let Some(p) = parts.iter().find(|p| p.shape[1..] != chw) {
            return invalid(
                "Dataset::concat",
                format!("{name}: part {} has shape {:?}, expected [_, {chw:?}]", p.name, p.shape),
            );
        }
        let keep_labels = parts.iter().all(|p| p.labels.is_some() && p.class_names == first.class_names);
        let keep_factors = parts.iter().all(|p| p.factors.is_some());
        let class_names = if keep_labels { first.class_names.clone() } else { Vec::new() };
        let n: usize = parts.iter().map(|p| p.len()).sum();
        let mut images = Vec::with_capacity(n * chw.iter().product::<usize>());
        let (mut labels, mut factors, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        for p in parts {
            images.extend_from_slice(&p.images);
            labels.extend(p.labels.unwrap_or_default());
            factors.extend(p.factors.unwrap_or_default());
            skipped.extend(p.skipped);
        }
        let mut out = Dataset::new(name, [n, chw[0], chw[1], chw[2]], images)?;
        out.labels = keep_labels.then_some(labels);
        out.factors = keep_factors.then_some(factors);
        out.skipped = skipped;
        out.class_names = class_names;
        Ok(out)
    }

    /// Per-channel mean and (population) standard deviation over every pixel of every image,
    /// accumulated in f64. A constant channel gets std 1e-6 rather than 0, so dividing is safe.
    pub fn per_channel_mean_std(&self) -> (Vec<f32>, Vec<f32>) {
        let (c, hw) = (self.channels(), self.height() * self.width());
        // Per image: (sum, sum of squares) for each channel, then summed over images.
        let sums = self
            .images
            .par_chunks(self.image_len().max(1))
            .map(|img| {
                let mut s = vec![(0.0f64, 0.0f64); c];
                for (ch, plane) in img.chunks(hw.max(1)).enumerate() {
                    for &v in plane {
                        s[ch].0 += v as f64;
                        s[ch].1 += v as f64 * v as f64;
                    }
                }
                s
            })
            .reduce(
                || vec![(0.0, 0.0); c],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(x, y)| {
                        x.0 += y.0;
                        x.1 += y.1;
                    });
                    a
                },
            );
        let count = (self.len() * hw).max(1) as f64;
        let mean: Vec<f32> = sums.iter().map(|s| (s.0 / count) as f32).collect();
        let std: Vec<f32> = sums
            .iter()
            .map(|s| {
                let m = s.0 / count;
                ((s.1 / count - m * m).max(0.0).sqrt() as f32).max(1e-6)
            })
            .collect();
        (mean, std)
    }

    /// Splits into train / val / test datasets in the proportions `ratios` (e.g. `[10., 1., 1.]`)
    /// after a seeded shuffle; see [`split_indices`].
    pub fn split(&self, ratios: [f64; 3], seed: u64) -> Result<Splits<Dataset>> {
        let idx = split_indices(self.len(), ratios, seed)?;
        Ok(Splits { train: self.subset(&idx.train), val: self.subset(&idx.val), test: self.subset(&idx.test) })
    }

    /// The same images resized to `h`×`w` (a triangle filter, area-averaging when shrinking).
    pub fn resized(&self, h: usize, w: usize) -> Dataset {
        if (h, w) == (self.height(), self.width()) {
            return self.clone();
        }
        let (c, ih, iw) = (self.channels(), self.height(), self.width());
        let out_len = c * h * w;
        let mut images = vec![0.0f32; self.len() * out_len];
        images
            .par_chunks_mut(out_len.max(1))
            .zip(self.images.par_chunks(self.image_len().max(1)))
            .for_each(|(dst, src)| dst.copy_from_slice(&resize_chw(src, c, ih, iw, h, w)));
        Dataset { shape: [self.len(), c, h, w], images, ..self.clone_meta() }
    }

    fn clone_meta(&self) -> Dataset {
        Dataset {
            name: self.name.clone(),
            shape: self.shape,
            images: Vec::new(),
            labels: self.labels.clone(),
            class_names: self.class_names.clone(),
            factors: self.factors.clone(),
            skipped: self.skipped.clone(),
        }
    }

    /// The images at `indices` as one normalised batch (synchronously; [`Batches`](crate::data::Batches) calls this
    /// on its worker thread).
    pub fn batch(&self, indices: &[usize], norm: &Normalization) -> Result<Batch> {
        norm.check_channels(self.channels())?;
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return invalid(
                "Dataset::batch",
                format!("{}: index {bad} out of range for {} images", self.name, self.len()),
            );
        }
        let sub = self.subset(indices);
        let mut x = sub.images;
        norm.apply(&mut x, self.channels(), self.height() * self.width())?;
        let shape = [indices.len(), self.shape[1], self.shape[2], self.shape[3]];
        Ok(Batch {
            images: Tensor::from_vec(x, &shape)?,
            labels: sub.labels,
            factors: sub.factors,
            indices: indices.to_vec(),
        })
    }
}

/// Three parts of something: the train / validation / test split.
#[derive(Clone, Debug, PartialEq)]
pub struct Splits<T> {
    /// The training part.
    pub train: T,
    /// The validation part.
    pub val: T,
    /// The test part.
    pub test: T,
}

/// A seeded shuffle of 0..n cut into three disjoint parts in the proportions `ratios`
/// (10:1:1 gives 10/12, 1/12, 1/12). The val and test sizes are rounded; train takes the rest.
/// Each part is sorted, so the split does not depend on how the shuffle ordered it.
pub fn split_indices(n: usize, ratios: [f64; 3], seed: u64) -> Result<Splits<Vec<usize>>> {
    let total: f64 = ratios.iter().sum();
    if ratios.iter().any(|r| !r.is_finite() || *r < 0.0) || total <= 0.0 {
        return invalid("split", format!("ratios {ratios:?} must be non-negative with a positive sum"));
    }
    let n_val = ((n as f64 * ratios[1] / total).round() as usize).min(n);
    let n_test = ((n as f64 * ratios[2] / total).round() as usize).min(n - n_val);
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed).shuffle(&mut order);
    let mut val = order[..n_val].to_vec();
    let mut test = order[n_val..n_val + n_test].to_vec();
    let mut train = order[n_val + n_test..].to_vec();
    for part in [&mut train, &mut val, &mut test] {
        part.sort_unstable();
    }
    Ok(Splits { train, val, test })
}

/// Resizes one [C, H, W] image to [C, oh, ow] with the `image` crate's triangle filter
/// (bilinear when enlarging; when shrinking the kernel widens by the scale factor, so every
/// source pixel contributes: an area-like average without aliasing).
pub fn resize_chw(src: &[f32], c: usize, h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    if (oh, ow) == (h, w) {
        return src.to_vec();
    }
    let mut out = Vec::with_capacity(c * oh * ow);
    for plane in src.chunks(h * w).take(c) {
        let buf: ImageBuffer<Luma<f32>, Vec<f32>> = ImageBuffer::from_raw(w as u32, h as u32, plane.to_vec())
            .unwrap_or_else(|| unreachable!("a plane holds exactly h·w values"));
        let resized = image::imageops::resize(&buf, ow as u32, oh as u32, FilterType::Triangle);
        out.extend_from_slice(resized.as_raw());
    }
    out
}

/// n images [n, 2, 2, 3] for tests: image i has value (i + k / 12) at flat position k, label i % 3.
#[cfg(test)]
pub(crate) fn toy(n: usize) -> Dataset {
    let images = (0..n * 12).map(|j| (j / 12) as f32 + (j % 12) as f32 / 12.0).collect();
    let names = vec!["a".into(), "b".into(), "c".into()];
    Dataset::new("toy", [n, 2, 2, 3], images)
        .unwrap()
        .with_labels((0..n as u32).map(|i| i % 3).collect(), names)
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_10_1_1_has_the_right_sizes_and_disjoint_parts() {
        let s = split_indices(1200, [10.0, 1.0, 1.0], 3).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (1000, 100, 100));
        let mut all: Vec<usize> = s.train.iter().chain(&s.val).chain(&s.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1200).collect::<Vec<_>>());
        assert_eq!(split_indices(1200, [10.0, 1.0, 1.0], 3).unwrap(), s);
        assert_ne!(split_indices(1200, [10.0, 1.0, 1.0], 4).unwrap().val, s.val);
        // Odd sizes round val and test; train takes the rest.
        let s = split_indices(13, [10.0, 1.0, 1.0], 0).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (11, 1, 1));
        assert!(split_indices(5, [0.0, 0.0, 0.0], 0).is_err());

        let ds = toy(24);
        let parts = ds.split([10.0, 1.0, 1.0], 9).unwrap();
        assert_eq!((parts.train.len(), parts.val.len(), parts.test.len()), (20, 2, 2));
        // Each part keeps its images' labels: image i starts with value i and has label i % 3.
        let p = &parts.val;
        for k in 0..p.len() {
            let i = p.image(k)[0] as u32;
            assert_eq!(p.labels.as_ref().unwrap()[k], i % 3);
        }
    }

    #[test]
    fn concat_keeps_labels_only_when_all_parts_have_them() {
        let (a, b) = (toy(2), toy(3));
        let c = Dataset::concat("ab", vec![a.clone(), b.clone()]).unwrap();
        assert_eq!(c.shape, [5, 2, 2, 3]);
        assert_eq!(c.labels, Some(vec![0, 1, 0, 1, 2]));
        assert_eq!(c.image(2), b.image(0));
        let unlabelled = Dataset::new("u", [1, 2, 2, 3], vec![0.0; 12]).unwrap();
        assert_eq!(Dataset::concat("au", vec![a, unlabelled]).unwrap().labels, None);
    }
}
