//! Datasets for the VAE: one loader per file format, a plain in-memory [`Dataset`], the
//! pixel [`Normalization`]s, a seeded train/val/test [`Dataset::split`], and a [`Batches`]
//! iterator that gathers the next mini-batch on a background thread.
//!
//! How data flows: a loader (`idx`, `cifar10`, `stl10`, `image_folder`, `dsprites`) decodes
//! its files into one `Vec<f32>` of shape [N, C, H, W] with values in [0, 1] (plus labels or
//! ground-truth factors). [`load`] picks the loader from a [`DatasetKind`] and resizes to the
//! requested size. Training then wraps the dataset in an `Arc` and draws [`Batch`]es, each a
//! `tensor::Tensor` [B, C, H, W] already normalised.

pub mod cifar10;
pub mod dsprites;
pub mod idx;
pub mod image_folder;
pub mod stl10;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use image::imageops::FilterType;
use image::{ImageBuffer, Luma};
use rayon::prelude::*;
use tensor::{Rng, Tensor, TensorError};

// ---------------------------------------------------------------- errors

/// Everything that can go wrong while loading data. Every message names the file (or
/// directory) involved and says what was expected.
#[derive(Debug)]
pub enum DataError {
    /// The operating system refused a read (missing permission, a directory, ...).
    Io {
        /// The file or directory being read.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file exists but its content is not what the format requires.
    Format {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it and what was expected.
        msg: String,
    },
    /// A dataset (or one of its files) is not where it was looked for.
    NotFound {
        /// Where it was looked for.
        path: PathBuf,
        /// What was looked for (a dataset or file description).
        what: String,
        /// What to do about it (which files to fetch, which flag to pass).
        hint: String,
    },
    /// An image file and its label file disagree on the number of items.
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// The label file.
        labels: PathBuf,
        /// Number of images in `images`.
        n_images: usize,
        /// Number of labels in `labels`.
        n_labels: usize,
    },
    /// `--dataset` named no dataset this crate knows.
    UnknownDataset {
        /// The name as given.
        name: String,
    },
    /// A bad argument (ratios that sum to zero, a zero batch size, mismatched channels, ...).
    Invalid {
        /// The function or argument that rejected it.
        what: &'static str,
        /// What is wrong and what was expected.
        msg: String,
    },
    /// Building a tensor failed (a shape bug; reported rather than panicking).
    Tensor(TensorError),
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DataError::Format { path, msg } => write!(f, "{}: {msg}", path.display()),
            DataError::NotFound { path, what, hint } => {
                write!(f, "{what} not found at {}: {hint}", path.display())
            }
            DataError::CountMismatch { images, labels, n_images, n_labels } => write!(
                f,
                "{} holds {n_images} images but {} holds {n_labels} labels; expected the same count",
                images.display(),
                labels.display()
            ),
            DataError::UnknownDataset { name } => {
                write!(f, "unknown dataset '{name}': expected one of {}", DatasetKind::NAMES.join(", "))
            }
            DataError::Invalid { what, msg } => write!(f, "{what}: {msg}"),
            DataError::Tensor(e) => write!(f, "building a batch tensor: {e}"),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(source),
            DataError::Tensor(e) => Some(e),
            _ => None,
        }
    }
}

impl From<TensorError> for DataError {
    fn from(e: TensorError) -> Self {
        DataError::Tensor(e)
    }
}

/// The result of every loader in this module.
pub type Result<T> = std::result::Result<T, DataError>;

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io { path: path.to_path_buf(), source }
}

pub(crate) fn format_err<T>(path: &Path, msg: impl Into<String>) -> Result<T> {
    Err(DataError::Format { path: path.to_path_buf(), msg: msg.into() })
}

pub(crate) fn invalid<T>(what: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(DataError::Invalid { what, msg: msg.into() })
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io_err(path, e))
}

