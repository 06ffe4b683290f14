//! Every Linear layer of the B1, B4 and B5 workloads, timed one product at a time, in a table:
//! median ms and GFLOP/s of the forward (x·Wᵀ), backward-data (dy·W) and backward-weight
//! (dyᵀ·x) matmuls (f32, CPU, rayon's thread count), through the same `matmul` and transposed
//! views that `autograd::ops::matmul::linear` uses. Small-batch products like these are where
//! a GEMM's per-call and per-pass overheads show; `benches/gemm.rs` covers the large ones.
//!
//!     cargo bench --bench linear_layers                # every layer, 50 repetitions
//!     cargo bench --bench linear_layers -- --reps 200 --layers B5
//!
//! Its PyTorch side is `benches/pytorch_linear_layers.py`, same rows.

use std::time::Instant;

use tensor::ops::matmul::matmul;
use tensor::{DType, Rng, Tensor};

/// One Linear layer: the workload, batch, in and out features.
struct Layer {
    workload: &'static str,
    batch: usize,
    inputs: usize,
    outputs: usize,
}

const fn layer(workload: &'static str, batch: usize, inputs: usize, outputs: usize) -> Layer {
    Layer { workload, batch, inputs, outputs }
}

/// shared/spec/architectures.md: `conv` (B1: F = 128·8·8, z 32, batch 64), `dense` (B4: 784
/// inputs, z 16, batch 128) and `basic` (B5: F = 64·8·8, z 128, batch 64). The μ and log σ²
/// heads are two layers of the same shape; each is listed once.
const LAYERS: [Layer; 9] = [
    layer("B1", 64, 8192, 32),
    layer("B1", 64, 32, 8192),
    layer("B4", 128, 784, 512),
    layer("B4", 128, 512, 256),
    layer("B4", 128, 256, 16),
    layer("B4", 128, 16, 256),
    layer("B4", 128, 256, 512),
    layer("B4", 128, 512, 784),
    layer("B5", 64, 4096, 128),
];

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up: first-touch of buffers, caches
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let reps: usize = flag("--reps").and_then(|s| s.parse().ok()).unwrap_or(50);
    let only = flag("--layers");
    let mut rng = Rng::new(0);
    let random = |shape: &[usize], rng: &mut Rng| Tensor::rand_uniform(shape, -1.0, 1.0, DType::F32, rng);

    println!("threads: {}, {reps} repetitions, median\n", rayon::current_num_threads());
    println!("| workload | layer | GFLOP | fwd ms | fwd GFLOP/s | bwd-data ms | GFLOP/s | bwd-weight ms | GFLOP/s |");
    println!("|---|---|---|---|---|---|---|---|---|");
    // `--layers B4,8`: every layer of B4, and row 8 of LAYERS.
    let chosen = |i: usize, l: &Layer| {
        only.as_deref().is_none_or(|o| o.split(',').any(|w| w == l.workload || w.parse() == Ok(i)))
    };
    let mut total_ms = 0.0;
    for (i, l) in LAYERS.iter().enumerate().filter(|(i, l)| chosen(*i, l)) {
        let x = random(&[l.batch, l.inputs], &mut rng);
        let w = random(&[l.outputs, l.inputs], &mut rng);
        let dy = random(&[l.batch, l.outputs], &mut rng);
        let (w_t, dy_t) = (w.transpose(0, 1).expect("Wᵀ"), dy.transpose(0, 1).expect("dyᵀ"));
        let times = [
            median_ms(reps, || drop(matmul(&x, &w_t).expect("x·Wᵀ"))),
            median_ms(reps, || drop(matmul(&dy, &w).expect("dy·W"))),
            median_ms(reps, || drop(matmul(&dy_t, &x).expect("dyᵀ·x"))),
        ];
        total_ms += times.iter().sum::<f64>();
        let flops = 2.0 * (l.batch * l.inputs * l.outputs) as f64;
        let gf = |ms: f64| flops / (ms * 1e6);
        println!(
            "| {} | {i}: Linear {}→{}, batch {} | {:.3} | {:.3} | {:.1} | {:.3} | {:.1} | {:.3} | {:.1} |",
            l.workload,
            l.inputs,
            l.outputs,
            l.batch,
            flops / 1e9,
            times[0],
            gf(times[0]),
            times[1],
            gf(times[1]),
            times[2],
            gf(times[2])
        );
    }
    println!("\ntotal of the medians: {total_ms:.3} ms");
}
