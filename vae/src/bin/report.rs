//! `report`: writes RUN/report.html, one self-contained page of a `train` run folder — its
//! configuration, metrics per epoch, loss curves, the reconstruction and sample grids of every
//! epoch and `eval`'s pictures and metrics when present, every image inlined. It opens offline
//! and can be sent as a single file.

use std::path::PathBuf;

use clap::Parser;
use vae::error::{Error, Result};

/// Write a run folder's one-file HTML report (RUN/report.html).
#[derive(Parser, Debug)]
#[command(name = "report", version, about)]
struct Args {
    /// The run folder written by `train` (holds config.json and metrics.csv).
    #[arg(long)]
    run: PathBuf,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    if !args.run.join("config.json").is_file() {
        return Err(Error::Config(format!(
            "--run {}: no config.json there (expected a folder written by `train`)",
            args.run.display()
        )));
    }
    let path = vae::report::write_report(&args.run)?;
    println!("wrote {}", path.display());
    Ok(())
}
