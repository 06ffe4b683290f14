//! A directory tree of PNG/JPEG images (Stanford Dogs, CelebA, ...), decoded in parallel.
//!
//! Each image is found recursively (paths sorted, so the order is deterministic), labelled by
//! its top-level subfolder, optionally cropped to the first bounding box of its Pascal-VOC
//! annotation (Stanford Dogs: `Annotation/<class>/<stem>`, no extension, or `<stem>.xml`),
//! optionally centre-cropped to a square (CelebA), then resized to H×W, RGB or grey.
//! A file that does not decode is reported on stderr and skipped, never a crash.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::DynamicImage;
use rayon::prelude::*;

use super::{io_err, DataError, Dataset, Result, SkippedFile};

/// Default output height and width in pixels.
pub const DEFAULT_SIZE: usize = 64;

/// How the images of a folder are turned into same-sized tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct FolderOptions {
    /// Output height in pixels.
    pub height: usize,
    /// Output width in pixels.
    pub width: usize,
    /// One grey channel instead of three.
    pub grayscale: bool,
    /// Crop the largest centred square before resizing (after any bounding-box crop).
    pub center_crop: bool,
    /// Where Pascal-VOC annotations mirror the image tree (`<dir>/<class>/<stem>[.xml]`);
    /// `None`: no bounding-box crop.
    pub annotation_dir: Option<PathBuf>,
    /// Keep at most this many files, evenly spaced over the sorted list (so every class
    /// keeps its share).
    pub max_images: Option<usize>,
}

impl Default for FolderOptions {
    fn default() -> Self {
        FolderOptions {
            height: DEFAULT_SIZE,
            width: DEFAULT_SIZE,
            grayscale: false,
            center_crop: false,
            annotation_dir: None,
            max_images: None,
        }
    }
}

/// A box in pixel coordinates: columns x0..x1, rows y0..y1 (ends exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BBox {
    /// Left column (inclusive).
    pub x0: u32,
    /// Top row (inclusive).
    pub y0: u32,
    /// Right column (exclusive).
    pub x1: u32,
    /// Bottom row (exclusive).
    pub y1: u32,
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// Every PNG/JPEG file under `root` (by extension, case-insensitive), sorted. Links to
/// directories are followed, but each directory is walked once (by its canonical path): a link
/// loop, or two links to one folder, would otherwise repeat its images, and a test image
/// would reappear as a training image.
pub fn collect_images(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut visited = std::collections::HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if !visited.insert(std::fs::canonicalize(&dir).map_err(|e| io_err(&dir, e))?) {
            continue;
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| io_err(&dir, e))?
            .map(|entry| entry.map(|e| e.path()).map_err(|e| io_err(&dir, e)))
            .collect::<Result<_>>()?;
        // Sorted, and the stack takes the first name first: which of two links to one folder is
        // walked (and so which class its images get) does not depend on the file system's order.
        entries.sort_unstable_by(|a, b| b.cmp(a));
        for path in entries {
            if path.is_dir() {
                stack.push(path);
            } else if is_image(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The first `<object><bndbox>` of a Pascal-VOC annotation, as written (1-based, inclusive):
/// `[xmin, ymin, xmax, ymax]`, each a finite number, the max not below the min.
pub fn parse_voc_bbox(xml: &str) -> std::result::Result<[f64; 4], String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not valid XML: {e}"))?;
    let object = doc.descendants().find(|n| n.has_tag_name("object")).ok_or("no <object> element")?;
    let bndbox = object.children().find(|n| n.has_tag_name("bndbox")).ok_or("the first <object> has no <bndbox>")?;
    let mut v = [0.0; 4];
    for (slot, tag) in v.iter_mut().zip(["xmin", "ymin", "xmax", "ymax"]) {
        let node = bndbox.children().find(|n| n.has_tag_name(tag)).ok_or_else(|| format!("<bndbox> has no <{tag}>"))?;
        let text = node.text().unwrap_or("").trim();
        *slot = text
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("<{tag}>{text}</{tag}> is not a finite number"))?;
    }
    if v[2] < v[0] || v[3] < v[1] {
        return Err(format!("box {v:?} has xmax < xmin or ymax < ymin"));
    }
    Ok(v)
}

/// The smallest crop a box may give, in pixels on each side. A box smaller than this (one
/// pixel, a degenerate annotation) would be blown up to the whole output image: a smear, not
/// the object, so it is refused rather than trained on.
pub const MIN_BOX_SIDE: u32 = 4;

/// A VOC box (1-based, inclusive) clamped to a `w`×`h` image; `None` if less than
/// [`MIN_BOX_SIDE`] pixels on a side are left.
pub fn voc_to_pixels(b: [f64; 4], w: u32, h: u32) -> Option<BBox> {
    let x0 = (b[0].round() as i64 - 1).clamp(0, w as i64) as u32;
    let y0 = (b[1].round() as i64 - 1).clamp(0, h as i64) as u32;
    let x1 = (b[2].round() as i64).clamp(0, w as i64) as u32;
    let y1 = (b[3].round() as i64).clamp(0, h as i64) as u32;
    (x1 >= x0 + MIN_BOX_SIDE && y1 >= y0 + MIN_BOX_SIDE).then_some(BBox { x0, y0, x1, y1 })
}

/// The annotation of image `rel` (relative to the image root): `<dir>/<rel parent>/<stem>`
/// or the same with `.xml`.
fn annotation_path(dir: &Path, rel: &Path) -> Option<PathBuf> {
    let stem = rel.file_stem()?;
    let base = dir.join(rel.parent().unwrap_or(Path::new("")));
    let bare = base.join(stem);
    let xml = bare.with_extension("xml");
    [bare, xml].into_iter().find(|p| p.is_file())
}

/// The most bytes a decoder may allocate for an image file of `len` bytes: what the file can
/// honestly decode to — deflate's limit (about 1032:1) times 24, for a 1-bit palette expanded to
/// RGB (a JPEG's ratio is lower) — at least 1 MiB and at most the decoder's own default,
/// 512 MiB. A header that claims a 100,000×100,000 image in a hundred bytes is refused before
/// its pixel buffer is allocated, and so is a truncated JPEG whose header claims 16 million
/// pixels in 656 bytes (the decoder would fill what is missing, and resizing it took seconds).
pub fn decode_budget(len: usize) -> u64 {
    (1032 * 24 * len as u64).clamp(1 << 20, 512 << 20)
}

/// Decodes an image file's bytes (the format from its content), within [`decode_budget`].
pub fn decode_bounded(bytes: &[u8]) -> image::ImageResult<DynamicImage> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(decode_budget(bytes.len()));
    reader.limits(limits);
    reader.decode()
}

