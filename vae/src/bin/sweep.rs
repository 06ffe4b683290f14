//! `sweep`: runs the `train` binary once per point of a grid and summarises the runs.
//!
//! `sweep --name beta-z --grid beta=0,1,2,4 --grid z-dim=10,32 -- --arch dense --dataset
//! fashion-mnist --epochs 3` trains 8 runs into `runs/sweeps/beta-z/<point>/` (flags after `--`
//! go to every run) and writes `table.md`, `table.csv` (the best epoch of every run with each
//! loss component), `val_loss.png` (every run's validation loss per epoch) and `report.html`
//! (the table and plot, linking each run's own `report.html`) beside them.
//! A point whose folder already holds a finished `metrics.csv` is not trained again
//! (`--retrain` forces it), so an interrupted sweep continues where it stopped.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use clap::Parser;
use vae::cli::SweepCli as Args;
use vae::error::{Error, Result};
use vae::sweep::{collect, grid_points, parse_axis, point_name, table, val_loss_series};

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let axes = args.grid.iter().map(|g| parse_axis(g)).collect::<Result<Vec<_>>>()?;
    if let Some(bad) = args.train_args.iter().find(|a| *a == "--run-dir" || *a == "--resume") {
        return Err(Error::Config(format!(
            "{bad} cannot be passed to the runs of a sweep (each point has its own folder)"
        )));
    }
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
    let dir = args.root.join(&args.name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io { path: dir.clone(), source: e })?;
    let points = grid_points(&axes);
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
        let mut cmd = Command::new(&train_bin);
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
    let results = collect(&dir, &done)?;
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
    vae::plot::save_line_plot(
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
        vae::report::write_report(run_dir)?;
    }
    vae::report::write_sweep_report(&dir, &runs)?;
    print!("{md}");
    println!("wrote {0}/table.md, {0}/table.csv, {0}/val_loss.png, {0}/report.html", dir.display());
    Ok(())
}
