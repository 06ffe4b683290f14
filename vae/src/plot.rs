//! PNG figures without a plotting crate: image grids (samples, originals over
//! reconstructions, feature maps), line plots (loss curves of one run, validation losses of a
//! sweep) and scatter plots (t-SNE of latent means coloured by label), with axes, ticks,
//! titles and legends drawn in a built-in 5×7 bitmap font.
//!
//! Each figure has a short form with defaults (`save_image_grid`, `save_rows`,
//! `save_line_plot`, `save_scatter_plot`) and a `_with` form taking [`GridOptions`] or
//! [`PlotOptions`]; `render_*` return the image without writing it.
//!
//! Everything renders into an `image::RgbImage` (or `GrayImage` for one-channel grids) and
//! is written atomically: to `<path>.tmp` first, then renamed over `<path>`, so a crash
//! or a reader polling the file never sees half a PNG. Parent directories must exist.
//!
//! Coordinates: pixel (x, y) has x to the right and y down, origin top-left. Data values map
//! to the plot area linearly (or log10 for a log-y axis), the y axis flipped so larger values
//! are higher.

use std::fmt;
use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage, ImageFormat, Rgb, RgbImage};

// ---------------------------------------------------------------- errors

/// What can go wrong while drawing or saving a figure. Messages name the file or the bad
/// argument.
#[derive(Debug)]
pub enum PlotError {
    /// An argument with a wrong shape or value (no series, mismatched lengths, a label
    /// without a class name, a canvas too small for its axes, ...).
    Invalid {
        /// The function or argument that rejected it.
        what: &'static str,
        /// What is wrong and what was expected.
        msg: String,
    },
    /// Writing or renaming the file failed.
    Io {
        /// The file being written.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The PNG encoder failed.
    Image {
        /// The file being written.
        path: PathBuf,
        /// The encoder's error.
        source: image::ImageError,
    },
}

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlotError::Invalid { what, msg } => write!(f, "{what}: {msg}"),
            PlotError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            PlotError::Image { path, source } => {
                write!(f, "{}: encoding PNG: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for PlotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PlotError::Io { source, .. } => Some(source),
            PlotError::Image { source, .. } => Some(source),
            PlotError::Invalid { .. } => None,
        }
    }
}

/// Result with [`PlotError`].
pub type Result<T> = std::result::Result<T, PlotError>;

fn invalid<T>(what: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(PlotError::Invalid { what, msg: msg.into() })
}

/// Writes `img` as a PNG file atomically (`nn::atomic_file`: a crash leaves the old picture or
/// the new one).
fn save_png_atomic(img: &DynamicImage, path: &Path) -> Result<()> {
    let bytes = png_bytes(img)?;
    nn::atomic_file::write_atomic(path, &bytes).map_err(|(path, source)| PlotError::Io { path, source })
}

/// `img` encoded as a PNG file's bytes, in memory (for answers of the `explore` server and
/// images inlined in `report.html`).
pub fn png_bytes(img: &DynamicImage) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)
        .map_err(|source| PlotError::Image { path: PathBuf::from("(in memory)"), source })?;
    Ok(out.into_inner())
}

// ---------------------------------------------------------------- font

/// Glyph cell: 5 columns × 7 rows; characters advance by 6 columns (one blank between).
pub const GLYPH_W: usize = 5;
/// Glyph height in pixels (rows).
pub const GLYPH_H: usize = 7;
const ADVANCE: usize = GLYPH_W + 1;

/// Printable ASCII, ' ' (0x20) to '~' (0x7E), one glyph each. A glyph is 7 rows, top first;
/// a row's low 5 bits are its pixels, bit 4 (0x10) the leftmost. E.g. '1' is
///   ..#..  0x04
///   .##..  0x0C
///   ..#..  0x04  (×4)
///   .###.  0x0E
#[rustfmt::skip]
const FONT: [[u8; GLYPH_H]; 95] = [
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // space
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04], // !
    [0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00], // "
    [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A], // #
    [0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04], // $
    [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03], // %
    [0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D], // &
    [0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00], // '
    [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02], // (
    [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08], // )
    [0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00], // *
    [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00], // +
    [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08], // ,
    [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00], // -
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C], // .
    [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00], // /
    [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E], // 0
    [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E], // 1
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F], // 2
    [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E], // 3
    [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02], // 4
    [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E], // 5
    [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E], // 6
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08], // 7
    [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E], // 8
    [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C], // 9
    [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00], // :
    [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08], // ;
    [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02], // <
    [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00], // =
    [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08], // >
    [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04], // ?
    [0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E], // @
    [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], // A
    [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E], // B
    [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E], // C
    [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C], // D
    [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F], // E
    [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10], // F
    [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F], // G
    [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11], // H
    [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], // I
    [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C], // J
    [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], // K
    [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F], // L
    [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11], // M
    [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11], // N
    [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], // O
    [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10], // P
    [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D], // Q
    [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11], // R
    [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E], // S
    [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], // T
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E], // U
    [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04], // V
    [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A], // W
    [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11], // X
    [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04], // Y
    [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F], // Z
    [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E], // [
    [0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00], // \
    [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E], // ]
    [0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00], // ^
    [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F], // _
    [0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00], // `
    [0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F], // a
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E], // b
    [0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E], // c
    [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F], // d
    [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E], // e
    [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08], // f
    [0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E], // g
    [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11], // h
    [0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E], // i
    [0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C], // j
    [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12], // k
    [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E], // l
    [0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11], // m
    [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11], // n
    [0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E], // o
    [0x1E, 0x11, 0x11, 0x11, 0x1E, 0x10, 0x10], // p
    [0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x01], // q
    [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10], // r
    [0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E], // s
    [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06], // t
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D], // u
    [0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04], // v
    [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A], // w
    [0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11], // x
    [0x11, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E], // y
    [0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F], // z
    [0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02], // {
    [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04], // |
    [0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08], // }
    [0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00], // ~
];

