//! The binaries' tests, one binary: `train`, `eval`, `sweep` (here and on a one-node Slurm
//! cluster), `classify`, `report` and `explore` run as a user runs them, and every command the docs quote parsed by the binaries'
//! own parsers (`cargo test --release -p vae --test integration train_cli` runs one module).

mod common;

mod docs_commands;
mod explore_cli;
mod fuzz_corpus;
mod impossible_sizes;
mod kill_soak;
mod report_cli;
mod results_page;
mod studies_cli;
mod sweep_cli;
mod sweep_slurm;
mod train_checks;
mod train_cli;
