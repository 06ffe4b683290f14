//! PNG figures: image grids (samples, originals over reconstructions, feature maps), which
//! are ours to compose (`grid`), and charts (loss curves of a run, validation losses of a
//! sweep, t-SNE scatter plots coloured by label), drawn with the `plotters` crate (`charts`).
//!
//! Each figure has a short form with defaults (`save_image_grid`, `save_rows`,
//! `save_line_plot`, `save_scatter_plot`) and a `_with` form taking [`GridOptions`] or
//! [`PlotOptions`]; `render_*` return the image without writing it.
//!
//! Everything renders into an `image::RgbImage` (or `GrayImage` for one-channel grids) and
//! is written atomically: to `<path>.tmp` first, then renamed over `<path>`, so a crash
//! or a reader polling the file never sees half a PNG. Parent directories must exist.

mod charts;
mod grid;

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat};

pub use charts::{
    render_line_plot, render_scatter_plot, save_line_plot, save_line_plot_with, save_scatter_plot,
    save_scatter_plot_with, PlotOptions,
};
pub use grid::{image_grid, save_image_grid, save_image_grid_with, save_rows, save_rows_with, GridOptions};

/// What can go wrong while drawing or saving a figure. Messages name the file or the bad
/// argument.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// An argument with a wrong shape or value (no series, mismatched lengths, a label
    /// without a class name, a canvas too small for its axes, ...).
    #[error("{what}: {msg}")]
    Invalid {
        /// The function or argument that rejected it.
        what: &'static str,
        /// What is wrong and what was expected.
        msg: String,
    },
    /// Writing or renaming the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The PNG encoder failed.
    #[error("{}: encoding PNG: {source}", path.display())]
    Image {
        /// The file being written.
        path: PathBuf,
        /// The encoder's error.
        source: image::ImageError,
    },
}

/// Result with [`PlotError`].
pub type Result<T> = std::result::Result<T, PlotError>;

fn invalid<T>(what: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(PlotError::Invalid { what, msg: msg.into() })
}

/// Writes `img` as a PNG file atomically (`nn::atomic_file`: a crash leaves the old picture or
/// the new one).
pub fn save_png_atomic(img: &DynamicImage, path: &Path) -> Result<()> {
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
