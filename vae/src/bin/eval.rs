//! `eval`: pictures and numbers of a trained VAE run folder, on its held-out test split
//! (`vae::eval::command` says what each file is).

use clap::Parser;
use vae::eval::command::{run, EvalArgs};

/// Evaluate a trained VAE: reconstructions, samples, traversals, interpolations, feature
/// maps, t-SNE, robustness pictures and test metrics.
#[derive(Parser, Debug)]
#[command(name = "eval", version, about)]
struct Cli {
    #[command(flatten)]
    args: EvalArgs,
}

fn main() {
    if let Err(e) = run(Cli::parse().args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
