//! `explore`: an interactive latent explorer for a trained run, in the browser.
//!
//! `explore --run runs/X` loads the run the way `eval` does (config.json, the split, the best
//! checkpoint), serves one page on http://127.0.0.1:PORT/ (a free port unless `--port`) and
//! prints its URL. The page — embedded in this binary, it needs no network — has a slider per
//! latent dimension (most active first), a grid of held-out test images to start from, the
//! mixing of two images' codes (one negated if asked), samples from the prior, and the run's loss
//! curves and metrics. Every image is decoded on the server (`--device cpu`, `gpu` or `auto`, the default).
//! On the CPU model the run was trained on, the decoder's convolutions run the cuts its training
//! measured (`vae::cli::borrow_cpu_kernels`; other batch sizes, and other CPUs, by the size
//! rules): it prints which. Ctrl-C stops it.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;
use vae::cli::ExploreCli;
use vae::error::{Error, Result};
use vae::tools::explore::{allowed_hosts, serve, ExploreOptions, Explorer, ServeOptions};

/// Every batch of decodes frees and re-allocates the same large activations; caching them
/// avoids re-faulting them in from the OS for each batch (see tensor/src/cpu/caching_allocator.rs).
#[global_allocator]
static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator = tensor::cpu::caching_allocator::CachingAllocator;

fn main() {
    let runtime_dir = vae::cli::RuntimeDir::for_this_process();
    let result = run(ExploreCli::parse());
    drop(runtime_dir);
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: ExploreCli) -> Result<()> {
    if args.grid == 0 {
        return Err(Error::Config("--grid must be at least 1".into()));
    }
    vae::train::set_cpu_threads(args.compute.threads)?;
    // Before any work: the kernels must not change under the decodes.
    let kernels = vae::cli::borrow_cpu_kernels(&args.model.run);
    // Bound first: a port in use is reported before the model loads.
    let listen_error = |e: std::io::Error| {
        Error::Config(format!("--host {} --port {}: cannot listen there: {e}", args.host, args.port))
    };
    let bind_to = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .map_err(|e| Error::Config(format!("--host '{}': not an address or a name that resolves: {e}", args.host)))?
        .collect::<Vec<SocketAddr>>();
    let listener = TcpListener::bind(&bind_to[..]).map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "warning: --host {} is not a loopback address: anyone who can reach this machine on port {} can use the explorer",
            args.host,
            addr.port()
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| Error::Config(format!("cannot install the Ctrl-C handler: {e}")))?;
    println!("loading {} (a GPU's first start can take a minute) ...", args.model.run.display());
    let opts = ExploreOptions {
        checkpoint: args.model.checkpoint.clone(),
        device: args.compute.device,
        max_test: args.max_test,
        grid: args.grid,
    };
    let explorer = Explorer::open(&args.model.run, &opts)?;
    println!(
        "{} (z = {}, {} test images, {} per page of the grid), decoding on {}",
        args.model.run.display(),
        explorer.z_dim(),
        explorer.test_len(),
        args.grid,
        explorer.device()
    );
    println!("{kernels}");
    let shown = if addr.ip().is_unspecified() { SocketAddr::new([127, 0, 0, 1].into(), addr.port()) } else { addr };
    println!("explorer at http://{shown}/ (Ctrl-C stops it)");
    let serve_opts = ServeOptions { allowed_hosts: allowed_hosts(&args.host, addr), ..ServeOptions::default() };
    serve(&listener, &|method: &str, url: &str| explorer.answer(method, url), &stop, &serve_opts)
        .map_err(listen_error)?;
    println!("stopped");
    Ok(())
}
