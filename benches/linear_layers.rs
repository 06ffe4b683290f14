//! Every Linear layer of the B1, B4 and B5 workloads, timed one product at a time, in a table:
//! median ms and GFLOP/s of the forward (x·Wᵀ), backward-data (dy·W) and backward-weight
//! (dyᵀ·x) matmuls (f32, CPU, rayon's thread count, its workers kept awake between calls as in a
//! step), through the same `matmul` and transposed
//! views that `autograd::ops::matmul::linear` uses. Small-batch products like these are where
//! a GEMM's per-call and per-pass overheads show; `benches/gemm.rs` covers the large ones.
//!
//!     cargo bench --bench linear_layers                # every layer, 50 repetitions
//!     cargo bench --bench linear_layers -- --reps 200 --layers B5
//!
//! Its PyTorch side is `benches/pytorch_linear_layers.py`, same rows.

mod common;

use common::{flag, layer_chosen, print_layer_row, print_layer_table_header, step_median_ms};
use tensor::ops::matmul::matmul;
use tensor::{DType, Rng, Tensor};

// The allocator `train` and the step bench run on: without it, a kernel whose scratch or
// output buffer is larger than glibc's mmap threshold is given fresh pages on every call, and
// pays page faults that the training step never pays (see `tensor::cpu::caching_allocator`).
#[global_allocator]
static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator = tensor::cpu::caching_allocator::CachingAllocator;

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

/// docs/architectures.md: `conv` (B1: F = 128·8·8, z 32, batch 64), `dense` (B4: 784
/// inputs, z 16, batch 128) and `basic` (B5: F = 64·8·8, z 128, batch 64). The μ and log σ²
/// heads are two layers of the same shape; each is listed once.
const LAYERS: [Layer; 10] = [
    layer("B1", 64, 8192, 32),
    layer("B1", 64, 32, 8192),
    layer("B4", 128, 784, 512),
    layer("B4", 128, 512, 256),
    layer("B4", 128, 256, 16),
    layer("B4", 128, 16, 256),
    layer("B4", 128, 256, 512),
    layer("B4", 128, 512, 784),
    layer("B5", 64, 4096, 128),
    layer("B5", 64, 128, 4096),
];

fn main() {
    let reps: usize = flag("--reps").and_then(|s| s.parse().ok()).unwrap_or(50);
    let only = flag("--layers");
    let mut rng = Rng::new(0);
    let random = |shape: &[usize], rng: &mut Rng| Tensor::rand_uniform(shape, -1.0, 1.0, DType::F32, rng);

    print_layer_table_header(reps);
    let mut total_ms = 0.0;
    for (i, l) in LAYERS.iter().enumerate().filter(|(i, l)| layer_chosen(only.as_deref(), *i, l.workload)) {
        let x = random(&[l.batch, l.inputs], &mut rng);
        let w = random(&[l.outputs, l.inputs], &mut rng);
        let dy = random(&[l.batch, l.outputs], &mut rng);
        let (w_t, dy_t) = (w.transpose(0, 1).expect("Wᵀ"), dy.transpose(0, 1).expect("dyᵀ"));
        let times = [
            step_median_ms(reps, || drop(matmul(&x, &w_t).expect("x·Wᵀ"))),
            step_median_ms(reps, || drop(matmul(&dy, &w).expect("dy·W"))),
            step_median_ms(reps, || drop(matmul(&dy_t, &x).expect("dyᵀ·x"))),
        ];
        total_ms += times.iter().sum::<f64>();
        let flops = 2.0 * (l.batch * l.inputs * l.outputs) as f64;
        let name = format!("{i}: Linear {}→{}, batch {}", l.inputs, l.outputs, l.batch);
        print_layer_row(l.workload, &name, flops, times, 3);
    }
    println!("\ntotal of the medians: {total_ms:.3} ms");
}
