//! Grids of `train` runs, here or beyond this machine: a study ([`study`]: a file in
//! `vae/studies/`, or `--grid` axes) is checked whole, its points not yet done are launched
//! ([`launch`]: here `--jobs` at a time, as a Slurm job array, or as a job list), each point
//! runs as one `sweep run-point` ([`point`]) that trains, resumes and evaluates it in its own run
//! folder, where its state lives ([`status`]); `sweep collect` summarises the points that are
//! done into one table (the best epoch of each run with the study's columns, as Folkertsma et
//! al.'s Table 1) and one validation-loss plot (Yang and Kobilaski, figure 4).

pub mod launch;
pub mod point;
pub mod status;
pub mod study;

use std::path::PathBuf;

pub use launch::Launcher;

use crate::cli::{SweepCli, SweepCommand, SweepLaunchArgs};
use crate::error::{Error, Result};
use crate::runs::{best_epoch, read_metrics, EpochMetrics, METRICS_FILE};
use status::{point_states, PointState};
use study::{Point, Study};

/// Runs `sweep` as its command line says; returns the process's exit code.
pub fn run(cli: &SweepCli) -> Result<i32> {
    match &cli.command {
        Some(SweepCommand::Status(args)) => {
            status::print_status(&Study::read(&args.study, args.root.as_deref())?)?;
            Ok(0)
        }
        Some(SweepCommand::Collect(args)) => {
            collect(&Study::read(&args.study, args.root.as_deref())?)?;
            Ok(0)
        }
        Some(SweepCommand::RunPoint(args)) => {
            let study = Study::read(&args.study.study, args.study.root.as_deref())?;
            let options = point::RunOptions { threads: args.threads, bin_dir: point::own_bin_dir()? };
            point::run_point(&study, args.index, &options)
        }
        None => launch_study(&cli.launch),
    }
}

/// The study `sweep`'s flags name: a study file, or a `--grid` sweep.
fn study_of(args: &SweepLaunchArgs) -> Result<Study> {
    if let Some(path) = &args.study {
        if !args.train_args.is_empty() {
            return Err(Error::Config(format!(
                "--study {}: train flags after -- belong in the study's [train] table",
                path.display()
            )));
        }
        return Study::read(path, args.root.as_deref());
    }
    let name = args.name.as_deref().unwrap_or_default();
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from(study::DEFAULT_ROOT));
    Study::from_grid(name, &root, &args.grid, &args.train_args)
}

/// `sweep` without a subcommand: checks the study, keeps its copy in the sweep's folder, and
/// launches the points not yet done; the local launcher then writes the summary.
fn launch_study(args: &SweepLaunchArgs) -> Result<i32> {
    let study = study_of(args)?;
    let bin_dir = point::own_bin_dir()?;
    for name in ["sweep", "train"] {
        point::binary(&bin_dir, name)?;
    }
    if study.eval.is_some() {
        point::binary(&bin_dir, "eval")?;
    }
    if args.dry_run && args.launcher != Launcher::Slurm {
        return Err(Error::Config("--dry-run prints the Slurm script: it needs --launcher slurm".into()));
    }
    if args.launcher == Launcher::Slurm {
        launch::slurm_options(&study, &args.slurm_opt)?;
    }
    if !args.dry_run {
        launch::write_snapshot(&study)?;
    }
    let options = launch::LaunchOptions {
        launcher: args.launcher,
        jobs: args.jobs.map(|j| j as usize),
        threads: args.threads,
        max_attempts: args.max_attempts,
        slurm_options: args.slurm_opt.clone(),
        dry_run: args.dry_run,
        bin_dir,
    };
    let launched = launch::launch(&study, &options)?;
    if args.launcher != Launcher::Local {
        return Ok(0);
    }
    let states = point_states(&study)?;
    if states.iter().any(|(_, s, _)| *s == PointState::Done) {
        collect(&study)?;
    }
    if launched.failed > 0 {
        eprintln!(
            "error: {} point(s) failed; `sweep status --study {}` shows their logs",
            launched.failed,
            study.dir().display()
        );
        return Ok(1);
    }
    // The shell's convention for a process stopped by Ctrl-C, as train's.
    Ok(if launched.stopped { 130 } else { 0 })
}

/// A point that is done, with what the summary reads of it.
pub struct PointResult {
    /// The point.
    pub point: Point,
    /// The rows of its `metrics.csv`, one per finished epoch.
    pub rows: Vec<EpochMetrics>,
    /// Each of the study's columns: its value, `None` where the run has none.
    pub values: Vec<Option<f64>>,
}

/// The points of a study as the summary reads them.
pub struct Results {
    /// The points that are done, in grid order.
    pub done: Vec<PointResult>,
    /// The others, with where they stand.
    pub not_done: Vec<(Point, PointState)>,
}