// ---------------------------------------------------------------- the dataset

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
/// (see [`dsprites::FACTOR_NAMES`]). Loaders keep `images.len() == N·C·H·W` and the other
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
    /// dSprites' ground-truth factor indices per image (length N, order [`dsprites::FACTOR_NAMES`]); `None` elsewhere.
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

    /// The images at `indices` as one normalised batch (synchronously; [`Batches`] calls this
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

// ---------------------------------------------------------------- normalisation

/// How [0, 1] pixels are mapped before they enter the network (and back for saving pictures).
#[derive(Clone, Debug, PartialEq)]
pub enum Normalization {
    /// x (the loaders' range; what a Bernoulli / BCE decoder expects).
    ZeroOne,
    /// 2x − 1 (for a tanh decoder).
    MinusOneOne,
    /// (x − mean\[c\]) / std\[c\] per channel (Yang and Kobilaski: CIFAR-10's published mean/std).
    MeanStd {
        /// Per-channel mean, one per channel.
        mean: Vec<f32>,
        /// Per-channel standard deviation, one per channel (each > 0).
        std: Vec<f32>,
    },
}

impl Normalization {
    fn check_channels(&self, channels: usize) -> Result<()> {
        if let Normalization::MeanStd { mean, std } = self {
            if mean.len() != channels || std.len() != channels {
                return invalid(
                    "Normalization::MeanStd",
                    format!(
                        "{} means and {} stds for {channels}-channel images; expected {channels} of each",
                        mean.len(),
                        std.len()
                    ),
                );
            }
            if std.iter().any(|s| s.is_nan() || *s <= 0.0) {
                return invalid("Normalization::MeanStd", format!("std {std:?} must be positive"));
            }
        }
        Ok(())
    }

    /// Normalises `x` in place. x: [B, C, H, W] flattened, `channels` = C, `plane` = H·W.
    pub fn apply(&self, x: &mut [f32], channels: usize, plane: usize) -> Result<()> {
        self.map(x, channels, plane, |v, m, s| (v - m) / s)
    }

    /// Undoes [`Normalization::apply`] in place (no clamping).
    pub fn invert(&self, x: &mut [f32], channels: usize, plane: usize) -> Result<()> {
        self.map(x, channels, plane, |v, m, s| v * s + m)
    }

    /// `apply` on a tensor [B, C, H, W]; returns a new f32 tensor.
    pub fn apply_tensor(&self, x: &Tensor) -> Result<Tensor> {
        self.map_tensor(x, Normalization::apply)
    }

    /// `invert` on a tensor [B, C, H, W] (for saving reconstructions as pictures).
    pub fn invert_tensor(&self, x: &Tensor) -> Result<Tensor> {
        self.map_tensor(x, Normalization::invert)
    }

    fn map_tensor(&self, x: &Tensor, f: fn(&Normalization, &mut [f32], usize, usize) -> Result<()>) -> Result<Tensor> {
        let &[_, c, h, w] = x.shape() else {
            return invalid("Normalization", format!("expected a [B, C, H, W] tensor, got shape {:?}", x.shape()));
        };
        let mut v = x.to_vec_f32()?;
        f(self, &mut v, c, h * w)?;
        Ok(Tensor::from_vec(v, x.shape())?)
    }

    /// Every value of channel c becomes f(v, mean[c], std[c]); ZeroOne is the identity and
    /// MinusOneOne is mean 0.5, std 0.5.
    fn map(&self, x: &mut [f32], channels: usize, plane: usize, f: impl Fn(f32, f32, f32) -> f32 + Sync) -> Result<()> {
        self.check_channels(channels)?;
        if channels == 0 || plane == 0 || !x.len().is_multiple_of(channels * plane) {
            return invalid(
                "Normalization",
                format!("{} values are not whole images of {channels} channels × {plane} pixels", x.len()),
            );
        }
        let (mean, std) = match self {
            Normalization::ZeroOne => return Ok(()),
            Normalization::MinusOneOne => (vec![0.5; channels], vec![0.5; channels]),
            Normalization::MeanStd { mean, std } => (mean.clone(), std.clone()),
        };
        // x: [B, C, plane]; chunk k is channel k mod C.
        x.par_chunks_mut(plane).enumerate().for_each(|(k, p)| {
            let (m, s) = (mean[k % channels], std[k % channels]);
            p.iter_mut().for_each(|v| *v = f(*v, m, s));
        });
        Ok(())
    }
}