/// Lowercase letters whose glyphs hang below the baseline: their 7 rows are drawn this many
/// rows lower (x-height rows 0–4, descender rows 5–6), so a line of text is 9 rows tall.
const DESCENDERS: &str = "gpqy";
const DESCENT: usize = 2;

/// Rows glyph `c` is drawn below the top of its line.
fn glyph_drop(c: char) -> usize {
    if DESCENDERS.contains(c) {
        DESCENT
    } else {
        0
    }
}

/// Drawn for characters outside printable ASCII (β, é, ...): a hollow box, so a missing
/// glyph is visible rather than silently dropped.
const MISSING_GLYPH: [u8; GLYPH_H] = [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F];

/// The glyph of `c`, or `None` outside printable ASCII.
pub fn glyph(c: char) -> Option<&'static [u8; GLYPH_H]> {
    let code = c as u32;
    (0x20..=0x7E).contains(&code).then(|| &FONT[(code - 0x20) as usize])
}

/// Width in pixels of `text` drawn at `scale` (no trailing blank column).
pub fn text_width(text: &str, scale: usize) -> usize {
    let n = text.chars().count();
    if n == 0 {
        0
    } else {
        (n * ADVANCE - 1) * scale
    }
}

/// Draws `text` with its top-left corner at (x, y), each font pixel a scale×scale block.
/// Pixels off the image are skipped.
fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: usize, color: Rgb<u8>) {
    for (k, c) in text.chars().enumerate() {
        let g = glyph(c).unwrap_or(&MISSING_GLYPH);
        let x0 = x + (k * ADVANCE * scale) as i64;
        let y0 = y + (glyph_drop(c) * scale) as i64;
        for (gy, &row) in g.iter().enumerate() {
            for gx in 0..GLYPH_W {
                if row & (0x10 >> gx) != 0 {
                    let (px, py) = (x0 + (gx * scale) as i64, y0 + (gy * scale) as i64);
                    fill_rect(img, px, py, scale as i64, scale as i64, color);
                }
            }
        }
    }
}

/// Draws `text` rotated 90° counter-clockwise (read bottom to top, as a y-axis label), its
/// bounding box's bottom-left corner at (x, y_bottom). A font pixel at (u, v) in the upright
/// text (u along the text, v down) lands at (x + v, y_bottom − 1 − u): the glyphs' tops face
/// left.
fn draw_text_vertical(img: &mut RgbImage, x: i64, y_bottom: i64, text: &str, scale: usize, color: Rgb<u8>) {
    let s = scale as i64;
    for (k, c) in text.chars().enumerate() {
        let g = glyph(c).unwrap_or(&MISSING_GLYPH);
        for (gy, &row) in g.iter().enumerate() {
            for gx in 0..GLYPH_W {
                if row & (0x10 >> gx) != 0 {
                    let u = ((k * ADVANCE + gx) * scale) as i64;
                    let v = ((gy + glyph_drop(c)) * scale) as i64;
                    fill_rect(img, x + v, y_bottom - u - s, s, s, color);
                }
            }
        }
    }
}

/// `text`, cut to at most `max_chars` characters (ending in ".." when cut).
fn fit_text(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let keep = max_chars.saturating_sub(2);
    text.chars().take(keep).chain("..".chars()).take(max_chars).collect()
}

// ---------------------------------------------------------------- drawing primitives

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
const TEXT: Rgb<u8> = Rgb([30, 30, 30]);
const GRID: Rgb<u8> = Rgb([228, 228, 228]);

/// Line and marker colours: matplotlib's tab10, then ten darker or saturated colours that stay
/// apart from them on white (tab20b's dark row and a few more), for 20 in all.
#[rustfmt::skip]
pub const PALETTE: [[u8; 3]; 20] = [
    [0x1f, 0x77, 0xb4], [0xff, 0x7f, 0x0e], [0x2c, 0xa0, 0x2c], [0xd6, 0x27, 0x28],
    [0x94, 0x67, 0xbd], [0x8c, 0x56, 0x4b], [0xe3, 0x77, 0xc2], [0x7f, 0x7f, 0x7f],
    [0xbc, 0xbd, 0x22], [0x17, 0xbe, 0xcf], [0x00, 0x00, 0x00], [0x39, 0x3b, 0x79],
    [0x63, 0x79, 0x39], [0x8c, 0x6d, 0x31], [0x84, 0x3c, 0x39], [0x7b, 0x41, 0x73],
    [0x6b, 0x6e, 0xcf], [0xe7, 0xba, 0x52], [0x00, 0x80, 0x80], [0xff, 0x00, 0xff],
];

fn palette(i: usize) -> Rgb<u8> {
    Rgb(PALETTE[i % PALETTE.len()])
}

/// Fills the w×h rectangle with top-left (x, y), clipped to the image.
fn fill_rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, color: Rgb<u8>) {
    let (iw, ih) = (img.width() as i64, img.height() as i64);
    for py in y.max(0)..(y + h).min(ih) {
        for px in x.max(0)..(x + w).min(iw) {
            img.put_pixel(px as u32, py as u32, color);
        }
    }
}

/// A rectangle in pixels, edges included: x0 ≤ x ≤ x1, y0 ≤ y ≤ y1.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rect {
    x0: i64,
    y0: i64,
    x1: i64,
    y1: i64,
}

