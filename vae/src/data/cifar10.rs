//! CIFAR-10 binary batches (`data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`).
//!
//! Each record is 3073 bytes: 1 label byte (0..9), then 1024 red, 1024 green and 1024 blue
//! bytes, each plane 32×32 row-major — already the [C, H, W] order of our datasets.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{format_err, read_file, DataError, Dataset, Result, Split};

/// Image side in pixels (images are `[3, 32, 32]`).
pub const SIDE: usize = 32;
/// Bytes per record: 1 label byte + 3·32·32 pixel bytes = 3073.
pub const RECORD_BYTES: usize = 1 + 3 * SIDE * SIDE;
/// Class names in label order (label `k` names class `k`).
pub const CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// The published per-channel mean and std of the CIFAR-10 training images (on [0, 1] pixels),
/// as Yang and Kobilaski normalises.
pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// The published per-channel std of the CIFAR-10 training images, matching [`MEAN`].
pub const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// The five training batch files, in order (10,000 records each).
pub const TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
/// The test batch file (10,000 records).
pub const TEST_FILE: &str = "test_batch.bin";

/// Decodes the records of one batch file: pixels [n, 3, 32, 32] / 255 and labels.
pub fn parse_batch(path: &Path, bytes: &[u8]) -> Result<(Vec<f32>, Vec<u32>)> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD_BYTES) {
        return format_err(
            path,
            format!(
                "{} bytes is not a whole number of {RECORD_BYTES}-byte CIFAR-10 records (1 label + 3072 pixels)",
                bytes.len()
            ),
        );
    }
    let n = bytes.len() / RECORD_BYTES;
    let labels: Vec<u32> = bytes.chunks(RECORD_BYTES).map(|r| r[0] as u32).collect();
    if let Some(i) = labels.iter().position(|&l| l >= 10) {
        return format_err(path, format!("record {i} has label {}; expected 0..9", labels[i]));
    }
    let mut pixels = vec![0.0f32; n * (RECORD_BYTES - 1)];
    pixels
        .par_chunks_mut(RECORD_BYTES - 1)
        .zip(bytes.par_chunks(RECORD_BYTES))
        .for_each(|(dst, rec)| dst.iter_mut().zip(&rec[1..]).for_each(|(d, &b)| *d = b as f32 / 255.0));
    Ok((pixels, labels))
}

/// `dir`, or `dir/cifar-10-batches-bin` when the files are in the archive's folder.
fn batches_dir(dir: &Path) -> Result<PathBuf> {
    for d in [dir.to_path_buf(), dir.join("cifar-10-batches-bin")] {
        if d.join(TEST_FILE).is_file() || d.join(TRAIN_FILES[0]).is_file() {
            return Ok(d);
        }
    }
    Err(DataError::NotFound {
        path: dir.to_path_buf(),
        what: "CIFAR-10 binary batches (data_batch_1.bin … test_batch.bin)".into(),
        hint: "pass --data-dir <dir> holding the files of cifar-10-binary.tar.gz (or its cifar-10-batches-bin/ folder)"
            .into(),
    })
}

/// CIFAR-10 from `dir` (or `dir/cifar-10-batches-bin/`): train = the five data batches,
/// test = the test batch, train+test = all 60,000 images.
pub fn load(dir: &Path, split: Split) -> Result<Dataset> {
    let dir = batches_dir(dir)?;
    let files: Vec<&str> = match split {
        Split::Train => TRAIN_FILES.to_vec(),
        Split::Test => vec![TEST_FILE],
        Split::TrainTest => TRAIN_FILES.iter().copied().chain([TEST_FILE]).collect(),
        Split::Unlabeled | Split::TrainUnlabeled => {
            return super::invalid("load", "CIFAR-10 has no unlabeled split; use train, test or train+test")
        }
    };
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for f in files {
        let path = dir.join(f);
        if !path.is_file() {
            return Err(DataError::NotFound {
                path: path.clone(),
                what: format!("CIFAR-10 batch {f}"),
                hint: "the binary version has data_batch_1.bin … data_batch_5.bin and test_batch.bin".into(),
            });
        }
        let (p, l) = parse_batch(&path, &read_file(&path)?)?;
        pixels.extend(p);
        labels.extend(l);
    }
    let n = labels.len();
    Dataset::new(format!("cifar10-{}", split.name()), [n, 3, SIDE, SIDE], pixels)?
        .with_labels(labels, super::class_names_or(&dir.join("batches.meta.txt"), &CLASSES))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::tests::temp_dir;

    /// Two records: record r has label r + 3 and byte value at (c, y, x) = (c·7 + y·3 + x + r) % 256.
    fn records() -> Vec<u8> {
        let mut v = Vec::new();
        for r in 0..2usize {
            v.push(r as u8 + 3);
            for c in 0..3 {
                for y in 0..SIDE {
                    for x in 0..SIDE {
                        v.push(((c * 7 + y * 3 + x + r) % 256) as u8);
                    }
                }
            }
        }
        v
    }

    #[test]
    fn cifar_record_pixel_lands_at_its_channel_row_and_column() {
        let scratch = temp_dir("cifar");
        let dir = scratch.path();
        let sub = dir.join("cifar-10-batches-bin");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(TEST_FILE), records()).unwrap();
        std::fs::write(sub.join("batches.meta.txt"), "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n").unwrap();
        let ds = load(dir, Split::Test).unwrap();
        assert_eq!(ds.shape, [2, 3, 32, 32]);
        assert_eq!(ds.labels, Some(vec![3, 4]));
        assert_eq!(ds.class_names[3], "d");
        // Record 1, blue (c = 2), row 5, column 9: byte 1 + 2·1024 + 5·32 + 9 of the record.
        let (c, y, x) = (2, 5, 9);
        let got = ds.image(1)[c * 1024 + y * 32 + x];
        assert_eq!(got, ((c * 7 + y * 3 + x + 1) % 256) as f32 / 255.0);
        let raw = &records()[RECORD_BYTES..];
        assert_eq!(got, raw[1 + c * 1024 + y * 32 + x] as f32 / 255.0);
    }

    #[test]
    fn cifar_partial_record_is_a_format_error() {
        let scratch = temp_dir("cifar-bad");
        let dir = scratch.path();
        let path = dir.join(TEST_FILE);
        std::fs::write(&path, &records()[..RECORD_BYTES + 5]).unwrap();
        let err = load(dir, Split::Test).unwrap_err();
        assert!(matches!(err, DataError::Format { .. }), "{err:?}");
        assert!(err.to_string().contains("test_batch.bin"), "{err}");
        // The train split is missing entirely.
        let err = load(dir, Split::Train).unwrap_err();
        assert!(matches!(err, DataError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("data_batch_1.bin"), "{err}");
    }
}
