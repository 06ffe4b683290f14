//! `eval`: pictures and numbers of a trained VAE run folder, on its held-out test split
//! (`vae::eval::command` says what each file is).

use clap::Parser;
use vae::cli::EvalCli as Cli;
use vae::eval::command::run;

fn main() {
    if let Err(e) = run(Cli::parse().args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
