//! The layers', optimizers' and checkpoints' tests, one binary (`cargo test --release -p nn
//! --test integration optim` runs one module).

mod common;

mod batch_norm;
mod checkpoint;
mod init;
mod layers;
mod module_tree;
mod optim;
mod training;
