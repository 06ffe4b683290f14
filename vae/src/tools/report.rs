//! `report.html`: one self-contained page per run folder — its configuration, the metrics
//! table per epoch, the loss curves, the reconstruction and sample grids of every epoch, and
//! `eval`'s pictures and metrics when `eval` has run. Images are inlined as base64 `data:`
//! URIs, so the file opens offline, from anywhere, and can be sent on its own.
//!
//! [`write_report`] is what `train` calls at the end of a run and what the `report` binary
//! runs; [`write_sweep_report`] links the runs of a `sweep` grid from one page.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use image::{DynamicImage, RgbImage};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::plot::{png_bytes, render_line_plot, PlotOptions};
use crate::runs::{
    metrics_columns, read_metrics, EpochMetrics, CONFIG_FILE, EVAL_DIR, EVAL_METRICS_FILE, METRICS_FILE,
};

/// The report's file name inside the run folder.
pub const REPORT_FILE: &str = "report.html";

/// The metrics.csv columns drawn as loss curves (the ones `train`'s loss.png shows), each with
/// its legend name.
const LOSS_COLUMNS: [(&str, &str); 4] =
    [("train_loss", "train loss"), ("val_loss", "val loss"), ("val_recon", "val recon"), ("val_kl", "val kl")];

/// `eval`'s pictures in the order the page shows them (any other PNG of the folder follows).
const EVAL_PICTURES: [(&str, &str); 9] = [
    ("recon.png", "test images (top) and their reconstructions"),
    ("samples.png", "samples from N(0, I)"),
    ("traversal.png", "latent traversals, one row per dimension, most active first, ±3σ"),
    ("interpolation.png", "interpolations between pairs of test images"),
    ("class_mix.png", "two classes mixed by weight, chosen codes negated first"),
    ("tsne.png", "t-SNE of the test means"),
    ("noise.png", "reconstructions of pure noise"),
    ("denoise.png", "clean, noisy and reconstructed test images"),
    ("ood.png", "out-of-distribution images and their reconstructions"),
];

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Io { path: path.to_path_buf(), source: e }
}

/// The loss curves per epoch from metrics.csv rows; `None` when no row has a loss value.
pub fn loss_plot(rows: &[EpochMetrics]) -> Result<Option<DynamicImage>> {
    let series: Vec<(String, Vec<(f64, f64)>)> = LOSS_COLUMNS
        .iter()
        .filter(|(column, _)| rows.iter().any(|r| r.get(column).is_some()))
        .map(|(column, name)| {
            let points = rows.iter().map(|r| (r.epoch as f64, r.get(column).unwrap_or(f64::NAN))).collect();
            (name.to_string(), points)
        })
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    // The first epoch's mean training loss (its first steps are those of an untrained model)
    // can be many times the rest and flatten every later epoch into a line: a log axis then.
    let log_y = spans_orders_of_magnitude(series.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y)));
    let opts = PlotOptions { width: 900, height: 480, log_y, integer_x: true };
    let title = if log_y { "loss per epoch (log scale)" } else { "loss per epoch" };
    let img: RgbImage = render_line_plot(title, &series, "epoch", "loss", &opts)?;
    Ok(Some(DynamicImage::ImageRgb8(img)))
}

/// The loss plot takes a log axis when its largest value is this many times its smallest.
const LOG_AXIS_RATIO: f64 = 3.0;

