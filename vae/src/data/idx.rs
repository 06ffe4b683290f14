//! IDX files (MNIST, Fashion-MNIST), raw or gzipped.
//!
//! Layout (big-endian): a magic number `00 00 08 ND` (08 = unsigned bytes, ND = number of
//! dimensions: 3 for images, 1 for labels), ND u32 sizes, then the bytes row-major.
//! Images: [N, rows, cols] → a dataset [N, 1, rows, cols] with values / 255.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::{format_err, read_file, DataError, Dataset, Result, Split};

/// Magic number of an IDX image file (unsigned bytes, 3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX label file (unsigned bytes, 1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Where `apt-get install dataset-fashion-mnist` puts the four files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist/";

/// Fashion-MNIST class names in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// The two IDX datasets, which share file names and layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// MNIST handwritten digits (classes "0" … "9").
    Mnist,
    /// Fashion-MNIST clothing images (classes [`FASHION_MNIST_CLASSES`]).
    FashionMnist,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Mnist => "MNIST",
            Which::FashionMnist => "Fashion-MNIST",
        }
    }

    fn class_names(self) -> Vec<String> {
        match self {
            Which::Mnist => (0..10).map(|d| d.to_string()).collect(),
            Which::FashionMnist => FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Which::FashionMnist => "run `apt-get install dataset-fashion-mnist` or pass --data-dir <dir>",
            Which::Mnist => "pass --data-dir <dir> holding train-images-idx3-ubyte[.gz] and the other three files",
        }
    }
}

/// The most bytes one byte of a deflate stream can expand to (the format's limit is about
/// 1032:1): a gzipped IDX header declaring more than this times the file's size is lying.
const GZIP_MAX_RATIO: usize = 1032;

/// The file contents, gunzipped when they start with the gzip magic 1f 8b. A gzip stream is
/// read only as far as the IDX header at its start declares (`magic` gives how many
/// dimensions it has), and one byte more to notice a longer body: neither a header that claims
/// more than the stream can hold nor a stream that inflates far beyond its header makes this
/// allocate more than the file can honestly give.
pub fn read_maybe_gz(path: &Path, magic: u32) -> Result<Vec<u8>> {
    let raw = read_file(path)?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let corrupt = |e: std::io::Error| format_err(path, format!("the gzip stream is corrupt or truncated ({e})"));
    let mut stream = MultiGzDecoder::new(&raw[..]);
    let header_len = 4 + 4 * (magic & 0xff) as usize;
    let mut out = Vec::with_capacity(header_len);
    if let Err(e) = (&mut stream).take(header_len as u64).read_to_end(&mut out) {
        return corrupt(e);
    }
    if out.len() < header_len || out[..4] != magic.to_be_bytes() {
        // Too short or not this kind of file: `parse` names what is wrong.
        return Ok(out);
    }
    let dims: Vec<u64> = out[4..].chunks(4).map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as u64).collect();
    let declared = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
    let limit = (GZIP_MAX_RATIO * raw.len()) as u64;
    let Some(declared) = declared.filter(|&n| n <= limit) else {
        return format_err(
            path,
            format!(
                "the header declares {dims:?} bytes of data, more than a {}-byte gzip stream can hold (at most {limit})",
                raw.len()
            ),
        );
    };
    if let Err(e) = (&mut stream).take(declared + 1).read_to_end(&mut out) {
        return corrupt(e);
    }
    if out.len() as u64 > header_len as u64 + declared {
        return format_err(
            path,
            format!("more data follows the header than its dimensions {dims:?} declare ({declared} bytes)"),
        );
    }
    Ok(out)
}

