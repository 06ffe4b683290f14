//! STL-10 binary files (`train_X.bin`, `train_y.bin`, `test_X.bin`, `test_y.bin`,
//! `unlabeled_X.bin`), resized to a chosen square size (64 by default, as the STL-10 paper).
//!
//! Each image is 3 × 96 × 96 bytes, one channel plane after the other, and each plane is
//! stored column by column (the files were written from MATLAB): pixel (row r, col c) of
//! channel ch is byte ch·9216 + c·96 + r. Labels are bytes 1..10.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{format_err, io_err, read_file, resize_chw, DataError, Dataset, Result, Split};

/// Side of a stored image in pixels (`[3, 96, 96]`).
pub const SIDE: usize = 96;
/// Bytes per stored image: 3·96·96.
pub const IMAGE_BYTES: usize = 3 * SIDE * SIDE;
/// Default side the images are resized to.
pub const DEFAULT_SIZE: usize = 64;
/// Class names in label order (file labels 1..10 map to 0..9).
pub const CLASSES: [&str; 10] = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"];

/// Images decoded and resized per read: bounds the raw bytes held at once (~28 MB).
const CHUNK: usize = 1024;

/// One raw image (column-major planes) → [3, 96, 96] row-major floats in [0, 1].
pub fn decode_image(raw: &[u8]) -> Vec<f32> {
    let plane = SIDE * SIDE;
    let mut out = vec![0.0f32; IMAGE_BYTES];
    for ch in 0..3 {
        for r in 0..SIDE {
            for c in 0..SIDE {
                out[ch * plane + r * SIDE + c] = raw[ch * plane + c * SIDE + r] as f32 / 255.0;
            }
        }
    }
    out
}

/// The number of images in an `_X.bin` file, from its size.
fn count_images(path: &Path) -> Result<usize> {
    let len = std::fs::metadata(path).map_err(|e| io_err(path, e))?.len() as usize;
    if len == 0 || !len.is_multiple_of(IMAGE_BYTES) {
        return format_err(
            path,
            format!("{len} bytes is not a whole number of {IMAGE_BYTES}-byte STL-10 images (3×96×96)"),
        );
    }
    Ok(len / IMAGE_BYTES)
}

/// The first `n` images of an `_X.bin` file, decoded and resized to size×size:
/// [n, 3, size, size] floats. Reads `CHUNK` images at a time so the 2.7 GB unlabeled file
/// never sits in memory as bytes.
pub fn read_images(path: &Path, n: usize, size: usize) -> Result<Vec<f32>> {
    let mut file = File::open(path).map_err(|e| io_err(path, e))?;
    let out_len = 3 * size * size;
    let mut out = Vec::with_capacity(n * out_len);
    let mut raw = Vec::new();
    let mut done = 0;
    while done < n {
        let k = CHUNK.min(n - done);
        raw.resize(k * IMAGE_BYTES, 0);
        file.read_exact(&mut raw).map_err(|e| io_err(path, e))?;
        let chunk: Vec<Vec<f32>> =
            raw.par_chunks(IMAGE_BYTES).map(|img| resize_chw(&decode_image(img), 3, SIDE, SIDE, size, size)).collect();
        chunk.iter().for_each(|img| out.extend_from_slice(img));
        done += k;
    }
    Ok(out)
}

/// Labels 1..10 of a `_y.bin` file as 0..9.
pub fn read_labels(path: &Path) -> Result<Vec<u32>> {
    let bytes = read_file(path)?;
    if let Some(i) = bytes.iter().position(|&b| !(1..=10).contains(&b)) {
        return format_err(path, format!("byte {i} is label {}; expected labels 1..10", bytes[i]));
    }
    Ok(bytes.iter().map(|&b| b as u32 - 1).collect())
}

/// `dir`, or `dir/stl10_binary` when the files are in the archive's folder.
fn binary_dir(dir: &Path) -> Result<PathBuf> {
    for d in [dir.to_path_buf(), dir.join("stl10_binary")] {
        if ["train_X.bin", "test_X.bin", "unlabeled_X.bin"].iter().any(|f| d.join(f).is_file()) {
            return Ok(d);
        }
    }
    Err(DataError::NotFound {
        path: dir.to_path_buf(),
        what: "STL-10 binary files (train_X.bin, test_X.bin, unlabeled_X.bin)".into(),
        hint: "pass --data-dir <dir> holding the files of stl10_binary.tar.gz (or its stl10_binary/ folder)".into(),
    })
}