/// Whether the finite `values` are all positive and the largest is at least
/// [`LOG_AXIS_RATIO`] times the smallest: a log axis shows them better than a linear one.
fn spans_orders_of_magnitude(values: impl Iterator<Item = f64>) -> bool {
    let (lo, hi) =
        values.filter(|y| y.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
    lo > 0.0 && hi >= LOG_AXIS_RATIO * lo
}

/// A number as a reader wants it: whole numbers as they are, others to 4 decimals without
/// trailing zeros, and magnitudes below 0.001 or from a million up in scientific notation
/// (a learning rate of 1e-5 is `1e-5`, not `0.0000`).
pub fn number_text(value: f64) -> String {
    let trim = |text: &str| -> String {
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text.to_string()
        }
    };
    let magnitude = value.abs();
    if value.fract() == 0.0 && magnitude < 1e15 || !value.is_finite() {
        format!("{value}")
    } else if (1e-3..1e6).contains(&magnitude) {
        trim(&format!("{value:.4}"))
    } else {
        let text = format!("{value:.3e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        format!("{}e{exponent}", trim(mantissa))
    }
}

/// Seconds as hours, minutes and seconds (`2 h 05 min`, `7 min 12 s`, `41.3 s`).
pub fn duration_text(seconds: f64) -> String {
    let whole = seconds.round() as u64;
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if whole < 3600 {
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        format!("{} h {:02} min", whole / 3600, whole / 60 % 60)
    }
}

/// `text` safe inside HTML text and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An `<img>` holding PNG bytes as a data URI, shown at a whole multiple of its size (up to
/// 4×, about 1000 pixels wide) so that a grid of 28- or 64-pixel images can be read; the page's
/// style draws the enlarged pixels as crisp squares (nearest neighbour).
fn inline_png(png: &[u8], alt: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
    let width =
        png_width(png).map(|w| format!(" width=\"{}\"", w * (SHOWN_WIDTH / w.max(1)).clamp(1, 4))).unwrap_or_default();
    format!("<img alt=\"{}\"{width} src=\"data:image/png;base64,{b64}\">", escape_html(alt))
}

/// The width pictures are enlarged towards, in CSS pixels.
const SHOWN_WIDTH: u32 = 1000;

/// The width of the image in `png`, read from its header by the `image` crate (nothing decoded).
fn png_width(png: &[u8]) -> Option<u32> {
    let reader = image::ImageReader::with_format(std::io::Cursor::new(png), image::ImageFormat::Png);
    reader.into_dimensions().ok().map(|(width, _)| width)
}

/// The PNG at `path` as an inline `<img>`, or a note saying it could not be read.
fn inline_file(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => inline_png(&bytes, &path.file_name().unwrap_or_default().to_string_lossy()),
        Err(e) => format!(
            "<p class=\"missing\">{}: {}</p>",
            escape_html(&path.display().to_string()),
            escape_html(&e.to_string())
        ),
    }
}

