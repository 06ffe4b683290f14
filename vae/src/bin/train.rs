//! `train`: trains a VAE preset on a dataset and leaves a run folder to look at (see
//! `vae::runs` for its files and what they promise after a crash, `vae::trainer` for the loop).
//!
//! With no flags: the `conv` preset on 20,000 procedurally generated dSprites images, a few
//! minutes on a 2-core CPU.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{ArgMatches, CommandFactory, FromArgMatches};
use vae::cli::{ChooseKernels, TrainCli};
use vae::error::Result;
use vae::trainer::{configure, Finished, Trainer};

/// Large tensors are freed and re-allocated every step; caching them avoids re-faulting the
/// working set in from the OS each time (see tensor/src/cpu/caching_allocator.rs).
#[global_allocator]
static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator = tensor::cpu::caching_allocator::CachingAllocator;

fn main() {
    let runtime_dir = vae::cli::RuntimeDir::for_this_process();
    let matches = TrainCli::command().get_matches();
    let cli = match TrainCli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = run(cli, &matches);
    drop(runtime_dir);
    match result {
        Ok(Finished::Completed { .. }) => {}
        // The shell's convention for a process stopped by Ctrl-C.
        Ok(Finished::Interrupted { .. }) => std::process::exit(130),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

fn run(mut cli: TrainCli, matches: &ArgMatches) -> Result<Finished> {
    // A GEMM kernel this CPU cannot run is refused before the data is read.
    vae::cli::pin_cpu_gemm(cli.cpu_gemm.as_deref())?;
    if let Some(run) = &cli.cpu_kernels_from {
        cli.compute.threads = vae::cli::replay_cpu_kernels(run, cli.compute.threads)?;
    }
    let (config, dir) = configure(&cli, matches)?;
    let device = cli.compute.open()?;
    if cli.cpu_kernels_from.is_some() && !matches!(device, tensor::Device::Cpu) {
        eprintln!(
            "warning: --cpu-kernels-from replays CPU kernels; this run is on {}, where it changes nothing",
            device.name()
        );
    }
    if let tensor::Device::Cpu = &device {
        choose_cpu_kernels(&cli);
    }
    if let tensor::Device::Gpu(gpu) = &device {
        let ctx = gpu.context();
        if let Some(rung) = cli.conv_rung.as_deref().and_then(gpu::kernels::conv2d::ConvRung::from_name) {
            ctx.pin_conv_rung(rung);
            println!("kernels: every convolution on the {} rung (--conv-rung)", rung.name());
        }
        if let Some(tile) = cli.gemm_tile.as_deref().and_then(gpu::tuning::tile_from_name) {
            ctx.pin_gemm_tile(tile);
            println!("kernels: every GEMM on the {} tile (--gemm-tile)", gpu::tuning::tile_name(tile));
        } else if cli.gpu_kernels == ChooseKernels::Measured {
            let cache = vae::cli::kernel_cache_path();
            ctx.enable_tuning(cache.clone());
            match cache {
                Some(path) => {
                    println!("kernels: GEMM tiles and convolution rungs chosen by timing, kept in {}", path.display())
                }
                None => println!(
                    "kernels: GEMM tiles and convolution rungs chosen by timing (no HOME or VAE_KERNEL_CACHE: not kept)"
                ),
            }
        } else {
            println!("kernels: GEMM tiles by the size rules, every ladder on its top rung (--gpu-kernels rule)");
        }
    }
    let mut trainer = Trainer::new(config, dir.clone(), device, cli.resume.as_deref(), cli.profile)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let flag = stop.clone();
        // Ctrl-C only sets a flag: the trainer saves a checkpoint at the next batch boundary.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    let finished = trainer.run(&stop)?;
    match &finished {
        Finished::Completed { report } => println!("done: {} (report: {})", dir.display(), report.display()),
        Finished::Interrupted { checkpoint } => {
            println!("interrupted: saved {} (resume with --resume {})", checkpoint.display(), checkpoint.display())
        }
    }
    Ok(finished)
}

/// Turns the CPU tuner on unless `--cpu-kernels rule` (it then times the GEMM kernels at once,
/// unless `--cpu-gemm` pinned one) or another run's choices are replayed, and says in one
/// line how the kernels are chosen.
fn choose_cpu_kernels(cli: &TrainCli) {
    if tensor::cpu::tuning::is_replay() {
        return; // `replay_cpu_kernels` said what runs.
    }
    let convolutions = if cli.cpu_kernels == ChooseKernels::Measured {
        let cache = vae::cli::cpu_kernel_cache_path();
        tensor::cpu::tuning::enable_tuning(cache.clone());
        match cache {
            Some(path) => format!("convolutions' cuts measured, kept in {}", path.display()),
            None => "convolutions' cuts measured, not kept: no HOME or VAE_KERNEL_CACHE".to_string(),
        }
    } else {
        "convolutions by the size rules".to_string()
    };
    let (kernel, how) = tensor::cpu::gemm::f32_kernel_in_use();
    println!("kernels: GEMM {kernel} ({}), {convolutions}", how.name());
}