// ---------------------------------------------------------------- mini-batches

/// One mini-batch: images [B, C, H, W] (normalised), and for each image its label, its
/// ground-truth factors and its index in the dataset.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Normalised images `[B, C, H, W]`.
    pub images: Tensor,
    /// Class label of each image (length B); `None` when the dataset is unlabelled.
    pub labels: Option<Vec<u32>>,
    /// dSprites factor indices of each image (length B); `None` for other datasets.
    pub factors: Option<Vec<[u16; 5]>>,
    /// Index of each image in the dataset (length B).
    pub indices: Vec<usize>,
}

/// How [`Batches`] cuts an epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchOptions {
    /// Images per batch, B (> 0).
    pub batch_size: usize,
    /// Shuffle the order each epoch (with the caller's `Rng`); otherwise 0, 1, 2, ...
    pub shuffle: bool,
    /// Drop a last batch smaller than `batch_size`.
    pub drop_last: bool,
    /// How pixels are mapped before they are batched.
    pub normalization: Normalization,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions { batch_size: 64, shuffle: true, drop_last: false, normalization: Normalization::ZeroOne }
    }
}

/// One epoch of mini-batches. The order is drawn from the caller's `Rng` when the epoch is
/// created (so a run is reproducible from its seed, and resumable from the saved `Rng`
/// state); a worker thread then gathers batches ahead into a channel of capacity 2, so the
/// next batch is ready while the current one trains. Dropping `Batches` stops the worker.
pub struct Batches {
    rx: Option<Receiver<Result<Batch>>>,
    worker: Option<JoinHandle<()>>,
    remaining: usize,
}