impl Rect {
    fn contains(&self, x: i64, y: i64) -> bool {
        (self.x0..=self.x1).contains(&x) && (self.y0..=self.y1).contains(&y)
    }
}

/// How a line is drawn: colour, width in pixels, the rectangle it is clipped to, and an
/// optional dash pattern (on, off) in one-pixel steps.
#[derive(Clone, Copy, Debug)]
struct Pen {
    color: Rgb<u8>,
    thickness: i64,
    clip: Rect,
    dash: Option<(usize, usize)>,
}

/// Draws the segment (x0, y0)–(x1, y1) as a run of `pen.thickness`-wide square stamps
/// spaced one pixel apart along the longer axis (a DDA), keeping only pixels inside
/// `pen.clip`. `phase` carries the dash position across the segments of one polyline so
/// the pattern does not restart at every data point.
fn draw_segment(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), pen: &Pen, phase: &mut usize) {
    let Pen { color, thickness, clip, dash } = *pen;
    let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as usize;
    let half = (thickness - 1) / 2;
    for s in 0..=steps {
        *phase += 1;
        if let Some((on, off)) = dash {
            if *phase % (on + off) >= on {
                continue;
            }
        }
        let t = s as f64 / steps as f64;
        let (x, y) = ((x0 + t * (x1 - x0)).round() as i64, (y0 + t * (y1 - y0)).round() as i64);
        for py in y - half..y - half + thickness {
            for px in x - half..x - half + thickness {
                if clip.contains(px, py) && px >= 0 && py >= 0 {
                    if let Some(p) = img.get_pixel_mut_checked(px as u32, py as u32) {
                        *p = color;
                    }
                }
            }
        }
    }
}

/// Marker shapes, so classes beyond the 20 colours stay distinguishable.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Marker {
    Disc,
    Square,
    Cross,
}

