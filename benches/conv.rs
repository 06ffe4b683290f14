//! CPU throughput of conv2d (forward, backward-data, backward-weight) and conv_transpose2d
//! (forward) through the public ops in `tensor::ops`, f32, in GFLOP/s.
//!
//! Criterion's `Throughput::Elements` is set to the flop count of the convolution, so its
//! "elem/s" column reads directly as FLOP/s. A conv2d with y [N, C_out, OH, OW] and a
//! C_in·kH·kW-term dot product per output costs 2·N·C_out·OH·OW·C_in·kH·kW flops (one multiply
//! and one add per term); each backward kernel does the same number of multiply-adds; a
//! conv_transpose2d costs the same as the conv2d it is the transpose of,
//! 2·N·C_in·H·W·C_out·kH·kW (x [N, C_in, H, W]). Padding taps are counted, as PyTorch's
//! benchmarks do. Run with `cargo bench --bench conv -p vae-stack`; `-- conv_ladder` runs only
//! the CPU ladder's rungs (direct, im2col, chosen) side by side, `-- nearest_upsampled` the
//! nearest-upsampled convolution's two forms.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tensor::cpu::conv::{conv2d_backward_data_on, conv2d_backward_weight_on, conv2d_forward_on, ConvRung};
use tensor::cpu::winograd;
use tensor::descriptors::Conv2dGeometry;
use tensor::ops::conv2d::{conv2d, conv2d_backward_data, conv2d_backward_weight, Conv2dParams};
use tensor::ops::conv_transpose2d::{conv_transpose2d, ConvTranspose2dParams};
use tensor::ops::upsampled_conv::{conv2d_nearest_upsampled, interleave_phases, phase_weights};
use tensor::{DType, Rng, Tensor};

// The allocator `train` and the step bench run on: without it, a kernel whose scratch or
// output buffer is larger than glibc's mmap threshold is given fresh pages on every call, and
// pays page faults that the training step never pays (see `tensor::cpu::caching_allocator`).
#[global_allocator]
static ALLOCATOR: tensor::cpu::caching_allocator::CachingAllocator = tensor::cpu::caching_allocator::CachingAllocator;

fn random(shape: &[usize], rng: &mut Rng) -> Tensor {
    Tensor::rand_uniform(shape, -1.0, 1.0, DType::F32, rng)
}

fn bench_conv2d(c: &mut Criterion) {
    let mut rng = Rng::new(0);
    // A ResNet/VAE-style block: batch 64, 64 → 64 channels, 32×32, 3×3, padding 1.
    let (n, c_in, c_out, hw, k) = (64, 64, 64, 32, 3);
    let x = random(&[n, c_in, hw, hw], &mut rng);
    let w = random(&[c_out, c_in, k, k], &mut rng);
    let b = random(&[c_out], &mut rng);
    let p = Conv2dParams::new(1, 1);
    let gy = random(&[n, c_out, hw, hw], &mut rng);
    let flops = 2 * (n * c_out * hw * hw * c_in * k * k) as u64;

    let mut group = c.benchmark_group("conv2d_b64_64to64_32x32_k3p1");
    group.throughput(Throughput::Elements(flops)).sample_size(10);
    group.bench_function("forward", |bench| bench.iter(|| black_box(conv2d(black_box(&x), &w, Some(&b), &p).unwrap())));
    group.bench_function("backward_data", |bench| {
        bench.iter(|| black_box(conv2d_backward_data(black_box(&gy), &w, x.shape(), &p).unwrap()))
    });
    group.bench_function("backward_weight", |bench| {
        bench.iter(|| black_box(conv2d_backward_weight(black_box(&gy), &x, w.shape(), &p).unwrap()))
    });
    group.finish();
}

fn bench_conv_transpose2d(c: &mut Criterion) {
    let mut rng = Rng::new(1);
    // A VAE decoder upsampling step: batch 64, 128 → 64 channels, 8×8 → 16×16, k4 s2 p1.
    let (n, c_in, c_out, hw, k) = (64, 128, 64, 8, 4);
    let x = random(&[n, c_in, hw, hw], &mut rng);
    let w = random(&[c_in, c_out, k, k], &mut rng);
    let b = random(&[c_out], &mut rng);
    let p = ConvTranspose2dParams::new(2, 1);
    let flops = 2 * (n * c_in * hw * hw * c_out * k * k) as u64;

    let mut group = c.benchmark_group("conv_transpose2d_b64_128to64_8to16_k4s2p1");
    group.throughput(Throughput::Elements(flops)).sample_size(10);
    group.bench_function("forward", |bench| {
        bench.iter(|| black_box(conv_transpose2d(black_box(&x), &w, Some(&b), &p).unwrap()))
    });
    group.finish();
}