impl Batches {
    /// Starts an epoch over `dataset`. Errors on a zero batch size or a normalisation whose
    /// channel count does not match the dataset.
    pub fn new(dataset: Arc<Dataset>, opts: &BatchOptions, rng: &mut Rng) -> Result<Batches> {
        if opts.batch_size == 0 {
            return invalid("Batches::new", "batch_size must be at least 1");
        }
        opts.normalization.check_channels(dataset.channels())?;
        let mut order: Vec<usize> = (0..dataset.len()).collect();
        if opts.shuffle {
            rng.shuffle(&mut order);
        }
        let mut chunks: Vec<Vec<usize>> = order.chunks(opts.batch_size).map(<[usize]>::to_vec).collect();
        if opts.drop_last && chunks.last().is_some_and(|c| c.len() < opts.batch_size) {
            chunks.pop();
        }
        let remaining = chunks.len();
        let (tx, rx) = sync_channel(2);
        let norm = opts.normalization.clone();
        let worker = std::thread::Builder::new()
            .name("batches".into())
            .spawn(move || {
                for idx in chunks {
                    // A send error means the consumer dropped `Batches`: stop early.
                    if tx.send(dataset.batch(&idx, &norm)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| io_err(Path::new("<batches worker thread>"), e))?;
        Ok(Batches { rx: Some(rx), worker: Some(worker), remaining })
    }

    /// Batches left in this epoch.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// The number of batches an epoch of `n` images yields.
    pub fn count(n: usize, batch_size: usize, drop_last: bool) -> usize {
        if drop_last {
            n / batch_size.max(1)
        } else {
            n.div_ceil(batch_size.max(1))
        }
    }
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.remaining == 0 {
            return None;
        }
        let got = self.rx.as_ref().and_then(|rx| rx.recv().ok());
        match got {
            Some(Ok(b)) => {
                self.remaining -= 1;
                Some(b)
            }
            // `Dataset::batch` only fails on invalid indices or channels, which `new` ruled
            // out; a failure here is a bug worth a loud stop.
            Some(Err(e)) => panic!("Batches: building a batch failed: {e}"),
            None => {
                // The worker ended early: it panicked. Re-raise its panic here.
                if let Some(Err(p)) = self.worker.take().map(JoinHandle::join) {
                    std::panic::resume_unwind(p);
                }
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Batches {}

impl Drop for Batches {
    fn drop(&mut self) {
        // Close the channel first so a worker blocked in `send` wakes up and returns.
        drop(self.rx.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

// ---------------------------------------------------------------- choosing a dataset

/// The datasets `--dataset` can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetKind {
    /// dSprites, generated procedurally ([`dsprites`]).
    DSprites,
    /// Fashion-MNIST, IDX files ([`idx`]).
    FashionMnist,
    /// MNIST, IDX files ([`idx`]).
    Mnist,
    /// CIFAR-10 binary batches ([`cifar10`]).
    Cifar10,
    /// STL-10 binary files ([`stl10`]).
    Stl10,
    /// A directory of PNG/JPEG files, one subfolder per class (Stanford Dogs, CelebA, ...).
    Folder,
}

impl DatasetKind {
    /// The accepted `--dataset` names, one per variant, in declaration order.
    pub const NAMES: [&'static str; 6] = ["dsprites", "fashion-mnist", "mnist", "cifar10", "stl10", "folder"];

    /// The canonical `--dataset` name of this kind (one of [`Self::NAMES`]).
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::DSprites => "dsprites",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Mnist => "mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Stl10 => "stl10",
            DatasetKind::Folder => "folder",
        }
    }
}

impl FromStr for DatasetKind {
    type Err = DataError;

    fn from_str(s: &str) -> Result<DatasetKind> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "dsprites" => Ok(DatasetKind::DSprites),
            "fashion-mnist" | "fashionmnist" => Ok(DatasetKind::FashionMnist),
            "mnist" => Ok(DatasetKind::Mnist),
            "cifar10" | "cifar-10" => Ok(DatasetKind::Cifar10),
            "stl10" | "stl-10" => Ok(DatasetKind::Stl10),
            "folder" | "image-folder" => Ok(DatasetKind::Folder),
            _ => Err(DataError::UnknownDataset { name: s.to_string() }),
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which published part of a dataset to load. dSprites and image folders have a single part
/// (`Train`); cut them with [`Dataset::split`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The published training part.
    Train,
    /// The published test part.
    Test,
    /// Train followed by test (Yang and Kobilaski re-splits CIFAR-10's 60,000 images 10:1:1).
    TrainTest,
    /// STL-10's 100,000 unlabelled images.
    Unlabeled,
    /// STL-10's train followed by unlabelled (the STL-10 paper's "train+unlabelled"); no labels.
    TrainUnlabeled,
}

impl Split {
    /// The canonical name of the split (`train`, `test`, `train+test`, `unlabeled`, `train+unlabeled`).
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
            Split::TrainTest => "train+test",
            Split::Unlabeled => "unlabeled",
            Split::TrainUnlabeled => "train+unlabeled",
        }
    }
}

impl FromStr for Split {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Split> {
        match s.to_ascii_lowercase().replace('_', "+").as_str() {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            "train+test" | "all" => Ok(Split::TrainTest),
            "unlabeled" | "unlabelled" => Ok(Split::Unlabeled),
            "train+unlabeled" | "train+unlabelled" => Ok(Split::TrainUnlabeled),
            _ => invalid(
                "split",
                format!("unknown split '{s}': expected train, test, train+test, unlabeled or train+unlabeled"),
            ),
        }
    }
}

/// The knobs of [`load`] beyond the dataset, directory and image size.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    /// Which published part to load.
    pub split: Split,
    /// Read at most this many images (dSprites: how many to generate, default
    /// [`dsprites::DEFAULT_SUBSET`]).
    pub max_images: Option<usize>,
    /// Seeds dSprites' choice of factor combinations.
    pub seed: u64,
    /// Image folders: load as one grey channel instead of RGB.
    pub grayscale: bool,
    /// Image folders: crop the centre square before resizing (CelebA).
    pub center_crop: bool,
    /// Image folders: crop to the first bounding box of the Pascal-VOC annotation found in this
    /// directory (Stanford Dogs' `Annotation/`; pass the image directory itself for `.xml`
    /// files lying beside the images).
    pub annotation_dir: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            split: Split::Train,
            max_images: None,
            seed: 0,
            grayscale: false,
            center_crop: false,
            annotation_dir: None,
        }
    }
}

/// Where a dataset is looked for when no `--data-dir` is given.
pub fn default_dir(kind: DatasetKind) -> Option<PathBuf> {
    match kind {
        DatasetKind::DSprites | DatasetKind::Folder => None,
        DatasetKind::FashionMnist => Some(PathBuf::from(idx::FASHION_MNIST_DIR)),
        DatasetKind::Mnist => Some(PathBuf::from("/usr/share/datasets/mnist")),
        DatasetKind::Cifar10 => Some(PathBuf::from("/usr/share/datasets/cifar10")),
        DatasetKind::Stl10 => Some(PathBuf::from("/usr/share/datasets/stl10")),
    }
}

/// Loads `kind` from `data_dir` (or its [`default_dir`]) as [N, C, H, W] in [0, 1].
///
/// `image_size`: the side of the square images to produce; `None` keeps the native size
/// (28 for MNIST, 32 for CIFAR-10, 64 for dSprites) except for STL-10 (64, as the STL-10 paper) and
/// image folders (64), whose images have to be resized anyway.
pub fn load(
    kind: DatasetKind,
    data_dir: Option<&Path>,
    image_size: Option<usize>,
    opts: &LoadOptions,
) -> Result<Dataset> {
    if image_size == Some(0) {
        return invalid("load", "image size must be at least 1");
    }
    let dir = match data_dir.map(Path::to_path_buf).or_else(|| default_dir(kind)) {
        Some(d) => Some(d),
        None if kind == DatasetKind::Folder => {
            return invalid("load", "--dataset folder needs --data-dir <directory of images>")
        }
        None => None,
    };
    let single_part = |k: DatasetKind| -> Result<()> {
        if opts.split != Split::Train {
            return invalid(
                "load",
                format!("{k} has a single part; load split 'train' and cut it with Dataset::split"),
            );
        }
        Ok(())
    };
    let ds = match kind {
        DatasetKind::DSprites => {
            single_part(kind)?;
            dsprites::generate(opts.max_images.unwrap_or(dsprites::DEFAULT_SUBSET), opts.seed)
        }
        DatasetKind::FashionMnist | DatasetKind::Mnist => {
            let dir = dir.unwrap_or_default();
            let which = if kind == DatasetKind::Mnist { idx::Which::Mnist } else { idx::Which::FashionMnist };
            idx::load(which, &dir, opts.split)?
        }
        DatasetKind::Cifar10 => cifar10::load(&dir.unwrap_or_default(), opts.split)?,
        DatasetKind::Stl10 => {
            let s = image_size.unwrap_or(stl10::DEFAULT_SIZE);
            stl10::load(&dir.unwrap_or_default(), opts.split, s, opts.max_images)?
        }
        DatasetKind::Folder => {
            single_part(kind)?;
            let s = image_size.unwrap_or(image_folder::DEFAULT_SIZE);
            let fo = image_folder::FolderOptions {
                height: s,
                width: s,
                grayscale: opts.grayscale,
                center_crop: opts.center_crop,
                annotation_dir: opts.annotation_dir.clone(),
                max_images: opts.max_images,
            };
            image_folder::load(&dir.unwrap_or_default(), &fo)?
        }
    };
    let ds = match opts.max_images {
        Some(m) if m < ds.len() => ds.subset(&(0..m).collect::<Vec<_>>()),
        _ => ds,
    };
    Ok(match image_size {
        // `resized` copies; skip it when the size already matches (dSprites is 1.6 GB).
        Some(s) if [s, s] != ds.shape[2..] => ds.resized(s, s),
        _ => ds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// n images [n, 2, 2, 3]: image i has value (i + k / 12) at flat position k, label i % 3.
    fn toy(n: usize) -> Dataset {
        let images = (0..n * 12).map(|j| (j / 12) as f32 + (j % 12) as f32 / 12.0).collect();
        let names = vec!["a".into(), "b".into(), "c".into()];
        Dataset::new("toy", [n, 2, 2, 3], images)
            .unwrap()
            .with_labels((0..n as u32).map(|i| i % 3).collect(), names)
            .unwrap()
    }

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
    fn batches_cover_every_index_once_per_epoch_and_repeat_per_seed() {
        let ds = Arc::new(toy(23));
        let opts = BatchOptions { batch_size: 5, ..Default::default() };
        let epoch = |rng: &mut Rng| -> Vec<Batch> { Batches::new(ds.clone(), &opts, rng).unwrap().collect() };
        let mut rng = Rng::new(11);
        let first = epoch(&mut rng);
        assert_eq!(first.len(), 5);
        assert_eq!(first.last().unwrap().indices.len(), 3);
        let mut seen: Vec<usize> = first.iter().flat_map(|b| b.indices.clone()).collect();
        assert_ne!(seen, (0..23).collect::<Vec<_>>(), "shuffled");
        seen.sort_unstable();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
        // Batch contents match the dataset at those indices.
        for b in &first {
            assert_eq!(b.images.shape(), &[b.indices.len(), 2, 2, 3]);
            let v = b.images.to_vec_f32().unwrap();
            for (k, &i) in b.indices.iter().enumerate() {
                assert_eq!(&v[k * 12..(k + 1) * 12], ds.image(i));
                assert_eq!(b.labels.as_ref().unwrap()[k], i as u32 % 3);
            }
        }
        // The next epoch is another order; the same seed repeats both.
        let second = epoch(&mut rng);
        let order = |e: &[Batch]| e.iter().flat_map(|b| b.indices.clone()).collect::<Vec<_>>();
        assert_ne!(order(&first), order(&second));
        let mut again = Rng::new(11);
        assert_eq!(order(&epoch(&mut again)), order(&first));
        assert_eq!(order(&epoch(&mut again)), order(&second));

        // drop_last drops the 3-image tail; no shuffle keeps 0..n.
        let opts = BatchOptions { batch_size: 5, drop_last: true, shuffle: false, ..Default::default() };
        let b: Vec<Batch> = Batches::new(ds.clone(), &opts, &mut rng).unwrap().collect();
        assert_eq!(b.len(), Batches::count(23, 5, true));
        assert_eq!(order(&b), (0..20).collect::<Vec<_>>());
        assert!(b.iter().all(|x| x.indices.len() == 5));
        assert!(Batches::new(ds.clone(), &BatchOptions { batch_size: 0, ..opts.clone() }, &mut rng).is_err());
    }

    #[test]
    fn batches_stop_cleanly_when_dropped_early() {
        let ds = Arc::new(toy(100));
        let mut it = Batches::new(ds, &BatchOptions { batch_size: 2, ..Default::default() }, &mut Rng::new(0)).unwrap();
        assert_eq!(it.len(), 50);
        it.next().unwrap();
        assert_eq!(it.remaining(), 49);
        drop(it); // joins the worker, which is blocked on a full channel
    }

    #[test]
    fn normalizations_invert_and_mean_std_standardises() {
        let ds = toy(10);
        let (mean, std) = ds.per_channel_mean_std();
        assert_eq!(mean.len(), 2);
        // Channel 0 of image i holds i + {0..5}/12: mean over i and k is 4.5 + 2.5/12.
        assert!((mean[0] - (4.5 + 2.5 / 12.0)).abs() < 1e-5, "{mean:?}");
        let norm = Normalization::MeanStd { mean, std };
        let mut x = ds.images.clone();
        norm.apply(&mut x, 2, 6).unwrap();
        let z = Dataset { images: x.clone(), ..ds.clone() };
        let (m, s) = z.per_channel_mean_std();
        assert!(m.iter().all(|v| v.abs() < 1e-4) && s.iter().all(|v| (v - 1.0).abs() < 1e-4), "{m:?} {s:?}");
        norm.invert(&mut x, 2, 6).unwrap();
        assert!(x.iter().zip(&ds.images).all(|(a, b)| (a - b).abs() < 1e-4));

        let t = Tensor::from_vec(vec![0.0f32, 0.25, 1.0, 0.5], &[1, 1, 2, 2]).unwrap();
        let m = Normalization::MinusOneOne.apply_tensor(&t).unwrap();
        assert_eq!(m.to_vec_f32().unwrap(), vec![-1.0, -0.5, 1.0, 0.0]);
        assert_eq!(
            Normalization::MinusOneOne.invert_tensor(&m).unwrap().to_vec_f32().unwrap(),
            t.to_vec_f32().unwrap()
        );
        assert_eq!(Normalization::ZeroOne.apply_tensor(&t).unwrap().to_vec_f32().unwrap(), t.to_vec_f32().unwrap());
        let wrong = Normalization::MeanStd { mean: vec![0.5; 3], std: vec![0.2; 3] };
        assert!(matches!(wrong.apply_tensor(&t), Err(DataError::Invalid { .. })));
    }

    #[test]
    fn dataset_kind_parses_names_and_rejects_unknown_ones() {
        for name in DatasetKind::NAMES {
            assert_eq!(name.parse::<DatasetKind>().unwrap().name(), name);
        }
        let err = "imagenet".parse::<DatasetKind>().unwrap_err();
        assert!(matches!(err, DataError::UnknownDataset { .. }));
        let msg = err.to_string();
        assert!(msg.contains("imagenet") && msg.contains("fashion-mnist") && msg.contains("dsprites"), "{msg}");
        assert_eq!("train+unlabeled".parse::<Split>().unwrap(), Split::TrainUnlabeled);
    }

    #[test]
    fn load_generates_dsprites_and_resizes() {
        let opts = LoadOptions { max_images: Some(50), seed: 2, ..Default::default() };
        let ds = load(DatasetKind::DSprites, None, None, &opts).unwrap();
        assert_eq!(ds.shape, [50, 1, 64, 64]);
        assert_eq!(ds.factors.as_ref().unwrap().len(), 50);
        let small = load(DatasetKind::DSprites, None, Some(32), &opts).unwrap();
        assert_eq!(small.shape, [50, 1, 32, 32]);
        assert_eq!(small.factors, ds.factors);
        // Shrinking by 2 averages: the total ink is about a quarter.
        let (a, b): (f32, f32) = (ds.images.iter().sum(), small.images.iter().sum());
        assert!((b * 4.0 / a - 1.0).abs() < 0.05, "{a} vs {b}");
        let test = LoadOptions { split: Split::Test, ..opts };
        assert!(matches!(load(DatasetKind::DSprites, None, None, &test), Err(DataError::Invalid { .. })));
        assert!(matches!(
            load(DatasetKind::Folder, None, None, &LoadOptions::default()),
            Err(DataError::Invalid { .. })
        ));
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
