//! sgemm throughput of the CPU GEMM (`tensor::cpu::gemm`), in GFLOP/s.
//!
//! Criterion's `Throughput::Elements` is set to the flop count 2·m·n·k (one multiply and one add
//! per term), so its "elem/s" column reads directly as FLOP/s. Run with
//! `cargo bench --bench gemm -p vae-stack`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tensor::cpu::gemm::{gemm, MatRef};
use tensor::Rng;

fn random(len: usize, rng: &mut Rng) -> Vec<f32> {
    (0..len).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()
}

fn bench_sgemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm");
    let mut rng = Rng::new(0);
    // (m, k, n): a square case, the shape of a wide convolution's im2col GEMM, and B4's (the
    // dense VAE at batch 128): its first layer's forward, weight gradient and data gradient.
    for (m, k, n) in [(1024, 1024, 1024), (4096, 512, 4608), (128, 784, 512), (784, 128, 512), (128, 512, 784)] {
        let (a, b) = (random(m * k, &mut rng), random(k * n, &mut rng));
        let mut out = vec![0.0f32; m * n];
        // Elements = flops: 2 per multiply-add.
        group.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        if m * n * k > 1 << 30 {
            group.sample_size(10);
        }
        group.bench_function(BenchmarkId::from_parameter(format!("{m}x{k}x{n}")), |bench| {
            bench.iter(|| {
                gemm(
                    MatRef::row_major(black_box(&a), m, k),
                    MatRef::row_major(black_box(&b), k, n),
                    &mut out,
                    n,
                    false,
                );
                black_box(&mut out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_sgemm);
criterion_main!(benches);
