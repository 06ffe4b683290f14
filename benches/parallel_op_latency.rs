//! What a parallel op costs when the pool's workers have been idle: the measurement behind
//! `tensor::cpu::awake`. An "op" is one parallel iterator over as many pieces as the pool has
//! threads, each piece spinning for `--work-us` (50 µs). Before each op the caller spins alone
//! for a pause (the serial work between a step's ops), then the op is timed: called from the
//! main thread, as a step ran before, and inside `kept_awake`, as it runs now. Median of
//! `--reps` ops for each pause, µs; the op's own work is the floor.
//!
//!     cargo bench --bench parallel_op_latency
//!     cargo bench --bench parallel_op_latency -- --reps 1000 --work-us 20

#[allow(dead_code)] // only `flag` serves this bench
mod common;

use std::time::{Duration, Instant};

use common::flag;
use rayon::prelude::*;
use tensor::cpu::awake::kept_awake;

/// Busy for `d`: a pause that keeps this thread on its core, as a step's serial work does.
fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// The median time, µs, of `reps` ops, each after `pause` of the caller's own work.
fn median_op_us(reps: usize, pause: Duration, work: Duration) -> f64 {
    let pieces = rayon::current_num_threads();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            spin(pause);
            let t = Instant::now();
            (0..pieces).into_par_iter().for_each(|_| spin(work));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let reps: usize = flag("--reps").and_then(|s| s.parse().ok()).unwrap_or(400);
    let work_us: u64 = flag("--work-us").and_then(|s| s.parse().ok()).unwrap_or(50);
    let work = Duration::from_micros(work_us);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| info.lines().find(|l| l.starts_with("model name")).map(|l| l.to_string()))
        .unwrap_or_else(|| "model name: unknown".into());
    println!("{cpu}; threads: {}; each op {work_us} µs a piece; {reps} ops, median\n", rayon::current_num_threads());
    println!("| pause before the op µs | from the main thread µs | inside kept_awake µs |");
    println!("|---|---|---|");
    for pause_us in [0, 10, 30, 100, 300, 1000] {
        let pause = Duration::from_micros(pause_us);
        let plain = median_op_us(reps, pause, work);
        let awake = kept_awake(|| median_op_us(reps, pause, work));
        println!("| {pause_us} | {plain:.1} | {awake:.1} |");
    }
}
