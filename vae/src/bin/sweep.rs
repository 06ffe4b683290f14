//! `sweep`: runs the `train` binary once per point of a grid and summarises the runs.
//!
//! `sweep --name beta-z --grid beta=0,1,2,4 --grid z-dim=10,32 -- --arch dense --dataset
//! fashion-mnist --epochs 3` trains 8 runs into `runs/sweeps/beta-z/<point>/` (flags after `--`
//! go to every run) and writes `table.md`, `table.csv` (the best epoch of every run with each
//! loss component), `val_loss.png` (every run's validation loss per epoch) and `report.html`
//! (the table and plot, linking each run's own `report.html`) beside them.
//! A point whose folder already holds a finished `metrics.csv` is not trained again
//! (`--retrain` forces it), so an interrupted sweep continues where it stopped.

use clap::Parser;
use vae::cli::SweepCli;

fn main() {
    if let Err(e) = vae::tools::sweep::run(&SweepCli::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
