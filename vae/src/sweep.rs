//! Grids of `train` runs: parsing `--grid beta=0,1,2,4` axes into points, naming each point's
//! run folder, and summarising the finished runs into one table (the best epoch of each run
//! with every loss component, as Folkertsma et al.'s Table 1) and one validation-loss plot (Yang and Kobilaski,
//! figure 4).

use std::path::Path;

use crate::error::{Error, Result};
use crate::runs::{best_epoch, read_metrics, EpochMetrics, METRICS_FILE};

/// One axis of a grid: a `train` flag (without `--`) and the values it takes.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// The flag name without `--`, e.g. `z-dim`.
    pub flag: String,
    /// The values it takes, in the order given.
    pub values: Vec<String>,
}

/// Parses `FLAG=V1,V2,...` (as given to `--grid`).
pub fn parse_axis(spec: &str) -> Result<Axis> {
    let (flag, values) = spec
        .split_once('=')
        .ok_or_else(|| Error::Config(format!("--grid '{spec}': expected FLAG=V1,V2,... (e.g. beta=0,1,2,4)")))?;
    let flag = flag.trim().trim_start_matches("--").to_string();
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
    if flag.is_empty() || values.is_empty() {
        return Err(Error::Config(format!("--grid '{spec}': needs a flag name and at least one value")));
    }
    Ok(Axis { flag, values })
}

/// Every combination of the axes' values (the last axis varies fastest), as (flag, value) lists.
pub fn grid_points(axes: &[Axis]) -> Vec<Vec<(String, String)>> {
    let mut points: Vec<Vec<(String, String)>> = vec![vec![]];
    for axis in axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                axis.values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push((axis.flag.clone(), v.clone()));
                    q
                })
            })
            .collect();
    }
    points
}

/// A point's folder name: `beta=4_z-dim=32`.
pub fn point_name(point: &[(String, String)]) -> String {
    let s: Vec<String> = point.iter().map(|(f, v)| format!("{f}={v}")).collect();
    if s.is_empty() {
        "default".into()
    } else {
        s.join("_").replace(['/', ' '], "-")
    }
}

/// A finished (or partly finished) run of the grid.
pub struct PointResult {
    /// The point's folder name (see [`point_name`]).
    pub name: String,
    /// The rows of its `metrics.csv`, one per finished epoch.
    pub rows: Vec<EpochMetrics>,
    /// Wall-clock seconds the run took, as measured by the sweep.
    pub seconds: f64,
}

/// The columns of the table: `metrics.csv`'s validation columns.
const COLUMNS: [&str; 6] = ["val_loss", "val_recon", "val_kl", "val_mi", "val_tc", "val_dwkl"];

/// Reads each point's `metrics.csv` under `dir`.
pub fn collect(dir: &Path, points: &[(String, f64)]) -> Result<Vec<PointResult>> {
    points
        .iter()
        .map(|(name, seconds)| {
            Ok(PointResult {
                name: name.clone(),
                rows: read_metrics(&dir.join(name).join(METRICS_FILE))?,
                seconds: *seconds,
            })
        })
        .collect()
}

fn cell(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into())
}

/// The table of best epochs as Markdown and as CSV.
pub fn table(results: &[PointResult]) -> (String, String) {
    let mut md = String::from("| run | best epoch / epochs | val loss | recon | KL | MI | TC | DW-KL | seconds |\n");
    md += "|---|---|---|---|---|---|---|---|---|\n";
    let mut csv = String::from("run,best_epoch,epochs,val_loss,val_recon,val_kl,val_mi,val_tc,val_dwkl,seconds\n");
    for r in results {
        match best_epoch(&r.rows) {
            Some(b) => {
                let vals: Vec<Option<f64>> = COLUMNS.iter().map(|c| b.get(c)).collect();
                md += &format!(
                    "| {} | {} / {} | {} | {:.1} |\n",
                    r.name,
                    b.epoch,
                    r.rows.len(),
                    vals.iter().map(|v| cell(*v)).collect::<Vec<_>>().join(" | "),
                    r.seconds
                );
                csv += &format!(
                    "{},{},{},{},{:.2}\n",
                    r.name,
                    b.epoch,
                    r.rows.len(),
                    vals.iter().map(|v| v.map(|v| format!("{v:.6}")).unwrap_or_default()).collect::<Vec<_>>().join(","),
                    r.seconds
                );
            }
            None => {
                md += &format!("| {} | (no finished epoch) | | | | | | | {:.1} |\n", r.name, r.seconds);
                csv += &format!("{},,,,,,,,,{:.2}\n", r.name, r.seconds);
            }
        }
    }
    (md, csv)
}

/// One validation-loss curve per run.
pub fn val_loss_series(results: &[PointResult]) -> Vec<(String, Vec<(f64, f64)>)> {
    results
        .iter()
        .map(|r| (r.name.clone(), r.rows.iter().map(|row| (row.epoch as f64, row.val.loss)).collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_is_the_product_of_its_axes_last_fastest() {
        let axes = [parse_axis("beta=0,1").unwrap(), parse_axis("--z-dim=10,32,64").unwrap()];
        let p = grid_points(&axes);
        assert_eq!(p.len(), 6);
        assert_eq!(point_name(&p[0]), "beta=0_z-dim=10");
        assert_eq!(point_name(&p[1]), "beta=0_z-dim=32");
        assert_eq!(point_name(&p[5]), "beta=1_z-dim=64");
    }

    #[test]
    fn a_bad_axis_names_the_flag() {
        let e = parse_axis("beta").unwrap_err().to_string();
        assert!(e.contains("--grid 'beta'"), "{e}");
        assert!(parse_axis("beta=").is_err());
    }
}
