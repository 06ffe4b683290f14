//! How much of a CPU convolution's forward is its matrix product: for the stride-2 3×3 layers of
//! B1 and B5 (where PyTorch's oneDNN leads, docs/notebooks/performance.md), the forward the ops
//! run, the implicit-GEMM rung (B panels packed straight from the images), the phase-grid rung
//! (B panels copied in contiguous runs out of the input's stride phases), and
//! the same multiply-adds as plain GEMMs with nothing to unfold: W [C_out, C_in·9] times a
//! [C_in·9, N·OH·OW] operand already in memory, its columns cut into one GEMM per thread. The
//! gap between the first and the last is what unfolding, packing and the layout copies cost.
//!
//!     cargo bench --bench conv_gemm_share
//!     cargo bench --bench conv_gemm_share -- --reps 50

#[allow(dead_code)] // the layer tables' helpers, which this bench does not print
mod common;

use common::{flag, median_ms};
use rayon::prelude::*;
use tensor::cpu::conv::{conv2d_forward, conv2d_forward_on, ConvRung};
use tensor::cpu::gemm::{gemm, MatRef};
use tensor::descriptors::Conv2dGeometry;

// The training binaries' allocator, as in `conv_layers`.
#[global_allocator]
static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator = tensor::cpu::caching_allocator::CachingAllocator;

/// (name, x [N, C_in, H, W], weight [C_out, C_in, 3, 3]), each at stride 2, padding 1.
const LAYERS: [(&str, [usize; 4], [usize; 4]); 3] = [
    ("B5 conv 32→64, 16×16 → 8×8", [64, 32, 16, 16], [64, 32, 3, 3]),
    ("B5 convT 64→32 16→32 backward-data: conv 32→64, 32×32 → 16×16", [64, 32, 32, 32], [64, 32, 3, 3]),
    ("B1 conv 64→128, 16×16 → 8×8", [64, 64, 16, 16], [128, 64, 3, 3]),
];

fn values(len: usize, salt: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * salt) % 1000) as f32 / 1000.0 - 0.5).collect()
}

fn main() {
    let reps: usize = flag("--reps").and_then(|s| s.parse().ok()).unwrap_or(30);
    let threads = rayon::current_num_threads();
    println!("threads: {threads}, {reps} repetitions, median ms (GFLOP/s)\n");
    println!("| layer | forward (the ops) | implicit-GEMM rung | phase-grid rung | its GEMMs alone | GEMMs' share of the forward |");
    println!("|---|---|---|---|---|---|");
    for (name, x_shape, w_shape) in LAYERS {
        let g = Conv2dGeometry::conv2d(x_shape, w_shape, [2, 2], [1, 1], [1, 1]).expect("a valid layer");
        let (x, w) = (values(g.x_len(), 7919), values(g.weight_len(), 104_729));
        let (m, k, columns) = (g.c_out, g.col_rows(), g.batch * g.out_plane());
        let n = columns.div_ceil(threads);
        let operand = values(k * n, 31);
        let flops = 2.0 * g.macs() as f64;
        let rate = |ms: f64| format!("{ms:.2} ({:.0})", flops / ms / 1e6);
        let forward = median_ms(reps, || drop(conv2d_forward(&x, &w, None, &g)));
        let implicit = median_ms(reps, || drop(conv2d_forward_on(ConvRung::ImplicitGemm, &x, &w, None, &g)));
        let phase_grid = median_ms(reps, || drop(conv2d_forward_on(ConvRung::PhaseGrid, &x, &w, None, &g)));
        let gemms = median_ms(reps, || {
            (0..threads).into_par_iter().for_each(|_| {
                let mut out = vec![0.0f32; m * n];
                gemm(MatRef::row_major(&w, m, k), MatRef::row_major(&operand, k, n), &mut out, n, false);
                std::hint::black_box(&out);
            })
        });
        println!(
            "| {name} | {} | {} | {} | {} ({threads} × [{m}×{k}]·[{k}×{n}]) | {:.0} % |",
            rate(forward),
            rate(implicit),
            rate(phase_grid),
            rate(gemms),
            100.0 * gemms / forward
        );
    }
}