/// One part (`train`, `test` or `unlabeled`): at most `max` images, labelled when a `_y.bin`
/// exists for it.
fn load_part(dir: &Path, part: &str, size: usize, max: usize) -> Result<Dataset> {
    let xp = dir.join(format!("{part}_X.bin"));
    if !xp.is_file() {
        return Err(DataError::NotFound {
            path: xp,
            what: format!("STL-10 {part} images"),
            hint: "pass --data-dir <dir> holding the STL-10 binary files".into(),
        });
    }
    let total = count_images(&xp)?;
    let n = total.min(max);
    let images = read_images(&xp, n, size)?;
    let ds = Dataset::new(format!("stl10-{part}"), [n, 3, size, size], images)?;
    if part == "unlabeled" {
        return Ok(ds);
    }
    let yp = dir.join(format!("{part}_y.bin"));
    let labels = read_labels(&yp)?;
    if labels.len() != total {
        return Err(DataError::CountMismatch { images: xp, labels: yp, n_images: total, n_labels: labels.len() });
    }
    ds.with_labels(labels[..n].to_vec(), super::class_names_or(&dir.join("class_names.txt"), &CLASSES))
}

/// STL-10 from `dir` (or `dir/stl10_binary/`), resized to `size`×`size`, reading at most
/// `max_images` images in all (in the order train, test, unlabeled of the chosen split).
pub fn load(dir: &Path, split: Split, size: usize, max_images: Option<usize>) -> Result<Dataset> {
    let dir = binary_dir(dir)?;
    let parts: &[&str] = match split {
        Split::Train => &["train"],
        Split::Test => &["test"],
        Split::TrainTest => &["train", "test"],
        Split::Unlabeled => &["unlabeled"],
        Split::TrainUnlabeled => &["train", "unlabeled"],
    };
    let mut left = max_images.unwrap_or(usize::MAX);
    let mut loaded = Vec::new();
    for part in parts {
        if left == 0 {
            break;
        }
        let ds = load_part(&dir, part, size, left)?;
        left -= ds.len();
        loaded.push(ds);
    }
    Dataset::concat(format!("stl10-{}", split.name()), loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::tests::temp_dir;

    /// Byte at file offset o of image i: a pattern where each (channel, col, row) differs.
    fn byte(i: usize, ch: usize, c: usize, r: usize) -> u8 {
        ((i * 31 + ch * 101 + c * 7 + r * 3) % 251) as u8
    }

    fn write_x(path: &Path, n: usize) {
        let mut v = vec![0u8; n * IMAGE_BYTES];
        for i in 0..n {
            for ch in 0..3 {
                for c in 0..SIDE {
                    for r in 0..SIDE {
                        v[i * IMAGE_BYTES + ch * 9216 + c * 96 + r] = byte(i, ch, c, r);
                    }
                }
            }
        }
        std::fs::write(path, v).unwrap();
    }

    #[test]
    fn stl10_reads_planes_column_major() {
        let scratch = temp_dir("stl10");
        let dir = scratch.path();
        write_x(&dir.join("train_X.bin"), 3);
        std::fs::write(dir.join("train_y.bin"), [1u8, 10, 4]).unwrap();
        // size 96: the resize is the identity, so values are exactly the decoded bytes.
        let ds = load(dir, Split::Train, 96, None).unwrap();
        assert_eq!(ds.shape, [3, 3, 96, 96]);
        assert_eq!(ds.labels, Some(vec![0, 9, 3]));
        for (i, ch, r, c) in [(0, 0, 0, 1), (1, 2, 5, 70), (2, 1, 95, 0), (2, 2, 40, 41)] {
            let got = ds.image(i)[ch * 9216 + r * 96 + c];
            assert_eq!(got, byte(i, ch, c, r) as f32 / 255.0, "image {i} channel {ch} row {r} col {c}");
        }
        // The raw decoder alone, on a single image.
        let raw = std::fs::read(dir.join("train_X.bin")).unwrap();
        let img = decode_image(&raw[..IMAGE_BYTES]);
        assert_eq!(img[96 + 2], byte(0, 0, 2, 1) as f32 / 255.0); // row 1, column 2
    }

    #[test]
    fn stl10_resizes_and_limits_the_image_count() {
        let scratch = temp_dir("stl10-resize");
        let dir = scratch.path();
        let sub = dir.join("stl10_binary");
        std::fs::create_dir_all(&sub).unwrap();
        write_x(&sub.join("train_X.bin"), 2);
        std::fs::write(sub.join("train_y.bin"), [2u8, 3]).unwrap();
        write_x(&sub.join("unlabeled_X.bin"), 4);
        let ds = load(dir, Split::TrainUnlabeled, 64, Some(5)).unwrap();
        assert_eq!(ds.shape, [5, 3, 64, 64]);
        assert!(ds.labels.is_none());
        assert!(ds.images.iter().all(|v| (0.0..=1.0).contains(v)));
        // A constant image stays constant through the filter.
        let flat = vec![0.25f32; 3 * 96 * 96];
        assert!(resize_chw(&flat, 3, 96, 96, 64, 64).iter().all(|v| (v - 0.25).abs() < 1e-6));
        // Wrong label count.
        std::fs::write(sub.join("train_y.bin"), [2u8]).unwrap();
        let err = load(dir, Split::Train, 64, None).unwrap_err();
        assert!(matches!(err, DataError::CountMismatch { n_images: 2, n_labels: 1, .. }), "{err:?}");
    }
}
