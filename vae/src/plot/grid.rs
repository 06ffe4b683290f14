//! Image grids: rows of [C, H, W] images (C = 1 or 3) laid out with padding and integer
//! upscaling into one PNG. This compositor is ours to show: it is a few loops over pixels, and
//! it is what every picture of a model's inputs, outputs and features goes through.

use std::path::Path;

use image::{DynamicImage, GrayImage, RgbImage};

use super::{invalid, save_png_atomic, Result};

/// How [`save_image_grid_with`] and [`save_rows_with`] lay images out.
#[derive(Clone, Debug, PartialEq)]
pub struct GridOptions {
    /// Images per row ([`image_grid`] only; [`save_rows_with`] puts each set on its own row).
    pub cols: usize,
    /// Pixels between images and around the border (not upscaled).
    pub padding: usize,
    /// Integer nearest-neighbour upscaling; `None` picks the smallest scale that makes each
    /// image at least 56 px on its shorter side (28×28 MNIST → ×2, 64×64 → ×1).
    pub scale: Option<usize>,
    /// Grey level of the padding, 0 (black) to 1 (white).
    pub pad_value: f32,
    /// Stretch each image to [0, 1] by its own min and max first (for feature maps, whose
    /// values are not intensities); a constant image becomes 0.5.
    pub normalize: bool,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions { cols: 8, padding: 2, scale: None, pad_value: 1.0, normalize: false }
    }
}

/// [0, 1] → 0..255, clamping; NaN becomes 0 (Rust's float → int cast saturates NaN to 0).
fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Lays out rows of images, image shape [C, H, W] with C = 1 (grey PNG) or 3 (RGB PNG).
/// rows\[r\] holds the images of row r, each a [C, H, W] slice. The canvas is
///   width  = cols·W·s + (cols + 1)·padding,   height = rows·H·s + (rows + 1)·padding,
/// with cols the longest row; missing cells are left at the padding colour.
fn compose(what: &'static str, rows: &[Vec<&[f32]>], chw: [usize; 3], opts: &GridOptions) -> Result<DynamicImage> {
    let [c, h, w] = chw;
    if c != 1 && c != 3 {
        return invalid(what, format!("images have {c} channels; expected 1 or 3 ([C, H, W] = {chw:?})"));
    }
    if h == 0 || w == 0 {
        return invalid(what, format!("images of shape {chw:?} have no pixels"));
    }
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    if cols == 0 {
        return invalid(what, "no images to draw");
    }
    let s = opts.scale.unwrap_or_else(|| 56usize.div_ceil(h.min(w)).max(1));
    if s == 0 {
        return invalid(what, "scale must be at least 1");
    }
    let pad = opts.padding;
    let (cell_w, cell_h) = (w * s, h * s);
    let width = cols * cell_w + (cols + 1) * pad;
    let height = rows.len() * cell_h + (rows.len() + 1) * pad;
    if width > 1 << 15 || height > 1 << 15 {
        return invalid(
            what,
            format!("a {width}×{height} grid is too large; use fewer images per row or a smaller scale"),
        );
    }
    let pad_u8 = to_u8(opts.pad_value);
    let mut rgb = vec![pad_u8; width * height * c];
    for (r, row) in rows.iter().enumerate() {
        for (k, img) in row.iter().enumerate() {
            // Per-image stretch for feature maps: v ↦ (v − min) / (max − min).
            let (lo, range) = if opts.normalize {
                let lo = img.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = img.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                (lo, hi - lo)
            } else {
                (0.0, 1.0)
            };
            let value = |v: f32| {
                if range > 0.0 {
                    (v - lo) / range
                } else {
                    0.5
                }
            };
            let (ox, oy) = (pad + k * (cell_w + pad), pad + r * (cell_h + pad));
            for y in 0..cell_h {
                for x in 0..cell_w {
                    let src = (y / s) * w + x / s;
                    let dst = ((oy + y) * width + ox + x) * c;
                    for ch in 0..c {
                        rgb[dst + ch] = to_u8(value(img[ch * h * w + src]));
                    }
                }
            }
        }
    }
    let (wu, hu) = (width as u32, height as u32);
    let built = if c == 1 {
        GrayImage::from_raw(wu, hu, rgb).map(DynamicImage::ImageLuma8)
    } else {
        RgbImage::from_raw(wu, hu, rgb).map(DynamicImage::ImageRgb8)
    };
    match built {
        Some(img) => Ok(img),
        None => invalid(what, format!("internal: buffer does not fill {width}×{height}")),
    }
}

