//! `eval`: pictures and numbers of a trained VAE run folder, on its held-out test split
//! (`vae::tools::eval::command` says what each file is).

use clap::Parser;
use vae::cli::EvalCli as Cli;
use vae::tools::eval::command::run;

fn main() {
    let runtime_dir = vae::cli::RuntimeDir::for_this_process();
    let result = run(Cli::parse().args);
    drop(runtime_dir);
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