/// Draws a marker of radius r centred at (cx, cy), clipped to `clip`.
fn draw_marker(img: &mut RgbImage, cx: i64, cy: i64, r: i64, marker: Marker, color: Rgb<u8>, clip: Rect) {
    for dy in -r..=r {
        for dx in -r..=r {
            let on = match marker {
                Marker::Disc => dx * dx + dy * dy <= r * r + r / 2,
                Marker::Square => dx.abs() == r || dy.abs() == r,
                Marker::Cross => dx == dy || dx == -dy,
            };
            let (x, y) = (cx + dx, cy + dy);
            if on && clip.contains(x, y) && x >= 0 && y >= 0 {
                if let Some(p) = img.get_pixel_mut_checked(x as u32, y as u32) {
                    *p = color;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- image grids

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

// ---------------------------------------------------------------- axes

/// A "nice" tick step for covering `span` with about `target` intervals: 1, 2 or 5 × 10ᵏ.
fn nice_step(span: f64, target: usize) -> f64 {
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// A linear axis: [lo, hi] widened to whole tick steps, and the tick values k·step.
/// A zero-width range is opened by ±10% of its value (±1 at 0).
fn linear_ticks(lo: f64, hi: f64, target: usize) -> (f64, f64, Vec<f64>) {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        let d = if lo == 0.0 { 1.0 } else { 0.1 * lo.abs() };
        (lo - d, hi + d)
    };
    let step = nice_step(hi - lo, target);
    let (k0, k1) = ((lo / step).floor() as i64, (hi / step).ceil() as i64);
    // k·step, not repeated addition, so 0.1 + 0.2 drift never reaches a label.
    let ticks = (k0..=k1).map(|k| k as f64 * step).collect();
    (k0 as f64 * step, k1 as f64 * step, ticks)
}

/// Labels for tick values: the fewest digits (fixed notation, or scientific for very large
/// or very small magnitudes) that tell every tick apart and are within 1e-6·step of it.
fn tick_labels(ticks: &[f64]) -> Vec<String> {
    if ticks.is_empty() {
        return Vec::new();
    }
    let step = if ticks.len() > 1 { (ticks[1] - ticks[0]).abs() } else { ticks[0].abs().max(1.0) };
    let biggest = ticks.iter().fold(0.0f64, |m, t| m.max(t.abs()));
    let scientific = biggest >= 1e5 || (biggest > 0.0 && biggest < 1e-3);
    for precision in 0..10 {
        let labels: Vec<String> = ticks
            .iter()
            .map(|&t| {
                // Print a rounding-level residue of 0 as 0, not -0.0 or 1e-17.
                let t = if t.abs() < 1e-9 * step { 0.0 } else { t };
                if scientific && t == 0.0 {
                    "0".to_string()
                } else if scientific {
                    format!("{t:.precision$e}")
                } else {
                    format!("{t:.precision$}")
                }
            })
            .collect();
        let exact =
            labels.iter().zip(ticks).all(|(l, &t)| l.parse::<f64>().is_ok_and(|v| (v - t).abs() <= 1e-6 * step));
        if exact {
            return labels;
        }
    }
    ticks.iter().map(|t| format!("{t:e}")).collect()
}

/// A log10 axis for positive data in [lo, hi]: returns the axis range in log10 units and the
/// ticks as (position in log10 units, label). Spanning at least one decade, the axis runs
/// over whole decades with ticks at 1, 2 and 5 × 10ᵏ (up to two decades) or at powers of
/// ten only (thinned to at most 9 ticks); within less than a decade, on the linear 1/2/5
/// ticks that fall inside, placed at their logarithms.
fn log_ticks(lo: f64, hi: f64) -> (f64, f64, Vec<(f64, String)>) {
    let (l0, l1) = (lo.log10(), hi.log10());
    if l1 - l0 >= 1.0 {
        let (k0, k1) = (l0.floor() as i64, l1.ceil() as i64);
        let every = ((k1 - k0) as usize).div_ceil(8).max(1) as i64;
        let mults: &[u32] = if k1 - k0 <= 2 { &[1, 2, 5] } else { &[1] };
        let mut ticks = Vec::new();
        for k in (k0..=k1).filter(|k| (k - k0) % every == 0) {
            for &m in mults.iter().filter(|&&m| k < k1 || m == 1) {
                // Parsing "2e-2" gives the double nearest 0.02, which `{}` prints back as
                // "0.02"; m·10f64.powi(k) could print as 0.020000000000000004.
                let text = format!("{m}e{k}");
                let v: f64 = text.parse().unwrap_or(f64::NAN);
                let label = if (-3..=4).contains(&k) { format!("{v}") } else { text };
                ticks.push((v.log10(), label));
            }
        }
        return (k0 as f64, k1 as f64, ticks);
    }
    // Less than a decade: pad by 5% of the log span (or ±0.05 decades for a flat line).
    let pad = ((l1 - l0) * 0.05).max(0.02);
    let (a0, a1) = (l0 - pad, l1 + pad);
    let (_, _, lin) = linear_ticks(10f64.powf(a0), 10f64.powf(a1), 5);
    let inside: Vec<f64> = lin.into_iter().filter(|&v| v > 0.0 && (a0..=a1).contains(&v.log10())).collect();
    let labels = tick_labels(&inside);
    let ticks = inside.iter().map(|v| v.log10()).zip(labels).collect();
    (a0, a1, ticks)
}

/// The mapping from data to pixels of one plot: data x in [x_lo, x_hi] → pixel area.x0..x1,
/// data y (log10 y when `log_y`) in [y_lo, y_hi] → pixel area.y1..y0 (flipped).
#[derive(Clone, Debug, PartialEq)]
struct Axes {
    area: Rect,
    x_lo: f64,
    x_hi: f64,
    y_lo: f64,
    y_hi: f64,
    log_y: bool,
}

impl Axes {
    /// Pixel position of data (x, y); None when y ≤ 0 on a log axis or a value is not finite.
    fn to_pixel(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let y = if self.log_y {
            if y <= 0.0 {
                return None;
            }
            y.log10()
        } else {
            y
        };
        if !x.is_finite() || !y.is_finite() {
            return None;
        }
        let a = &self.area;
        let px = a.x0 as f64 + (x - self.x_lo) / (self.x_hi - self.x_lo) * (a.x1 - a.x0) as f64;
        let py = a.y1 as f64 - (y - self.y_lo) / (self.y_hi - self.y_lo) * (a.y1 - a.y0) as f64;
        Some((px, py))
    }
}

/// Size and axis scale of a line or scatter plot.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotOptions {
    /// The PNG's size in pixels, legend included.
    pub width: u32,
    /// The PNG's height in pixels, legend included.
    pub height: u32,
    /// Logarithmic y axis (line plots): points with y ≤ 0 are skipped like NaNs.
    pub log_y: bool,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions { width: 960, height: 600, log_y: false }
    }
}

/// Text is drawn at this scale (10×14-pixel glyphs, a 12-pixel advance).
const TEXT_SCALE: usize = 2;
const CHAR_PX: usize = ADVANCE * TEXT_SCALE;
const LINE_PX: i64 = (GLYPH_H * TEXT_SCALE) as i64;
const LEGEND_ROW: i64 = LINE_PX + 8;

/// A legend entry: the colour, the marker (scatter) or line style (line plot), the text.
struct LegendEntry {
    color: Rgb<u8>,
    marker: Option<Marker>,
    dash: Option<(usize, usize)>,
    name: String,
}

/// Everything around the data of a plot. `x_range` and `y_range` are the finite data
/// extents, (min, max); y in data units, positive when `log_y`.
struct Frame<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    x_range: (f64, f64),
    y_range: (f64, f64),
    log_y: bool,
    legend: &'a [LegendEntry],
}

/// Draws the frame, title, ticks, grid, axis labels and legend, and returns the axes that
/// map data into the plot area.
fn draw_frame(img: &mut RgbImage, frame: &Frame) -> Result<Axes> {
    const WHAT: &str = "plot";
    let Frame { title, x_label, y_label, x_range, y_range, log_y, legend } = *frame;
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x_lo, x_hi, x_ticks) = linear_ticks(x_range.0, x_range.1, 8);
    let x_tick_text = tick_labels(&x_ticks);
    let (y_lo, y_hi, y_ticks): (f64, f64, Vec<(f64, String)>) = if log_y {
        log_ticks(y_range.0, y_range.1)
    } else {
        let (lo, hi, t) = linear_ticks(y_range.0, y_range.1, 6);
        let labels = tick_labels(&t);
        (lo, hi, t.into_iter().zip(labels).collect())
    };

    // Layout, outside in: title on top; y label and tick labels on the left; tick labels
    // and x label below; the legend in a column on the right (at most a third of the width).
    let legend_chars = legend.iter().map(|e| e.name.chars().count()).max().unwrap_or(0);
    let legend_max_w = (w / 3).max(0) as usize;
    let legend_chars = legend_chars.min(legend_max_w.saturating_sub(48) / CHAR_PX);
    let legend_w = if legend.is_empty() { 0 } else { (legend_chars * CHAR_PX + 48) as i64 };
    let y_tick_w = y_ticks.iter().map(|(_, l)| text_width(l, TEXT_SCALE)).max().unwrap_or(0) as i64;
    let top = 16 + LINE_PX + 16;
    let left = 12 + LINE_PX + 12 + y_tick_w + 10;
    let bottom = 10 + LINE_PX + 12 + LINE_PX + 12;
    let area = Rect { x0: left, y0: top, x1: w - legend_w - 24, y1: h - bottom };
    if area.x1 - area.x0 < 60 || area.y1 - area.y0 < 60 {
        return invalid(
            WHAT,
            format!("a {w}×{h} canvas leaves no room for the plot area beside its labels and legend; make it larger"),
        );
    }
    let axes = Axes { area, x_lo, x_hi, y_lo, y_hi, log_y: false };

    // Title, centred over the plot area (cut to fit).
    let title = fit_text(title, (w as usize).saturating_sub(20) / CHAR_PX);
    let tx = ((area.x0 + area.x1) / 2 - text_width(&title, TEXT_SCALE) as i64 / 2).max(4);
    draw_text(img, tx, 16, &title, TEXT_SCALE, TEXT);

    // Grid lines and ticks. The axes are linear in their own units here: for log y the
    // positions are already log10 values.
    for (t, label) in x_ticks.iter().zip(&x_tick_text) {
        if let Some((px, _)) = axes.to_pixel(*t, y_lo) {
            let px = px.round() as i64;
            fill_rect(img, px, area.y0, 1, area.y1 - area.y0, GRID);
            fill_rect(img, px, area.y1, 1, 6, BLACK);
            let lw = text_width(label, TEXT_SCALE) as i64;
            draw_text(img, px - lw / 2, area.y1 + 10, label, TEXT_SCALE, TEXT);
        }
    }
    for (t, label) in &y_ticks {
        if let Some((_, py)) = axes.to_pixel(x_lo, *t) {
            let py = py.round() as i64;
            fill_rect(img, area.x0, py, area.x1 - area.x0, 1, GRID);
            fill_rect(img, area.x0 - 6, py, 6, 1, BLACK);
            let lw = text_width(label, TEXT_SCALE) as i64;
            draw_text(img, area.x0 - 10 - lw, py - LINE_PX / 2, label, TEXT_SCALE, TEXT);
        }
    }
    // The frame.
    fill_rect(img, area.x0, area.y0, area.x1 - area.x0 + 1, 1, BLACK);
    fill_rect(img, area.x0, area.y1, area.x1 - area.x0 + 1, 1, BLACK);
    fill_rect(img, area.x0, area.y0, 1, area.y1 - area.y0 + 1, BLACK);
    fill_rect(img, area.x1, area.y0, 1, area.y1 - area.y0 + 1, BLACK);

    // Axis labels: x centred under the tick labels, y rotated and centred on the left.
    let x_label = fit_text(x_label, ((area.x1 - area.x0) as usize) / CHAR_PX);
    let lx = (area.x0 + area.x1) / 2 - text_width(&x_label, TEXT_SCALE) as i64 / 2;
    draw_text(img, lx, area.y1 + 10 + LINE_PX + 12, &x_label, TEXT_SCALE, TEXT);
    let y_label = fit_text(y_label, ((area.y1 - area.y0) as usize) / CHAR_PX);
    let ly = (area.y0 + area.y1) / 2 + text_width(&y_label, TEXT_SCALE) as i64 / 2;
    draw_text_vertical(img, 12, ly, &y_label, TEXT_SCALE, TEXT);

    // Legend: one row per entry, a swatch then the name; rows that do not fit are counted.
    let (gx, mut gy) = (area.x1 + 16, area.y0);
    let fit_rows = ((area.y1 - area.y0) / LEGEND_ROW).max(1) as usize;
    for (i, e) in legend.iter().enumerate() {
        if i + 1 == fit_rows && legend.len() > fit_rows {
            let more = format!("+{} more", legend.len() - i);
            draw_text(img, gx, gy, &fit_text(&more, legend_chars.max(4)), TEXT_SCALE, TEXT);
            break;
        }
        let mid = gy + LINE_PX / 2;
        let full = Rect { x0: 0, y0: 0, x1: w - 1, y1: h - 1 };
        match e.marker {
            Some(m) => draw_marker(img, gx + 12, mid, 5, m, e.color, full),
            None => {
                let mut phase = 0;
                let pen = Pen { color: e.color, thickness: 3, clip: full, dash: e.dash.map(|(a, b)| (a / 2, b / 2)) };
                let (a, b) = ((gx as f64, mid as f64), (gx as f64 + 28.0, mid as f64));
                draw_segment(img, a, b, &pen, &mut phase);
            }
        }
        draw_text(img, gx + 38, gy, &fit_text(&e.name, legend_chars), TEXT_SCALE, TEXT);
        gy += LEGEND_ROW;
    }
    Ok(Axes { log_y, ..axes })
}

/// Min and max of the finite values (and, with `positive`, only those > 0); None if none.
fn finite_range(values: impl Iterator<Item = f64>, positive: bool) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite() && (!positive || *v > 0.0)).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