/// Decodes one file into [C, H, W] floats in [0, 1]. `Err` carries the reason to report.
/// `Ok((pixels, had_annotation))`.
fn decode_one(path: &Path, rel: &Path, opts: &FolderOptions) -> std::result::Result<(Vec<f32>, bool), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    // The decoders are not supposed to panic on bad input; if one does, skip the file anyway.
    let decoded =
        std::panic::catch_unwind(|| decode_bounded(&bytes)).map_err(|_| "the image decoder panicked".to_string())?;
    let mut img: DynamicImage = decoded.map_err(|e| e.to_string())?;
    let mut found = false;
    if let Some(dir) = &opts.annotation_dir {
        if let Some(ann) = annotation_path(dir, rel) {
            let xml = std::fs::read_to_string(&ann).map_err(|e| format!("annotation {}: {e}", ann.display()))?;
            let b = parse_voc_bbox(&xml).map_err(|e| format!("annotation {}: {e}", ann.display()))?;
            let bb = voc_to_pixels(b, img.width(), img.height()).ok_or_else(|| {
                format!(
                    "annotation {}: box {b:?} leaves less than {MIN_BOX_SIDE}×{MIN_BOX_SIDE} pixels of the {}×{} image",
                    ann.display(),
                    img.width(),
                    img.height()
                )
            })?;
            img = img.crop_imm(bb.x0, bb.y0, bb.x1 - bb.x0, bb.y1 - bb.y0);
            found = true;
        }
    }
    if opts.center_crop {
        let side = img.width().min(img.height());
        img = img.crop_imm((img.width() - side) / 2, (img.height() - side) / 2, side, side);
    }
    let (w, h) = (opts.width as u32, opts.height as u32);
    let plane = opts.width * opts.height;
    // Resize in f32 (no rounding to 8 bits), then de-interleave HWC into CHW.
    let chw = if opts.grayscale {
        image::imageops::resize(&img.to_luma32f(), w, h, FilterType::Triangle).into_raw()
    } else {
        let hwc = image::imageops::resize(&img.to_rgb32f(), w, h, FilterType::Triangle).into_raw();
        let mut chw = vec![0.0f32; 3 * plane];
        for (p, px) in hwc.chunks(3).enumerate() {
            for c in 0..3 {
                chw[c * plane + p] = px[c];
            }
        }
        chw
    };
    Ok((chw, found))
}

