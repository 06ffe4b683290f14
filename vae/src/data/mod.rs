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

mod batches;
mod dataset;
mod error;
mod normalization;

pub use batches::{Batch, BatchOptions, Batches};
pub use dataset::{resize_chw, split_indices, Dataset, SkippedFile, Splits};
pub(crate) use error::{format_err, invalid, io_err, read_file};
pub use error::{DataError, Result};
pub use normalization::Normalization;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

// ---------------------------------------------------------------- choosing a dataset

/// The datasets `--dataset` can name; each variant's name (and the spellings also accepted) is
/// written once, here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DatasetKind {
    /// dSprites, generated procedurally ([`dsprites`]).
    #[value(name = "dsprites")]
    DSprites,
    /// Fashion-MNIST, IDX files ([`idx`]).
    #[value(name = "fashion-mnist", alias = "fashionmnist")]
    FashionMnist,
    /// MNIST, IDX files ([`idx`]).
    #[value(name = "mnist")]
    Mnist,
    /// CIFAR-10 binary batches ([`cifar10`]).
    #[value(name = "cifar10", alias = "cifar-10")]
    Cifar10,
    /// STL-10 binary files ([`stl10`]).
    #[value(name = "stl10", alias = "stl-10")]
    Stl10,
    /// A directory of PNG/JPEG files, one subfolder per class (Stanford Dogs, CelebA, ...).
    #[value(name = "folder", alias = "image-folder")]
    Folder,
}

impl DatasetKind {
    /// The `--dataset` name of this kind.
    pub fn name(self) -> String {
        crate::config::flag_name(&self)
    }

    /// Every kind's `--dataset` name, in declaration order.
    pub fn names() -> Vec<String> {
        <DatasetKind as clap::ValueEnum>::value_variants().iter().map(|k| k.name()).collect()
    }
}

/// Parses a `--dataset` name or one of its other spellings, in any case, `_` for `-`.
impl FromStr for DatasetKind {
    type Err = DataError;

    fn from_str(s: &str) -> Result<DatasetKind> {
        <DatasetKind as clap::ValueEnum>::from_str(&s.replace('_', "-"), true)
            .map_err(|_| DataError::UnknownDataset { name: s.to_string() })
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
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
    /// Leave out the first this many images; `max_images` counts from there.
    pub skip_images: usize,
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
            skip_images: 0,
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

/// Class names from a text file of one name a line (CIFAR-10's `batches.meta.txt`, STL-10's
/// `class_names.txt`) when it is there and names them all, else the `standard` ones.
fn class_names_or(file: &Path, standard: &[&str]) -> Vec<String> {
    let names: Vec<String> = std::fs::read_to_string(file)
        .map(|s| s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    if names.len() >= standard.len() {
        names
    } else {
        standard.iter().map(|s| s.to_string()).collect()
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
    // The loaders that stop reading early read the skipped images too.
    let read_at_most = opts.max_images.map(|m| m + opts.skip_images);
    let ds = match kind {
        DatasetKind::DSprites => {
            single_part(kind)?;
            let count = opts.max_images.unwrap_or(dsprites::DEFAULT_SUBSET) + opts.skip_images;
            dsprites::generate(count, opts.seed)
        }
        DatasetKind::FashionMnist | DatasetKind::Mnist => {
            let dir = dir.unwrap_or_default();
            let which = if kind == DatasetKind::Mnist { idx::Which::Mnist } else { idx::Which::FashionMnist };
            idx::load(which, &dir, opts.split)?
        }
        DatasetKind::Cifar10 => cifar10::load(&dir.unwrap_or_default(), opts.split)?,
        DatasetKind::Stl10 => {
            let s = image_size.unwrap_or(stl10::DEFAULT_SIZE);
            stl10::load(&dir.unwrap_or_default(), opts.split, s, read_at_most)?
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
                max_images: read_at_most,
            };
            image_folder::load(&dir.unwrap_or_default(), &fo)?
        }
    };
    if opts.skip_images >= ds.len() && opts.skip_images > 0 {
        return invalid(
            "load",
            format!("--skip-images {} leaves nothing of the {} images of {}", opts.skip_images, ds.len(), ds.name),
        );
    }
    let end = read_at_most.map_or(ds.len(), |n| n.min(ds.len()));
    let ds = if opts.skip_images == 0 && end == ds.len() {
        ds
    } else {
        ds.subset(&(opts.skip_images..end).collect::<Vec<_>>())
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

    #[test]
    fn dataset_kind_parses_names_and_rejects_unknown_ones() {
        for name in DatasetKind::names() {
            assert_eq!(name.parse::<DatasetKind>().unwrap().name(), name);
        }
        assert_eq!("Fashion_MNIST".parse::<DatasetKind>().unwrap(), DatasetKind::FashionMnist);
        assert_eq!("cifar-10".parse::<DatasetKind>().unwrap(), DatasetKind::Cifar10);
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
    fn skipped_images_are_the_first_ones_and_max_images_counts_after_them() {
        let all = LoadOptions { max_images: Some(30), seed: 4, ..Default::default() };
        let all = load(DatasetKind::DSprites, None, None, &all).unwrap();
        let later = LoadOptions { max_images: Some(20), skip_images: 10, seed: 4, ..Default::default() };
        let later = load(DatasetKind::DSprites, None, None, &later).unwrap();
        assert_eq!(later.shape[0], 20);
        assert_eq!(later.images, all.images[10 * 64 * 64..]);
        assert_eq!(later.factors.as_deref(), all.factors.as_ref().map(|f| &f[10..]));
    }

    #[test]
    fn skipping_every_image_is_refused_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.png", "b.png"] {
            image::GrayImage::new(4, 4).save(dir.path().join(name)).unwrap();
        }
        let opts = LoadOptions { skip_images: 2, grayscale: true, ..Default::default() };
        let err = load(DatasetKind::Folder, Some(dir.path()), Some(4), &opts).unwrap_err().to_string();
        assert!(err.contains("--skip-images 2 leaves nothing of the 2 images"), "{err}");
        let opts = LoadOptions { skip_images: 1, ..opts };
        assert_eq!(load(DatasetKind::Folder, Some(dir.path()), Some(4), &opts).unwrap().len(), 1);
    }
}
