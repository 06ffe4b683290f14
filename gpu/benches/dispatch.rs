//! Host cost of recording one launch: what the CPU spends in `Context::dispatch` (checks,
//! pipeline lookup, parameters, bind group, recording) before the GPU sees anything. A training
//! step records hundreds of launches (B2: 931), so on a fast GPU this cost, not the kernels,
//! sets the step time at small batches.
//!
//! Each sample records `LAUNCHES` copies of 256 floats (a kernel whose GPU time is negligible)
//! into alternating buffers, timed up to the submit; the wait for the GPU is not timed. Prints
//! the median and the fastest of the samples in µs per launch.
//!
//! Run: `cargo bench -p gpu --bench dispatch` (skips with a message when there is no adapter).

use std::time::Instant;

use gpu::kernels::elementwise::{copy_strided, View};
use gpu::{AdapterPreference, Context};

const LAUNCHES: usize = 1000;
const SAMPLES: usize = 21;

fn main() {
    let ctx = match Context::new(AdapterPreference::AnyIncludingSoftware) {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("dispatch: skipped, {e}");
            return;
        }
    };
    println!("dispatch on {}", ctx.info());
    let n = 256;
    let bufs = [ctx.zeros(n).expect("buffer"), ctx.zeros(n).expect("buffer")];
    let shape = [n];
    let record = || {
        for i in 0..LAUNCHES {
            let (src, dst) = (&bufs[i % 2], &bufs[1 - i % 2]);
            copy_strided(&ctx, &View::dense(src, &shape), &View::dense(dst, &shape), &shape).expect("launch");
        }
    };
    record(); // compiles the pipeline and warms the pools
    ctx.synchronize().expect("synchronize");
    let mut per_launch_us: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            record();
            ctx.flush().expect("flush");
            let us = t.elapsed().as_secs_f64() * 1e6 / LAUNCHES as f64;
            ctx.synchronize().expect("synchronize");
            us
        })
        .collect();
    per_launch_us.sort_by(f64::total_cmp);
    println!(
        "record + submit, {LAUNCHES} launches a sample, {SAMPLES} samples: median {:.2} µs per launch, fastest {:.2}",
        per_launch_us[SAMPLES / 2],
        per_launch_us[0]
    );
}
