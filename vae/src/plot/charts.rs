//! Line plots (loss curves, sweeps) and scatter plots (t-SNE), drawn with `plotters` into an
//! in-memory RGB buffer. Axes, ticks, grid lines, labels and legends are plotters'; the text is
//! DejaVu Sans, embedded in the binary (`vae/assets/DejaVuSans.ttf`), so a figure renders the
//! same on a machine without fonts. What stays here is what our data needs: skipping NaN and
//! infinite points (a diverged run still gets its curve), breaking lines at them, a log-y axis
//! that drops y ≤ 0, and errors that name the figure instead of a blank PNG.

use std::path::Path;
use std::sync::Once;

use image::{DynamicImage, RgbImage};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::{invalid, save_png_atomic, PlotError, Result};

/// Size and axis scale of a line or scatter plot.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotOptions {
    /// The PNG's width in pixels.
    pub width: u32,
    /// The PNG's height in pixels.
    pub height: u32,
    /// Logarithmic y axis (line plots): points with y ≤ 0 are skipped like NaNs.
    pub log_y: bool,
    /// Ticks and labels on the x axis at whole numbers only (epochs), never at 1.5.
    pub integer_x: bool,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions { width: 960, height: 600, log_y: false, integer_x: false }
    }
}

/// The smallest canvas that fits a title, tick labels, axis labels and a plot area.
const MIN_SIZE: (u32, u32) = (240, 180);

/// The font family every text of a chart uses.
const FONT: &str = "sans-serif";

/// Registers the embedded font once per process.
fn font() -> &'static str {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        // The bytes are a valid TrueType file, checked by the tests; a failure would only
        // leave text undrawn, and the drawing calls below then report it.
        let _ = register_font(FONT, FontStyle::Normal, include_bytes!("../../assets/DejaVuSans.ttf"));
    });
    FONT
}

/// Line and marker colours: matplotlib's tab10, then ten darker or saturated colours that stay
/// apart from them on white, for 20 in all.
#[rustfmt::skip]
const PALETTE: [[u8; 3]; 20] = [
    [0x1f, 0x77, 0xb4], [0xff, 0x7f, 0x0e], [0x2c, 0xa0, 0x2c], [0xd6, 0x27, 0x28],
    [0x94, 0x67, 0xbd], [0x8c, 0x56, 0x4b], [0xe3, 0x77, 0xc2], [0x7f, 0x7f, 0x7f],
    [0xbc, 0xbd, 0x22], [0x17, 0xbe, 0xcf], [0x00, 0x00, 0x00], [0x39, 0x3b, 0x79],
    [0x63, 0x79, 0x39], [0x8c, 0x6d, 0x31], [0x84, 0x3c, 0x39], [0x7b, 0x41, 0x73],
    [0x6b, 0x6e, 0xcf], [0xe7, 0xba, 0x52], [0x00, 0x80, 0x80], [0xff, 0x00, 0xff],
];

/// Colour number `i`, cycling through the palette.
fn palette(i: usize) -> RGBColor {
    let [r, g, b] = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

/// A plotters error as ours, naming the figure.
fn drawing_error(what: &'static str, title: &str, e: impl std::fmt::Display) -> PlotError {
    PlotError::Invalid { what, msg: format!("'{title}': drawing failed: {e}") }
}

/// The finite extent (min, max) of `values`, padded when all are equal; `None` if empty.
fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return None;
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { lo.abs().max(1.0) * 0.5 };
    Some((lo - pad, hi + pad))
}

