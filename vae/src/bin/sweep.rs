//! `sweep`: a grid of `train` runs — a study file or `--grid` axes — run here (`--jobs N` at
//! a time), as a Slurm job array, or as a job list for GNU parallel, each point resumable and
//! recorded in its own run folder; `sweep status` says where the points stand and `sweep
//! collect` summarises the ones that are done.
//!
//! `sweep --study vae/studies/tiny-dense.toml --jobs 2` trains the study's points into
//! `runs/sweeps/tiny-dense/<point>/` and writes `table.md`, `table.csv` (the best epoch of every
//! run with the study's columns), `val_loss.png` and `report.html` beside them.
//! `sweep --name beta-z --grid beta=0,1,2,4 --grid z-dim=10,32 -- --arch dense --epochs 3` is the
//! same for a one-off grid (flags after `--` go to every run). Running the same command again
//! starts only the points not done: a stopped point resumes from its checkpoint, a failed one
//! is tried again up to `--max-attempts` times. See `vae::tools::sweep` and docs/runs.md.

use clap::Parser;
use vae::cli::SweepCli;

fn main() {
    match vae::tools::sweep::run(&SweepCli::parse()) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