/// A JSON value as one table cell's text: numbers by [`number_text`], strings bare, lists item by
/// item, objects as JSON.
fn cell_text(value: &Value) -> String {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => number_text(f),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => format!("[{}]", items.iter().map(cell_text).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// [`cell_text`], escaped for HTML.
fn cell(value: &Value) -> String {
    escape_html(&cell_text(value))
}

/// A two-column table of a JSON object's keys and values (in file order for config.json).
fn key_value_table(object: &serde_json::Map<String, Value>) -> String {
    let mut html = String::from("<table class=\"kv\">\n");
    for (k, v) in object {
        let _ = writeln!(html, "<tr><th>{}</th><td>{}</td></tr>", escape_html(k), cell(v));
    }
    html + "</table>\n"
}

/// The metrics.csv rows as a table, one row per epoch; empty cells stay empty.
fn metrics_table(rows: &[EpochMetrics]) -> String {
    if rows.is_empty() {
        return "<p class=\"missing\">metrics.csv has no rows yet.</p>\n".into();
    }
    // Columns that are empty in every row (the β-TCVAE terms of a β-VAE run) are left out.
    let all = metrics_columns();
    let columns: Vec<&str> =
        all.iter().skip(1).map(String::as_str).filter(|n| rows.iter().any(|r| r.get(n).is_some())).collect();
    let mut html = String::from("<div class=\"scroll\"><table class=\"metrics\">\n<tr><th>epoch</th>");
    for c in &columns {
        let _ = write!(html, "<th>{}</th>", escape_html(c));
    }
    html.push_str("</tr>\n");
    for r in rows {
        let _ = write!(html, "<tr><td>{}</td>", r.epoch);
        for c in &columns {
            let v = r.get(c).map(number_text);
            let _ = write!(html, "<td>{}</td>", v.unwrap_or_default());
        }
        html.push_str("</tr>\n");
    }
    html + "</table></div>\n"
}

/// `dir`'s files named `{prefix}NNN.png`, by epoch NNN.
fn epoch_pictures(dir: &Path, prefix: &str) -> Result<Vec<(usize, PathBuf)>> {
    let mut found = vec![];
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
        if let Some(epoch) = name.strip_prefix(prefix).and_then(|r| r.strip_suffix(".png")).and_then(|n| n.parse().ok())
        {
            found.push((epoch, path));
        }
    }
    found.sort();
    Ok(found)
}

const STYLE: &str =
    "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222}\
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}\
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:right}\
table.kv th{text-align:left;background:#f5f5f5}table.kv td{text-align:left;max-width:52em;overflow-wrap:anywhere}table.metrics th{background:#f5f5f5;position:sticky;top:0}table.provenance th{background:#f5f5f5}\
.scroll{max-height:28em;overflow:auto}img{image-rendering:pixelated;max-width:100%;border:1px solid #eee}\
figure{display:inline-block;margin:.4em;vertical-align:top}figcaption{font-size:.8em;color:#555}\
details{margin:.3em 0}summary{cursor:pointer}.missing{color:#a33}.grid{display:flex;flex-wrap:wrap;gap:.5em}";

/// Writes `dir/report.html` for the run folder `dir` (see the module doc) and returns its
/// path. Needs `dir/config.json`; everything else is shown when present. The file is written
/// to a temporary name and renamed, so a reader never sees half a report.
pub fn write_report(dir: &Path) -> Result<PathBuf> {
    let config_path = dir.join(CONFIG_FILE);
    let config_text = std::fs::read_to_string(&config_path).map_err(io(&config_path))?;
    let config: Value = serde_json::from_str(&config_text)
        .map_err(|e| Error::Config(format!("{}: not a train run's config.json: {e}", config_path.display())))?;
    let Value::Object(config) = config else {
        return Err(Error::Config(format!("{}: expected a JSON object", config_path.display())));
    };
    let metrics_path = dir.join(METRICS_FILE);
    if !metrics_path.is_file() {
        return Err(Error::Io {
            path: metrics_path,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file: `train` writes it when a run starts, so this folder is not a whole run folder",
            ),
        });
    }
    let rows = read_metrics(&metrics_path)?;
    let provenance = crate::provenance::read_provenance(dir)?;
    let name = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let name = name.file_name().unwrap_or_default().to_string_lossy().to_string();
    let text = |key: &str| config.get(key).map(cell).unwrap_or_default();

    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}: run report</title>\
         <style>{STYLE}</style></head><body>\n<h1>Run {0}: {1} on {2}, z = {3}</h1>\n",
        escape_html(&name),
        text("arch"),
        text("dataset"),
        text("z_dim")
    );
    let best = crate::runs::best_epoch(&rows);
    let _ = writeln!(
        html,
        "<p>{} epochs in metrics.csv{}, trained for {}{}. Written by <code>report</code>; every picture is inside this file.</p>",
        rows.len(),
        best.map(|b| format!(
            ", best validation loss {} at epoch {}",
            number_text(b.get("val_loss").unwrap_or(f64::NAN)),
            b.epoch
        ))
        .unwrap_or_default(),
        duration_text(rows.iter().map(|r| r.seconds).sum()),
        provenance
            .as_ref()
            .map(|p| format!(", {} parameters ({} trained)", p.parameters, p.trainable_parameters))
            .unwrap_or_default()
    );
    html.push_str(&provenance_table(provenance.as_ref()));

    html.push_str("<h2>Loss</h2>\n");
    match loss_plot(&rows)? {
        Some(img) => html.push_str(&inline_png(&png_bytes(&img)?, "loss per epoch")),
        None => html.push_str("<p class=\"missing\">No losses in metrics.csv yet.</p>"),
    }
    html.push_str("\n<h2>Metrics per epoch</h2>\n");
    html.push_str(&metrics_table(&rows));

    html.push_str(&epoch_pictures_section(dir)?);
    html.push_str(&eval_section(dir)?);

    html.push_str("<h2>Configuration (config.json)</h2>\n");
    html.push_str(&key_value_table(&config));
    html.push_str("</body></html>\n");
    write_atomically(&dir.join(REPORT_FILE), html.as_bytes())
}

/// The reconstructions and samples `train` drew after each epoch, the last epoch open.
fn epoch_pictures_section(dir: &Path) -> Result<String> {
    let mut html = String::new();
    html.push_str("<h2>Reconstructions and samples per epoch</h2>\n");
    let recons = epoch_pictures(dir, "recon_epoch")?;
    let samples = epoch_pictures(dir, "samples_epoch")?;
    let mut epochs: Vec<usize> = recons.iter().chain(&samples).map(|(e, _)| *e).collect();
    epochs.sort_unstable();
    epochs.dedup();
    if epochs.is_empty() {
        html.push_str("<p class=\"missing\">No recon_epochNNN.png or samples_epochNNN.png in the folder.</p>\n");
    }
    for (k, epoch) in epochs.iter().enumerate() {
        // The last epoch open, the others folded: the page stays short for long runs.
        let open = if k + 1 == epochs.len() { " open" } else { "" };
        let _ = write!(html, "<details{open}><summary>epoch {epoch}</summary><div class=\"grid\">");
        for (set, caption) in
            [(&recons, "validation images (top) and reconstructions"), (&samples, "samples from N(0, I)")]
        {
            if let Some((_, path)) = set.iter().find(|(e, _)| e == epoch) {
                let _ = write!(html, "<figure>{}<figcaption>{caption}</figcaption></figure>", inline_file(path));
            }
        }
        html.push_str("</div></details>\n");
    }
    Ok(html)
}