/// The chart every figure here is: a white canvas of `opts`' size, a title, axes over the data
/// ranges `x` and `y` with label areas of `label_area` (x, y) pixels, whatever `draw` puts
/// on it (mesh and series), and the series' legend in the upper right.
fn chart(
    what: &'static str,
    title: &str,
    opts: &PlotOptions,
    (x, y): ((f64, f64), (f64, f64)),
    label_area: (u32, u32),
    draw: impl FnOnce(&mut Chart<'_, '_>) -> Result<()>,
) -> Result<RgbImage> {
    let (w, h) = (opts.width, opts.height);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (font(), 22))
            .margin(14)
            .x_label_area_size(label_area.0)
            .y_label_area_size(label_area.1)
            .build_cartesian_2d(x.0..x.1, y.0..y.1)
            .map_err(|e| drawing_error(what, title, e))?;
        draw(&mut chart)?;
        chart
            .configure_series_labels()
            .label_font((font(), 14))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| drawing_error(what, title, e))?;
        root.present().map_err(|e| drawing_error(what, title, e))?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| PlotError::Invalid { what, msg: format!("'{title}': buffer size") })
}

/// A chart on the bitmap backend with f64 axes.
type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn check_size(what: &'static str, title: &str, opts: &PlotOptions) -> Result<()> {
    if opts.width < MIN_SIZE.0 || opts.height < MIN_SIZE.1 {
        return invalid(
            what,
            format!(
                "'{title}': a {}×{} canvas is too small for axes and labels (at least {}×{})",
                opts.width, opts.height, MIN_SIZE.0, MIN_SIZE.1
            ),
        );
    }
    Ok(())
}

/// Renders a line plot; see [`save_line_plot_with`]. Returns the image.
pub fn render_line_plot(
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    x_label: &str,
    y_label: &str,
    opts: &PlotOptions,
) -> Result<RgbImage> {
    const WHAT: &str = "line plot";
    check_size(WHAT, title, opts)?;
    if series.is_empty() {
        return invalid(WHAT, format!("'{title}': no series to draw"));
    }
    // A point is drawable when x and y are finite (and y > 0 on a log axis). On a log axis
    // the chart's y is log10(y), labelled with 10^y.
    let drawable = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!opts.log_y || y > 0.0);
    let to_chart = |(x, y): (f64, f64)| (x, if opts.log_y { y.log10() } else { y });
    let points = || series.iter().flat_map(|(_, p)| p.iter().filter(|p| drawable(p)).map(|&p| to_chart(p)));
    let (Some(xr), Some(yr)) = (extent(points().map(|p| p.0)), extent(points().map(|p| p.1))) else {
        return invalid(
            WHAT,
            format!(
                "'{title}': none of the {} series has a drawable point (all empty, NaN/inf{})",
                series.len(),
                if opts.log_y { ", or ≤ 0 on the log axis" } else { "" }
            ),
        );
    };
    chart(WHAT, title, opts, (xr, yr), (44, 72), |chart| {
        let log_label = |v: &f64| tick_text(10f64.powf(*v));
        let plain_label = |v: &f64| format!("{v}");
        // plotters puts ticks at 1, 2 or 5 × 10^k: with no more ticks than whole numbers in
        // the range the step is at least 1, so every tick is a whole number; any that is not
        // (a range under 1) gets no label.
        let whole_label = |v: &f64| if v.fract() == 0.0 { format!("{v}") } else { String::new() };
        let whole_numbers = whole_number_ticks(xr);
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(x_label).y_desc(y_label).label_style((font(), 14)).light_line_style(RGBColor(238, 238, 238));
        if opts.integer_x {
            mesh.x_labels(whole_numbers).x_label_formatter(&whole_label);
        }
        if opts.log_y {
            mesh.y_label_formatter(&log_label);
        } else {
            mesh.y_label_formatter(&plain_label);
        }
        mesh.draw().map_err(|e| drawing_error(WHAT, title, e))?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = palette(i);
            // Runs of drawable points; a skipped point breaks the line.
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for &p in pts {
                match runs.last_mut() {
                    Some(run) if drawable(&p) => run.push(to_chart(p)),
                    Some(run) if !run.is_empty() => runs.push(Vec::new()),
                    _ => {}
                }
            }
            let n_drawable: usize = runs.iter().map(Vec::len).sum();
            let label = if n_drawable > 0 { name.clone() } else { format!("{name} (no data)") };
            let style = color.stroke_width(2);
            chart
                .draw_series(runs.iter().map(|r| PathElement::new(r.clone(), style)))
                .map_err(|e| drawing_error(WHAT, title, e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            // Markers when the points are few enough to tell apart (epochs of one run).
            if n_drawable <= 60 {
                let dots = runs.iter().flatten().map(|&p| Circle::new(p, 3, color.filled()));
                chart.draw_series(dots).map_err(|e| drawing_error(WHAT, title, e))?;
            }
        }
        Ok(())
    })
}

