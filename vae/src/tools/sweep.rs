//! Grids of `train` runs: parsing `--grid beta=0,1,2,4` axes into points, training each point in
//! its own run folder (the `train` binary, one process per point), and summarising the finished runs into one table (the best epoch of each run
//! with every loss component, as Folkertsma et al.'s Table 1) and one validation-loss plot (Yang and Kobilaski,
//! figure 4).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::cli::SweepCli;
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

/// Runs `sweep` as its flags say: trains every point of the grid not already done (with the
/// `train` binary, one process each), then writes the table, the plot and the reports.
pub fn run(args: &SweepCli) -> Result<()> {
    let axes = args.grid.iter().map(|g| parse_axis(g)).collect::<Result<Vec<_>>>()?;
    if let Some(bad) = args.train_args.iter().find(|a| *a == "--run-dir" || *a == "--resume") {
        return Err(Error::Config(format!(
            "{bad} cannot be passed to the runs of a sweep (each point has its own folder)"
        )));
    }
    let train_bin = train_binary(args)?;
    let dir = args.root.join(&args.name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io { path: dir.clone(), source: e })?;
    let done = train_points(args, &train_bin, &axes, &dir)?;
    write_summary(args, &dir, &done)
}

/// `--train-bin`, or the `train` executable beside this one; refused if it does not exist.
fn train_binary(args: &SweepCli) -> Result<PathBuf> {
    let train_bin = match &args.train_bin {
        Some(p) => p.clone(),
        None => {
            let me =
                std::env::current_exe().map_err(|e| Error::Config(format!("cannot locate this executable: {e}")))?;
            me.with_file_name(format!("train{}", std::env::consts::EXE_SUFFIX))
        }
    };
    if !train_bin.exists() {
        return Err(Error::Config(format!(
            "--train-bin {}: no such executable (build it with cargo build --release -p vae --bin train)",
            train_bin.display()
        )));
    }
    Ok(train_bin)
}

/// Trains each point of the grid into `dir/<point>` (keeping finished ones unless
/// `--retrain`): the points' names and training seconds, in grid order.
fn train_points(args: &SweepCli, train_bin: &Path, axes: &[Axis], dir: &Path) -> Result<Vec<(String, f64)>> {
    let points = grid_points(axes);
    println!("sweep {}: {} runs into {}", args.name, points.len(), dir.display());
    let mut done = vec![];
    for (k, point) in points.iter().enumerate() {
        let name = point_name(point);
        let run_dir = dir.join(&name);
        let timing = run_dir.join("sweep_seconds.txt");
        if !args.retrain && timing.exists() {
            let secs = std::fs::read_to_string(&timing).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(f64::NAN);
            println!("[{}/{}] {name}: already done ({secs:.1} s), kept", k + 1, points.len());
            done.push((name, secs));
            continue;
        }
        let mut cmd = Command::new(train_bin);
        cmd.args(&args.train_args);
        for (flag, value) in point {
            cmd.arg(format!("--{flag}")).arg(value);
        }
        cmd.arg("--run-dir").arg(&run_dir);
        println!("[{}/{}] {name}: {:?}", k + 1, points.len(), cmd);
        let started = Instant::now();
        let status = cmd.status().map_err(|e| Error::Config(format!("cannot run {}: {e}", train_bin.display())))?;
        let secs = started.elapsed().as_secs_f64();
        if !status.success() {
            return Err(Error::Config(format!(
                "run {name} failed ({status}); the runs before it are in {}",
                dir.display()
            )));
        }
        std::fs::write(&timing, format!("{secs:.2}\n")).map_err(|e| Error::Io { path: timing.clone(), source: e })?;
        done.push((name, secs));
    }
    Ok(done)
}

/// `table.md`, `table.csv`, `val_loss.png`, every run's `report.html` and the sweep's own.
fn write_summary(args: &SweepCli, dir: &Path, done: &[(String, f64)]) -> Result<()> {
    let results = collect(dir, done)?;
    let (md, csv) = table(&results);
    let header = format!(
        "Sweep `{}`: grid {}; every run: `train {}`. Best epoch = lowest validation loss; components are \
         unweighted per-image validation means (nats for BCE).\n\n",
        args.name,
        args.grid.join(" × "),
        args.train_args.join(" ")
    );
    for (file, text) in [("table.md", format!("{header}{md}")), ("table.csv", csv)] {
        let p = dir.join(file);
        std::fs::write(&p, text).map_err(|e| Error::Io { path: p.clone(), source: e })?;
    }
    crate::plot::save_line_plot(
        &dir.join("val_loss.png"),
        &format!("validation loss: {}", args.name),
        &val_loss_series(&results),
        "epoch",
        "validation loss",
    )?;
    // Each run's own report (train may already have written it; it is cheap to rewrite), then
    // the sweep's page linking them.
    let runs: Vec<(String, PathBuf)> = done.iter().map(|(name, _)| (name.clone(), dir.join(name))).collect();
    for (_, run_dir) in &runs {
        crate::tools::report::write_report(run_dir)?;
    }
    crate::tools::report::write_sweep_report(dir, &runs)?;
    print!("{md}");
    println!("wrote {0}/table.md, {0}/table.csv, {0}/val_loss.png, {0}/report.html", dir.display());
    Ok(())
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