/// Reads each point that is done; names the others.
pub fn results(study: &Study) -> Result<Results> {
    let mut done = vec![];
    let mut not_done = vec![];
    for (p, state, _) in point_states(study)? {
        if state != PointState::Done {
            not_done.push((p, state));
            continue;
        }
        let rows = read_metrics(&p.dir.join(METRICS_FILE))?;
        let values = study.columns.iter().map(|c| crate::tools::report::run_value(&p.dir, c).ok()).collect();
        done.push(PointResult { point: p, rows, values });
    }
    // An empty column of metrics.csv is a term the objective has not (β-TCVAE's in a β-VAE);
    // any other column no run has is a misspelt or missing key.
    let csv_columns = crate::runs::metrics_columns();
    for (i, column) in study.columns.iter().enumerate() {
        if !done.is_empty() && done.iter().all(|r| r.values[i].is_none()) && !csv_columns.contains(column) {
            return Err(Error::Config(format!(
                "{}: summary.columns: no point that is done has a value {column:?} (a key of eval/metrics.json, a \
                 column of metrics.csv, or a number of config.json)",
                study.source
            )));
        }
    }
    Ok(Results { done, not_done })
}

/// The table of the points that are done, as Markdown and as CSV: each point's axes, its best
/// epoch (lowest validation loss) and the study's columns. Nothing in it depends on how or
/// where the points ran (no times), so two launchers' tables of the same study compare bit
/// for bit: the CSV holds every number to the last digit.
pub fn table(study: &Study, results: &[PointResult]) -> (String, String) {
    let axes: Vec<&str> = study.axes.iter().map(|a| a.name.as_str()).collect();
    let mut md = format!(
        "| point | {} | best epoch / epochs | {} |\n|{}\n",
        axes.join(" | "),
        study.columns.join(" | "),
        "---|".repeat(2 + axes.len() + study.columns.len())
    );
    let mut csv = format!("point,{},best_epoch,epochs,{}\n", axes.join(","), study.columns.join(","));
    for r in results {
        let labels: Vec<&str> = r.point.labels.iter().map(|(_, l)| l.as_str()).collect();
        let best = best_epoch(&r.rows).map(|b| b.epoch.to_string()).unwrap_or_default();
        let md_cells: Vec<String> =
            r.values.iter().map(|v| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into())).collect();
        let csv_cells: Vec<String> = r.values.iter().map(|v| v.map(|v| v.to_string()).unwrap_or_default()).collect();
        md += &format!(
            "| {} | {} | {best} / {} | {} |\n",
            r.point.name,
            labels.join(" | "),
            r.rows.len(),
            md_cells.join(" | ")
        );
        csv += &format!("{},{},{best},{},{}\n", r.point.name, labels.join(","), r.rows.len(), csv_cells.join(","));
    }
    (md, csv)
}

/// One validation-loss curve per point that is done.
pub fn val_loss_series(results: &[PointResult]) -> Vec<(String, Vec<(f64, f64)>)> {
    results
        .iter()
        .map(|r| (r.point.name.clone(), r.rows.iter().map(|row| (row.epoch as f64, row.val.loss)).collect()))
        .collect()
}

/// `sweep collect`: `table.md`, `table.csv`, `val_loss.png`, every done run's `report.html` and
/// the sweep's own, from the points that are done; the others are named.
pub fn collect(study: &Study) -> Result<()> {
    let Results { done, not_done } = results(study)?;
    let dir = study.dir();
    if done.is_empty() {
        return Err(Error::Config(format!(
            "sweep {}: no point is done yet (`sweep status --study {}` says where they stand)",
            study.name,
            dir.display()
        )));
    }
    let (md, csv) = table(study, &done);
    let shared = study::flags_to_args(&study.train).join(" ");
    let missing = if not_done.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = not_done.iter().map(|(p, s)| format!("{} ({})", p.name, s.word())).collect();
        format!("Not done, so not in the table: {}.\n\n", names.join(", "))
    };
    let header = format!(
        "Sweep `{}`{}: {} of {} points done; every run: `train {shared}`. Best epoch = lowest validation loss; \
         components are unweighted per-image validation means (nats for BCE).\n\n{missing}",
        study.name,
        if study.description.is_empty() { String::new() } else { format!(" ({})", study.description) },
        done.len(),
        done.len() + not_done.len()
    );
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
    for (file, text) in [("table.md", format!("{header}{md}")), ("table.csv", csv)] {
        crate::runs::write_file(&dir.join(file), text.as_bytes())?;
    }
    crate::plot::save_line_plot(
        &dir.join("val_loss.png"),
        &format!("validation loss: {}", study.name),
        &val_loss_series(&done),
        "epoch",
        "validation loss",
    )?;
    let runs: Vec<(String, PathBuf)> = done.iter().map(|r| (r.point.name.clone(), r.point.dir.clone())).collect();
    // A point writes its own page when it is done; a folder an older sweep finished may lack it.
    for (_, run_dir) in runs.iter().filter(|(_, dir)| !dir.join(crate::tools::report::REPORT_FILE).is_file()) {
        crate::tools::report::write_report(run_dir)?;
    }
    crate::tools::report::write_sweep_report(&dir, &runs)?;
    print!("{md}");
    for (p, state) in &not_done {
        println!("not done: point {} is {}", p.describe(), state.word());
    }
    println!("wrote {0}/table.md, {0}/table.csv, {0}/val_loss.png, {0}/report.html", dir.display());
    Ok(())
}