fn blank_canvas(what: &'static str, opts: &PlotOptions) -> Result<RgbImage> {
    if opts.width > 1 << 14 || opts.height > 1 << 14 {
        return invalid(what, format!("a {}×{} canvas is too large", opts.width, opts.height));
    }
    Ok(RgbImage::from_pixel(opts.width, opts.height, WHITE))
}

// ---------------------------------------------------------------- line plots

/// Line style of series i: the 20 colours solid, then the same colours dashed, then dotted.
fn series_style(i: usize) -> (Rgb<u8>, Option<(usize, usize)>) {
    let dash = match i / PALETTE.len() {
        0 => None,
        1 => Some((10, 6)),
        _ => Some((2, 4)),
    };
    (palette(i), dash)
}

/// Renders a line plot; see [`save_line_plot_with`]. Returns the image.
pub fn render_line_plot(
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    x_label: &str,
    y_label: &str,
    opts: &PlotOptions,
) -> Result<RgbImage> {
    render_line_plot_with_axes(title, series, x_label, y_label, opts).map(|(img, _)| img)
}

fn render_line_plot_with_axes(
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    x_label: &str,
    y_label: &str,
    opts: &PlotOptions,
) -> Result<(RgbImage, Axes)> {
    const WHAT: &str = "line plot";
    if series.is_empty() {
        return invalid(WHAT, format!("'{title}': no series to draw"));
    }
    // A point is drawable when x and y are finite (and y > 0 on a log axis).
    let drawable = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!opts.log_y || y > 0.0);
    let pts = || series.iter().flat_map(|(_, p)| p.iter().filter(|p| drawable(p)));
    let (Some(xr), Some(yr)) = (finite_range(pts().map(|p| p.0), false), finite_range(pts().map(|p| p.1), opts.log_y))
    else {
        return invalid(
            WHAT,
            format!(
                "'{title}': none of the {} series has a drawable point (all empty, NaN/inf{})",
                series.len(),
                if opts.log_y { ", or ≤ 0 on the log axis" } else { "" }
            ),
        );
    };
    let legend: Vec<LegendEntry> = series
        .iter()
        .enumerate()
        .map(|(i, (name, p))| {
            let (color, dash) = series_style(i);
            let name = if p.iter().any(drawable) { name.clone() } else { format!("{name} (no data)") };
            LegendEntry { color, marker: None, dash, name }
        })
        .collect();
    let mut img = blank_canvas(WHAT, opts)?;
    let frame = Frame { title, x_label, y_label, x_range: xr, y_range: yr, log_y: opts.log_y, legend: &legend };
    let axes = draw_frame(&mut img, &frame)?;
    for (i, (_, points)) in series.iter().enumerate() {
        let (color, dash) = series_style(i);
        let n_drawable = points.iter().filter(|p| drawable(p)).count();
        let mut prev: Option<(f64, f64)> = None;
        let mut phase = 0;
        for &(x, y) in points {
            // A skipped point breaks the line: no segment bridges a NaN.
            let Some(p) = axes.to_pixel(x, y) else {
                prev = None;
                continue;
            };
            if let Some(q) = prev {
                let pen = Pen { color, thickness: 2, clip: axes.area, dash };
                draw_segment(&mut img, q, p, &pen, &mut phase);
            }
            // Markers when the points are few enough to tell apart (epochs of one run).
            if n_drawable <= 60 || prev.is_none() {
                draw_marker(&mut img, p.0.round() as i64, p.1.round() as i64, 3, Marker::Disc, color, axes.area);
            }
            prev = Some(p);
        }
    }
    Ok((img, axes))
}