/// Loads every PNG/JPEG under `root`. Labels (the top-level subfolder's name, classes sorted)
/// are kept when every image lies in a subfolder; a flat folder gives no labels.
pub fn load(root: &Path, opts: &FolderOptions) -> Result<Dataset> {
    if opts.height == 0 || opts.width == 0 {
        return super::invalid("image folder", "image height and width must be at least 1");
    }
    if !root.is_dir() {
        return Err(DataError::NotFound {
            path: root.to_path_buf(),
            what: "image folder".into(),
            hint: "pass --data-dir <directory of PNG/JPEG images, one subfolder per class>".into(),
        });
    }
    if let Some(dir) = opts.annotation_dir.as_deref().filter(|d| !d.is_dir()) {
        return Err(DataError::NotFound {
            path: dir.to_path_buf(),
            what: "annotation folder (--annotation-dir)".into(),
            hint: "expected a folder of Pascal VOC XML files laid out like the images (Stanford Dogs' Annotation/)"
                .into(),
        });
    }
    let mut files = collect_images(root)?;
    if let Some(m) = opts.max_images.filter(|&m| m < files.len()) {
        let n = files.len();
        files = (0..m).map(|i| files[i * n / m].clone()).collect();
    }
    if files.is_empty() {
        return Err(DataError::NotFound {
            path: root.to_path_buf(),
            what: "PNG or JPEG images".into(),
            hint: "expected files ending in .png, .jpg or .jpeg (in class subfolders)".into(),
        });
    }
    let rels: Vec<PathBuf> = files.iter().map(|f| f.strip_prefix(root).unwrap_or(f).to_path_buf()).collect();
    let decoded: Vec<_> = files.par_iter().zip(rels.par_iter()).map(|(f, rel)| decode_one(f, rel, opts)).collect();

    let (mut images, mut kept, mut skipped, mut missing_ann) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for (i, d) in decoded.into_iter().enumerate() {
        match d {
            Ok((px, had_ann)) => {
                images.extend(px);
                kept.push(i);
                missing_ann += usize::from(opts.annotation_dir.is_some() && !had_ann);
            }
            Err(reason) => {
                eprintln!("skipping {}: {reason}", files[i].display());
                skipped.push(SkippedFile { path: files[i].clone(), reason });
            }
        }
    }
    if missing_ann > 0 {
        eprintln!("{missing_ann} images under {} have no annotation: used uncropped", root.display());
    }
    if kept.is_empty() {
        return super::format_err(root, format!("none of the {} image files could be decoded", files.len()));
    }

    let c = if opts.grayscale { 1 } else { 3 };
    let name = root.file_name().map_or("folder".into(), |n| n.to_string_lossy().into_owned());
    let mut ds = Dataset::new(name, [kept.len(), c, opts.height, opts.width], images)?;
    ds.skipped = skipped;
    // Class = first component of the relative path, when every image has one.
    let classes: Option<Vec<String>> = kept
        .iter()
        .map(|&i| {
            let mut comps = rels[i].components();
            let first = comps.next()?;
            comps.next().map(|_| first.as_os_str().to_string_lossy().into_owned())
        })
        .collect();
    if let Some(classes) = classes {
        let names: Vec<String> = classes.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let labels = classes.iter().map(|c| names.binary_search(c).unwrap_or(0) as u32).collect();
        ds = ds.with_labels(labels, names)?;
    }
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::tests::temp_dir;
    use image::{Rgb, RgbImage};

    /// A w×h image, red everywhere except a green rectangle over columns gx0..gx1, rows gy0..gy1.
    fn picture(w: u32, h: u32, g: [u32; 4]) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            if (g[0]..g[1]).contains(&x) && (g[2]..g[3]).contains(&y) {
                Rgb([0, 255, 0])
            } else {
                Rgb([255, 0, 0])
            }
        })
    }

    /// A valid 2×2 PNG whose header then claims `w`×`h` pixels (its checksum mended).
    fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut png = std::io::Cursor::new(Vec::new());
        picture(2, 2, [0; 4]).write_to(&mut png, image::ImageFormat::Png).unwrap();
        let mut png = png.into_inner();
        png[16..20].copy_from_slice(&w.to_be_bytes());
        png[20..24].copy_from_slice(&h.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&png[12..29]);
        png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        png
    }

    #[test]
    fn an_image_header_claiming_more_pixels_than_its_file_can_hold_is_refused_before_allocating() {
        // 8000×8000 RGB is 192 MB: under the decoder's own default limit, far over what 70
        // bytes can inflate to.
        let png = png_claiming(8000, 8000);
        let err = decode_bounded(&png).unwrap_err();
        assert!(matches!(err, image::ImageError::Limits(_)), "{err:?}");
        assert!(decode_bounded(&png_claiming(2, 2)).is_ok(), "the header mended back is a valid image");
    }

    #[test]
    fn a_truncated_jpeg_claiming_16_million_pixels_is_refused_before_it_is_decoded() {
        // Found by fuzzing: 656 bytes of JPEG whose header says 65,516×250; the decoder fills
        // the missing scans, and the loader then spent seconds resizing 49 MB of grey. The
        // fuzz input is a flag byte and a two-byte length (0) before the file.
        let input = include_bytes!("../../fuzz/regressions/image_folder/jpeg-header-claiming-65516x250-in-656-bytes");
        let err = decode_bounded(&input[3..]).unwrap_err();
        assert!(matches!(err, image::ImageError::Limits(_)), "{err:?}");
    }

    #[test]
    fn folder_decodes_png_and_jpeg_skips_broken_and_labels_by_subfolder() {
        let scratch = temp_dir("folder");
        let root = scratch.path();
        for class in ["cats", "dogs"] {
            std::fs::create_dir_all(root.join(class)).unwrap();
        }
        picture(8, 8, [0, 0, 0, 0]).save(root.join("cats/a.png")).unwrap();
        picture(16, 16, [0, 0, 0, 0]).save(root.join("dogs/b.jpg")).unwrap();
        std::fs::write(root.join("dogs/broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
        std::fs::write(root.join("dogs/notes.txt"), "ignored").unwrap();
        let opts = FolderOptions { height: 4, width: 4, ..Default::default() };
        let ds = load(root, &opts).unwrap();
        assert_eq!(ds.shape, [2, 3, 4, 4]);
        assert_eq!(ds.class_names, vec!["cats", "dogs"]);
        assert_eq!(ds.labels, Some(vec![0, 1]));
        assert_eq!(ds.skipped.len(), 1);
        assert!(ds.skipped[0].path.ends_with("dogs/broken.png"));
        assert!(!ds.skipped[0].reason.is_empty());
        // Both are pure red: R ≈ 1, G ≈ 0 (JPEG is lossy).
        for i in 0..2 {
            let img = ds.image(i);
            assert!(img[..16].iter().all(|&r| r > 0.9), "red plane of image {i}");
            assert!(img[16..32].iter().all(|&g| g < 0.1), "green plane of image {i}");
        }
        let grey = load(root, &FolderOptions { grayscale: true, ..opts }).unwrap();
        assert_eq!(grey.shape, [2, 1, 4, 4]);
    }

    #[test]
    fn folder_crops_to_the_voc_bounding_box_and_the_centre_square() {
        let scratch = temp_dir("folder-voc");
        let root = scratch.path();
        let (images, ann) = (root.join("Images"), root.join("Annotation"));
        std::fs::create_dir_all(images.join("n01-dog")).unwrap();
        std::fs::create_dir_all(ann.join("n01-dog")).unwrap();
        // Green over columns 10..30, rows 4..12 of a 40×20 picture.
        picture(40, 20, [10, 30, 4, 12]).save(images.join("n01-dog/n01_1.png")).unwrap();
        let xml = "<annotation><size><width>40</width></size><object><name>dog</name>\
                   <bndbox><xmin>11</xmin><ymin>5</ymin><xmax>30</xmax><ymax>12</ymax></bndbox>\
                   </object><object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object></annotation>";
        std::fs::write(ann.join("n01-dog/n01_1"), xml).unwrap();
        let opts = FolderOptions { height: 4, width: 4, annotation_dir: Some(ann), ..Default::default() };
        let ds = load(&images, &opts).unwrap();
        assert_eq!(ds.labels, Some(vec![0]));
        assert_eq!(ds.class_names, vec!["n01-dog"]);
        let img = ds.image(0);
        assert!(img[16..32].iter().all(|&g| g > 0.99), "the crop is all green: {:?}", &img[16..32]);
        assert!(img[..16].iter().all(|&r| r < 0.01));

        // Without the annotation, the same picture is mostly red.
        let plain = load(&images, &FolderOptions { height: 4, width: 4, ..Default::default() }).unwrap();
        assert!(plain.image(0)[..16].iter().sum::<f32>() > 8.0);

        // Centre square of a 40×20 picture = columns 10..30, rows 0..20: green in the middle rows only.
        let centred =
            load(&images, &FolderOptions { height: 20, width: 20, center_crop: true, ..Default::default() }).unwrap();
        let g = &centred.image(0)[400..800];
        assert!(g[8 * 20 + 10] > 0.99 && g[0] < 0.01 && g[19 * 20 + 19] < 0.01);
    }

    #[test]
    fn an_annotation_folder_that_does_not_exist_is_an_error_naming_it() {
        let scratch = temp_dir("no-annotations");
        let root = scratch.path();
        std::fs::create_dir_all(root.join("Images/n01-dog")).unwrap();
        picture(8, 8, [0, 4, 0, 4]).save(root.join("Images/n01-dog/a.png")).unwrap();
        let missing = root.join("Annotaton");
        let opts = FolderOptions { height: 4, width: 4, annotation_dir: Some(missing.clone()), ..Default::default() };
        let err = load(&root.join("Images"), &opts).unwrap_err().to_string();
        assert!(err.contains(&missing.display().to_string()) && err.contains("--annotation-dir"), "{err}");
    }

    #[test]
    fn voc_parser_reads_the_first_object_and_rejects_broken_boxes() {
        let xml = "<object><bndbox><xmin> 3 </xmin><ymin>4</ymin><xmax>10.4</xmax><ymax>20</ymax></bndbox></object>";
        assert_eq!(parse_voc_bbox(xml), Ok([3.0, 4.0, 10.4, 20.0]));
        assert_eq!(voc_to_pixels([3.0, 4.0, 10.4, 20.0], 8, 100), Some(BBox { x0: 2, y0: 3, x1: 8, y1: 20 }));
        assert!(parse_voc_bbox("<annotation></annotation>").is_err());
        assert!(parse_voc_bbox("<object><bndbox><xmin>a</xmin></bndbox></object>").is_err());
        assert!(voc_to_pixels([50.0, 50.0, 60.0, 60.0], 10, 10).is_none());
    }

    #[test]
    fn voc_boxes_with_non_finite_coordinates_are_refused() {
        for bad in ["NaN", "nan", "inf", "-inf"] {
            let xml = format!(
                "<object><bndbox><xmin>{bad}</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
            );
            let err = parse_voc_bbox(&xml).unwrap_err();
            assert!(err.contains("finite"), "{bad}: {err}");
        }
    }

    #[test]
    fn voc_boxes_smaller_than_the_minimum_side_are_refused() {
        // One pixel (VOC's inclusive 5..5), and 3 pixels wide.
        assert!(voc_to_pixels([5.0, 5.0, 5.0, 5.0], 100, 100).is_none());
        assert!(voc_to_pixels([5.0, 5.0, 7.0, 20.0], 100, 100).is_none());
        assert!(voc_to_pixels([5.0, 5.0, 8.0, 8.0], 100, 100).is_some(), "4×4 is the smallest allowed");
    }

    #[test]
    fn voc_text_that_is_not_xml_is_refused_naming_why() {
        assert!(parse_voc_bbox("<object><bndbox><xmin>1</xmin>").unwrap_err().contains("XML"));
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_link_loop_is_walked_once() {
        let scratch = temp_dir("link-loop");
        let root = scratch.path();
        std::fs::create_dir_all(root.join("cats")).unwrap();
        picture(8, 8, [0, 0, 0, 0]).save(root.join("cats/a.png")).unwrap();
        // cats/again → the root: a loop that would list a.png again at every level.
        std::os::unix::fs::symlink(root, root.join("cats/again")).unwrap();
        // dogs → cats: a second link to one folder.
        std::os::unix::fs::symlink(root.join("cats"), root.join("dogs")).unwrap();
        let files = collect_images(root).unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
    }
}