/// What `eval` wrote to the run's `eval/` folder (its metrics and every picture), or how to
/// make it.
fn eval_section(dir: &Path) -> Result<String> {
    let mut html = String::new();
    let eval_dir = dir.join(EVAL_DIR);
    if !eval_dir.is_dir() {
        let _ = writeln!(
            html,
            "<h2>Evaluation</h2>\n<p class=\"missing\">Not evaluated yet: <code>eval --run {}</code> writes the test \
             split's metrics and pictures to its <code>eval/</code> folder; <code>report --run {0}</code> then adds them here.</p>",
            escape_html(&dir.display().to_string())
        );
    }
    if eval_dir.is_dir() {
        html.push_str("<h2>Evaluation (<code>eval</code>, test split)</h2>\n");
        let eval_metrics = eval_dir.join(EVAL_METRICS_FILE);
        if eval_metrics.is_file() {
            let text = std::fs::read_to_string(&eval_metrics).map_err(io(&eval_metrics))?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(m)) => html.push_str(&key_value_table(&m)),
                _ => {
                    return Err(Error::Config(format!("{}: expected a JSON object of metrics", eval_metrics.display())))
                }
            }
        }
        let mut pictures: Vec<(PathBuf, String)> = EVAL_PICTURES
            .iter()
            .map(|(file, caption)| (eval_dir.join(file), caption.to_string()))
            .filter(|(p, _)| p.is_file())
            .collect();
        let mut others: Vec<PathBuf> = std::fs::read_dir(&eval_dir)
            .map_err(io(&eval_dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "png") && !pictures.iter().any(|(q, _)| q == p))
            .collect();
        others.sort();
        pictures.extend(others.into_iter().map(|p| {
            let caption = p.file_name().unwrap_or_default().to_string_lossy().to_string();
            (p, caption)
        }));
        for (path, caption) in &pictures {
            let file = path.file_name().unwrap_or_default().to_string_lossy();
            let _ = writeln!(
                html,
                "<figure>{}<figcaption>{}: {}</figcaption></figure>",
                inline_file(path),
                escape_html(&file),
                escape_html(caption)
            );
        }
    }
    Ok(html)
}

/// Where and with which code each `train` invocation of the run ran (provenance.json).
fn provenance_table(provenance: Option<&crate::provenance::Provenance>) -> String {
    let Some(p) = provenance else {
        return "<p class=\"missing\">No provenance.json: a run from before `train` recorded where it ran.</p>\n"
            .into();
    };
    let mut html = String::from(
        "<table class=\"provenance\"><tr><th>started (UTC)</th><th>from epoch</th><th>device</th><th>CPU</th>\
         <th>CPU kernel</th><th>threads</th><th>commit</th><th>version</th></tr>\n",
    );
    for i in &p.invocations {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape_html(&i.started),
            i.first_epoch,
            escape_html(&i.device),
            escape_html(&i.cpu),
            escape_html(&i.cpu_kernel),
            i.threads,
            escape_html(&i.commit),
            escape_html(&i.version)
        );
    }
    html + "</table>\n"
}

/// Writes `dir/report.html` for a `sweep` folder: the sweep's table (`table.md` as it is), its
/// validation-loss plot, and a link to each run's own report. `runs` are (point name, folder)
/// with folders inside `dir`.
pub fn write_sweep_report(dir: &Path, runs: &[(String, PathBuf)]) -> Result<PathBuf> {
    let name = dir.file_name().unwrap_or_default().to_string_lossy().to_string();
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sweep {0}</title>\
         <style>{STYLE}</style></head><body>\n<h1>Sweep {0}</h1>\n",
        escape_html(&name)
    );
    let plot = dir.join("val_loss.png");
    if plot.is_file() {
        html.push_str(&inline_file(&plot));
    }
    let table = dir.join("table.md");
    if table.is_file() {
        let text = std::fs::read_to_string(&table).map_err(io(&table))?;
        let _ = write!(html, "<h2>Best epoch of each run</h2>\n<pre>{}</pre>\n", escape_html(&text));
    }
    html.push_str("<h2>Runs</h2>\n<ul>\n");
    for (point, folder) in runs {
        let rel = folder.strip_prefix(dir).unwrap_or(folder).join(REPORT_FILE);
        let href: String =
            rel.components().map(|c| c.as_os_str().to_string_lossy().to_string()).collect::<Vec<_>>().join("/");
        let _ = writeln!(html, "<li><a href=\"{}\">{}</a></li>", escape_html(&href), escape_html(point));
    }
    html.push_str("</ul></body></html>\n");
    write_atomically(&dir.join(REPORT_FILE), html.as_bytes())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    crate::runs::write_file(path, bytes)?;
    Ok(path.to_path_buf())
}

