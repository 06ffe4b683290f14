//! `report`: writes RUN/report.html, one self-contained page of a `train` run folder — its
//! configuration, metrics per epoch, loss curves, the reconstruction and sample grids of every
//! epoch and `eval`'s pictures and metrics when present, every image inlined. It opens offline
//! and can be sent as a single file.
//!
//! `report --series NAME=RUN,RUN,... [--series ...] --x KEY --y KEY --out FILE.png` instead draws
//! one number of several runs against another, a line per series (e.g. MIG against β for
//! β-VAE and β-TCVAE runs): each number comes from the run's `eval/metrics.json`, its best
//! epoch in `metrics.csv`, or its `config.json`.

use std::path::PathBuf;

use clap::Parser;
use vae::error::{Error, Result};

/// Write a run folder's one-file HTML report (RUN/report.html), or plot a number of several
/// runs against another (--series, --x, --y, --out).
#[derive(Parser, Debug)]
#[command(name = "report", version, about)]
struct Args {
    /// The run folder written by `train` (holds config.json and metrics.csv).
    #[arg(long, required_unless_present = "series", conflicts_with = "series")]
    run: Option<PathBuf>,
    /// A line of the comparison plot: NAME=RUN,RUN,... (repeat for more lines).
    #[arg(long, requires_all = ["x", "y", "out"])]
    series: Vec<String>,
    /// The x of each run: a key of eval/metrics.json, a metrics.csv column or a config.json key.
    #[arg(long)]
    x: Option<String>,
    /// The y of each run, looked up like --x.
    #[arg(long)]
    y: Option<String>,
    /// Where the comparison plot's PNG goes.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    if let (Some(x), Some(y), Some(out)) = (&args.x, &args.y, &args.out) {
        let mut series = Vec::new();
        for spec in &args.series {
            let Some((name, runs)) = spec.split_once('=') else {
                return Err(Error::Config(format!("--series '{spec}': expected NAME=RUN,RUN,...")));
            };
            let runs: Vec<PathBuf> = runs.split(',').filter(|r| !r.is_empty()).map(PathBuf::from).collect();
            if runs.is_empty() {
                return Err(Error::Config(format!("--series '{spec}': no run folders after '='")));
            }
            series.push((name.to_string(), runs));
        }
        vae::tools::report::write_comparison_plot(&series, x, y, out)?;
        println!("wrote {}", out.display());
        return Ok(());
    }
    let Some(run) = args.run else {
        return Err(Error::Config("--run DIR, or --series with --x, --y and --out".into()));
    };
    if !run.join(vae::runs::CONFIG_FILE).is_file() {
        return Err(Error::Config(format!(
            "--run {}: no config.json there (expected a folder written by `train`)",
            run.display()
        )));
    }
    let path = vae::tools::report::write_report(&run)?;
    println!("wrote {}", path.display());
    Ok(())
}