/// Saves a line plot of `series` (name, [(x, y)]), each in its own colour (20 colours, then
/// dashed and dotted repeats), with ticks at 1/2/5×10ᵏ, a title, axis labels and a legend
/// on the right. Points are joined in the order given; points with a non-finite coordinate
/// (or y ≤ 0 with `opts.log_y`) are skipped and break the line; a series with no drawable
/// point is listed in the legend as "(no data)". Errors when `series` is empty or no series
/// has a drawable point, and when the canvas is too small for its labels.
pub fn save_line_plot_with(
    path: &Path,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    x_label: &str,
    y_label: &str,
    opts: &PlotOptions,
) -> Result<()> {
    let img = render_line_plot(title, series, x_label, y_label, opts)?;
    save_png_atomic(&DynamicImage::ImageRgb8(img), path)
}

/// [`save_line_plot_with`] on a 960×600 canvas with a linear y axis.
pub fn save_line_plot(
    path: &Path,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    x_label: &str,
    y_label: &str,
) -> Result<()> {
    save_line_plot_with(path, title, series, x_label, y_label, &PlotOptions::default())
}

// ---------------------------------------------------------------- scatter plots

/// Marker of class k: 20 colours as discs, then hollow squares, then crosses.
fn class_style(k: usize) -> (Rgb<u8>, Marker) {
    let marker = match k / PALETTE.len() {
        0 => Marker::Disc,
        1 => Marker::Square,
        _ => Marker::Cross,
    };
    (palette(k), marker)
}

/// Renders a scatter plot; see [`save_scatter_plot_with`].
pub fn render_scatter_plot(
    title: &str,
    points: &[(f64, f64)],
    labels: &[usize],
    class_names: &[String],
    opts: &PlotOptions,
) -> Result<RgbImage> {
    const WHAT: &str = "scatter plot";
    if points.len() != labels.len() {
        return invalid(WHAT, format!("'{title}': {} points but {} labels", points.len(), labels.len()));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= class_names.len()) {
        return invalid(WHAT, format!("'{title}': labels[{i}] = {l} but only {} class names", class_names.len()));
    }
    let ok = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
    let (Some(xr), Some(yr)) = (
        finite_range(points.iter().filter(|p| ok(p)).map(|p| p.0), false),
        finite_range(points.iter().filter(|p| ok(p)).map(|p| p.1), false),
    ) else {
        return invalid(WHAT, format!("'{title}': no finite points among {}", points.len()));
    };
    let legend: Vec<LegendEntry> = class_names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let (color, marker) = class_style(k);
            LegendEntry { color, marker: Some(marker), dash: None, name: name.clone() }
        })
        .collect();
    let mut img = blank_canvas(WHAT, &PlotOptions { log_y: false, ..opts.clone() })?;
    let frame = Frame { title, x_label: "", y_label: "", x_range: xr, y_range: yr, log_y: false, legend: &legend };
    let axes = draw_frame(&mut img, &frame)?;
    // Draw in a fixed shuffled order: drawing class by class would bury the early classes
    // under the later ones wherever they overlap.
    let mut order: Vec<usize> = (0..points.len()).collect();
    tensor::Rng::new(0).shuffle(&mut order);
    let radius = if points.len() <= 2000 { 3 } else { 2 };
    for i in order {
        let (x, y) = points[i];
        if let Some((px, py)) = axes.to_pixel(x, y) {
            let (color, marker) = class_style(labels[i]);
            draw_marker(&mut img, px.round() as i64, py.round() as i64, radius, marker, color, axes.area);
        }
    }
    Ok(img)
}

