//! `classify`: trains the ResNet-18 encoder with a linear head as a classifier (cross-entropy,
//! Adam), reports train and test accuracy per epoch, and saves the weights with a sidecar JSON.
//!
//! The saved file is what `train --pretrained-encoder FILE` reads (its `encoder.*` tensors
//! match the `resnet18` VAE's) and what `eval --classifier FILE` uses to judge samples.
//! The split (`--split`, `--seed`, `--max-images`) is cut as `train` cuts it, so a VAE trained
//! with the same flags is evaluated on images the classifier never saw.

use clap::Parser;
use vae::cli::ClassifyCli;

/// Training allocates the same large tensors every step: reuse them (see train.rs).
#[global_allocator]
static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator = tensor::cpu::caching_allocator::CachingAllocator;

fn main() {
    if let Err(e) = vae::tools::classify::train(&ClassifyCli::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
