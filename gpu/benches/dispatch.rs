//! Host cost of recording one launch: what the CPU spends in `Context::dispatch` (checks,
//! pipeline lookup, parameters, bind group, recording) before the GPU sees anything. A training
//! step records hundreds of launches (B2: 931), so on a fast GPU this cost, not the kernels,
//! sets the step time at small batches.
//!
//! Each sample records `LAUNCHES` copies of 256 floats (a kernel whose GPU time is negligible)
//! into alternating buffers, timed up to the submit; the wait for the GPU is not timed. Prints
//! the median and the fastest of the samples in µs per launch, twice: by the wall clock, and by
//! the recording thread's CPU clock. On a software adapter the second is the one to read: the
//! context submits every few dozen launches, and the adapter's threads then run those kernels
//! on the same cores while the host records the next, which the wall clock counts.
//!
//! Run: `cargo bench -p gpu --bench dispatch` (skips with a message when there is no adapter).

use std::time::Instant;

use gpu::kernels::elementwise::{copy_strided, View};
use gpu::{AdapterPreference, Context};
use tensor::profile::thread_cpu_ns;

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
    let (mut wall_us, mut cpu_us): (Vec<f64>, Vec<f64>) = (0..SAMPLES)
        .map(|_| {
            let (t, cpu) = (Instant::now(), thread_cpu_ns());
            record();
            ctx.flush().expect("flush");
            let wall = t.elapsed().as_secs_f64() * 1e6 / LAUNCHES as f64;
            let cpu = (thread_cpu_ns() - cpu) as f64 / 1e3 / LAUNCHES as f64;
            ctx.synchronize().expect("synchronize");
            (wall, cpu)
        })
        .unzip();
    for (clock, us) in [("wall", &mut wall_us), ("thread CPU", &mut cpu_us)] {
        us.sort_by(f64::total_cmp);
        println!(
            "record + submit, {LAUNCHES} launches a sample, {SAMPLES} samples, {clock} clock: median {:.2} µs per \
             launch, fastest {:.2}",
            us[SAMPLES / 2],
            us[0]
        );
    }
}