/// Splits images: [n, C, H, W] into n slices after checking the length.
fn split_images<'a>(what: &'static str, images: &'a [f32], shape: [usize; 4]) -> Result<Vec<&'a [f32]>> {
    let [n, c, h, w] = shape;
    let len = c * h * w;
    if images.len() != n * len || len == 0 {
        return invalid(what, format!("images has {} values for shape {shape:?}", images.len()));
    }
    Ok(images.chunks(len).collect())
}

/// The grid [`save_image_grid_with`] writes, in memory. images: [n, C, H, W] in [0, 1].
pub fn image_grid(images: &[f32], shape: [usize; 4], opts: &GridOptions) -> Result<DynamicImage> {
    const WHAT: &str = "image_grid";
    if opts.cols == 0 {
        return invalid(WHAT, "cols must be at least 1");
    }
    let all = split_images(WHAT, images, shape)?;
    let rows: Vec<Vec<&[f32]>> = all.chunks(opts.cols).map(<[&[f32]]>::to_vec).collect();
    compose(WHAT, &rows, [shape[1], shape[2], shape[3]], opts)
}

/// Saves images: [n, C, H, W] (values in [0, 1], clamped; C = 1 or 3) as a PNG grid of
/// `opts.cols` columns, filled row by row. See [`GridOptions`] for padding and upscaling.
pub fn save_image_grid_with(path: &Path, images: &[f32], shape: [usize; 4], opts: &GridOptions) -> Result<()> {
    save_png_atomic(&image_grid(images, shape, opts)?, path)
}

/// [`save_image_grid_with`] with `cols` columns and the default padding (2 px, white) and
/// upscaling (tiny images enlarged to ≥ 56 px). images: [n, c, h, w].
pub fn save_image_grid(path: &Path, images: &[f32], n: usize, c: usize, h: usize, w: usize, cols: usize) -> Result<()> {
    let opts = GridOptions { cols, ..GridOptions::default() };
    save_image_grid_with(path, images, [n, c, h, w], &opts)
}

/// Saves several sets of images as rows of one PNG, e.g. originals above reconstructions.
/// rows\[r\]: [n_r, C, H, W] flattened, each image of shape `chw` = [C, H, W]; `opts.cols` is
/// ignored (each set is one row, as long as the longest set).
pub fn save_rows_with(path: &Path, rows: &[&[f32]], chw: [usize; 3], opts: &GridOptions) -> Result<()> {
    const WHAT: &str = "save_rows";
    let len = chw.iter().product::<usize>();
    let mut cells = Vec::with_capacity(rows.len());
    for (r, row) in rows.iter().enumerate() {
        if len == 0 || row.len() % len != 0 {
            return invalid(WHAT, format!("row {r} has {} values, not a whole number of {chw:?} images", row.len()));
        }
        cells.push(row.chunks(len).collect::<Vec<_>>());
    }
    save_png_atomic(&compose(WHAT, &cells, chw, opts)?, path)
}