/// Parses the header: checks the magic and that the body is exactly the declared size.
/// Returns the dimensions and the body.
fn parse<'a>(path: &Path, bytes: &'a [u8], magic: u32, what: &str) -> Result<(Vec<usize>, &'a [u8])> {
    if bytes.len() < 4 {
        return format_err(path, format!("{} bytes is too short for an IDX header", bytes.len()));
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let got = be(0);
    if got != magic {
        return format_err(
            path,
            format!("bad magic number 0x{got:08x}; expected 0x{magic:08x} for an IDX {what} file"),
        );
    }
    let ndim = (magic & 0xff) as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return format_err(
            path,
            format!("truncated header: {} bytes, expected {header} for {ndim} dimensions", bytes.len()),
        );
    }
    let dims: Vec<usize> = (0..ndim).map(|d| be(4 + 4 * d) as usize).collect();
    if dims[1..].contains(&0) {
        return format_err(path, format!("dimensions {dims:?} contain a zero"));
    }
    let body = &bytes[header..];
    // Untrusted sizes: a product that wraps around (e.g. [12, 2³¹, 2³¹] → 0) would pass the
    // size check below and fail much later, far from the file.
    let Some(want) = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
        return format_err(path, format!("dimensions {dims:?} multiply to more bytes than this machine can address"));
    };
    if body.len() < want {
        return format_err(
            path,
            format!("truncated: the header declares {dims:?} = {want} bytes of data but only {} follow", body.len()),
        );
    }
    if body.len() > want {
        return format_err(path, format!("{} bytes follow the header but {dims:?} declares {want}", body.len()));
    }
    Ok((dims, body))
}

/// An IDX image file as [N, 1, rows, cols] floats in [0, 1] (values / 255).
pub fn read_images(path: &Path) -> Result<(Vec<f32>, [usize; 4])> {
    let bytes = read_maybe_gz(path, IMAGES_MAGIC)?;
    let (dims, body) = parse(path, &bytes, IMAGES_MAGIC, "images")?;
    let data = body.iter().map(|&b| b as f32 / 255.0).collect();
    Ok((data, [dims[0], 1, dims[1], dims[2]]))
}

/// An IDX label file.
pub fn read_labels(path: &Path) -> Result<Vec<u32>> {
    let bytes = read_maybe_gz(path, LABELS_MAGIC)?;
    let (_, body) = parse(path, &bytes, LABELS_MAGIC, "labels")?;
    Ok(body.iter().map(|&b| b as u32).collect())
}

/// Reads a pair of IDX files into a labelled dataset; labels must be < `class_names.len()`.
pub fn load_pair(name: &str, images: &Path, labels: &Path, class_names: Vec<String>) -> Result<Dataset> {
    let (data, shape) = read_images(images)?;
    let lab = read_labels(labels)?;
    if lab.len() != shape[0] {
        return Err(DataError::CountMismatch {
            images: images.to_path_buf(),
            labels: labels.to_path_buf(),
            n_images: shape[0],
            n_labels: lab.len(),
        });
    }
    if let Some(&bad) = lab.iter().find(|&&l| l as usize >= class_names.len()) {
        return format_err(labels, format!("label {bad}; expected labels below {}", class_names.len()));
    }
    Dataset::new(name, shape, data)?.with_labels(lab, class_names)
}

/// `dir/stem` or `dir/stem.gz`, whichever exists.
fn find(dir: &Path, stem: &str, which: Which) -> Result<PathBuf> {
    let raw = dir.join(stem);
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        Ok(gz)
    } else if raw.is_file() {
        Ok(raw)
    } else {
        Err(DataError::NotFound {
            path: dir.to_path_buf(),
            what: format!("{} file {stem}[.gz]", which.name()),
            hint: which.hint().to_string(),
        })
    }
}

fn load_part(which: Which, dir: &Path, prefix: &str) -> Result<Dataset> {
    let images = find(dir, &format!("{prefix}-images-idx3-ubyte"), which)?;
    let labels = find(dir, &format!("{prefix}-labels-idx1-ubyte"), which)?;
    let split = if prefix == "train" { "train" } else { "test" };
    load_pair(&format!("{}-{split}", which.name().to_lowercase()), &images, &labels, which.class_names())
}

/// MNIST or Fashion-MNIST from `dir` with the standard file names
/// (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, `t10k-…`).
pub fn load(which: Which, dir: &Path, split: Split) -> Result<Dataset> {
    match split {
        Split::Train => load_part(which, dir, "train"),
        Split::Test => load_part(which, dir, "t10k"),
        Split::TrainTest => {
            let parts = vec![load_part(which, dir, "train")?, load_part(which, dir, "t10k")?];
            Dataset::concat(format!("{}-train+test", which.name().to_lowercase()), parts)
        }
        Split::Unlabeled | Split::TrainUnlabeled => {
            super::invalid("load", format!("{} has no unlabeled split; use train, test or train+test", which.name()))
        }
    }
}