/// Every rung of the CPU convolution ladder (`tensor::cpu::conv::ConvRung`) on every kernel,
/// at a layer of B1 (64→128, 16×16 → 8×8, stride 2, batch 64), one of B3 on the large plane
/// where the strips and the full correlation take over (64→64, 64×64, batch 2: the direct
/// rung takes about a second an iteration) and one of B3's deep layers, where Winograd's
/// transforms are cheapest against its GEMMs (512→512, 8×8, batch 32; without the direct rung,
/// which would take about ten seconds an iteration). One group per layer, one row per kernel
/// and rung; a rung that runs another's kernel there (see `ConvRung`) has no row for it.
fn bench_conv_ladder(c: &mut Criterion) {
    let mut rng = Rng::new(2);
    let layers = [
        ("b1_64to128_16x16_s2_b64", [64, 64, 16, 16], [128, 64, 3, 3], [2, 2]),
        ("b3_64to64_64x64_b2", [2, 64, 64, 64], [64, 64, 3, 3], [1, 1]),
        ("b3_512to512_8x8_b32", [32, 512, 8, 8], [512, 512, 3, 3], [1, 1]),
    ];
    for (name, x_shape, w_shape, stride) in layers {
        let g = Conv2dGeometry::conv2d(x_shape, w_shape, stride, [1, 1], [1, 1]).expect("a valid layer");
        let values =
            |len: usize, rng: &mut Rng| -> Vec<f32> { (0..len).map(|_| rng.uniform(-1.0, 1.0) as f32).collect() };
        let (x, w, dy) = (values(g.x_len(), &mut rng), values(g.weight_len(), &mut rng), values(g.y_len(), &mut rng));
        let mut group = c.benchmark_group(format!("conv_ladder/{name}"));
        group.throughput(Throughput::Elements(2 * g.macs())).sample_size(10);
        let deep = g.c_in == 512;
        for rung in ConvRung::ALL.into_iter().filter(|&rung| !(deep && rung == ConvRung::Direct)) {
            // The implicit GEMMs and Winograd have their own backward-data only at stride 1 (a
            // forward of dy) and no backward-weight, and Winograd its own forward only for 3×3
            // kernels at stride 1: elsewhere they run the im2col rung's, timed in its rows.
            let borrows = matches!(rung, ConvRung::ImplicitGemm | ConvRung::PhaseGrid | ConvRung::Winograd);
            if rung != ConvRung::Winograd || winograd::applies(&g) {
                group.bench_function(format!("forward/{}", rung.name()), |bench| {
                    bench.iter(|| black_box(conv2d_forward_on(rung, black_box(&x), &w, None, &g)))
                });
            }
            if !borrows || stride == [1, 1] {
                group.bench_function(format!("backward_data/{}", rung.name()), |bench| {
                    bench.iter(|| black_box(conv2d_backward_data_on(rung, black_box(&dy), &w, &g)))
                });
            }
            if !borrows {
                group.bench_function(format!("backward_weight/{}", rung.name()), |bench| {
                    bench.iter(|| black_box(conv2d_backward_weight_on(rung, black_box(&dy), &x, &g)))
                });
            }
        }
        group.finish();
    }
}

/// resnet-bn's four `Up(n) → Conv(3,1,1)` layers (B3 at 64×64, `ops::upsampled_conv`) at
/// the explorer's batch of 16 and B3's 32, two ways: "phases", the backward's form (the phase
/// kernels, one 2×2 convolution by the cut the rules choose, the interleaving), and
/// "winograd", the forward's own transform (9 multiply-adds per input channel and output quad
/// against the phases' 16). Throughput counts the layer as written (36), so the two read as
/// the speed each gives the same layer.
fn bench_nearest_upsampled(c: &mut Criterion) {
    let mut rng = Rng::new(3);
    for batch in [16, 32] {
        for (c_in, c_out, hw) in [(512, 512, 4), (512, 256, 8), (256, 128, 16), (128, 64, 32)] {
            let x = random(&[batch, c_in, hw, hw], &mut rng);
            let w = random(&[c_out, c_in, 3, 3], &mut rng);
            let b = random(&[c_out], &mut rng);
            let phase_bias = b.reshape(&[c_out, 1]).unwrap().broadcast_to(&[c_out, 4]).unwrap();
            let phase_bias = phase_bias.contiguous().unwrap().reshape(&[4 * c_out]).unwrap();
            let flops = 2 * (batch * c_out * 4 * hw * hw * c_in * 9) as u64;
            let mut group = c.benchmark_group(format!("nearest_upsampled/b{batch}_{c_in}to{c_out}_{hw}x{hw}"));
            group.throughput(Throughput::Elements(flops)).sample_size(10);
            group.bench_function("phases", |bench| {
                bench.iter(|| {
                    let phases =
                        conv2d(black_box(&x), &phase_weights(&w).unwrap(), Some(&phase_bias), &Conv2dParams::new(1, 1));
                    black_box(interleave_phases(&phases.unwrap()).unwrap())
                })
            });
            group.bench_function("winograd", |bench| {
                bench.iter(|| black_box(conv2d_nearest_upsampled(black_box(&x), &w, Some(&b)).unwrap()))
            });
            group.finish();
        }
    }
}

criterion_group!(benches, bench_conv2d, bench_conv_transpose2d, bench_conv_ladder, bench_nearest_upsampled);
criterion_main!(benches);