/// Saves a scatter plot of `points` coloured by `labels` (each < class_names.len()), with a
/// legend of the class names: 20 colours as discs, then hollow squares and crosses for
/// classes 20–39 and 40+. Points with a non-finite coordinate are skipped. The PNG is
/// exactly `opts.width` × `opts.height`.
pub fn save_scatter_plot_with(
    path: &Path,
    title: &str,
    points: &[(f64, f64)],
    labels: &[usize],
    class_names: &[String],
    opts: &PlotOptions,
) -> Result<()> {
    let img = render_scatter_plot(title, points, labels, class_names, opts)?;
    save_png_atomic(&DynamicImage::ImageRgb8(img), path)
}

/// [`save_scatter_plot_with`] on a 960×600 canvas.
pub fn save_scatter_plot(
    path: &Path,
    title: &str,
    points: &[(f64, f64)],
    labels: &[usize],
    class_names: &[String],
) -> Result<()> {
    save_scatter_plot_with(path, title, points, labels, class_names, &PlotOptions::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir for one test's files.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vae-plot-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn grid_places_known_images_at_the_right_pixels() {
        // Three 2×2 one-channel images whose values are exact in u8: image k, pixel p holds
        // (40k + 10p)/255. cols 2, padding 1, scale 1 →
        // 2·2 + 3·1 = 7 wide, 2 rows → 7 tall; the empty 4th cell stays padding.
        let images: Vec<f32> = (0..3).flat_map(|k| (0..4).map(move |p| (40 * k + 10 * p) as f32 / 255.0)).collect();
        let opts = GridOptions { cols: 2, padding: 1, scale: Some(1), pad_value: 1.0, normalize: false };
        let dir = scratch("grid");
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
        let dir = scratch("rows");
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

    /// Every character the plots emit themselves (tick labels: digits, '.', '-', 'e', '+'
    /// of scientific notation; legend suffixes) and the printable ASCII the callers' titles
    /// and names use.
    const USED: &str = "0123456789.-+e: ()=,_/%'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

    #[test]
    fn font_has_a_distinct_glyph_for_every_used_character() {
        for c in USED.chars() {
            let g = glyph(c).unwrap_or_else(|| panic!("no glyph for {c:?}"));
            assert!(c == ' ' || g.iter().any(|&r| r != 0), "{c:?} is blank");
            assert!(g.iter().all(|&r| r < 0x20), "{c:?} is wider than 5 columns");
        }
        // No two printable characters share a bitmap (catches a copy-pasted row).
        for (a, ga) in FONT.iter().enumerate() {
            for (b, gb) in FONT.iter().enumerate().skip(a + 1) {
                assert_ne!(ga, gb, "{:?} and {:?}", (a + 32) as u8 as char, (b + 32) as u8 as char);
            }
        }
        assert!(glyph('β').is_none() && glyph('\n').is_none());
    }

    #[test]
    fn text_renders_the_glyph_bitmap() {
        // "1E" at scale 1 on a 12×7 canvas: pixel (x, y) is on iff the glyph row has that bit.
        let mut img = RgbImage::from_pixel(12, 7, WHITE);
        draw_text(&mut img, 0, 0, "1E", 1, BLACK);
        for (k, c) in ['1', 'E'].into_iter().enumerate() {
            let g = glyph(c).unwrap();
            for (y, row) in g.iter().enumerate() {
                for x in 0..5 {
                    let on = row & (0x10 >> x) != 0;
                    let px = img.get_pixel((k * 6 + x) as u32, y as u32);
                    assert_eq!(*px == BLACK, on, "{c:?} at ({x}, {y})");
                }
            }
        }
        // Descenders hang 2 rows lower: 'p' drawn at y = 0 starts on row 2.
        let mut img = RgbImage::from_pixel(5, 9, WHITE);
        draw_text(&mut img, 0, 0, "p", 1, BLACK);
        assert!((0..5).all(|x| *img.get_pixel(x, 0) == WHITE && *img.get_pixel(x, 1) == WHITE));
        assert_eq!(*img.get_pixel(0, 8), BLACK, "stem reaches row 8");
        // A missing glyph draws the box rather than nothing.
        let mut img = RgbImage::from_pixel(5, 7, WHITE);
        draw_text(&mut img, 0, 0, "β", 1, BLACK);
        assert_eq!(*img.get_pixel(0, 3), BLACK);
        assert_eq!(text_width("abc", 2), (3 * 6 - 1) * 2);
    }

    #[test]
    fn ticks_use_1_2_5_steps_and_exact_labels() {
        let (lo, hi, t) = linear_ticks(0.03, 0.97, 5);
        assert_eq!((lo, hi), (0.0, 1.0));
        assert_eq!(tick_labels(&t), ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let (lo, hi, t) = linear_ticks(1234.0, 5678.0, 6);
        assert_eq!((lo, hi, t.len()), (1000.0, 6000.0, 6));
        assert_eq!(tick_labels(&t)[0], "1000");
        // A flat series still gets a range around its value.
        let (lo, hi, _) = linear_ticks(5.0, 5.0, 6);
        assert!(lo < 5.0 && hi > 5.0);
        // Large magnitudes switch to scientific notation with enough digits.
        let labels = tick_labels(&[0.0, 5e5, 1e6, 1.5e6]);
        assert_eq!(labels, ["0", "5.0e5", "1.0e6", "1.5e6"]);
        // Log axis: decades over ≥ 1 decade, in-range 1/2/5 ticks under one.
        let (a0, a1, t) = log_ticks(0.004, 30.0);
        assert_eq!((a0, a1), (-3.0, 2.0));
        let labels: Vec<&str> = t.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["0.001", "0.01", "0.1", "1", "10", "100"]);
        let (_, _, t) = log_ticks(15.0, 300.0);
        let labels: Vec<&str> = t.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["10", "20", "50", "100", "200", "500", "1000"]);
        assert!((t[1].0 - 2f64.log10() - 1.0).abs() < 1e-15);
        let (_, _, t) = log_ticks(110.0, 190.0);
        assert!(t.len() >= 2 && t.iter().all(|(p, _)| (2.0..2.3).contains(p)), "{t:?}");
    }

    fn sample_series() -> Vec<(String, Vec<(f64, f64)>)> {
        vec![
            ("train loss".into(), (0..20).map(|e| (e as f64, 100.0 / (1.0 + e as f64))).collect()),
            ("val loss".into(), (0..20).map(|e| (e as f64, 110.0 / (1.0 + e as f64) + 3.0)).collect()),
        ]
    }

    #[test]
    fn line_plot_draws_each_series_where_its_data_is() {
        let series = sample_series();
        let opts = PlotOptions::default();
        let (img, axes) = render_line_plot_with_axes("loss", &series, "epoch", "loss", &opts).unwrap();
        assert_eq!(img.dimensions(), (960, 600));
        let a = axes.area;
        for (i, (_, pts)) in series.iter().enumerate() {
            let color = series_style(i).0;
            // Both series' colours appear inside the plot area …
            let inside = (a.y0..=a.y1)
                .flat_map(|y| (a.x0..=a.x1).map(move |x| (x, y)))
                .filter(|&(x, y)| *img.get_pixel(x as u32, y as u32) == color)
                .count();
            assert!(inside > 200, "series {i}: {inside} pixels");
            // … at the pixel of each data point (a 3-px marker is drawn there).
            for &(x, y) in pts {
                let (px, py) = axes.to_pixel(x, y).unwrap();
                assert_eq!(*img.get_pixel(px.round() as u32, py.round() as u32), color, "{x}, {y}");
            }
        }
        // The y axis covers the data: 100 (train, epoch 0) and 100/20 = 5 lie inside it.
        assert!(axes.y_lo <= 5.0 && axes.y_hi >= 113.0, "{axes:?}");
        // Outside the plot area, to the left of the y labels, the canvas stays white.
        assert_eq!(*img.get_pixel(2, 300), WHITE);
    }

    #[test]
    fn line_plot_skips_nan_and_fails_cleanly_without_data() {
        let mut series = sample_series();
        series[0].1[5].1 = f64::NAN;
        series.push(("diverged".into(), vec![(0.0, f64::INFINITY), (1.0, f64::NAN)]));
        let opts = PlotOptions::default();
        assert!(render_line_plot("t", &series, "x", "y", &opts).is_ok(), "NaN points are skipped");

        let err = render_line_plot("t", &[], "x", "y", &opts).unwrap_err();
        assert!(err.to_string().contains("no series"), "{err}");
        let nan_only = vec![("a".to_string(), vec![(0.0, f64::NAN)]), ("b".to_string(), vec![])];
        let err = render_line_plot("t", &nan_only, "x", "y", &opts).unwrap_err();
        assert!(err.to_string().contains("no drawable point") || err.to_string().contains("none of"), "{err}");
        // Log-y drops y ≤ 0; a series of only zeros is then undrawable.
        let log = PlotOptions { log_y: true, ..opts.clone() };
        assert!(render_line_plot("t", &[("z".into(), vec![(0.0, 0.0), (1.0, -1.0)])], "x", "y", &log).is_err());
        assert!(render_line_plot("t", &sample_series(), "x", "y", &log).is_ok());
        let tiny = PlotOptions { width: 80, height: 60, log_y: false };
        assert!(render_line_plot("t", &sample_series(), "x", "y", &tiny).is_err());
    }

    #[test]
    fn scatter_writes_a_png_of_the_requested_size_in_class_colours() {
        let dir = scratch("scatter");
        let path = dir.join("s.png");
        let points: Vec<(f64, f64)> = (0..30).map(|i| ((i % 10) as f64, (i / 10) as f64)).collect();
        let labels: Vec<usize> = (0..30).map(|i| i / 10).collect();
        let names: Vec<String> = ["zero", "one", "two"].map(String::from).to_vec();
        let opts = PlotOptions { width: 640, height: 480, log_y: false };
        save_scatter_plot_with(&path, "t-SNE", &points, &labels, &names, &opts).unwrap();
        let img = image::open(&path).unwrap().into_rgb8();
        assert_eq!(img.dimensions(), (640, 480));
        for k in 0..3 {
            let c = class_style(k).0;
            assert!(img.pixels().filter(|p| **p == c).count() > 100, "class {k}");
        }
        assert!(render_scatter_plot("t", &points, &labels[1..], &names, &opts).is_err());
        let bad: Vec<usize> = labels.iter().map(|&l| l + 1).collect();
        let err = render_scatter_plot("t", &points, &bad, &names, &opts).unwrap_err();
        assert!(err.to_string().contains("labels[20] = 3"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