/// One value of a run folder: `key` from its `eval/metrics.json` if `eval` wrote it there,
/// else the column `key` of its best epoch (lowest validation loss) in `metrics.csv`, else the
/// number `key` of its `config.json` (e.g. `beta`). Errors name the folder and the key.
pub fn run_value(run: &Path, key: &str) -> Result<f64> {
    let number_in = |path: PathBuf| -> Option<f64> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str::<Value>(&text).ok()?.get(key)?.as_f64()
    };
    if let Some(v) = number_in(run.join(EVAL_DIR).join(EVAL_METRICS_FILE)) {
        return Ok(v);
    }
    let csv = run.join(METRICS_FILE);
    if csv.is_file() {
        let rows = read_metrics(&csv)?;
        if let Some(v) = crate::runs::best_epoch(&rows).and_then(|r| r.get(key)) {
            return Ok(v);
        }
    }
    number_in(run.join(CONFIG_FILE)).ok_or_else(|| {
        Error::Config(format!(
            "{}: no number '{key}' in eval/metrics.json, in metrics.csv's best epoch or in config.json",
            run.display()
        ))
    })
}

/// A line plot of `y` against `x` (both read by [`run_value`]) with one line per series
/// (name, run folders); runs of a series that share an x are averaged into one point. Writes
/// the PNG to `out`.
pub fn write_comparison_plot(series: &[(String, Vec<PathBuf>)], x: &str, y: &str, out: &Path) -> Result<()> {
    let mut lines = Vec::new();
    for (name, runs) in series {
        let mut points: Vec<(f64, f64, usize)> = Vec::new();
        for run in runs {
            let (vx, vy) = (run_value(run, x)?, run_value(run, y)?);
            match points.iter_mut().find(|p| p.0 == vx) {
                Some(p) => {
                    p.1 += vy;
                    p.2 += 1;
                }
                None => points.push((vx, vy, 1)),
            }
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        lines.push((name.clone(), points.iter().map(|&(vx, sum, n)| (vx, sum / n as f64)).collect()));
    }
    let opts = PlotOptions { width: 720, height: 450, ..PlotOptions::default() };
    let img = render_line_plot(&format!("{y} against {x}"), &lines, x, y, &opts)?;
    crate::plot::save_png_atomic(&DynamicImage::ImageRgb8(img), out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_special_characters_are_escaped() {
        assert_eq!(escape_html("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn numbers_are_written_for_what_they_are() {
        assert_eq!(number_text(1e-5), "1e-5", "a learning rate is not 0.0000");
        assert_eq!(number_text(2.5e-4), "2.5e-4");
        assert_eq!(number_text(0.001), "0.001");
        assert_eq!(number_text(0.5), "0.5");
        assert_eq!(number_text(76.361_234), "76.3612");
        assert_eq!(number_text(-3.0), "-3");
        assert_eq!(number_text(1.5e7 + 0.5), "1.5e7");
        assert_eq!(number_text(f64::NAN), "NaN");
    }

    #[test]
    fn the_loss_axis_turns_logarithmic_only_for_positive_values_spread_wide() {
        assert!(spans_orders_of_magnitude([900.0, 150.0, 80.0, f64::NAN].into_iter()));
        assert!(!spans_orders_of_magnitude([190.0, 150.0, 120.0].into_iter()));
        assert!(!spans_orders_of_magnitude([900.0, 80.0, -0.2].into_iter()), "a negative DW-KL has no log");
    }

    #[test]
    fn durations_read_as_hours_minutes_and_seconds() {
        assert_eq!(duration_text(41.26), "41.3 s");
        assert_eq!(duration_text(432.0), "7 min 12 s");
        assert_eq!(duration_text(7512.0), "2 h 05 min");
    }

    #[test]
    fn pictures_are_enlarged_by_a_whole_factor_and_read_their_width_from_the_png() {
        let png = |w: u32| png_bytes(&DynamicImage::ImageRgb8(RgbImage::new(w, 8))).unwrap();
        assert_eq!(png_width(&png(250)), Some(250));
        assert!(inline_png(&png(250), "a").contains(" width=\"1000\""), "250 px shown 4×");
        assert!(inline_png(&png(120), "a").contains(" width=\"480\""), "at most 4×");
        assert!(inline_png(&png(900), "a").contains(" width=\"900\""), "never shrunk");
        assert_eq!(png_width(b"not a png at all, not at all"), None);
    }

    #[test]
    fn table_cells_round_numbers_and_list_arrays_item_by_item() {
        assert_eq!(cell_text(&serde_json::json!([2.189023981, 3, "a"])), "[2.189, 3, a]");
        assert_eq!(cell_text(&serde_json::json!(null)), "");
        assert_eq!(cell_text(&serde_json::json!({"gap": 0.5})), "{\"gap\":0.5}");
    }

    #[test]
    fn the_loss_plot_draws_only_columns_with_values_and_is_absent_without_losses() {
        let row = |epoch, loss: f64| {
            let stats = |loss| crate::loss::LossValues { loss, recon: f64::NAN, kl: f64::NAN, ..Default::default() };
            EpochMetrics::new(epoch, 1e-3, 1.0, &stats(f64::NAN), &stats(loss))
        };
        assert!(loss_plot(&[row(1, 2.0), row(2, 1.5)]).unwrap().is_some());
        assert!(loss_plot(&[row(1, f64::NAN)]).unwrap().is_none());
        assert!(loss_plot(&[]).unwrap().is_none());
    }

    /// A run folder with config.json (beta), a two-epoch metrics.csv whose second epoch is
    /// the best, and optionally eval/metrics.json holding mig_chen.
    fn fake_run(root: &Path, name: &str, beta: f64, val_losses: [f64; 2], mig: Option<f64>) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("eval")).unwrap();
        std::fs::write(dir.join("config.json"), format!("{{\"beta\": {beta}}}")).unwrap();
        let stats = |loss: f64| crate::loss::LossValues { loss, recon: loss, kl: 0.0, mi: None, tc: None, dwkl: None };
        let rows: Vec<EpochMetrics> =
            (0..2).map(|e| EpochMetrics::new(e + 1, 1e-3, 1.0, &stats(9.0), &stats(val_losses[e]))).collect();
        crate::runs::write_metrics(&dir.join("metrics.csv"), &rows).unwrap();
        if let Some(m) = mig {
            std::fs::write(dir.join("eval").join("metrics.json"), format!("{{\"mig_chen\": {m}}}")).unwrap();
        }
        dir
    }

    #[test]
    fn run_values_come_from_eval_then_the_best_epoch_then_the_config() {
        let tmp = tempfile::tempdir().unwrap();
        let run = fake_run(tmp.path(), "a", 3.0, [5.0, 4.0], Some(0.25));
        assert_eq!(run_value(&run, "mig_chen").unwrap(), 0.25);
        assert_eq!(run_value(&run, "val_loss").unwrap(), 4.0, "the best epoch's, not the last's or the first's");
        assert_eq!(run_value(&run, "beta").unwrap(), 3.0);
        let err = run_value(&run, "nothing").unwrap_err().to_string();
        assert!(err.contains("'nothing'") && err.contains(&run.display().to_string()), "{err}");
    }

    #[test]
    fn a_comparison_plot_is_written_and_refuses_a_run_without_the_value() {
        let tmp = tempfile::tempdir().unwrap();
        let a1 = fake_run(tmp.path(), "a1", 1.0, [5.0, 4.0], Some(0.1));
        let a3 = fake_run(tmp.path(), "a3", 3.0, [5.0, 4.0], Some(0.3));
        let b3 = fake_run(tmp.path(), "b3", 3.0, [5.0, 4.0], None);
        let out = tmp.path().join("mig.png");
        write_comparison_plot(&[("a".into(), vec![a1.clone(), a3])], "beta", "mig_chen", &out).unwrap();
        assert_eq!(image::open(&out).unwrap().width(), 720);
        let err = write_comparison_plot(&[("b".into(), vec![a1, b3])], "beta", "mig_chen", &out).unwrap_err();
        assert!(err.to_string().contains("b3"), "{err}");
    }
}