/// Fashion-MNIST (28×28 grey, 10 classes; 60,000 train and 10,000 test images).
pub fn load_fashion_mnist(dir: &Path, split: Split) -> Result<Dataset> {
    load(Which::FashionMnist, dir, split)
}

/// MNIST digits (same layout as Fashion-MNIST).
pub fn load_mnist(dir: &Path, split: Split) -> Result<Dataset> {
    load(Which::Mnist, dir, split)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A fresh, empty directory under the system temp dir, removed when the guard drops.
    pub(crate) fn temp_dir(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new().prefix(&format!("vae-data-{tag}-")).tempdir().unwrap()
    }

    fn idx_bytes(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(body);
        v
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// 3 images of 2×4 whose pixel values are their byte index; labels 0, 1, 2.
    fn write_set(dir: &Path, prefix: &str, gz: bool) {
        let pixels: Vec<u8> = (0..24).collect();
        let images = idx_bytes(IMAGES_MAGIC, &[3, 2, 4], &pixels);
        let labels = idx_bytes(LABELS_MAGIC, &[3], &[0, 1, 2]);
        let (images, labels, ext) = if gz { (gzip(&images), gzip(&labels), ".gz") } else { (images, labels, "") };
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte{ext}")), images).unwrap();
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte{ext}")), labels).unwrap();
    }

    #[test]
    fn idx_raw_and_gzipped_round_trip() {
        for gz in [false, true] {
            let scratch = temp_dir("idx-roundtrip");
            let dir = scratch.path();
            write_set(dir, "train", gz);
            let ds = load_mnist(dir, Split::Train).unwrap();
            assert_eq!(ds.shape, [3, 1, 2, 4]);
            assert_eq!(ds.labels, Some(vec![0, 1, 2]));
            assert_eq!(ds.class_names.len(), 10);
            let want: Vec<f32> = (0..24).map(|b| b as f32 / 255.0).collect();
            assert_eq!(ds.images, want);
            // Image 1, row 1, col 2 is byte 8 + 4 + 2.
            assert_eq!(ds.image(1)[4 + 2], 14.0 / 255.0);
        }
    }

    #[test]
    fn idx_wrong_magic_is_a_format_error_naming_the_file() {
        let scratch = temp_dir("idx-magic");
        let dir = scratch.path();
        let path = dir.join("labels-as-images");
        std::fs::write(&path, idx_bytes(LABELS_MAGIC, &[1], &[0])).unwrap();
        let err = read_images(&path).unwrap_err();
        assert!(matches!(err, DataError::Format { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("labels-as-images") && msg.contains("magic"), "{msg}");
        assert!(msg.contains("0x00000803"), "{msg}");
    }

    #[test]
    fn idx_dimensions_whose_product_overflows_are_a_format_error_naming_the_file() {
        let scratch = temp_dir("overflow");
        let dir = scratch.path();
        let path = dir.join("train-images-idx3-ubyte");
        // 12 · 2³¹ · 2³¹ = 3 · 2⁶⁴: wraps to 0, which an empty body would match.
        std::fs::write(&path, idx_bytes(IMAGES_MAGIC, &[12, 1 << 31, 1 << 31], &[])).unwrap();
        let err = read_images(&path).unwrap_err().to_string();
        assert!(err.contains("train-images-idx3-ubyte") && err.contains("[12, 2147483648, 2147483648]"), "{err}");
    }

    #[test]
    fn idx_truncated_file_is_a_format_error_naming_the_file() {
        let scratch = temp_dir("idx-trunc");
        let dir = scratch.path();
        let path = dir.join("short-images");
        std::fs::write(&path, idx_bytes(IMAGES_MAGIC, &[2, 28, 28], &[0; 100])).unwrap();
        let err = read_images(&path).unwrap_err();
        assert!(matches!(err, DataError::Format { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("short-images") && msg.contains("truncated"), "{msg}");

        // A gzip stream cut in the middle is reported the same way.
        let gz = gzip(&idx_bytes(IMAGES_MAGIC, &[2, 28, 28], &(0..=255).cycle().take(1568).collect::<Vec<u8>>()));
        let path = dir.join("cut.gz");
        std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
        let err = read_images(&path).unwrap_err();
        assert!(matches!(err, DataError::Format { .. }), "{err:?}");
        assert!(err.to_string().contains("cut.gz"), "{err}");

        // A header shorter than its dimensions.
        let path = dir.join("header-only");
        std::fs::write(&path, IMAGES_MAGIC.to_be_bytes()).unwrap();
        let msg = read_images(&path).unwrap_err().to_string();
        assert!(msg.contains("header-only") && msg.contains("truncated header"), "{msg}");
    }

    #[test]
    fn a_gzipped_header_claiming_more_than_its_stream_can_hold_is_refused_before_inflating() {
        let scratch = temp_dir("idx-gz-claim");
        let path = scratch.path().join("claims-a-terabyte.gz");
        // 10^12 bytes of images declared; 16 follow.
        std::fs::write(&path, gzip(&idx_bytes(IMAGES_MAGIC, &[1_000_000, 1000, 1000], &[0; 16]))).unwrap();
        let msg = read_images(&path).unwrap_err().to_string();
        assert!(msg.contains("claims-a-terabyte.gz") && msg.contains("more than a"), "{msg}");
    }

    #[test]
    fn a_gzip_stream_inflating_far_beyond_its_header_is_cut_at_the_header_size() {
        let scratch = temp_dir("idx-gz-bomb");
        let path = scratch.path().join("bomb.gz");
        // A header for one 2×2 image, then 64 MiB of zeros (about 64 KiB gzipped).
        std::fs::write(&path, gzip(&idx_bytes(IMAGES_MAGIC, &[1, 2, 2], &vec![0; 64 << 20]))).unwrap();
        let msg = read_maybe_gz(&path, IMAGES_MAGIC).unwrap_err().to_string();
        assert!(msg.contains("bomb.gz") && msg.contains("more data follows the header"), "{msg}");
    }

    #[test]
    fn idx_image_label_count_mismatch_names_both_files() {
        let scratch = temp_dir("idx-count");
        let dir = scratch.path();
        write_set(dir, "t10k", false);
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_bytes(LABELS_MAGIC, &[2], &[0, 1])).unwrap();
        let err = load_fashion_mnist(dir, Split::Test).unwrap_err();
        assert!(matches!(err, DataError::CountMismatch { n_images: 3, n_labels: 2, .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("t10k-images-idx3-ubyte") && msg.contains("t10k-labels-idx1-ubyte"), "{msg}");
    }

    #[test]
    fn idx_missing_dataset_says_how_to_install_it() {
        let scratch = temp_dir("idx-missing");
        let dir = scratch.path();
        let err = load_fashion_mnist(dir, Split::Train).unwrap_err();
        assert!(matches!(err, DataError::NotFound { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("apt-get install dataset-fashion-mnist") && msg.contains("--data-dir"), "{msg}");
    }

    #[test]
    fn real_fashion_mnist_loads_when_installed() {
        let dir = Path::new(FASHION_MNIST_DIR);
        if !dir.join("train-images-idx3-ubyte.gz").is_file() && !dir.join("train-images-idx3-ubyte").is_file() {
            eprintln!("skipping: Fashion-MNIST is not installed in {FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)");
            return;
        }
        let ds = load_fashion_mnist(dir, Split::Train).unwrap();
        assert_eq!(ds.shape, [60_000, 1, 28, 28]);
        let labels = ds.labels.as_ref().unwrap();
        assert!(labels.iter().all(|&l| l < 10));
        // Every class is present, 6,000 times each.
        let mut counts = [0usize; 10];
        labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert_eq!(counts, [6000; 10]);
        assert!(ds.images.iter().all(|v| (0.0..=1.0).contains(v)));
        let test = load_fashion_mnist(dir, Split::Test).unwrap();
        assert_eq!(test.shape, [10_000, 1, 28, 28]);
    }
}
