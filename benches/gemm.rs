//! sgemm throughput of the CPU GEMM (`tensor::cpu::gemm`), in GFLOP/s: `sgemm`, the path every
//! op takes (the top rung this CPU runs), `sgemm_ladder`, every rung of the ladder
//! (`tensor::cpu::gemm::GemmRung`) at the same shapes, so one run shows what each idea buys, and
//! `sgemm_kernels`, every f32 kernel with each of its blockings: the candidates `train` times
//! to choose one (`tensor::cpu::tuning`), and `sgemm_micro_kernel`, each kernel's micro-kernel
//! alone on one thread, on packed panels that stay in cache: the ceiling a whole product approaches,
//! so the difference is what packing, blocking and threads cost.
//!
//! Criterion's `Throughput::Elements` is set to the flop count 2·m·n·k (one multiply and one add
//! per term), so its "elem/s" column reads directly as FLOP/s. Run with
//! `cargo bench --bench gemm -p vae-stack` (`-- sgemm_ladder` for the ladder alone).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tensor::cpu::gemm::{f32_kernel_names, gemm, gemm_on_f32_kernel, gemm_on_rung, GemmRung, MatRef, MicroKernel};
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

/// Every rung this CPU runs, at a square product and B4's first layer (the dense VAE at batch
/// 128: [128, 784]·[784, 512]). The naive rung is left out of the 1024³ row: at a few hundred
/// MFLOP/s it would take minutes of samples to say what one line of arithmetic already does.
fn bench_sgemm_ladder(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm_ladder");
    group.sample_size(10);
    let mut rng = Rng::new(1);
    for (m, k, n) in [(128, 784, 512), (1024, 1024, 1024)] {
        let (a, b) = (random(m * k, &mut rng), random(k * n, &mut rng));
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        for rung in GemmRung::available::<f32>() {
            if rung == GemmRung::Naive && m * n * k > 1 << 28 {
                continue;
            }
            group.bench_function(BenchmarkId::new(rung.name(), format!("{m}x{k}x{n}")), |bench| {
                bench.iter(|| {
                    let (a, b) = (MatRef::row_major(black_box(&a), m, k), MatRef::row_major(black_box(&b), k, n));
                    gemm_on_rung(rung, a, b, &mut out, n, false);
                    black_box(&mut out);
                })
            });
        }
    }
    group.finish();
}

/// Every f32 kernel this CPU runs, each micro-kernel with each of its blockings, at the
/// shapes the tuner times them on (an im2col forward, a weight gradient, a square product) and
/// at 1024³.
fn bench_sgemm_kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("sgemm_kernels");
    group.sample_size(10);
    let mut rng = Rng::new(2);
    for (m, k, n) in [(64, 576, 4096), (576, 2048, 128), (384, 384, 384), (1024, 1024, 1024)] {
        let (a, b) = (random(m * k, &mut rng), random(k * n, &mut rng));
        let mut out = vec![0.0f32; m * n];
        group.throughput(Throughput::Elements(2 * (m * n * k) as u64));
        for name in f32_kernel_names() {
            group.bench_function(BenchmarkId::new(name, format!("{m}x{k}x{n}")), |bench| {
                bench.iter(|| {
                    let (a, b) = (MatRef::row_major(black_box(&a), m, k), MatRef::row_major(black_box(&b), k, n));
                    gemm_on_f32_kernel(name, a, b, &mut out, n, false);
                    black_box(&mut out);
                })
            });
        }
    }
    group.finish();
}

/// Each f32 kernel's micro-kernel alone, on the calling thread: one MR×NR tile from packed
/// panels as deep as the kernel's own KC (for `avx512-14x32-kc256`, 14 KiB of A and 32 KiB of
/// B, in cache between calls), 64 calls an iteration. Multiplied by the threads, the ceiling of the
/// `sgemm_kernels` rows.
fn bench_sgemm_micro_kernel(c: &mut Criterion) {
    const CALLS: usize = 64;
    let mut group = c.benchmark_group("sgemm_micro_kernel");
    let mut rng = Rng::new(3);
    for name in f32_kernel_names() {
        let Some(micro) = MicroKernel::of_f32_kernel(name) else { continue };
        let ([mr, nr], kc) = (micro.tile, micro.kc);
        let (a_panel, b_panel) = (random(kc * mr, &mut rng), random(kc * nr, &mut rng));
        let mut tile = vec![0.0f32; mr * nr];
        group.throughput(Throughput::Elements((2 * mr * nr * kc * CALLS) as u64));
        group.bench_function(BenchmarkId::new(name, format!("{mr}x{nr}x{kc}")), |bench| {
            bench.iter(|| {
                for _ in 0..CALLS {
                    micro.run(kc, black_box(&a_panel), black_box(&b_panel), &mut tile);
                }
                black_box(&mut tile);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_sgemm, bench_sgemm_ladder, bench_sgemm_kernels, bench_sgemm_micro_kernel);
criterion_main!(benches);