/// How many x ticks to ask plotters for so that each falls on a whole number: no more than the
/// whole numbers in `range` (at most 12).
fn whole_number_ticks(range: (f64, f64)) -> usize {
    (range.1.floor() - range.0.ceil() + 1.0).clamp(1.0, 12.0) as usize
}

/// A log axis's tick value with at least three significant digits and no trailing zeros
/// (`81.4`, `120`, `0.00125`).
fn tick_text(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Saves a line plot of `series` (name, [(x, y)]), each in its own colour, with a title, axis
/// labels, a grid and a legend. Points are joined in the order given; points with a
/// non-finite coordinate (or y ≤ 0 with `opts.log_y`) are skipped and break the line; a series
/// with no drawable point is listed in the legend as "(no data)". Errors when `series` is
/// empty, when no series has a drawable point, and when the canvas is too small for its labels.
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

/// Renders a scatter plot; see [`save_scatter_plot_with`].
pub fn render_scatter_plot(
    title: &str,
    points: &[(f64, f64)],
    labels: &[usize],
    class_names: &[String],
    opts: &PlotOptions,
) -> Result<RgbImage> {
    const WHAT: &str = "scatter plot";
    check_size(WHAT, title, opts)?;
    if points.len() != labels.len() {
        return invalid(WHAT, format!("'{title}': {} points but {} labels", points.len(), labels.len()));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= class_names.len()) {
        return invalid(WHAT, format!("'{title}': labels[{i}] = {l} but only {} class names", class_names.len()));
    }
    let finite = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
    let (Some(xr), Some(yr)) = (
        extent(points.iter().filter(|p| finite(p)).map(|p| p.0)),
        extent(points.iter().filter(|p| finite(p)).map(|p| p.1)),
    ) else {
        return invalid(WHAT, format!("'{title}': no finite points among {}", points.len()));
    };
    let radius = if points.len() <= 2000 { 3 } else { 2 };
    chart(WHAT, title, opts, (xr, yr), (36, 56), |chart| {
        chart
            .configure_mesh()
            .label_style((font(), 14))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(|e| drawing_error(WHAT, title, e))?;
        // One legend entry per class, in class order (the points themselves come after).
        for (k, name) in class_names.iter().enumerate() {
            let color = palette(k);
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(|e| drawing_error(WHAT, title, e))?
                .label(name.as_str())
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
        }
        // Drawn in a fixed shuffled order: class by class would bury the early classes under
        // the later ones wherever they overlap. Classes past the palette's 20 colours get a
        // cross over their disc.
        let mut order: Vec<usize> = (0..points.len()).filter(|&i| finite(&points[i])).collect();
        tensor::Rng::new(0).shuffle(&mut order);
        let discs = order.iter().map(|&i| Circle::new(points[i], radius, palette(labels[i]).filled()));
        chart.draw_series(discs).map_err(|e| drawing_error(WHAT, title, e))?;
        let crosses = order
            .iter()
            .filter(|&&i| labels[i] >= PALETTE.len())
            .map(|&i| Cross::new(points[i], radius + 1, BLACK.stroke_width(1)));
        chart.draw_series(crosses).map_err(|e| drawing_error(WHAT, title, e))?;
        Ok(())
    })
}

/// Saves a scatter plot of `points` coloured by `labels` (each < class_names.len()), with a
/// legend of the class names. Points with a non-finite coordinate are skipped. The PNG is
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

    fn sample_series() -> Vec<(String, Vec<(f64, f64)>)> {
        vec![
            ("train loss".into(), (0..20).map(|e| (e as f64, 100.0 / (1.0 + e as f64))).collect()),
            ("val loss".into(), (0..20).map(|e| (e as f64, 110.0 / (1.0 + e as f64) + 3.0)).collect()),
        ]
    }

    /// Pixels of exactly `color`.
    fn count(img: &RgbImage, color: RGBColor) -> usize {
        img.pixels().filter(|p| p.0 == [color.0, color.1, color.2]).count()
    }

    #[test]
    fn the_embedded_font_draws_text() {
        // A plot whose only ink besides the axes is text: the title must leave dark pixels in
        // the caption band at the top.
        let img = render_line_plot("TITLE TEXT", &sample_series(), "x", "y", &PlotOptions::default()).unwrap();
        let dark_in_caption = (0..40)
            .flat_map(|y| (0..img.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 128);
        assert!(dark_in_caption.count() > 50, "the title left no ink");
    }

    #[test]
    fn line_plot_draws_each_series_in_its_colour() {
        let img = render_line_plot("loss", &sample_series(), "epoch", "loss", &PlotOptions::default()).unwrap();
        assert_eq!(img.dimensions(), (960, 600));
        for i in 0..2 {
            assert!(count(&img, palette(i)) > 200, "series {i}: {} pixels", count(&img, palette(i)));
        }
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
        assert!(err.to_string().contains("none of the 2 series"), "{err}");
        // Log-y drops y ≤ 0; a series of only zeros is then undrawable.
        let log = PlotOptions { log_y: true, ..opts.clone() };
        assert!(render_line_plot("t", &[("z".into(), vec![(0.0, 0.0), (1.0, -1.0)])], "x", "y", &log).is_err());
        assert!(render_line_plot("t", &sample_series(), "x", "y", &log).is_ok());
        let tiny = PlotOptions { width: 80, height: 60, ..PlotOptions::default() };
        let err = render_line_plot("t", &sample_series(), "x", "y", &tiny).unwrap_err();
        assert!(err.to_string().contains("too small"), "{err}");
    }

    #[test]
    fn epoch_axes_get_ticks_at_whole_numbers_only() {
        // The padded x ranges of runs of 1, 2, 3, 8, 10, 37 and 200 epochs.
        for epochs in [1.0, 2.0, 3.0, 8.0, 10.0, 37.0, 200.0] {
            let range = extent([1.0, epochs].into_iter()).unwrap();
            let ticks: Vec<f64> = RangedCoordf64::from(range.0..range.1).key_points(whole_number_ticks(range));
            assert!(!ticks.is_empty(), "{epochs} epochs: no tick");
            assert!(ticks.iter().all(|t| t.fract() == 0.0), "{epochs} epochs: ticks {ticks:?}");
        }
    }

    #[test]
    fn log_axis_ticks_show_three_significant_digits() {
        assert_eq!(tick_text(81.4321), "81.4");
        assert_eq!(tick_text(120.0), "120");
        assert_eq!(tick_text(1234.6), "1235");
        assert_eq!(tick_text(0.001_254), "0.00125");
        assert_eq!(tick_text(2.0), "2");
    }

    #[test]
    fn scatter_renders_at_the_requested_size_in_class_colours() {
        let points: Vec<(f64, f64)> = (0..30).map(|i| ((i % 10) as f64, (i / 10) as f64)).collect();
        let labels: Vec<usize> = (0..30).map(|i| i / 10).collect();
        let names: Vec<String> = ["zero", "one", "two"].map(String::from).to_vec();
        let opts = PlotOptions { width: 640, height: 480, ..PlotOptions::default() };
        let img = render_scatter_plot("t-SNE", &points, &labels, &names, &opts).unwrap();
        assert_eq!(img.dimensions(), (640, 480));
        for k in 0..3 {
            assert!(count(&img, palette(k)) > 100, "class {k}: {} pixels", count(&img, palette(k)));
        }
        assert!(render_scatter_plot("t", &points, &labels[1..], &names, &opts).is_err());
        let bad: Vec<usize> = labels.iter().map(|&l| l + 1).collect();
        let err = render_scatter_plot("t", &points, &bad, &names, &opts).unwrap_err();
        assert!(err.to_string().contains("labels[20] = 3"), "{err}");
    }
}