/// [`save_rows_with`] with default padding and upscaling, every row holding exactly `n`
/// images of shape [c, h, w] (rows\[r\]: [n, c, h, w]).
pub fn save_rows(path: &Path, rows: &[&[f32]], n: usize, c: usize, h: usize, w: usize) -> Result<()> {
    if let Some((r, row)) = rows.iter().enumerate().find(|(_, row)| row.len() != n * c * h * w) {
        return invalid(
            "save_rows",
            format!("row {r} has {} values; expected [n, C, H, W] = [{n}, {c}, {h}, {w}]", row.len()),
        );
    }
    save_rows_with(path, rows, [c, h, w], &GridOptions::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir for one test's files, removed when the guard
    /// drops.
    fn scratch(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new().prefix(&format!("vae-plot-{name}-")).tempdir().unwrap()
    }

    #[test]
    fn grid_places_known_images_at_the_right_pixels() {
        // Three 2×2 one-channel images whose values are exact in u8: image k, pixel p holds
        // (40k + 10p)/255. cols 2, padding 1, scale 1 →
        // 2·2 + 3·1 = 7 wide, 2 rows → 7 tall; the empty 4th cell stays padding.
        let images: Vec<f32> = (0..3).flat_map(|k| (0..4).map(move |p| (40 * k + 10 * p) as f32 / 255.0)).collect();
        let opts = GridOptions { cols: 2, padding: 1, scale: Some(1), pad_value: 1.0, normalize: false };
        let scratch = scratch("grid");
        let dir = scratch.path();
        let path = dir.join("grid.png");
        save_image_grid_with(&path, &images, [3, 1, 2, 2], &opts).unwrap();
        assert!(!dir.join("grid.png.tmp").exists(), "temporary file renamed away");
        let img = image::open(&path).unwrap().into_luma8();
        assert_eq!(img.dimensions(), (7, 7));
        // Image k sits at column k % 2, row k / 2: top-left pixel (1 + 3(k % 2), 1 + 3(k / 2)).
        for k in 0..3u32 {
            let (ox, oy) = (1 + 3 * (k % 2), 1 + 3 * (k / 2));
            for p in 0..4u32 {
                let v = img.get_pixel(ox + p % 2, oy + p / 2)[0];
                assert_eq!(v as u32, 40 * k + 10 * p, "image {k}, pixel {p}");
            }
        }
        // Padding: the border, the gutters and the unused cell (4..6, 4..6) are white.
        for (x, y) in [(0, 0), (3, 1), (1, 3), (6, 6), (4, 4), (5, 5)] {
            assert_eq!(img.get_pixel(x, y)[0], 255, "({x}, {y})");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rgb_grid_clamps_upscales_and_normalises() {
        // One 1×2 RGB image: pixel 0 = (1.5, −1, 0.5) → clamped (255, 0, 128).
        let img = [1.5f32, 0.2, -1.0, 0.2, 0.5, 0.2];
        let opts = GridOptions { cols: 1, padding: 0, scale: Some(3), pad_value: 0.0, normalize: false };
        let g = image_grid(&img, [1, 3, 1, 2], &opts).unwrap().into_rgb8();
        assert_eq!(g.dimensions(), (6, 3), "×3 nearest-neighbour upscaling");
        assert_eq!(g.get_pixel(2, 2).0, [255, 0, 128]);
        assert_eq!(g.get_pixel(3, 0).0, [51, 51, 51]);
        // Auto scale: 28×28 → ×2 (56 px); 64×64 → ×1.
        let auto = GridOptions { cols: 1, padding: 0, ..GridOptions::default() };
        assert_eq!(image_grid(&vec![0.0; 784], [1, 1, 28, 28], &auto).unwrap().width(), 56);
        assert_eq!(image_grid(&vec![0.0; 4096], [1, 1, 64, 64], &auto).unwrap().width(), 64);
        // normalize stretches a feature map [−2, 2] to [0, 255].
        let fm = GridOptions { normalize: true, ..opts.clone() };
        let g = image_grid(&[-2.0, 2.0], [1, 1, 1, 2], &fm).unwrap().into_luma8();
        assert_eq!((g.get_pixel(0, 0)[0], g.get_pixel(3, 0)[0]), (0, 255));
        assert!(image_grid(&img, [1, 2, 1, 2], &opts).is_err(), "2 channels");
        assert!(image_grid(&img, [2, 3, 1, 2], &opts).is_err(), "length");
    }

    #[test]
    fn rows_put_each_set_on_its_own_row() {
        // Originals (black) over reconstructions (white), 2 images of 2×2 each, scale 1,
        // grey padding 2: 2·2 + 3·2 = 10 wide, 2·2 + 3·2 = 10 tall.
        let scratch = scratch("rows");
        let dir = scratch.path();
        let path = dir.join("rows.png");
        let (top, bottom) = (vec![0.0f32; 8], vec![1.0f32; 8]);
        let opts = GridOptions { padding: 2, scale: Some(1), pad_value: 0.5, ..GridOptions::default() };
        save_rows_with(&path, &[&top, &bottom], [1, 2, 2], &opts).unwrap();
        let img = image::open(&path).unwrap().into_luma8();
        assert_eq!(img.dimensions(), (10, 10));
        assert_eq!(img.get_pixel(2, 2)[0], 0, "first original");
        assert_eq!(img.get_pixel(6, 7)[0], 255, "second reconstruction");
        assert_eq!(img.get_pixel(0, 0)[0], 128, "padding");
        // The positional form checks every row holds n images.
        assert!(save_rows(&path, &[&top, &bottom[..4]], 2, 1, 2, 2).is_err());
        save_rows(&path, &[&top, &bottom], 2, 1, 2, 2).unwrap();
        assert_eq!(image::open(&path).unwrap().width(), 2 * 56 + 3 * 2, "auto ×28 for 2×2");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
