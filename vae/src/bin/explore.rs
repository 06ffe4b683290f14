//! `explore`: an interactive latent explorer for a trained run, in the browser.
//!
//! `explore --run runs/X` loads the run the way `eval` does (config.json, the split, the best
//! checkpoint), serves one page on http://127.0.0.1:PORT/ (a free port unless `--port`) and
//! prints its URL. The page — embedded in this binary, it needs no network — has a slider per
//! latent dimension (most active first), a grid of held-out test images to start from, the
//! mixing of two images' codes (one negated if asked), samples from the prior, and the run's loss
//! curves and metrics. Every image is decoded on the server (`--device cpu`, `gpu` or `auto`, the default).
//! Ctrl-C stops it.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;
use vae::error::{Error, Result};
use vae::explore::{allowed_hosts, serve, ExploreOptions, Explorer, ServeOptions};

/// Explore a trained VAE in the browser: move latent coordinates, mix two images' codes, draw
/// samples, read the run's curves.
#[derive(Parser, Debug)]
#[command(name = "explore", version, about)]
struct Args {
    /// The run folder written by `train` (holds config.json and the checkpoints).
    #[arg(long)]
    run: PathBuf,
    /// The checkpoint to load (default: RUN/best.safetensors).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Address or host name to listen on. Anything but a loopback address lets other machines
    /// use the explorer (a warning says so). Requests whose Host header names another site are
    /// refused (DNS rebinding), unless this is 0.0.0.0 or :: (every address).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: a free one, chosen by the system).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where the model decodes.
    #[command(flatten)]
    compute: vae::cli::DeviceArgs,
    /// Test images per page of the page's grid (it pages through all --max-test of them).
    #[arg(long, default_value_t = 48)]
    grid: usize,
    /// The page offers at most this many test images, and the KL that orders the sliders is
    /// averaged over them.
    #[arg(long, default_value_t = 2000)]
    max_test: usize,
}

fn main() {
    let runtime_dir = vae::cli::RuntimeDir::for_this_process();
    let result = run(Args::parse());
    drop(runtime_dir);
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    if args.grid == 0 {
        return Err(Error::Config("--grid must be at least 1".into()));
    }
    vae::train::set_cpu_threads(args.compute.threads)?;
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
    println!("loading {} (a GPU's first start can take a minute) ...", args.run.display());
    let opts = ExploreOptions {
        checkpoint: args.checkpoint.clone(),
        device: args.compute.device,
        max_test: args.max_test,
        grid: args.grid,
    };
    let explorer = Explorer::open(&args.run, &opts)?;
    println!(
        "{} (z = {}, {} test images, {} per page of the grid), decoding on {}",
        args.run.display(),
        explorer.z_dim(),
        explorer.test_len(),
        args.grid,
        explorer.device()
    );
    let shown = if addr.ip().is_unspecified() { SocketAddr::new([127, 0, 0, 1].into(), addr.port()) } else { addr };
    println!("explorer at http://{shown}/ (Ctrl-C stops it)");
    let serve_opts = ServeOptions { allowed_hosts: allowed_hosts(&args.host, addr), ..ServeOptions::default() };
    serve(&listener, &|method: &str, url: &str| explorer.answer(method, url), &stop, &serve_opts)
        .map_err(listen_error)?;
    println!("stopped");
    Ok(())
}
