//! This CPU's fp32 peak, measured: the rate of fused multiply-adds when nothing but them runs
//! (24 independent accumulators in registers, no loads), on one thread and on every thread of
//! the pool at once. The layer benches' GFLOP/s are read against it; a clock and a count of FMA
//! units from a data sheet say less on a shared virtual machine whose clock moves with load.
//!
//!     cargo bench --bench fp32_peak
//!
//! x86-64 only (AVX-512F and AVX2+FMA, whichever this CPU has); elsewhere it says so.

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Accumulators: enough independent chains to cover the FMA latency (4 cycles) on two
    /// units, and few enough to stay in registers (32 zmm with AVX-512, 16 ymm with AVX2).
    pub const CHAINS_AVX512: usize = 24;
    pub const CHAINS_AVX2: usize = 12;

    /// `iterations` rounds of CHAINS_AVX512 16-lane FMAs; returns a sum so that none is
    /// optimised out.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_avx512(iterations: usize, x: f32, y: f32) -> f32 {
        let (x, y) = (_mm512_set1_ps(x), _mm512_set1_ps(y));
        let mut acc = [_mm512_setzero_ps(); CHAINS_AVX512];
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, &a| _mm512_add_ps(s, a)))
    }

    /// As [`fma_avx512`] with CHAINS_AVX2 8-lane FMAs.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_avx2(iterations: usize, x: f32, y: f32) -> f32 {
        let (x, y) = (_mm256_set1_ps(x), _mm256_set1_ps(y));
        let mut acc = [_mm256_setzero_ps(); CHAINS_AVX2];
        for _ in 0..iterations {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, x, y);
            }
        }
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc.iter().fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a)));
        lanes.iter().sum()
    }
}

#[cfg(target_arch = "x86_64")]
fn main() {
    use rayon::prelude::*;
    use std::hint::black_box;
    use std::time::Instant;

    type Loop = fn(usize, f32, f32) -> f32;
    // Each loop's name, FLOPs an iteration (chains × lanes × 2) and the loop.
    let mut loops: Vec<(&str, usize, Loop)> = Vec::new();
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F was detected just above.
        loops.push(("avx512 (16 lanes)", x86::CHAINS_AVX512 * 16 * 2, |n, x, y| unsafe { x86::fma_avx512(n, x, y) }));
    }
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA were detected just above.
        loops.push(("avx2 (8 lanes)", x86::CHAINS_AVX2 * 8 * 2, |n, x, y| unsafe { x86::fma_avx2(n, x, y) }));
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| info.lines().find(|l| l.starts_with("model name")).map(str::to_string))
        .unwrap_or_else(|| "model name: unknown".into());
    let threads = rayon::current_num_threads();
    println!("{cpu}; {threads} threads; median of 5 runs of 10 million iterations\n");
    println!("| FMA loop | one thread GFLOP/s | {threads} threads GFLOP/s |");
    println!("|---|---|---|");
    let iterations = 10_000_000;
    for (name, flops_per_iteration, run) in loops {
        // GFLOP/s of `copies` loops at once, one per thread; the inputs pass through black_box
        // so that no run is folded into a constant.
        let rate = |copies: usize| {
            let mut rates: Vec<f64> = (0..5)
                .map(|_| {
                    let t = Instant::now();
                    let sum: f32 = (0..copies)
                        .into_par_iter()
                        .map(|_| run(black_box(iterations), black_box(1.000_000_1), black_box(0.999_999_9)))
                        .sum();
                    black_box(sum);
                    (copies * iterations * flops_per_iteration) as f64 / t.elapsed().as_secs_f64() / 1e9
                })
                .collect();
            rates.sort_by(f64::total_cmp);
            rates[2]
        };
        println!("| {name} | {:.1} | {:.1} |", rate(1), rate(threads));
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("fp32_peak measures x86-64 FMA loops only; this CPU is not x86-64");
}
